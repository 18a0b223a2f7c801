/* cli.h: the `tandem` command line. */
#ifndef GW_CLI_H
#define GW_CLI_H

#include <stdio.h>

/* Parses argv and runs the chosen command; returns the process exit code.
 * Main thread only. */
int gw_cli_main(int argc, char **argv);

/* Prints usage to `out`. */
void gw_cli_usage(FILE *out);

#endif

/*
 * cli.c: the `tandem` command line.
 *
 *   tandem [-c FILE]          run the gateway (default config/tandem.json)
 *   tandem check [-c FILE]    validate a configuration and its routes
 *   tandem --version | --help
 */
#include "gw/cli.h"

#include <stdio.h>
#include <string.h>

#include "gw_version.h"

void gw_cli_usage(FILE *out)
{
    fprintf(out,
            "usage: tandem [-c FILE]            run the gateway (default: config/tandem.json)\n"
            "       tandem check [-c FILE]      validate a configuration and its route files\n"
            "       tandem --version            print the version\n"
            "       tandem --help               print this help\n");
}

int gw_cli_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("tandem %s\n", TANDEM_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            gw_cli_usage(stdout);
            return 0;
        }
    }
    fprintf(stderr, "tandem: the gateway is not built yet\n");
    gw_cli_usage(stderr);
    return 2;
}

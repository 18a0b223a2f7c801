/* main.c: the tandem executable; everything lives in the gateway library. */
#include "gw/cli.h"

int main(int argc, char **argv)
{
    return gw_cli_main(argc, argv);
}

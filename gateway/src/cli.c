/*
 * cli.c: the `tandem` command line.
 *
 *   tandem [-c FILE]          run the gateway (default config/tandem.json)
 *   tandem check [-c FILE]    validate a configuration, its routes, its
 *                             workflows and its policies
 *   tandem check --print-keys every tandem.json key with its default (tests,
 *                             documentation), then every workflow file key
 *                             under "(workflow file)"
 *   tandem schema config|routes|workflows  the JSON Schema of tandem.json, of
 *                             a route file or of a workflow file, generated
 *                             from the key tables
 *   tandem tls self-signed --name NAME... --out DIR
 *                             a key and a self-signed certificate (tls/)
 *   tandem hash key|password  a consumer's API key or password record, the
 *                             secret read from stdin (policy/hash_cli.c)
 *   tandem --version | --help
 *
 * Exit codes: 0 success, 1 invalid configuration, 2 usage error.
 */
#include "gw/cli.h"
#include "gw/gateway.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/config.h"
#include "gw/ctl.h"
#include "gw_version.h"
#include "policy/auth.h"
#include "tls/tls.h"
#include "policy/table.h"
#include "workflow/def.h"
#include "upgrade.h"

void gw_cli_usage(FILE *out)
{
    fprintf(
        out,
        "usage: tandem [-c FILE]            run the gateway (default: config/tandem.json)\n"
        "       tandem ctl COMMAND ...      talk to a running gateway's admin API (ctl --help)\n"
        "       tandem check [-c FILE]      validate a configuration, its route, workflow and "
        "policy\n"
        "                                   files\n"
        "       tandem tls self-signed --name NAME... --out DIR\n"
        "                                   write a key and a self-signed certificate (tls "
        "--help)\n"
        "       tandem hash key|password    hash an API key or a password read from stdin for a\n"
        "                                   consumer (hash --help)\n"
        "       tandem schema config|routes|workflows\n"
        "                                   print the JSON Schema of tandem.json, a route file or\n"
        "                                   a workflow file\n"
        "       tandem --version            print the version\n"
        "       tandem --help               print this help\n");
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* `tandem check`: every problem as FILE:LINE:COLUMN: message on stderr, a
 * summary on stdout when valid. */
static int cmd_check(const char *path)
{
    struct jpos_diags d;
    struct gw_config *cfg = NULL;
    jpos_diags_init(&d);
    int r = gw_config_load(path, &cfg, &d);
    /* The TLS listeners' files too, as their start would load them. */
    if (r == 0) {
        r = gw_tls_check(cfg, &d);
        if (r < 0) {
            gw_config_free(cfg);
            cfg = NULL;
        }
    }
    jpos_diags_print(&d, stderr);
    if (r == -ENOMEM) {
        fprintf(stderr, "%s: out of memory\n", path);
        jpos_diags_done(&d);
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "%s: %zu %s\n", path, d.nerrors, plural(d.nerrors, "error", "errors"));
        jpos_diags_done(&d);
        return 1;
    }
    /* The gateway raises its soft descriptor limit to the hard one: judge
     * the configuration against that. */
    size_t warnings = d.nwarnings;
    struct gw_fd_budget b;
    char msg[640];
    uint64_t limit = gw_fd_limit_target();
    if (limit && gw_fd_budget(cfg, limit, &b, msg, sizeof msg)) {
        fprintf(stderr, "%s: warning: file descriptors: %s\n", path, msg);
        warnings++;
    }
    size_t nroutes = route_table_count(cfg->routes), nfiles = route_table_files(cfg->routes);
    printf("%s: ok: %zu %s, %zu %s, %zu %s in %zu route %s", path, cfg->nlisteners,
           plural(cfg->nlisteners, "listener", "listeners"), cfg->nupstreams,
           plural(cfg->nupstreams, "upstream", "upstreams"), nroutes,
           plural(nroutes, "route", "routes"), nfiles, plural(nfiles, "file", "files"));
    size_t nwf = wf_set_count(gw__table_wf_set(cfg->routes));
    if (nwf)
        printf(", %zu %s", nwf, plural(nwf, "workflow", "workflows"));
    const struct gw_pol_set *pols = gw_pol_table_set(cfg->routes);
    size_t npol = gw_pol_set_count(pols), ncons = gw_pol_set_nconsumers(pols);
    if (npol)
        printf(", %zu %s", npol, plural(npol, "policy", "policies"));
    if (ncons)
        printf(", %zu %s", ncons, plural(ncons, "consumer", "consumers"));
    if (warnings)
        printf(" (%zu %s)", warnings, plural(warnings, "warning", "warnings"));
    printf("\n");
    gw_config_free(cfg);
    jpos_diags_done(&d);
    return 0;
}

/* Loads the configuration (refusing to start on any error, each printed as
 * FILE:LINE:COLUMN: message) and runs the gateway until SIGTERM/SIGINT. */
static int cmd_run(const char *config, int argc, char **argv)
{
    /* First: a binary upgrade's sockets and readiness pipe (upgrade.h). */
    gw__upgrade_init(argc, argv);
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct gw_config *cfg = NULL;
    int rc = gw_config_load(config, &cfg, &d);
    jpos_diags_print(&d, stderr);
    if (rc < 0) {
        /* The gateway upgrading to this one says why it keeps serving:
         * the first problems, as they were printed. */
        char why[GW__UPGRADE_MSG_MAX - 8];
        int n = snprintf(why, sizeof why, "%s: %zu %s", config, d.nerrors,
                         d.nerrors == 1 ? "error" : "errors");
        FILE *f = fmemopen(why + n, sizeof why - (size_t)n, "w");
        if (f) {
            fputs(": ", f);
            jpos_diags_print(&d, f);
            fclose(f);
        }
        gw__upgrade_report(why);
        fprintf(stderr, "tandem: %s: not started: %s\n", config,
                rc == -EINVAL ? "fix the errors above" : strerror(-rc));
        jpos_diags_done(&d);
        return 1;
    }
    jpos_diags_done(&d);
    rc = gw_run(cfg);
    gw_config_free(cfg);
    /* Not started (no-op once it was ready): the reason is on stderr. */
    gw__upgrade_report("its messages in the log say why");
    return rc;
}

/* `tandem check --print-keys`: the key tables as PATH TAB TYPE TAB DEFAULT
 * TAB RANGE TAB MEANING, the admin listener's fixed values under
 * "(admin listener)". */
static int cmd_print_keys(void)
{
    jpos_keys_print(stdout, &gw_config_keys, "");
    jpos_keys_print(stdout, &gw_admin_listener_keys, "(admin listener)");
    jpos_keys_print(stdout, &wf_file_keys, "(workflow file)");
    return 0;
}

/* `tandem schema config|routes|workflows`: config/schema/ holds their
 * output. */
static int cmd_schema(const char *which)
{
    json_t *schema = NULL;
    if (which && strcmp(which, "config") == 0)
        schema = jpos_keys_schema(&gw_config_keys, GW_CONFIG_SCHEMA_ID,
                                  "Tandem gateway configuration (tandem.json)");
    else if (which && strcmp(which, "routes") == 0)
        schema = jpos_keys_schema(&route_file_keys, GW_ROUTES_SCHEMA_ID, "Tandem route file");
    else if (which && strcmp(which, "workflows") == 0)
        schema = jpos_keys_schema(&wf_file_keys, GW_WORKFLOWS_SCHEMA_ID, "Tandem workflow file");
    else {
        fprintf(stderr, "tandem: schema needs \"config\", \"routes\" or \"workflows\"\n");
        gw_cli_usage(stderr);
        return 2;
    }
    char *text = schema ? json_dumps(schema, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(schema);
    if (!text) {
        fprintf(stderr, "tandem: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

int gw_cli_main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "schema") == 0)
        return argc == 3 ? cmd_schema(argv[2]) : cmd_schema(NULL);
    if (argc > 1 && strcmp(argv[1], "ctl") == 0)
        return gw_ctl_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "tls") == 0)
        return gw_tls_cli_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "hash") == 0)
        return gw_pol_hash_cli_main(argc - 1, argv + 1);
    const char *config = GW_CONFIG_DEFAULT_PATH;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            char tls[64];
            gw_tls_build_info(tls, sizeof tls);
            printf("tandem %s\n%s\n", TANDEM_VERSION, tls);
            return 0;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            gw_cli_usage(stdout);
            return 0;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tandem: %s needs a file name\n", a);
                gw_cli_usage(stderr);
                return 2;
            }
            config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config = a + 9;
        } else if (strncmp(a, "-c", 2) == 0) {
            config = a + 2;
        } else if (strcmp(a, "check") == 0 && !check) {
            check = true;
        } else if (strcmp(a, "--print-keys") == 0 && check) {
            return cmd_print_keys();
        } else {
            fprintf(stderr, "tandem: unknown argument \"%s\"\n", a);
            gw_cli_usage(stderr);
            return 2;
        }
    }
    if (check)
        return cmd_check(config);
    return cmd_run(config, argc, argv);
}

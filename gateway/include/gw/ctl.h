/*
 * ctl.h: `tandem ctl`, the command-line client of the admin API.
 *
 *   tandem ctl [OPTIONS] COMMAND [ARGS]
 *     ps [--sort mailbox|reductions|memory|age] [--limit N] [--name S] [--kind K]
 *     tree | system | routes | reload | rollback VERSION | upstreams
 *     kill PID [--reason R] | restart PID | health
 *     workflows [--state S] [--definition D] [--limit N] [--after ID]
 *     workflows ID | workflows retry ID | workflows resolve ID [--note TEXT]
 *     top [--once] [--sort reductions|mailbox|memory] [--kind K] [--name S]
 *   OPTIONS: -c FILE (default $TANDEM_CONFIG, else config/tandem.json),
 *            --admin HOST:PORT, --token T (default $TANDEM_ADMIN_TOKEN, else
 *            the variable named by admin.token_env), --json, --timeout MS
 *
 * It speaks HTTP/1.1 over plain blocking sockets, one request per
 * connection (Connection: close); no runtime is started. `top` also holds
 * the event stream (GET /admin/events) open and polls it with the
 * terminal (gateway/src/ctl/top.c).
 */
#ifndef GW_CTL_H
#define GW_CTL_H

/* Main thread (or any thread not in a process: it blocks on sockets).
 * argv[0] is "ctl". Prints to stdout/stderr and returns the exit code:
 * 0 success, 1 the gateway refused or could not be reached (for `health`:
 * no 200 from /healthz within 2 s), 2 usage error. */
int gw_ctl_main(int argc, char **argv);

#endif

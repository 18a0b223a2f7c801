/*
 * upgrade.h: zero-downtime binary upgrade (upgrade.c; README "Binary
 * upgrade").
 *
 * The running gateway (the old one) starts the new binary with its own
 * arguments and two environment variables:
 *
 *   TANDEM_LISTEN_FDS=NAME=FD,...   its listening sockets, inherited: each
 *                                   public listener by name (bytes other
 *                                   than letters, digits and "._:-[]" as
 *                                   %XX), the admin listener as "@admin"
 *   TANDEM_UPGRADE_READY_FD=FD      the write end of a pipe
 *   TANDEM_UPGRADE_PID=PID          the old gateway's pid
 *   TANDEM_UPGRADE_WF_OWNER=ID      the old gateway's workflow journal
 *                                   owner (only with workflows enabled)
 *
 * The new one adopts each socket whose listener it still has at the same
 * address, loads its configuration and starts its tree, then writes
 * "ready PID\n" on the pipe (or "error TEXT\n" when it cannot start) and
 * closes it. Only on "ready" does the old one stop accepting and drain.
 */
#ifndef GW_UPGRADE_H
#define GW_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "gw/config.h"

#define GW__UPGRADE_FDS_ENV "TANDEM_LISTEN_FDS"
#define GW__UPGRADE_READY_ENV "TANDEM_UPGRADE_READY_FD"
#define GW__UPGRADE_PID_ENV "TANDEM_UPGRADE_PID"
#define GW__UPGRADE_WF_OWNER_ENV "TANDEM_UPGRADE_WF_OWNER"
/* A workflow journal owner's bytes at most (the variable's value). */
#define GW__UPGRADE_OWNER_MAX 255
/* Sockets handed over at most (listeners plus the admin listener). */
#define GW__UPGRADE_MAX_FDS 64
/* A listener's name, at most (its key's bound), and TANDEM_LISTEN_FDS's
 * bytes at most: every name encoded at worst (3 bytes a byte) with its
 * descriptor. */
#define GW__UPGRADE_NAME_MAX 128
#define GW__UPGRADE_ENV_MAX (GW__UPGRADE_MAX_FDS * (3 * GW__UPGRADE_NAME_MAX + 16) + 64)
/* The bytes of the answer read from the new gateway's pipe at most. */
#define GW__UPGRADE_MSG_MAX 1024

/* Main thread, before the configuration loads: keeps the command line
 * for the next upgrade, and takes (and removes from the environment) what
 * an upgrading gateway handed this one. */
void gw__upgrade_init(int argc, char **argv);

/* Main thread, while the listeners open: the inherited socket of the
 * public listener `name` (or of the admin listener) if one was handed
 * over and is bound where `a` asks (any port when a->port is 0), else -1.
 * The caller owns what it gets. */
int gw__upgrade_take(const char *name, bool admin, const struct gw_address *a);
/* Closes the inherited sockets no listener took (their listener is gone
 * from the configuration, or moved). */
void gw__upgrade_close_unclaimed(void);

/* Tells the gateway that started this one how its start went: `why` NULL
 * for ready, else the reason it will not serve. Once; a no-op when this
 * gateway was not started by an upgrade. */
void gw__upgrade_report(const char *why);

/* Tells systemd (Type=notify, NotifyAccess=all) this gateway's `state`,
 * "READY=1" or "STOPPING=1", with MAINPID set to this process: after an
 * upgrade systemd follows the new gateway by it. Nothing without
 * NOTIFY_SOCKET. */
void gw__upgrade_notify(const char *state);

/* Main thread, on SIGUSR2 (or a request through the admin API): starts the
 * new binary and waits for its answer, at most cfg->upgrade_timeout_ms.
 * Returns true once the new gateway is ready (this one must then stop
 * accepting and drain); false, with the reason logged and kept for the
 * admin API, when this one keeps serving. */
bool gw__upgrade_run(void);

/* Process context (the admin API's request process): asks the main thread
 * for an upgrade to `binary` (NULL or "": the binary this gateway was
 * started from, looked up again) and waits for its outcome. Returns 0 with
 * *new_pid set, -EBUSY when an upgrade is under way, -EINVAL for a binary
 * path that is not absolute or too long, -ETIMEDOUT, or another negative
 * errno with the reason in why (cap bytes). */
int gw__upgrade_request(const char *binary, int *new_pid, char *why, size_t cap);

#endif

/*
 * rt.h: Tandem's process runtime, public interface.
 *
 * A process is a stackful coroutine with a mailbox, identified by a 64-bit
 * pid (slot index + generation) that is never reused while anything could
 * still hold it. Processes run on a pool of scheduler threads, one per core
 * by default; scheduling is cooperative at runtime calls with a reduction
 * budget. Processes talk only through messages and exit signals, with the
 * semantics of Erlang's processes, links and monitors.
 *
 * Conventions:
 *  - Functions that can fail return 0 or a negative errno code; out
 *    parameters are written only on success.
 *  - "Process context" means: callable only from inside a process (on a
 *    scheduler thread, on that process's stack). Such calls may yield.
 *  - "Any thread" functions never block for long and may be called from
 *    processes, scheduler-less threads and the main thread alike.
 *
 * The runtime knows nothing of HTTP.
 */
#ifndef RT_RT_H
#define RT_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t rt_pid; /* 0 is never a valid pid */
typedef uint64_t rt_ref; /* unique per runtime run; 0 is never a valid ref */
typedef uint32_t rt_atom;

#define RT_INFINITY (-1)

/* ---- atoms ----------------------------------------------------------------
 * Exit reasons and other symbolic values are interned strings. Predefined
 * atoms have fixed values; others come from rt_atom_intern. The table holds
 * at most RT_ATOM_MAX atoms (like the BEAM's atom table it is never
 * collected): do not intern strings that a peer controls. */
enum {
    RT_NORMAL = 0,
    RT_KILL,
    RT_KILLED,
    RT_SHUTDOWN,
    RT_NOPROC,
    RT_TIMEOUT,
    RT_STACK_OVERFLOW,
    RT_UNDEFINED,
    RT_CALLING_SELF,
    RT_SYSTEM_LIMIT,
    RT_ERROR,
    RT_BADARG,
    RT_MEMORY_LIMIT, /* rt_set_max_memory's cap exceeded */
    RT_TIME_LIMIT,   /* rt_set_max_time's cap reached */
    RT_ATOM_PREDEFINED_COUNT
};
#define RT_ATOM_MAX (1u << 20)

/* Any thread. Returns the atom for `name`, creating it if needed; returns
 * RT_SYSTEM_LIMIT if the table is full. */
rt_atom rt_atom_intern(const char *name);
/* Any thread. The atom's text (static storage), or "?" if unknown. */
const char *rt_atom_name(rt_atom a);
/* `shutdown` or any atom spelt "shutdown:..." (OTP's {shutdown, _}). */
bool rt_reason_is_shutdown(rt_atom reason);
/* normal, shutdown or shutdown:...: reasons that produce no crash report and
 * do not restart transient children. */
bool rt_reason_is_clean(rt_atom reason);

/* ---- lifecycle ----------------------------------------------------------- */

struct rt_config {
    unsigned schedulers;       /* 0 = one per online core */
    size_t max_processes;      /* process limit; 0 = default (2^21) */
    size_t stack_size;         /* default stack per process, bytes (0 = 64 KiB) */
    size_t guarded_stacks;     /* how many pooled stacks get a guard page (0 = default) */
    unsigned blocking_threads; /* blocking-call pool size (0 = 4) */
    unsigned watchdog_ms;      /* report a process holding a scheduler longer (0 = 500) */
    unsigned reductions;       /* budget per time slice (0 = 2000) */
};

/* Main thread. Fills `cfg` with defaults (all zero = defaults). */
void rt_config_default(struct rt_config *cfg);

/* Main thread. Starts the scheduler, timer, watchdog and blocking threads.
 * Returns -EALREADY if running, -errno on resource failure. */
int rt_start(const struct rt_config *cfg);

/* Main thread, after rt_start. Sends `kill` to every live process, waits for
 * all to exit, stops all threads and frees the runtime. Returns the number of
 * processes that had to be killed (0 when everything had exited by itself;
 * one already in its exit path, its DOWNs and EXITs sent, counts as that). */
int rt_stop(void);

/* Any non-process thread. Blocks until process `pid` has exited, or until
 * timeout_ms passes (-ETIMEDOUT). Writes the exit reason to *reason.
 * -ESRCH, after a short wait whatever the timeout (RT_INFINITY too), when
 * `pid` names no live process and its exit is not among the recent ones
 * (it never existed, or ended tens of thousands of exits ago). */
int rt_join(rt_pid pid, int64_t timeout_ms, rt_atom *reason);

/* Any non-process thread. Blocks until no process is alive or the timeout
 * passes (-ETIMEDOUT). */
int rt_wait_idle(int64_t timeout_ms);

/* ---- kinds -------------------------------------------------------------------
 * What a process is, for introspection (a process list filters by it). The
 * runtime names its own kinds; an application registers the kinds it spawns
 * by name and gives the id at spawn (rt_spawn_opts.kind) or later
 * (rt_set_kind). The runtime gives the names no meaning.
 *
 * At most RT_KIND_MAX kinds exist in a runtime run, the runtime's own
 * included: a kind is one byte of every control block, and a set of kinds
 * fits a 32-bit mask. Registered kinds last until rt_stop; a name keeps its
 * id for that long, and the text rt_kind_name returns stays valid forever. */
typedef uint8_t rt_kind;
enum {
    RT_KIND_PROCESS = 0, /* a plain process (the default) */
    RT_KIND_SERVER,      /* gen_server, gen_event manager */
    RT_KIND_SUPERVISOR,
    RT_KIND_STATEM,
    RT_KIND_TASK,
    RT_KIND_RUNTIME_COUNT /* the first id rt_kind_register hands out */
};
#define RT_KIND_MAX 32
/* Longest kind name, in bytes (without the NUL). */
#define RT_KIND_NAME_MAX 31

/* Any thread. Registers a kind called `name` (1 to RT_KIND_NAME_MAX bytes of
 * letters, digits, '_', '-' and '.') and writes its id to *out. The same name
 * gives the same id every time, the runtime's own names included. -EINVAL for
 * a bad name, -ENOSPC when RT_KIND_MAX kinds exist. */
int rt_kind_register(const char *name, rt_kind *out);
/* Any thread. The id of the kind whose name is the `len` bytes at `name` (not
 * NUL-terminated); -ENOENT if no such kind is registered. */
int rt_kind_find(const char *name, size_t len, rt_kind *out);
/* Any thread. The name of `kind`; "process" for an id not registered. */
const char *rt_kind_name(rt_kind kind);

/* ---- processes ----------------------------------------------------------- */

typedef void (*rt_entry)(void *arg);

/* Scheduling priorities, as OTP's process_flag(priority, P) and
 * spawn_opt {priority, P}. Each scheduler keeps one run queue per priority:
 *  - high: served before normal and low. Unlike OTP, which lets runnable
 *    high-priority processes hold a scheduler for as long as they like,
 *    a normal or low process that waits runs after at most
 *    RT_PRIORITY_HIGH_STREAK high-priority runs in a row, so a busy
 *    high-priority process slows the others down but cannot stop them.
 *  - normal: the default, FIFO among themselves.
 *  - low: as OTP's, shares the scheduler with normal but is picked less
 *    often: while both wait, one low process runs after every
 *    RT_PRIORITY_LOW_EVERY normal ones; when no normal one waits, low ones
 *    run at once.
 * A process gets normal at spawn unless rt_spawn_opts.priority says
 * otherwise (it is not inherited, as in OTP). For processes that gate
 * others' progress, such as an acceptor and the supervisor that starts its
 * connections: each runs briefly, and while it waits a whole queue of busy
 * processes, every client behind it waits too. OTP's `max` is not offered:
 * it is for the runtime's own processes. */
enum rt_priority {
    RT_PRIORITY_NORMAL = 0,
    RT_PRIORITY_HIGH,
    RT_PRIORITY_LOW,
    RT_PRIORITY_COUNT /* not a priority */
};
#define RT_PRIORITY_HIGH_STREAK 16
#define RT_PRIORITY_LOW_EVERY 8

struct rt_spawn_opts {
    bool link;                /* link to the caller atomically (spawn_link) */
    bool monitor;             /* monitor from the caller; ref in *monitor_ref */
    rt_ref *monitor_ref;      /* out, with .monitor */
    const char *name;         /* register under this name; -EEXIST if taken */
    size_t stack_size;        /* 0 = runtime default; see below */
    const char *initial_call; /* label for introspection, e.g. "gw_conn:loop" */
    rt_kind kind;             /* a registered kind, else -EINVAL; 0 = RT_KIND_PROCESS */
    /* Releases `arg` when the process is reaped without ever running fn
     * (no stack could be had for it: it exits with system_limit before its
     * first instruction). Called once, on the scheduler's stack, with the
     * process still current: it must not block. NULL: nothing to release.
     * Not called when rt_spawn fails (the caller still owns arg) nor once
     * fn has started (fn owns arg then). */
    void (*arg_free)(void *arg);
    enum rt_priority priority; /* 0 = RT_PRIORITY_NORMAL; another value: -EINVAL */
    /* Bytes of an arena (0 = none, at most RT_ARENA_MAX, else -EINVAL):
     * one block allocated at spawn that rt_alloc, rt_calloc, rt_realloc and
     * rt_defer take this process's memory from while it lasts, before they
     * ask the system allocator. A block freed from it (rt_free, a cleanup
     * run) is not reused before the process exits, when the arena goes in
     * one free. For a short-lived process that allocates on a hot path (a
     * request): a dozen small blocks then cost one malloc, not a dozen.
     * The arena's unused bytes count in no memory figure, nor against the
     * memory cap (rt_set_max_memory), which counts the blocks as without. */
    size_t arena;
};

/* Largest rt_spawn_opts.arena. */
#define RT_ARENA_MAX ((size_t)1 << 20)

/* Largest rt_spawn_opts.stack_size. A stack costs only the pages a process
 * touches (they stay mapped until it exits or hibernates). */
#define RT_STACK_SIZE_MAX ((size_t)64 << 20)

/* Any thread (link/monitor only from process context; from elsewhere they
 * return -EPERM). Starts a process running fn(arg). On success writes the
 * pid to *out (may be NULL). On failure nothing was started and `arg` is
 * still the caller's: -EAGAIN at the process limit, -EEXIST if the name is
 * taken, -EINVAL for a bad name, a kind not registered or a stack_size over
 * RT_STACK_SIZE_MAX, -ENOMEM.
 *
 * Stacks and overflow. A process gets rt_config.stack_size bytes of stack
 * unless opts->stack_size asks for another size (rounded up to whole pages,
 * at least four): give one to processes that do deep work, such as parsing
 * nested input, after bounding the depth. Such a stack is mapped for the
 * process alone and always has a guard page. What an overflow does:
 *  - at a runtime call that may switch the process out (sends, receives,
 *    I/O, spawn, rt_reductions, rt_yield) with less than a small reserve
 *    (8 KiB, at most a quarter of the stack) left: the process alone ends
 *    with reason stack_overflow, as if killed there;
 *  - anywhere else (the guard page is hit in the process's own code, in the
 *    C library, or in the runtime): the program writes a fatal report
 *    naming the process (rt_set_fatal_handler; by default one text line
 *    on stderr, "fatal: stack_overflow pid=...") and aborts. The frames there may hold a
 *    lock (malloc's, a stream's, the runtime's) that abandoning them would
 *    never release, deadlocking a scheduler, so they cannot be unwound. A
 *    stack without a guard page (beyond rt_config.guarded_stacks) is
 *    checked by a canary when the process switches out: also fatal.
 * A process must not hold a lock across a runtime call that may switch it
 * out: another process on the same thread could deadlock on it, and the
 * runtime ends processes there (exit signals, a stack running out). */
int rt_spawn(rt_entry fn, void *arg, const struct rt_spawn_opts *opts, rt_pid *out);

/* Process context. The caller's pid. Returns 0 outside a process. */
rt_pid rt_self(void);
/* Any thread. True on a scheduler thread, where a call that blocks the
 * thread holds up every process queued on it; false on the blocking pool,
 * the main thread and any other thread. For checks that blocking work
 * (file I/O, SQLite) stays off the schedulers. */
bool rt_on_scheduler(void);
/* Process context. The pid of the process that spawned the caller (0 if it
 * was spawned from outside any process). */
rt_pid rt_parent(void);

/* Process context. Terminates the caller with `reason`: the stack is
 * abandoned, deferred cleanups run (LIFO), memory from rt_alloc is freed,
 * the name is unregistered, then links and monitors are signalled. */
_Noreturn void rt_exit(rt_atom reason);

/* Any thread. Sends an exit signal (erlang:exit/2): `kill` cannot be
 * trapped and kills with reason `killed`; `normal` to another process that
 * does not trap exits does nothing; to self, `normal` exits normally.
 * -ESRCH if there is no such process. */
int rt_exit_signal(rt_pid to, rt_atom reason);

/* Process context. Turns exit signals into RT_MSG_EXIT messages (trap_exit).
 * Returns the previous setting. */
bool rt_trap_exit(bool on);

/* Process context. Links the caller and `pid` (bidirectional, at most one per
 * pair, idempotent). If `pid` is not alive: -ESRCH, and, like Erlang's link/1
 * of a dead process, nothing else happens. */
int rt_link(rt_pid pid);
/* Process context. Removes the link if any (always 0). */
int rt_unlink(rt_pid pid);

/* Process context. Monitors `pid`: exactly one RT_MSG_DOWN with this ref is
 * delivered when it exits, with reason `noproc` at once if it is not alive. */
rt_ref rt_monitor(rt_pid pid);
/* Process context. Monitors the process registered under `name` now
 * (erlang:monitor(process, RegName)): like rt_monitor of that pid, except
 * that the DOWN carries the name as its payload (NUL-terminated, `size`
 * counts the NUL), with `from` the pid the name had at the call. A name not
 * registered gives a DOWN with reason `noproc` at once (`from` 0). The
 * monitor follows that process, not the name: if it unregisters and another
 * takes the name, the DOWN still comes from the first one's exit. Returns
 * the monitor ref (rt_demonitor removes it), or 0 on a bad name (empty or
 * ≥ 64 bytes) or out of memory. */
rt_ref rt_monitor_name(const char *name);
/* Process context. Removes the monitor; with `flush`, also removes a DOWN for
 * it already in the mailbox. Returns 0, or -ENOENT if unknown/already fired. */
int rt_demonitor(rt_ref ref, bool flush);

/* Any thread. A new unique reference. */
rt_ref rt_make_ref(void);

/* Any thread. Is `pid` alive right now? (Racy by nature; for tests and
 * diagnostics.) */
bool rt_is_alive(rt_pid pid);

/* Process context. Per-process user pointer (behaviours keep their state
 * here). Not freed by the runtime. */
void rt_set_user(void *p);
void *rt_get_user(void);
/* Process context. A second per-process pointer, for the library layered
 * on the runtime rather than the application: proc_lib marks the
 * processes it starts with it (OTP's '$ancestors' in the process
 * dictionary), which gen_server's enter_loop checks. NULL at spawn; not
 * freed by the runtime. */
void rt_set_lib_data(void *p);
void *rt_get_lib_data(void);

/* Process context. Introspection labels of the caller: behaviour state name
 * (≤ 31 bytes) and a free-form detail line (≤ 127 bytes); copied. */
void rt_set_state_name(const char *state);
void rt_set_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Process context. The same from `len` bytes as they are (cut at 127), with
 * no formatting: for a line set on every request. */
void rt_set_detail_text(const char *text, size_t len);
/* Process context. Sets the caller's kind: 0, -EINVAL if `kind` is not
 * registered, -EPERM outside a process. */
int rt_set_kind(rt_kind kind);
/* Process context. Sets the caller's scheduling priority (enum
 * rt_priority, process_flag(priority, P)) and returns the one it had;
 * -EINVAL for another value, -EPERM outside a process. Takes effect the
 * next time the caller is queued to run (after it yields, parks or is
 * woken); it never blocks. */
int rt_set_priority(enum rt_priority prio);

/* Process context. Gives up the scheduler; counts as a reduction slice end. */
void rt_yield(void);
/* Process context. Charges `n` reductions; yields if the budget is spent. */
void rt_reductions(unsigned n);

/* Process context. Drops the stack and waits for a message; when one is in
 * the mailbox, fn(arg) runs on a fresh stack (erlang:hibernate/3). */
_Noreturn void rt_hibernate(rt_entry fn, void *arg);

/* Process context. Like rt_hibernate, but also wakes when `fd` may be ready
 * for `events` (RT_POLL_IN/OUT) or after timeout_ms (RT_INFINITY: never):
 * fn(arg) then runs on a fresh stack and finds out itself which it was,
 * by trying the operation (wake-ups may be spurious). The wait is
 * edge-triggered: call it once an operation on fd for `events` returned
 * EAGAIN; readiness that was there before that (bytes left unread) does
 * not wake it. An idle connection waiting this way costs no stack. While hibernating it is the fd's
 * one waiter (see I/O below); if it cannot be, fn runs at once and rt_hibernate_poll_error says
 * why. */
_Noreturn void rt_hibernate_poll(int fd, unsigned events, int64_t timeout_ms, rt_entry fn,
                                 void *arg);
/* Process context, in the continuation of rt_hibernate_poll: 0 if `fd` was
 * waited on, else the negative errno why not (fn then ran at once): -EBUSY
 * when another process waits on that fd number (one waiter per descriptor,
 * see I/O below), an epoll_ctl error such as -EBADF or -EPERM. */
int rt_hibernate_poll_error(void);

/* ---- per-process memory and cleanup ----------------------------------------
 * Process context. Memory from rt_alloc belongs to the calling process and is
 * freed when it exits, however it exits. */
void *rt_alloc(size_t size);
void *rt_calloc(size_t n, size_t size);
void *rt_realloc(void *p, size_t size);
char *rt_strdup(const char *s);
void rt_free(void *p);

/* ---- per-process caps (Erlang's max_heap_size) -----------------------------
 * Process context, each for the calling process only; 0 removes the cap.
 *
 * rt_set_max_memory caps what the process holds through rt_alloc,
 * rt_calloc and rt_realloc (alloc_bytes in rt_proc_info; its stack, and
 * messages it has not received, are not counted). An allocation that would
 * take it past `bytes` returns NULL and sends the process an exit signal
 * with reason `memory_limit` that it cannot trap; it exits at its next
 * runtime call that handles signals (a receive, a wait for I/O or a timer,
 * the yield at the end of its reductions), not inside rt_alloc, whose
 * caller may hold a lock or be half-way through an update of shared state.
 * Whatever it exits of in between (a caller giving up on the NULL), its
 * exit reason is `memory_limit`; code that would act on the failure where
 * others see it (answer a client, blame a peer) calls rt_exit_if_over_cap
 * first. The check costs a load and a compare per allocation.
 *
 * rt_set_max_time arms a timer that sends the process the same kind of
 * signal with reason `time_limit` `ms` milliseconds from now (a second call
 * replaces the first; the timer is cancelled when the process exits). A
 * process waiting in the runtime is woken by it and exits; one running
 * exits at its next runtime call that handles signals, and one that spins
 * in a loop without any runtime call cannot be stopped (the scheduler only
 * switches processes at runtime calls): the watchdog reports it. 0 or
 * -ENOMEM.
 *
 * A process ended by its cap writes no crash report (its links and
 * monitors see the reason): what a cap bounds is often driven by a peer,
 * who could otherwise fill the log, and the application that set the cap
 * records it its own way. */
void rt_set_max_memory(size_t bytes);
int rt_set_max_time(uint64_t ms);
/* Process context. Exits the calling process here, with the cap's reason,
 * if it has gone over its memory cap; returns at once otherwise (one load). */
void rt_exit_if_over_cap(void);

/* Process context. Runs fn(arg) when the process exits (LIFO), unless
 * cancelled first. Returns a handle (never 0) or 0 when out of memory. */
uint64_t rt_defer(void (*fn)(void *), void *arg);
/* Process context. Cancels a deferred cleanup; runs it now if `run`. */
void rt_undefer(uint64_t handle, bool run);

/* ---- messages -------------------------------------------------------------
 * A message is one allocation: this header then `size` payload bytes. It
 * belongs to the receiver from the moment rt_send is called, even when the
 * send fails (then the runtime frees it). Nothing may point into another
 * process's memory: copy what you send.
 *
 * A message a process has received (any rt_receive*) is held by that
 * process, as rt_alloc memory is: it leaves its keeping when the process
 * frees it (rt_msg_free), sends it on (rt_send, rt_send_alias,
 * rt_send_after) or detaches it (rt_msg_detach); whatever it still holds
 * when it exits, however it exits (killed between a receive and the free,
 * say), the runtime frees as rt_msg_free does, without running the dtor
 * (the receiver may already have taken what the payload owned). Only the
 * holder may free a held message. */
struct rt_msg {
    struct rt_msg *next; /* runtime-owned */
    struct rt_msg *prev; /* runtime-owned */
    void *holder;        /* runtime-owned: the process holding it, or NULL */
    uint32_t seq;        /* runtime-owned: arrival order */
    uint32_t flags;      /* runtime-owned */
    rt_pid from;         /* sender (set by rt_send) */
    rt_ref ref;          /* correlation reference, 0 if none */
    uint64_t u64;        /* small inline value; the reason for EXIT/DOWN */
    uint32_t type;       /* user tag, or one of RT_MSG_* */
    uint32_t size;       /* payload bytes */
    /* Called with the message when the runtime frees it without delivering
     * it (dead receiver, cancelled timer, receiver exited with it queued):
     * releases what the payload owns (an fd, a pointer). May be NULL. */
    void (*dtor)(struct rt_msg *m);
    _Alignas(16) unsigned char data[];
};

/* System message types (user types must be below RT_MSG_SYSTEM). */
#define RT_MSG_SYSTEM 0xffff0000u
#define RT_MSG_EXIT (RT_MSG_SYSTEM + 1) /* from: linked pid; u64: reason */
#define RT_MSG_DOWN (RT_MSG_SYSTEM + 2) /* from: pid; ref: monitor; u64: reason */
/* A DOWN's payload: the name a monitor by name was made on (see
 * rt_monitor_name), or NULL for a monitor by pid. */
const char *rt_down_name(const struct rt_msg *down);

/* Any thread. A new message with `size` zeroed payload bytes, or NULL. */
struct rt_msg *rt_msg_new(uint32_t type, size_t size);
/* Any thread. A message with a copy of `size` bytes at `data`. */
struct rt_msg *rt_msg_copy(uint32_t type, const void *data, size_t size);
/* Any thread. Frees a message the caller owns (runs no dtor). NULL-safe.
 * A held message (one received) only from its holder's process. */
void rt_msg_free(struct rt_msg *m);
/* Process context. Takes a message the caller received out of its keeping:
 * the runtime no longer frees it when the caller exits, and it may be handed
 * by pointer to another process or thread (inside another message's
 * payload, say), which then owns it. Calls that take a message (rt_send and
 * the like) do this themselves. NULL-safe; a message not held is left as
 * it is. */
void rt_msg_detach(struct rt_msg *m);

/* Any thread. Sends `m` to `to`; never blocks. Ownership passes at the call.
 * Messages from one sender to one receiver arrive in the order sent, and in
 * order with that sender's exit, link and monitor signals.
 * -ESRCH: no such process (m freed, dtor run). */
int rt_send(rt_pid to, struct rt_msg *m);
/* Any thread. Send to a registered name; -ESRCH synchronously if unknown. */
int rt_send_name(const char *name, struct rt_msg *m);

/* Any thread. Sends `m` with m->ref = alias; it is dropped on arrival unless
 * the receiver still has `alias` active (OTP 24 process aliases: no late
 * replies). */
int rt_send_alias(rt_pid to, rt_ref alias, struct rt_msg *m);
/* Process context. Activates a new alias for the caller (returns its ref, or
 * 0 if the caller already has RT_MAX_ALIASES active, or out of memory).
 * Every call and every outstanding asynchronous request
 * (rt_gen_server_send_request) holds one, so the bound is what one process
 * may have in flight; checking an arriving aliased message costs
 * O(log active). */
#define RT_MAX_ALIASES 4096
rt_ref rt_alias(void);
/* Process context. Deactivates; replies already in the mailbox stay. */
void rt_unalias(rt_ref alias);

/* Process context. Receive: the next message in arrival order, or NULL if
 * none arrived within timeout_ms (0 polls, RT_INFINITY waits forever). */
struct rt_msg *rt_receive(int64_t timeout_ms);

/* Process context. Selective receive: the first message in arrival order for
 * which match(m, ctx) is true; others stay queued in order. */
typedef bool (*rt_match_fn)(const struct rt_msg *m, void *ctx);
struct rt_msg *rt_receive_match(rt_match_fn match, void *ctx, int64_t timeout_ms);

/* Process context. The first message whose ref is `ref` (a reply, or the DOWN
 * of the monitor with that ref). When `ref` is the newest ref the caller made
 * (rt_make_ref, rt_monitor, rt_alias), only messages that arrived after it
 * are scanned, so a call's reply is found without scanning a long mailbox. */
struct rt_msg *rt_receive_ref(rt_ref ref, int64_t timeout_ms);

/* Process context. A position in the caller's mailbox (OTP's receive
 * marker, made explicit): what is already queued is before it, whatever
 * arrives later is after it. Plain data; only meaningful to the process
 * that made it. */
typedef uint64_t rt_mark;
rt_mark rt_receive_mark(void);

/* Process context. rt_receive_match over only the messages that arrived
 * after `mark`, so its cost does not depend on what was queued before: for
 * a reply that cannot arrive before its request was sent (take the mark
 * before sending). Messages before the mark stay queued, untouched. A mark
 * of 0 scans the whole mailbox. */
struct rt_msg *rt_receive_match_since(rt_mark mark, rt_match_fn match, void *ctx,
                                      int64_t timeout_ms);

/* Process context. Number of messages waiting for the caller. */
size_t rt_mailbox_len(void);

/* ---- registry -------------------------------------------------------------- */

/* Any thread. -EEXIST if the name is taken, -EBUSY if the pid has a name,
 * -ESRCH if pid is not alive, -EINVAL for an empty or too long name (≥ 64). */
int rt_register(const char *name, rt_pid pid);
/* Any thread. -ENOENT if not registered. */
int rt_unregister(const char *name);
/* Any thread. The pid registered under name, or 0. */
rt_pid rt_whereis(const char *name);

/* ---- timers ---------------------------------------------------------------- */

/* Any thread. Monotonic clock. */
uint64_t rt_now_ms(void);
uint64_t rt_now_ns(void);

/* Any thread. Delivers `m` to `to` after `ms` milliseconds (its ref field is
 * left as the caller set it). The runtime owns `m`: it is freed if the timer
 * is cancelled or the target is dead when it fires. Writes a timer ref to
 * *tref (may be NULL). */
int rt_send_after(rt_pid to, uint64_t ms, struct rt_msg *m, rt_ref *tref);
/* Any thread. 0 if the timer was cancelled before it fired, -ENOENT if it
 * already fired or never existed. */
int rt_cancel_timer(rt_ref tref);

/* Process context. Sleeps without holding a scheduler. Messages stay
 * queued; exit signals are handled. */
void rt_sleep(uint64_t ms);

/* ---- I/O --------------------------------------------------------------------
 * Process context. File descriptors are put in non-blocking mode; a call that
 * would block parks the process on its scheduler's epoll set until the fd is
 * ready or the timeout passes (-ETIMEDOUT). A parked process costs no CPU.
 * Errors are -errno.
 *
 * One waiter per descriptor: at most one process at a time may be parked on
 * a given fd number, whatever scheduler each runs on. A process whose call
 * would park on an fd number another process is parked on gets -EBUSY from
 * that call (rt_read, rt_write, rt_writev, rt_accept, rt_connect, rt_poll;
 * rt_hibernate_poll_error in the continuation of rt_hibernate_poll), at
 * once, and the waiter it met is left as it was; a call that does not need
 * to park (the fd is ready) succeeds as usual. The fd is the waiter's until
 * its wait ends: woken, timed out, woken by a message (RT_POLL_MSG), or the
 * process ends while parked, however it ends. rt_close of the number, and
 * the same number coming back from rt_accept, also end it. Processes that
 * wait on the same socket at once (an acceptor pool; the two directions of
 * a tunnel) each use their own descriptor, from dup(): each number is
 * waited on, and woken, on its own.
 *
 * A descriptor is registered with an epoll set the first time a process
 * parks on it, and stays registered until rt_close, or until
 * its number comes back from rt_accept or rt_connect or goes through
 * rt_fd_nonblock: a number closed with close(2) and opened anew must go
 * through one of those before rt_read, rt_write(v), rt_accept or
 * rt_hibernate_poll waits on it. rt_poll checks the registration on each
 * wait, so descriptors a library opens and closes itself need nothing. */
int rt_fd_nonblock(int fd);
ssize_t rt_read(int fd, void *buf, size_t len, int64_t timeout_ms);
/* Writes all `len` bytes or fails. */
ssize_t rt_write(int fd, const void *buf, size_t len, int64_t timeout_ms);
ssize_t rt_writev(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ms);
/* Returns a new non-blocking, close-on-exec fd. */
int rt_accept(int lfd, struct sockaddr *addr, socklen_t *alen, int64_t timeout_ms);
int rt_connect(int fd, const struct sockaddr *addr, socklen_t alen, int64_t timeout_ms);

#define RT_POLL_IN 0x1u
#define RT_POLL_OUT 0x4u
#define RT_POLL_MSG 0x100u /* also wake when a message arrives */
/* Waits until fd is ready for `events` (RT_POLL_IN/OUT), or, with
 * RT_POLL_MSG, a message is in the mailbox. Returns the ready mask
 * (RT_POLL_MSG when woken by a message), or -ETIMEDOUT. */
int rt_poll(int fd, unsigned events, int64_t timeout_ms);
/* Closes the fd, waking nothing (the caller must be its only user). */
int rt_close(int fd);

/* Process context. Runs fn(arg) on the blocking-thread pool while the caller
 * is parked; writes fn's result to *result. For calls that cannot be made
 * non-blocking (fsync, getaddrinfo). */
int rt_blocking(intptr_t (*fn)(void *arg), void *arg, intptr_t *result);

/* ---- introspection ---------------------------------------------------------- */

enum rt_status {
    RT_STATUS_RUNNABLE = 0,
    RT_STATUS_RUNNING,
    RT_STATUS_WAITING,
    RT_STATUS_HIBERNATING,
    RT_STATUS_EXITING,
};
const char *rt_status_name(enum rt_status s);

struct rt_proc_info {
    rt_pid pid;
    rt_pid parent;
    char name[64];
    char initial_call[64];
    char state[32];
    char detail[128];
    rt_kind kind;
    enum rt_status status;
    size_t mailbox_len;
    uint64_t reductions;
    size_t memory; /* control block + stack in use + rt_alloc'd + queued messages */
    uint32_t links;
    uint32_t monitors;  /* monitors this process holds */
    uint32_t monitored; /* monitors held on this process */
    /* rt_now_ms() at the spawn; for a spawn by a process, the time its
     * spawner was last scheduled (a spawn reads no clock): earlier by what
     * the spawner ran since, one time slice at most. */
    uint64_t started_ms;
    bool trap_exit;
};

/* Any thread. Information on one process; -ESRCH if not alive. */
int rt_proc_info(rt_pid pid, struct rt_proc_info *out);
/* Any thread. Links of a process: writes up to `max` pids, returns the total
 * count (which may exceed max), or -ESRCH. */
int rt_proc_links(rt_pid pid, rt_pid *out, size_t max);

/* Any thread. Calls fn for every live process (each described consistently;
 * processes spawned or exiting during the walk may or may not be seen).
 * Stops early, returning fn's value, when fn returns non-zero. */
typedef int (*rt_proc_visit_fn)(const struct rt_proc_info *info, void *ctx);
int rt_processes_foreach(rt_proc_visit_fn fn, void *ctx);

#define RT_MAX_SCHEDULERS 64
struct rt_sched_info {
    double utilisation; /* busy fraction over the last second, 0..1 */
    size_t run_queue;
    uint64_t switches;
    uint64_t steals;
};
struct rt_system_info {
    unsigned schedulers;
    struct rt_sched_info sched[RT_MAX_SCHEDULERS];
    size_t process_count;
    size_t process_limit;
    uint64_t spawned;
    uint64_t exited;
    uint64_t messages_live; /* allocated and not yet freed */
    size_t memory_rss;      /* resident set, bytes */
    size_t memory_procs;    /* runtime-accounted process memory, bytes */
    size_t stacks_in_use;
    size_t stacks_pooled;
    uint64_t uptime_ms;
};
/* Any thread. */
int rt_system_info(struct rt_system_info *out);

/* ---- logging ---------------------------------------------------------------- */

enum rt_log_level { RT_LOG_DEBUG, RT_LOG_INFO, RT_LOG_WARNING, RT_LOG_ERROR };
/* "debug", "info", "warning" or "error": a static string, any thread. */
const char *rt_log_level_name(enum rt_log_level level);

/* A crash report: an abnormal exit (reason not normal/shutdown/shutdown:*). */
struct rt_crash_report {
    rt_pid pid;
    const char *name;         /* registered name or "" */
    const char *initial_call; /* or "" */
    rt_atom reason;
    uint32_t last_msg_type; /* type of the last message received, 0 if none */
    const char *state;      /* what rt_set_crash_state left (a behaviour's
                               format_status), or "" */
};

/* Process context. Text the caller's crash report carries as `state` if it
 * exits abnormally, as OTP's gen_server error report carries the server's
 * state: the behaviours set it from format_status just before they
 * terminate, so that a callback can keep secrets out of the logs. Copied
 * into the process's own memory (freed when it exits), at most
 * RT_CRASH_STATE_MAX - 1 bytes; NULL or "" clears it. 0 or -ENOMEM. */
#define RT_CRASH_STATE_MAX 512
int rt_set_crash_state(const char *text);

/* Any thread. Where runtime reports go. The handler runs on whatever thread
 * reports (it must not block long); NULL restores the default, which writes
 * one plain text line to stderr: "<time> <level>: <text>", the time RFC 3339
 * UTC to the ms ("2024-05-01T12:00:00.123Z"), control bytes and DEL as \xNN
 * and '\' doubled; a crash report's text is "crash pid=N name=... initial_call=...
 * reason=... last_message_type=N state=...". An application that wants
 * another format (JSON lines) installs its own handlers. */
typedef void (*rt_log_fn)(enum rt_log_level level, const char *msg, void *ctx);
typedef void (*rt_crash_fn)(const struct rt_crash_report *report, void *ctx);
void rt_set_log_handler(rt_log_fn fn, void *ctx);
void rt_set_crash_handler(rt_crash_fn fn, void *ctx);

/* A supervisor's report (OTP's supervisor_report), given structurally
 * besides the log line the supervisor writes for the same event. Strings
 * are NUL-terminated and valid during the call only. `event` is one of:
 *  - "child_terminated": a child exited with a reason other than normal or
 *    shutdown (pid, reason);
 *  - "child_restarted": a child was started again after an exit (pid: the
 *    one it had, 0 when it was stopped by its supervisor's strategy rather
 *    than exiting itself; new_pid; reason: the exit that caused the
 *    restart, RT_NORMAL for a retry or a sibling restarted by the strategy);
 *  - "start_error": starting a child failed (pid: the one it had, or 0;
 *    reason);
 *  - "shutdown_error": a child told to stop ended with an unexpected reason
 *    (pid, reason);
 *  - "reached_max_restart_intensity": too many restarts within the period;
 *    the supervisor stops its children and exits (pid: the child whose exit
 *    tipped it, reason: that exit's).
 * Other fields are 0 when they do not apply. */
struct rt_supervisor_report {
    rt_pid supervisor;
    const char *supervisor_name; /* registered name, or NULL */
    const char *event;
    const char *child; /* the child's id */
    rt_pid pid;
    rt_pid new_pid;
    rt_atom reason;
};
typedef void (*rt_supervisor_report_fn)(const struct rt_supervisor_report *report, void *ctx);
/* Any thread. Where supervisor reports go: the handler runs in the
 * supervisor's process, on its scheduler thread, and must not block (a
 * supervisor restarts children only after it returns). NULL (the default)
 * gives them to nobody; the log lines are written either way. */
void rt_set_supervisor_report_handler(rt_supervisor_report_fn fn, void *ctx);
void rt_log(enum rt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What the runtime says just before it aborts the program: a process ran
 * into its guard page between runtime calls (rt_spawn, "Stacks and
 * overflow"). The strings are NUL-terminated and valid during the call. */
struct rt_fatal_report {
    const char *event; /* "stack_overflow" */
    rt_pid pid;
    const char *name;         /* registered name, or "" (also when it could not be read) */
    const char *initial_call; /* or "" */
    size_t stack_bytes;
    uintptr_t fault_address;
    uintptr_t pc;    /* 0 where the platform's context is not read */
    const char *msg; /* why the program stops, one sentence */
};
/* Any thread. Where the fatal report goes. The handler runs in a signal
 * handler, on a scheduler's alternate stack (64 KiB), while the faulting
 * code may hold malloc's, stdio's or any other lock: it must be
 * async-signal-safe (no allocation, no stdio, no locks; write(2) is fine)
 * and return, after which the program aborts. NULL restores the default,
 * one text line on stderr: "fatal: stack_overflow pid=N name=...
 * initial_call=... stack_bytes=N fault_address=0x... pc=0x...: <msg>",
 * escaped as the default report lines are. An application whose stderr is
 * JSON lines installs a handler that writes one. */
typedef void (*rt_fatal_fn)(const struct rt_fatal_report *report, void *ctx);
void rt_set_fatal_handler(rt_fatal_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif

/*
 * account.c: one gen_server per account and the supervisor above them.
 *
 * An account's process is registered as "acct:<id>" and started on demand
 * under the simple_one_for_one supervisor "accounts", with the id as the
 * extra start argument; its init loads the row from the database. It
 * holds the balance and handles the account's requests one at a time, so
 * a change is decided against the balance no other request can move
 * meanwhile, and it answers only after the store has committed the change
 * (the store runs on the blocking pool: the process parks, the scheduler
 * goes on). A process started for an id that has no account answers what
 * it was asked (404, or the create) and, if there is still no account,
 * stops normally; children are transient, so that is not restarted,
 * while a crash is, and the restart reloads the row.
 *
 * Requests carry copies of everything (the op and its fingerprint): no
 * pointer crosses from the connection's process into the account's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "rt/gen_server.h"
#include "rt/supervisor.h"

enum { REQ_APPLY = 1, REQ_BALANCE };

/* How long a caller waits for an account (its commit included). */
#define ACCOUNT_CALL_MS 30000
/* An idle account process drops its stack after this long. */
#define ACCOUNT_HIBERNATE_MS 1000

struct account {
    char id[LEDGER_ID_MAX + 1];
    bool exists;
    int64_t balance;
};

/* The reply to REQ_APPLY and REQ_BALANCE; an answer's body follows. */
struct rep {
    int rc;
    int status;
    bool applied, replayed, exists;
    int64_t balance;
    size_t body_len;
    char body[];
};

struct load_job {
    struct ledger_job base;
    char id[LEDGER_ID_MAX + 1];
    bool exists;
    int64_t balance;
};

static int load_fn(struct ledger_job *j)
{
    struct load_job *a = (struct load_job *)j;
    return ledger_store_load(ledger_app.store, a->id, &a->exists, &a->balance);
}

static void load_free(struct ledger_job *j)
{
    free(j);
}

/* The op and its fingerprint are copied in: the request's message goes
 * with the account's process if it is killed while the store works. */
struct apply_job {
    struct ledger_job base;
    struct ledger_op op;
    struct ledger_answer ans;
    char fingerprint[];
};

static int apply_fn(struct ledger_job *j)
{
    struct apply_job *a = (struct apply_job *)j;
    return ledger_store_apply(ledger_app.store, &a->op, &a->ans);
}

static void apply_free(struct ledger_job *j)
{
    free(((struct apply_job *)j)->ans.body);
    free(j);
}

static void account_init(void *arg, struct rt_gs_result *res)
{
    struct account *a = rt_calloc(1, sizeof *a);
    struct load_job *lj = calloc(1, sizeof *lj);
    if (!a || !lj) {
        free(lj);
        rt_gs_stop(res, RT_SYSTEM_LIMIT);
        return;
    }
    snprintf(a->id, sizeof a->id, "%s", (const char *)arg);
    lj->base = (struct ledger_job){.fn = load_fn, .free_fn = load_free};
    memcpy(lj->id, a->id, sizeof lj->id);
    int rc = ledger_blocking(&lj->base);
    a->exists = lj->exists;
    a->balance = lj->balance;
    ledger_job_put(&lj->base);
    if (rc < 0) {
        rt_gs_stop(res, rt_atom_intern("storage_error"));
        return;
    }
    rt_set_detail("account %s", a->id);
    res->state = a;
}

static struct rt_msg *rep_new(int rc, const struct account *a, const struct ledger_answer *ans)
{
    size_t body_len = ans ? ans->body_len : 0;
    struct rt_msg *m = rt_msg_new(0, sizeof(struct rep) + body_len);
    if (!m)
        return NULL;
    struct rep *p = (struct rep *)m->data;
    p->rc = rc;
    p->exists = a->exists;
    p->balance = a->balance;
    if (ans) {
        p->status = ans->status;
        p->applied = ans->applied;
        p->replayed = ans->replayed;
        p->body_len = body_len;
        if (body_len)
            memcpy(p->body, ans->body, body_len);
    }
    return m;
}

static void account_call(struct rt_msg *m, const struct rt_gs_from *from, void *state,
                         struct rt_gs_result *res)
{
    struct account *a = state;
    struct rt_msg *reply = NULL;
    rt_atom stop = 0;
    if (m->type == REQ_APPLY && m->size >= sizeof(struct ledger_op)) {
        size_t fp_len = m->size - sizeof(struct ledger_op);
        struct apply_job *aj = calloc(1, sizeof *aj + fp_len);
        if (!aj) {
            rt_gs_stop(res, RT_SYSTEM_LIMIT);
            return;
        }
        aj->base = (struct ledger_job){.fn = apply_fn, .free_fn = apply_free};
        memcpy(&aj->op, m->data, sizeof aj->op);
        memcpy(aj->fingerprint, (const char *)m->data + sizeof aj->op, fp_len);
        aj->op.fingerprint = aj->fingerprint;
        aj->op.fingerprint_len = fp_len;
        int rc = ledger_blocking(&aj->base);
        if (rc == 0) {
            a->exists = aj->ans.exists;
            a->balance = aj->ans.balance;
            reply = rep_new(0, a, &aj->ans);
        } else {
            /* The transaction was rolled back; start again from the
             * database rather than trust what is in memory. */
            reply = rep_new(rc, a, NULL);
            stop = rt_atom_intern("storage_error");
        }
        ledger_job_put(&aj->base);
    } else if (m->type == REQ_BALANCE) {
        reply = rep_new(a->exists ? 0 : -ENOENT, a, NULL);
    } else {
        reply = rep_new(-EINVAL, a, NULL);
    }
    if (!reply) {
        rt_gs_stop(res, RT_SYSTEM_LIMIT);
        return;
    }
    /* No account (still): stop, normally unless storage failed. */
    if (stop || !a->exists)
        rt_gs_stop_reply(res, stop, reply);
    else
        rt_gs_reply(res, reply);
}

static size_t account_format(const void *state, char *buf, size_t len)
{
    const struct account *a = state;
    return (size_t)snprintf(buf, len, "account %s exists=%d balance=%lld", a->id, a->exists,
                            (long long)a->balance);
}

static const struct rt_gen_server_ops account_ops = {
    .name = "ledger_account",
    .init = account_init,
    .handle_call = account_call,
    .format_status = account_format,
};

/* ---- supervision ------------------------------------------------------------ */

static void reg_name(char *buf, size_t len, const char *id)
{
    snprintf(buf, len, "acct:%s", id);
}

/* simple_one_for_one start: the extra argument is the account's id. */
static int account_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                         rt_atom *reason)
{
    char id[LEDGER_ID_MAX + 1], reg[LEDGER_ID_MAX + 8];
    if (extra_size == 0 || extra_size > LEDGER_ID_MAX)
        return -EINVAL;
    memcpy(id, extra, extra_size);
    id[extra_size] = 0;
    reg_name(reg, sizeof reg, id);
    struct rt_start_opts o = {
        .name = reg, .hibernate_after = ACCOUNT_HIBERNATE_MS, .initial_call = "ledger_account"};
    return rt_gen_server_start_link(&account_ops, id, &o, out, reason);
}

static int accounts_init(void *arg, struct rt_sup_flags *flags, struct rt_sup_init *init)
{
    const struct rt_child_spec account = {
        .id = "account", .start = account_start, .restart = RT_TRANSIENT, .shutdown = 5000};
    /* A storage that fails again and again takes the supervisor down too,
     * and with it the application: better than a ledger that limps. */
    *flags = (struct rt_sup_flags){RT_SIMPLE_ONE_FOR_ONE, 10, 10, RT_AUTO_NEVER};
    return rt_sup_init_child(init, &account);
}

int ledger_accounts_start(void *arg, const void *extra, size_t extra_size, rt_pid *out,
                          rt_atom *reason)
{
    struct rt_start_opts o = {.name = "accounts"};
    return rt_sup_start_link(accounts_init, NULL, &o, out, reason);
}

/* ---- client side (connection processes) ---------------------------------------- */

/* The account's process, started if it is not running. */
static int account_pid(const char *id, rt_pid *out)
{
    char reg[LEDGER_ID_MAX + 8];
    reg_name(reg, sizeof reg, id);
    rt_pid pid = rt_whereis(reg);
    if (!pid) {
        rt_pid sup = rt_whereis("accounts");
        if (!sup)
            return -ESRCH;
        int rc = rt_sup_start_child_extra(sup, id, strlen(id), &pid, NULL);
        if (rc < 0 && rc != -EEXIST)
            return rc;
    }
    if (!pid)
        return -ESRCH;
    *out = pid;
    return 0;
}

/* Sends `req` (consumed) to the account. A process that was gone before it
 * took the request (not alive, or stopped normally with the request still
 * queued, as one for an id without an account does) is started again and
 * asked again: it never saw the request. Any other end of the call is
 * returned: the request may or may not have been carried out. */
static void req_free(void *req)
{
    rt_msg_free(req);
}

static int account_call_req(const char *id, struct rt_msg *req, struct rt_msg **reply)
{
    /* The caller may be killed while it waits (a shutdown): the request
     * goes with it then. */
    uint64_t d = rt_defer(req_free, req);
    if (!d) {
        rt_msg_free(req);
        return -ENOMEM;
    }
    int rc = -ESRCH;
    for (int attempt = 0; attempt < 3; attempt++) {
        rt_pid pid = 0;
        rc = account_pid(id, &pid);
        if (rc < 0)
            break;
        struct rt_msg *copy = rt_msg_copy(req->type, req->data, req->size);
        if (!copy) {
            rc = -ENOMEM;
            break;
        }
        rt_atom why = RT_NORMAL;
        rc = rt_gen_server_call(pid, copy, ACCOUNT_CALL_MS, reply, &why);
        if (!(rc == -ESRCH || (rc == -ECONNRESET && why == RT_NORMAL)))
            break;
    }
    rt_undefer(d, true);
    return rc;
}

int ledger_account_apply(struct ledger_op *op, struct ledger_answer *ans)
{
    struct rt_msg *req = rt_msg_new(REQ_APPLY, sizeof *op + op->fingerprint_len);
    if (!req)
        return -ENOMEM;
    struct ledger_op copy = *op;
    copy.fingerprint = NULL; /* the bytes follow the op in the message */
    memcpy(req->data, &copy, sizeof copy);
    if (op->fingerprint_len) /* no key: no fingerprint, and a NULL pointer */
        memcpy(req->data + sizeof copy, op->fingerprint, op->fingerprint_len);
    struct rt_msg *reply = NULL;
    int rc = account_call_req(op->account, req, &reply);
    if (rc < 0)
        return rc;
    const struct rep *p = (const struct rep *)reply->data;
    rc = p->rc;
    if (rc == 0) {
        char *body = malloc(p->body_len + 1);
        if (!body) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(body, p->body, p->body_len);
        body[p->body_len] = 0;
        *ans = (struct ledger_answer){.status = p->status,
                                      .body = body,
                                      .body_len = p->body_len,
                                      .applied = p->applied,
                                      .replayed = p->replayed,
                                      .exists = p->exists,
                                      .balance = p->balance};
    }
out:
    rt_msg_free(reply);
    return rc;
}

int ledger_account_balance(const char *id, int64_t *balance)
{
    struct rt_msg *req = rt_msg_new(REQ_BALANCE, 0);
    if (!req)
        return -ENOMEM;
    struct rt_msg *reply = NULL;
    int rc = account_call_req(id, req, &reply);
    if (rc < 0)
        return rc;
    const struct rep *p = (const struct rep *)reply->data;
    rc = p->rc;
    if (rc == 0)
        *balance = p->balance;
    rt_msg_free(reply);
    return rc;
}

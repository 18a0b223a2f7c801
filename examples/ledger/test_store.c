/*
 * test_store.c: the ledger's store on its own (no runtime): a change is
 * decided against the account's row as its transaction reads it, whatever
 * the caller believes the account holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger.h"

static struct ledger_answer apply(struct ledger_store *s, enum ledger_op_kind kind, const char *id,
                                  int64_t amount, bool exists, int64_t balance)
{
    struct ledger_op op = {.kind = kind, .amount = amount};
    snprintf(op.account, sizeof op.account, "%s", id);
    snprintf(op.ref, sizeof op.ref, "t");
    /* What an account's process restarted mid-change may hold: behind. */
    op.exists = exists;
    op.balance = balance;
    struct ledger_answer ans = {0};
    int rc = ledger_store_apply(s, &op, &ans);
    if (rc != 0) {
        fprintf(stderr, "ledger_store_apply: %d\n", rc);
        exit(1);
    }
    return ans;
}

static int check(bool ok, const char *what, const struct ledger_answer *a)
{
    if (ok)
        return 0;
    fprintf(stderr, "FAIL %s: status %d balance %lld body %s\n", what, a->status,
            (long long)a->balance, a->body ? a->body : "");
    return 1;
}

int main(void)
{
    char path[] = "/tmp/ledger-store-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    struct ledger_store *s = NULL;
    if (ledger_store_open(path, &s) < 0)
        return 1;
    int fails = 0;
    struct ledger_answer a = apply(s, LEDGER_OP_CREATE, "alice", 100, false, 0);
    fails += check(a.status == 201 && a.balance == 100, "create", &a);
    free(a.body);
    /* The caller thinks alice does not exist (its load ran before the
     * create committed): the store still debits the row. */
    a = apply(s, LEDGER_OP_DEBIT, "alice", 30, false, 0);
    fails += check(a.status == 200 && a.balance == 70, "debit against a stale 'no account'", &a);
    free(a.body);
    /* The caller thinks alice still has 100: 80 more is an overdraft of
     * the row's 70, refused, and the row is untouched. */
    a = apply(s, LEDGER_OP_DEBIT, "alice", 80, true, 100);
    fails += check(a.status == 402 && a.balance == 70, "overdraft against a stale balance", &a);
    free(a.body);
    /* A credit adds to the row, not to the caller's copy. */
    a = apply(s, LEDGER_OP_CREDIT, "alice", 5, true, 100);
    fails += check(a.status == 200 && a.balance == 75, "credit against a stale balance", &a);
    free(a.body);
    /* A create of an account the caller thinks absent is still 409. */
    a = apply(s, LEDGER_OP_CREATE, "alice", 1, false, 0);
    fails += check(a.status == 409, "create over a stale 'no account'", &a);
    free(a.body);
    ledger_store_close(s);
    unlink(path);
    char side[sizeof path + 8];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    if (!fails)
        printf("store: 5 checks passed\n");
    return fails ? 1 : 0;
}

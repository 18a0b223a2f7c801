/*
 * journal_pg.h: what the PostgreSQL backend offers besides its vtable
 * (wf_backend_postgres in journal_int.h).
 */
#ifndef GW_WORKFLOW_JOURNAL_PG_H
#define GW_WORKFLOW_JOURNAL_PG_H

/* Process context; parks like every backend call. Runs one statement that
 * returns rows (`sql`, no parameters) on the backend `b` and discards them:
 * 0, or -EIO with the connection dropped (the next call reconnects). For
 * tests: a slow statement (pg_sleep) shows that a query in flight holds no
 * scheduler. */
int wf__pg_exec(void *b, const char *sql);

#endif

/*
 * fakes.h: test doubles of the journal (fake_journal.c) and of the
 * definitions' compiler and templates (fake_def.c), so the instance and
 * the service are tested alone.
 */
#ifndef WF_TEST_FAKES_H
#define WF_TEST_FAKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "workflow/def.h"
#include "workflow/journal.h"
#include "workflow/workflow.h"

void fj_reset(void);
/* "intent@step:a outcome@step:b ..." of instance id. */
size_t fj_events(const char *id, char *buf, size_t cap);
/* The nth append from now on, and every one after, fails with -EIO (0: none). */
void fj_fail_appends_from(unsigned nth);
/* A create parks this long (0: it yields once), as a real one parks until
 * its group commit is durable. */
void fj_create_parks(unsigned ms);
/* Reads (wf_journal_get) fail with -EIO while `fail`; how many were tried. */
void fj_fail_gets(bool fail);
unsigned fj_gets(void);
int fj_add_transition(const char *id, const char *state, const char *event, const char *detail);

/* A step as a test writes it. Outcomes: 2xx success, 4xx failure, other
 * statuses unknown, unless listed in `failure`/`unknown`. */
struct fd_step {
    const char *name;
    int upstream; /* index */
    const char *path;
    const char *undo_path; /* NULL: nothing to undo */
    uint32_t timeout_ms;
    uint32_t attempts;
    uint32_t backoff_ms;
    const char *body; /* JSON text or NULL */
};

struct fd_def {
    const char *name;
    struct fd_step steps[8];
    size_t nsteps;
    uint64_t compensate_limit_ms;
    const char *completed_body; /* JSON template text (literal) or NULL */
};

/* Makes `d` known to wf_def_from_text under text "test:<name>"; returns
 * the compiled definition (owned by the test: wf_def_free). */
struct wf_def *fd_define(const struct fd_def *d);
void fd_reset(void);

#endif

/* test_def.c: workflow definitions — loading, every validation message at
 * its line and column, placeholders and their expansion, the input check,
 * and the canonical text a journalled instance is recompiled from. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workflow/def.h"

static const char *const ups[] = {"ledger", "notify"};

/* The transfer of README.md: debit the source, credit the destination;
 * the debit is undone by crediting the source back. */
static const char transfer[] =
    "{\"workflows\": [{\n"
    "  \"name\": \"transfer\",\n"
    "  \"input\": {\"from\": \"string\", \"to\": \"string\", \"amount\": \"integer\",\n"
    "            \"note\": {\"type\": \"string\", \"required\": false}},\n"
    "  \"idempotency\": {\"key\": \"required\", \"ttl_ms\": 60000},\n"
    "  \"wait_ms\": 5000,\n"
    "  \"steps\": [\n"
    "    {\"name\": \"debit\", \"upstream\": \"ledger\",\n"
    "     \"request\": {\"path\": \"/accounts/${input.from}/debit\",\n"
    "                 \"headers\": {\"X-Workflow\": \"${workflow.name}/${workflow.id}\"},\n"
    "                 \"body\": {\"amount\": \"${input.amount}\", \"ref\": "
    "\"t-${workflow.id}\"}},\n"
    "     \"compensate\": {\"path\": \"/accounts/${input.from}/credit\",\n"
    "                    \"body\": {\"amount\": \"${input.amount}\",\n"
    "                             \"undo\": \"${steps.debit.body.entry}\"}},\n"
    "     \"failure\": [402, \"4xx\"]},\n"
    "    {\"name\": \"credit\", \"upstream\": \"ledger\",\n"
    "     \"request\": {\"method\": \"POST\", \"path\": \"/accounts/${input.to}/credit\",\n"
    "                 \"body\": {\"amount\": \"${input.amount}\",\n"
    "                          \"after\": \"${steps.debit.body.entry}\"}},\n"
    "     \"retry\": {\"attempts\": 3, \"backoff_ms\": 50, \"backoff_max_ms\": 200}}\n"
    "  ],\n"
    "  \"response\": {\"completed\": {\"status\": 201,\n"
    "                 \"body\": {\"debit\": \"${steps.debit.body}\", \"code\": "
    "\"${steps.credit.status}\"}}}\n"
    "}]}\n";

static struct wf_set *load_ok(const char *text)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct wf_set *s = NULL;
    int r = wf_set_load_text("t.json", text, strlen(text), ups, 2, &s, &d);
    if (r)
        jpos_diags_print(&d, stderr);
    ck_assert_int_eq(r, 0);
    ck_assert_uint_eq(d.nerrors, 0);
    jpos_diags_done(&d);
    return s;
}

/* The line and column (from 1) where `marker` first starts in `text`. */
static void pos_of(const char *text, const char *marker, unsigned *line, unsigned *col)
{
    const char *p = strstr(text, marker);
    ck_assert_msg(p != NULL, "marker %s not in the text", marker);
    *line = 1;
    *col = 1;
    for (const char *q = text; q < p; q++) {
        if (*q == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Loads `text`, which must fail, and checks that a diagnostic holding
 * `needle` is at `marker`'s position with JSON path `path`. */
static void expect_err(const char *text, const char *needle, const char *marker, const char *path)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct wf_set *s = NULL;
    int r = wf_set_load_text("t.json", text, strlen(text), ups, 2, &s, &d);
    ck_assert_int_eq(r, -EINVAL);
    ck_assert_ptr_null(s);
    const struct jpos_diag *g = NULL;
    for (size_t i = 0; i < d.n && !g; i++)
        if (strstr(d.items[i].message, needle))
            g = &d.items[i];
    if (!g)
        jpos_diags_print(&d, stderr);
    ck_assert_msg(g != NULL, "no diagnostic holds \"%s\"", needle);
    unsigned line, col;
    pos_of(text, marker, &line, &col);
    ck_assert_str_eq(g->file, "t.json");
    ck_assert_uint_eq(g->line, line);
    ck_assert_uint_eq(g->column, col);
    ck_assert_str_eq(g->path, path);
    jpos_diags_done(&d);
}

/* A one-step workflow around `step` (the step object's members) with
 * `extra` members of the definition. */
static char *one(const char *extra, const char *step)
{
    char *t;
    ck_assert_int_ge(asprintf(&t,
                              "{\"workflows\": [{\"name\": \"w\",%s\n"
                              " \"input\": {\"amount\": \"integer\", \"from\": \"string\"},\n"
                              " \"steps\": [{\"name\": \"a\", \"upstream\": \"ledger\", %s}]}]}",
                              extra, step),
                     0);
    return t;
}

/* ---- loading -------------------------------------------------------------- */

START_TEST(transfer_compiles_with_defaults)
{
    struct wf_set *s = load_ok(transfer);
    ck_assert_uint_eq(wf_set_count(s), 1);
    const struct wf_def *w = wf_set_find(s, "transfer");
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(wf_set_names(s)[0], "transfer");
    ck_assert_ptr_null(wf_set_names(s)[1]);
    ck_assert_uint_eq(w->line, 1);
    ck_assert_uint_eq(w->ninput, 4);
    ck_assert_int_eq(w->input[2].type, WF_JT_INTEGER);
    ck_assert(w->input[2].required);
    ck_assert(!w->input[3].required);
    ck_assert_int_eq(w->idempotency, WF_IDEM_REQUIRED);
    ck_assert_str_eq(w->key_header, "idempotency-key");
    ck_assert_uint_eq(w->key_ttl_ms, 60000);
    ck_assert_uint_eq(w->wait_ms, 5000);
    ck_assert_uint_eq(w->compensate_limit_ms, 3600000);
    ck_assert_uint_eq(w->nsteps, 2);
    const struct wf_step *a = &w->steps[0], *b = &w->steps[1];
    ck_assert_str_eq(a->name, "debit");
    ck_assert_str_eq(a->upstream, "ledger");
    ck_assert_int_eq(a->upstream_index, 0);
    ck_assert_str_eq(a->request.method, "POST");
    ck_assert_uint_eq(a->request.nheaders, 1);
    ck_assert_str_eq(a->request.headers[0].name, "x-workflow");
    ck_assert_ptr_nonnull(a->compensate);
    ck_assert_ptr_null(b->compensate);
    ck_assert_uint_eq(a->timeout_ms, 10000);
    ck_assert_uint_eq(a->retry.attempts, 0); /* unknown outcomes: resent until known */
    ck_assert_uint_eq(a->compensate_retry.attempts, 0);
    ck_assert_uint_eq(b->retry.attempts, 3);
    ck_assert_uint_eq(b->retry.backoff_ms, 50);
    ck_assert_uint_eq(b->retry.backoff_max_ms, 200);
    /* success 2xx; failure as listed; anything else unknown */
    ck_assert_int_eq(a->outcome[201 - 100], WF_OUT_SUCCESS);
    ck_assert_int_eq(a->outcome[402 - 100], WF_OUT_FAILURE);
    ck_assert_int_eq(a->outcome[429 - 100], WF_OUT_FAILURE); /* "4xx" listed */
    ck_assert_int_eq(a->outcome[500 - 100], WF_OUT_UNKNOWN);
    /* default failure: 4xx but 408, 425 and 429 */
    ck_assert_int_eq(b->outcome[404 - 100], WF_OUT_FAILURE);
    ck_assert_int_eq(b->outcome[408 - 100], WF_OUT_UNKNOWN);
    ck_assert_int_eq(b->outcome[429 - 100], WF_OUT_UNKNOWN);
    ck_assert_int_eq(b->outcome[503 - 100], WF_OUT_UNKNOWN);
    ck_assert_int_eq(b->outcome[302 - 100], WF_OUT_UNKNOWN);
    ck_assert_int_eq(w->completed.status, 201);
    ck_assert_ptr_nonnull(w->completed.body);
    ck_assert_int_eq(w->compensated.status, 409);
    ck_assert_ptr_null(w->compensated.body);
    ck_assert_int_eq(w->failed.status, 500);
    wf_set_unref(s);
}
END_TEST

START_TEST(async_mode_waits_zero)
{
    char *t = one("\"mode\": \"async\",", "\"request\": {\"path\": \"/x\"}");
    struct wf_set *s = load_ok(t);
    ck_assert_uint_eq(wf_set_def(s, 0)->wait_ms, 0);
    ck_assert_uint_eq(wf_set_def(s, 0)->steps[0].request.body == NULL, 1);
    wf_set_unref(s);
    free(t);
}
END_TEST

START_TEST(version_ignores_layout_and_key_order)
{
    const char *a = "{\"workflows\": [{\"name\": \"w\", \"steps\": [{\"name\": \"s\", "
                    "\"upstream\": \"ledger\", \"request\": {\"path\": \"/p\"}}]}]}";
    const char *b = "{\"workflows\": [\n  {\"steps\": [{\"request\": {\"path\": \"/p\"},\n"
                    "     \"upstream\": \"ledger\", \"name\": \"s\"}],\n   \"name\": \"w\"}]}";
    const char *c = "{\"workflows\": [{\"name\": \"w\", \"steps\": [{\"name\": \"s\", "
                    "\"upstream\": \"ledger\", \"request\": {\"path\": \"/q\"}}]}]}";
    struct wf_set *sa = load_ok(a), *sb = load_ok(b), *sc = load_ok(c);
    const struct wf_def *da = wf_set_def(sa, 0), *db = wf_set_def(sb, 0), *dc = wf_set_def(sc, 0);
    ck_assert_str_eq(da->text, db->text);
    ck_assert_uint_eq(da->version, db->version);
    ck_assert_uint_ne(da->version, dc->version);
    ck_assert_str_eq(da->text, "{\"name\":\"w\",\"steps\":[{\"name\":\"s\",\"request\":"
                               "{\"path\":\"/p\"},\"upstream\":\"ledger\"}]}");
    wf_set_unref(sa);
    wf_set_unref(sb);
    wf_set_unref(sc);
}
END_TEST

START_TEST(from_text_round_trip)
{
    struct wf_set *s = load_ok(transfer);
    const struct wf_def *w = wf_set_def(s, 0);
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct wf_def *x = NULL;
    ck_assert_int_eq(wf_def_from_text(w->text, w->text_len, ups, 2, &x, &d), 0);
    ck_assert_str_eq(x->text, w->text);
    ck_assert_uint_eq(x->version, w->version);
    ck_assert_str_eq(x->name, "transfer");
    ck_assert_uint_eq(x->nsteps, 2);
    ck_assert_int_eq(x->steps[1].upstream_index, 0);
    ck_assert_int_eq(x->completed.status, 201);
    /* the set may go: the definition stands alone */
    wf_set_unref(s);
    json_t *in = json_pack("{s:s, s:s, s:i}", "from", "A", "to", "B", "amount", 5);
    char err[200];
    ck_assert_int_eq(wf_input_check(x, in, err, sizeof err), 0);
    json_decref(in);
    wf_def_free(x);
    /* an upstream removed since gives -ENOENT; order of upstreams may change */
    static const char *const other[] = {"notify"};
    static const char *const moved[] = {"notify", "ledger"};
    s = load_ok(transfer);
    w = wf_set_def(s, 0);
    ck_assert_int_eq(wf_def_from_text(w->text, w->text_len, other, 1, &x, &d), -ENOENT);
    ck_assert_int_eq(wf_def_from_text(w->text, w->text_len, moved, 2, &x, &d), 0);
    ck_assert_int_eq(x->steps[0].upstream_index, 1);
    wf_def_free(x);
    /* text that is not a definition */
    ck_assert_int_eq(wf_def_from_text("{\"name\": 1}", 11, ups, 2, &x, &d), -EINVAL);
    wf_set_unref(s);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(missing_directory_is_an_empty_set)
{
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct wf_set *s = NULL;
    ck_assert_int_eq(wf_set_load_dir("/nonexistent/tandem-workflows", ups, 2, &s, &d), 0);
    ck_assert_uint_eq(wf_set_count(s), 0);
    ck_assert_ptr_null(wf_set_names(s)[0]);
    ck_assert_ptr_null(wf_set_find(s, "transfer"));
    wf_set_unref(s);
    jpos_diags_done(&d);
}
END_TEST

START_TEST(directory_files_report_their_names)
{
    char dir[] = "/tmp/wf_def_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char p1[300], p2[300], p3[300];
    snprintf(p1, sizeof p1, "%s/a.json", dir);
    snprintf(p2, sizeof p2, "%s/b.json", dir);
    snprintf(p3, sizeof p3, "%s/.b.json.swp", dir);
    FILE *f = fopen(p1, "w");
    fputs(transfer, f);
    fclose(f);
    f = fopen(p3, "w");
    fputs("not json", f);
    fclose(f);
    struct jpos_diags d;
    jpos_diags_init(&d);
    struct wf_set *s = NULL;
    ck_assert_int_eq(wf_set_load_dir(dir, ups, 2, &s, &d), 0);
    ck_assert_uint_eq(wf_set_count(s), 1);
    ck_assert_str_eq(wf_set_def(s, 0)->file, p1);
    wf_set_unref(s);
    /* the same name in a second file */
    f = fopen(p2, "w");
    fputs("{\"workflows\": [{\"name\": \"transfer\", \"steps\": [{\"name\": \"s\", "
          "\"upstream\": \"ledger\", \"request\": {\"path\": \"/p\"}}]}]}",
          f);
    fclose(f);
    s = NULL;
    ck_assert_int_eq(wf_set_load_dir(dir, ups, 2, &s, &d), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_uint_eq(d.nerrors, 1);
    ck_assert_str_eq(d.items[0].file, p2);
    ck_assert_uint_eq(d.items[0].line, 1);
    ck_assert_uint_eq(d.items[0].column, 25);
    char want[400];
    snprintf(want, sizeof want, "workflow \"transfer\" is already defined at %s:1:16", p1);
    ck_assert_str_eq(d.items[0].message, want);
    jpos_diags_done(&d);
    unlink(p1);
    unlink(p2);
    unlink(p3);
    rmdir(dir);
}
END_TEST

/* ---- validation messages --------------------------------------------------- */

START_TEST(unknown_keys_suggest_the_closest)
{
    char *t = one("\"wiat_ms\": 5,", "\"request\": {\"path\": \"/x\"}");
    expect_err(t, "unknown key \"wiat_ms\" in workflow; did you mean \"wait_ms\"?", "\"wiat_ms\"",
               "workflows[0].wiat_ms");
    free(t);
    t = one("", "\"requst\": {\"path\": \"/x\"}");
    expect_err(t, "unknown key \"requst\" in step; did you mean \"request\"?", "\"requst\"",
               "workflows[0].steps[0].requst");
    free(t);
    t = one("", "\"request\": {\"pth\": \"/x\"}");
    expect_err(t, "did you mean \"path\"?", "\"pth\"", "workflows[0].steps[0].request.pth");
    expect_err(t, "a request needs \"path\"", "{\"pth\"", "workflows[0].steps[0].request");
    free(t);
    t = one("", "\"request\": {\"path\": \"/x\"}, \"retry\": {\"atempts\": 2}");
    expect_err(t, "did you mean \"attempts\"?", "\"atempts\"",
               "workflows[0].steps[0].retry.atempts");
    free(t);
    t = one("\"idempotency\": {\"kye\": \"optional\"},", "\"request\": {\"path\": \"/x\"}");
    expect_err(t, "did you mean \"key\"?", "\"kye\"", "workflows[0].idempotency.kye");
    free(t);
    t = one("\"response\": {\"complete\": {}},", "\"request\": {\"path\": \"/x\"}");
    expect_err(t, "did you mean \"completed\"?", "\"complete\"", "workflows[0].response.complete");
    free(t);
    expect_err("{\"workflow\": []}", "did you mean \"workflows\"?", "\"workflow\"", "workflow");
}
END_TEST

START_TEST(shape_errors)
{
    expect_err("{\"workflows\": {}}", "expected an array", "{}", "workflows");
    expect_err("[1]", "a workflow file holds an object", "[1]", "");
    expect_err("{}", "workflow file has no \"workflows\" array", "{}", "");
    expect_err("{\"workflows\": [{\"steps\": []}]}", "workflow has no \"name\"", "{\"steps",
               "workflows[0]");
    expect_err("{\"workflows\": [{\"name\": \"w\", \"steps\": []}]}",
               "a workflow needs at least one step", "[]}", "workflows[0].steps");
    expect_err("{\"workflows\": [{\"name\": \"w\"}]}", "workflow has no \"steps\"", "{\"name",
               "workflows[0]");
    expect_err("{\"workflows\": [{\"name\": \"a b\", \"steps\": [1]}]}",
               "workflow name \"a b\" must be", "\"a b\"", "workflows[0].name");
    expect_err("{\"workflows\": [{\"name\": \"w\", \"steps\": [1]}]}",
               "each step must be an object, got an integer", "1]", "workflows[0].steps[0]");
    char *t =
        one("", "\"request\": {\"path\": \"/x\"}}, {\"name\": \"a\", \"upstream\": \"ledger\", "
                "\"request\": {\"path\": \"/y\"}");
    expect_err(t, "step \"a\" is defined twice in this workflow",
               "\"a\", \"upstream\": "
               "\"ledger\", \"request\": {\"path\": \"/y\"",
               "workflows[0].steps[1].name");
    free(t);
    t = one("", "\"request\": {\"path\": \"x\"}");
    expect_err(t, "path must start with '/', got \"x\"", "\"x\"",
               "workflows[0].steps[0].request.path");
    free(t);
    t = one("", "\"request\": {\"path\": \"/x y\"}");
    expect_err(t, "path must not contain spaces", "\"/x y\"", "workflows[0].steps[0].request.path");
    free(t);
    t = one("\"mode\": \"async\", \"wait_ms\": 10,", "\"request\": {\"path\": \"/x\"}");
    expect_err(t, "an async workflow answers 202 at once", "\"async\"", "workflows[0].mode");
    free(t);
    t = one("\"mode\": \"asinc\",", "\"request\": {\"path\": \"/x\"}");
    expect_err(t, "unknown mode \"asinc\"; did you mean \"async\"?", "\"asinc\"",
               "workflows[0].mode");
    free(t);
    t = one("\"wait_ms\": 0,", "\"request\": {\"path\": \"/x\"}");
    expect_err(t, "600000", "0,", "workflows[0].wait_ms");
    free(t);
    t = one("", "\"request\": {\"path\": \"/x\"}, \"retry\": {\"backoff_ms\": 500, "
                "\"backoff_max_ms\": 100}");
    expect_err(t, "backoff_max_ms (100) is below backoff_ms (500)", "{\"backoff_ms\"",
               "workflows[0].steps[0].retry");
    free(t);
    t = one("\"response\": {\"completed\": {\"status\": 204, \"body\": {}}},",
            "\"request\": {\"path\": \"/x\"}");
    expect_err(t, "a 204 answer has no body", "{\"status\"", "workflows[0].response.completed");
    free(t);
}
END_TEST

START_TEST(unknown_upstream_suggests)
{
    const char *t = "{\"workflows\": [{\"name\": \"w\", \"steps\": [{\"name\": \"a\", "
                    "\"upstream\": \"legder\", \"request\": {\"path\": \"/x\"}}]}]}";
    expect_err(t, "unknown upstream \"legder\"; did you mean \"ledger\"?", "\"legder\"",
               "workflows[0].steps[0].upstream");
    t = "{\"workflows\": [{\"name\": \"w\", \"steps\": [{\"name\": \"a\", "
        "\"upstream\": \"bank\", \"request\": {\"path\": \"/x\"}}]}]}";
    expect_err(t, "unknown upstream \"bank\" (defined: \"ledger\", \"notify\")", "\"bank\"",
               "workflows[0].steps[0].upstream");
    t = "{\"workflows\": [{\"name\": \"w\", \"steps\": [{\"name\": \"a\", "
        "\"request\": {\"path\": \"/x\"}}]}]}";
    expect_err(t, "step has no \"upstream\"", "{\"name\": \"a\"", "workflows[0].steps[0]");
}
END_TEST

START_TEST(placeholder_errors)
{
    char *t = one("", "\"request\": {\"path\": \"/a/${input.amont}\"}");
    expect_err(t, "${input.amont}: unknown input key \"amont\"; did you mean \"amount\"?", "\"/a/$",
               "workflows[0].steps[0].request.path");
    free(t);
    t = one("", "\"request\": {\"path\": \"/a\", \"body\": {\"x\": \"${input.zzzzzz}\"}}");
    expect_err(t, "${input.zzzzzz}: unknown input key \"zzzzzz\" (known: \"amount\", \"from\")",
               "\"${input.zz", "workflows[0].steps[0].request.body.x");
    free(t);
    t = one("", "\"request\": {\"path\": \"/a/${input.amount.x}\"}");
    expect_err(t, "input.amount is declared integer; it has no member \"x\"", "\"/a/$",
               "workflows[0].steps[0].request.path");
    free(t);
    t = one("", "\"request\": {\"path\": \"/a/${inptu.amount}\"}");
    expect_err(t, "unknown placeholder root \"inptu\"; did you mean \"input\"?", "\"/a/$",
               "workflows[0].steps[0].request.path");
    free(t);
    t = one("", "\"request\": {\"path\": \"/a/${workflow.ids}\"}");
    expect_err(t, "unknown workflow field \"ids\"; did you mean \"id\"?", "\"/a/$",
               "workflows[0].steps[0].request.path");
    free(t);
    t = one("", "\"request\": {\"path\": \"/a/${input.amount\"}");
    expect_err(t, "\"${\" at byte 3 has no closing '}'", "\"/a/$",
               "workflows[0].steps[0].request.path");
    free(t);
    t = one("", "\"request\": {\"path\": \"/a/${input..amount}\"}");
    expect_err(t, "it has an empty name", "\"/a/$", "workflows[0].steps[0].request.path");
    free(t);
    t = one("", "\"request\": {\"path\": \"/a\", \"headers\": {\"x-a\": \"${input.a b}\"}}");
    expect_err(t, "(found ' ')", "\"${input.a b", "workflows[0].steps[0].request.headers.x-a");
    free(t);
}
END_TEST

START_TEST(step_references_are_checked)
{
    const char *head = "{\"workflows\": [{\"name\": \"w\", \"steps\": [\n";
    char *t;
    /* its own result */
    ck_assert_int_ge(asprintf(&t,
                              "%s{\"name\": \"a\", \"upstream\": \"ledger\", \"request\": "
                              "{\"path\": \"/${steps.a.body.id}\"}}]}]}",
                              head),
                     0);
    expect_err(t,
               "${steps.a.body.id}: step \"a\" refers to its own result; a request may use only "
               "the steps before it",
               "\"/${", "workflows[0].steps[0].request.path");
    free(t);
    /* a later step */
    ck_assert_int_ge(asprintf(&t,
                              "%s{\"name\": \"a\", \"upstream\": \"ledger\", \"request\": "
                              "{\"path\": \"/${steps.b.status}\"}},\n"
                              "{\"name\": \"b\", \"upstream\": \"ledger\", \"request\": "
                              "{\"path\": \"/b\"}}]}]}",
                              head),
                     0);
    expect_err(t, "${steps.b.status}: step \"a\" refers to step \"b\", which runs after it",
               "\"/${", "workflows[0].steps[0].request.path");
    free(t);
    /* an unknown step, and an unknown field of a known one */
    ck_assert_int_ge(asprintf(&t,
                              "%s{\"name\": \"debit\", \"upstream\": \"ledger\", \"request\": "
                              "{\"path\": \"/a\"}},\n"
                              "{\"name\": \"b\", \"upstream\": \"ledger\", \"request\": "
                              "{\"path\": \"/b\", \"body\": [\"${steps.debt.body}\", "
                              "\"${steps.debit.bdy}\"]}}]}]}",
                              head),
                     0);
    expect_err(t, "${steps.debt.body}: unknown step \"debt\"; did you mean \"debit\"?",
               "\"${steps.debt", "workflows[0].steps[1].request.body[0]");
    expect_err(t, "${steps.debit.bdy}: unknown step field \"bdy\"; did you mean \"body\"?",
               "\"${steps.debit.bdy", "workflows[0].steps[1].request.body[1]");
    free(t);
    /* a compensation may use its own step; the response any step */
    ck_assert_int_ge(asprintf(&t,
                              "%s{\"name\": \"a\", \"upstream\": \"ledger\", \"request\": "
                              "{\"path\": \"/a\"}, \"compensate\": {\"path\": "
                              "\"/undo/${steps.a.body.id}\"}}],\n"
                              "\"response\": {\"completed\": {\"body\": "
                              "\"${steps.a.status}\"}}}]}",
                              head),
                     0);
    struct wf_set *s = load_ok(t);
    wf_set_unref(s);
    free(t);
}
END_TEST

/* A step whose name was refused is not offered as a known step. */
START_TEST(unknown_step_lists_only_named_steps)
{
    const char *t = "{\"workflows\": [{\"name\": \"w\", \"steps\": [\n"
                    "{\"name\": \"1bad\", \"upstream\": \"ledger\", \"request\": {\"path\": "
                    "\"/a\"}},\n"
                    "{\"name\": \"b\", \"upstream\": \"ledger\", \"request\": {\"path\": "
                    "\"/b/${steps.zzzz.status}\"}}]}]}";
    expect_err(t, "${steps.zzzz.status}: unknown step \"zzzz\" (known: \"b\")", "\"/b/",
               "workflows[0].steps[1].request.path");
}
END_TEST

START_TEST(input_declaration_errors)
{
    const char *t = "{\"workflows\": [{\"name\": \"w\", \"input\": {\"a\": \"integr\", "
                    "\"b\": {\"required\": false}, \"c\": 3, \"d e\": \"string\", "
                    "\"f\": {\"type\": \"string\", \"requird\": true}},\n"
                    "\"steps\": [{\"name\": \"s\", \"upstream\": \"ledger\", \"request\": "
                    "{\"path\": \"/x\"}}]}]}";
    expect_err(t, "unknown input type \"integr\"; did you mean \"integer\"?", "\"integr\"",
               "workflows[0].input.a");
    expect_err(t, "input key \"b\" has no \"type\"", "{\"required\"", "workflows[0].input.b");
    expect_err(t, "expected a type (\"integer\") or {\"type\"", "3,", "workflows[0].input.c");
    expect_err(t, "input key \"d e\" must be a name", "\"d e\"", "workflows[0].input[\"d e\"]");
    expect_err(t, "did you mean \"required\"?", "\"requird\"", "workflows[0].input.f.requird");
}
END_TEST

START_TEST(status_lists_and_headers)
{
    char *t = one("", "\"request\": {\"path\": \"/x\"}, \"success\": [\"2xx\"], "
                      "\"failure\": [\"6xx\", 99, true, 201]");
    expect_err(t, "\"6xx\" is not a status class", "\"6xx\"", "workflows[0].steps[0].failure[0]");
    expect_err(t, "status 99 is not between 100 and 599", "99,",
               "workflows[0].steps[0].failure[1]");
    expect_err(t, "expected a status (402) or a class (\"4xx\"), got true", "true",
               "workflows[0].steps[0].failure[2]");
    expect_err(t, "status 201 is listed both in success and failure", "[\"6xx\"",
               "workflows[0].steps[0].failure");
    free(t);
    t = one("", "\"request\": {\"path\": \"/x\", \"method\": \"post\", \"headers\": "
                "{\"Idempotency-Key\": \"k\", \"Content-Length\": \"1\", \"bad name\": \"v\", "
                "\"x-a\": \"a\\nb\"}}");
    expect_err(t, "unknown method \"post\"; methods are case-sensitive: did you mean \"POST\"?",
               "\"post\"", "workflows[0].steps[0].request.method");
    expect_err(t, "\"Idempotency-Key\" is written by the gateway", "\"Idempotency-Key\"",
               "workflows[0].steps[0].request.headers.Idempotency-Key");
    expect_err(t, "\"Content-Length\" is written by the gateway", "\"Content-Length\"",
               "workflows[0].steps[0].request.headers.Content-Length");
    expect_err(t, "\"bad name\" is not a valid header name", "\"bad name\"",
               "workflows[0].steps[0].request.headers[\"bad name\"]");
    expect_err(t, "header value must not contain control characters", "\"a\\nb\"",
               "workflows[0].steps[0].request.headers.x-a");
    free(t);
    t = one("\"idempotency\": {\"header\": \"Bad Header\"},", "\"request\": {\"path\": \"/x\"}");
    expect_err(t, "\"Bad Header\" is not a valid header name", "\"Bad Header\"",
               "workflows[0].idempotency.header");
    free(t);
}
END_TEST

/* The fields call.c writes on every step's request cannot be written a
 * second time by the definition. */
START_TEST(gateway_written_headers_cannot_be_set)
{
    char *t = one("", "\"request\": {\"path\": \"/x\", \"body\": {}, \"headers\": "
                      "{\"Content-Type\": \"text/plain\", \"X-Request-Id\": \"r\", "
                      "\"x-workflow-id\": \"w\"}}");
    expect_err(t, "\"Content-Type\" is written by the gateway", "\"Content-Type\"",
               "workflows[0].steps[0].request.headers.Content-Type");
    expect_err(t, "\"X-Request-Id\" is written by the gateway", "\"X-Request-Id\"",
               "workflows[0].steps[0].request.headers.X-Request-Id");
    expect_err(t, "\"x-workflow-id\" is written by the gateway", "\"x-workflow-id\"",
               "workflows[0].steps[0].request.headers.x-workflow-id");
    free(t);
}
END_TEST

START_TEST(too_many_steps_is_refused)
{
    char *steps = calloc(1, 64 * (WF_MAX_STEPS + 2));
    size_t len = 0;
    for (int i = 0; i <= WF_MAX_STEPS; i++)
        len += (size_t)sprintf(steps + len,
                               "%s{\"name\": \"s%d\", \"upstream\": \"ledger\", \"request\": "
                               "{\"path\": \"/\"}}",
                               i ? "," : "", i);
    char *t;
    ck_assert_int_ge(asprintf(&t, "{\"workflows\": [{\"name\": \"w\", \"steps\": [%s]}]}", steps),
                     0);
    expect_err(t, "has 33 steps; at most 32", "[{\"name\": \"s0\"", "workflows[0].steps");
    free(t);
    free(steps);
}
END_TEST

/* ---- expansion -------------------------------------------------------------- */

struct run {
    struct wf_set *s;
    const struct wf_def *w;
    json_t *input;
    struct wf_step_result res[2];
    struct wf_ctx c;
};

static void run_init(struct run *r)
{
    r->s = load_ok(transfer);
    r->w = wf_set_def(r->s, 0);
    r->input = json_pack("{s:s, s:s, s:i}", "from", "acc 1/ä", "to", "B", "amount", 250);
    memset(r->res, 0, sizeof r->res);
    r->c = (struct wf_ctx){.id = "0123456789abcdef0123456789abcdef",
                           .name = "transfer",
                           .input = r->input,
                           .steps = r->res};
}

static void run_done(struct run *r)
{
    json_decref(r->input);
    for (int i = 0; i < 2; i++)
        json_decref(r->res[i].body);
    wf_set_unref(r->s);
}

static char *body_text(json_t *v)
{
    char *s = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_ptr_nonnull(s);
    return s;
}

START_TEST(path_placeholders_are_percent_encoded)
{
    struct run r;
    run_init(&r);
    char *out, err[256];
    size_t len;
    ck_assert_int_eq(
        wf_expand_string(r.w->steps[0].request.path, &r.c, &out, &len, err, sizeof err), 0);
    ck_assert_str_eq(out, "/accounts/acc%201%2F%C3%A4/debit");
    ck_assert_uint_eq(len, strlen(out));
    free(out);
    ck_assert_int_eq(
        wf_expand_string(r.w->steps[0].request.headers[0].value, &r.c, &out, &len, err, sizeof err),
        0);
    ck_assert_str_eq(out, "transfer/0123456789abcdef0123456789abcdef");
    free(out);
    run_done(&r);
}
END_TEST

/* A value cannot add a segment ('/' is encoded) and cannot make one that a
 * backend resolves or merges into another resource either: "..", "." or
 * empty. The query is data: dots there are kept. */
START_TEST(path_placeholders_cannot_make_dot_or_empty_segments)
{
    const char *t = "{\"workflows\": [{\"name\": \"w\", \"input\": {\"x\": \"string\"},\n"
                    "\"steps\": [{\"name\": \"s\", \"upstream\": \"ledger\", \"request\": "
                    "{\"path\": \"/a/${input.x}/b?q=${input.x}\"}},\n"
                    "{\"name\": \"t\", \"upstream\": \"ledger\", \"request\": "
                    "{\"path\": \"/c/.${input.x}\"}}]}]}";
    struct wf_set *s = load_ok(t);
    const struct wf_def *w = wf_set_def(s, 0);
    static const struct {
        int step;
        const char *x, *want; /* want NULL: refused */
    } cases[] = {
        {0, "..", NULL},
        {0, ".", NULL},
        {0, "", NULL},
        {0, "...", "/a/.../b?q=..."},
        {0, "a..b", "/a/a..b/b?q=a..b"},
        {0, "../x", "/a/..%2Fx/b?q=..%2Fx"},
        {0, "?#", "/a/%3F%23/b?q=%3F%23"},
        {1, ".", NULL}, /* the template's '.' and the value's make ".." */
        {1, "", NULL},  /* "." */
        {1, "x", "/c/.x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *in = json_pack("{s:s}", "x", cases[i].x);
        struct wf_ctx c = {.id = "i", .name = "w", .input = in};
        char *out = NULL, err[256] = "";
        int r =
            wf_expand_string(w->steps[cases[i].step].request.path, &c, &out, NULL, err, sizeof err);
        if (cases[i].want) {
            ck_assert_msg(r == 0, "\"%s\": %d %s", cases[i].x, r, err);
            ck_assert_str_eq(out, cases[i].want);
        } else {
            ck_assert_msg(r == -EINVAL, "\"%s\" gave %d (%s)", cases[i].x, r, out ? out : "");
            ck_assert_ptr_null(out);
            ck_assert_ptr_nonnull(strstr(err, "${input.x}: the value would make a path segment"));
        }
        free(out);
        json_decref(in);
    }
    wf_set_unref(s);
}
END_TEST

/* Each reference to a value shares it, but the body written out copies it
 * once per reference: the expanded body as a whole is bounded (4 MiB). */
START_TEST(expanded_bodies_are_bounded)
{
    const char *t = "{\"workflows\": [{\"name\": \"w\", \"input\": {\"big\": \"string\"},\n"
                    "\"steps\": [{\"name\": \"s\", \"upstream\": \"ledger\", \"request\": "
                    "{\"path\": \"/x\", \"body\": [\"${input.big}\", \"${input.big}\", "
                    "\"${input.big}\"]}},\n"
                    "{\"name\": \"t\", \"upstream\": \"ledger\", \"request\": "
                    "{\"path\": \"/x\", \"body\": [\"${input.big}\", \"${input.big}\", "
                    "\"${input.big}\", \"${input.big}\", \"${input.big}\"]}}]}]}";
    struct wf_set *s = load_ok(t);
    const struct wf_def *w = wf_set_def(s, 0);
    size_t n = 1000 * 1000;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'a', n);
    big[n] = '\0';
    json_t *in = json_pack("{s:s}", "big", big);
    struct wf_ctx c = {.id = "i", .name = "w", .input = in};
    json_t *b = NULL;
    char err[256];
    ck_assert_int_eq(wf_expand_json(w->steps[0].request.body, &c, &b, err, sizeof err), 0);
    ck_assert_uint_eq(json_array_size(b), 3);
    json_decref(b);
    b = NULL;
    ck_assert_int_eq(wf_expand_json(w->steps[1].request.body, &c, &b, err, sizeof err), -E2BIG);
    ck_assert_str_eq(err, "the expanded body is over 4194304 bytes");
    ck_assert_ptr_null(b);
    json_decref(in);
    free(big);
    wf_set_unref(s);
}
END_TEST

START_TEST(a_lone_placeholder_keeps_its_type)
{
    struct run r;
    run_init(&r);
    json_t *b;
    char err[256];
    ck_assert_int_eq(wf_expand_json(r.w->steps[0].request.body, &r.c, &b, err, sizeof err), 0);
    char *s = body_text(b);
    /* "${input.amount}" is the integer; "t-${workflow.id}" text */
    ck_assert_str_eq(s, "{\"amount\":250,\"ref\":\"t-0123456789abcdef0123456789abcdef\"}");
    free(s);
    json_decref(b);
    /* a step's body, an object, and its status, an integer */
    r.res[0].status = 201;
    r.res[0].body = json_pack("{s:i, s:{s:b}}", "entry", 77, "meta", "x", 1);
    r.res[1].status = 200;
    ck_assert_int_eq(wf_expand_json(r.w->steps[1].request.body, &r.c, &b, err, sizeof err), 0);
    s = body_text(b);
    ck_assert_str_eq(s, "{\"after\":77,\"amount\":250}");
    free(s);
    json_decref(b);
    ck_assert_int_eq(wf_expand_json(r.w->completed.body, &r.c, &b, err, sizeof err), 0);
    s = body_text(b);
    ck_assert_str_eq(s, "{\"code\":200,\"debit\":{\"entry\":77,\"meta\":{\"x\":true}}}");
    free(s);
    json_decref(b);
    run_done(&r);
}
END_TEST

START_TEST(text_interpolation_writes_json_for_non_strings)
{
    const char *t = "{\"workflows\": [{\"name\": \"w\", \"input\": {\"n\": \"number\", \"o\": "
                    "\"object\", \"b\": \"boolean\", \"a\": \"array\"},\n"
                    "\"steps\": [{\"name\": \"s\", \"upstream\": \"ledger\", \"request\": "
                    "{\"path\": \"/x\", \"body\": \"n=${input.n} o=${input.o} b=${input.b} "
                    "a=${input.a.1} $${input.n} cost $5\"}}]}]}";
    struct wf_set *s = load_ok(t);
    const struct wf_def *w = wf_set_def(s, 0);
    json_t *in =
        json_pack("{s:f, s:{s:i}, s:b, s:[i,s]}", "n", 1.5, "o", "k", 1, "b", 0, "a", 1, "z");
    struct wf_ctx c = {.id = "i", .name = "w", .input = in};
    json_t *b;
    char err[256];
    ck_assert_int_eq(wf_expand_json(w->steps[0].request.body, &c, &b, err, sizeof err), 0);
    ck_assert_str_eq(json_string_value(b), "n=1.5 o={\"k\":1} b=false a=z ${input.n} cost $5");
    json_decref(b);
    json_decref(in);
    wf_set_unref(s);
}
END_TEST

START_TEST(missing_values_are_enoent_not_null)
{
    struct run r;
    run_init(&r);
    json_t *b = NULL;
    char err[256];
    /* the debit has not answered */
    ck_assert_int_eq(wf_expand_json(r.w->steps[1].request.body, &r.c, &b, err, sizeof err),
                     -ENOENT);
    ck_assert_str_eq(err, "${steps.debit.body.entry}: the step's answer has no JSON body");
    ck_assert_ptr_null(b);
    /* it answered, without the key */
    r.res[0].status = 201;
    r.res[0].body = json_pack("{s:i}", "other", 1);
    ck_assert_int_eq(wf_expand_json(r.w->steps[1].request.body, &r.c, &b, err, sizeof err),
                     -ENOENT);
    ck_assert_str_eq(err, "${steps.debit.body.entry}: no such value");
    /* a status not known */
    ck_assert_int_eq(wf_expand_json(r.w->completed.body, &r.c, &b, err, sizeof err), -ENOENT);
    ck_assert_str_eq(err, "${steps.credit.status}: the step has no answer");
    /* an optional input key not given */
    const char *t = "{\"workflows\": [{\"name\": \"w\", \"input\": {\"note\": {\"type\": "
                    "\"string\", \"required\": false}},\n"
                    "\"steps\": [{\"name\": \"s\", \"upstream\": \"ledger\", \"request\": "
                    "{\"path\": \"/x/${input.note}\"}}]}]}";
    struct wf_set *s = load_ok(t);
    json_t *in = json_object();
    struct wf_ctx c = {.id = "i", .name = "w", .input = in};
    char *out = NULL;
    ck_assert_int_eq(
        wf_expand_string(wf_set_def(s, 0)->steps[0].request.path, &c, &out, NULL, err, sizeof err),
        -ENOENT);
    ck_assert_str_eq(err, "${input.note}: no such value");
    ck_assert_ptr_null(out);
    json_decref(in);
    wf_set_unref(s);
    run_done(&r);
}
END_TEST

START_TEST(header_values_refuse_control_characters)
{
    const char *t = "{\"workflows\": [{\"name\": \"w\", \"input\": {\"who\": \"string\"},\n"
                    "\"steps\": [{\"name\": \"s\", \"upstream\": \"ledger\", \"request\": "
                    "{\"path\": \"/x\", \"headers\": {\"x-who\": \"u:${input.who}\"}}}]}]}";
    struct wf_set *s = load_ok(t);
    json_t *in = json_pack("{s:s}", "who", "a\r\nx-evil: 1");
    struct wf_ctx c = {.id = "i", .name = "w", .input = in};
    char *out = NULL, err[256];
    ck_assert_int_eq(wf_expand_string(wf_set_def(s, 0)->steps[0].request.headers[0].value, &c, &out,
                                      NULL, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "${input.who}: a header value cannot hold control characters");
    ck_assert_ptr_null(out);
    json_decref(in);
    wf_set_unref(s);
}
END_TEST

/* ---- the input check --------------------------------------------------------- */

static void check_input(const struct wf_def *w, const char *json, int want, const char *msg)
{
    json_t *in = json_loads(json, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(in);
    char err[256] = "";
    ck_assert_int_eq(wf_input_check(w, in, err, sizeof err), want);
    if (msg)
        ck_assert_str_eq(err, msg);
    json_decref(in);
}

START_TEST(input_check_rules)
{
    struct wf_set *s = load_ok(transfer);
    const struct wf_def *w = wf_set_def(s, 0);
    check_input(w, "{\"from\": \"A\", \"to\": \"B\", \"amount\": 5}", 0, NULL);
    check_input(w, "{\"from\": \"A\", \"to\": \"B\", \"amount\": 5, \"note\": \"hi\"}", 0, NULL);
    check_input(w, "{\"from\": \"A\", \"to\": \"B\"}", -EINVAL, "input.amount: required (integer)");
    check_input(w, "{\"from\": \"A\", \"to\": \"B\", \"amount\": 5.5}", -EINVAL,
                "input.amount: expected integer, got a number with a fraction");
    check_input(w, "{\"from\": \"A\", \"to\": \"B\", \"amount\": \"5\"}", -EINVAL,
                "input.amount: expected integer, got a string");
    check_input(w, "{\"from\": \"A\", \"to\": \"B\", \"amount\": 5, \"nte\": \"x\"}", -EINVAL,
                "input.nte: unknown key; did you mean \"note\"?");
    check_input(w, "{\"from\": \"A\", \"to\": \"B\", \"amount\": 5, \"zzzz\": 1}", -EINVAL,
                "input.zzzz: unknown key");
    check_input(w, "[1]", -EINVAL, "input: expected a JSON object, got an array");
    char err[100];
    ck_assert_int_eq(wf_input_check(w, NULL, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "input: expected a JSON object, got no body");
    wf_set_unref(s);
    /* no input declared: no body, or an empty object */
    s = load_ok("{\"workflows\": [{\"name\": \"w\", \"steps\": [{\"name\": \"a\", "
                "\"upstream\": \"ledger\", \"request\": {\"path\": \"/x\"}}]}]}");
    ck_assert_int_eq(wf_input_check(wf_set_def(s, 0), NULL, err, sizeof err), 0);
    check_input(wf_set_def(s, 0), "{}", 0, NULL);
    check_input(wf_set_def(s, 0), "{\"a\": 1}", -EINVAL, "input.a: unknown key");
    wf_set_unref(s);
}
END_TEST

START_TEST(key_table_lists_every_key)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    jpos_keys_print(f, &wf_file_keys, "");
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "workflows[].steps[].retry.backoff_max_ms\t"));
    ck_assert_ptr_nonnull(strstr(buf, "workflows[].idempotency.ttl_ms\t"));
    ck_assert_ptr_nonnull(strstr(buf, "workflows[].response.completed.status\t"));
    free(buf);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("wf_def");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, transfer_compiles_with_defaults);
    tcase_add_test(tc, async_mode_waits_zero);
    tcase_add_test(tc, version_ignores_layout_and_key_order);
    tcase_add_test(tc, from_text_round_trip);
    tcase_add_test(tc, missing_directory_is_an_empty_set);
    tcase_add_test(tc, directory_files_report_their_names);
    tcase_add_test(tc, key_table_lists_every_key);
    suite_add_tcase(s, tc);
    tc = tcase_create("validate");
    tcase_add_test(tc, unknown_keys_suggest_the_closest);
    tcase_add_test(tc, shape_errors);
    tcase_add_test(tc, unknown_upstream_suggests);
    tcase_add_test(tc, placeholder_errors);
    tcase_add_test(tc, step_references_are_checked);
    tcase_add_test(tc, unknown_step_lists_only_named_steps);
    tcase_add_test(tc, input_declaration_errors);
    tcase_add_test(tc, status_lists_and_headers);
    tcase_add_test(tc, gateway_written_headers_cannot_be_set);
    tcase_add_test(tc, too_many_steps_is_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("expand");
    tcase_add_test(tc, path_placeholders_are_percent_encoded);
    tcase_add_test(tc, path_placeholders_cannot_make_dot_or_empty_segments);
    tcase_add_test(tc, expanded_bodies_are_bounded);
    tcase_add_test(tc, a_lone_placeholder_keeps_its_type);
    tcase_add_test(tc, text_interpolation_writes_json_for_non_strings);
    tcase_add_test(tc, missing_values_are_enoent_not_null);
    tcase_add_test(tc, header_values_refuse_control_characters);
    tcase_add_test(tc, input_check_rules);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

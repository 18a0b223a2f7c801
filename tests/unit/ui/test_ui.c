/*
 * test_ui.c: the dashboard's files as gw_ui_serve answers them: types and
 * the headers every /ui answer carries, entity tags and 304, the redirect
 * of /ui, 405, and names outside the embedded table (dot segments,
 * escapes, hidden files) refused.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/http1.h"
#include "ui/ui.h"

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src "
                          "'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri "
                          "'none'; form-action 'none'";

/* gw_ui_serve for `method path` with the header lines `fields` (each
 * ending in CRLF). The caller frees resp->body. */
static void serve(const char *method, const char *path, const char *fields,
                  struct gw_admin_response *resp)
{
    char text[2048];
    /* The head's target is not read (the request's path is): it is one
     * the parser takes whatever `path` holds. */
    snprintf(text, sizeof text, "%s /ui/ HTTP/1.1\r\nHost: 127.0.0.1:9901\r\n%s\r\n", method,
             fields ? fields : "");
    struct gw_http_parser *p = NULL;
    ck_assert_int_eq(gw_http_parser_new(&p, GW_HTTP_REQUEST, NULL), 0);
    struct gw_http_event ev;
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, text, strlen(text), &used, &ev), 0);
    ck_assert_int_eq(ev.type, GW_HTTP_EV_HEAD);
    gw_http_parser_free(p);
    /* The path as given, not canonicalised: serve.c must hold on its own. */
    struct gw_admin_request req = {.head = ev.head, .path = path};
    memset(resp, 0x5a, sizeof *resp);
    gw_ui_serve(&req, resp);
    gw_http_head_free(ev.head);
}

static const char *field(const struct gw_admin_response *resp, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < resp->nfields; i++)
        if (strcmp(resp->fields[i].name, name) == 0) {
            ck_assert_msg(v == NULL, "%s given twice", name);
            v = resp->fields[i].value;
        }
    return v;
}

static void assert_ui_headers(const struct gw_admin_response *resp)
{
    ck_assert_ptr_nonnull(field(resp, "Content-Security-Policy"));
    ck_assert_str_eq(field(resp, "Content-Security-Policy"), CSP);
    ck_assert_str_eq(field(resp, "X-Frame-Options"), "DENY");
    ck_assert_str_eq(field(resp, "X-Content-Type-Options"), "nosniff");
    ck_assert_str_eq(field(resp, "Referrer-Policy"), "no-referrer");
    ck_assert_str_eq(resp->cache_control, "no-cache");
}

static const struct gw_ui_file *file(const char *name)
{
    const struct gw_ui_file *f = gw_ui_find(name, strlen(name));
    ck_assert_msg(f != NULL, "%s is not embedded", name);
    return f;
}

START_TEST(ui_serves_index_and_files_with_their_type_and_the_security_headers)
{
    struct gw_admin_response resp;
    serve("GET", "/ui/", NULL, &resp);
    const struct gw_ui_file *index = file("index.html");
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.content_type, "text/html; charset=utf-8");
    ck_assert_uint_eq(resp.body_len, index->len);
    ck_assert(memcmp(resp.body, index->data, index->len) == 0);
    ck_assert_int_eq(resp.body[resp.body_len], 0); /* as every admin answer's body */
    ck_assert_str_eq(field(&resp, "ETag"), index->etag);
    assert_ui_headers(&resp);
    free(resp.body);

    static const struct {
        const char *path, *type;
    } files[] = {
        {"/ui/index.html", "text/html; charset=utf-8"},
        {"/ui/app.js", "text/javascript; charset=utf-8"},
        {"/ui/views/overview.js", "text/javascript; charset=utf-8"},
        {"/ui/style.css", "text/css; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        serve("GET", files[i].path, NULL, &resp);
        const struct gw_ui_file *f = file(files[i].path + 4);
        ck_assert_int_eq(resp.status, 200);
        ck_assert_str_eq(resp.content_type, files[i].type);
        ck_assert_uint_eq(resp.body_len, f->len);
        ck_assert(memcmp(resp.body, f->data, f->len) == 0);
        ck_assert_str_eq(field(&resp, "ETag"), f->etag);
        assert_ui_headers(&resp);
        free(resp.body);
    }
    /* HEAD: the same answer (the exchange leaves the body out). */
    serve("HEAD", "/ui/app.js", NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_uint_eq(resp.body_len, file("app.js")->len);
    free(resp.body);
}
END_TEST

START_TEST(ui_answers_304_when_if_none_match_names_the_files_tag)
{
    const struct gw_ui_file *f = file("app.js");
    char fields[512];
    struct gw_admin_response resp;
    /* Before the tag, the tag or not, after it. */
    static const struct {
        const char *before;
        bool tag;
        const char *after;
    } matching[] = {
        {"", true, ""},
        {"W/", true, ""},
        {"\"other\", ", true, ""},
        {"\"other\" ,W/", true, " , \"x\""},
        {"*", false, ""},
    };
    for (size_t i = 0; i < sizeof matching / sizeof matching[0]; i++) {
        char value[256];
        snprintf(value, sizeof value, "%s%s%s", matching[i].before, matching[i].tag ? f->etag : "",
                 matching[i].after);
        snprintf(fields, sizeof fields, "If-None-Match: %s\r\n", value);
        serve("GET", "/ui/app.js", fields, &resp);
        ck_assert_msg(resp.status == 304, "%s: %d", value, resp.status);
        ck_assert_ptr_null(resp.body);
        ck_assert_uint_eq(resp.body_len, 0);
        ck_assert_str_eq(field(&resp, "ETag"), f->etag);
        assert_ui_headers(&resp);
    }
    /* The tag on a second field line counts too. */
    snprintf(fields, sizeof fields, "If-None-Match: \"a\"\r\nIf-None-Match: %s\r\n", f->etag);
    serve("GET", "/ui/app.js", fields, &resp);
    ck_assert_int_eq(resp.status, 304);
    /* Another file's tag, a tag without its quotes, a prefix of it: 200. */
    char bare[128];
    snprintf(bare, sizeof bare, "%.*s", (int)strlen(f->etag) - 2, f->etag + 1);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%.*s\"", (int)strlen(f->etag) - 3, f->etag);
    const char *other[] = {file("index.html")->etag, bare, prefix, "W/", ""};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        snprintf(fields, sizeof fields, "If-None-Match: %s\r\n", other[i]);
        serve("GET", "/ui/app.js", fields, &resp);
        ck_assert_msg(resp.status == 200, "%s: %d", other[i], resp.status);
        ck_assert_uint_eq(resp.body_len, f->len);
        free(resp.body);
    }
}
END_TEST

START_TEST(ui_redirects_its_bare_path_and_refuses_methods_but_get_and_head)
{
    struct gw_admin_response resp;
    serve("GET", "/ui", NULL, &resp);
    ck_assert_int_eq(resp.status, 308);
    ck_assert_str_eq(field(&resp, "Location"), "/ui/");
    assert_ui_headers(&resp);
    free(resp.body);
    const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    const char *paths[] = {"/ui", "/ui/", "/ui/app.js", "/ui/missing"};
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++)
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
            serve(methods[m], paths[p], NULL, &resp);
            ck_assert_msg(resp.status == 405, "%s %s: %d", methods[m], paths[p], resp.status);
            ck_assert_str_eq(resp.allow, "GET, HEAD");
            ck_assert_str_eq(resp.content_type, "application/json");
            assert_ui_headers(&resp);
            free(resp.body);
        }
}
END_TEST

START_TEST(ui_refuses_names_outside_the_table_dot_segments_and_escapes)
{
    /* Each would name an embedded file (or a source file beside www/) if a
     * path were resolved, decoded or trimmed anywhere. */
    const char *paths[] = {
        "/ui/missing.js",
        "/ui/views/../app.js",
        "/ui/./app.js",
        "/ui//app.js",
        "/ui/views//overview.js",
        "/ui/../ui/app.js",
        "/ui/../serve.c",
        "/ui/..",
        "/ui/%2e%2e/serve.c",
        "/ui/%61pp.js",
        "/ui/app%2Ejs",
        "/ui/views%2Foverview.js",
        "/ui/app.js%00",
        "/ui/app.js/",
        "/ui/views/",
        "/ui/views",
        "/ui/.app.js",
        "/ui/views/.overview.js",
        "/ui/APP.JS",
        "/ui/app.js;x",
        "/ui/app.js\\",
        "/ui/\\app.js",
        "/ui/app.js ",
        "/uiapp.js",
    };
    struct gw_admin_response resp;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        serve("GET", paths[i], NULL, &resp);
        ck_assert_msg(resp.status == 404, "%s: %d", paths[i], resp.status);
        ck_assert_str_eq(resp.content_type, "application/json");
        ck_assert_ptr_null(field(&resp, "ETag"));
        assert_ui_headers(&resp);
        free(resp.body);
    }
    ck_assert_ptr_null(gw_ui_find("views/../app.js", 15));
    ck_assert_ptr_null(gw_ui_find("app.js", 5)); /* a prefix is not the name */
    ck_assert_ptr_null(gw_ui_find("", 0));
    ck_assert_ptr_nonnull(gw_ui_find("app.js", 6));
}
END_TEST

START_TEST(ui_owns_its_prefix_only)
{
    ck_assert(gw_ui_owns("/ui"));
    ck_assert(gw_ui_owns("/ui/"));
    ck_assert(gw_ui_owns("/ui/views/overview.js"));
    ck_assert(!gw_ui_owns("/uix"));
    ck_assert(!gw_ui_owns("/u"));
    ck_assert(!gw_ui_owns("/"));
    ck_assert(!gw_ui_owns("/admin/ui"));
    ck_assert(!gw_ui_owns("/UI/"));
    ck_assert(!gw_ui_owns(NULL));
}
END_TEST

START_TEST(ui_table_is_in_name_order_with_a_tag_per_content)
{
    ck_assert_uint_ge(gw__ui_nfiles, 5);
    for (size_t i = 0; i < gw__ui_nfiles; i++) {
        const struct gw_ui_file *f = &gw__ui_files[i];
        if (i)
            ck_assert_msg(strcmp(gw__ui_files[i - 1].name, f->name) < 0, "%s before %s",
                          gw__ui_files[i - 1].name, f->name);
        ck_assert_ptr_eq(gw_ui_find(f->name, strlen(f->name)), f);
        size_t n = strlen(f->etag);
        ck_assert_msg(n > 2 && f->etag[0] == '"' && f->etag[n - 1] == '"', "%s", f->etag);
        ck_assert_uint_gt(f->len, 0);
        for (size_t j = 0; j < i; j++)
            if (gw__ui_files[j].len != f->len || memcmp(gw__ui_files[j].data, f->data, f->len))
                ck_assert_str_ne(gw__ui_files[j].etag, f->etag);
    }
}
END_TEST

static Suite *ui_suite(void)
{
    Suite *s = suite_create("ui");
    TCase *tc = tcase_create("serve");
    tcase_add_test(tc, ui_serves_index_and_files_with_their_type_and_the_security_headers);
    tcase_add_test(tc, ui_answers_304_when_if_none_match_names_the_files_tag);
    tcase_add_test(tc, ui_redirects_its_bare_path_and_refuses_methods_but_get_and_head);
    tcase_add_test(tc, ui_refuses_names_outside_the_table_dot_segments_and_escapes);
    tcase_add_test(tc, ui_owns_its_prefix_only);
    tcase_add_test(tc, ui_table_is_in_name_order_with_a_tag_per_content);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ui_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

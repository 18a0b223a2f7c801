/* test_jwt_fetch.c: key sets by URL, through the jwt kind's verification
 * (gw__jwt_authenticate) in processes of a running runtime, against a
 * JWKS served by a thread of the test that counts its requests: the
 * first token fetches the set; a token naming an unknown kid makes one
 * fetch, however many ask at once, and none more within
 * refresh_min_interval_s; a rotated kid is picked up; a failed fetch
 * keeps the last good set. Linked into test_jwt (main there). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jpos/json.h"
#include "jwt_keys.h"
#include "policy/jwt_int.h"
#include "rt/rt.h"
#include "rt/supervisor.h"

extern const struct gw_pol_kind gw__pol_kind_jwt;

/* ---- the issuer ------------------------------------------------------------ */

static pthread_mutex_t srv_lock = PTHREAD_MUTEX_INITIALIZER;
static char srv_body[16384];
static bool srv_fail;
static atomic_int srv_requests;
static int srv_fd = -1;
static int srv_port;
static pthread_t srv_thread;

static void serve(const char *keys_json, bool fail)
{
    pthread_mutex_lock(&srv_lock);
    snprintf(srv_body, sizeof srv_body, "{\"keys\":[%s]}", keys_json);
    srv_fail = fail;
    pthread_mutex_unlock(&srv_lock);
}

static void *srv_main(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(srv_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[4096];
        size_t n = 0;
        while (n < sizeof req - 1) {
            ssize_t r = read(c, req + n, sizeof req - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            req[n] = 0;
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        atomic_fetch_add(&srv_requests, 1);
        char out[20000];
        pthread_mutex_lock(&srv_lock);
        int len = srv_fail ? snprintf(out, sizeof out,
                                      "HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
                                      "0\r\nConnection: close\r\n\r\n")
                           : snprintf(out, sizeof out,
                                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                      strlen(srv_body), srv_body);
        pthread_mutex_unlock(&srv_lock);
        ssize_t w = write(c, out, (size_t)len);
        (void)w;
        close(c);
    }
}

static void srv_start(void)
{
    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    ck_assert_int_eq(bind(srv_fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(srv_fd, 64), 0);
    ck_assert_int_eq(getsockname(srv_fd, (struct sockaddr *)&a, &al), 0);
    srv_port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&srv_thread, NULL, srv_main, NULL), 0);
}

static void srv_stop(void)
{
    shutdown(srv_fd, SHUT_RDWR);
    pthread_join(srv_thread, NULL);
    close(srv_fd);
}

/* ---- the policy ------------------------------------------------------------ */

static void *compile(const char *json)
{
    struct jpos_doc doc;
    struct jpos_diags d;
    jpos_diags_init(&d);
    ck_assert_int_eq(jpos_doc_parse(&doc, "test.json", json, strlen(json), &d), 0);
    struct jpos_val root;
    jpos_val_root(&doc, &root);
    struct gw_pol_env env = {.dir = "."};
    void *state = NULL;
    int rc = gw__pol_kind_jwt.compile(&d, &root, &env, &state);
    if (rc != 0)
        jpos_diags_print(&d, stderr);
    ck_assert_int_eq(rc, 0);
    jpos_doc_done(&doc);
    jpos_diags_done(&d);
    return state;
}

static void *pol;
static char *tok_k1, *tok_k2, *tok_made_up;

/* Results the processes write and the test thread checks. */
struct outcome {
    int rc;
    const char *reason;
};

static struct outcome auth(const char *tok)
{
    struct gw_jwt t;
    struct gw_jwt_refusal f = {0};
    struct outcome o;
    o.rc = gw__jwt_authenticate(pol, tok, strlen(tok), 1700000000, &t, &f);
    o.reason = o.rc == 0 ? NULL : f.reason;
    gw_jwt_done(&t);
    return o;
}

static void made_up_kid(void *arg)
{
    struct outcome *o = arg;
    *o = auth(tok_made_up);
}

enum { NSTEPS = 16, NPAR = 8 };
static struct outcome steps[NSTEPS];
static int fetches_at[NSTEPS];
static struct outcome par[NPAR];

static int fetches(void)
{
    return atomic_load(&srv_requests);
}

static void scenario(void *arg)
{
    (void)arg;
    rt_pid sup;
    rt_atom reason;
    if (gw_jwks_sup_start(NULL, NULL, 0, &sup, &reason) != 0)
        return;
    int k = 0;
    /* 0: the first token fetches the set. */
    steps[k] = auth(tok_k1);
    fetches_at[k++] = fetches();
    /* 1: a made-up kid right after: within the interval, no fetch. */
    steps[k] = auth(tok_made_up);
    fetches_at[k++] = fetches();
    /* 2: once the interval is over, made-up kids from many processes at
     * once: one fetch. */
    rt_sleep(1100);
    rt_pid pids[NPAR];
    for (int i = 0; i < NPAR; i++)
        rt_spawn(made_up_kid, &par[i], &(struct rt_spawn_opts){.link = false}, &pids[i]);
    for (int i = 0; i < NPAR; i++) {
        rt_ref m = rt_monitor(pids[i]);
        rt_msg_free(rt_receive_ref(m, 10000));
    }
    steps[k] = auth(tok_made_up);
    fetches_at[k++] = fetches();
    /* 3: the issuer rotates in k2: its first token within the interval is
     * refused, without a fetch. */
    char both[8192];
    snprintf(both, sizeof both, "%s,%s", tk_jwk("rsa", "k1", NULL), tk_jwk("ec256", "k2", NULL));
    serve(both, false);
    steps[k] = auth(tok_k2);
    fetches_at[k++] = fetches();
    /* 4: after the interval: fetched, accepted; k1 still valid. */
    rt_sleep(1100);
    steps[k] = auth(tok_k2);
    fetches_at[k++] = fetches();
    steps[k] = auth(tok_k1);
    fetches_at[k++] = fetches();
    /* 6: the issuer fails; a fetch is tried (a made-up kid) and fails:
     * the last good set stays. */
    serve("", true);
    rt_sleep(1100);
    steps[k] = auth(tok_made_up);
    fetches_at[k++] = fetches();
    steps[k] = auth(tok_k2);
    fetches_at[k++] = fetches();
    steps[k] = auth(tok_k1);
    fetches_at[k++] = fetches();
    /* 9: k1 removed by the issuer: refused once fetched again. */
    serve(tk_jwk("ec256", "k2", NULL), false);
    rt_sleep(1100);
    steps[k] = auth(tok_made_up);
    fetches_at[k++] = fetches();
    steps[k] = auth(tok_k1);
    fetches_at[k++] = fetches();
    rt_exit_signal(sup, RT_SHUTDOWN);
}

START_TEST(unknown_kid_triggers_one_fetch_within_the_interval_and_failures_keep_the_last_set)
{
    srv_start();
    serve(tk_jwk("rsa", "k1", NULL), false);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"name\": \"idp\", \"type\": \"jwt\", \"algorithms\": [\"RS256\", \"ES256\"], "
             "\"jwks_url\": \"http://127.0.0.1:%d/keys.json\", \"refresh_min_interval_s\": 1}",
             srv_port);
    pol = compile(json);
    tok_k1 =
        tk_token("RS256", "{\"alg\":\"RS256\",\"kid\":\"k1\"}", "{\"sub\":\"a\"}", "rsa", NULL, 0);
    tok_k2 = tk_token("ES256", "{\"alg\":\"ES256\",\"kid\":\"k2\"}", "{\"sub\":\"a\"}", "ec256",
                      NULL, 0);
    tok_made_up = tk_token("RS256", "{\"alg\":\"RS256\",\"kid\":\"made-up\"}", "{\"sub\":\"a\"}",
                           "rsa", NULL, 0);
    struct rt_config c;
    rt_config_default(&c);
    c.schedulers = 2;
    ck_assert_int_eq(rt_start(&c), 0);
    rt_pid pid;
    ck_assert_int_eq(rt_spawn(scenario, NULL, NULL, &pid), 0);
    rt_atom reason;
    ck_assert_int_eq(rt_join(pid, 60000, &reason), 0);
    rt_stop();
    srv_stop();

    /* 0: fetched once, accepted. */
    ck_assert_int_eq(steps[0].rc, 0);
    ck_assert_int_eq(fetches_at[0], 1);
    /* 1: made-up kid within the interval: refused, no fetch. */
    ck_assert_int_eq(steps[1].rc, -EACCES);
    ck_assert_str_eq(steps[1].reason, "unknown_kid");
    ck_assert_int_eq(fetches_at[1], 1);
    /* 2: NPAR + 1 made-up kids after the interval: one fetch. */
    for (int i = 0; i < NPAR; i++)
        ck_assert_str_eq(par[i].reason, "unknown_kid");
    ck_assert_int_eq(fetches_at[2], 2);
    /* 3: the new kid within the interval: refused, no fetch. */
    ck_assert_str_eq(steps[3].reason, "unknown_kid");
    ck_assert_int_eq(fetches_at[3], 2);
    /* 4, 5: after it: the new kid accepted (one fetch), the old one too. */
    ck_assert_int_eq(steps[4].rc, 0);
    ck_assert_int_eq(fetches_at[4], 3);
    ck_assert_int_eq(steps[5].rc, 0);
    ck_assert_int_eq(fetches_at[5], 3);
    /* 6, 7, 8: a failed fetch keeps both keys. */
    ck_assert_str_eq(steps[6].reason, "unknown_kid");
    ck_assert_int_eq(fetches_at[6], 4);
    ck_assert_int_eq(steps[7].rc, 0);
    ck_assert_int_eq(steps[8].rc, 0);
    ck_assert_int_eq(fetches_at[8], 4);
    /* 9, 10: k1 removed: refused after the next fetch. */
    ck_assert_int_eq(fetches_at[9], 5);
    ck_assert_int_eq(steps[10].rc, -EACCES);
    ck_assert_str_eq(steps[10].reason, "unknown_kid");
    ck_assert_int_eq(fetches_at[10], 5);
    gw__pol_kind_jwt.free(pol);
    free(tok_k1);
    free(tok_k2);
    free(tok_made_up);
}
END_TEST

START_TEST(describe_shows_no_secret_and_owned_names_the_forwarded_fields)
{
    const char *secret = "a secret of more than thirty-two bytes, never shown";
    setenv("TEST_JWT_SECRET", secret, 1);
    void *p = compile("{\"name\": \"hs\", \"type\": \"jwt\", \"algorithms\": [\"HS256\"], "
                      "\"secret_env\": \"TEST_JWT_SECRET\", "
                      "\"forward_claims\": {\"sub\": \"X-JWT-Sub\", \"tier\": \"x-tier\"}}");
    json_t *d = gw__pol_kind_jwt.describe(p);
    char *text = json_dumps(d, JSON_COMPACT);
    ck_assert_ptr_null(strstr(text, "thirty-two"));
    ck_assert_ptr_nonnull(strstr(text, "\"secret_env\":\"TEST_JWT_SECRET\""));
    const char *names[4];
    size_t n = gw__pol_kind_jwt.owned(p, names, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(names[0], "x-jwt-sub");
    ck_assert_str_eq(names[1], "x-tier");
    ck_assert_uint_eq(gw__pol_kind_jwt.owned(p, names, 1), 1);
    free(text);
    json_decref(d);
    gw__pol_kind_jwt.free(p);
}
END_TEST

Suite *jwt_fetch_suite(void);
Suite *jwt_fetch_suite(void)
{
    Suite *s = suite_create("jwt_fetch");
    TCase *tc = tcase_create("fetch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(
        tc, unknown_kid_triggers_one_fetch_within_the_interval_and_failures_keep_the_last_set);
    tcase_add_test(tc, describe_shows_no_secret_and_owned_names_the_forwarded_fields);
    suite_add_tcase(s, tc);
    return s;
}

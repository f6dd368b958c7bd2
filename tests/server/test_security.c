/*
 * test_security.c - `lossd serve --auth-token-file` end to end: 401 with
 * WWW-Authenticate and a problem document without a token or with a wrong
 * one, 200 with a right one, probes and CORS preflights without any, the
 * token file rotated and reread on SIGHUP (waiting for the reload's log
 * event), a failed reload, files that stop the start, and the OpenAPI
 * document's security. Every test starts its own server on 127.0.0.1,
 * port 0.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define MSE_BODY "{\"input\": [1, 2], \"target\": [1, 4]}"

/* A token file of the test's own: created, rewritten, removed. */
struct token_file {
    char path[64];
};

static void token_file_write(const struct token_file *t, const char *text)
{
    /* written beside and renamed over, as a Secret volume updates */
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%s.new", t->path);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rename(tmp, t->path), 0);
}

static void token_file_init(struct token_file *t, const char *text)
{
    snprintf(t->path, sizeof t->path, "/tmp/lossd-test-tokens-XXXXXX");
    int fd = mkstemp(t->path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    token_file_write(t, text);
}

static struct lossd_proc start_auth(const struct token_file *t,
                                    const char *extra1, const char *extra2)
{
    const char *args[] = {"--auth-token-file", t->path, extra1, extra2, NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    return p;
}

/* A request with an Authorization header of "Bearer token" (NULL: none). */
static void do_req(const struct lossd_proc *p, const char *method,
                   const char *path, const char *token, struct http_resp *r)
{
    char auth[300];
    const char *hdrs[3] = {"Content-Type: application/json", NULL, NULL};
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdrs[1] = auth;
    }
    bool post = !strcmp(method, "POST");
    ck_assert_int_eq(http_do(p, method, path, hdrs, post ? MSE_BODY : NULL,
                             post ? strlen(MSE_BODY) : 0, r),
                     0);
}

static long status_of(const struct lossd_proc *p, const char *method,
                      const char *path, const char *token)
{
    struct http_resp r;
    do_req(p, method, path, token, &r);
    long st = r.status;
    http_resp_release(&r);
    return st;
}

/* r is the 401 of the one status table, with a Bearer challenge. */
static void expect_401(const struct http_resp *r, bool wrong_token)
{
    char buf[256];
    ck_assert_msg(r->status == 401, "status %ld: %s", r->status, r->body);
    ck_assert_str_eq(http_header(r, "Content-Type", buf, sizeof buf),
                     "application/problem+json");
    ck_assert_str_eq(http_json_str(r, "type", buf, sizeof buf),
                     "/problems/unauthorized");
    const char *www = http_header(r, "WWW-Authenticate", buf, sizeof buf);
    ck_assert_ptr_nonnull(www);
    ck_assert_msg(!strncmp(www, "Bearer ", 7), "WWW-Authenticate: %s", www);
    ck_assert_int_eq(strstr(www, "error=\"invalid_token\"") != NULL,
                     wrong_token);
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 401);
    json_decref(j);
}

START_TEST(test_auth_required)
{
    struct token_file t;
    token_file_init(&t, "# lossd's tokens\n\n  tok-a  \ntok-b\n");
    struct lossd_proc p = start_auth(&t, NULL, NULL);
    struct http_resp r;
    /* no token, a wrong one, another scheme: 401 everywhere it is needed */
    static const char *const paths[] = {"/v1/losses", "/openapi.json",
                                        "/metrics"};
    for (size_t i = 0; i < 3; i++) {
        do_req(&p, "GET", paths[i], NULL, &r);
        expect_401(&r, false);
        http_resp_release(&r);
        do_req(&p, "GET", paths[i], "tok-c", &r);
        expect_401(&r, true);
        http_resp_release(&r);
        ck_assert_int_eq(status_of(&p, "GET", paths[i], "tok-a"), 200);
    }
    do_req(&p, "POST", "/v1/mse", NULL, &r);
    expect_401(&r, false);
    http_resp_release(&r);
    do_req(&p, "POST", "/v1/mse", "tok-", &r);
    expect_401(&r, true);
    http_resp_release(&r);
    static const char *const basic[] = {"Authorization: Basic dG9rLWE=", NULL};
    ck_assert_int_eq(http_do(&p, "GET", "/v1/losses", basic, NULL, 0, &r), 0);
    expect_401(&r, true);
    http_resp_release(&r);
    /* every token of the file, on a loss and the batch */
    ck_assert_int_eq(status_of(&p, "POST", "/v1/mse", "tok-a"), 200);
    ck_assert_int_eq(status_of(&p, "POST", "/mse", "tok-b"), 200);
    /* the probes never need one, nor does a preflight */
    ck_assert_int_eq(status_of(&p, "GET", "/healthz", NULL), 200);
    ck_assert_int_eq(status_of(&p, "GET", "/readyz", NULL), 200);
    ck_assert_int_eq(status_of(&p, "HEAD", "/healthz", "wrong"), 200);
    lossd_finish(&p);
    unlink(t.path);
}
END_TEST

START_TEST(test_auth_cors)
{
    struct token_file t;
    token_file_init(&t, "tok-a\n");
    struct lossd_proc p = start_auth(&t, "--cors-origins", "https://a.example");
    struct http_resp r;
    char buf[256];
    static const char *const pre[] = {
        "Origin: https://a.example", "Access-Control-Request-Method: POST",
        "Access-Control-Request-Headers: authorization, content-type", NULL};
    ck_assert_int_eq(http_do(&p, "OPTIONS", "/v1/mse", pre, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 204);
    const char *allow =
        http_header(&r, "Access-Control-Allow-Headers", buf, sizeof buf);
    ck_assert_ptr_nonnull(allow);
    ck_assert_ptr_nonnull(strstr(allow, "Authorization"));
    http_resp_release(&r);
    /* a 401 to a browser: the challenge is readable cross-origin */
    static const char *const post[] = {"Origin: https://a.example",
                                       "Content-Type: application/json", NULL};
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", post, MSE_BODY, strlen(MSE_BODY), &r),
        0);
    expect_401(&r, false);
    ck_assert_str_eq(
        http_header(&r, "Access-Control-Allow-Origin", buf, sizeof buf),
        "https://a.example");
    ck_assert_ptr_nonnull(strstr(
        http_header(&r, "Access-Control-Expose-Headers", buf, sizeof buf),
        "WWW-Authenticate"));
    http_resp_release(&r);
    lossd_finish(&p);
    unlink(t.path);
}
END_TEST

/* How many times needle is in p's stderr. */
static size_t log_count(const struct lossd_proc *p, const char *needle)
{
    char *log = lossd_stderr_read(p);
    size_t n = 0;
    for (const char *at = log; at && (at = strstr(at, needle)) != NULL; at++)
        n++;
    free(log);
    return n;
}

/*
 * Waits until p's stderr holds needle more than `before` times: the event
 * of a reload. The deadline only turns a hang into a failure.
 */
static void wait_log(const struct lossd_proc *p, const char *needle,
                     size_t before)
{
    double end = harness_now() + 60;
    while (log_count(p, needle) <= before) {
        ck_assert_msg(harness_now() < end, "no '%s' in 60 s", needle);
        usleep(5000);
    }
}

START_TEST(test_auth_reload)
{
    static const char ok[] = "\"event\":\"reload\",\"msg\":\"";
    static const char kept[] = "auth tokens not reloaded, 1 kept in force";
    struct token_file t;
    token_file_init(&t, "old-token\n");
    struct lossd_proc p = start_auth(&t, NULL, NULL);
    ck_assert_int_eq(status_of(&p, "GET", "/v1/losses", "old-token"), 200);
    ck_assert_int_eq(status_of(&p, "GET", "/v1/losses", "new-token"), 401);

    /* rotated: the old token refused, the new one accepted */
    token_file_write(&t, "# rotated\nnew-token\n");
    size_t before = log_count(&p, ok);
    ck_assert_int_eq(kill(p.pid, SIGHUP), 0);
    wait_log(&p, ok, before);
    ck_assert(lossd_stderr_contains(&p, "1 auth tokens in force from"));
    ck_assert_int_eq(status_of(&p, "GET", "/v1/losses", "old-token"), 401);
    ck_assert_int_eq(status_of(&p, "POST", "/v1/mse", "new-token"), 200);

    /* emptied by mistake: a warning, and the new token still in force */
    token_file_write(&t, "# nothing\n\n");
    before = log_count(&p, kept);
    ck_assert_int_eq(kill(p.pid, SIGHUP), 0);
    wait_log(&p, kept, before);
    ck_assert(lossd_stderr_contains(&p, "\"level\":\"warn\",\"event\":"
                                        "\"reload\""));
    ck_assert_int_eq(status_of(&p, "POST", "/v1/mse", "new-token"), 200);
    ck_assert_int_eq(status_of(&p, "POST", "/v1/mse", "old-token"), 401);
    /* no token is ever written to the log */
    ck_assert(!lossd_stderr_contains(&p, "new-token"));
    ck_assert(!lossd_stderr_contains(&p, "old-token"));
    /* SIGHUP did not stop it: SIGTERM still drains and exits 0 */
    lossd_finish(&p);
    unlink(t.path);
}
END_TEST

/* Without --auth-token-file nothing needs a token, SIGHUP included. */
START_TEST(test_auth_off)
{
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, NULL), 0);
    ck_assert_int_eq(status_of(&p, "GET", "/v1/losses", NULL), 200);
    ck_assert_int_eq(status_of(&p, "GET", "/metrics", "anything"), 200);
    ck_assert_int_eq(kill(p.pid, SIGHUP), 0);
    wait_log(&p, "nothing to reload", 0);
    ck_assert_int_eq(status_of(&p, "POST", "/v1/mse", NULL), 200);
    lossd_finish(&p);
}
END_TEST

/* A token file that cannot be used stops the start: exit 2, one line. */
START_TEST(test_auth_bad_file)
{
    static const struct {
        const char *text; /* NULL: no file */
        const char *why;
    } cases[] = {
        {NULL, "--auth-token-file: cannot open"},
        {"", "holds no token"},
        {"# only comments\n", "holds no token"},
        {"two words\n", "line 1: a token is visible ASCII"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct token_file t;
        token_file_init(&t, cases[i].text ? cases[i].text : "");
        if (!cases[i].text)
            unlink(t.path);
        const char *args[] = {"--auth-token-file", t.path, NULL};
        struct lossd_proc p;
        ck_assert_int_eq(lossd_start(&p, args), -1);
        ck_assert_msg(lossd_stderr_contains(&p, cases[i].why), "%zu: %s", i,
                      cases[i].why);
        ck_assert(lossd_stderr_contains(&p, "lossd serve: "));
        unlink(t.path);
    }
    /* and the exit status is 2 */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "'%s' serve --port 0 --auth-token-file /nonexistent/tokens "
             "2>/dev/null",
             getenv("LOSSD_EXE"));
    int st = system(cmd);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 2);
}
END_TEST

/* The OpenAPI document declares the scheme, where it applies and the 401. */
START_TEST(test_openapi_security)
{
    struct token_file t;
    token_file_init(&t, "tok-a\n");
    struct lossd_proc p = start_auth(&t, NULL, NULL);
    struct http_resp r;
    do_req(&p, "GET", "/openapi.json", "tok-a", &r);
    ck_assert_int_eq(r.status, 200);
    json_t *doc = json_loadb(r.body, r.len, 0, NULL);
    http_resp_release(&r);
    ck_assert_ptr_nonnull(doc);
    json_t *scheme = json_object_get(
        json_object_get(json_object_get(doc, "components"), "securitySchemes"),
        "bearer");
    ck_assert_str_eq(json_string_value(json_object_get(scheme, "type")),
                     "http");
    ck_assert_str_eq(json_string_value(json_object_get(scheme, "scheme")),
                     "bearer");
    /* the default: bearer */
    json_t *sec = json_object_get(doc, "security");
    ck_assert_uint_eq(json_array_size(sec), 1);
    ck_assert_ptr_nonnull(json_object_get(json_array_get(sec, 0), "bearer"));
    json_t *paths = json_object_get(doc, "paths");
    /* the probes: none */
    static const char *const probes[] = {"/healthz", "/readyz"};
    for (size_t i = 0; i < 2; i++) {
        json_t *op = json_object_get(json_object_get(paths, probes[i]), "get");
        json_t *s = json_object_get(op, "security");
        ck_assert_msg(json_is_array(s) && json_array_size(s) == 0, "%s",
                      probes[i]);
        ck_assert_ptr_null(
            json_object_get(json_object_get(op, "responses"), "401"));
    }
    /* the rest inherit it and may answer 401 */
    static const char *const ops[][2] = {{"/v1/mse", "post"},
                                         {"/v1/batch", "post"},
                                         {"/v1/losses", "get"},
                                         {"/openapi.json", "get"},
                                         {"/metrics", "get"}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        json_t *op =
            json_object_get(json_object_get(paths, ops[i][0]), ops[i][1]);
        ck_assert_ptr_nonnull(op);
        ck_assert_ptr_null(json_object_get(op, "security"));
        ck_assert_msg(
            json_object_get(json_object_get(op, "responses"), "401") != NULL,
            "%s has no 401", ops[i][0]);
    }
    json_decref(doc);
    lossd_finish(&p);
    unlink(t.path);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("security");
    TCase *tc = tcase_create("auth");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_auth_required);
    tcase_add_test(tc, test_auth_cors);
    tcase_add_test(tc, test_auth_reload);
    tcase_add_test(tc, test_auth_off);
    tcase_add_test(tc, test_auth_bad_file);
    tcase_add_test(tc, test_openapi_security);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return harness_run(suite());
}

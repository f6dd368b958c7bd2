/*
 * test_framing.c - `lossd serve` against requests whose framing or target
 * is unusual, or that come while it closes, sent as raw bytes (libcurl
 * would never send them); each test says what it sends. Every test checks
 * that the server still serves /healthz afterwards (before its signal, for
 * the one that stops the server). Ordering, not timing: deadlines only turn
 * a hang into a failure.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define MSE_BODY "{\"input\": [1, 2], \"target\": [1, 4]}"
#define MSE_LEN  "35"

static struct lossd_proc start(const char *const *args)
{
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    return p;
}

/* One response read from a raw connection. */
struct raw_resp {
    int status;      /* 0: the connection closed first */
    char buf[65536]; /* /v1/losses is about 8 KiB */
    size_t len;      /* bytes read: one response, and no more */
    char *body;      /* in buf, NUL-terminated */
};

/*
 * Reads one response from fd: the header block and Content-Length bytes
 * of body. Fails if more bytes than that arrive with it (a second,
 * unasked-for response).
 */
static void read_response(int fd, struct raw_resp *ret)
{
    size_t len = 0;
    ret->status = 0;
    ret->body = ret->buf;
    for (;;) {
        ret->buf[len] = '\0';
        char *end = strstr(ret->buf, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(ret->buf, "\r\nContent-Length:");
            size_t head = (size_t)(end + 4 - ret->buf);
            size_t body = cl && cl < end ? (size_t)atol(cl + 17) : 0;
            if (len >= head + body) {
                ck_assert_msg(len == head + body, "bytes after a response: %s",
                              ret->buf + head + body);
                ret->body = ret->buf + head;
                break;
            }
        }
        ck_assert_uint_lt(len, sizeof ret->buf - 1);
        ssize_t n = recv(fd, ret->buf + len, sizeof ret->buf - 1 - len, 0);
        if (n <= 0) {
            ret->len = len;
            return;
        }
        len += (size_t)n;
    }
    ret->len = len;
    ck_assert_int_eq(sscanf(ret->buf, "HTTP/1.1 %d", &ret->status), 1);
}

/* Whether r's header block has the line "name: value" (any case). */
static bool has_header(const struct raw_resp *r, const char *line)
{
    char want[256];
    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    const char *at = strcasestr(r->buf, want);
    return at && at < r->body;
}

/*
 * Hands r, the answer to method path, to harness_log_response(), so the
 * OpenAPI conformance test (LOSSD_RESPONSE_LOG) validates it too.
 */
static void log_raw(const char *method, const char *path,
                    const struct raw_resp *r)
{
    size_t head = (size_t)(r->body - r->buf);
    struct http_resp hr = {
        .status = r->status,
        .body = r->body,
        .len = r->len - head,
        .headers = strndup(r->buf, head),
        .hlen = head,
    };
    ck_assert_ptr_nonnull(hr.headers);
    harness_log_response(method, path, &hr);
    free(hr.headers);
}

/* Asserts that the peer closed fd without sending another byte. */
static void expect_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET),
                  "not closed: recv %zd (%s)", n,
                  n < 0 ? strerror(errno) : "data");
}

/* The server still answers a new client. */
static void expect_serving(const struct lossd_proc *p)
{
    struct http_resp r;
    ck_assert_int_eq(http_do(p, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_release(&r);
}

/*
 * Sends req on a new connection and reads the answer, which must be a
 * problem document of the given status and type that closes the
 * connection; detail, if not NULL, must be in the body.
 */
static void expect_refused(const struct lossd_proc *p, const char *req,
                           int status, const char *type, const char *detail)
{
    struct raw_resp r;
    char t[128];
    int fd = raw_connect(p);
    send_str(fd, req);
    read_response(fd, &r);
    ck_assert_msg(r.status == status, "%d for %s: %s", r.status, req, r.buf);
    ck_assert(has_header(&r, "Content-Type: application/problem+json"));
    ck_assert_msg(has_header(&r, "Connection: close"), "%s", r.buf);
    snprintf(t, sizeof t, "\"type\":\"%s\"", type);
    ck_assert_msg(strstr(r.body, t), "%s", r.body);
    if (detail)
        ck_assert_msg(strstr(r.body, detail), "no %s in %s", detail, r.body);
    char method[16], path[64];
    ck_assert_int_eq(sscanf(req, "%15s %63s", method, path), 2);
    log_raw(method, path, &r);
    expect_closed(fd);
    close(fd);
}

/*
 * The access-log line of request id, parsed (json_decref() it), once it is
 * in p's stderr (lines are flushed within 100 ms; the deadline only turns a
 * hang into a failure). Every line of the log so far must be valid JSON.
 */
static json_t *access_line(const struct lossd_proc *p, const char *id)
{
    double end = harness_now() + 60;
    for (;;) {
        char *log = lossd_stderr_read(p);
        json_t *found = NULL;
        ck_assert_ptr_nonnull(log);
        for (char *l = log, *nl; *l; l = nl + 1) {
            nl = strchr(l, '\n');
            ck_assert_msg(nl, "a line without its newline: %s", l);
            *nl = '\0';
            json_error_t e;
            json_t *j = json_loads(l, 0, &e);
            ck_assert_msg(j, "not JSON (%s): %s", e.text, l);
            const char *rid =
                json_string_value(json_object_get(j, "request_id"));
            if (!found && rid && !strcmp(rid, id))
                found = j;
            else
                json_decref(j);
        }
        free(log);
        if (found)
            return found;
        ck_assert_msg(harness_now() < end, "no access line for %s", id);
        usleep(10000);
    }
}

/* Asserts the access line of id: its status and path. */
static void expect_logged(const struct lossd_proc *p, const char *id,
                          int status, const char *path)
{
    json_t *j = access_line(p, id);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), status);
    ck_assert_str_eq(json_string_value(json_object_get(j, "path")), path);
    json_decref(j);
}

/* The value of the series line that starts with prefix in p's /metrics;
   0 when absent (no zero series are written). */
static double metric(const struct lossd_proc *p, const char *prefix)
{
    double v = lossd_metric(p, prefix);
    return v < 0 ? 0 : v;
}

#define POST_MSE                                                               \
    "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"                                     \
    "Content-Type: application/json\r\n"
#define CHUNKED_MSE "23\r\n" MSE_BODY "\r\n0\r\n\r\n"
#define GET_HEALTHZ "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

/*
 * Content-Length with Transfer-Encoding (RFC 9112, section 6.1), in either
 * order: 400 and close, answered on the headers alone (libmicrohttpd would
 * wait for a chunked body), and with a body and a pipelined request behind
 * it, neither of which is read: the connection closes after the 400 (the
 * request used to be served and the connection kept alive, so what
 * followed the chunked body was a second request).
 */
START_TEST(test_length_with_coding)
{
    static const char *const both[] = {
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    };
    struct lossd_proc p = start(NULL);
    char req[512];
    for (size_t i = 0; i < 2; i++) {
        snprintf(req, sizeof req, POST_MSE "%s\r\n", both[i]);
        expect_refused(&p, req, 400, "/problems/bad-request",
                       "Content-Length and Transfer-Encoding");
        snprintf(req, sizeof req,
                 POST_MSE
                 "X-Request-Id: smuggle-%zu\r\n%s\r\n" CHUNKED_MSE GET_HEALTHZ,
                 i, both[i]);
        expect_refused(&p, req, 400, "/problems/bad-request", NULL);
        char id[32];
        snprintf(id, sizeof id, "smuggle-%zu", i);
        expect_logged(&p, id, 400, "/v1/mse");
    }
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/*
 * Content-Length fields that differ: 400 and close, even when the first
 * is the right one. Identical repeats are one value (RFC 9110, section
 * 8.6): served, and the connection kept.
 */
START_TEST(test_lengths_differ)
{
    struct lossd_proc p = start(NULL);
    expect_refused(&p,
                   POST_MSE "Content-Length: " MSE_LEN "\r\n"
                            "Content-Length: 3\r\n\r\n" MSE_BODY,
                   400, "/problems/bad-request", "different values");
    expect_refused(&p,
                   POST_MSE "Content-Length: " MSE_LEN "\r\n"
                            "Content-Length: 35x\r\n\r\n" MSE_BODY,
                   400, "/problems/bad-request", "different values");

    int fd = raw_connect(&p);
    struct raw_resp r;
    for (int i = 0; i < 2; i++) {
        send_str(fd, POST_MSE "Content-Length: " MSE_LEN "\r\n"
                              "Content-Length: 35\r\n"
                              "Content-Length:  35 \r\n\r\n" MSE_BODY);
        read_response(fd, &r);
        ck_assert_msg(r.status == 200, "%s", r.buf);
        ck_assert(strstr(r.body, "\"loss\":\"mse\""));
        ck_assert(!has_header(&r, "Connection: close"));
    }
    close(fd);
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/*
 * A transfer coding other than chunked alone: 501 naming it, and close,
 * answered on the headers alone (it used to hang until the connection
 * timed out: libmicrohttpd read such a body until the client closed), on
 * any route. chunked itself, in any case and after spaces, is served;
 * whitespace after it is refused, as libmicrohttpd would not decode it.
 */
START_TEST(test_codings)
{
    static const struct {
        const char *fields, *named;
    } refused[] = {
        {"Transfer-Encoding: xchunked\r\n", "'xchunked'"},
        {"Transfer-Encoding: gzip, chunked\r\n", "'gzip, chunked'"},
        {"Transfer-Encoding: identity\r\n", "'identity'"},
        {"Transfer-Encoding: chunked \r\n", "'chunked '"},
        {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
         "'gzip, chunked'"},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
         "'chunked, chunked'"},
    };
    struct lossd_proc p = start(NULL);
    char req[512];
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(req, sizeof req, POST_MSE "%s\r\n", refused[i].fields);
        expect_refused(&p, req, 501, "/problems/not-implemented",
                       refused[i].named);
    }
    expect_refused(&p,
                   "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                   "Transfer-Encoding: identity\r\n\r\n",
                   501, "/problems/not-implemented", "'identity'");

    static const char *const served[] = {"chunked", "CHUNKED", "  Chunked"};
    for (size_t i = 0; i < 3; i++) {
        struct raw_resp r;
        int fd = raw_connect(&p);
        snprintf(req, sizeof req,
                 POST_MSE "Transfer-Encoding: %s\r\n\r\n" CHUNKED_MSE,
                 served[i]);
        send_str(fd, req);
        read_response(fd, &r);
        ck_assert_msg(r.status == 200, "%s: %s", served[i], r.buf);
        ck_assert(strstr(r.body, "\"loss\":\"mse\""));
        close(fd);
    }
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/*
 * Absolute-form targets (RFC 9112, section 3.2.2) route on their path,
 * http:// or https:// in any case, "/" when there is none; the access log
 * has the path. One keep-alive connection carries them all.
 */
START_TEST(test_absolute_form)
{
    static const struct {
        const char *req;
        int status;
        const char *in_body, *logged;
    } cases[] = {
        {"GET http://localhost/healthz HTTP/1.1\r\nHost: localhost\r\n"
         "X-Request-Id: abs-0\r\n\r\n",
         200, "{\"live\":true}", "/healthz"},
        {"GET HTTPS://example.com:8443/v1/losses?x=1 HTTP/1.1\r\n"
         "Host: example.com\r\nX-Request-Id: abs-1\r\n\r\n",
         200, "\"losses\"", "/v1/losses"},
        {"POST http://h/v1/mse HTTP/1.1\r\nHost: h\r\n"
         "Content-Type: application/json\r\nX-Request-Id: abs-2\r\n"
         "Content-Length: " MSE_LEN "\r\n\r\n" MSE_BODY,
         200, "\"loss\":\"mse\"", "/v1/mse"},
        {"GET http://h HTTP/1.1\r\nHost: h\r\nX-Request-Id: abs-3\r\n\r\n", 404,
         "no route or loss at /\"", "/"},
    };
    struct lossd_proc p = start(NULL);
    int fd = raw_connect(&p);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct raw_resp r;
        char id[16];
        send_str(fd, cases[i].req);
        read_response(fd, &r);
        ck_assert_msg(r.status == cases[i].status, "%s", r.buf);
        ck_assert_msg(strstr(r.body, cases[i].in_body), "%s", r.body);
        snprintf(id, sizeof id, "abs-%zu", i);
        expect_logged(&p, id, cases[i].status, cases[i].logged);
        log_raw(i == 2 ? "POST" : "GET", cases[i].logged, &r);
    }
    close(fd);
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/*
 * A control byte in the decoded path (%00 to %1F, %7F) is refused with
 * 400: /v1/mse%00junk used to be served as /v1/mse, the string cut at the
 * decoded NUL. The log keeps the (escaped) path and stays valid JSON. A
 * literal "%00" in the path (%2500) is just an unknown path.
 */
START_TEST(test_control_in_path)
{
    static const char *const paths[] = {"/v1/mse%00junk", "/v1/mse%00",
                                        "/healthz%0a", "/v1/%01mse",
                                        "/v1/mse%7F"};
    struct lossd_proc p = start(NULL);
    int fd = raw_connect(&p);
    char req[512];
    struct raw_resp r;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        snprintf(req, sizeof req,
                 "POST %s HTTP/1.1\r\nHost: x\r\nX-Request-Id: ctl-%zu\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: " MSE_LEN "\r\n\r\n" MSE_BODY,
                 paths[i], i);
        send_str(fd, req);
        read_response(fd, &r);
        ck_assert_msg(r.status == 400, "%s: %s", paths[i], r.buf);
        ck_assert(strstr(r.body, "\"type\":\"/problems/bad-request\""));
        snprintf(req, sizeof req, "ctl-%zu", i);
        json_t *j = access_line(&p, req);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 400);
        json_decref(j);
    }
    send_str(fd, "GET /v1/mse%2500 HTTP/1.1\r\nHost: x\r\n\r\n");
    read_response(fd, &r);
    ck_assert_msg(r.status == 404, "%s", r.buf);
    ck_assert(strstr(r.body, "no route or loss at /v1/mse%00"));
    close(fd);
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/*
 * Framing errors libmicrohttpd answers itself, after lossd has seen the
 * headers: a chunk-size line that is not hex (400) and a chunk size past
 * 64 bits (413). Its own text/html body and Connection: close go out;
 * lossd's access log and metrics record the status it sent (they said 0
 * and "other").
 */
START_TEST(test_library_errors)
{
    static const struct {
        const char *chunk;
        int status;
        const char *code;
    } cases[] = {
        {"zz\r\nabc\r\n0\r\n\r\n", 400, "400"},
        {"ffffffffffffffffff\r\nabc\r\n", 413, "413"},
    };
    struct lossd_proc p = start(NULL);
    for (size_t i = 0; i < 2; i++) {
        char req[512], id[16], series[128];
        struct raw_resp r;
        snprintf(id, sizeof id, "lib-%zu", i);
        snprintf(series, sizeof series,
                 "lossd_requests_total{route=\"/v1/{loss}\",code=\"%s\"}",
                 cases[i].code);
        double before = metric(&p, series);
        int fd = raw_connect(&p);
        snprintf(req, sizeof req,
                 POST_MSE "X-Request-Id: %s\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n%s",
                 id, cases[i].chunk);
        send_str(fd, req);
        read_response(fd, &r);
        ck_assert_msg(r.status == cases[i].status, "%s", r.buf);
        ck_assert(has_header(&r, "Connection: close"));
        ck_assert(strstr(r.body, "<html>"));
        expect_closed(fd);
        close(fd);
        expect_logged(&p, id, cases[i].status, "/v1/mse");
        ck_assert(metric(&p, series) == before + 1);
    }
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/*
 * Waits until p's stderr has the "closing" event (the listener is closed).
 * The deadline only turns a hang into a failure.
 */
static void wait_closing(const struct lossd_proc *p)
{
    double end = harness_now() + 60;
    while (!lossd_stderr_contains(p, "\"event\":\"closing\"")) {
        ck_assert_msg(harness_now() < end, "no closing event in 60 s");
        usleep(5000);
    }
}

/*
 * Once the server is closing (SIGTERM, the drain over, the listener
 * closed) a request on a kept-alive connection is served, with
 * Connection: close, as docs/operations.md says; it used to be answered
 * 503. A pooled job held at the gate keeps the process there. The server
 * then exits, so "still serving" is checked before the signal.
 */
START_TEST(test_closing_serves)
{
    static const char *const args[] = {
        "--workers", "1", "--drain-seconds", "0", "--exit-timeout", "60", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start_test(&p, args, true), 0);
    struct raw_resp r;
    int keep = raw_connect(&p);
    send_str(keep, GET_HEALTHZ);
    read_response(keep, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!has_header(&r, "Connection: close"));
    expect_serving(&p);

    static const char block[] = "{\"input\": [0.25, 0.5]}";
    char req[512];
    int job = raw_connect(&p);
    snprintf(req, sizeof req,
             "POST /v1/test_block HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(block), block);
    send_str(job, req);
    lossd_gate_wait_started(&p, 1);
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    wait_closing(&p);

    send_str(keep, "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                   "X-Request-Id: closing-0\r\n\r\n");
    read_response(keep, &r);
    ck_assert_msg(r.status == 200, "%s", r.buf);
    ck_assert_str_eq(r.body, "{\"live\":true}");
    ck_assert(has_header(&r, "Connection: close"));
    expect_closed(keep);
    close(keep);

    lossd_gate_release(&p, 1);
    read_response(job, &r);
    ck_assert_msg(r.status == 200, "%s", r.buf);
    ck_assert(has_header(&r, "Connection: close"));
    close(job);
    int st = lossd_stop(&p, 0, 30);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d", st);
    ck_assert(lossd_stderr_clean(&p));
    unlink(p.stderr_path);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("framing");
    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, test_length_with_coding);
    tcase_add_test(tc, test_lengths_differ);
    tcase_add_test(tc, test_codings);
    tcase_add_test(tc, test_absolute_form);
    tcase_add_test(tc, test_control_in_path);
    tcase_add_test(tc, test_library_errors);
    tcase_add_test(tc, test_closing_serves);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return harness_run(suite());
}

/*
 * test_conn.c - `lossd serve` at the connection level, with raw sockets
 * where libcurl would be too polite: bodies far over the limit sent without
 * Expect, clients that stall, many idle keep-alive connections, IPv6, and
 * signals that reach a thread other than the main one. Every test checks
 * that the server keeps serving others. Ordering, not timing: deadlines
 * only turn a hang into a failure.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define MSE_BODY "{\"input\": [1, 2], \"target\": [1, 4]}"
/* http.c's bound on discarded bytes past max-body-bytes */
#define DISCARD_MAX ((size_t)4 << 20)

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static struct lossd_proc start(const char *const *args)
{
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    return p;
}

/* A connection to p on 127.0.0.1; sends and receives give up after 60 s. */
static int raw_connect(const struct lossd_proc *p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)p->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_str(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t w = send(fd, s, len, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        s += w;
        len -= (size_t)w;
    }
}

/*
 * Reads one response from fd into buf (cap bytes): the header block and
 * Content-Length bytes of body. Returns the status, or 0 if the connection
 * closed first.
 */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t body = cl && cl < end ? (size_t)atol(cl + 17) : 0;
            if (len >= (size_t)(end + 4 - buf) + body)
                break;
        }
        ck_assert_uint_lt(len, cap - 1);
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
    }
    int status = 0;
    ck_assert_int_eq(sscanf(buf, "HTTP/1.1 %d", &status), 1);
    return status;
}

/* Asserts that the peer closed fd (EOF or reset), reading what comes. */
static void expect_closed(int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return;
        ck_assert_msg(n > 0, "recv: %s (not closed)", strerror(errno));
    }
}

/* The server still answers a new client. */
static void expect_serving(const struct lossd_proc *p)
{
    struct http_resp r;
    ck_assert_int_eq(http_do(p, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_release(&r);
    ck_assert_int_eq(
        http_do(p, "POST", "/v1/mse", json_ct, MSE_BODY, strlen(MSE_BODY), &r),
        0);
    ck_assert_int_eq(r.status, 200);
    http_resp_release(&r);
}

/* The value of the series line that starts with prefix in p's /metrics. */
static double metric(const struct lossd_proc *p, const char *prefix)
{
    struct http_resp r;
    ck_assert_int_eq(http_do(p, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    size_t n = strlen(prefix);
    double v = -1;
    for (const char *l = r.body; l && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, prefix, n) && l[n] == ' ') {
            v = atof(l + n + 1);
            break;
        }
    http_resp_release(&r);
    return v;
}

/*
 * Sends body bytes (chunked or not) until the server stops taking them;
 * returns how many it took. Fails if all of total went through.
 */
static size_t send_until_closed(int fd, size_t total, bool chunked)
{
    enum { CHUNK = 64 * 1024 };
    static char data[CHUNK + 32];
    size_t sent = 0;
    while (sent < total) {
        size_t n = CHUNK;
        const char *s = data;
        if (chunked) {
            int h = snprintf(data, 16, "%x\r\n", CHUNK);
            memset(data + h, ' ', CHUNK);
            memcpy(data + h + CHUNK, "\r\n", 2);
            n = (size_t)h + CHUNK + 2;
        } else {
            memset(data, ' ', CHUNK);
        }
        while (n > 0) {
            ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
            if (w < 0) {
                ck_assert_msg(errno == EPIPE || errno == ECONNRESET,
                              "send: %s after %zu bytes", strerror(errno),
                              sent);
                return sent;
            }
            s += w;
            n -= (size_t)w;
            sent += (size_t)w;
        }
    }
    ck_abort_msg("the server took all %zu bytes", total);
    return sent;
}

/*
 * A client that sends its body without waiting for 100 Continue (Python's
 * http.client, raw sockets): over the limit by less than the discard bound
 * it reads a 413; far over, the server closes the connection once it has
 * discarded the bound, and keeps serving everyone else.
 */
START_TEST(test_body_without_expect)
{
    static const char *const args[] = {"--max-body-bytes", "1000", NULL};
    struct lossd_proc p = start(args);
    char buf[65536];

    /* 2 MB: discarded, then 413 */
    int fd = raw_connect(&p);
    send_str(fd, "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: 2000000\r\n\r\n");
    char *body = malloc(2000001);
    memset(body, ' ', 2000000);
    body[2000000] = '\0';
    send_str(fd, body);
    free(body);
    ck_assert_int_eq(read_response(fd, buf, sizeof buf), 413);
    ck_assert_ptr_nonnull(strstr(buf, "\"/problems/too-large\""));
    close(fd);

    /* 64 MB announced, then 4 MiB chunked: closed past the bound */
    for (int chunked = 0; chunked < 2; chunked++) {
        fd = raw_connect(&p);
        send_str(fd, chunked ? "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"
                             : "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                               "Content-Length: 64000000\r\n\r\n");
        size_t sent = send_until_closed(fd, 64000000, chunked);
        /* it read the whole bound before giving up */
        ck_assert_uint_gt(sent, 1000 + DISCARD_MAX);
        expect_closed(fd);
        close(fd);
        expect_serving(&p);
    }
    lossd_finish(&p);
}
END_TEST

/*
 * --connection-timeout: clients that connect and say nothing, stop in the
 * middle of their headers or of their body are closed by the timeout,
 * while others are served; their requests leave nothing behind.
 */
START_TEST(test_stalled_clients)
{
    static const char *const args[] = {"--connection-timeout", "1", NULL};
    struct lossd_proc p = start(args);
    static const char *const stalls[] = {
        "",
        "POST /v1/mse HTTP/1.1\r\nHost: x\r\nContent-Ty",
        "POST /v1/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        "\r\nContent-Length: 100\r\n\r\n{\"input\": [1,",
    };
    enum { N = sizeof stalls / sizeof stalls[0] };
    int fds[N];
    for (size_t i = 0; i < N; i++) {
        fds[i] = raw_connect(&p);
        send_str(fds[i], stalls[i]);
    }
    double t0 = harness_now();
    /* others are served meanwhile */
    expect_serving(&p);
    for (size_t i = 0; i < N; i++) {
        expect_closed(fds[i]);
        close(fds[i]);
    }
    /* by the timeout, not at once (a lower bound: never flaky) */
    ck_assert_double_ge(harness_now() - t0, 0.5);
    expect_serving(&p);
    /* the stalled request is completed: only the scrape is in flight
       (libmicrohttpd closes the socket before it notifies completion) */
    double end = harness_now() + 60;
    while (metric(&p, "lossd_requests_in_flight") != 1) {
        ck_assert_msg(harness_now() < end, "the stalled request stays");
        usleep(5000);
    }
    lossd_finish(&p);
}
END_TEST

/*
 * Many idle connections (silent ones and keep-alive ones after an answer)
 * do not keep a new client waiting, and each of them is served when it
 * speaks again.
 */
START_TEST(test_idle_keepalive)
{
    static const char *const args[] = {"--threads", "2", NULL};
    struct lossd_proc p = start(args);
    enum { N = 150 };
    int fds[2 * N];
    char buf[4096];
    const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t i = 0; i < 2 * N; i++)
        fds[i] = raw_connect(&p);
    for (size_t i = N; i < 2 * N; i++) {
        send_str(fds[i], get);
        ck_assert_int_eq(read_response(fds[i], buf, sizeof buf), 200);
    }
    /* a new client while 2N connections sit idle */
    expect_serving(&p);
    /* every idle connection still works, keep-alive ones for the second
       time */
    for (size_t i = 0; i < 2 * N; i++) {
        send_str(fds[i], get);
        ck_assert_int_eq(read_response(fds[i], buf, sizeof buf), 200);
        ck_assert_ptr_nonnull(strstr(buf, "{\"live\":true}"));
    }
    for (size_t i = 0; i < 2 * N; i++)
        close(fds[i]);
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/* Whether this machine can listen on ::1. */
static bool ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

START_TEST(test_ipv6)
{
    if (!ipv6_loopback()) {
        fprintf(stderr, "test_ipv6: no IPv6 loopback here; skipped\n");
        return;
    }
    static const char *const args[] = {"--host", "::1", NULL};
    struct lossd_proc p = start(args);
    snprintf(p.url, sizeof p.url, "http://[::1]:%u", p.port);
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/* Whether thread tid of pid blocks signal sig (its SigBlk mask). */
static bool thread_blocks(pid_t pid, long tid, int sig)
{
    char path[128], line[256];
    snprintf(path, sizeof path, "/proc/%d/task/%ld/status", (int)pid, tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true; /* gone */
    unsigned long long mask = ~0ull;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "SigBlk: %llx", &mask) == 1)
            break;
    fclose(f);
    return (mask >> (sig - 1)) & 1;
}

/*
 * A SIGTERM that the kernel hands to a thread other than the main one
 * drains and exits 0 like any other. Threads started before main() (the
 * OpenBLAS pool) do not block it; the test sends the signal to each such
 * thread directly, which is where a process-directed SIGTERM lands when
 * the main thread is busy. (Nothing to test when there is none.)
 */
START_TEST(test_signal_other_thread)
{
    for (int sig = 0; sig < 2; sig++) {
        int signo = sig ? SIGINT : SIGTERM;
        struct lossd_proc p = start(NULL);
        long target = 0;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", (int)p.pid);
        DIR *d = opendir(path);
        ck_assert_ptr_nonnull(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            long tid = atol(e->d_name);
            if (tid > 0 && tid != p.pid && !thread_blocks(p.pid, tid, signo) &&
                !target)
                target = tid;
        }
        closedir(d);
        expect_serving(&p);
        if (!target) {
            lossd_finish(&p);
            continue;
        }
        ck_assert_int_eq(syscall(SYS_tgkill, p.pid, target, signo), 0);
        int st = lossd_stop(&p, 0, 30);
        ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "signal %d to thread %ld: wait status %d", signo, target,
                      st);
        ck_assert(lossd_stderr_clean(&p));
        ck_assert(lossd_stderr_contains(&p, "\"event\":\"stopped\""));
        unlink(p.stderr_path);
    }
}
END_TEST

/*
 * The header block lives in the connection's memory (--connection-memory,
 * 8 KiB by default): 6 KiB of headers are served, 12 KiB get
 * libmicrohttpd's 431 and a closed connection, its message goes to the log
 * as a JSON warn line (not raw text), and the server keeps serving. With
 * --connection-memory 32768, 20 KiB of headers are served.
 */
static int send_padded(const struct lossd_proc *p, size_t pad)
{
    size_t cap = pad + 1024;
    char *req = malloc(cap);
    ck_assert_ptr_nonnull(req);
    int h = snprintf(req, cap,
                     "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\nX-Pad: ",
                     strlen(MSE_BODY));
    memset(req + h, 'a', pad);
    snprintf(req + h + pad, cap - (size_t)h - pad, "\r\n\r\n%s", MSE_BODY);
    int fd = raw_connect(p);
    send_str(fd, req);
    static char resp[65536];
    int status = read_response(fd, resp, sizeof resp);
    if (status == 431)
        expect_closed(fd);
    close(fd);
    free(req);
    return status;
}

START_TEST(test_large_headers)
{
    const char *const args[] = {NULL};
    struct lossd_proc p = start(args);
    ck_assert_int_eq(send_padded(&p, 6 * 1024), 200);
    expect_serving(&p);
    ck_assert_int_eq(send_padded(&p, 12 * 1024), 431);
    expect_serving(&p);
    int st = lossd_stop(&p, SIGTERM, 30);
    ck_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert(lossd_stderr_clean(&p));
    ck_assert(
        lossd_stderr_contains(&p, "\"level\":\"warn\",\"event\":\"http\""));
    ck_assert(lossd_stderr_contains(&p, "431"));
    ck_assert(!lossd_stderr_contains(&p, "\nError processing request"));
    unlink(p.stderr_path);

    const char *const big[] = {"--connection-memory", "32768", NULL};
    p = start(big);
    ck_assert_int_eq(send_padded(&p, 20 * 1024), 200);
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("conn");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_body_without_expect);
    tcase_add_test(tc, test_stalled_clients);
    tcase_add_test(tc, test_idle_keepalive);
    tcase_add_test(tc, test_ipv6);
    tcase_add_test(tc, test_signal_other_thread);
    tcase_add_test(tc, test_large_headers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return harness_run(suite());
}

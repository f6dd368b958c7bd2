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

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static struct lossd_proc start(const char *const *args)
{
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    return p;
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

/* Sends total bytes of body (chunked when asked, in 1 MiB chunks) in
   full; ck_assert if the server stops taking them. */
static void send_body(int fd, size_t total, bool chunked)
{
    enum { CHUNK = 1 << 20 };
    static char data[CHUNK + 32];
    size_t sent = 0;
    while (sent < total) {
        size_t k = total - sent < CHUNK ? total - sent : CHUNK;
        size_t n = k, h = 0;
        if (chunked) {
            h = (size_t)snprintf(data, 16, "%zx\r\n", k);
            memcpy(data + h + k, "\r\n", 2);
            n = h + k + 2;
        }
        memset(data + h, ' ', k);
        for (const char *s = data; n > 0;) {
            ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
            ck_assert_msg(w > 0, "send: %s after %zu bytes", strerror(errno),
                          sent);
            s += w;
            n -= (size_t)w;
        }
        sent += k;
    }
    if (chunked)
        send_str(fd, "0\r\n\r\n");
}

/* The peak resident memory of process pid, bytes (VmHWM). */
static size_t peak_rss(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kb) == 1)
            break;
    fclose(f);
    ck_assert_uint_gt(kb, 0);
    return kb * 1024;
}

/*
 * A client that sends its whole body without waiting for 100 Continue
 * (Python's http.client, urllib, requests) reads its 413 however far over
 * the 64 MiB default it goes, up to 1 GiB, with or without chunking; the
 * server keeps none of it (its peak memory stays put) and counts the
 * answers as 413.
 */
START_TEST(test_body_without_expect)
{
    struct lossd_proc p = start(NULL);
    char buf[65536];
    static const struct {
        size_t mib;
        bool chunked;
    } bodies[] = {{65, false}, {100, false}, {100, true}, {1024, false}};
    enum { N = sizeof bodies / sizeof bodies[0] };
    expect_serving(&p);
    size_t peak = peak_rss(p.pid);
    for (size_t i = 0; i < N; i++) {
        int fd = raw_connect(&p);
        char head[256];
        if (bodies[i].chunked)
            snprintf(head, sizeof head,
                     "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
        else
            snprintf(head, sizeof head,
                     "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     bodies[i].mib << 20);
        send_str(fd, head);
        send_body(fd, bodies[i].mib << 20, bodies[i].chunked);
        ck_assert_int_eq(read_response(fd, buf, sizeof buf), 413);
        ck_assert_ptr_nonnull(strstr(buf, "\"/problems/too-large\""));
        close(fd);
    }
    /* nothing of 1.3 GiB was kept: less than 16 MiB more at the peak */
    ck_assert_uint_lt(peak_rss(p.pid), peak + ((size_t)16 << 20));
    ck_assert(lossd_metric(&p, "lossd_requests_total{route=\"/v1/{loss}\","
                               "code=\"413\"}") == N);
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/*
 * A refused body is thrown away only while it keeps coming: a client that
 * stops in the middle is closed after --discard-idle-timeout (long before
 * the connection timeout), and the request is logged and counted as the
 * 413 it was.
 */
START_TEST(test_discard_bounds)
{
    static const char *const args[] = {"--max-body-bytes",
                                       "1000",
                                       "--discard-idle-timeout",
                                       "0.5",
                                       "--connection-timeout",
                                       "120",
                                       NULL};
    struct lossd_proc p = start(args);
    int fd = raw_connect(&p);
    send_str(fd, "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 100000000\r\n\r\n");
    send_body(fd, 5000000, false);
    expect_closed(fd);
    close(fd);
    ck_assert(lossd_metric(&p, "lossd_connections_closed_total{reason="
                               "\"discard_timeout\"}") == 1);
    ck_assert(lossd_metric(&p, "lossd_requests_total{route=\"/v1/{loss}\","
                               "code=\"413\"}") == 1);
    expect_serving(&p);
    double end = harness_now() + 60; /* the log is flushed every 100 ms */
    while (!lossd_stderr_contains(&p, "\"path\":\"/v1/mse\",\"status\":413")) {
        ck_assert_msg(harness_now() < end, "no 413 in the access log");
        usleep(5000);
    }
    lossd_finish(&p);
}
END_TEST

/* Reads what fd has until the peer closes it (EOF or reset) into buf
   (cap bytes, NUL-terminated). */
static void read_until_closed(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            break;
        ck_assert_msg(n > 0, "recv: %s (not closed)", strerror(errno));
        len += (size_t)n;
        ck_assert_uint_lt(len, cap - 1);
    }
    buf[len] = '\0';
}

/*
 * Trickles s one byte at a time, a byte whenever fd has said nothing for
 * 200 ms, until the server answers and closes fd; fails if it is still
 * open after 60 s or once all of s is sent. The idle timeout (1 s) never
 * fires: only a deadline on the whole can close it. The answer must be
 * the 408 problem document.
 */
static void trickle_until_closed(int fd, const char *s)
{
    static char buf[65536];
    double end = harness_now() + 60;
    for (size_t i = 0; s[i]; i++) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 200) > 0 || send(fd, s + i, 1, MSG_NOSIGNAL) != 1) {
            read_until_closed(fd, buf, sizeof buf);
            ck_assert_msg(!strncmp(buf, "HTTP/1.1 408 ", 13), "got '%.80s'",
                          buf);
            ck_assert_ptr_nonnull(strstr(buf, "\"/problems/timeout\""));
            ck_assert_ptr_nonnull(strstr(buf, "\r\nConnection: close\r\n"));
            return;
        }
        ck_assert_msg(harness_now() < end, "still open after 60 s");
    }
    ck_abort_msg("the whole request went through one byte at a time");
}

/* A header block or a body sent a byte at a time is answered 408 and
   closed by --header-timeout or --body-min-rate, although each byte comes
   well within the idle timeout; others are served meanwhile. */
START_TEST(test_slow_clients)
{
    static const char *const args[] = {"--header-timeout",
                                       "1",
                                       "--body-timeout",
                                       "1",
                                       "--body-min-rate",
                                       "100",
                                       "--connection-timeout",
                                       "1",
                                       NULL};
    struct lossd_proc p = start(args);
    static char head[4096], body_req[4096];
    /* a header block far longer than 1 s of bytes at 5 a second */
    snprintf(head, sizeof head,
             "GET /healthz HTTP/1.1\r\nHost: x\r\n"
             "X-Pad: %0200d\r\n\r\n",
             0);
    snprintf(body_req, sizeof body_req, "%0500d", 0);
    int a = raw_connect(&p);
    trickle_until_closed(a, head);
    close(a);
    int b = raw_connect(&p);
    send_str(b, "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                "Content-Length: 1000\r\n\r\n");
    trickle_until_closed(b, body_req);
    close(b);
    ck_assert(lossd_metric(&p, "lossd_connections_closed_total{reason="
                               "\"header_timeout\"}") == 1);
    ck_assert(lossd_metric(&p, "lossd_connections_closed_total{reason="
                               "\"body_too_slow\"}") == 1);
    expect_serving(&p);
    lossd_finish(&p);
}
END_TEST

/*
 * Waits until p's access log has n lines: each is written after the
 * request's completion reached the connection table, so the order of the
 * connections' idle times is the order the test made them in.
 */
static void wait_completed(const struct lossd_proc *p, size_t n)
{
    double end = harness_now() + 60;
    for (;;) {
        char *log = lossd_stderr_read(p);
        size_t k = 0;
        for (const char *at = log;
             at && (at = strstr(at, "\"event\":\"access\"")); at++)
            k++;
        free(log);
        if (k >= n)
            return;
        ck_assert_msg(harness_now() < end, "%zu of %zu requests logged", k, n);
        usleep(5000);
    }
}

/* GET /healthz on fd, answered 200, then logged as the n-th request. */
static void get_healthz(const struct lossd_proc *p, int fd, size_t n)
{
    char buf[4096];
    send_str(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(read_response(fd, buf, sizeof buf), 200);
    wait_completed(p, n);
}

/*
 * At --max-connections, a new client is served and the connection that
 * has waited longest for a request (here idle keep-alive ones, oldest
 * first) is closed to make room, one for one: health probes keep
 * answering whatever holds the connections.
 */
START_TEST(test_cap_sheds_oldest)
{
    static const char *const args[] = {"--max-connections", "8", NULL};
    struct lossd_proc p = start(args);
    enum { CAP = 8 };
    int fds[2 * CAP];
    size_t logged = 0;
    /* CAP connections, each idle after one answer: the server is full */
    for (size_t i = 0; i < CAP; i++) {
        fds[i] = raw_connect(&p);
        get_healthz(&p, fds[i], ++logged);
    }
    /* each new client is served and sheds the oldest; it stays open, so
       the server stays full */
    for (size_t i = 0; i < CAP; i++) {
        fds[CAP + i] = raw_connect(&p);
        get_healthz(&p, fds[CAP + i], ++logged);
        expect_closed(fds[i]);
        close(fds[i]);
        if (i + 1 < CAP) { /* the next oldest is still open */
            struct pollfd pf = {.fd = fds[i + 1], .events = POLLIN};
            ck_assert_int_eq(poll(&pf, 1, 0), 0);
        }
    }
    for (size_t i = CAP; i < 2 * CAP; i++)
        close(fds[i]);
    ck_assert(
        lossd_metric(&p, "lossd_connections_closed_total{reason=\"shed\"}") >=
        CAP);
    lossd_finish(&p);
}
END_TEST

/*
 * At --max-connections with every connection in the middle of a request
 * (jobs held on the pool), a new one is refused: a 503 problem document,
 * Retry-After and Connection: close. Once the jobs finish, clients are
 * served again.
 */
START_TEST(test_cap_refuses_when_busy)
{
    static const char *const args[] = {"--max-connections", "2",
                                       "--inline-max-cost", "0", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start_test(&p, args, true), 0);
    const char *req = "POST /v1/test_block HTTP/1.1\r\nHost: x\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: 17\r\n\r\n{\"input\": [0.25]}";
    int busy[2];
    for (size_t i = 0; i < 2; i++) {
        busy[i] = raw_connect(&p);
        send_str(busy[i], req);
    }
    lossd_gate_wait_started(&p, 2);
    char buf[65536];
    int fd = raw_connect(&p);
    send_str(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(read_response(fd, buf, sizeof buf), 503);
    ck_assert_ptr_nonnull(strstr(buf, "\r\nConnection: close\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "\r\nRetry-After: 1\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "max-connections 2"));
    expect_closed(fd);
    close(fd);
    lossd_gate_release(&p, 2);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(read_response(busy[i], buf, sizeof buf), 200);
        close(busy[i]);
    }
    struct http_resp r;
    double end = harness_now() + 60;
    for (;;) { /* the two connections close as the server sees them go */
        ck_assert_int_eq(http_do(&p, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        long st = r.status;
        http_resp_release(&r);
        if (st == 200)
            break;
        ck_assert_int_eq(st, 503);
        ck_assert_msg(harness_now() < end, "refused after the jobs ended");
        usleep(5000);
    }
    lossd_finish(&p);
}
END_TEST

/*
 * Far over the connection limit: hundreds of connections beyond
 * --max-connections, each with a request line and a header, then all
 * closed at once (libmicrohttpd 0.9.75 wedged at its own limit after
 * this). The server answers afterwards and SIGTERM ends it with 0.
 */
START_TEST(test_over_cap_flood)
{
    static const char *const args[] = {"--max-connections", "100", NULL};
    struct lossd_proc p = start(args);
    enum { N = 400 };
    int fds[N];
    for (size_t i = 0; i < N; i++) {
        fds[i] = raw_connect(&p);
        /* shed or refused connections may be gone already */
        static const char head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                   "X-A: b\r\n";
        (void)!send(fds[i], head, sizeof head - 1, MSG_NOSIGNAL);
    }
    expect_serving(&p);
    for (size_t i = 0; i < N; i++)
        close(fds[i]);
    expect_serving(&p);
    ck_assert(
        lossd_metric(&p, "lossd_connections_closed_total{reason=\"shed\"}") +
            lossd_metric(&p, "lossd_connections_closed_total{reason="
                             "\"refused\"}") >=
        N - 100);
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
        ("POST /v1/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
         "\r\nContent-Length: 100\r\n\r\n{\"input\": [1,"),
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
    while (lossd_metric(&p, "lossd_requests_in_flight") != 1) {
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
    tcase_add_test(tc, test_discard_bounds);
    tcase_add_test(tc, test_slow_clients);
    tcase_add_test(tc, test_cap_sheds_oldest);
    tcase_add_test(tc, test_cap_refuses_when_busy);
    tcase_add_test(tc, test_over_cap_flood);
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

/*
 * test_pool.c - `lossd serve` under load and while stopping: hundreds of
 * keep-alive clients, small requests overtaking a large pooled job, SIGTERM
 * drains, the exit timeout, clients that leave mid-body or mid-job.
 * Ordering is checked instead of timing. A job that must still be running
 * at some point is a test_block job of lossd-test (lossd_start_test()),
 * held on the pool until the test releases it: the tests wait on events
 * (a job started, a gauge, a log line), never on an amount of work, and
 * deadlines only turn a hang into a failure.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define MSE_BODY "{\"input\": [1, 2], \"target\": [1, 4]}"

/* One transfer of a curl multi run. */
struct xfer {
    CURL *e;
    struct curl_slist *hl;
    char *body;
    size_t len;
    long status;
    int remaining; /* requests still to send on this handle */
    int ok;        /* answers that were right */
    bool done;
    int result;     /* CURLcode of the last transfer */
    unsigned order; /* completion rank of the last answer */
    char *resp;
    size_t resp_len;
    char *hdrs; /* the last answer's header block */
    size_t hdrs_len;
    const char *expect; /* substring every answer must hold */
};

static size_t xfer_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    return harness_append(&x->resp, &x->resp_len, ptr, size * nmemb);
}

static size_t xfer_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    return harness_append(&x->hdrs, &x->hdrs_len, ptr, size * nmemb);
}

static void xfer_init(struct xfer *x, const struct lossd_proc *p,
                      const char *path, const char *body, size_t len, int count,
                      const char *expect)
{
    memset(x, 0, sizeof *x);
    x->e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s%s", p->url, path);
    x->hl = curl_slist_append(NULL, "Content-Type: application/json");
    x->hl = curl_slist_append(x->hl, "Expect:");
    x->body = malloc(len + 1);
    memcpy(x->body, body, len);
    x->len = len;
    x->remaining = count;
    x->expect = expect;
    curl_easy_setopt(x->e, CURLOPT_URL, url);
    curl_easy_setopt(x->e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(x->e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(x->e, CURLOPT_HTTPHEADER, x->hl);
    curl_easy_setopt(x->e, CURLOPT_WRITEFUNCTION, xfer_write);
    curl_easy_setopt(x->e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->e, CURLOPT_HEADERFUNCTION, xfer_header);
    curl_easy_setopt(x->e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->e, CURLOPT_TIMEOUT, 120L);
}

static void xfer_release(struct xfer *x)
{
    curl_easy_cleanup(x->e);
    curl_slist_free_all(x->hl);
    free(x->body);
    free(x->resp);
    free(x->hdrs);
}

/*
 * One round of the multi handle: transfers make progress, the finished ones
 * are collected (each with remaining > 0 is sent again, on its kept-alive
 * connection, else it is done), then waits up to 50 ms for activity.
 */
static void multi_step(CURLM *m)
{
    static unsigned rank;
    int running = 0;
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int q;
    while ((msg = curl_multi_info_read(m, &q)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &x->status);
        x->result = (int)msg->data.result;
        if (msg->data.result == CURLE_OK && x->status == 200 &&
            (!x->expect || (x->resp && strstr(x->resp, x->expect))))
            x->ok++;
        curl_multi_remove_handle(m, x->e);
        x->order = ++rank;
        if (--x->remaining > 0) {
            x->resp_len = 0;
            x->hdrs_len = 0;
            curl_multi_add_handle(m, x->e);
        } else {
            x->done = true;
        }
    }
    curl_multi_poll(m, NULL, 0, 50, NULL);
}

/* How many of the n transfers xs are not done. */
static size_t not_done(const struct xfer *xs, size_t n)
{
    size_t left = 0;
    for (size_t i = 0; i < n; i++)
        left += !xs[i].done;
    return left;
}

/*
 * Runs the multi handle (which may hold other transfers too) until the n
 * transfers xs are done or the deadline passes. Returns the number of them
 * not done.
 */
static size_t multi_run(CURLM *m, struct xfer *xs, size_t n, double deadline)
{
    while (not_done(xs, n) > 0 && harness_now() < deadline)
        multi_step(m);
    return not_done(xs, n);
}

START_TEST(test_many_clients)
{
    static const char *const args[] = {"--threads", "2", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    enum { N = 300, PER = 4 };
    /* a larger mse (4000 elements, pooled or inline by cost) every 10th */
    size_t blen = 0;
    char *big = malloc(64000);
    blen += (size_t)sprintf(big, "{\"input\": [");
    for (int i = 0; i < 2000; i++)
        blen += (size_t)sprintf(big + blen, i ? ",%d" : "%d", i % 7);
    blen += (size_t)sprintf(big + blen, "], \"target\": [");
    for (int i = 0; i < 2000; i++)
        blen += (size_t)sprintf(big + blen, i ? ",%d" : "%d", i % 7 + 1);
    blen += (size_t)sprintf(big + blen, "]}");
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)N + 50);
    struct xfer *xs = calloc(N, sizeof *xs);
    for (size_t i = 0; i < N; i++) {
        if (i % 10 == 0)
            xfer_init(&xs[i], &p, "/v1/mse", big, blen, PER, "\"value\":1");
        else
            xfer_init(&xs[i], &p, "/v1/mse", MSE_BODY, strlen(MSE_BODY), PER,
                      "\"value\":2");
        curl_multi_add_handle(m, xs[i].e);
    }
    size_t left = multi_run(m, xs, N, harness_now() + 60);
    ck_assert_msg(left == 0, "%zu of %d clients unfinished at the deadline",
                  left, N);
    int ok = 0;
    for (size_t i = 0; i < N; i++) {
        ok += xs[i].ok;
        xfer_release(&xs[i]);
    }
    free(xs);
    free(big);
    curl_multi_cleanup(m);
    ck_assert_int_eq(ok, N * PER);
    lossd_finish(&p);
}
END_TEST

/* An info_nce body with N rows of D numbers (300 x 16: a pooled job). */
static char *info_nce_body(size_t n, size_t d, size_t *ret_len)
{
    char *s = malloc(2 * n * d * 8 + 256);
    size_t len = (size_t)sprintf(s,
                                 "{\"query\": {\"shape\": [%zu, %zu], "
                                 "\"data\": [",
                                 n, d);
    unsigned long long x = 12345;
    for (int t = 0; t < 2; t++) {
        if (t)
            len += (size_t)sprintf(s + len,
                                   "]}, \"positive_key\": {\"shape\": [%zu, "
                                   "%zu], \"data\": [",
                                   n, d);
        for (size_t i = 0; i < n * d; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            len += (size_t)sprintf(s + len, i ? ",%.2f" : "%.2f",
                                   (double)(x >> 40) / 16777216.0 - 0.5);
        }
    }
    len += (size_t)sprintf(s + len, "]}, \"variant\": \"symmetric\"}");
    *ret_len = len;
    return s;
}

/* A test_block body (lossd-test) of an input of n numbers: a pooled job
   that runs until the test releases it. */
static char *block_body(size_t n, size_t *ret_len)
{
    char *s = malloc(n * 5 + 64);
    ck_assert_ptr_nonnull(s);
    size_t len = (size_t)sprintf(s, "{\"input\": [");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, i ? ",0.25" : "0.25");
    len += (size_t)sprintf(s + len, "]}");
    *ret_len = len;
    return s;
}

/* Runs m until x has sent its whole body. */
static void send_all(CURLM *m, struct xfer *x)
{
    double deadline = harness_now() + 60;
    curl_off_t up = 0;
    while ((size_t)up < x->len && harness_now() < deadline) {
        int running;
        curl_multi_perform(m, &running);
        curl_easy_getinfo(x->e, CURLINFO_SIZE_UPLOAD_T, &up);
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    ck_assert_uint_eq((size_t)up, x->len);
}

/*
 * Small requests overtake a large pooled job: a test_block job with a
 * large body holds the only worker (it has started), and twenty small
 * inline requests sent after it are all answered while it is still held.
 * Released, it answers 200 too.
 */
START_TEST(test_small_overtake_large)
{
    static const char *const args[] = {"--workers", "1", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start_test(&p, args, true), 0);
    size_t len;
    char *body = block_body(200000, &len);
    CURLM *m = curl_multi_init();
    enum { SMALL = 20 };
    /* xfers are found through CURLOPT_PRIVATE: they never move */
    struct xfer xs[SMALL + 1];
    struct xfer *large = &xs[SMALL];
    xfer_init(large, &p, "/v1/test_block", body, len, 1, "\"value\":[");
    free(body);
    curl_multi_add_handle(m, large->e);
    send_all(m, large);
    lossd_gate_wait_started(&p, 1);
    struct xfer *small = xs;
    for (size_t i = 0; i < SMALL; i++) {
        xfer_init(&small[i], &p, "/v1/mse", MSE_BODY, strlen(MSE_BODY), 1,
                  "\"value\":2");
        curl_multi_add_handle(m, small[i].e);
    }
    ck_assert_uint_eq(multi_run(m, small, SMALL, harness_now() + 120), 0);
    for (size_t i = 0; i < SMALL; i++)
        ck_assert_msg(small[i].ok == 1, "small request %zu: %ld %.200s", i,
                      small[i].status, small[i].resp ? small[i].resp : "");
    ck_assert_msg(!large->done, "the large job was answered %ld %.200s",
                  large->status, large->resp ? large->resp : "");
    lossd_gate_release(&p, 1);
    ck_assert_uint_eq(multi_run(m, large, 1, harness_now() + 60), 0);
    ck_assert_msg(large->ok == 1, "large: %ld %.200s", large->status,
                  large->resp ? large->resp : "");
    for (size_t i = 0; i <= SMALL; i++)
        xfer_release(&xs[i]);
    curl_multi_cleanup(m);
    lossd_finish(&p);
}
END_TEST

/* The value of the series line that starts with prefix in p's /metrics. */
static double metric(const struct lossd_proc *p, const char *prefix)
{
    double v = lossd_metric(p, prefix);
    ck_assert_msg(v >= 0, "no %s in /metrics", prefix);
    return v;
}

/* Polls p's /metrics until the gauge name satisfies ok(value, arg); the
   last value. Ordering, not timing: the deadline only stops a hang. */
static double wait_gauge_at(const struct lossd_proc *p, const char *name,
                            bool (*ok)(double, double), double arg, int line)
{
    double end = harness_now() + 60, v;
    while (!ok(v = metric(p, name), arg)) {
        ck_assert_msg(harness_now() < end, "line %d: %s stuck at %.17g", line,
                      name, v);
        usleep(5000);
    }
    return v;
}
#define wait_gauge(p, name, ok, arg) wait_gauge_at(p, name, ok, arg, __LINE__)

static bool at_least(double v, double arg)
{
    return v >= arg;
}

static bool equals(double v, double arg)
{
    return v == arg;
}

/* Whether x's last answer is a 503 problem with Retry-After. */
static void expect_unavailable(const struct xfer *x)
{
    ck_assert_msg(x->status == 503, "status %ld: %.200s", x->status,
                  x->resp ? x->resp : "");
    ck_assert_ptr_nonnull(strstr(x->resp, "\"/problems/unavailable\""));
    ck_assert_msg(x->hdrs && strcasestr(x->hdrs, "\r\nRetry-After: 1\r\n"),
                  "no Retry-After in %s", x->hdrs);
}

/*
 * Waits until p's stderr has the "closing" event (the listener is closed)
 * and returns the requests it counts in flight. The deadline only turns a
 * hang into a failure.
 */
static size_t closing_inflight(const struct lossd_proc *p)
{
    static const char key[] = "not accepting; ";
    double end = harness_now() + 60;
    for (;;) {
        char *log = lossd_stderr_read(p);
        const char *at = log ? strstr(log, key) : NULL;
        size_t n = at ? (size_t)strtoul(at + sizeof key - 1, NULL, 10) : 0;
        free(log);
        if (at)
            return n;
        ck_assert_msg(harness_now() < end, "no closing event in 60 s");
        usleep(5000);
    }
}

/*
 * SIGTERM with two pooled jobs in flight, one running (held at the gate)
 * and one queued behind it: readiness turns 503 while requests are still
 * served during the drain; the listener closes with both jobs in flight;
 * released, both answer 200 and the process exits 0.
 */
START_TEST(test_sigterm_drain)
{
    static const char *const args[] = {
        "--workers", "1", "--drain-seconds", "2", "--exit-timeout", "60", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start_test(&p, args, true), 0);
    size_t len;
    char *body = block_body(1000, &len);
    CURLM *m = curl_multi_init();
    struct xfer jobs[2];
    for (size_t i = 0; i < 2; i++)
        xfer_init(&jobs[i], &p, "/v1/test_block", body, len, 1, "\"value\":[");
    free(body);
    curl_multi_add_handle(m, jobs[0].e);
    send_all(m, &jobs[0]);
    lossd_gate_wait_started(&p, 1);
    curl_multi_add_handle(m, jobs[1].e);
    send_all(m, &jobs[1]);
    wait_gauge(&p, "lossd_pool_jobs", equals, 2);
    ck_assert_uint_eq(lossd_gate_started_unread(&p), 0);
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    /* readiness turns 503 once the signal is taken (polled: no guess at
       how long that takes); requests are still served during the drain */
    struct http_resp r;
    double end = harness_now() + 30;
    for (;;) {
        ck_assert_int_eq(http_do(&p, "GET", "/readyz", NULL, NULL, 0, &r), 0);
        long st = r.status;
        http_resp_release(&r);
        if (st == 503)
            break;
        ck_assert_int_eq(st, 200);
        ck_assert_msg(harness_now() < end, "readiness stays 200");
        usleep(5000);
    }
    ck_assert_int_eq(http_do(&p, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_release(&r);
    /* both jobs are held, so both are in flight when the listener closes
       (with, perhaps, the requests above: a client can read its answer
       before the server completes the request) */
    size_t inflight = closing_inflight(&p);
    ck_assert_msg(inflight >= 2, "%zu requests in flight at closing", inflight);
    ck_assert(!jobs[0].done && !jobs[1].done);
    lossd_gate_release(&p, 2);
    ck_assert_uint_eq(multi_run(m, jobs, 2, harness_now() + 60), 0);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_msg(jobs[i].ok == 1, "job %zu: %ld", i, jobs[i].status);
        xfer_release(&jobs[i]);
    }
    curl_multi_cleanup(m);
    int st = lossd_stop(&p, 0, 30);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d", st);
    ck_assert(lossd_stderr_clean(&p));
    /* the listening port is closed */
    ck_assert_int_ne(http_do(&p, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    http_resp_release(&r);
    unlink(p.stderr_path);
}
END_TEST

/* A plain TCP connect to p's port: 0, or connect()'s errno. */
static int connect_errno(const struct lossd_proc *p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)p->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* Whether p's process has exited (not reaped: lossd_stop() does that). */
static bool exited(const struct lossd_proc *p)
{
    siginfo_t si = {0};
    ck_assert_int_eq(
        waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
    return si.si_pid == p->pid;
}

/* Whether each of the n transfers xs has had a right answer. */
static bool all_answered(const struct xfer *xs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (xs[i].ok == 0)
            return false;
    return true;
}

/*
 * Stopping to accept races with nothing. First a pooled job is held when
 * SIGTERM comes (no drain period): a new client is refused, not left
 * waiting in a backlog, while the job still counts in flight (the closing
 * line says so before the job is released), and the job then answers 200.
 * Then SIGTERM while sixteen keep-alive clients, each answered at least
 * once already, keep sending small requests until the process is gone,
 * eight times over: every run exits 0 (libmicrohttpd's
 * MHD_quiesce_daemon(), used before, now and then aborted the process at
 * this point).
 */
START_TEST(test_closing_under_load)
{
    static const char *const args[] = {
        "--workers", "1", "--drain-seconds", "0", "--exit-timeout", "60", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start_test(&p, args, true), 0);
    size_t big_len;
    char *big = block_body(1000, &big_len);
    CURLM *m = curl_multi_init();
    struct xfer job;
    xfer_init(&job, &p, "/v1/test_block", big, big_len, 1, "\"value\":[");
    free(big);
    curl_multi_add_handle(m, job.e);
    send_all(m, &job);
    lossd_gate_wait_started(&p, 1);
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    double until = harness_now() + 30;
    while (connect_errno(&p) != ECONNREFUSED) {
        ck_assert_msg(harness_now() < until, "still accepting");
        usleep(2000);
    }
    ck_assert_uint_eq(closing_inflight(&p), 1);
    ck_assert(!job.done);
    lossd_gate_release(&p, 1);
    ck_assert_uint_eq(multi_run(m, &job, 1, harness_now() + 60), 0);
    ck_assert_msg(job.ok == 1, "the job: %ld", job.status);
    xfer_release(&job);
    curl_multi_cleanup(m);
    int st = lossd_stop(&p, 0, 30);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d", st);
    ck_assert(lossd_stderr_clean(&p));
    unlink(p.stderr_path);

    for (int run = 0; run < 8; run++) {
        ck_assert_int_eq(lossd_start(&p, args), 0);
        m = curl_multi_init();
        struct xfer xs[16];
        for (size_t i = 0; i < 16; i++) {
            xfer_init(&xs[i], &p, "/v1/mse", MSE_BODY, strlen(MSE_BODY),
                      1 << 30, NULL);
            curl_multi_add_handle(m, xs[i].e);
        }
        /* the load is on: every client has been answered */
        double end = harness_now() + 60;
        while (!all_answered(xs, 16)) {
            ck_assert_msg(harness_now() < end, "run %d: clients unanswered",
                          run);
            multi_step(m);
        }
        ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
        /* the clients keep sending (and fail once refused) until the
           process is gone */
        end = harness_now() + 60;
        while (!exited(&p)) {
            ck_assert_msg(harness_now() < end, "run %d: no exit", run);
            multi_step(m);
        }
        for (size_t i = 0; i < 16; i++) {
            curl_multi_remove_handle(m, xs[i].e);
            xfer_release(&xs[i]);
        }
        curl_multi_cleanup(m);
        st = lossd_stop(&p, 0, 30);
        ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "run %d: exit status %d", run, st);
        ck_assert(lossd_stderr_clean(&p));
        unlink(p.stderr_path);
    }
}
END_TEST

/*
 * --exit-timeout: a job is held on the only worker and never released, two
 * more wait behind it (they never start); on SIGTERM the queued ones are
 * answered 503 (they never ran), and the process leaves with exit code 0,
 * within the exit timeout and a margin, although the held job never
 * finished.
 */
START_TEST(test_exit_timeout)
{
    static const char *const args[] = {
        "--workers", "1", "--drain-seconds", "0", "--exit-timeout",
        "0.2",       NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start_test(&p, args, true), 0);
    size_t len;
    char *body = block_body(1000, &len);
    CURLM *m = curl_multi_init();
    struct xfer jobs[3];
    xfer_init(&jobs[0], &p, "/v1/test_block", body, len, 1, "\"value\":[");
    free(body);
    curl_multi_add_handle(m, jobs[0].e);
    send_all(m, &jobs[0]);
    lossd_gate_wait_started(&p, 1);
    wait_gauge(&p, "lossd_pool_jobs", equals, 1);
    body = info_nce_body(300, 16, &len); /* pooled */
    for (size_t i = 1; i < 3; i++) {
        xfer_init(&jobs[i], &p, "/v1/info_nce", body, len, 1, "\"value\":");
        curl_multi_add_handle(m, jobs[i].e);
        send_all(m, &jobs[i]);
    }
    free(body);
    wait_gauge(&p, "lossd_pool_jobs", equals, 3);
    double t0 = harness_now();
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    int st = lossd_stop(&p, 0, 30);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d", st);
    /* 0.2 s of exit timeout, 1 s for running jobs, and a margin for a slow
       (sanitized) process: a bound that needs no job to be long */
    ck_assert_msg(harness_now() - t0 < 10, "took %.1f s", harness_now() - t0);
    /* every transfer ends: the queued ones with their 503, the held one
       cut by the exit */
    ck_assert_uint_eq(multi_run(m, jobs, 3, harness_now() + 30), 0);
    for (size_t i = 1; i < 3; i++) {
        expect_unavailable(&jobs[i]);
        ck_assert_ptr_nonnull(strstr(jobs[i].resp, "before the job could run"));
    }
    ck_assert_msg(jobs[0].result != CURLE_OK, "the held job was answered %ld",
                  jobs[0].status);
    for (size_t i = 0; i < 3; i++)
        xfer_release(&jobs[i]);
    curl_multi_cleanup(m);
    ck_assert(lossd_stderr_clean(&p));
    ck_assert(lossd_stderr_contains(&p, "exit timeout: 1 jobs still running"));
    unlink(p.stderr_path);
}
END_TEST

/*
 * --queue-limit: with one slot, while a held job takes it (the pool gauge
 * says so), several more pooled info_nce jobs sent at once are all refused
 * 503 with Retry-After while it is still held; released, the first
 * completes; then the slot is free again.
 */
START_TEST(test_queue_full)
{
    static const char *const args[] = {"--workers", "1", "--queue-limit", "1",
                                       NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start_test(&p, args, true), 0);
    ck_assert(metric(&p, "lossd_pool_jobs_limit") == 1);
    size_t len;
    char *body = block_body(1000, &len);
    enum { MORE = 3 };
    struct xfer xs[MORE + 1];
    struct xfer *first = &xs[MORE];
    CURLM *m = curl_multi_init();
    xfer_init(first, &p, "/v1/test_block", body, len, 1, "\"value\":[");
    curl_multi_add_handle(m, first->e);
    send_all(m, first);
    lossd_gate_wait_started(&p, 1);
    wait_gauge(&p, "lossd_pool_jobs", equals, 1);
    free(body);
    /* pooled too: refused without running */
    body = info_nce_body(300, 16, &len);
    for (size_t i = 0; i < MORE; i++) {
        xfer_init(&xs[i], &p, "/v1/info_nce", body, len, 1, NULL);
        curl_multi_add_handle(m, xs[i].e);
    }
    ck_assert_uint_eq(multi_run(m, xs, MORE, harness_now() + 120), 0);
    for (size_t i = 0; i < MORE; i++) {
        expect_unavailable(&xs[i]);
        ck_assert_ptr_nonnull(strstr(xs[i].resp, "queue-limit"));
    }
    ck_assert_msg(!first->done, "first answered %ld %.200s", first->status,
                  first->resp ? first->resp : "");
    lossd_gate_release(&p, 1);
    ck_assert_uint_eq(multi_run(m, first, 1, harness_now() + 60), 0);
    ck_assert_msg(first->ok == 1, "first: %ld %.200s", first->status,
                  first->resp);
    for (size_t i = 0; i <= MORE; i++)
        xfer_release(&xs[i]);
    curl_multi_cleanup(m);
    /* the slot was given back before the answer was sent */
    ck_assert(metric(&p, "lossd_pool_jobs") == 0);
    struct http_resp r;
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    ck_assert_int_eq(http_do(&p, "POST", "/v1/info_nce", ct, body, len, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_release(&r);
    free(body);
    ck_assert(metric(&p, "lossd_queue_wait_seconds_count") == 2);
    lossd_finish(&p);
}
END_TEST

/* Sends headers and the start of a 100000-byte body, waits us, closes. */
static void leave_mid_body(const struct lossd_proc *p, useconds_t us)
{
    int fd = raw_connect(p);
    const char *req = "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: 100000\r\n\r\n{\"input\": [1, 2";
    ck_assert(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    if (us > 0)
        usleep(us);
    close(fd);
}

START_TEST(test_disconnects)
{
    static const char *const args[] = {"--workers", "1", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start_test(&p, args, true), 0);
    /* mid-body */
    for (int i = 0; i < 20; i++)
        leave_mid_body(&p, 5000);
    /* mid-job: the whole body, then gone while the first job is held on
       the worker and the two others wait behind it; then the jobs may
       finish, answering nobody */
    size_t len;
    char *body = block_body(1000, &len);
    int fds[3];
    for (size_t i = 0; i < 3; i++) {
        int fd = fds[i] = raw_connect(&p);
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "POST /v1/test_block HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          len);
        ck_assert(write(fd, head, (size_t)hl) == hl);
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(fd, body + off, len - off);
            ck_assert(w > 0);
            off += (size_t)w;
        }
        if (i == 0)
            lossd_gate_wait_started(&p, 1);
        wait_gauge(&p, "lossd_pool_jobs", equals, (double)i + 1);
    }
    free(body);
    for (size_t i = 0; i < 3; i++)
        close(fds[i]);
    lossd_gate_release(&p, 3);
    /* mid-body, the end of stream right behind the last bytes (libmicrohttpd
       does not see it by itself): every such request leaves at once */
    for (int i = 0; i < 100; i++)
        leave_mid_body(&p, 0);
    double end = harness_now() + 30;
    while (metric(&p, "lossd_requests_in_flight") != 1) {
        ck_assert_msg(harness_now() < end, "%g requests stay in flight",
                      metric(&p, "lossd_requests_in_flight") - 1);
        usleep(10000);
    }
    struct http_resp r;
    static const char *const json_ct[] = {"Content-Type: application/json",
                                          NULL};
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", json_ct, MSE_BODY, strlen(MSE_BODY), &r),
        0);
    ck_assert_int_eq(r.status, 200);
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

/* Writes all of s (len bytes) to fd. */
static void write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, s, len, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send failed");
        s += w;
        len -= (size_t)w;
    }
}

/* An mse body of an input of n elements and a scalar target. */
static char *mse_body(size_t n, size_t *ret_len)
{
    char *s = malloc(n * 5 + 64);
    size_t len = (size_t)sprintf(s, "{\"input\": [");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, i ? ",0.25" : "0.25");
    len += (size_t)sprintf(s + len, "], \"target\": 0}");
    *ret_len = len;
    return s;
}

/* Sends n more numbers of an input array on fd. */
static void send_numbers(int fd, size_t n)
{
    char *chunk = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        memcpy(chunk + 4 * i, ",0.5", 4);
    write_all(fd, chunk, n * 4);
    free(chunk);
}

/*
 * A connection that sends the start of a body of 20 MB: an input of n
 * numbers and a comma, then nothing. With n = 2^k + 1 the last number
 * doubles the decoder's array (to 2^(k+1) numbers, 2^(k+4) bytes), so the
 * gauge reaching that size shows that the server has read everything sent.
 */
static int hold_partial(const struct lossd_proc *p, size_t n)
{
    int fd = raw_connect(p);
    const char *head = "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 20000000\r\n\r\n{\"input\": [0.5";
    write_all(fd, head, strlen(head));
    send_numbers(fd, n - 1);
    write_all(fd, ",", 1);
    return fd;
}

/*
 * --max-inflight-bytes: a client that has sent part of a large body holds
 * its decoded tensor (the gauge says how much); a request that would take
 * the server past the limit is answered 503 with Retry-After, small ones
 * are still served, and once the holder leaves the same request succeeds.
 * A request that passes the limit by itself gives its bytes back at once,
 * while its client is still sending.
 */
START_TEST(test_inflight_bytes)
{
    const double limit = 6 << 20;
    static const char *const args[] = {"--max-inflight-bytes", "6M", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    ck_assert(metric(&p, "lossd_inflight_limit_bytes") == limit);
    /* the holder: 2^18 + 1 numbers, an array of 2^19 (4 MiB), under the
       limit; once the gauge shows it, the holder's bytes are all read */
    enum { HELD = (1 << 18) + 1, HELD_CAP = 1 << 19 };
    int fd = hold_partial(&p, HELD);
    double held =
        wait_gauge(&p, "lossd_inflight_bytes", at_least, HELD_CAP * 8.0);
    ck_assert_msg(held < limit, "held %g", held);
    /*
     * A request whose decoded input (8 bytes a number) plus its job's
     * working memory (16 bytes a number for mse) passes what is left, but
     * not the limit by itself.
     */
    size_t n = (size_t)((limit - held) / 12), len;
    char *body = mse_body(n, &len);
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    struct http_resp r;
    char buf[64];
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", ct, body, len, &r), 0);
    ck_assert_msg(r.status == 503, "status %ld: %s", r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "max-inflight-bytes"));
    ck_assert_str_eq(http_header(&r, "Retry-After", buf, sizeof buf), "1");
    http_resp_release(&r);
    /* small requests are still served while the holder holds */
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", ct, MSE_BODY, strlen(MSE_BODY), &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_release(&r);
    ck_assert(metric(&p, "lossd_inflight_bytes") == held);
    /* the holder leaves: everything it held is given back */
    close(fd);
    wait_gauge(&p, "lossd_inflight_bytes", equals, 0);
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", ct, body, len, &r), 0);
    ck_assert_msg(r.status == 200, "status %ld: %.300s", r.status, r.body);
    http_resp_release(&r);
    /* a body over the limit by itself: refused while it streams, and its
       bytes are free again although its client has not finished */
    fd = hold_partial(&p, HELD);
    ck_assert(wait_gauge(&p, "lossd_inflight_bytes", at_least,
                         HELD_CAP * 8.0) == held);
    /* the decoder's array doubles to 8 MiB: past the limit */
    send_numbers(fd, HELD);
    wait_gauge(&p, "lossd_inflight_bytes", equals, 0);
    /* the holder and the scrape (finished requests may lag a little: the
       client reads its answer before the server completes it) */
    wait_gauge(&p, "lossd_requests_in_flight", equals, 2);
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", ct, body, len, &r), 0);
    ck_assert_msg(r.status == 200, "status %ld: %.300s", r.status, r.body);
    http_resp_release(&r);
    close(fd);
    free(body);
    lossd_finish(&p);
}
END_TEST

/* The loss names of p's catalog, in order: a new JSON array. */
static json_t *catalog_names(const struct lossd_proc *p)
{
    struct http_resp r;
    ck_assert_int_eq(http_do(p, "GET", "/v1/losses", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    json_t *doc = json_loadb(r.body, r.len, 0, NULL);
    http_resp_release(&r);
    json_t *losses = json_object_get(doc, "losses");
    ck_assert(json_is_array(losses));
    json_t *names = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(losses, i, l)
    {
        json_array_append(names, json_object_get(l, "name"));
    }
    json_decref(doc);
    return names;
}

/*
 * test_block is lossd-test's alone: the shipped lossd answers 404 for it
 * and its catalog is lossd-test's without that last entry. Without a gate
 * the loss fails at once with a problem document, never waits.
 */
START_TEST(test_block_loss)
{
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    static const char body[] = "{\"input\": [1, 2]}";
    char buf[128];
    struct lossd_proc p, t;
    struct http_resp r;
    ck_assert_int_eq(lossd_start(&p, NULL), 0);
    ck_assert_int_eq(lossd_start_test(&t, NULL, false), 0);
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/test_block", ct, body, strlen(body), &r), 0);
    ck_assert_int_eq(r.status, 404);
    http_resp_release(&r);
    json_t *shipped = catalog_names(&p), *test = catalog_names(&t);
    size_t n = json_array_size(shipped);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(json_array_size(test), n + 1);
    ck_assert_str_eq(json_string_value(json_array_get(test, n)), "test_block");
    json_array_remove(test, n);
    ck_assert(json_equal(shipped, test));
    json_decref(shipped);
    json_decref(test);
    ck_assert_int_eq(
        http_do(&t, "POST", "/v1/test_block", ct, body, strlen(body), &r), 0);
    ck_assert_msg(r.status == 500, "status %ld: %s", r.status, r.body);
    ck_assert_str_eq(http_json_str(&r, "type", buf, sizeof buf),
                     "/problems/internal");
    ck_assert_ptr_nonnull(strstr(r.body, "LOSSD_TEST_GATE"));
    http_resp_release(&r);
    lossd_finish(&t);
    lossd_finish(&p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("load");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_block_loss);
    tcase_add_test(tc, test_many_clients);
    tcase_add_test(tc, test_small_overtake_large);
    tcase_add_test(tc, test_sigterm_drain);
    tcase_add_test(tc, test_closing_under_load);
    tcase_add_test(tc, test_exit_timeout);
    tcase_add_test(tc, test_disconnects);
    tcase_add_test(tc, test_queue_full);
    tcase_add_test(tc, test_inflight_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return harness_run(suite());
}

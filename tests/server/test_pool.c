/*
 * test_pool.c - `lossd serve` under load and while stopping: hundreds of
 * keep-alive clients, small requests overtaking a large pooled job, SIGTERM
 * drains, the exit timeout, clients that leave mid-body or mid-job.
 * Ordering is checked instead of timing.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
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
    const char *expect; /* substring every answer must hold */
};

static size_t xfer_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    char *t = realloc(x->resp, x->resp_len + n + 1);
    if (!t)
        return 0;
    memcpy(t + x->resp_len, ptr, n);
    x->resp_len += n;
    t[x->resp_len] = '\0';
    x->resp = t;
    return n;
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
}

/*
 * Runs the multi handle until every transfer is done or the deadline
 * passes; each finished transfer with remaining > 0 is sent again (on its
 * kept-alive connection). Returns the number of transfers not done.
 */
static size_t multi_run(CURLM *m, struct xfer *xs, size_t n, double deadline)
{
    static unsigned rank;
    size_t left = n;
    (void)xs;
    while (left > 0 && harness_now() < deadline) {
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
                curl_multi_add_handle(m, x->e);
            } else {
                x->done = true;
                left--;
            }
        }
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    return left;
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

/* An info_nce body with N rows of D numbers: a few hundred ms of work. */
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

START_TEST(test_small_overtake_large)
{
    static const char *const args[] = {"--workers", "1", "--max-work", "64M",
                                       NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    size_t len;
    char *body = info_nce_body(4000, 256, &len);
    CURLM *m = curl_multi_init();
    enum { SMALL = 20 };
    /* xfers are found through CURLOPT_PRIVATE: they never move */
    struct xfer xs[SMALL + 1];
    struct xfer *large = &xs[SMALL];
    xfer_init(large, &p, "/v1/info_nce", body, len, 1, "\"value\":");
    free(body);
    curl_multi_add_handle(m, large->e);
    /* until the whole body is sent (the job is then decoding or queued) */
    double deadline = harness_now() + 60;
    curl_off_t up = 0;
    while ((size_t)up < len && harness_now() < deadline) {
        int running;
        curl_multi_perform(m, &running);
        curl_easy_getinfo(large->e, CURLINFO_SIZE_UPLOAD_T, &up);
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    ck_assert_uint_eq((size_t)up, len);
    struct xfer *small = xs;
    for (size_t i = 0; i < SMALL; i++) {
        xfer_init(&small[i], &p, "/v1/mse", MSE_BODY, strlen(MSE_BODY), 1,
                  "\"value\":2");
        curl_multi_add_handle(m, small[i].e);
    }
    size_t left = multi_run(m, small, SMALL + 1, harness_now() + 120);
    ck_assert_uint_eq(left, 0);
    for (size_t i = 0; i < SMALL; i++) {
        ck_assert_int_eq(small[i].ok, 1);
        ck_assert_msg(small[i].order < small[SMALL].order,
                      "small request %zu finished after the large one (%ld "
                      "%s %.200s)",
                      i, small[SMALL].status,
                      curl_easy_strerror((CURLcode)small[SMALL].result),
                      small[SMALL].resp);
        xfer_release(&small[i]);
    }
    ck_assert_msg(small[SMALL].ok == 1, "large: %ld %s", small[SMALL].status,
                  small[SMALL].resp);
    xfer_release(&small[SMALL]);
    curl_multi_cleanup(m);
    lossd_finish(&p);
}
END_TEST

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

START_TEST(test_sigterm_drain)
{
    static const char *const args[] = {
        "--workers", "1", "--drain-seconds", "1", "--exit-timeout", "60", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    size_t len;
    char *body = info_nce_body(3000, 128, &len);
    CURLM *m = curl_multi_init();
    struct xfer jobs[2];
    for (size_t i = 0; i < 2; i++) {
        xfer_init(&jobs[i], &p, "/v1/info_nce", body, len, 1, "\"value\":");
        curl_multi_add_handle(m, jobs[i].e);
    }
    free(body);
    send_all(m, &jobs[0]);
    send_all(m, &jobs[1]);
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    usleep(200000);
    struct http_resp r;
    ck_assert_int_eq(http_do(&p, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 503);
    http_resp_release(&r);
    ck_assert_int_eq(http_do(&p, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_release(&r);
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
}
END_TEST

START_TEST(test_exit_timeout)
{
    static const char *const args[] = {"--workers",
                                       "1",
                                       "--drain-seconds",
                                       "0",
                                       "--exit-timeout",
                                       "0.2",
                                       "--max-work",
                                       "64M",
                                       NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    size_t len;
    char *body = info_nce_body(4000, 512, &len);
    CURLM *m = curl_multi_init();
    struct xfer jobs[3];
    for (size_t i = 0; i < 3; i++) {
        xfer_init(&jobs[i], &p, "/v1/info_nce", body, len, 1, "\"value\":");
        curl_multi_add_handle(m, jobs[i].e);
    }
    free(body);
    for (size_t i = 0; i < 3; i++)
        send_all(m, &jobs[i]);
    usleep(300000); /* one job running, the others queued */
    double t0 = harness_now();
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    int st = lossd_stop(&p, 0, 30);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d", st);
    ck_assert_msg(harness_now() - t0 < 10, "took %.1f s", harness_now() - t0);
    /* queued jobs were answered 503 or cut; none hangs */
    multi_run(m, jobs, 3, harness_now() + 10);
    for (size_t i = 0; i < 3; i++)
        xfer_release(&jobs[i]);
    curl_multi_cleanup(m);
    ck_assert(lossd_stderr_clean(&p));
}
END_TEST

static int raw_connect(const struct lossd_proc *p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)p->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

START_TEST(test_disconnects)
{
    static const char *const args[] = {"--workers", "1", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    /* mid-body */
    for (int i = 0; i < 20; i++) {
        int fd = raw_connect(&p);
        const char *req = "POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: 100000\r\n\r\n{\"input\": [1, 2";
        ck_assert(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
        usleep(5000);
        close(fd);
    }
    /* mid-job: the whole body, then gone */
    size_t len;
    char *body = info_nce_body(2000, 128, &len);
    for (int i = 0; i < 3; i++) {
        int fd = raw_connect(&p);
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "POST /v1/info_nce HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          len);
        ck_assert(write(fd, head, (size_t)hl) == hl);
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(fd, body + off, len - off);
            ck_assert(w > 0);
            off += (size_t)w;
        }
        usleep(20000);
        close(fd);
    }
    free(body);
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

static Suite *suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("load");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_many_clients);
    tcase_add_test(tc, test_small_overtake_large);
    tcase_add_test(tc, test_sigterm_drain);
    tcase_add_test(tc, test_exit_timeout);
    tcase_add_test(tc, test_disconnects);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

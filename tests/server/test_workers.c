/*
 * test_workers.c - `lossd serve` answers the same bytes whatever the number
 * of workers that run a pooled job's blocks (server/pool_exec.c): the same
 * large requests (cross_entropy, info_nce pairs and nt_xent, mse, a batch;
 * every one above --inline-max-cost, so on the pool, with gradients) go to
 * servers with --workers 1, 2 and 4, one at a time and all at once (so
 * jobs and their helpers interleave), and every response body must equal
 * the first server's answer to the same request, byte for byte. The
 * servers' lossd_queue_wait_seconds_count shows that every request was
 * pooled.
 */
#include <check.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ---- request bodies ----------------------------------------------------- */

/* A growing buffer that doubles (one realloc a number would copy the
   whole body each time under AddressSanitizer). */
struct body {
    char *data;
    size_t len, cap;
};

static void put(struct body *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(struct body *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    ck_assert(n > 0 && (size_t)n < sizeof tmp);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1 << 16;
        b->data = realloc(b->data, b->cap);
        ck_assert(b->data);
    }
    memcpy(b->data + b->len, tmp, (size_t)n + 1);
    b->len += (size_t)n;
}

/* A fixed pseudo-random value in [-2, 2) (a linear congruential sequence). */
static double next_value(unsigned long long *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0 * 4.0 - 2.0;
}

/* A (rows, cols) matrix of nested arrays, 6 decimals. */
static void put_matrix(struct body *b, size_t rows, size_t cols,
                       unsigned long long seed)
{
    put(b, "[");
    for (size_t i = 0; i < rows; i++) {
        put(b, i ? ",[" : "[");
        for (size_t j = 0; j < cols; j++)
            put(b, j ? ",%.6f" : "%.6f", next_value(&seed));
        put(b, "]");
    }
    put(b, "]");
}

/* rows class indices in [0, classes). */
static void put_classes(struct body *b, size_t rows, size_t classes,
                        unsigned long long seed)
{
    put(b, "[");
    for (size_t i = 0; i < rows; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        put(b, i ? ",%zu" : "%zu", (size_t)(seed >> 33) % classes);
    }
    put(b, "]");
}

struct request {
    const char *name;
    const char *path;
    struct body body;
};

enum { NREQ = 6 };

/* Each is a few blocks of every kernel it runs (64 rows, or 64 Ki
   elements, a block) and costs far more than --inline-max-cost (1e5). */
static void requests_make(struct request *r)
{
    memset(r, 0, NREQ * sizeof *r);
    r[0].name = "cross_entropy (1000, 200), label smoothing, grad";
    r[0].path = "/v1/cross_entropy";
    put(&r[0].body, "{\"input\":");
    put_matrix(&r[0].body, 1000, 200, 1);
    put(&r[0].body, ",\"target\":");
    put_classes(&r[0].body, 1000, 200, 2);
    put(&r[0].body, ",\"label_smoothing\":0.1,\"grad\":true}");

    r[1].name = "info_nce pairs N=512 D=32, grad";
    r[1].path = "/v1/info_nce";
    put(&r[1].body, "{\"query\":");
    put_matrix(&r[1].body, 512, 32, 3);
    put(&r[1].body, ",\"positive_key\":");
    put_matrix(&r[1].body, 512, 32, 4);
    put(&r[1].body, ",\"grad\":true}");

    r[2].name = "info_nce nt_xent N=384 D=32, grad, base64 output";
    r[2].path = "/v1/info_nce";
    put(&r[2].body, "{\"query\":");
    put_matrix(&r[2].body, 384, 32, 5);
    put(&r[2].body, ",\"positive_key\":");
    put_matrix(&r[2].body, 384, 32, 6);
    put(&r[2].body, ",\"variant\":\"nt_xent\",\"temperature\":0.5,"
                    "\"grad\":true,\"output_format\":\"base64\"}");

    r[3].name = "info_nce pairs with unpaired negatives, sum, grad";
    r[3].path = "/v1/info_nce";
    put(&r[3].body, "{\"query\":");
    put_matrix(&r[3].body, 256, 16, 7);
    put(&r[3].body, ",\"positive_key\":");
    put_matrix(&r[3].body, 256, 16, 8);
    put(&r[3].body, ",\"negative_keys\":");
    put_matrix(&r[3].body, 300, 16, 9);
    put(&r[3].body, ",\"reduction\":\"sum\",\"grad\":true}");

    r[4].name = "mse (300, 800), grad";
    r[4].path = "/v1/mse";
    put(&r[4].body, "{\"input\":");
    put_matrix(&r[4].body, 300, 800, 10);
    put(&r[4].body, ",\"target\":");
    put_matrix(&r[4].body, 300, 800, 11);
    put(&r[4].body, ",\"grad\":true}");

    r[5].name = "batch: mse, l1, huber, log_softmax on a shared (400, 300)";
    r[5].path = "/v1/batch";
    put(&r[5].body, "{\"shared\":{\"input\":");
    put_matrix(&r[5].body, 400, 300, 12);
    put(&r[5].body, ",\"grad\":true},\"requests\":[{\"loss\":\"mse\","
                    "\"id\":\"a\",\"target\":");
    put_matrix(&r[5].body, 400, 300, 13);
    put(&r[5].body, "},{\"loss\":\"l1\",\"id\":\"b\",\"reduction\":"
                    "\"none\",\"target\":");
    put_matrix(&r[5].body, 400, 300, 14);
    put(&r[5].body, "},{\"loss\":\"huber\",\"id\":\"c\",\"target\":");
    put_matrix(&r[5].body, 400, 300, 15);
    put(&r[5].body, "},{\"loss\":\"log_softmax\",\"id\":\"d\",\"dim\":1}]}");
}

static void requests_release(struct request *r)
{
    for (size_t i = 0; i < NREQ; i++)
        free(r[i].body.data);
}

/* ---- sending ------------------------------------------------------------ */

struct answer {
    long status;
    struct harness_sink body;
};

/*
 * Sends every request of r to p at once (curl multi, a connection each),
 * so that their jobs run together; ret[i] is the answer to r[i].
 */
static void send_all_at_once(const struct lossd_proc *p,
                             const struct request *r, struct answer *ret)
{
    CURLM *m = curl_multi_init();
    CURL *e[NREQ];
    struct curl_slist *hl =
        curl_slist_append(NULL, "Content-Type: application/json");
    char url[256];
    int running = 1;
    ck_assert(m && hl);
    for (size_t i = 0; i < NREQ; i++) {
        memset(&ret[i], 0, sizeof ret[i]);
        e[i] = curl_easy_init();
        ck_assert(e[i]);
        snprintf(url, sizeof url, "%s%s", p->url, r[i].path);
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, r[i].body.data);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)r[i].body.len);
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, harness_sink_write);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &ret[i].body);
        curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e[i], CURLOPT_TIMEOUT, 300L);
        ck_assert_int_eq(curl_multi_add_handle(m, e[i]), CURLM_OK);
    }
    while (running) {
        ck_assert_int_eq(curl_multi_perform(m, &running), CURLM_OK);
        if (running)
            ck_assert_int_eq(curl_multi_poll(m, NULL, 0, 1000, NULL), CURLM_OK);
    }
    for (size_t i = 0; i < NREQ; i++) {
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &ret[i].status);
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(hl);
}

static void send_one(const struct lossd_proc *p, const struct request *r,
                     struct answer *ret)
{
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    struct http_resp resp;
    ck_assert_int_eq(
        http_do(p, "POST", r->path, hdrs, r->body.data, r->body.len, &resp), 0);
    ret->status = resp.status;
    ret->body.data = resp.body;
    ret->body.len = resp.len;
    resp.body = NULL;
    http_resp_release(&resp);
}

static void check_same(const struct request *r, const struct answer *ref,
                       const struct answer *a, const char *how,
                       const char *workers)
{
    ck_assert_msg(a->status == 200, "%s, %s, --workers %s: status %ld", r->name,
                  how, workers, a->status);
    ck_assert_msg(a->body.len == ref->body.len &&
                      memcmp(a->body.data, ref->body.data, a->body.len) == 0,
                  "%s, %s, --workers %s: the body differs from --workers 1's "
                  "(%zu bytes against %zu)",
                  r->name, how, workers, a->body.len, ref->body.len);
}

START_TEST(test_same_bytes_for_any_worker_count)
{
    static const char *const counts[] = {"1", "2", "4"};
    struct request r[NREQ];
    struct answer ref[NREQ];
    requests_make(r);
    for (size_t c = 0; c < 3; c++) {
        const char *args[] = {"--workers", counts[c], "--log-level", "error",
                              NULL};
        struct lossd_proc p;
        struct answer a[NREQ];
        ck_assert_int_eq(lossd_start(&p, args), 0);
        /* one at a time: a job has the pool to itself */
        for (size_t i = 0; i < NREQ; i++) {
            if (c == 0) {
                send_one(&p, &r[i], &ref[i]);
                ck_assert_msg(ref[i].status == 200, "%s: status %ld: %s",
                              r[i].name, ref[i].status, ref[i].body.data);
                continue;
            }
            send_one(&p, &r[i], &a[i]);
            check_same(&r[i], &ref[i], &a[i], "alone", counts[c]);
            free(a[i].body.data);
        }
        /* all at once: jobs share the workers */
        send_all_at_once(&p, r, a);
        for (size_t i = 0; i < NREQ; i++) {
            check_same(&r[i], &ref[i], &a[i], "all at once", counts[c]);
            free(a[i].body.data);
        }
        /* every request ran on the pool (inline ones have no queue wait) */
        ck_assert_msg(
            lossd_metric(&p, "lossd_queue_wait_seconds_count") == 2.0 * NREQ,
            "--workers %s: %g pooled jobs, not %d", counts[c],
            lossd_metric(&p, "lossd_queue_wait_seconds_count"), 2 * NREQ);
        lossd_finish(&p);
    }
    for (size_t i = 0; i < NREQ; i++)
        free(ref[i].body.data);
    requests_release(r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("workers");
    TCase *tc = tcase_create("workers");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_same_bytes_for_any_worker_count);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return harness_run(suite());
}

/*
 * test_oom.c - the request pipeline when memory runs out: every allocation a
 * request makes (decoder, document, job, calls, outputs, warnings, the
 * response and problem writers, jansson's) is made to fail in turn.
 *
 * For each representative request, a run without failures counts the K
 * allocations it makes and gives the expected answer; then for every N in
 * 1..K the Nth allocation fails (only that one, or that one and every later
 * one), and:
 *
 *   - the answer is the expected one byte for byte, or a problem document
 *     with status 503 (out of memory), or, when even that could not be
 *     written (the buffer failed, proto_buf_ok() false), the answer the
 *     server sends then: the out-of-memory problem written at start
 *     (server/http.c, respond_answer()). A batch may also answer 200 with
 *     some items' results replaced by 503 problems: items fail alone;
 *   - everything is freed: the wrappers' count of live pointers is back
 *     where it was (AddressSanitizer's leak check says the same in the
 *     sanitizer build), and the pipeline holds no in-flight bytes;
 *   - the pipeline keeps serving: two failure-free requests on it (the
 *     first takes the decoder the failed request gave back) answer exactly
 *     as before.
 *
 * Infer requests of the Open Inference Protocol (handler_request_new_oip(),
 * binary data in and out) are among the cases. handler_eval() (its own
 * pipeline per body) answers the same way, and the
 * catalog and the OpenAPI document, written by proto/ from the registry's
 * descriptions, are written whole or not at all.
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "document.h"
#include "failmalloc.h"
#include "handler.h"
#include "testutil.h"

#define INSTANCE "oom-test"

/* The answer when the answer itself could not be written (built at start,
   as the server does). */
static struct proto_buf oom_answer;

struct oom_case {
    const char *name;
    const char *loss; /* HANDLER_BATCH for the batch route */
    const char *body;
    size_t chunk; /* feed size; 0: the whole body at once */
    int status;   /* the answer without failures */
};

static const struct oom_case cases[] = {
    {"mse broadcast, grad", "mse",
     "{\"input\": [[0.5, -1.25, 2], [3, 4.5, -6]], \"target\": [1, 2, 3], "
     "\"grad\": true}",
     7, 200},
    {"huber none, flat", "huber",
     "{\"input\": {\"shape\": [2, 2], \"data\": [0.1, 2, 3, -4e-3]}, "
     "\"target\": [[0, 1], [2, 3]], \"reduction\": \"none\", "
     "\"delta\": 0.5, \"grad\": [\"input\"], \"output_format\": \"flat\"}",
     0, 200},
    {"cross_entropy indices, weight", "cross_entropy",
     "{\"input\": [[1, 2, 3], [0.5, -1, 2], [0, 0, 0]], \"target\": [2, 0, "
     "-100], \"weight\": [1, 2, 0.5], \"label_smoothing\": 0.1, \"grad\": "
     "true, \"output_format\": \"base64\"}",
     5, 200},
    {"nll all ignored", "nll",
     "{\"input\": [[-1, -2], [-0.5, -3]], \"target\": [-100, -100], "
     "\"grad\": true}",
     0, 200},
    {"bce base64, clamp", "binary_cross_entropy",
     "{\"input\": {\"shape\": [4], \"dtype\": \"float64\", \"base64\": "
     "\"mpmZmZmZyT9mZmZmZmbmPwAAAAAAAOA/zczMzMzM7D8=\"}, \"target\": "
     "{\"shape\": [4], \"dtype\": \"float32\", \"base64\": "
     "\"AACAPwAAAAAAAIA/AAAAAA==\"}, \"grad\": true}",
     11, 200},
    {"bce clamp warning", "binary_cross_entropy",
     "{\"input\": [0, 1, 0.5], \"target\": [1, 0, 1]}", 0, 200},
    {"kl_div mean warning", "kl_div",
     "{\"input\": [[-1, -2], [-0.5, -0.25]], \"target\": [[0.2, 0.8], "
     "[0.5, 0.5]], \"grad\": true}",
     3, 200},
    {"log_softmax implicit dim", "log_softmax",
     "{\"input\": [[1, 2, 3], [4, 5, 6]], \"grad\": true, \"grad_output\": "
     "[[1, 0, 0], [0, 1, 0]]}",
     0, 200},
    {"info_nce negatives", "info_nce",
     "{\"query\": [[1, 0], [0, 1]], \"positive_key\": [[1, 0.5], [0, 1]], "
     "\"negative_keys\": [[0.5, 0.5], [-1, 0], [0, 0]], \"temperature\": "
     "0.5, \"grad\": true}",
     9, 200},
    {"info_nce nt_xent", "info_nce",
     "{\"query\": [[1, 0, 2], [0, 1, 1]], \"positive_key\": [[1, 0.5, 0], "
     "[0, 1, 3]], \"variant\": \"nt_xent\", \"reduction\": \"none\", "
     "\"grad\": true}",
     0, 200},
    {"batch shared, failing items", HANDLER_BATCH,
     "{\"shared\": {\"target\": [1, 2], \"reduction\": \"sum\"}, "
     "\"requests\": [{\"loss\": \"mse\", \"id\": \"a\", \"input\": [[1, 2], "
     "[3, 4]], \"grad\": true}, {\"loss\": \"l1\", \"id\": [1, {\"k\": "
     "null}], \"input\": [0.5, 1.5]}, {\"loss\": \"nope\", \"id\": 3}, "
     "{\"loss\": \"mse\", \"id\": 4, \"input\": [[1], [2, 3]]}, {\"loss\": "
     "\"mse\", \"input\": [1, 2, 3]}, {\"loss\": \"smooth_l1\", \"id\": "
     "\"dup\", \"input\": [1, 2], \"beta\": 2, \"beta\": 3}, {\"loss\": "
     "\"softmax\", \"input\": [1, 2], \"dim\": 0, \"output_format\": "
     "\"flat\"}]}",
     13, 200},
    {"invalid JSON", "mse", "{\"input\": [1, 2], \"target\": [1, 2]]", 4, 400},
    {"ragged tensor", "mse",
     "{\"input\": [[1, 2], [3]], \"target\": [1, 2], \"input\": 3}", 0, 400},
    {"shape mismatch", "l1", "{\"input\": [1, 2, 3], \"target\": [1, 2]}", 0,
     422},
    {"batch bad envelope", HANDLER_BATCH, "{\"requests\": [], \"x\": 1}", 0,
     422},
    /* the Open Inference Protocol: "oip/<loss>[/<header length>]" */
    {"oip binary in and out", "oip/mse/303",
     "{\"id\":\"o1\",\"inputs\":[{\"name\":\"input\",\"shape\":[2],"
     "\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":8}},{\"name\":"
     "\"target\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1,2]}],"
     "\"parameters\":{\"grad\":true,\"binary_data_output\":true},\"outputs\":[{"
     "\"name\":\"value\"},{\"name\":\"grad_input\",\"parameters\":{"
     "\"datatype\":\"FP32\"}}]}"
     "\xcd\xcc\x8c\x3f\xcd\xcc\x0c\x40",
     6, 200},
    {"oip JSON, BOOL target", "oip/binary_cross_entropy",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[2],\"datatype\":"
     "\"FP64\",\"data\":[0.25,0.5]},{\"name\":\"target\",\"shape\":[2],"
     "\"datatype\":\"BOOL\",\"data\":[true,false]}],\"parameters\":"
     "{\"reduction\":\"none\",\"grad\":\"input\"}}",
     5, 200},
    {"oip unknown output", "oip/mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":"
     "\"FP64\",\"data\":[1]}],\"outputs\":[{\"name\":\"nope\"}]}",
     0, 400},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* An infer request's header length: the number after "oip/<loss>/", or
   HANDLER_OIP_WHOLE; 0 when c is no infer request. */
static size_t case_oip(const struct oom_case *c)
{
    const char *slash;

    if (strncmp(c->loss, "oip/", 4) != 0)
        return 0;
    slash = strchr(c->loss + 4, '/');
    return slash ? (size_t)atol(slash + 1) : HANDLER_OIP_WHOLE;
}

static const struct handler_loss *case_loss(const struct oom_case *c)
{
    const struct handler_loss *loss;
    const char *name = c->loss;

    if (strcmp(c->loss, HANDLER_BATCH) == 0)
        return NULL;
    if (case_oip(c) != 0) {
        name += 4;
        loss = handler_find(name, strcspn(name, "/"));
        ck_assert_ptr_nonnull(loss);
        return loss;
    }
    loss = handler_find(c->loss, strlen(c->loss));
    ck_assert_ptr_nonnull(loss);
    return loss;
}

/*
 * One request through p as the server drives it (server/http.c): new
 * (out of memory there is answered with a problem written by the caller),
 * the body in chunks, stopping at the first failure, finish, then the
 * problem of a request that failed before it could run (problem() when
 * use_problem, else run() writes it, as `lossd eval` does) or the run.
 * Returns the HTTP status; the document is in out. No Check assertion
 * here: Check allocates in them.
 */
static int drive(struct handler_pipeline *p, const struct oom_case *c,
                 const struct handler_loss *loss, bool use_problem,
                 struct proto_buf *out)
{
    size_t len = strlen(c->body), step = c->chunk ? c->chunk : len;
    size_t oip = case_oip(c);
    struct handler_request *r = oip ? handler_request_new_oip(p, loss, oip, len)
                                    : handler_request_new(p, loss);
    struct loss_error err;
    int status;

    if (r == NULL) {
        loss_fail(&err, LOSS_ENOMEM, NULL, "out of memory");
        proto_problem_write(out, &err, INSTANCE, NULL);
        return proto_status_http(err.status);
    }
    for (size_t i = 0; i < len; i += step)
        if (handler_request_feed(r, c->body + i,
                                 len - i < step ? len - i : step) != LOSS_OK)
            break;
    if (handler_request_finish(r) != LOSS_OK && use_problem)
        status = handler_request_problem(r, INSTANCE, out);
    else
        status = handler_request_run(r, NULL, INSTANCE, out);
    handler_request_free(r);
    return status;
}

static json_t *parse(const char *s, size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(s, len, 0, &jerr);

    if (doc == NULL)
        ck_abort_msg("not JSON (%s): %.*s", jerr.text, (int)len, s);
    return doc;
}

/* A problem document for out of memory: 503, type unavailable. */
static bool is_oom_problem(const json_t *doc)
{
    return json_integer_value(json_object_get(doc, "status")) == 503 &&
           json_is_string(json_object_get(doc, "detail")) &&
           strcmp(json_string_value(json_object_get(doc, "type")),
                  "/problems/unavailable") == 0;
}

/* How an answer under failures came out. */
enum outcome { SAME, OOM_PROBLEM, FALLBACK, ITEMS_503, NOUTCOMES };

static const char *const outcome_names[] = {"same", "503 problem", "fallback",
                                            "items 503"};

/*
 * Checks an answer under failures against the expected one; what the
 * client would get is out when proto_buf_ok(out), else oom_answer.
 */
static enum outcome check_answer(const char *what, int status,
                                 const struct proto_buf *out,
                                 const struct proto_buf *want, int want_status)
{
    const struct proto_buf *got = proto_buf_ok(out) ? out : &oom_answer;
    enum outcome o = proto_buf_ok(out) ? OOM_PROBLEM : FALLBACK;
    json_t *doc, *wdoc, *res, *wres;

    if (got == out && status == want_status && out->len == want->len &&
        memcmp(out->data, want->data, want->len) == 0)
        return SAME;
    doc = parse(got->data, got->len);
    if (got == out && status == 200 && want_status == 200) {
        /* a batch whose items ran out of memory alone */
        wdoc = parse(want->data, want->len);
        res = json_object_get(doc, "results");
        wres = json_object_get(wdoc, "results");
        ck_assert_msg(res != NULL && wres != NULL, "%s: a different 200: %s",
                      what, out->data);
        ck_assert_uint_eq(json_array_size(res), json_array_size(wres));
        for (size_t i = 0; i < json_array_size(res); i++) {
            json_t *item = json_array_get(res, i);

            ck_assert_msg(json_equal(item, json_array_get(wres, i)) ||
                              is_oom_problem(item),
                          "%s: item %zu is neither the same nor 503: %s", what,
                          i, out->data);
        }
        json_decref(wdoc);
        json_decref(doc);
        return ITEMS_503;
    }
    ck_assert_msg(got == &oom_answer || status == 503,
                  "%s: status %d, not %d or 503: %s", what, status, want_status,
                  out->data);
    ck_assert_msg(is_oom_problem(doc), "%s: not the 503 problem: %.*s", what,
                  (int)got->len, got->data);
    json_decref(doc);
    return o;
}

static struct handler_pipeline *new_pipeline(void)
{
    struct handler_limits lim;
    struct handler_pipeline *p;

    handler_limits_default(&lim);
    p = handler_pipeline_new(&lim, SIZE_MAX);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* The answer to c without failures, and the allocations it takes on a new
   pipeline. */
static size_t baseline(const struct oom_case *c, struct proto_buf *want,
                       int *ret_status)
{
    const struct handler_loss *loss = case_loss(c);
    struct handler_pipeline *p = new_pipeline();
    long live = failmalloc_live();
    size_t k;

    failmalloc_fail_after(0, false);
    *ret_status = drive(p, c, loss, false, want);
    k = failmalloc_count();
    ck_assert(proto_buf_ok(want));
    ck_assert_msg(*ret_status == c->status, "%s: status %d, not %d: %s",
                  c->name, *ret_status, c->status, want->data);
    handler_pipeline_free(p);
    /* the pipeline kept the decoder: freed with it */
    ck_assert_int_eq(failmalloc_live(), live);
    return k;
}

/* Every N of one case, in one mode; returns how often each outcome came. */
static void fail_each(const struct oom_case *c, bool sticky,
                      size_t counts[NOUTCOMES])
{
    const struct handler_loss *loss = case_loss(c);
    struct proto_buf want, out;
    int want_status, status;
    size_t k;

    proto_buf_init(&want);
    k = baseline(c, &want, &want_status);
    ck_assert_uint_gt(k, 3);
    for (size_t n = 1; n <= k + 1; n++) {
        long live = failmalloc_live();
        struct handler_pipeline *p = new_pipeline();
        char what[160];
        enum outcome o;

        snprintf(what, sizeof(what), "%s, allocation %zu of %zu%s", c->name, n,
                 k, sticky ? " and later" : "");
        proto_buf_init(&out);
        failmalloc_fail_after(n, sticky);
        status = drive(p, c, loss, n % 2 == 0, &out);
        failmalloc_off();
        ck_assert_msg(sticky ? (failmalloc_failures() > 0) == (n <= k)
                             : failmalloc_failures() == (n <= k),
                      "%s: %zu failures: the allocations are not the same "
                      "from run to run",
                      what, failmalloc_failures());
        ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
        o = check_answer(what, status, &out, &want, want_status);
        ck_assert_msg(n <= k || o == SAME, "%s: a different answer", what);
        counts[o]++;
        /* the pipeline keeps serving, with the decoder given back */
        for (int again = 0; again < 2; again++) {
            proto_buf_release(&out);
            proto_buf_init(&out);
            status = drive(p, c, loss, again == 1, &out);
            ck_assert_msg(status == want_status && proto_buf_ok(&out) &&
                              strcmp(out.data, want.data) == 0,
                          "%s: the next request answers %d: %s", what, status,
                          out.data);
        }
        proto_buf_release(&out);
        handler_pipeline_free(p);
        ck_assert_msg(failmalloc_live() == live, "%s: %ld pointers leaked",
                      what, failmalloc_live() - live);
    }
    proto_buf_release(&want);
}

static void run_cases(bool sticky)
{
    size_t counts[NOUTCOMES] = {0};

    for (size_t i = 0; i < NCASES; i++)
        fail_each(&cases[i], sticky, counts);
    for (size_t o = 0; o < NOUTCOMES; o++)
        printf("# %s: %s %zu\n", sticky ? "sticky" : "once", outcome_names[o],
               counts[o]);
    /* every way out was taken (the batch's items in one mode at least) */
    ck_assert_uint_gt(counts[SAME], 0);
    ck_assert_uint_gt(counts[OOM_PROBLEM], 0);
    ck_assert_uint_gt(counts[FALLBACK], 0);
    if (!sticky)
        ck_assert_uint_gt(counts[ITEMS_503], 0);
}

START_TEST(test_fail_once)
{
    run_cases(false);
}
END_TEST

START_TEST(test_fail_from_then_on)
{
    run_cases(true);
}
END_TEST

/*
 * handler_eval() (a pipeline of its own per body, as `lossd eval` makes):
 * the same answers, the pipeline's own allocation failing included.
 */
START_TEST(test_eval)
{
    struct handler_limits lim;
    size_t counts[NOUTCOMES] = {0};

    handler_limits_default(&lim);
    for (size_t i = 0; i < NCASES; i++) {
        const struct oom_case *c = &cases[i];
        size_t len = strlen(c->body), k;
        struct proto_buf want, out;
        int want_status, status;

        if (case_oip(c) != 0)
            continue; /* handler_eval() is /v1's */
        proto_buf_init(&want);
        failmalloc_fail_after(0, false);
        want_status =
            handler_eval(c->loss, c->body, len, &lim, NULL, INSTANCE, &want);
        k = failmalloc_count();
        ck_assert_int_eq(want_status, c->status);
        ck_assert(proto_buf_ok(&want));
        for (size_t n = 1; n <= k + 1; n++) {
            long live = failmalloc_live();
            char what[160];

            snprintf(what, sizeof(what), "eval %s, allocation %zu of %zu",
                     c->name, n, k);
            proto_buf_init(&out);
            failmalloc_fail_after(n, _i == 1);
            status =
                handler_eval(c->loss, c->body, len, &lim, NULL, INSTANCE, &out);
            failmalloc_off();
            counts[check_answer(what, status, &out, &want, want_status)]++;
            proto_buf_release(&out);
            ck_assert_msg(failmalloc_live() == live, "%s: %ld pointers leaked",
                          what, failmalloc_live() - live);
        }
        proto_buf_release(&want);
    }
    ck_assert_uint_gt(counts[OOM_PROBLEM] + counts[FALLBACK], 0);
}
END_TEST

/* The catalog or the OpenAPI document of the registry's losses (no Check
   assertion here). */
static void write_catalog(struct proto_buf *b, int which)
{
    const struct proto_loss_desc *descs[64];
    struct handler_limits lim;
    struct proto_limits_desc ld;
    size_t n = handler_count() < 64 ? handler_count() : 64;

    for (size_t i = 0; i < n; i++)
        descs[i] = handler_describe(handler_at(i));
    handler_limits_default(&lim);
    handler_limits_describe(&lim, &ld);
    if (which == 0)
        proto_catalog_write(b, descs, n, &ld);
    else
        proto_openapi_write(b, descs, n, &ld, "0.1.0");
}

/* Either the whole document or a failed buffer, and nothing leaked. */
START_TEST(test_catalog_and_openapi)
{
    struct proto_buf want, b;
    size_t k, failed = 0;

    for (int sticky = 0; sticky < 2; sticky++) {
        long live = failmalloc_live();

        proto_buf_init(&want);
        failmalloc_fail_after(0, false);
        write_catalog(&want, _i);
        k = failmalloc_count();
        ck_assert(proto_buf_ok(&want));
        ck_assert_uint_gt(k, 10);
        for (size_t n = 1; n <= k + 1; n++) {
            proto_buf_init(&b);
            failmalloc_fail_after(n, sticky);
            write_catalog(&b, _i);
            failmalloc_off();
            ck_assert(sticky ? (failmalloc_failures() > 0) == (n <= k)
                             : failmalloc_failures() == (n <= k));
            if (proto_buf_ok(&b))
                ck_assert_msg(strcmp(b.data, want.data) == 0,
                              "allocation %zu of %zu: a different document", n,
                              k);
            else
                failed++;
            proto_buf_release(&b);
        }
        proto_buf_release(&want);
        ck_assert_int_eq(failmalloc_live(), live);
    }
    ck_assert_uint_gt(failed, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");
    struct loss_error err;
    int rc;

    failmalloc_install();
    loss_blas_init();
    proto_buf_init(&oom_answer);
    loss_fail(&err, LOSS_ENOMEM, NULL, "out of memory");
    proto_problem_write(&oom_answer, &err, NULL, NULL);
    if (!proto_buf_ok(&oom_answer))
        return 1;
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_fail_once);
    tcase_add_test(tc, test_fail_from_then_on);
    tcase_add_loop_test(tc, test_eval, 0, 2);
    tcase_add_loop_test(tc, test_catalog_and_openapi, 0, 2);
    suite_add_tcase(s, tc);
    rc = test_run(s);
    proto_buf_release(&oom_answer);
    return rc;
}

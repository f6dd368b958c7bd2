/*
 * test_request.c - the request pipeline of handler.h: its stages driven one
 * by one as the server drives them, the in-flight budget (held while the
 * body streams, given back at the first failure and after the run), the
 * body limit, failures that stick, and the pointers of fields that came
 * from a batch's "shared".
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "document.h"
#include "handler.h"
#include "testutil.h"

static const char info_nce_body[] =
    "{\"query\": [[1, 0], [0, 1]], \"positive_key\": [[1, 0], [0, 1]], "
    "\"grad\": true}";

/* Parses a whole buffer as JSON (new). */
static json_t *parse(const struct proto_buf *b)
{
    json_error_t jerr;
    json_t *doc;

    ck_assert(proto_buf_ok(b));
    doc = json_loadb(b->data, b->len, 0, &jerr);
    if (doc == NULL)
        ck_abort_msg("not JSON (%s): %.*s", jerr.text, (int)b->len, b->data);
    return doc;
}

static const char *member(json_t *doc, const char *key)
{
    const char *s = json_string_value(json_object_get(doc, key));

    ck_assert_msg(s != NULL, "no string \"%s\"", key);
    return s;
}

/* The stages one by one, the body fed a byte at a time. */
START_TEST(test_stages)
{
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r;
    struct proto_buf out;
    const struct handler_loss *loss = handler_find("info_nce", 8);
    json_t *doc;

    ck_assert_ptr_nonnull(loss);
    ck_assert_ptr_null(handler_find("info", 4));
    ck_assert_uint_eq(handler_count(), 12);
    handler_limits_default(&lim);
    p = handler_pipeline_new(&lim, SIZE_MAX);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(handler_pipeline_limits(p)->max_work, lim.max_work);
    r = handler_request_new(p, loss);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(handler_request_loss(r), "info_nce");
    for (size_t i = 0; i < sizeof(info_nce_body) - 1; i++)
        ck_assert_int_eq(handler_request_feed(r, info_nce_body + i, 1),
                         LOSS_OK);
    ck_assert_uint_gt(handler_pipeline_inflight(p), 0);
    ck_assert_int_eq(handler_request_finish(r), LOSS_OK);
    ck_assert(handler_request_cost(r) > 0);
    ck_assert_uint_gt(handler_request_bytes(r), 0);
    ck_assert_uint_eq(handler_pipeline_inflight(p), handler_request_bytes(r));
    proto_buf_init(&out);
    ck_assert_int_eq(handler_request_run(r, NULL, NULL, &out), 200);
    /* the run gave its memory back before the request is freed */
    ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
    doc = parse(&out);
    ck_assert_str_eq(member(doc, "loss"), "info_nce");
    ck_assert_ptr_nonnull(
        json_object_get(json_object_get(doc, "grad"), "positive_key"));
    json_decref(doc);
    proto_buf_release(&out);
    handler_request_free(r);
    handler_pipeline_free(p);
}
END_TEST

/* A batch request goes through the same stages. */
START_TEST(test_batch_stages)
{
    static const char body[] =
        "{\"requests\": [{\"loss\": \"mse\", \"input\": [1], \"target\": "
        "[3]}, {\"loss\": \"nope\"}]}";
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r;
    struct proto_buf out;
    json_t *doc, *results;

    handler_limits_default(&lim);
    p = handler_pipeline_new(&lim, SIZE_MAX);
    r = handler_request_new(p, NULL);
    ck_assert_str_eq(handler_request_loss(r), HANDLER_BATCH);
    ck_assert_int_eq(handler_request_feed(r, body, sizeof(body) - 1), LOSS_OK);
    ck_assert_int_eq(handler_request_finish(r), LOSS_OK);
    proto_buf_init(&out);
    ck_assert_int_eq(handler_request_run(r, NULL, NULL, &out), 200);
    doc = parse(&out);
    results = json_object_get(doc, "results");
    ck_assert_uint_eq(json_array_size(results), 2);
    ck_assert_int_eq(json_integer_value(
                         json_object_get(json_array_get(results, 0), "status")),
                     200);
    ck_assert_int_eq(json_integer_value(
                         json_object_get(json_array_get(results, 1), "status")),
                     404);
    json_decref(doc);
    proto_buf_release(&out);
    handler_request_free(r);
    ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
    handler_pipeline_free(p);
}
END_TEST

/*
 * Over the budget: 503 naming max-inflight-bytes, the bytes given back at
 * the failure (not when the request is freed), and the failure sticks.
 */
START_TEST(test_budget)
{
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r, *small;
    struct proto_buf body, out;
    json_t *doc;
    size_t held;

    handler_limits_default(&lim);
    /* room for a small request, not for a body of 10^5 numbers */
    p = handler_pipeline_new(&lim, 256 * 1024);
    small = handler_request_new(p, handler_find("mse", 3));
    ck_assert_ptr_nonnull(small);
    held = handler_pipeline_inflight(p);
    ck_assert_uint_gt(held, 0);
    r = handler_request_new(p, handler_find("mse", 3));
    ck_assert_ptr_nonnull(r);
    proto_buf_init(&body);
    proto_buf_puts(&body, "{\"input\": [");
    for (size_t i = 0; i < 100000; i++)
        proto_buf_puts(&body, i ? ", 1.5" : "1.5");
    proto_buf_puts(&body, "]");
    ck_assert(proto_buf_ok(&body));
    enum loss_status st = LOSS_OK;
    for (size_t off = 0; off < body.len && st == LOSS_OK; off += 4096) {
        size_t n = body.len - off < 4096 ? body.len - off : 4096;
        st = handler_request_feed(r, body.data + off, n);
    }
    ck_assert_int_eq(st, LOSS_EUNAVAIL);
    ck_assert_uint_eq(handler_pipeline_inflight(p), held);
    ck_assert_int_eq(handler_request_feed(r, "]}", 2), LOSS_EUNAVAIL);
    ck_assert_int_eq(handler_request_finish(r), LOSS_EUNAVAIL);
    proto_buf_init(&out);
    ck_assert_int_eq(handler_request_run(r, NULL, "req-9", &out), 503);
    doc = parse(&out);
    ck_assert_ptr_nonnull(strstr(member(doc, "detail"), "max-inflight-bytes"));
    ck_assert_str_eq(member(doc, "instance"), "req-9");
    json_decref(doc);
    proto_buf_release(&out);
    proto_buf_release(&body);
    handler_request_free(r);
    /* the other request was never disturbed */
    ck_assert_int_eq(handler_request_feed(small, "{\"input\": [1], ", 15),
                     LOSS_OK);
    ck_assert_int_eq(handler_request_feed(small, "\"target\": [2]}", 14),
                     LOSS_OK);
    ck_assert_int_eq(handler_request_finish(small), LOSS_OK);
    proto_buf_init(&out);
    ck_assert_int_eq(handler_request_run(small, NULL, NULL, &out), 200);
    proto_buf_release(&out);
    handler_request_free(small);
    ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
    handler_pipeline_free(p);
}
END_TEST

/* max_body_bytes counts every byte fed; the 413 sticks. */
START_TEST(test_body_limit)
{
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r;
    struct proto_buf out;
    json_t *doc;

    handler_limits_default(&lim);
    lim.max_body_bytes = 20;
    p = handler_pipeline_new(&lim, SIZE_MAX);
    r = handler_request_new(p, handler_find("mse", 3));
    ck_assert_int_eq(handler_request_feed(r, "{\"input\": [1], ", 15), LOSS_OK);
    ck_assert_int_eq(handler_request_feed(r, "\"target\": [2]}", 14),
                     LOSS_ETOOLARGE);
    ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
    ck_assert_int_eq(handler_request_finish(r), LOSS_ETOOLARGE);
    proto_buf_init(&out);
    ck_assert_int_eq(handler_request_problem(r, NULL, &out), 413);
    doc = parse(&out);
    ck_assert_ptr_nonnull(strstr(member(doc, "detail"), "max_body_bytes"));
    json_decref(doc);
    proto_buf_release(&out);
    handler_request_free(r);
    handler_pipeline_free(p);
}
END_TEST

/* A syntax error: reported by the feed that meets it, then again. */
START_TEST(test_failure_sticks)
{
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r;
    struct proto_buf out;
    json_t *doc;

    handler_limits_default(&lim);
    p = handler_pipeline_new(&lim, SIZE_MAX);
    r = handler_request_new(p, handler_find("mse", 3));
    ck_assert_int_eq(handler_request_feed(r, "{\"input\": [1],", 14), LOSS_OK);
    ck_assert_int_eq(handler_request_feed(r, "}x", 2), LOSS_EJSON);
    ck_assert_int_eq(handler_request_feed(r, "{}", 2), LOSS_EJSON);
    ck_assert_int_eq(handler_request_finish(r), LOSS_EJSON);
    proto_buf_init(&out);
    ck_assert_int_eq(handler_request_run(r, NULL, NULL, &out), 400);
    doc = parse(&out);
    ck_assert_str_eq(member(doc, "type"), "/problems/invalid-json");
    json_decref(doc);
    proto_buf_release(&out);
    handler_request_free(r);
    /* an empty body is not JSON either */
    r = handler_request_new(p, handler_find("mse", 3));
    ck_assert_int_eq(handler_request_finish(r), LOSS_EJSON);
    handler_request_free(r);
    ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
    handler_pipeline_free(p);
}
END_TEST

static enum loss_status feed_str(struct handler_request *r, const char *s)
{
    return handler_request_feed(r, s, strlen(s));
}

/*
 * The pipeline reuses decoders: a request after one abandoned mid-body, one
 * failed and one finished decodes as if its decoder were new, and the
 * decoders kept idle are in nobody's in-flight bytes.
 */
START_TEST(test_decoder_reuse)
{
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r;
    struct proto_buf out;
    json_t *doc;

    handler_limits_default(&lim);
    p = handler_pipeline_new(&lim, SIZE_MAX);
    for (int round = 0; round < 3; round++) {
        /* abandoned in the middle of a string, of a tensor, of a key */
        r = handler_request_new(p, handler_find("mse", 3));
        ck_assert_int_eq(feed_str(r, "{\"input\": [[1, 2], [3"), LOSS_OK);
        handler_request_free(r);
        r = handler_request_new(p, handler_find("mse", 3));
        ck_assert_int_eq(feed_str(r, "{\"inp"), LOSS_OK);
        ck_assert_int_eq(feed_str(r, "ut\": [1]]"), LOSS_EJSON);
        handler_request_free(r);
        ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
        r = handler_request_new(p, handler_find("mse", 3));
        ck_assert_int_eq(feed_str(r, "{\"input\": [2], \"target\": [5]}"),
                         LOSS_OK);
        ck_assert_int_eq(handler_request_finish(r), LOSS_OK);
        proto_buf_init(&out);
        ck_assert_int_eq(handler_request_run(r, NULL, NULL, &out), 200);
        doc = parse(&out);
        ck_assert_double_eq(json_real_value(json_object_get(doc, "value")),
                            9.0);
        json_decref(doc);
        proto_buf_release(&out);
        handler_request_free(r);
        ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
    }
    handler_pipeline_free(p);
}
END_TEST

/* run() before finish() is the caller's bug: a 500, never a crash. */
START_TEST(test_run_before_finish)
{
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r;
    struct proto_buf out;

    handler_limits_default(&lim);
    p = handler_pipeline_new(&lim, SIZE_MAX);
    r = handler_request_new(p, handler_find("mse", 3));
    proto_buf_init(&out);
    ck_assert_int_eq(handler_request_run(r, NULL, NULL, &out), 500);
    proto_buf_release(&out);
    handler_request_free(r);
    handler_pipeline_free(p);
}
END_TEST

/*
 * Fields a batch's "shared" supplied are reported under "/shared", an
 * item's own under its index, in problems and warnings alike, for the
 * largest index a batch can have.
 */
START_TEST(test_field_pointers)
{
    struct handler_limits lim;
    struct proto_buf body, out;
    json_t *doc, *results, *item;
    int status;
    size_t n;

    handler_limits_default(&lim);
    n = lim.max_batch_items;
    proto_buf_init(&body);
    proto_buf_puts(&body, "{\"shared\": {\"loss\": \"mse\", \"target\": [1]}, "
                          "\"requests\": [");
    for (size_t i = 0; i < n; i++)
        proto_buf_printf(&body, "%s{\"input\": [[1, 2]]%s}", i ? ", " : "",
                         i == n - 1 ? ", \"weight\": 1" : "");
    proto_buf_puts(&body, "]}");
    proto_buf_init(&out);
    status = handler_eval(HANDLER_BATCH, body.data, body.len, &lim, NULL, NULL,
                          &out);
    ck_assert_int_eq(status, 200);
    doc = parse(&out);
    results = json_object_get(doc, "results");
    ck_assert_uint_eq(json_array_size(results), n);
    /* the target (1) broadcasts against (1, 2): warned at /shared/target */
    item = json_array_get(results, 0);
    ck_assert_str_eq(
        member(json_array_get(json_object_get(item, "warnings"), 0), "pointer"),
        "/shared/target");
    /* mse takes no weight: the last item's own field */
    item = json_array_get(results, n - 1);
    proto_buf_reset(&body);
    proto_buf_printf(&body, "/requests/%zu/weight", n - 1);
    ck_assert_str_eq(member(item, "pointer"), body.data);
    json_decref(doc);
    proto_buf_release(&out);
    proto_buf_release(&body);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("request");

    loss_blas_init();
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stages);
    tcase_add_test(tc, test_batch_stages);
    tcase_add_test(tc, test_budget);
    tcase_add_test(tc, test_body_limit);
    tcase_add_test(tc, test_failure_sticks);
    tcase_add_test(tc, test_decoder_reuse);
    tcase_add_test(tc, test_run_before_finish);
    tcase_add_test(tc, test_field_pointers);
    suite_add_tcase(s, tc);
    return test_run(s);
}

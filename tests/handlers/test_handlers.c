/*
 * test_handlers.c - what the golden cases do not pin down: the exact status,
 * problem type and pointer of refused requests, batches (shared fields, ids,
 * per-item status, absolute pointers), limits, grad rules and output
 * formats. The request pipeline's own contract is test_request.c's.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "document.h"
#include "handler.h"
#include "internal.h"
#include "testutil.h"

/* Runs body through handler_eval and parses the answer; *ret_status set. */
static json_t *eval(const char *loss, const char *body,
                    const struct handler_limits *lim, int *ret_status)
{
    struct handler_limits def;
    struct proto_buf out;
    json_error_t jerr;
    json_t *doc;

    if (lim == NULL) {
        handler_limits_default(&def);
        lim = &def;
    }
    proto_buf_init(&out);
    *ret_status =
        handler_eval(loss, body, strlen(body), lim, NULL, "req-1", &out);
    ck_assert(proto_buf_ok(&out));
    doc = json_loadb(out.data, out.len, JSON_DECODE_ANY, &jerr);
    if (doc == NULL)
        ck_abort_msg("response is not JSON (%s): %.*s", jerr.text, (int)out.len,
                     out.data);
    proto_buf_release(&out);
    return doc;
}

struct refusal {
    const char *loss;
    const char *body;
    int status;
    const char *type;
    const char *pointer; /* NULL: do not check */
};

static const struct refusal refusals[] = {
    {"mse", "[1, 2]", 422, "/problems/invalid-value", ""},
    {"mse", "{\"input\": [1], \"target\": [1], \"size_average\": true}", 422,
     "/problems/unknown-field", "/size_average"},
    {"mse", "{\"input\": [1], \"target\": [1], \"inptu\": 1}", 422,
     "/problems/unknown-field", "/inptu"},
    {"mse", "{\"input\": [1], \"target\": [1], \"input\": [2]}", 422,
     "/problems/unknown-field", "/input"},
    {"mse", "{\"input\": [1]}", 422, "/problems/missing-field", "/target"},
    {"mse", "{\"input\": [1, 2], \"target\": [1, 2, 3]}", 422,
     "/problems/shape-mismatch", "/target"},
    {"mse", "{\"input\": [1], \"target\": [1], \"reduction\": \"avg\"}", 422,
     "/problems/invalid-option", "/reduction"},
    {"mse", "{\"input\": [1], \"target\": [1], \"reduction\": \"batchmean\"}",
     422, "/problems/invalid-option", "/reduction"},
    {"mse", "{\"input\": [1], \"target\": [1], \"reduction\": null}", 422,
     "/problems/invalid-value", "/reduction"},
    {"mse", "{\"input\": null, \"target\": [1]}", 422,
     "/problems/invalid-value", "/input"},
    {"mse", "{\"input\": [1, null], \"target\": [1, 2]}", 422,
     "/problems/invalid-value", "/input/1"},
    {"mse", "{\"input\": [[1, 2], [3]], \"target\": [1, 2]}", 400,
     "/problems/invalid-tensor", "/input/1"},
    {"mse", "{\"input\": [1, \"a\"], \"target\": [1, 2]}", 400,
     "/problems/invalid-tensor", "/input/1"},
    {"mse", "{\"input\": [NaN], \"target\": [1]}", 400,
     "/problems/invalid-json", NULL},
    {"mse", "{\"input\": [1], \"target\": [1]} x", 400,
     "/problems/invalid-json", NULL},
    {"mse", "{\"input\": [1e999], \"target\": [1]}", 400,
     "/problems/invalid-json", NULL},
    {"mse", "{\"input\": [1], \"target\": [1], \"grad_output\": 1}", 422,
     "/problems/invalid-option", "/grad_output"},
    {"mse", "{\"input\": [1], \"target\": [1], \"grad\": [\"weight\"]}", 422,
     "/problems/invalid-option", "/grad/0"},
    {"mse", "{\"input\": [1], \"target\": [1], \"grad\": \"input\"}", 422,
     "/problems/invalid-option", "/grad"},
    {"mse",
     "{\"input\": [1, 2], \"target\": [1, 2], \"grad\": true, "
     "\"grad_output\": [1, 2]}",
     422, "/problems/shape-mismatch", "/grad_output"},
    {"mse",
     "{\"input\": [1, 2], \"target\": [1, 2], \"reduction\": \"none\", "
     "\"grad\": true, \"grad_output\": [1, 2, 3]}",
     422, "/problems/shape-mismatch", "/grad_output"},
    {"mse", "{\"input\": [1], \"target\": [1], \"output_format\": \"csv\"}",
     422, "/problems/invalid-option", "/output_format"},
    {"smooth_l1", "{\"input\": [1], \"target\": [1], \"beta\": -1}", 422,
     "/problems/invalid-option", "/beta"},
    {"huber", "{\"input\": [1], \"target\": [1], \"delta\": 0}", 422,
     "/problems/invalid-option", "/delta"},
    {"huber", "{\"input\": [1], \"target\": [1], \"delta\": \"1\"}", 422,
     "/problems/invalid-option", "/delta"},
    {"softmax", "{\"input\": [1], \"reduction\": \"sum\"}", 422,
     "/problems/unknown-field", "/reduction"},
    {"softmax", "{\"input\": [[1, 2]], \"dim\": 2}", 422,
     "/problems/invalid-option", "/dim"},
    {"softmax", "{\"input\": [[1, 2]], \"dim\": 0.5}", 422,
     "/problems/invalid-option", "/dim"},
    {"cross_entropy", "{\"input\": [[1, 2]], \"target\": [1.5]}", 422,
     "/problems/invalid-value", "/target/0"},
    {"cross_entropy", "{\"input\": [[1, 2]], \"target\": [2]}", 422,
     "/problems/invalid-value", "/target/0"},
    {"cross_entropy", "{\"input\": [[1, 2]], \"target\": [-1]}", 422,
     "/problems/invalid-value", "/target/0"},
    {"cross_entropy", "{\"input\": [[1, 2], [3, 4]], \"target\": [1]}", 422,
     "/problems/shape-mismatch", "/target"},
    {"cross_entropy", "{\"input\": 1, \"target\": 0}", 422,
     "/problems/shape-mismatch", "/input"},
    {"cross_entropy",
     "{\"input\": [[1, 2]], \"target\": [1], \"weight\": [1, 2, 3]}", 422,
     "/problems/shape-mismatch", "/weight"},
    {"cross_entropy",
     "{\"input\": [[1, 2]], \"target\": [1], \"label_smoothing\": -0.1}", 422,
     "/problems/invalid-option", "/label_smoothing"},
    {"cross_entropy",
     "{\"input\": [[1, 2]], \"target\": [1], \"label_smoothing\": 1.5}", 422,
     "/problems/invalid-option", "/label_smoothing"},
    {"cross_entropy",
     "{\"input\": [[1, 2]], \"target\": [[0.5, 0.5]], \"ignore_index\": 0}",
     422, "/problems/invalid-option", "/ignore_index"},
    {"cross_entropy",
     "{\"input\": [[1, 2]], \"target\": [1], \"grad\": [\"target\"]}", 422,
     "/problems/invalid-option", "/grad"},
    {"cross_entropy",
     "{\"input\": [[1, 2]], \"target\": [1], \"ignore_index\": 1.5}", 422,
     "/problems/invalid-option", "/ignore_index"},
    {"nll", "{\"input\": [[1, 2]], \"target\": [[0, 1]]}", 422,
     "/problems/shape-mismatch", "/target"},
    {"binary_cross_entropy", "{\"input\": [0.5, 1.5], \"target\": [0, 1]}", 422,
     "/problems/invalid-value", "/input/1"},
    {"binary_cross_entropy", "{\"input\": [0.5, 0.5], \"target\": [0, 2]}", 422,
     "/problems/invalid-value", "/target/1"},
    {"binary_cross_entropy", "{\"input\": [0.5], \"target\": [[0]]}", 422,
     "/problems/shape-mismatch", "/target"},
    {"binary_cross_entropy_with_logits",
     "{\"input\": [0.5], \"target\": [1], \"pos_weight\": [1, 2]}", 422,
     "/problems/shape-mismatch", "/pos_weight"},
    {"info_nce", "{\"query\": [1, 2], \"positive_key\": [1, 2]}", 422,
     "/problems/shape-mismatch", "/query"},
    {"info_nce", "{\"query\": [[1, 2]], \"positive_key\": [[1, 2, 3]]}", 422,
     "/problems/shape-mismatch", "/positive_key"},
    {"info_nce",
     "{\"query\": [[1, 2]], \"positive_key\": [[1, 2]], \"mask_self\": true}",
     422, "/problems/invalid-option", "/mask_self"},
    {"info_nce",
     "{\"query\": [[1, 2]], \"positive_key\": [[1, 2]], \"negative_mode\": "
     "\"paired\"}",
     422, "/problems/invalid-option", "/negative_mode"},
    {"info_nce",
     "{\"query\": [[1, 2]], \"positive_key\": [[1, 2]], \"negative_keys\": "
     "[[1, 2]], \"variant\": \"symmetric\"}",
     422, "/problems/invalid-option", "/variant"},
    {"info_nce",
     "{\"query\": [[1, 2]], \"positive_key\": [[1, 2]], \"negative_keys\": "
     "[[1, 2, 3]]}",
     422, "/problems/shape-mismatch", "/negative_keys"},
    {"info_nce",
     "{\"query\": [[1, 2]], \"positive_key\": [[1, 2]], \"temperature\": 0}",
     422, "/problems/invalid-option", "/temperature"},
    {"info_nce",
     "{\"query\": [[1, 2]], \"positive_key\": [[1, 2]], \"variant\": "
     "\"simclr\"}",
     422, "/problems/invalid-option", "/variant"},
    {"nope", "{}", 404, "/problems/not-found", NULL},
    {"batch", "[]", 422, "/problems/invalid-value", ""},
    {"batch", "{}", 422, "/problems/missing-field", "/requests"},
    {"batch", "{\"requests\": []}", 422, "/problems/invalid-value",
     "/requests"},
    {"batch", "{\"requests\": [{}], \"extra\": 1}", 422,
     "/problems/unknown-field", "/extra"},
    {"batch", "{\"requests\": [{}], \"shared\": 1}", 422,
     "/problems/invalid-value", "/shared"},
};

START_TEST(test_refusals)
{
    size_t failures = 0;

    for (size_t i = 0; i < sizeof(refusals) / sizeof(*refusals); i++) {
        const struct refusal *r = &refusals[i];
        int status;
        json_t *doc = eval(r->loss, r->body, NULL, &status);
        const char *type = json_string_value(json_object_get(doc, "type"));
        const char *ptr = json_string_value(json_object_get(doc, "pointer"));
        const char *detail = json_string_value(json_object_get(doc, "detail"));
        const char *error = json_string_value(json_object_get(doc, "error"));
        bool ok =
            status == r->status && type && !strcmp(type, r->type) &&
            json_integer_value(json_object_get(doc, "status")) == r->status &&
            detail && error && !strcmp(detail, error) &&
            (r->pointer == NULL || (ptr && !strcmp(ptr, r->pointer)));

        if (!ok) {
            char *text = json_dumps(doc, JSON_COMPACT);

            fprintf(stderr, "case %zu (%s %s): want %d %s %s, got %d %s\n", i,
                    r->loss, r->body, r->status, r->type,
                    r->pointer ? r->pointer : "-", status, text);
            free(text);
            failures++;
        }
        json_decref(doc);
    }
    ck_assert_msg(failures == 0, "%zu refusal cases failed", failures);
}
END_TEST

START_TEST(test_problem_has_instance)
{
    int status;
    json_t *doc = eval("mse", "{\"input\": [1]}", NULL, &status);

    ck_assert_int_eq(status, 422);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "instance")),
                     "req-1");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "title")),
                     "Missing field");
    json_decref(doc);
}
END_TEST

START_TEST(test_syntax_error_offset)
{
    int status;
    json_t *doc = eval("mse", "{\"input\": [1,, 2]}", NULL, &status);

    ck_assert_int_eq(status, 400);
    ck_assert_ptr_null(json_object_get(doc, "pointer"));
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "offset")), 13);
    json_decref(doc);
    doc = eval("mse", "{\"input\": [NaN], \"target\": [1]}", NULL, &status);
    ck_assert_ptr_nonnull(
        strstr(json_string_value(json_object_get(doc, "detail")), "\"NaN\""));
    json_decref(doc);
}
END_TEST

START_TEST(test_success_document)
{
    int status;
    json_t *doc = eval("mse",
                       "{\"input\": [[1, 2], [3, 4]], \"target\": [1, 1], "
                       "\"grad\": [\"input\"]}",
                       NULL, &status);
    json_t *grad;

    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "loss")), "mse");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "reduction")),
                     "mean");
    /* (0 + 1 + 4 + 9) / 4 */
    ck_assert(json_real_value(json_object_get(doc, "value")) == 3.5);
    ck_assert(json_real_value(json_object_get(doc, "sum")) == 14.0);
    ck_assert(json_number_value(json_object_get(doc, "count")) == 4.0);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "shape")), 0);
    grad = json_object_get(json_object_get(doc, "grad"), "input");
    ck_assert_uint_eq(json_array_size(grad), 2);
    /* d/dx (x - y)^2 / 4 = (x - y) / 2 */
    ck_assert(json_real_value(json_array_get(json_array_get(grad, 1), 1)) ==
              1.5);
    ck_assert_ptr_null(json_object_get(json_object_get(doc, "grad"), "target"));
    ck_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(doc, "warnings"), 0), "code")),
        "broadcast-target");
    json_decref(doc);
}
END_TEST

START_TEST(test_output_formats)
{
    int status;
    json_t *doc = eval("softmax",
                       "{\"input\": {\"shape\": [2], \"data\": [0, 0]}, "
                       "\"dim\": 0, \"output_format\": \"flat\"}",
                       NULL, &status);
    json_t *v = json_object_get(doc, "value");

    ck_assert_int_eq(status, 200);
    ck_assert(json_real_value(json_array_get(json_object_get(v, "data"), 1)) ==
              0.5);
    ck_assert_int_eq(
        json_integer_value(json_array_get(json_object_get(v, "shape"), 0)), 2);
    ck_assert_ptr_null(json_object_get(doc, "sum"));
    json_decref(doc);
    doc = eval("softmax",
               "{\"input\": [0, 0], \"dim\": 0, \"output_format\": "
               "\"base64\"}",
               NULL, &status);
    v = json_object_get(doc, "value");
    ck_assert_str_eq(json_string_value(json_object_get(v, "dtype")), "float64");
    /* two little-endian 0.5s */
    ck_assert_str_eq(json_string_value(json_object_get(v, "base64")),
                     "AAAAAAAA4D8AAAAAAADgPw==");
    json_decref(doc);
}
END_TEST

START_TEST(test_all_ignored)
{
    int status;
    json_t *doc = eval("cross_entropy",
                       "{\"input\": [[1, 2], [3, 4]], \"target\": [-100, "
                       "-100], \"grad\": true}",
                       NULL, &status);
    json_t *g = json_object_get(json_object_get(doc, "grad"), "input");

    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "value")), "NaN");
    ck_assert(json_number_value(json_object_get(doc, "sum")) == 0.0);
    ck_assert(json_number_value(json_object_get(doc, "count")) == 0.0);
    ck_assert(json_real_value(json_array_get(json_array_get(g, 0), 0)) == 0.0);
    json_decref(doc);
}
END_TEST

START_TEST(test_batch)
{
    int status;
    json_t *doc =
        eval("batch",
             "{\"shared\": {\"input\": [[1, 2], [3, 4]], \"target\": [1, 0]},"
             " \"requests\": ["
             "  {\"loss\": \"cross_entropy\", \"id\": \"ce\"},"
             "  {\"loss\": \"nll\", \"id\": 7, \"reduction\": \"sum\"},"
             "  {\"loss\": \"mse\", \"id\": \"bad\"},"
             "  {\"loss\": \"nope\"},"
             "  {\"loss\": \"cross_entropy\", \"target\": [5, 0]},"
             "  3"
             "]}",
             NULL, &status);
    json_t *res = json_object_get(doc, "results");

    ck_assert_int_eq(status, 200);
    ck_assert_uint_eq(json_array_size(res), 6);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(res, 0), "status")),
        200);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(res, 0), "id")), "ce");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(res, 1), "id")), 7);
    /* nll sum: -(2 + 3) */
    ck_assert(json_real_value(
                  json_object_get(json_array_get(res, 1), "value")) == -5.0);
    /* mse of (2, 2) input with (2) target: fine, broadcast */
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(res, 2), "status")),
        200);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(res, 3), "status")),
        404);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(res, 3), "pointer")),
        "/requests/3/loss");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(res, 4), "status")),
        422);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(res, 4), "pointer")),
        "/requests/4/target/0");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(res, 5), "pointer")),
        "/requests/5");
    json_decref(doc);
}
END_TEST

/* The string member key of results[i], or NULL. */
static const char *result_str(json_t *doc, size_t i, const char *key)
{
    return json_string_value(json_object_get(
        json_array_get(json_object_get(doc, "results"), i), key));
}

static json_int_t result_int(json_t *doc, size_t i, const char *key)
{
    return json_integer_value(json_object_get(
        json_array_get(json_object_get(doc, "results"), i), key));
}

/*
 * Value errors inside items (docs/api.md, "Batch"): the decoder reads on, each
 * item with one gets that problem (status, type, absolute pointer, id), and
 * the other items are computed.
 */
START_TEST(test_batch_value_errors)
{
    int status;
    json_t *doc = eval(
        "batch",
        "{\"shared\": {\"target\": [1, 2]}, \"requests\": ["
        "  {\"loss\": \"mse\", \"id\": \"ok\", \"input\": [1, 1]},"
        "  {\"loss\": \"mse\", \"id\": \"ragged\", \"input\": [[1, 2], "
        "[3]]},"
        "  {\"loss\": \"mse\", \"id\": \"null\", \"input\": [1, null]},"
        "  {\"loss\": \"mse\", \"id\": \"b64\", \"input\": {\"shape\": "
        "[2], \"dtype\": \"float64\", \"base64\": \"!!\"}},"
        "  {\"loss\": \"mse\", \"id\": \"dup\", \"input\": [1, 2], "
        "\"input\": [3, 4]},"
        "  {\"loss\": \"mse\", \"id\": {\"a\": [1, null]}, \"input\": [1, "
        "2]},"
        "  {\"loss\": \"mse\", \"id\": 7, \"input\": [2, 2], \"reduction\": "
        "\"sum\"},"
        "  {\"loss\": \"mse\", \"id\": \"ragged-data\", \"input\": "
        "{\"shape\": [2], \"data\": [1, [2]]}, \"target\": [1, null]}"
        "]}",
        NULL, &status);
    static const struct {
        int status;
        const char *type, *pointer, *id;
    } want[] = {
        {200, NULL, NULL, "ok"},
        {400, "/problems/invalid-tensor", "/requests/1/input/1", "ragged"},
        {422, "/problems/invalid-value", "/requests/2/input/1", "null"},
        {400, "/problems/invalid-tensor", "/requests/3/input/base64", "b64"},
        {422, "/problems/unknown-field", "/requests/4/input", "dup"},
        /* an id that cannot be written back is left out */
        {422, "/problems/invalid-value", "/requests/5/id/a/1", NULL},
        {200, NULL, NULL, NULL},
        /* an item's first error is its result */
        {400, "/problems/invalid-tensor", "/requests/7/input/data/1",
         "ragged-data"},
    };

    ck_assert_int_eq(status, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "results")), 8);
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        ck_assert_int_eq(result_int(doc, i, "status"), want[i].status);
        if (want[i].type != NULL) {
            ck_assert_str_eq(result_str(doc, i, "type"), want[i].type);
            ck_assert_str_eq(result_str(doc, i, "pointer"), want[i].pointer);
        }
        if (want[i].id != NULL)
            ck_assert_str_eq(result_str(doc, i, "id"), want[i].id);
        else if (i != 6)
            ck_assert_ptr_null(json_object_get(
                json_array_get(json_object_get(doc, "results"), i), "id"));
    }
    /* the others are computed: (0 + 1) / 2 and 1 + 0 */
    ck_assert(json_real_value(json_object_get(
                  json_array_get(json_object_get(doc, "results"), 0),
                  "value")) == 0.5);
    ck_assert_int_eq(result_int(doc, 6, "id"), 7);
    ck_assert(json_real_value(json_object_get(
                  json_array_get(json_object_get(doc, "results"), 6),
                  "value")) == 1.0);
    ck_assert_ptr_nonnull(
        strstr(result_str(doc, 1, "detail"), "ragged tensor"));
    json_decref(doc);
}
END_TEST

/*
 * Errors outside the items answer the whole request: in "shared", in the
 * envelope, or anywhere when the envelope itself is broken (then the
 * body's first error, as before batches recovered).
 */
START_TEST(test_batch_envelope_errors)
{
    static const struct refusal cases[] = {
        {"batch",
         "{\"shared\": {\"target\": [1, null]}, \"requests\": [{\"loss\": "
         "\"mse\", \"input\": [1, 2]}]}",
         422, "/problems/invalid-value", "/shared/target/1"},
        {"batch",
         "{\"shared\": {\"target\": [1], \"target\": [2]}, \"requests\": "
         "[{\"loss\": \"mse\", \"input\": [1]}]}",
         422, "/problems/unknown-field", "/shared/target"},
        {"batch",
         "{\"requests\": [{\"loss\": \"mse\", \"input\": [[1], [1, 2]]}], "
         "\"shared\": {\"target\": [[1], []]}}",
         400, "/problems/invalid-tensor", "/shared/target/1"},
        {"batch",
         "{\"requests\": [{\"loss\": \"mse\", \"input\": [1], \"target\": "
         "[1]}], \"requests\": []}",
         422, "/problems/unknown-field", "/requests"},
        {"batch",
         "{\"requests\": [{\"loss\": \"mse\", \"input\": [1], \"target\": "
         "[1]}], \"x\": [1, null]}",
         422, "/problems/invalid-value", "/x/1"},
        {"batch", "{\"requests\": [[1], [1, 2]]}", 400,
         "/problems/invalid-tensor", "/requests/1"},
        {"batch", "{\"requests\": {\"0\": [1, null]}}", 422,
         "/problems/invalid-value", "/requests/0/1"},
        {"batch", "{\"requests\": [], \"shared\": {\"a\": [null]}}", 422,
         "/problems/invalid-value", "/shared/a/0"},
        {"batch", "[{\"loss\": \"mse\", \"input\": [null]}]", 422,
         "/problems/invalid-value", "/0/input/0"},
        {"batch", "[[1], [2, 3]]", 400, "/problems/invalid-tensor", "/1"},
        /* a syntax error after a value error still fails the whole body */
        {"batch", "{\"requests\": [{\"loss\": \"mse\", \"input\": [null]}], x}",
         400, "/problems/invalid-json", NULL},
    };
    struct handler_limits lim;
    int status;
    json_t *doc;

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        doc = eval(cases[i].loss, cases[i].body, NULL, &status);
        ck_assert_msg(status == cases[i].status, "case %zu: status %d", i,
                      status);
        ck_assert_str_eq(json_string_value(json_object_get(doc, "type")),
                         cases[i].type);
        if (cases[i].pointer != NULL)
            ck_assert_str_eq(json_string_value(json_object_get(doc, "pointer")),
                             cases[i].pointer);
        ck_assert_ptr_null(json_object_get(doc, "results"));
        json_decref(doc);
    }
    /* too many items: the body's first error, as the decoder gave before */
    handler_limits_default(&lim);
    lim.max_batch_items = 1;
    doc = eval("batch",
               "{\"requests\": [{\"loss\": \"mse\"}, {\"loss\": \"mse\", "
               "\"input\": [null]}]}",
               &lim, &status);
    ck_assert_int_eq(status, 422);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "pointer")),
                     "/requests/1/input/0");
    json_decref(doc);
}
END_TEST

/*
 * The decoder keeps max_batch_items + 1 errors in full; items whose errors
 * come later still fail, with their status (the detail then says the body
 * had too many), and a duplicate key of the envelope, found last and not
 * kept, still fails the whole request.
 */
START_TEST(test_batch_many_value_errors)
{
    struct handler_limits lim;
    int status;
    json_t *doc;

    handler_limits_default(&lim);
    lim.max_batch_items = 2; /* 3 errors kept */
    doc = eval("batch",
               "{\"requests\": [{\"loss\": \"mse\", \"input\": [null], "
               "\"target\": [null], \"weight\": [null], \"x\": [null]}, "
               "{\"loss\": \"mse\", \"id\": \"late\", \"input\": [[1], [1, "
               "2]], \"target\": [1]}]}",
               &lim, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(result_int(doc, 0, "status"), 422);
    ck_assert_str_eq(result_str(doc, 0, "pointer"), "/requests/0/input/0");
    ck_assert_int_eq(result_int(doc, 1, "status"), 400);
    ck_assert_str_eq(result_str(doc, 1, "type"), "/problems/invalid-tensor");
    ck_assert_str_eq(result_str(doc, 1, "pointer"), "/requests/1/input");
    ck_assert_str_eq(result_str(doc, 1, "id"), "late");
    ck_assert_ptr_nonnull(
        strstr(result_str(doc, 1, "detail"), "too many invalid values"));
    json_decref(doc);

    lim.max_batch_items = 1; /* 2 errors kept */
    doc = eval("batch",
               "{\"requests\": [{\"loss\": \"mse\", \"input\": [null], "
               "\"target\": [null], \"weight\": [null]}], \"requests\": 1}",
               &lim, &status);
    ck_assert_int_eq(status, 422);
    ck_assert_ptr_null(json_object_get(doc, "results"));
    ck_assert_str_eq(json_string_value(json_object_get(doc, "type")),
                     "/problems/unknown-field");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "pointer")),
                     "/requests");
    json_decref(doc);

    /* an error in shared past the kept ones: still the whole request */
    doc = eval("batch",
               "{\"requests\": [{\"loss\": \"mse\", \"input\": [null], "
               "\"target\": [null], \"weight\": [null]}], \"shared\": "
               "{\"x\": {\"y\": [[1], []]}}}",
               &lim, &status);
    ck_assert_int_eq(status, 400);
    ck_assert_ptr_null(json_object_get(doc, "results"));
    ck_assert_str_eq(json_string_value(json_object_get(doc, "pointer")),
                     "/shared");
    json_decref(doc);
}
END_TEST

/*
 * One loss: the first value error answers, as when the decoder stopped at
 * it; a later syntax error wins (it stays fatal in the decoder).
 */
START_TEST(test_single_value_errors)
{
    int status;
    json_t *doc = eval("mse",
                       "{\"input\": [[1], [1, 2]], \"target\": [null], "
                       "\"target\": 1}",
                       NULL, &status);

    ck_assert_int_eq(status, 400);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "pointer")),
                     "/input/1");
    json_decref(doc);
    doc = eval("mse", "{\"input\": [null], \"target\": [1]", NULL, &status);
    ck_assert_int_eq(status, 400);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "type")),
                     "/problems/invalid-json");
    json_decref(doc);
}
END_TEST

START_TEST(test_batch_shared_pointer_and_limit)
{
    struct handler_limits lim;
    int status;
    json_t *doc = eval("batch",
                       "{\"shared\": {\"input\": [[1, 2]], \"target\": "
                       "[9]}, \"requests\": [{\"loss\": \"cross_entropy\"}]}",
                       NULL, &status);

    ck_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(doc, "results"), 0), "pointer")),
        "/shared/target/0");
    json_decref(doc);
    handler_limits_default(&lim);
    lim.max_batch_items = 1;
    doc = eval("batch",
               "{\"requests\": [{\"loss\": \"mse\"}, {\"loss\": \"mse\"}]}",
               &lim, &status);
    ck_assert_int_eq(status, 413);
    json_decref(doc);
}
END_TEST

START_TEST(test_limits)
{
    struct handler_limits lim;
    int status;
    json_t *doc;

    handler_limits_default(&lim);
    lim.max_work = 100;
    /* (20, 1) with (1, 20) broadcasts to 400 elements */
    doc = eval("mse",
               "{\"input\": {\"shape\": [20, 1], \"data\": [1,1,1,1,1,1,1,"
               "1,1,1,1,1,1,1,1,1,1,1,1,1]}, \"target\": {\"shape\": [1, "
               "20], \"data\": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}}",
               &lim, &status);
    ck_assert_int_eq(status, 413);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "type")),
                     "/problems/too-large");
    json_decref(doc);
    handler_limits_default(&lim);
    lim.max_elements = 3;
    doc = eval("mse", "{\"input\": [1, 2], \"target\": [1, 2]}", &lim, &status);
    ck_assert_int_eq(status, 413);
    json_decref(doc);
    handler_limits_default(&lim);
    lim.max_body_bytes = 10;
    doc = eval("mse", "{\"input\": [1, 2], \"target\": [1, 2]}", &lim, &status);
    ck_assert_int_eq(status, 413);
    json_decref(doc);
    /* The huge shape is refused before anything is allocated. */
    doc = eval("mse",
               "{\"input\": {\"shape\": [100000, 100000, 100000], \"data\": "
               "[]}, \"target\": 1}",
               NULL, &status);
    ck_assert_int_eq(status, 413);
    json_decref(doc);
}
END_TEST

/* Appends "name": {"shape": [n, d], "data": [...normal * scale...]}. */
static void put_matrix(struct proto_buf *b, const char *name, size_t n,
                       size_t d, double scale, struct test_rng *rng)
{
    proto_buf_printf(b, "\"%s\": {\"shape\": [%zu, %zu], \"data\": [", name, n,
                     d);
    for (size_t i = 0; i < n * d; i++)
        proto_buf_printf(b, "%s%.17g", i ? "," : "",
                         test_rng_normal(rng) * scale);
    proto_buf_puts(b, "]}");
}

/* The same request on serial and threaded executors: identical bytes. */
START_TEST(test_bit_identical_executors)
{
    static const char *const losses[] = {"cross_entropy", "info_nce", "mse"};
    struct test_rng rng;
    struct proto_buf body, a, b;
    struct handler_limits lim;
    struct loss_exec *ex = test_exec_threads(3, 11);
    size_t n = 300, d = 17;

    handler_limits_default(&lim);
    test_rng_seed(&rng, 2024);
    for (size_t l = 0; l < 3; l++) {
        proto_buf_init(&body);
        proto_buf_puts(&body, "{\"grad\": true, ");
        if (l == 1) {
            proto_buf_puts(&body, "\"variant\": \"nt_xent\", ");
            put_matrix(&body, "query", n, d, 1.0, &rng);
            proto_buf_puts(&body, ", ");
            put_matrix(&body, "positive_key", n, d, 1.0, &rng);
        } else {
            put_matrix(&body, "input", n, d, 10.0, &rng);
            proto_buf_puts(&body, ", \"target\": [");
            /* class indices for cross_entropy; a (d) row for mse */
            for (size_t i = 0; i < (l == 2 ? d : n); i++)
                proto_buf_printf(&body, "%s%zu", i ? "," : "", i % d);
            proto_buf_puts(&body, "]");
            if (l == 2)
                proto_buf_puts(&body, ", \"reduction\": \"sum\"");
        }
        proto_buf_puts(&body, "}");
        ck_assert(proto_buf_ok(&body));
        proto_buf_init(&a);
        proto_buf_init(&b);
        ck_assert_int_eq(
            handler_eval(losses[l], body.data, body.len, &lim, NULL, NULL, &a),
            200);
        ck_assert_int_eq(
            handler_eval(losses[l], body.data, body.len, &lim, ex, NULL, &b),
            200);
        ck_assert_uint_eq(a.len, b.len);
        ck_assert_msg(memcmp(a.data, b.data, a.len) == 0,
                      "%s differs between executors", losses[l]);
        proto_buf_release(&a);
        proto_buf_release(&b);
        proto_buf_release(&body);
    }
    test_exec_free(ex);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("handlers");
    TCase *tc = tcase_create("handlers");

    loss_blas_init();
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_problem_has_instance);
    tcase_add_test(tc, test_syntax_error_offset);
    tcase_add_test(tc, test_success_document);
    tcase_add_test(tc, test_output_formats);
    tcase_add_test(tc, test_all_ignored);
    tcase_add_test(tc, test_batch);
    tcase_add_test(tc, test_batch_value_errors);
    tcase_add_test(tc, test_batch_envelope_errors);
    tcase_add_test(tc, test_batch_many_value_errors);
    tcase_add_test(tc, test_single_value_errors);
    tcase_add_test(tc, test_batch_shared_pointer_and_limit);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_bit_identical_executors);
    suite_add_tcase(s, tc);
    return test_run(s);
}

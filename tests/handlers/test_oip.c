/*
 * test_oip.c - handlers/oip.c: the Open Inference Protocol's infer
 * requests through the pipeline (handler_request_new_oip()), fed in chunks
 * of every size, give the same results as the same numbers in a /v1 body;
 * framing and naming errors fail before anything large is allocated; the
 * metadata. The widening itself is tests/proto/test_tensor_bytes.c's.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "document.h"
#include "handler.h"
#include "testutil.h"

/* ---- the pipeline ------------------------------------------------------ */

struct result {
    int status;
    struct proto_buf out;
    size_t header_len; /* of the response */
};

/*
 * How infer() runs a request: writing the whole answer (0), or streaming
 * its binary outputs (handler_request_stream_binary()) and reading them in
 * reads of 1, 2, ... up to stream_reads bytes in turn.
 */
static size_t stream_reads;

/*
 * One infer request: header (JSON) then bin (n bytes), fed in chunks of
 * chunk bytes; with_length says whether Inference-Header-Content-Length
 * (and the body's length) is given.
 */
static void infer(const char *loss_name, const char *header, const void *bin,
                  size_t n, size_t chunk, bool with_length, struct result *ret)
{
    const struct handler_loss *loss =
        handler_find(loss_name, strlen(loss_name));
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r;
    size_t hlen = strlen(header), total = hlen + n, off = 0;
    char *body = malloc(total + 1);

    ck_assert_ptr_nonnull(loss);
    ck_assert_ptr_nonnull(body);
    memcpy(body, header, hlen);
    if (n)
        memcpy(body + hlen, bin, n);
    handler_limits_default(&lim);
    p = handler_pipeline_new(&lim, SIZE_MAX);
    r = handler_request_new_oip(p, loss, with_length ? hlen : HANDLER_OIP_WHOLE,
                                with_length ? total : HANDLER_OIP_WHOLE);
    ck_assert_ptr_nonnull(r);
    while (off < total) {
        size_t k = total - off < chunk ? total - off : chunk;

        handler_request_feed(r, body + off, k);
        off += k;
    }
    handler_request_finish(r);
    proto_buf_init(&ret->out);
    if (stream_reads > 0)
        handler_request_stream_binary(r);
    ret->status = handler_request_run(r, NULL, NULL, &ret->out);
    ret->header_len = handler_request_oip_header_len(r);
    ck_assert(proto_buf_ok(&ret->out));
    if (stream_reads > 0) {
        size_t tail = handler_request_tail_bytes(r), pos = 0, k = 0;
        char buf[64];

        ck_assert(tail == 0 || ret->header_len == ret->out.len);
        /* the buffers it reads stay counted until the request is freed */
        ck_assert(tail == 0 || handler_pipeline_inflight(p) > 0);
        while (pos < tail) {
            size_t want = k++ % stream_reads + 1;
            size_t got = handler_request_tail_read(r, pos, buf, want);

            ck_assert_uint_eq(got, tail - pos < want ? tail - pos : want);
            proto_buf_append(&ret->out, buf, got);
            pos += got;
        }
        ck_assert_uint_eq(handler_request_tail_read(r, tail, buf, 8), 0);
    }
    handler_request_free(r);
    ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
    handler_pipeline_free(p);
    free(body);
}

static json_t *parse_n(const char *s, size_t n)
{
    json_error_t jerr;
    json_t *doc = json_loadb(s, n, 0, &jerr);

    ck_assert_msg(doc != NULL, "not JSON (%s): %.*s", jerr.text, (int)n, s);
    return doc;
}

/* The v1 response of body for loss_name. */
static json_t *v1(const char *loss_name, const char *body)
{
    struct handler_limits lim;
    struct proto_buf out;
    json_t *doc;
    int status;

    handler_limits_default(&lim);
    proto_buf_init(&out);
    status =
        handler_eval(loss_name, body, strlen(body), &lim, NULL, NULL, &out);
    ck_assert_msg(status == 200, "%d: %s", status, out.data);
    doc = parse_n(out.data, out.len);
    proto_buf_release(&out);
    return doc;
}

/* The output named name of an OIP response (borrowed), or NULL. */
static json_t *output(json_t *resp, const char *name)
{
    size_t i;
    json_t *o;

    json_array_foreach(json_object_get(resp, "outputs"), i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0)
            return o;
    }
    return NULL;
}

/* Flattens a (nested) JSON array of numbers into x; returns the count. */
static size_t flatten(json_t *v, double *x, size_t cap)
{
    size_t n = 0, i;
    json_t *e;

    if (json_is_number(v)) {
        x[0] = json_number_value(v);
        return 1;
    }
    json_array_foreach(v, i, e)
    {
        n += flatten(e, x + n, cap - n);
    }
    return n;
}

static void check_close(json_t *a, json_t *b)
{
    double x[256], y[256];
    size_t n = flatten(a, x, 256), m = flatten(b, y, 256);

    ck_assert_uint_eq(n, m);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(x[i] == y[i], "element %zu: %.17g vs %.17g", i, x[i],
                      y[i]);
}

/* The same cross_entropy as JSON and as binary FP32/INT64 in chunks of
   every size, against /v1 on the values FP32 holds. */
START_TEST(test_binary_matches_v1)
{
    static const float logits[6] = {0.5f, -1.25f, 2.0f, 0.1f, 0.2f, -0.3f};
    static const int64_t target[2] = {2, 0};
    static const char header[] =
        "{\"id\":\"r1\",\"inputs\":["
        "{\"name\":\"input\",\"shape\":[2,3],\"datatype\":\"FP32\","
        "\"parameters\":{\"binary_data_size\":24}},"
        "{\"name\":\"target\",\"shape\":[2],\"datatype\":\"INT64\","
        "\"parameters\":{\"binary_data_size\":16}}],"
        "\"parameters\":{\"grad\":\"input\",\"label_smoothing\":0.1}}";
    unsigned char bin[40];
    char body[512];
    json_t *ref, *resp;
    struct result res;

    memcpy(bin, logits, 24);
    memcpy(bin + 24, target, 16);
    snprintf(body, sizeof(body),
             "{\"input\":[[%.17g,%.17g,%.17g],[%.17g,%.17g,%.17g]],"
             "\"target\":[2,0],\"grad\":[\"input\"],\"label_smoothing\":0.1}",
             (double)logits[0], (double)logits[1], (double)logits[2],
             (double)logits[3], (double)logits[4], (double)logits[5]);
    ref = v1("cross_entropy", body);
    for (size_t chunk = 1; chunk <= sizeof(header) + 40; chunk += 7) {
        infer("cross_entropy", header, bin, 40, chunk, true, &res);
        ck_assert_msg(res.status == 200, "%s", res.out.data);
        ck_assert_uint_eq(res.header_len, 0);
        resp = parse_n(res.out.data, res.out.len);
        ck_assert_str_eq(json_string_value(json_object_get(resp, "id")), "r1");
        ck_assert_str_eq(json_string_value(json_object_get(resp, "model_name")),
                         "cross_entropy");
        check_close(json_object_get(output(resp, "value"), "data"),
                    json_object_get(ref, "value"));
        check_close(json_object_get(output(resp, "sum"), "data"),
                    json_object_get(ref, "sum"));
        check_close(json_object_get(output(resp, "count"), "data"),
                    json_object_get(ref, "count"));
        check_close(json_object_get(output(resp, "grad_input"), "data"),
                    json_object_get(json_object_get(ref, "grad"), "input"));
        ck_assert_ptr_null(output(resp, "grad_target"));
        json_decref(resp);
        proto_buf_release(&res.out);
    }
    json_decref(ref);
}
END_TEST

/* JSON data (nested and flat, BOOL as booleans), reduction none, and a
   grad_ output that asks for its gradient. */
START_TEST(test_json_data)
{
    static const char header[] =
        "{\"inputs\":["
        "{\"name\":\"input\",\"shape\":[2,2],\"datatype\":\"FP64\","
        "\"data\":[[0.2,0.9],[0.5,0.1]]},"
        "{\"name\":\"target\",\"shape\":[2,2],\"datatype\":\"BOOL\","
        "\"data\":[true,false,false,true]}],"
        "\"parameters\":{\"reduction\":\"none\"},"
        "\"outputs\":[{\"name\":\"grad_input\"},{\"name\":\"value\"}]}";
    json_t *ref, *resp;
    struct result res;

    ref = v1("binary_cross_entropy",
             "{\"input\":[[0.2,0.9],[0.5,0.1]],\"target\":[[1,0],[0,1]],"
             "\"reduction\":\"none\",\"grad\":[\"input\"]}");
    infer("binary_cross_entropy", header, NULL, 0, 1 << 20, false, &res);
    ck_assert_msg(res.status == 200, "%s", res.out.data);
    resp = parse_n(res.out.data, res.out.len);
    /* the requested order */
    ck_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(resp, "outputs"), 0), "name")),
        "grad_input");
    ck_assert_uint_eq(
        json_array_size(json_object_get(output(resp, "value"), "shape")), 2);
    check_close(json_object_get(output(resp, "value"), "data"),
                json_object_get(ref, "value"));
    check_close(json_object_get(output(resp, "grad_input"), "data"),
                json_object_get(json_object_get(ref, "grad"), "input"));
    json_decref(resp);
    json_decref(ref);
    proto_buf_release(&res.out);
}
END_TEST

/* "grad": true asks for the float inputs' gradients: a BOOL target, which
   PyTorch could not make require a gradient, gets none (and no
   grad_target output), as KServe's clients send it; the body may repeat
   the path's model_name and model_version. */
START_TEST(test_grad_all_skips_integer_inputs)
{
    static const char header[] =
        "{\"model_name\":\"binary_cross_entropy\",\"model_version\":\"1\","
        "\"inputs\":["
        "{\"name\":\"input\",\"shape\":[2],\"datatype\":\"FP64\","
        "\"data\":[0.2,0.9]},"
        "{\"name\":\"target\",\"shape\":[2],\"datatype\":\"BOOL\","
        "\"data\":[true,false]}],\"parameters\":{\"grad\":true}}";
    json_t *ref, *resp;
    struct result res;

    ref = v1("binary_cross_entropy", "{\"input\":[0.2,0.9],\"target\":[1,0],"
                                     "\"grad\":[\"input\"]}");
    infer("binary_cross_entropy", header, NULL, 0, 7, false, &res);
    ck_assert_msg(res.status == 200, "%s", res.out.data);
    resp = parse_n(res.out.data, res.out.len);
    ck_assert_ptr_null(output(resp, "grad_target"));
    check_close(json_object_get(output(resp, "grad_input"), "data"),
                json_object_get(json_object_get(ref, "grad"), "input"));
    json_decref(resp);
    json_decref(ref);
    proto_buf_release(&res.out);
}
END_TEST

/* Binary outputs: the JSON header, then the blobs in output order, FP32
   when asked. */
START_TEST(test_binary_outputs)
{
    static const double x[3] = {1.0, 2.0, 3.0}, t[3] = {0.0, 2.5, 3.0};
    static const char header[] =
        "{\"inputs\":["
        "{\"name\":\"input\",\"shape\":[3],\"datatype\":\"FP64\","
        "\"parameters\":{\"binary_data_size\":24}},"
        "{\"name\":\"target\",\"shape\":[3],\"datatype\":\"FP64\","
        "\"parameters\":{\"binary_data_size\":24}}],"
        "\"parameters\":{\"binary_data_output\":true},"
        "\"outputs\":[{\"name\":\"value\"},{\"name\":\"grad_input\","
        "\"parameters\":{\"datatype\":\"FP32\"}},{\"name\":\"count\","
        "\"parameters\":{\"binary_data\":false}}]}";
    unsigned char bin[48];
    struct result res;
    json_t *resp;
    double value;
    float g[3];

    memcpy(bin, x, 24);
    memcpy(bin + 24, t, 24);
    infer("mse", header, bin, 48, 5, true, &res);
    ck_assert_msg(res.status == 200, "%s", res.out.data);
    ck_assert_uint_gt(res.header_len, 0);
    resp = parse_n(res.out.data, res.header_len);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(output(resp, "value"), "parameters"),
                         "binary_data_size")),
                     8);
    ck_assert_int_eq(
        json_integer_value(json_object_get(
            json_object_get(output(resp, "grad_input"), "parameters"),
            "binary_data_size")),
        12);
    ck_assert_str_eq(json_string_value(json_object_get(
                         output(resp, "grad_input"), "datatype")),
                     "FP32");
    ck_assert_ptr_nonnull(json_object_get(output(resp, "count"), "data"));
    ck_assert_uint_eq(res.out.len, res.header_len + 8 + 12);
    memcpy(&value, res.out.data + res.header_len, 8);
    memcpy(g, res.out.data + res.header_len + 8, 12);
    /* (1 + 0.25 + 0) / 3; grad 2 (x - t) / 3 */
    ck_assert(value == 1.25 / 3.0);
    ck_assert(g[0] == (float)(2.0 / 3.0) && g[1] == (float)(-1.0 / 3.0) &&
              g[2] == 0.0f);
    json_decref(resp);
    proto_buf_release(&res.out);
}
END_TEST

/* Streamed binary outputs (read from the run's buffers after run()) are
   the bytes a whole answer holds, read in pieces of every size, across
   element and output boundaries. */
START_TEST(test_binary_outputs_streamed)
{
    enum { N = 37 };
    static const char header[] =
        "{\"inputs\":["
        "{\"name\":\"input\",\"shape\":[37],\"datatype\":\"FP64\","
        "\"parameters\":{\"binary_data_size\":296}},"
        "{\"name\":\"target\",\"shape\":[37],\"datatype\":\"FP64\","
        "\"parameters\":{\"binary_data_size\":296}}],"
        "\"parameters\":{\"binary_data_output\":true,\"grad\":true,"
        "\"reduction\":\"none\"},"
        "\"outputs\":[{\"name\":\"value\"},{\"name\":\"grad_input\","
        "\"parameters\":{\"datatype\":\"FP32\"}},{\"name\":\"sum\"},"
        "{\"name\":\"grad_target\"}]}";
    double bin[2 * N];
    struct result whole, streamed;

    for (size_t i = 0; i < 2 * N; i++)
        bin[i] = (double)(i * 7919 % 101) / 17.0 - 2.5;
    stream_reads = 0;
    infer("mse", header, bin, sizeof(bin), 64, true, &whole);
    ck_assert_msg(whole.status == 200, "%s", whole.out.data);
    /* value (37 FP64), grad_input (37 FP32), sum (FP64), grad_target */
    ck_assert_uint_eq(whole.out.len,
                      whole.header_len + 37 * 8 + 37 * 4 + 8 + 37 * 8);
    for (size_t reads = 1; reads <= 13; reads += 3) {
        stream_reads = reads;
        infer("mse", header, bin, sizeof(bin), 64, true, &streamed);
        ck_assert_int_eq(streamed.status, 200);
        ck_assert_uint_eq(streamed.header_len, whole.header_len);
        ck_assert_uint_eq(streamed.out.len, whole.out.len);
        ck_assert(memcmp(streamed.out.data, whole.out.data, whole.out.len) ==
                  0);
        proto_buf_release(&streamed.out);
    }
    /* a JSON-only answer has no tail */
    stream_reads = 5;
    infer("mse",
          "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],"
          "\"datatype\":\"FP64\",\"data\":[1]},{\"name\":"
          "\"target\",\"shape\":[1],\"datatype\":\"FP64\","
          "\"data\":[3]}]}",
          NULL, 0, 64, false, &streamed);
    ck_assert_int_eq(streamed.status, 200);
    ck_assert_uint_eq(streamed.header_len, 0);
    stream_reads = 0;
    proto_buf_release(&streamed.out);
    proto_buf_release(&whole.out);
}
END_TEST

/* Requests that fail: the status and a word of the detail. */
static const struct {
    const char *loss;
    const char *header;
    size_t bin; /* bytes of zeros after the header */
    int status;
    const char *detail;
} failures[] = {
    {"mse",
     "{\"model_name\":\"l1\",\"inputs\":[{\"name\":\"input\",\"shape\":"
     "[1],\"datatype\":\"FP64\",\"data\":[1]}]}",
     0, 400, "model_name must be \"mse\""},
    {"mse",
     "{\"model_version\":\"2\",\"inputs\":[{\"name\":\"input\",\"shape\":"
     "[1],\"datatype\":\"FP64\",\"data\":[1]}]}",
     0, 400, "model_version must be \"1\""},
    {"binary_cross_entropy_with_logits",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":\"FP64\","
     "\"data\":[1]},{\"name\":\"target\",\"shape\":[1],\"datatype\":"
     "\"UINT8\",\"data\":[1]}],\"parameters\":{\"grad\":\"input,target\"}}",
     0, 400, "target has an integer datatype"},
    {"mse",
     "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP64\","
     "\"data\":[1]}]}",
     0, 400, "unknown input"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":\"FP64\","
     "\"data\":[1]},{\"name\":\"target\",\"shape\":[1],\"datatype\":"
     "\"FP64\",\"data\":[1]}],\"parameters\":{\"beta\":1}}",
     0, 400, "unknown parameter"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":\"FP64\","
     "\"data\":[1]},{\"name\":\"target\",\"shape\":[1],\"datatype\":"
     "\"FP64\",\"data\":[1]}],\"outputs\":[{\"name\":\"grad_weight\"}]}",
     0, 400, "unknown output"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":\"INT64\","
     "\"data\":[1]}]}",
     0, 400, "takes FP64, FP32, FP16, BF16, not INT64"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":\"FP8\","
     "\"data\":[1]}]}",
     0, 400, "unknown or unsupported datatype"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[2],\"datatype\":\"FP64\","
     "\"data\":[1,2],\"parameters\":{\"binary_data_size\":16}}]}",
     16, 400, "exactly one of"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[2],\"datatype\":\"FP64\","
     "\"parameters\":{\"binary_data_size\":15}}]}",
     15, 400, "binary_data_size is 15"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[2],\"datatype\":\"FP64\","
     "\"parameters\":{\"binary_data_size\":16}}]}",
     17, 400, "add up to 16"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[2],\"datatype\":\"FP64\","
     "\"parameters\":{\"binary_data_size\":16}}]}",
     15, 400, "add up to 16"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[4294967296,4294967296],"
     "\"datatype\":\"FP64\",\"parameters\":{\"binary_data_size\":0}}]}",
     0, 413, "max_elements"}, /* the decoder's check on any "shape" */
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[100000000],"
     "\"datatype\":\"FP64\",\"parameters\":{\"binary_data_size\":"
     "800000000}}]}",
     0, 413, "max_elements"},
    {"mse",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[3],\"datatype\":\"FP64\","
     "\"data\":[1,2]}]}",
     0, 400, "data has 2 elements"},
    {"cross_entropy",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,2],\"datatype\":"
     "\"FP64\",\"data\":[1,2]},{\"name\":\"target\",\"shape\":[1],"
     "\"datatype\":\"INT64\",\"data\":[0.5]}]}",
     0, 400, "not a INT64"},
    {"cross_entropy",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,2],\"datatype\":"
     "\"FP64\",\"data\":[1,2]},{\"name\":\"target\",\"shape\":[1],"
     "\"datatype\":\"INT64\",\"data\":[5]}]}",
     0, 422, "class"},
    {"cross_entropy",
     "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,2],\"datatype\":"
     "\"FP64\",\"data\":[1,2]},{\"name\":\"target\",\"shape\":[1],"
     "\"datatype\":\"INT64\",\"data\":[1]}],\"outputs\":[{\"name\":"
     "\"grad_target\"}]}",
     0, 422, "not differentiable"},
    {"mse", "{\"inputs\":[],\"bogus\":1}", 0, 400, "unknown member"},
    {"mse", "[1,2]", 0, 400, "JSON object"},
    {"mse", "{\"inputs\":[", 0, 400, ""},
};

START_TEST(test_failures)
{
    const char *header = failures[_i].header;
    size_t n = failures[_i].bin;
    unsigned char *zeros = calloc(n + 1, 1);
    struct result res;
    json_t *doc;

    infer(failures[_i].loss, header, zeros, n, 3, n > 0 || _i % 2, &res);
    ck_assert_msg(res.status == failures[_i].status, "case %d: %d %s", _i,
                  res.status, res.out.data);
    doc = parse_n(res.out.data, res.out.len);
    ck_assert_msg(strstr(json_string_value(json_object_get(doc, "error")),
                         failures[_i].detail) != NULL,
                  "case %d: %s", _i, res.out.data);
    json_decref(doc);
    proto_buf_release(&res.out);
    free(zeros);
}
END_TEST

/* Framing: a header length of 0, beyond the body, and a body that ends
   inside the header or inside the binary data. */
START_TEST(test_framing)
{
    const struct handler_loss *loss = handler_find("mse", 3);
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r;
    struct proto_buf out;
    static const char header[] =
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":\"FP64\","
        "\"parameters\":{\"binary_data_size\":8}},{\"name\":\"target\","
        "\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}]}";

    handler_limits_default(&lim);
    p = handler_pipeline_new(&lim, SIZE_MAX);
    proto_buf_init(&out);

    r = handler_request_new_oip(p, loss, 0, 10);
    ck_assert_int_eq(handler_request_feed(r, "{}", 2), LOSS_EREQUEST);
    ck_assert_int_eq(handler_request_problem(r, NULL, &out), 400);
    ck_assert_ptr_nonnull(strstr(out.data, "is 0"));
    handler_request_free(r);

    proto_buf_reset(&out);
    r = handler_request_new_oip(p, loss, 11, 10);
    ck_assert_int_eq(handler_request_finish(r), LOSS_EREQUEST);
    ck_assert_int_eq(handler_request_problem(r, NULL, &out), 400);
    ck_assert_ptr_nonnull(strstr(out.data, "exceeds the body"));
    handler_request_free(r);

    /* the header length says more than came, body length unknown */
    proto_buf_reset(&out);
    r = handler_request_new_oip(p, loss, sizeof(header) + 4, HANDLER_OIP_WHOLE);
    ck_assert_int_eq(handler_request_feed(r, header, sizeof(header) - 1),
                     LOSS_OK);
    ck_assert_int_eq(handler_request_finish(r), LOSS_EREQUEST);
    ck_assert_int_eq(handler_request_problem(r, NULL, &out), 400);
    ck_assert_ptr_nonnull(strstr(out.data, "inside the inference header"));
    handler_request_free(r);

    /* truncated binary data, body length unknown (chunked) */
    proto_buf_reset(&out);
    r = handler_request_new_oip(p, loss, sizeof(header) - 1, HANDLER_OIP_WHOLE);
    ck_assert_int_eq(handler_request_feed(r, header, sizeof(header) - 1),
                     LOSS_OK);
    ck_assert_int_eq(handler_request_feed(r, "1234567", 7), LOSS_OK);
    ck_assert_int_eq(handler_request_finish(r), LOSS_EREQUEST);
    ck_assert_int_eq(handler_request_problem(r, NULL, &out), 400);
    ck_assert_ptr_nonnull(strstr(out.data, "ends 7 bytes"));
    handler_request_free(r);

    /* too much binary data, body length unknown */
    proto_buf_reset(&out);
    r = handler_request_new_oip(p, loss, sizeof(header) - 1, HANDLER_OIP_WHOLE);
    ck_assert_int_eq(handler_request_feed(r, header, sizeof(header) - 1),
                     LOSS_OK);
    ck_assert_int_eq(handler_request_feed(r, "123456789", 9), LOSS_EREQUEST);
    handler_request_free(r);

    ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
    proto_buf_release(&out);
    handler_pipeline_free(p);
}
END_TEST

/* The binary inputs are held against the budget before they are
   allocated: a budget too small for them answers 503 at the header. */
START_TEST(test_budget)
{
    const struct handler_loss *loss = handler_find("mse", 3);
    struct handler_limits lim;
    struct handler_pipeline *p;
    struct handler_request *r;
    static const char header[] =
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[1000000],\"datatype\":"
        "\"FP32\",\"parameters\":{\"binary_data_size\":4000000}}]}";

    handler_limits_default(&lim);
    p = handler_pipeline_new(&lim, 4u << 20);
    r = handler_request_new_oip(p, loss, sizeof(header) - 1,
                                sizeof(header) - 1 + 4000000);
    ck_assert_int_eq(handler_request_feed(r, header, sizeof(header) - 1),
                     LOSS_EUNAVAIL);
    ck_assert_uint_eq(handler_pipeline_inflight(p), 0);
    handler_request_free(r);
    handler_pipeline_free(p);
}
END_TEST

/* /v1's warnings travel as one string parameter. */
START_TEST(test_warnings)
{
    struct result res;
    json_t *resp;

    infer("binary_cross_entropy",
          "{\"inputs\":[{\"name\":\"input\",\"shape\":[2],\"datatype\":"
          "\"FP64\",\"data\":[0,1]},{\"name\":\"target\",\"shape\":[2],"
          "\"datatype\":\"UINT8\",\"data\":[1,0]}]}",
          NULL, 0, 1 << 20, false, &res);
    ck_assert_int_eq(res.status, 200);
    resp = parse_n(res.out.data, res.out.len);
    ck_assert_ptr_nonnull(
        strstr(json_string_value(json_object_get(
                   json_object_get(resp, "parameters"), "warnings")),
               "bce-log-clamp: "));
    json_decref(resp);
    proto_buf_release(&res.out);
}
END_TEST

START_TEST(test_metadata)
{
    struct proto_buf b;
    json_t *doc, *o;
    size_t i;
    bool grad_target = false;

    proto_buf_init(&b);
    handler_oip_model_write(&b, handler_find("cross_entropy", 13));
    doc = parse_n(b.data, b.len);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "name")),
                     "cross_entropy");
    json_array_foreach(json_object_get(doc, "outputs"), i, o)
    {
        if (!strcmp(json_string_value(json_object_get(o, "name")),
                    "grad_target"))
            grad_target = true;
    }
    ck_assert(grad_target);
    json_decref(doc);
    proto_buf_reset(&b);
    handler_oip_models_write(&b);
    doc = parse_n(b.data, b.len);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "models")),
                      handler_count());
    json_decref(doc);
    proto_buf_release(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("oip");
    TCase *tc = tcase_create("oip");

    loss_blas_init();
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_binary_matches_v1);
    tcase_add_test(tc, test_json_data);
    tcase_add_test(tc, test_grad_all_skips_integer_inputs);
    tcase_add_test(tc, test_binary_outputs);
    tcase_add_test(tc, test_binary_outputs_streamed);
    tcase_add_loop_test(tc, test_failures, 0,
                        (int)(sizeof(failures) / sizeof(*failures)));
    tcase_add_test(tc, test_framing);
    tcase_add_test(tc, test_budget);
    tcase_add_test(tc, test_warnings);
    tcase_add_test(tc, test_metadata);
    suite_add_tcase(s, tc);
    return test_run(s);
}

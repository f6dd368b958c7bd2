/*
 * test_oip.c - the Open Inference Protocol over real sockets against the
 * real binary: every /v2 route, infer with JSON data and with binary data
 * of every datatype (compared with the same numbers sent to /v1), binary
 * outputs, the /versions/1 segment, the (10000, 1000) cross_entropy with
 * its gradient at default limits in FP32 and FP64, and a table of hostile
 * framings, each answered 400 or 413 on a keep-alive connection that then
 * serves a valid request.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static struct lossd_proc start(void)
{
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, NULL), 0);
    return p;
}

/* ---- raw HTTP on one connection ----------------------------------------- */

struct resp {
    int status;
    char *head; /* the header block, NUL-terminated */
    char *body; /* body bytes (malloc), NUL-terminated */
    size_t len; /* of body */
};

static void resp_release(struct resp *r)
{
    free(r->head);
    free(r->body);
}

static void send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* The value of header name in r (case-insensitive), or NULL; static. */
static const char *header_of(const struct resp *r, const char *name)
{
    static char v[256];
    char want[128];
    snprintf(want, sizeof want, "\r\n%s:", name);
    const char *at = strcasestr(r->head, want);
    if (!at)
        return NULL;
    at += strlen(want);
    while (*at == ' ')
        at++;
    size_t n = strcspn(at, "\r\n");
    snprintf(v, sizeof v, "%.*s", (int)n, at);
    return v;
}

/* Reads one response (Content-Length framed) from fd; status 0 when the
   connection closed first. */
static void read_resp(int fd, struct resp *r)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ck_assert_ptr_nonnull(buf);
    r->status = 0;
    r->head = NULL;
    r->body = NULL;
    r->len = 0;
    for (;;) {
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end + 4 - buf);
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t body = cl && cl < end ? (size_t)atoll(cl + 17) : 0;
            if (cap < head + body) {
                cap = head + body;
                buf = realloc(buf, cap + 1);
                ck_assert_ptr_nonnull(buf);
            }
            if (len >= head + body) {
                ck_assert_uint_eq(len, head + body);
                r->head = strndup(buf, head);
                r->body = malloc(body + 1);
                ck_assert_ptr_nonnull(r->body);
                memcpy(r->body, buf + head, body);
                r->body[body] = '\0';
                r->len = body;
                ck_assert_int_eq(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
                free(buf);
                return;
            }
        }
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0) {
            free(buf);
            return;
        }
        len += (size_t)n;
    }
}

/*
 * POSTs header (JSON) and bin (n bytes) to path on fd, with
 * Inference-Header-Content-Length: ihcl (NULL: none; "" the header's
 * length) and Content-Length: the bytes sent plus extra_cl.
 */
static void post_oip(int fd, const char *path, const char *header,
                     const void *bin, size_t n, const char *ihcl)
{
    size_t hlen = strlen(header);
    char req[512], ih[96] = "";
    if (ihcl && !*ihcl)
        snprintf(ih, sizeof ih, "Inference-Header-Content-Length: %zu\r\n",
                 hlen);
    else if (ihcl)
        snprintf(ih, sizeof ih, "Inference-Header-Content-Length: %s\r\n",
                 ihcl);
    snprintf(req, sizeof req,
             "POST %s HTTP/1.1\r\nHost: t\r\n%s"
             "Content-Type: application/octet-stream\r\n"
             "Content-Length: %zu\r\n\r\n",
             path, ih, hlen + n);
    send_all(fd, req, strlen(req));
    send_all(fd, header, hlen);
    if (n)
        send_all(fd, bin, n);
}

/* One infer on a new connection; the response in r. */
static void infer(const struct lossd_proc *p, const char *model,
                  const char *header, const void *bin, size_t n, struct resp *r)
{
    char path[128];
    snprintf(path, sizeof path, "/v2/models/%s/infer", model);
    int fd = raw_connect(p);
    post_oip(fd, path, header, bin, n, n ? "" : NULL);
    read_resp(fd, r);
    close(fd);
}

static json_t *parse(const char *s, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(s, n, 0, &e);
    ck_assert_msg(j != NULL, "not JSON (%s): %.*s", e.text, (int)n, s);
    return j;
}

/* The output named name of an OIP response (borrowed). */
static json_t *output(json_t *resp, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(resp, "outputs"), i, o)
    {
        if (!strcmp(json_string_value(json_object_get(o, "name")), name))
            return o;
    }
    ck_abort_msg("no output %s", name);
    return NULL;
}

static size_t flatten(json_t *v, double *x)
{
    size_t n = 0, i;
    json_t *e;
    if (json_is_number(v)) {
        x[0] = json_number_value(v);
        return 1;
    }
    if (json_is_string(v)) { /* "NaN", "Infinity" */
        x[0] = !strcmp(json_string_value(v), "NaN") ? NAN
               : json_string_value(v)[0] == '-'     ? -INFINITY
                                                    : INFINITY;
        return 1;
    }
    json_array_foreach(v, i, e)
    {
        n += flatten(e, x + n);
    }
    return n;
}

/* The v1 answer to body (parsed). */
static json_t *v1(const struct lossd_proc *p, const char *loss,
                  const char *body)
{
    struct http_resp r;
    char path[64];
    const char *hdr[] = {"Content-Type: application/json", NULL};
    snprintf(path, sizeof path, "/v1/%s", loss);
    ck_assert_int_eq(http_do(p, "POST", path, hdr, body, strlen(body), &r), 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    json_t *j = parse(r.body, r.len);
    http_resp_release(&r);
    return j;
}

static void expect_same(json_t *a, json_t *b)
{
    double x[64], y[64];
    size_t n = flatten(a, x), m = flatten(b, y);
    ck_assert_uint_eq(n, m);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(x[i] == y[i] || (isnan(x[i]) && isnan(y[i])),
                      "element %zu: %.17g vs %.17g", i, x[i], y[i]);
}

/* ---- routes ------------------------------------------------------------- */

static const struct {
    const char *method, *path;
    int status;
    const char *needle; /* in the body */
} routes[] = {
    {"GET", "/v2", 200, "\"binary_tensor_data\""},
    {"GET", "/v2/health/live", 200, "\"live\":true"},
    {"GET", "/v2/health/ready", 200, "\"ready\":true"},
    {"GET", "/v2/models", 200, "\"name\":\"info_nce\""},
    {"GET", "/v2/models/mse", 200, "\"name\":\"grad_input\""},
    {"GET", "/v2/models/mse/versions/1", 200, "\"versions\":[\"1\"]"},
    {"GET", "/v2/models/mse/ready", 200, "\"ready\":true"},
    {"GET", "/v2/models/mse/versions/1/ready", 200, "\"ready\":true"},
    {"GET", "/v2/models/cross_entropy", 200, "INT64,INT32"},
    {"GET", "/v2/models/nope", 404, "\"error\":"},
    {"GET", "/v2/models/nope/infer", 404, "\"error\":"},
    {"GET", "/v2/models/mse/versions/2", 404, "\"error\":"},
    {"GET", "/v2/models/mse/versions/1/bogus", 404, "\"error\":"},
    {"GET", "/v2/models/{model}", 404, "\"error\":"},
    {"GET", "/v2/models/", 404, "\"error\":"},
    {"GET", "/v2/models/mse/infer", 405, "\"error\":"},
    {"POST", "/v2/models/mse", 405, "\"error\":"},
    {"POST", "/v2/models/mse/versions/1/infer", 400, "inputs"},
};

START_TEST(test_routes)
{
    struct lossd_proc p = start();
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        struct http_resp r;
        const char *hdr[] = {"Content-Type: application/json", NULL};
        bool post = !strcmp(routes[i].method, "POST");
        ck_assert_int_eq(http_do(&p, routes[i].method, routes[i].path,
                                 post ? hdr : NULL, post ? "{}" : NULL,
                                 post ? 2 : 0, &r),
                         0);
        ck_assert_msg(r.status == routes[i].status, "%s %s: %ld %s",
                      routes[i].method, routes[i].path, r.status, r.body);
        ck_assert_msg(strstr(r.body, routes[i].needle), "%s: %s",
                      routes[i].path, r.body);
        /* the protocol's routes answer plain JSON, errors too: KServe's
           client reads an error's message only from that type; a path
           that is no route (an unknown model) gets the problem type */
        ck_assert_msg(
            strstr(r.headers, routes[i].status == 404
                                  ? "Content-Type: application/problem+json\r\n"
                                  : "Content-Type: application/json\r\n"),
            "%s: %s", routes[i].path, r.headers);
        http_resp_release(&r);
    }
    ck_assert(lossd_metric(&p, "lossd_requests_total{route=\"/v2/models/"
                               "{model}/infer\",code=\"400\"}") == 1);
    ck_assert(lossd_metric(&p, "lossd_requests_total{route=\"/v2\","
                               "code=\"200\"}") == 1);
    lossd_finish(&p);
}
END_TEST

/* JSON data: the same answer as /v1, the id echoed, no binary. */
START_TEST(test_json_infer)
{
    struct lossd_proc p = start();
    struct resp r;
    infer(&p, "huber",
          "{\"id\":\"abc\",\"inputs\":[{\"name\":\"input\",\"shape\":[2,2],"
          "\"datatype\":\"FP64\",\"data\":[[1,2],[3,-4]]},{\"name\":"
          "\"target\",\"shape\":[2,2],\"datatype\":\"FP64\",\"data\":"
          "[0,2.5,3,1]}],\"parameters\":{\"delta\":0.5,\"grad\":true}}",
          NULL, 0, &r);
    ck_assert_msg(r.status == 200, "%s", r.body);
    ck_assert_str_eq(header_of(&r, "Content-Type"), "application/json");
    ck_assert_ptr_null(header_of(&r, "Inference-Header-Content-Length"));
    json_t *got = parse(r.body, r.len);
    json_t *ref = v1(&p, "huber",
                     "{\"input\":[[1,2],[3,-4]],\"target\":[[0,2.5],[3,1]],"
                     "\"delta\":0.5,\"grad\":true}");
    ck_assert_str_eq(json_string_value(json_object_get(got, "id")), "abc");
    expect_same(json_object_get(output(got, "value"), "data"),
                json_object_get(ref, "value"));
    expect_same(json_object_get(output(got, "grad_input"), "data"),
                json_object_get(json_object_get(ref, "grad"), "input"));
    expect_same(json_object_get(output(got, "grad_target"), "data"),
                json_object_get(json_object_get(ref, "grad"), "target"));
    json_decref(got);
    json_decref(ref);
    resp_release(&r);
    lossd_finish(&p);
}
END_TEST

/* ---- binary inputs of every datatype ---------------------------------- */

static uint16_t to_fp16(double x) /* exact for the values used below */
{
    _Static_assert(sizeof(float) == 4, "float");
    if (x == 0)
        return 0;
    int e;
    double m = frexp(fabs(x), &e); /* x = m 2^e, m in [0.5, 1) */
    uint16_t frac = (uint16_t)((m * 2 - 1) * 1024);
    return (uint16_t)((x < 0 ? 0x8000 : 0) | ((e - 1 + 15) << 10) | frac);
}

static uint16_t to_bf16(double x)
{
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

/* Packs v (n values, each exactly representable) as dt; the bytes. */
static size_t pack(const char *dt, const double *v, size_t n,
                   unsigned char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(dt, "FP64")) {
            memcpy(out + k, &v[i], 8);
            k += 8;
        } else if (!strcmp(dt, "FP32")) {
            float f = (float)v[i];
            memcpy(out + k, &f, 4);
            k += 4;
        } else if (!strcmp(dt, "FP16") || !strcmp(dt, "BF16")) {
            uint16_t h = dt[0] == 'F' ? to_fp16(v[i]) : to_bf16(v[i]);
            memcpy(out + k, &h, 2);
            k += 2;
        } else if (!strcmp(dt, "INT64")) {
            int64_t x = (int64_t)v[i];
            memcpy(out + k, &x, 8);
            k += 8;
        } else if (!strcmp(dt, "INT32")) {
            int32_t x = (int32_t)v[i];
            memcpy(out + k, &x, 4);
            k += 4;
        } else { /* BOOL, UINT8 */
            out[k++] = (unsigned char)v[i];
        }
    }
    return k;
}

static const struct {
    const char *loss, *dt_input, *dt_target;
} dtype_cases[] = {
    {"cross_entropy", "FP32", "INT64"},
    {"cross_entropy", "FP64", "INT32"},
    {"cross_entropy", "FP16", "INT64"},
    {"cross_entropy", "BF16", "INT32"},
    {"binary_cross_entropy_with_logits", "FP32", "BOOL"},
    {"binary_cross_entropy_with_logits", "FP16", "UINT8"},
    {"binary_cross_entropy_with_logits", "BF16", "FP32"},
};

/* Values every datatype above holds exactly. */
static const double logits[6] = {0.5, -1.25, 2.0, 0.125, 0.25, -0.375};

START_TEST(test_binary_dtypes)
{
    struct lossd_proc p = start();
    const char *loss = dtype_cases[_i].loss;
    bool ce = !strcmp(loss, "cross_entropy");
    double target[6] = {1, 0, 1, 0, 0, 1};
    if (ce)
        target[0] = 2;
    size_t nt = ce ? 2 : 6;
    unsigned char bin[128];
    size_t a = pack(dtype_cases[_i].dt_input, logits, 6, bin);
    size_t b = pack(dtype_cases[_i].dt_target, target, nt, bin + a);
    char header[1024], body[512];
    snprintf(header, sizeof header,
             "{\"inputs\":[{\"name\":\"input\",\"shape\":[2,3],\"datatype\":"
             "\"%s\",\"parameters\":{\"binary_data_size\":%zu}},{\"name\":"
             "\"target\",\"shape\":[%s],\"datatype\":\"%s\",\"parameters\":"
             "{\"binary_data_size\":%zu}}],\"parameters\":{\"grad\":"
             "\"input\"}}",
             dtype_cases[_i].dt_input, a, ce ? "2" : "2,3",
             dtype_cases[_i].dt_target, b);
    if (ce)
        snprintf(body, sizeof body,
                 "{\"input\":[[0.5,-1.25,2.0],[0.125,0.25,-0.375]],"
                 "\"target\":[2,0],\"grad\":[\"input\"]}");
    else
        snprintf(body, sizeof body,
                 "{\"input\":[[0.5,-1.25,2.0],[0.125,0.25,-0.375]],"
                 "\"target\":[[1,0,1],[0,0,1]],\"grad\":[\"input\"]}");
    struct resp r;
    infer(&p, loss, header, bin, a + b, &r);
    ck_assert_msg(r.status == 200, "%s", r.body);
    json_t *got = parse(r.body, r.len);
    json_t *ref = v1(&p, loss, body);
    expect_same(json_object_get(output(got, "value"), "data"),
                json_object_get(ref, "value"));
    expect_same(json_object_get(output(got, "grad_input"), "data"),
                json_object_get(json_object_get(ref, "grad"), "input"));
    json_decref(got);
    json_decref(ref);
    resp_release(&r);
    lossd_finish(&p);
}
END_TEST

/* Binary outputs: octet-stream, the header length, the blobs in order. */
START_TEST(test_binary_outputs)
{
    struct lossd_proc p = start();
    double x[3] = {1, 2, 3}, t[3] = {0, 2.5, 3};
    unsigned char bin[48];
    memcpy(bin, x, 24);
    memcpy(bin + 24, t, 24);
    struct resp r;
    infer(&p, "mse",
          "{\"id\":\"7\",\"inputs\":[{\"name\":\"input\",\"shape\":[3],"
          "\"datatype\":\"FP64\",\"parameters\":{\"binary_data_size\":24}},"
          "{\"name\":\"target\",\"shape\":[3],\"datatype\":\"FP64\","
          "\"parameters\":{\"binary_data_size\":24}}],\"outputs\":[{\"name\":"
          "\"grad_input\",\"parameters\":{\"binary_data\":true,\"datatype\":"
          "\"FP32\"}},{\"name\":\"value\",\"parameters\":{\"binary_data\":"
          "true}},{\"name\":\"count\"}]}",
          bin, 48, &r);
    ck_assert_msg(r.status == 200, "%s", r.body);
    ck_assert_str_eq(header_of(&r, "Content-Type"), "application/octet-stream");
    size_t hl = (size_t)atol(header_of(&r, "Inference-Header-Content-Length"));
    ck_assert_uint_eq(r.len, hl + 12 + 8);
    json_t *got = parse(r.body, hl);
    ck_assert_int_eq(
        json_integer_value(json_object_get(
            json_object_get(output(got, "grad_input"), "parameters"),
            "binary_data_size")),
        12);
    float g[3];
    double v;
    memcpy(g, r.body + hl, 12);
    memcpy(&v, r.body + hl + 12, 8);
    ck_assert(g[0] == (float)(2.0 / 3) && g[1] == (float)(-1.0 / 3) &&
              g[2] == 0);
    ck_assert(v == 1.25 / 3);
    json_decref(got);
    resp_release(&r);
    lossd_finish(&p);
}
END_TEST

/* (10000, 1000) cross_entropy with its gradient at the default limits,
   FP32 (40 MB) and FP64 (80 MB), binary both ways. */
START_TEST(test_large)
{
    struct lossd_proc p = start();
    const char *dt = _i ? "FP64" : "FP32";
    size_t n = 10000, c = 1000, es = _i ? 8 : 4;
    size_t xb = n * c * es, tb = n * 8;
    unsigned char *bin = malloc(xb + tb);
    ck_assert_ptr_nonnull(bin);
    for (size_t i = 0; i < n * c; i++) {
        double v = (double)((i * 7919) % 1000) / 250.0 - 2.0;
        float f = (float)v;
        if (_i)
            memcpy(bin + 8 * i, &v, 8);
        else
            memcpy(bin + 4 * i, &f, 4);
    }
    for (size_t i = 0; i < n; i++) {
        int64_t t = (int64_t)(i % c);
        memcpy(bin + xb + 8 * i, &t, 8);
    }
    char header[1024];
    snprintf(header, sizeof header,
             "{\"inputs\":[{\"name\":\"input\",\"shape\":[%zu,%zu],"
             "\"datatype\":\"%s\",\"parameters\":{\"binary_data_size\":%zu}},"
             "{\"name\":\"target\",\"shape\":[%zu],\"datatype\":\"INT64\","
             "\"parameters\":{\"binary_data_size\":%zu}}],\"parameters\":"
             "{\"grad\":\"input\",\"binary_data_output\":true},\"outputs\":"
             "[{\"name\":\"value\"},{\"name\":\"grad_input\",\"parameters\":"
             "{\"datatype\":\"%s\"}}]}",
             n, c, dt, xb, n, tb, dt);
    struct resp r;
    infer(&p, "cross_entropy", header, bin, xb + tb, &r);
    ck_assert_msg(r.status == 200, "%d %.300s", r.status, r.body);
    size_t hl = (size_t)atol(header_of(&r, "Inference-Header-Content-Length"));
    ck_assert_uint_eq(r.len, hl + 8 + xb);
    double v;
    memcpy(&v, r.body + hl, 8);
    ck_assert(isfinite(v) && v > 0);
    /* the gradient is streamed from its buffer in blocks: rows at its
       start, across the first block boundaries and at its end are
       (softmax - one-hot) / n, to a few ulps */
    static const size_t rows[] = {0, 65, 131, 9999};
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        size_t i = rows[k];
        double m = -INFINITY, z = 0, xi[1000];
        for (size_t j = 0; j < c; j++) {
            if (_i) {
                memcpy(&xi[j], bin + 8 * (i * c + j), 8);
            } else {
                float f;
                memcpy(&f, bin + 4 * (i * c + j), 4);
                xi[j] = f;
            }
            m = xi[j] > m ? xi[j] : m;
        }
        for (size_t j = 0; j < c; j++)
            z += exp(xi[j] - m);
        for (size_t j = 0; j < c; j++) {
            double want = (exp(xi[j] - m) / z - (j == i % c)) / (double)n, got;
            const char *at = r.body + hl + 8 + es * (i * c + j);
            if (_i) {
                memcpy(&got, at, 8);
            } else {
                float f;
                memcpy(&f, at, 4);
                got = f;
                want = (float)want;
            }
            ck_assert_msg(fabs(got - want) <= 1e-6 * fabs(want) + 1e-300,
                          "row %zu col %zu: %.17g != %.17g", i, j, got, want);
        }
    }
    free(bin);
    resp_release(&r);
    lossd_finish(&p);
}
END_TEST

/* ---- hostile input ------------------------------------------------------ */

#define MSE_HEAD(dt, shape, size)                                              \
    "{\"inputs\":[{\"name\":\"input\",\"shape\":" shape ",\"datatype\":\"" dt  \
    "\",\"parameters\":{\"binary_data_size\":" size "}},{\"name\":"            \
    "\"target\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[0,0]}]}"

static const struct {
    const char *what;
    const char *header;
    size_t bin;       /* bytes after the header */
    const char *ihcl; /* Inference-Header-Content-Length; "": the header's */
    int status;
} hostile[] = {
    {"binary_data_size one short", MSE_HEAD("FP64", "[2]", "15"), 15, "", 400},
    {"binary_data_size one over", MSE_HEAD("FP64", "[2]", "17"), 17, "", 400},
    {"one byte more than the sizes", MSE_HEAD("FP64", "[2]", "16"), 17, "",
     400},
    {"one byte less than the sizes", MSE_HEAD("FP64", "[2]", "16"), 15, "",
     400},
    {"header length 0", MSE_HEAD("FP64", "[2]", "16"), 16, "0", 400},
    {"header length beyond the body", MSE_HEAD("FP64", "[2]", "16"), 16,
     "100000", 400},
    {"header length one short", MSE_HEAD("FP64", "[2]", "16"), 16, "-", 400},
    {"header length not a number", MSE_HEAD("FP64", "[2]", "16"), 16, "12a",
     400},
    {"header length negative", MSE_HEAD("FP64", "[2]", "16"), 16, "-5", 400},
    {"unknown datatype", MSE_HEAD("FP8", "[2]", "2"), 2, "", 400},
    {"BYTES", MSE_HEAD("BYTES", "[2]", "2"), 2, "", 400},
    {"a datatype the tensor cannot take", MSE_HEAD("INT64", "[2]", "16"), 16,
     "", 400},
    {"shape overflow", MSE_HEAD("FP64", "[4294967296,4294967296]", "0"), 0, "",
     413},
    {"shape over max_elements", MSE_HEAD("FP64", "[20000000]", "160000000"), 0,
     "", 413},
    {"negative shape", MSE_HEAD("FP64", "[-2]", "16"), 16, "", 400},
    {"binary data without the header length", MSE_HEAD("FP64", "[2]", "16"), 16,
     NULL, 400},
    {"the header is not JSON", "{\"inputs\":[", 0, "", 400},
};

/* Each on one keep-alive connection, then a valid request on it. */
START_TEST(test_hostile)
{
    struct lossd_proc p = start();
    int fd = raw_connect(&p);
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        unsigned char *zeros = calloc(hostile[i].bin + 1, 1);
        char ih[32];
        const char *ihcl = hostile[i].ihcl;
        if (ihcl && !strcmp(ihcl, "-")) {
            snprintf(ih, sizeof ih, "%zu", strlen(hostile[i].header) - 1);
            ihcl = ih;
        }
        post_oip(fd, "/v2/models/mse/infer", hostile[i].header, zeros,
                 hostile[i].bin, ihcl);
        free(zeros);
        struct resp r;
        read_resp(fd, &r);
        ck_assert_msg(r.status == hostile[i].status, "%s: %d %s",
                      hostile[i].what, r.status, r.body ? r.body : "");
        ck_assert_msg(strstr(r.body, "\"error\":"), "%s", r.body);
        resp_release(&r);
        /* the connection still serves */
        double x[2] = {1, 2};
        post_oip(fd, "/v2/models/mse/infer", MSE_HEAD("FP64", "[2]", "16"), x,
                 16, "");
        read_resp(fd, &r);
        ck_assert_msg(r.status == 200, "after %s: %d %s", hostile[i].what,
                      r.status, r.body ? r.body : "");
        resp_release(&r);
    }
    close(fd);
    lossd_finish(&p);
}
END_TEST

/* NaN payloads are numbers: they propagate as PyTorch's would. */
START_TEST(test_nan_payload)
{
    struct lossd_proc p = start();
    double x[2] = {NAN, 1};
    struct resp r;
    infer(&p, "mse", MSE_HEAD("FP64", "[2]", "16"), x, 16, &r);
    ck_assert_msg(r.status == 200, "%s", r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "\"NaN\""));
    resp_release(&r);
    /* a NaN class index is refused as on /v1 */
    double two[2] = {1, 2};
    unsigned char bin[24];
    memcpy(bin, two, 16);
    double t = NAN;
    memcpy(bin + 16, &t, 8);
    infer(&p, "cross_entropy",
          "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,2],\"datatype\":"
          "\"FP64\",\"parameters\":{\"binary_data_size\":16}},{\"name\":"
          "\"target\",\"shape\":[1],\"datatype\":\"FP64\",\"parameters\":"
          "{\"binary_data_size\":8}}]}",
          bin, 24, &r);
    ck_assert_msg(r.status == 422, "%d %s", r.status, r.body);
    resp_release(&r);
    lossd_finish(&p);
}
END_TEST

/* A million inputs in the header, a truncated body: 400, server alive. */
START_TEST(test_many_inputs_and_truncation)
{
    struct lossd_proc p = start();
    size_t n = 1000000;
    char *h = malloc(16 + 3 * n);
    ck_assert_ptr_nonnull(h);
    strcpy(h, "{\"inputs\":[");
    size_t k = strlen(h);
    for (size_t i = 0; i < n; i++) {
        memcpy(h + k, i ? ",{}" : "{}", i ? 3 : 2);
        k += i ? 3 : 2;
    }
    strcpy(h + k, "]}");
    struct resp r;
    infer(&p, "mse", h, NULL, 0, &r);
    ck_assert_msg(r.status == 400, "%d %s", r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "at most"));
    resp_release(&r);
    free(h);

    /* Content-Length says 16 more bytes than are sent: the client leaves */
    int fd = raw_connect(&p);
    char req[512];
    const char *head = MSE_HEAD("FP64", "[2]", "16");
    snprintf(req, sizeof req,
             "POST /v2/models/mse/infer HTTP/1.1\r\nHost: t\r\n"
             "Inference-Header-Content-Length: %zu\r\n"
             "Content-Length: %zu\r\n\r\n%s12345678",
             strlen(head), strlen(head) + 16, head);
    send_all(fd, req, strlen(req));
    shutdown(fd, SHUT_WR);
    read_resp(fd, &r); /* closed or answered: either way the server lives */
    resp_release(&r);
    close(fd);
    struct http_resp hr;
    ck_assert_int_eq(http_do(&p, "GET", "/v2/health/live", NULL, NULL, 0, &hr),
                     0);
    ck_assert_int_eq(hr.status, 200);
    http_resp_release(&hr);
    lossd_finish(&p);
}
END_TEST

/* A chunked body (its length unknown until it ends): the sizes are
   checked as the data comes, and at its end. */
START_TEST(test_chunked)
{
    struct lossd_proc p = start();
    const char *head = MSE_HEAD("FP64", "[2]", "16");
    double x[2] = {1, 2};
    for (int extra = -1; extra <= 1; extra++) {
        int fd = raw_connect(&p);
        char req[512];
        size_t n = (size_t)(16 + extra); /* 15, 16, 17 bytes of data */
        unsigned char bin[17] = {0};
        memcpy(bin, x, 16);
        snprintf(req, sizeof req,
                 "POST /v2/models/mse/infer HTTP/1.1\r\nHost: t\r\n"
                 "Inference-Header-Content-Length: %zu\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n%zx\r\n",
                 strlen(head), strlen(head), head, n - 1);
        send_all(fd, req, strlen(req));
        send_all(fd, bin, n - 1);
        snprintf(req, sizeof req, "\r\n1\r\n");
        send_all(fd, req, strlen(req));
        send_all(fd, bin + n - 1, 1);
        send_all(fd, "\r\n0\r\n\r\n", 7);
        struct resp r;
        read_resp(fd, &r);
        ck_assert_msg(r.status == (extra == 0 ? 200 : 400), "%d: %d %s", extra,
                      r.status, r.body);
        resp_release(&r);
        close(fd);
    }
    lossd_finish(&p);
}
END_TEST

/* A browser client: the preflight allows the header length, and a binary
   answer exposes it. */
START_TEST(test_cors)
{
    static const char *const args[] = {"--cors-origins", "*", NULL};
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    struct http_resp r;
    char buf[256];
    static const char *const pre[] = {
        "Origin: https://a.example", "Access-Control-Request-Method: POST",
        "Access-Control-Request-Headers: inference-header-content-length",
        NULL};
    ck_assert_int_eq(
        http_do(&p, "OPTIONS", "/v2/models/mse/infer", pre, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 204);
    ck_assert_ptr_nonnull(
        strstr(http_header(&r, "Access-Control-Allow-Headers", buf, sizeof buf),
               "Inference-Header-Content-Length"));
    http_resp_release(&r);
    static const char *const post[] = {"Origin: https://a.example",
                                       "Content-Type: application/json", NULL};
    static const char body[] =
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[1],\"datatype\":"
        "\"FP64\",\"data\":[1]},{\"name\":\"target\",\"shape\":[1],"
        "\"datatype\":\"FP64\",\"data\":[0]}],\"parameters\":"
        "{\"binary_data_output\":true}}";
    ck_assert_int_eq(http_do(&p, "POST", "/v2/models/mse/infer", post, body,
                             strlen(body), &r),
                     0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(
        http_header(&r, "Access-Control-Expose-Headers", buf, sizeof buf),
        "Inference-Header-Content-Length"));
    ck_assert_ptr_nonnull(
        http_header(&r, "Inference-Header-Content-Length", buf, sizeof buf));
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("oip");
    TCase *tc = tcase_create("oip");
    tcase_add_test(tc, test_routes);
    tcase_add_test(tc, test_json_infer);
    tcase_add_loop_test(tc, test_binary_dtypes, 0,
                        (int)(sizeof dtype_cases / sizeof *dtype_cases));
    tcase_add_test(tc, test_binary_outputs);
    tcase_add_loop_test(tc, test_large, 0, 2);
    tcase_add_test(tc, test_hostile);
    tcase_add_test(tc, test_nan_payload);
    tcase_add_test(tc, test_many_inputs_and_truncation);
    tcase_add_test(tc, test_cors);
    tcase_add_test(tc, test_chunked);
    suite_add_tcase(s, tc);
    return harness_run(s);
}

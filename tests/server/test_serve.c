/*
 * test_serve.c - `lossd serve` end to end: routes, statuses, problem types,
 * bodies (413 with and without Expect, gzip, bombs), CORS and metrics.
 * Every test starts its own server on 127.0.0.1, port 0.
 */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"

#define MSE_BODY "{\"input\": [1, 2], \"target\": [1, 4]}"

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static struct lossd_proc start(const char *const *args)
{
    struct lossd_proc p;
    ck_assert_int_eq(lossd_start(&p, args), 0);
    return p;
}

/* Asserts status and, for errors, the problem type and media type. */
static void expect_status(const struct http_resp *r, long status,
                          const char *type)
{
    char buf[256];
    ck_assert_msg(r->status == status, "status %ld, expected %ld: %s",
                  r->status, status, r->body);
    ck_assert_ptr_nonnull(http_header(r, "X-Request-Id", buf, sizeof buf));
    if (type) {
        ck_assert_str_eq(http_header(r, "Content-Type", buf, sizeof buf),
                         "application/problem+json");
        ck_assert_str_eq(http_json_str(r, "type", buf, sizeof buf), type);
        json_t *j = json_loadb(r->body, r->len, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "status")),
                         status);
        ck_assert_str_eq(json_string_value(json_object_get(j, "detail")),
                         json_string_value(json_object_get(j, "error")));
        json_decref(j);
    }
}

static double json_number(const struct http_resp *r, const char *key)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    ck_assert_ptr_nonnull(j);
    double v = json_number_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

START_TEST(test_get_routes)
{
    struct lossd_proc p = start(NULL);
    static const char *const paths[] = {"/healthz", "/readyz", "/v1/losses",
                                        "/openapi.json", "/metrics"};
    for (size_t i = 0; i < 5; i++) {
        struct http_resp r;
        ck_assert_int_eq(http_do(&p, "GET", paths[i], NULL, NULL, 0, &r), 0);
        expect_status(&r, 200, NULL);
        if (i < 4) {
            json_t *j = json_loadb(r.body, r.len, 0, NULL);
            ck_assert_msg(j != NULL, "%s is not JSON", paths[i]);
            json_decref(j);
        }
        http_resp_release(&r);
    }
    struct http_resp r;
    ck_assert_int_eq(http_do(&p, "GET", "/v1/losses", NULL, NULL, 0, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "\"info_nce\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"max_body_bytes\""));
    http_resp_release(&r);
    ck_assert_int_eq(http_do(&p, "HEAD", "/healthz", NULL, NULL, 0, &r), 0);
    expect_status(&r, 200, NULL);
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

START_TEST(test_post_loss)
{
    struct lossd_proc p = start(NULL);
    struct http_resp r;
    static const char *const paths[] = {"/v1/mse", "/mse"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(http_do(&p, "POST", paths[i], json_ct, MSE_BODY,
                                 strlen(MSE_BODY), &r),
                         0);
        expect_status(&r, 200, NULL);
        ck_assert(json_number(&r, "value") == 2.0);
        http_resp_release(&r);
    }
    /* no Content-Type reads as JSON; application/x+json too */
    static const char *const no_ct[] = {"Content-Type:", NULL};
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", no_ct, MSE_BODY, strlen(MSE_BODY), &r),
        0);
    expect_status(&r, 200, NULL);
    http_resp_release(&r);
    static const char *const plus[] = {
        "Content-Type: application/vnd.x+json; charset=utf-8", NULL};
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", plus, MSE_BODY, strlen(MSE_BODY), &r),
        0);
    expect_status(&r, 200, NULL);
    http_resp_release(&r);
    const char *batch = "{\"requests\": [{\"loss\": \"mse\", \"id\": \"a\"}, "
                        "{\"loss\": \"l1\"}], \"shared\": {\"input\": [1, 2],"
                        " \"target\": [1, 4]}}";
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/batch", json_ct, batch, strlen(batch), &r), 0);
    expect_status(&r, 200, NULL);
    ck_assert_ptr_nonnull(strstr(r.body, "\"results\""));
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

START_TEST(test_errors)
{
    struct lossd_proc p = start(NULL);
    struct http_resp r;
    char buf[256];
    /* unknown routes and losses: 404 whatever the method */
    static const char *const nf[] = {
        "/v1/nope",    "/nope",  "/v2/models/nope", "/v2/nope",
        "/v1/healthz", "/batch", "/v1/mse/x"};
    for (size_t i = 0; i < sizeof nf / sizeof nf[0]; i++) {
        ck_assert_int_eq(http_do(&p, "POST", nf[i], json_ct, "{}", 2, &r), 0);
        expect_status(&r, 404, "/problems/not-found");
        http_resp_release(&r);
        ck_assert_int_eq(http_do(&p, "GET", nf[i], NULL, NULL, 0, &r), 0);
        expect_status(&r, 404, "/problems/not-found");
        http_resp_release(&r);
    }
    /* wrong method: 405 with Allow */
    ck_assert_int_eq(http_do(&p, "GET", "/v1/mse", NULL, NULL, 0, &r), 0);
    expect_status(&r, 405, "/problems/method-not-allowed");
    ck_assert_ptr_nonnull(
        strstr(http_header(&r, "Allow", buf, sizeof buf), "POST"));
    http_resp_release(&r);
    ck_assert_int_eq(http_do(&p, "POST", "/healthz", json_ct, "{}", 2, &r), 0);
    expect_status(&r, 405, "/problems/method-not-allowed");
    ck_assert_ptr_nonnull(
        strstr(http_header(&r, "Allow", buf, sizeof buf), "GET"));
    http_resp_release(&r);
    ck_assert_int_eq(http_do(&p, "DELETE", "/v1/losses", NULL, NULL, 0, &r), 0);
    expect_status(&r, 405, "/problems/method-not-allowed");
    http_resp_release(&r);
    /* media types */
    static const char *const form[] = {
        "Content-Type: application/x-www-form-urlencoded", NULL};
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", form, MSE_BODY, strlen(MSE_BODY), &r),
        0);
    expect_status(&r, 415, "/problems/unsupported-media-type");
    ck_assert_ptr_nonnull(strstr(r.body, "application/json"));
    http_resp_release(&r);
    static const char *const br[] = {"Content-Type: application/json",
                                     "Content-Encoding: br", NULL};
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", br, MSE_BODY, strlen(MSE_BODY), &r), 0);
    expect_status(&r, 415, "/problems/unsupported-media-type");
    ck_assert_ptr_nonnull(
        strstr(http_header(&r, "Accept-Encoding", buf, sizeof buf), "gzip"));
    http_resp_release(&r);
    /* bodies */
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", json_ct, "{\"input\": [1,", 13, &r), 0);
    expect_status(&r, 400, "/problems/invalid-json");
    http_resp_release(&r);
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", json_ct, "", 0, &r), 0);
    expect_status(&r, 400, "/problems/invalid-json");
    http_resp_release(&r);
    const char *ragged = "{\"input\": [[1, 2], [3]], \"target\": [1, 2]}";
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", json_ct, ragged, strlen(ragged), &r), 0);
    expect_status(&r, 400, "/problems/invalid-tensor");
    http_resp_release(&r);
    const char *unknown = "{\"input\": [1], \"target\": [1], \"bogus\": 1}";
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", json_ct, unknown, strlen(unknown), &r),
        0);
    expect_status(&r, 422, "/problems/unknown-field");
    http_resp_release(&r);
    const char *missing = "{\"input\": [1]}";
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", json_ct, missing, strlen(missing), &r),
        0);
    expect_status(&r, 422, "/problems/missing-field");
    http_resp_release(&r);
    /* the server still serves */
    ck_assert_int_eq(http_do(&p, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    expect_status(&r, 200, NULL);
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

START_TEST(test_request_id)
{
    struct lossd_proc p = start(NULL);
    struct http_resp r;
    char buf[256], buf2[256];
    static const char *const mine[] = {"X-Request-Id: abc-123", NULL};
    ck_assert_int_eq(http_do(&p, "GET", "/nope", mine, NULL, 0, &r), 0);
    ck_assert_str_eq(http_header(&r, "X-Request-Id", buf, sizeof buf),
                     "abc-123");
    ck_assert_str_eq(http_json_str(&r, "instance", buf, sizeof buf), "abc-123");
    http_resp_release(&r);
    char longid[200] = "X-Request-Id: ";
    memset(longid + 14, 'a', 150);
    longid[164] = '\0';
    const char *const toolong[] = {longid, NULL};
    ck_assert_int_eq(http_do(&p, "GET", "/healthz", toolong, NULL, 0, &r), 0);
    http_header(&r, "X-Request-Id", buf, sizeof buf);
    ck_assert_uint_gt(strlen(buf), 0);
    ck_assert_uint_le(strlen(buf), 128);
    http_resp_release(&r);
    ck_assert_int_eq(http_do(&p, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    http_header(&r, "X-Request-Id", buf2, sizeof buf2);
    ck_assert_str_ne(buf, buf2);
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

/* A valid body of about n bytes: mse of two long vectors. */
static char *big_body(size_t n, size_t *ret_len)
{
    size_t count = n / 8 + 1;
    char *s = malloc(count * 8 + 64);
    size_t len = 0;
    for (int t = 0; t < 2; t++) {
        len +=
            (size_t)sprintf(s + len, t ? "], \"target\": [" : "{\"input\": [");
        for (size_t i = 0; i < count / 2; i++)
            len += (size_t)sprintf(s + len, i ? ",0.25" : "0.25");
    }
    len += (size_t)sprintf(s + len, "]}");
    *ret_len = len;
    return s;
}

START_TEST(test_too_large)
{
    static const char *const args[] = {"--max-body-bytes", "1000", NULL};
    struct lossd_proc p = start(args);
    struct http_resp r;
    size_t len;
    char *body = big_body(200000, &len);
    /* curl sends Expect: 100-continue for bodies over 1 KiB */
    static const char *const expect[] = {"Content-Type: application/json",
                                         "Expect: 100-continue", NULL};
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", expect, body, len, &r), 0);
    expect_status(&r, 413, "/problems/too-large");
    http_resp_release(&r);
    /* without Expect: the body is discarded, then 413 */
    static const char *const noexpect[] = {"Content-Type: application/json",
                                           "Expect:", NULL};
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", noexpect, body, len, &r),
                     0);
    expect_status(&r, 413, "/problems/too-large");
    http_resp_release(&r);
    /* chunked, without Content-Length */
    static const char *const chunked[] = {"Content-Type: application/json",
                                          "Transfer-Encoding: chunked",
                                          "Expect:", NULL};
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", chunked, body, len, &r), 0);
    expect_status(&r, 413, "/problems/too-large");
    http_resp_release(&r);
    free(body);
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", json_ct, MSE_BODY, strlen(MSE_BODY), &r),
        0);
    expect_status(&r, 200, NULL);
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

static char *gz(const char *in, size_t len, size_t *ret_len)
{
    z_stream z = {0};
    ck_assert_int_eq(
        deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, len) + 64;
    char *out = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *ret_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

START_TEST(test_gzip)
{
    static const char *const args[] = {"--max-body-bytes", "1M", NULL};
    struct lossd_proc p = start(args);
    struct http_resp r;
    static const char *const gzh[] = {"Content-Type: application/json",
                                      "Content-Encoding: gzip", NULL};
    size_t zlen;
    char *z = gz(MSE_BODY, strlen(MSE_BODY), &zlen);
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", gzh, z, zlen, &r), 0);
    expect_status(&r, 200, NULL);
    ck_assert(json_number(&r, "value") == 2.0);
    http_resp_release(&r);
    free(z);
    /* corrupt and truncated streams */
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", gzh, "not gzip at all", 15, &r), 0);
    expect_status(&r, 400, "/problems/invalid-json");
    http_resp_release(&r);
    z = gz(MSE_BODY, strlen(MSE_BODY), &zlen);
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", gzh, z, zlen / 2, &r), 0);
    expect_status(&r, 400, "/problems/invalid-json");
    http_resp_release(&r);
    free(z);
    /* a bomb: 64 MiB of spaces in ~64 KiB, over the 1 MiB limit */
    size_t n = (size_t)64 << 20;
    char *spaces = malloc(n);
    memset(spaces, ' ', n);
    z = gz(spaces, n, &zlen);
    free(spaces);
    ck_assert_uint_lt(zlen, 1 << 20);
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", gzh, z, zlen, &r), 0);
    expect_status(&r, 413, "/problems/too-large");
    ck_assert_ptr_nonnull(strstr(r.body, "decompressed"));
    http_resp_release(&r);
    free(z);
    lossd_finish(&p);
}
END_TEST

START_TEST(test_cors)
{
    static const char *const args[] = {
        "--cors-origins", "https://a.example,https://b.example", NULL};
    struct lossd_proc p = start(args);
    struct http_resp r;
    char buf[256];
    static const char *const pre[] = {
        "Origin: https://b.example", "Access-Control-Request-Method: POST",
        "Access-Control-Request-Headers: content-type", NULL};
    ck_assert_int_eq(http_do(&p, "OPTIONS", "/v1/mse", pre, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 204);
    ck_assert_str_eq(
        http_header(&r, "Access-Control-Allow-Origin", buf, sizeof buf),
        "https://b.example");
    ck_assert_ptr_nonnull(
        strstr(http_header(&r, "Access-Control-Allow-Methods", buf, sizeof buf),
               "POST"));
    ck_assert_ptr_nonnull(
        strstr(http_header(&r, "Access-Control-Allow-Headers", buf, sizeof buf),
               "Content-Type"));
    ck_assert_ptr_nonnull(
        http_header(&r, "Access-Control-Max-Age", buf, sizeof buf));
    http_resp_release(&r);
    static const char *const post[] = {"Origin: https://a.example",
                                       "Content-Type: application/json", NULL};
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", post, MSE_BODY, strlen(MSE_BODY), &r),
        0);
    expect_status(&r, 200, NULL);
    ck_assert_str_eq(
        http_header(&r, "Access-Control-Allow-Origin", buf, sizeof buf),
        "https://a.example");
    ck_assert_str_eq(http_header(&r, "Vary", buf, sizeof buf), "Origin");
    ck_assert_ptr_nonnull(strstr(
        http_header(&r, "Access-Control-Expose-Headers", buf, sizeof buf),
        "X-Request-Id"));
    http_resp_release(&r);
    /* errors carry them too */
    ck_assert_int_eq(http_do(&p, "POST", "/v1/nope", post, "{}", 2, &r), 0);
    expect_status(&r, 404, "/problems/not-found");
    ck_assert_ptr_nonnull(
        http_header(&r, "Access-Control-Allow-Origin", buf, sizeof buf));
    http_resp_release(&r);
    /* an origin not allowed gets none */
    static const char *const evil[] = {"Origin: https://evil.example",
                                       "Access-Control-Request-Method: POST",
                                       NULL};
    ck_assert_int_eq(http_do(&p, "OPTIONS", "/v1/mse", evil, NULL, 0, &r), 0);
    ck_assert_ptr_null(
        http_header(&r, "Access-Control-Allow-Origin", buf, sizeof buf));
    http_resp_release(&r);
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", evil, MSE_BODY, strlen(MSE_BODY), &r),
        0);
    ck_assert_ptr_null(
        http_header(&r, "Access-Control-Allow-Origin", buf, sizeof buf));
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

/* The value of the series line that starts with prefix, or -1. */
static double metric(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *l = text; l && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, prefix, n) && l[n] == ' ')
            return atof(l + n + 1);
    return -1;
}

START_TEST(test_metrics)
{
    struct lossd_proc p = start(NULL);
    struct http_resp r;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", json_ct, MSE_BODY,
                                 strlen(MSE_BODY), &r),
                         0);
        http_resp_release(&r);
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(http_do(&p, "GET", "/x/y", NULL, NULL, 0, &r), 0);
        http_resp_release(&r);
    }
    /*
     * A client can read its whole answer before the server has completed
     * the request (libmicrohttpd closes, then notifies): scrape until the
     * scrape itself is the only request in flight.
     */
    double end = harness_now() + 60;
    for (;;) {
        ck_assert_int_eq(http_do(&p, "GET", "/metrics", NULL, NULL, 0, &r), 0);
        if (metric(r.body, "lossd_requests_in_flight") == 1)
            break;
        ck_assert_msg(harness_now() < end, "requests stay in flight");
        http_resp_release(&r);
        usleep(5000);
    }
    expect_status(&r, 200, NULL);
    char buf[128];
    ck_assert_ptr_nonnull(strstr(
        http_header(&r, "Content-Type", buf, sizeof buf), "version=0.0.4"));
    ck_assert(metric(r.body, "lossd_requests_total{route=\"/v1/{loss}\","
                             "code=\"200\"}") == 3);
    ck_assert(metric(r.body, "lossd_requests_total{route=\"other\","
                             "code=\"404\"}") == 2);
    ck_assert(metric(r.body, "lossd_request_duration_seconds_count{route="
                             "\"/v1/{loss}\"}") == 3);
    ck_assert(metric(r.body, "lossd_request_duration_seconds_bucket{route="
                             "\"/v1/{loss}\",le=\"+Inf\"}") == 3);
    ck_assert(metric(r.body, "lossd_compute_duration_seconds_count{loss="
                             "\"mse\"}") == 3);
    ck_assert_ptr_nonnull(strstr(r.body, "lossd_build_info{version=\""));
    ck_assert(metric(r.body, "process_open_fds") > 0);
    ck_assert(metric(r.body, "process_resident_memory_bytes") > 0);
    ck_assert_ptr_nonnull(
        strstr(r.body, "# TYPE lossd_requests_total counter"));
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

START_TEST(test_bad_config)
{
    /* exits 2 with one line */
    static const char *const bad[][3] = {{"--port", "70000", NULL},
                                         {"--threads", "1", NULL},
                                         {"--log-format", "xml", NULL},
                                         {"--bogus", "1", NULL}};
    for (size_t i = 0; i < 4; i++) {
        struct lossd_proc p;
        ck_assert_int_eq(lossd_start(&p, bad[i]), -1);
    }
}
END_TEST

/* ---- response compression ---------------------------------------------- */

/* data (len bytes) inflated as gzip (wbits 15 + 16) or zlib (15); the
   result is NUL-terminated, its length in *ret_len. */
static char *inflate_all(const char *data, size_t len, int wbits,
                         size_t *ret_len)
{
    z_stream z = {0};
    ck_assert_int_eq(inflateInit2(&z, wbits), Z_OK);
    size_t cap = len * 8 + 1024, out = 0;
    char *buf = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    int zr;
    do {
        if (cap - out < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        z.next_out = (Bytef *)(buf + out);
        z.avail_out = (uInt)(cap - out - 1);
        zr = inflate(&z, Z_NO_FLUSH);
        out = cap - 1 - z.avail_out;
        ck_assert_msg(zr == Z_OK || zr == Z_STREAM_END, "inflate: %d", zr);
    } while (zr != Z_STREAM_END);
    ck_assert_uint_eq(z.avail_in, 0); /* nothing after the stream */
    inflateEnd(&z);
    buf[out] = '\0';
    *ret_len = out;
    return buf;
}

/*
 * A POST (body non-NULL) or GET through libcurl as a gzip-accepting client
 * does it: CURLOPT_ACCEPT_ENCODING, so curl sends Accept-Encoding and
 * decodes the body. ret gets the decoded body and the raw headers.
 */
static void http_decoding(const struct lossd_proc *p, const char *path,
                          const char *accept, const char *origin,
                          const char *body, size_t len, struct http_resp *ret)
{
    memset(ret, 0, sizeof *ret);
    CURL *c = curl_easy_init();
    char url[512], oh[256];
    snprintf(url, sizeof url, "%s%s", p->url, path);
    struct harness_sink b = {0}, h = {0};
    struct curl_slist *hl =
        curl_slist_append(NULL, "Content-Type: application/json");
    if (origin) {
        snprintf(oh, sizeof oh, "Origin: %s", origin);
        hl = curl_slist_append(hl, oh);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, accept);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, harness_sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, harness_sink_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "curl: %s", curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ret->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    ret->body = b.data ? b.data : strdup("");
    ret->len = b.len;
    ret->headers = h.data ? h.data : strdup("");
    ret->hlen = h.len;
}

/* The lossd_queue_wait_seconds_count of p: how many jobs ran on the pool. */
static double pooled_jobs(const struct lossd_proc *p)
{
    struct http_resp r;
    ck_assert_int_eq(http_do(p, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    double v = metric(r.body, "lossd_queue_wait_seconds_count");
    http_resp_release(&r);
    return v;
}

/* An mse body of n elements with reduction none and gradients: an answer
   of about 18 n bytes for 8 n work units. */
static char *mse_none_body(size_t n, size_t *ret_len)
{
    char *s = malloc(n * 24 + 128);
    size_t len = (size_t)sprintf(s, "{\"input\": [");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, i ? ",%.1f" : "%.1f",
                               (double)(i % 97) * 0.1);
    len += (size_t)sprintf(s + len, "], \"target\": 0, \"reduction\": "
                                    "\"none\", \"grad\": [\"input\"]}");
    *ret_len = len;
    return s;
}

/* A softmax body of an n x n matrix with gradients. */
static char *softmax_body(size_t n, size_t *ret_len)
{
    char *s = malloc(n * n * 16 + 128);
    size_t len = (size_t)sprintf(s,
                                 "{\"input\": {\"shape\": [%zu, %zu], "
                                 "\"data\": [",
                                 n, n);
    for (size_t i = 0; i < n * n; i++)
        len += (size_t)sprintf(s + len, i ? ",%.2f" : "%.2f",
                               (double)((i * 7919) % 1000) / 250.0);
    len += (size_t)sprintf(s + len, "]}, \"dim\": 1, \"grad\": true}");
    *ret_len = len;
    return s;
}

/*
 * Checks one large response three ways against its identity form plain
 * (fetched without Accept-Encoding): decoded by a gzip-accepting libcurl,
 * raw gzip, raw deflate (zlib format).
 */
static void check_compressed(const struct lossd_proc *p, const char *method,
                             const char *path, const char *body, size_t len,
                             const struct http_resp *plain)
{
    char buf[256];
    struct http_resp r;
    /* a gzip-accepting client gets the same document, smaller on the wire */
    http_decoding(p, path, "gzip", NULL, body, len, &r);
    ck_assert_int_eq(r.status, plain->status);
    ck_assert_str_eq(http_header(&r, "Content-Encoding", buf, sizeof buf),
                     "gzip");
    ck_assert_str_eq(http_header(&r, "Vary", buf, sizeof buf),
                     "Accept-Encoding");
    ck_assert_uint_eq(r.len, plain->len);
    ck_assert(!memcmp(r.body, plain->body, r.len));
    http_resp_release(&r);

    static const char *const gzh[] = {"Content-Type: application/json",
                                      "Accept-Encoding: gzip", NULL};
    static const char *const dfh[] = {"Content-Type: application/json",
                                      "Accept-Encoding: deflate", NULL};
    const char *const *hs[] = {gzh, dfh};
    const int wbits[] = {15 + 16, 15};
    const char *names[] = {"gzip", "deflate"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(http_do(p, method, path, hs[i], body, len, &r), 0);
        ck_assert_int_eq(r.status, plain->status);
        ck_assert_str_eq(http_header(&r, "Content-Encoding", buf, sizeof buf),
                         names[i]);
        ck_assert_uint_lt(r.len, plain->len);
        ck_assert_uint_eq(
            (size_t)atol(http_header(&r, "Content-Length", buf, sizeof buf)),
            r.len);
        size_t dlen;
        char *d = inflate_all(r.body, r.len, wbits[i], &dlen);
        ck_assert_uint_eq(dlen, plain->len);
        ck_assert(!memcmp(d, plain->body, dlen));
        free(d);
        http_resp_release(&r);
    }
}

/*
 * An mse body of n pseudo-random inputs against 0, reduction none, with
 * gradients, its tensors answered in output_format: value and gradient
 * are 2 n float64 of full precision, so as base64 they barely compress.
 */
static char *mse_random_body(size_t n, const char *output_format,
                             size_t *ret_len)
{
    char *s = malloc(n * 28 + 128);
    unsigned long long x = 88172645463325252ULL; /* xorshift64 */
    size_t len = (size_t)sprintf(s, "{\"input\": [");
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        len += (size_t)sprintf(s + len, i ? ",%.17g" : "%.17g",
                               (double)(x >> 11) / 9007199254740992.0);
    }
    len += (size_t)sprintf(s + len,
                           "], \"target\": 0, \"reduction\": \"none\", "
                           "\"grad\": [\"input\"], \"output_format\": "
                           "\"%s\"}",
                           output_format);
    *ret_len = len;
    return s;
}

/* server/coding.h's SERVER_COMPRESS_SAMPLE: the black-box tests do not
   link the server */
#define COMPRESS_SAMPLE ((size_t)64 * 1024)

/*
 * Above COMPRESS_SAMPLE, an answer that barely shrinks (base64 of
 * full-precision floats) goes out as identity to a client that accepts gzip
 * or deflate, still with Vary; the same numbers as JSON are compressed and
 * inflate to exactly the identity body.
 */
START_TEST(test_compression_not_worth)
{
    struct lossd_proc p = start(NULL);
    static const char *const aes[] = {"Accept-Encoding: gzip",
                                      "Accept-Encoding: deflate",
                                      "Accept-Encoding: gzip, deflate"};
    struct http_resp plain, r;
    char buf[256];
    size_t len;
    char *body = mse_random_body(8000, "base64", &len);

    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", json_ct, body, len, &plain),
                     0);
    expect_status(&plain, 200, NULL);
    /* two tensors of 8000 float64: 2 * 64000 bytes as base64 */
    ck_assert_uint_gt(plain.len, 2 * COMPRESS_SAMPLE);
    for (size_t i = 0; i < sizeof aes / sizeof aes[0]; i++) {
        const char *const hs[] = {"Content-Type: application/json", aes[i],
                                  NULL};
        ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", hs, body, len, &r), 0);
        expect_status(&r, 200, NULL);
        ck_assert_msg(!http_header(&r, "Content-Encoding", buf, sizeof buf),
                      "%s: compressed", aes[i]);
        ck_assert_str_eq(http_header(&r, "Vary", buf, sizeof buf),
                         "Accept-Encoding");
        ck_assert(r.len == plain.len && !memcmp(r.body, plain.body, r.len));
        http_resp_release(&r);
    }
    http_resp_release(&plain);
    free(body);

    /* the same numbers as JSON: compressed, and inflating to the identity
       body */
    body = mse_random_body(8000, "nested", &len);
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", json_ct, body, len, &plain),
                     0);
    expect_status(&plain, 200, NULL);
    ck_assert_uint_gt(plain.len, 2 * COMPRESS_SAMPLE);
    check_compressed(&p, "POST", "/v1/mse", body, len, &plain);
    http_resp_release(&plain);
    free(body);
    lossd_finish(&p);
}
END_TEST

START_TEST(test_compression)
{
    /* jobs above 5000 units run on the pool: mse of 200 elements (1600)
       inline, softmax of 80 x 80 (38400) pooled */
    static const char *const args[] = {"--inline-max-cost", "5000",
                                       "--cors-origins", "*", NULL};
    struct lossd_proc p = start(args);
    struct http_resp plain, r;
    char buf[256];

    /* inline: mse of 200 elements, reduction none, gradient (~4 KiB) */
    size_t len;
    char *body = mse_none_body(200, &len);
    ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", json_ct, body, len, &plain),
                     0);
    expect_status(&plain, 200, NULL);
    ck_assert_uint_gt(plain.len, 2048);
    ck_assert_ptr_null(
        http_header(&plain, "Content-Encoding", buf, sizeof buf));
    /* large enough to vary, even for a client that did not ask */
    ck_assert_str_eq(http_header(&plain, "Vary", buf, sizeof buf),
                     "Accept-Encoding");
    check_compressed(&p, "POST", "/v1/mse", body, len, &plain);
    ck_assert(pooled_jobs(&p) == 0);
    http_resp_release(&plain);
    free(body);

    /* pooled: softmax of 80 x 80 with its gradient (~250 KiB) */
    body = softmax_body(80, &len);
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/softmax", json_ct, body, len, &plain), 0);
    expect_status(&plain, 200, NULL);
    ck_assert(pooled_jobs(&p) == 1);
    check_compressed(&p, "POST", "/v1/softmax", body, len, &plain);
    ck_assert(pooled_jobs(&p) == 4);
    /* with CORS, one Vary field names both */
    http_decoding(&p, "/v1/softmax", "gzip", "https://a.example", body, len,
                  &r);
    ck_assert_str_eq(http_header(&r, "Content-Encoding", buf, sizeof buf),
                     "gzip");
    ck_assert_str_eq(http_header(&r, "Vary", buf, sizeof buf),
                     "Origin, Accept-Encoding");
    ck_assert(r.len == plain.len && !memcmp(r.body, plain.body, r.len));
    http_resp_release(&r);

    /* preferences: q=0 refuses, the higher q wins, gzip on ties, "*" */
    static const struct {
        const char *ae, *want; /* want NULL: identity */
    } prefs[] = {
        {"Accept-Encoding: gzip;q=0, deflate;q=0", NULL},
        {"Accept-Encoding: gzip; q=0", NULL},
        {"Accept-Encoding: identity", NULL},
        {"Accept-Encoding: br", NULL},
        {"Accept-Encoding: *;q=0", NULL},
        {"Accept-Encoding: gzip;q=0, deflate", "deflate"},
        {"Accept-Encoding: deflate, gzip;q=0.5", "deflate"},
        {"Accept-Encoding: deflate, gzip", "gzip"},
        {"Accept-Encoding: br;q=1.0, gzip;q=0.8, *;q=0.1", "gzip"},
        {"Accept-Encoding: *", "gzip"},
        {"Accept-Encoding: GZIP", "gzip"},
        {"Accept-Encoding: x-gzip", "gzip"},
    };
    for (size_t i = 0; i < sizeof prefs / sizeof prefs[0]; i++) {
        const char *const hs[] = {"Content-Type: application/json", prefs[i].ae,
                                  NULL};
        ck_assert_int_eq(http_do(&p, "POST", "/v1/softmax", hs, body, len, &r),
                         0);
        ck_assert_int_eq(r.status, 200);
        const char *ce = http_header(&r, "Content-Encoding", buf, sizeof buf);
        if (prefs[i].want)
            ck_assert_msg(ce && !strcmp(ce, prefs[i].want), "%s: got %s",
                          prefs[i].ae, ce ? ce : "identity");
        else
            ck_assert_msg(!ce && r.len == plain.len, "%s: got %s", prefs[i].ae,
                          ce);
        ck_assert_str_eq(http_header(&r, "Vary", buf, sizeof buf),
                         "Accept-Encoding");
        http_resp_release(&r);
    }
    http_resp_release(&plain);
    free(body);

    /* tiny bodies are never compressed, and do not vary */
    static const char *const gzh[] = {"Content-Type: application/json",
                                      "Accept-Encoding: gzip, deflate", NULL};
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", gzh, MSE_BODY, strlen(MSE_BODY), &r), 0);
    expect_status(&r, 200, NULL);
    ck_assert(json_number(&r, "value") == 2.0);
    ck_assert_ptr_null(http_header(&r, "Content-Encoding", buf, sizeof buf));
    ck_assert_ptr_null(http_header(&r, "Vary", buf, sizeof buf));
    http_resp_release(&r);
    ck_assert_int_eq(http_do(&p, "POST", "/v1/nope", gzh, "{}", 2, &r), 0);
    expect_status(&r, 404, "/problems/not-found");
    ck_assert_ptr_null(http_header(&r, "Content-Encoding", buf, sizeof buf));
    http_resp_release(&r);

    /* GET documents: the catalog and OpenAPI (compressed once at start) and
       the metrics (compressed per request) */
    static const char *const docs[] = {"/v1/losses", "/openapi.json"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(http_do(&p, "GET", docs[i], NULL, NULL, 0, &plain), 0);
        check_compressed(&p, "GET", docs[i], NULL, 0, &plain);
        http_resp_release(&plain);
    }
    http_decoding(&p, "/metrics", "gzip", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(http_header(&r, "Content-Encoding", buf, sizeof buf),
                     "gzip");
    ck_assert_ptr_nonnull(strstr(r.body, "# TYPE lossd_requests_total"));
    http_resp_release(&r);
    lossd_finish(&p);
}
END_TEST

/* ---- logs and help --------------------------------------------------------
 */

/* Stops p with SIGTERM; asserts exit 0 and a clean stderr, which is kept
   for the caller to read (unlink it after). */
static void stop_keep_log(struct lossd_proc *p)
{
    int st = lossd_stop(p, SIGTERM, 20);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit status %d", st);
    ck_assert(lossd_stderr_clean(p));
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t cap = 1 << 16, len = 0, n;
    char *s = malloc(cap);
    while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            s = realloc(s, cap *= 2);
    }
    fclose(f);
    s[len] = '\0';
    return s;
}

/* The line of text that contains needle, copied to buf; NULL if none. */
static const char *line_with(const char *text, const char *needle, char *buf,
                             size_t cap)
{
    const char *hit = strstr(text, needle);
    if (!hit)
        return NULL;
    const char *b = hit;
    while (b > text && b[-1] != '\n')
        b--;
    size_t n = strcspn(b, "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, b, n);
    buf[n] = '\0';
    return buf;
}

START_TEST(test_log_text)
{
    static const char *const args[] = {"--log-format", "text", NULL};
    struct lossd_proc p = start(args);
    struct http_resp r;
    static const char *const hs[] = {"Content-Type: application/json",
                                     "X-Request-Id: text-log-1", NULL};
    ck_assert_int_eq(
        http_do(&p, "POST", "/v1/mse", hs, MSE_BODY, strlen(MSE_BODY), &r), 0);
    expect_status(&r, 200, NULL);
    size_t out = r.len;
    http_resp_release(&r);
    static const char *const hs2[] = {"X-Request-Id: text-log-2", NULL};
    ck_assert_int_eq(http_do(&p, "GET", "/no%20such", hs2, NULL, 0, &r), 0);
    expect_status(&r, 404, "/problems/not-found");
    http_resp_release(&r);
    stop_keep_log(&p);

    char *log = slurp(p.stderr_path);
    char line[1024], want[256];
    ck_assert_msg(line_with(log, "request_id=text-log-1", line, sizeof line),
                  "no access line in:\n%s", log);
    /* 2026-01-02T03:04:05.678Z info access request_id=... */
    ck_assert_msg(strlen(line) > 25 && line[4] == '-' && line[10] == 'T' &&
                      line[19] == '.' && line[23] == 'Z' && line[24] == ' ',
                  "time: %s", line);
    snprintf(want, sizeof want,
             " info access request_id=text-log-1 method=POST path=/v1/mse "
             "status=200 bytes_in=%zu bytes_out=%zu duration=",
             strlen(MSE_BODY), out);
    ck_assert_msg(!strncmp(line + 24, want, strlen(want)), "%s", line);
    ck_assert_msg(strstr(line, " loss=mse"), "%s", line);
    ck_assert_msg(!strstr(line, "queue_wait="), "inline job: %s", line);
    /* a path is one token whatever the client sent */
    ck_assert_ptr_nonnull(
        line_with(log, "request_id=text-log-2", line, sizeof line));
    ck_assert_msg(strstr(line, " method=GET path=/no\\x20such status=404 "),
                  "%s", line);
    /* events too, and no JSON anywhere */
    ck_assert_ptr_nonnull(
        line_with(log, " info listening ", line, sizeof line));
    ck_assert_ptr_nonnull(line_with(log, " info stopped ", line, sizeof line));
    ck_assert_ptr_null(strchr(log, '{'));
    free(log);
    unlink(p.stderr_path);
}
END_TEST

/* Waits (generously) until p answers /readyz with 503: it is draining. */
static void wait_draining(const struct lossd_proc *p)
{
    double end = harness_now() + 60;
    struct http_resp r;
    do {
        ck_assert_int_eq(http_do(p, "GET", "/readyz", NULL, NULL, 0, &r), 0);
        long st = r.status;
        http_resp_release(&r);
        if (st == 503)
            return;
        usleep(10000);
    } while (harness_now() < end);
    ck_abort_msg("never drained");
}

/*
 * --log-level: warn drops the access log and the info events but keeps the
 * warning of a second signal; error drops that too. The second signal also
 * ends a long drain at once with exit code 1.
 */
START_TEST(test_log_level)
{
    static const char *const levels[] = {"warn", "error"};
    for (size_t i = 0; i < 2; i++) {
        const char *const args[] = {"--log-level", levels[i], "--drain-seconds",
                                    "600", NULL};
        struct lossd_proc p = start(args);
        struct http_resp r;
        ck_assert_int_eq(http_do(&p, "POST", "/v1/mse", json_ct, MSE_BODY,
                                 strlen(MSE_BODY), &r),
                         0);
        expect_status(&r, 200, NULL);
        http_resp_release(&r);
        ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
        wait_draining(&p);
        int st = lossd_stop(&p, SIGTERM, 20);
        ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
                      "exit status %d", st);
        ck_assert(lossd_stderr_clean(&p));
        char *log = slurp(p.stderr_path);
        ck_assert_msg(!strstr(log, "access") && !strstr(log, "listening") &&
                          !strstr(log, "draining"),
                      "level %s logged:\n%s", levels[i], log);
        bool warned =
            strstr(log, "\"level\":\"warn\"") && strstr(log, "second signal");
        ck_assert_msg(warned == (i == 0), "level %s:\n%s", levels[i], log);
        free(log);
        unlink(p.stderr_path);
    }
}
END_TEST

/* `lossd serve --help` names every flag with its variable and default. */
START_TEST(test_help)
{
    static const char *const flags[][2] = {
        {"host", "LOSSD_HOST"},
        {"port", "LOSSD_PORT"},
        {"threads", "LOSSD_THREADS"},
        {"workers", "LOSSD_WORKERS"},
        {"max-body-bytes", "LOSSD_MAX_BODY_BYTES"},
        {"max-elements", "LOSSD_MAX_ELEMENTS"},
        {"max-work", "LOSSD_MAX_WORK"},
        {"max-batch-items", "LOSSD_MAX_BATCH_ITEMS"},
        {"max-inflight-bytes", "LOSSD_MAX_INFLIGHT_BYTES"},
        {"queue-limit", "LOSSD_QUEUE_LIMIT"},
        {"inline-max-cost", "LOSSD_INLINE_MAX_COST"},
        {"drain-seconds", "LOSSD_DRAIN_SECONDS"},
        {"exit-timeout", "LOSSD_EXIT_TIMEOUT"},
        {"connection-timeout", "LOSSD_CONNECTION_TIMEOUT"},
        {"max-connections", "LOSSD_MAX_CONNECTIONS"},
        {"header-timeout", "LOSSD_HEADER_TIMEOUT"},
        {"body-timeout", "LOSSD_BODY_TIMEOUT"},
        {"body-min-rate", "LOSSD_BODY_MIN_RATE"},
        {"discard-timeout", "LOSSD_DISCARD_TIMEOUT"},
        {"discard-idle-timeout", "LOSSD_DISCARD_IDLE_TIMEOUT"},
        {"connection-memory", "LOSSD_CONNECTION_MEMORY"},
        {"cors-origins", "LOSSD_CORS_ORIGINS"},
        {"log-format", "LOSSD_LOG_FORMAT"},
        {"log-level", "LOSSD_LOG_LEVEL"},
        {"auth-token-file", "LOSSD_AUTH_TOKEN_FILE"},
        {"tls-cert", "LOSSD_TLS_CERT"},
        {"tls-key", "LOSSD_TLS_KEY"},
    };
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' serve --help", getenv("LOSSD_EXE"));
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    size_t count = 0;
    for (const char *l = text; (l = strstr(l, "\n  --")) != NULL; l++)
        count++;
    /* every flag plus --help */
    ck_assert_uint_eq(count, sizeof flags / sizeof flags[0] + 1);
    char want[128], line[512];
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        snprintf(want, sizeof want, "\n  --%s (%s), default ", flags[i][0],
                 flags[i][1]);
        ck_assert_msg(strstr(text, want), "missing: %s", want + 1);
        /* and a reason on the next line */
        const char *next = strchr(strstr(text, want) + 1, '\n');
        ck_assert_ptr_nonnull(line_with(next + 1, "", line, sizeof line));
        ck_assert_msg(!strncmp(line, "      ", 6) && strlen(line) > 20,
                      "--%s has no reason", flags[i][0]);
    }
    for (const char *l = text; *l;
         l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0))
        ck_assert_msg(strcspn(l, "\n") <= 80, "line over 80 columns: %.100s",
                      l);
    /* what the machine-dependent defaults are */
    ck_assert_ptr_nonnull(
        strstr(text, "default the CPUs available, at least 2"));
    ck_assert_ptr_nonnull(strstr(text,
                                 "--max-body-bytes (LOSSD_MAX_BODY_BYTES), "
                                 "default 64M (67108864)"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("serve");
    TCase *tc = tcase_create("routes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_get_routes);
    tcase_add_test(tc, test_post_loss);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_request_id);
    tcase_add_test(tc, test_too_large);
    tcase_add_test(tc, test_gzip);
    tcase_add_test(tc, test_cors);
    tcase_add_test(tc, test_metrics);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_compression);
    tcase_add_test(tc, test_compression_not_worth);
    tcase_add_test(tc, test_log_text);
    tcase_add_test(tc, test_log_level);
    tcase_add_test(tc, test_help);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return harness_run(suite());
}

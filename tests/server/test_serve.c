/*
 * test_serve.c - `lossd serve` end to end: routes, statuses, problem types,
 * bodies (413 with and without Expect, gzip, bombs), CORS and metrics.
 * Every test starts its own server on 127.0.0.1, port 0.
 */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    static const char *const nf[] = {"/v1/nope", "/nope",       "/v2/models",
                                     "/v2",      "/v1/healthz", "/batch",
                                     "/v1/mse/x"};
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
    ck_assert_int_eq(http_do(&p, "GET", "/metrics", NULL, NULL, 0, &r), 0);
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
    ck_assert(metric(r.body, "lossd_requests_in_flight") == 1);
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

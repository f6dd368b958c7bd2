/*
 * test_encode.c - proto/encode.c and proto/buf.c: number formatting, the
 * tensor formats, string escaping, the jansson writer, buffer growth and its
 * failure flag. Every output is read back (strtod, jansson, a base64 decoder
 * of the test's own) rather than only compared with text.
 */
#include <check.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "encode.h"
#include "testutil.h"

static unsigned long long test_seed(void)
{
    const char *env = getenv("LOSSD_TEST_SEED");

    if (env != NULL && env[0] != '\0')
        return strtoull(env, NULL, 0);
    return (unsigned long long)time(NULL);
}

static uint64_t bits_of(double v)
{
    uint64_t u;

    memcpy(&u, &v, sizeof(u));
    return u;
}

static double double_of(uint64_t u)
{
    double v;

    memcpy(&v, &u, sizeof(v));
    return v;
}

static uint64_t random_bits(struct test_rng *r)
{
    uint64_t hi = (uint64_t)(test_rng_uniform(r) * 4294967296.0);
    uint64_t lo = (uint64_t)(test_rng_uniform(r) * 4294967296.0);

    return hi << 32 | lo;
}

static const char *fmt(double v)
{
    static char out[PROTO_DOUBLE_MAX];
    size_t n = proto_format_double(v, out);

    ck_assert_uint_eq(n, strlen(out));
    return out;
}

/* The writer's text, NUL-terminated; the buffer must not have failed. */
static const char *text(struct proto_buf *b)
{
    ck_assert(proto_buf_ok(b));
    ck_assert_ptr_nonnull(b->data);
    ck_assert_uint_eq(strlen(b->data), b->len);
    return b->data;
}

static json_t *parse(struct proto_buf *b)
{
    json_error_t jerr;
    json_t *v =
        json_loadb(text(b), b->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

    ck_assert_msg(v != NULL, "invalid JSON (%s): %s", jerr.text, b->data);
    return v;
}

/* --- numbers ------------------------------------------------------------ */

START_TEST(test_format_short_forms)
{
    ck_assert_str_eq(fmt(0.1), "0.1");
    ck_assert_str_eq(fmt(1.0), "1.0");
    ck_assert_str_eq(fmt(0.0), "0.0");
    ck_assert_str_eq(fmt(-0.0), "-0.0");
    ck_assert_str_eq(fmt(-2.5), "-2.5");
    ck_assert_str_eq(fmt(100.0), "100.0");
    ck_assert_str_eq(fmt(1e300), "1e+300");
    ck_assert_str_eq(fmt(1e-300), "1e-300");
    ck_assert_str_eq(fmt(1e15), "1e+15");
    ck_assert_str_eq(fmt(123456789012345.0), "123456789012345.0");
    ck_assert_str_eq(fmt(9007199254740992.0), "9007199254740992.0");
    ck_assert_str_eq(fmt(0.1 + 0.2), "0.30000000000000004");
    ck_assert_str_eq(fmt(1.0 / 3.0), "0.3333333333333333");
    ck_assert_str_eq(fmt(NAN), "\"NaN\"");
    ck_assert_str_eq(fmt(-NAN), "\"NaN\"");
    ck_assert_str_eq(fmt(INFINITY), "\"Infinity\"");
    ck_assert_str_eq(fmt(-INFINITY), "\"-Infinity\"");
}
END_TEST

/* Bit-for-bit read-back of the extremes, denormals included. */
START_TEST(test_format_extremes)
{
    const double cases[] = {
        DBL_MAX,
        -DBL_MAX,
        DBL_MIN,
        -DBL_MIN,
        DBL_TRUE_MIN,
        -DBL_TRUE_MIN,
        DBL_EPSILON,
        1.0 + DBL_EPSILON,
        2.2250738585072009e-308,
        4.9406564584124654e-322,
        0x1.fffffffffffffp-1,
        0x1.0000000000001p+0,
        1e23,
        5e-324,
        1.7976931348623157e308,
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = fmt(cases[i]);

        ck_assert_msg(bits_of(strtod(s, NULL)) == bits_of(cases[i]),
                      "%a printed as %s", cases[i], s);
        ck_assert_uint_lt(strlen(s), PROTO_DOUBLE_MAX);
    }
    ck_assert_str_eq(fmt(5e-324), "4.94065645841247e-324");
}
END_TEST

/*
 * Random bit patterns over all finite doubles (every exponent, denormals,
 * both zeros) and random values of ordinary size. Each must read back bit
 * for bit, be a valid JSON number, and be the first of %.15g/%.16g/%.17g
 * that round-trips (so no longer than needed).
 */
START_TEST(test_format_random_round_trip)
{
    unsigned long long seed = test_seed();
    struct test_rng rng;
    size_t checked = 0;

    fprintf(stderr,
            "# test_format_random_round_trip seed %llu "
            "(replay with LOSSD_TEST_SEED)\n",
            seed);
    test_rng_seed(&rng, seed);
    for (size_t i = 0; i < 200000; i++) {
        double v =
            i % 2 == 0
                ? double_of(random_bits(&rng))
                : test_rng_normal(&rng) *
                      pow(10.0, floor(test_rng_uniform(&rng) * 40.0) - 20.0);
        char expect[PROTO_DOUBLE_MAX];
        const char *s;

        if (!isfinite(v))
            continue;
        s = fmt(v);
        ck_assert_msg(bits_of(strtod(s, NULL)) == bits_of(v),
                      "seed %llu: %a printed as %s", seed, v, s);
        for (int p = 15; p <= 17; p++) {
            snprintf(expect, sizeof(expect), "%.*g", p, v);
            if (bits_of(strtod(expect, NULL)) == bits_of(v))
                break;
        }
        ck_assert_msg(strncmp(s, expect, strlen(expect)) == 0,
                      "seed %llu: %a printed as %s, not %s", seed, v, s,
                      expect);
        if (i % 100 == 0) {
            json_error_t jerr;
            json_t *j = json_loads(s, JSON_DECODE_ANY, &jerr);

            ck_assert_msg(j != NULL && json_is_real(j), "%s: %s", s, jerr.text);
            ck_assert(bits_of(json_real_value(j)) == bits_of(v));
            json_decref(j);
        }
        checked++;
    }
    ck_assert_uint_gt(checked, 190000);
}
END_TEST

/*
 * The formatter as it was before Grisu3: the shortest of %.15g, %.16g, %.17g
 * that strtod() reads back, ".0" for integral values. proto_format_double()
 * must print exactly these bytes for every double; this copy, independent of
 * proto/encode.c, is what it is held to.
 */
static size_t reference_format(double v, char out[PROTO_DOUBLE_MAX])
{
    static const int precisions[] = {15, 16, 17};
    size_t n = 0;

    if (isnan(v)) {
        memcpy(out, "\"NaN\"", 6);
        return 5;
    }
    if (isinf(v)) {
        const char *s = v > 0 ? "\"Infinity\"" : "\"-Infinity\"";

        n = strlen(s);
        memcpy(out, s, n + 1);
        return n;
    }
    for (size_t i = 0; i < sizeof(precisions) / sizeof(precisions[0]); i++) {
        int len = snprintf(out, PROTO_DOUBLE_MAX, "%.*g", precisions[i], v);
        double r;

        n = (size_t)len;
        if (precisions[i] == 17)
            break;
        r = strtod(out, NULL);
        if (memcmp(&r, &v, sizeof(v)) == 0)
            break;
    }
    if (strpbrk(out, ".e") == NULL) {
        out[n++] = '.';
        out[n++] = '0';
        out[n] = '\0';
    }
    return n;
}

/* x must print as the reference prints it. */
static void check_one(double x, unsigned long long seed)
{
    char got[PROTO_DOUBLE_MAX], want[PROTO_DOUBLE_MAX];
    size_t n = proto_format_double(x, got);
    size_t m = reference_format(x, want);

    if (n != m || strcmp(got, want) != 0)
        ck_abort_msg("seed %llu: %a (%016llx) printed as %s, not %s", seed, x,
                     (unsigned long long)bits_of(x), got, want);
}

/* Both signs of v. */
static void check_same(double v, unsigned long long seed)
{
    check_one(v, seed);
    check_one(-v, seed);
}

/* v and the `count` doubles on either side of it. */
static void check_neighbourhood(double v, int count)
{
    double lo = v, hi = v;

    check_same(v, 0);
    for (int i = 0; i < count; i++) {
        lo = nextafter(lo, 0.0);
        hi = nextafter(hi, INFINITY);
        check_same(lo, 0);
        if (isfinite(hi))
            check_same(hi, 0);
    }
}

/*
 * The places where a shortest-digits printer and %.15g/%.16g/%.17g could
 * part: every power of two and ten with its neighbours (the asymmetric
 * interval, a boundary that is itself a short decimal, as for 1e23), the
 * extremes and subnormals, where fixed and exponent notation switch (1e15,
 * 1e16, 1e17, 1e-4, 1e-5), and the integers around 2^53.
 */
START_TEST(test_format_matches_reference_edges)
{
    static const double around[] = {DBL_MIN,
                                    DBL_MAX,
                                    DBL_TRUE_MIN,
                                    DBL_EPSILON,
                                    1.0,
                                    1e15,
                                    1e16,
                                    1e17,
                                    0.0001,
                                    0.00001,
                                    9007199254740992.0,
                                    1e23,
                                    5e-324,
                                    0.1,
                                    0.3,
                                    1e22,
                                    123456789012345.0,
                                    999999999999999.0,
                                    9999999999999998.0,
                                    2.2250738585072009e-308,
                                    1.7976931348623157e308};
    char buf[32];

    for (int i = -1074; i <= 1023; i++)
        check_neighbourhood(ldexp(1.0, i), 3);
    for (int i = -324; i <= 308; i++) {
        snprintf(buf, sizeof(buf), "1e%d", i);
        check_neighbourhood(strtod(buf, NULL), 3);
        snprintf(buf, sizeof(buf), "5e%d", i);
        check_neighbourhood(strtod(buf, NULL), 1);
    }
    for (size_t i = 0; i < sizeof(around) / sizeof(around[0]); i++)
        check_neighbourhood(around[i], 2000);
    for (uint64_t u = 0; u < 3000; u++) {
        check_same(double_of(u), 0); /* the smallest subnormals */
        check_same(double_of(0x0010000000000000u - u), 0);
        check_same(double_of(0x7fefffffffffffffu - u), 0);
    }
    check_same(0.0, 0);
    check_same(NAN, 0);
    check_same(INFINITY, 0);
}
END_TEST

/*
 * A decimal of 1 to 17 random digits and a random exponent, read by strtod:
 * the values clients send, whose shortest form is usually short.
 */
static double random_nice(struct test_rng *r)
{
    char s[48];
    size_t n = 1 + (size_t)(test_rng_uniform(r) * 17.0), o = 0;
    int exp = test_rng_uniform(r) < 0.8
                  ? (int)(test_rng_uniform(r) * 50.0) - 25
                  : (int)(test_rng_uniform(r) * 660.0) - 330;

    for (size_t i = 0; i < n; i++)
        s[o++] = (char)('0' + (int)(test_rng_uniform(r) * 10.0));
    snprintf(s + o, sizeof(s) - o, "e%d", exp);
    return strtod(s, NULL);
}

/*
 * proto_format_double() against the reference on random doubles: a third
 * uniform bit patterns over all finite doubles, a third short decimals, a
 * third normals times a power of ten. LOSSD_FORMAT_IDENTITY_N sets the count
 * (2M by default, a few seconds; the 50M+ run is done by hand).
 */
START_TEST(test_format_matches_reference_random)
{
    unsigned long long seed = test_seed();
    const char *env = getenv("LOSSD_FORMAT_IDENTITY_N");
    size_t count = env != NULL && env[0] != '\0'
                       ? (size_t)strtoull(env, NULL, 0)
                       : 2000000;
    struct test_rng rng;

    fprintf(stderr,
            "# test_format_matches_reference_random seed %llu, %zu values "
            "(replay with LOSSD_TEST_SEED)\n",
            seed, count);
    test_rng_seed(&rng, seed);
    for (size_t i = 0; i < count; i++) {
        double v;

        switch (i % 3) {
        case 0:
            v = double_of(random_bits(&rng));
            break;
        case 1:
            v = random_nice(&rng);
            break;
        default:
            v = test_rng_normal(&rng) *
                pow(10.0, floor(test_rng_uniform(&rng) * 40.0) - 20.0);
            break;
        }
        if (isfinite(v))
            check_one(test_rng_uniform(&rng) < 0.5 ? v : -v, seed);
    }
}
END_TEST

/* --- tensors ------------------------------------------------------------ */

static const char *tensor_text(struct proto_buf *b, const size_t *shape,
                               size_t ndim, const double *data,
                               enum proto_format f)
{
    proto_buf_reset(b);
    proto_write_tensor(b, shape, ndim, data, f);
    return text(b);
}

START_TEST(test_tensor_nested)
{
    struct proto_buf b;
    const double d[] = {1, 2.5, -0.0, NAN, INFINITY, -INFINITY};
    const size_t s23[] = {2, 3}, s6[] = {6}, s0[] = {0}, s20[] = {2, 0},
                 s02[] = {0, 2}, s1111[] = {1, 1, 1, 1}, s210[] = {2, 1, 0};

    proto_buf_init(&b);
    ck_assert_str_eq(tensor_text(&b, NULL, 0, d + 1, PROTO_FORMAT_NESTED),
                     "2.5");
    ck_assert_str_eq(tensor_text(&b, s6, 1, d, PROTO_FORMAT_NESTED),
                     "[1.0,2.5,-0.0,\"NaN\",\"Infinity\",\"-Infinity\"]");
    ck_assert_str_eq(tensor_text(&b, s23, 2, d, PROTO_FORMAT_NESTED),
                     "[[1.0,2.5,-0.0],[\"NaN\",\"Infinity\",\"-Infinity\"]]");
    ck_assert_str_eq(tensor_text(&b, s0, 1, NULL, PROTO_FORMAT_NESTED), "[]");
    ck_assert_str_eq(tensor_text(&b, s20, 2, NULL, PROTO_FORMAT_NESTED),
                     "[[],[]]");
    ck_assert_str_eq(tensor_text(&b, s02, 2, NULL, PROTO_FORMAT_NESTED), "[]");
    ck_assert_str_eq(tensor_text(&b, s210, 3, NULL, PROTO_FORMAT_NESTED),
                     "[[[]],[[]]]");
    ck_assert_str_eq(tensor_text(&b, s1111, 4, d, PROTO_FORMAT_NESTED),
                     "[[[[1.0]]]]");
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_tensor_nested_rank8)
{
    struct proto_buf b;
    size_t shape[8] = {2, 1, 2, 1, 2, 1, 2, 1};
    double d[16];
    json_t *j, *cur;

    for (size_t i = 0; i < 16; i++)
        d[i] = (double)i;
    proto_buf_init(&b);
    proto_write_tensor(&b, shape, 8, d, PROTO_FORMAT_NESTED);
    j = parse(&b);
    /* element [1][0][1][0][1][0][1][0] is the last, 15 */
    cur = j;
    for (size_t k = 0; k < 8; k++)
        cur = json_array_get(cur, shape[k] - 1);
    ck_assert(json_is_real(cur));
    ck_assert(json_real_value(cur) == 15.0);
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_tensor_flat)
{
    struct proto_buf b;
    const double d[] = {1, 0.1, -0.0, NAN};
    const size_t s22[] = {2, 2}, s20[] = {2, 0};

    proto_buf_init(&b);
    ck_assert_str_eq(tensor_text(&b, s22, 2, d, PROTO_FORMAT_FLAT),
                     "{\"shape\":[2,2],\"data\":[1.0,0.1,-0.0,\"NaN\"]}");
    ck_assert_str_eq(tensor_text(&b, NULL, 0, d + 1, PROTO_FORMAT_FLAT),
                     "{\"shape\":[],\"data\":[0.1]}");
    ck_assert_str_eq(tensor_text(&b, s20, 2, NULL, PROTO_FORMAT_FLAT),
                     "{\"shape\":[2,0],\"data\":[]}");
    proto_buf_release(&b);
}
END_TEST

static int b64_index(char c)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c != '\0' ? strchr(alphabet, c) : NULL;

    return p == NULL ? -1 : (int)(p - alphabet);
}

/* A strict decoder: padding only at the end, length a multiple of 4. */
static unsigned char *b64_decode(const char *s, size_t *ret_len)
{
    size_t n = strlen(s), out = 0;
    unsigned char *buf;

    ck_assert_uint_eq(n % 4, 0);
    buf = malloc(n / 4 * 3 + 1);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        size_t pad = 0;

        for (size_t k = 0; k < 4; k++) {
            if (s[i + k] == '=') {
                ck_assert_uint_eq(i + 4, n);
                v[k] = 0;
                pad++;
            } else {
                ck_assert_uint_eq(pad, 0);
                v[k] = b64_index(s[i + k]);
                ck_assert_int_ge(v[k], 0);
            }
        }
        ck_assert_uint_le(pad, 2);
        unsigned w = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        buf[out++] = (unsigned char)(w >> 16);
        if (pad < 2)
            buf[out++] = (unsigned char)(w >> 8);
        if (pad < 1)
            buf[out++] = (unsigned char)w;
    }
    *ret_len = out;
    return buf;
}

START_TEST(test_tensor_base64)
{
    struct proto_buf b;
    const size_t s1[] = {1};
    const double one = 1.0;
    struct test_rng rng;
    double d[2000];

    proto_buf_init(&b);
    /* 1.0 is 00 00 00 00 00 00 f0 3f in little-endian order. */
    ck_assert_str_eq(tensor_text(&b, s1, 1, &one, PROTO_FORMAT_BASE64),
                     "{\"shape\":[1],\"dtype\":\"float64\",\"base64\":"
                     "\"AAAAAAAA8D8=\"}");
    test_rng_seed(&rng, 7);
    for (size_t i = 0; i < 2000; i++)
        d[i] = i % 97 == 3 ? NAN : i % 89 == 5 ? -0.0 : test_rng_normal(&rng);
    /* every padding case (8n mod 3 is 2, 1, 0) and a multi-chunk text */
    for (size_t n = 0; n <= 2000; n = n < 10 ? n + 1 : n * 3) {
        size_t shape[2] = {n, 1}, len;
        json_t *j;
        unsigned char *raw;

        proto_buf_reset(&b);
        proto_write_tensor(&b, shape, 2, d, PROTO_FORMAT_BASE64);
        j = parse(&b);
        ck_assert_str_eq(json_string_value(json_object_get(j, "dtype")),
                         "float64");
        ck_assert_int_eq(
            json_integer_value(json_array_get(json_object_get(j, "shape"), 0)),
            (json_int_t)n);
        raw = b64_decode(json_string_value(json_object_get(j, "base64")), &len);
        ck_assert_uint_eq(len, 8 * n);
        for (size_t i = 0; i < n; i++) {
            uint64_t u = 0;

            for (unsigned k = 0; k < 8; k++)
                u |= (uint64_t)raw[8 * i + k] << (8 * k);
            ck_assert_msg(u == bits_of(d[i]), "element %zu of %zu", i, n);
        }
        free(raw);
        json_decref(j);
    }
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_tensor_large_reads_back)
{
    struct proto_buf b;
    struct test_rng rng;
    size_t shape[2] = {300, 70};
    double *d = malloc(300 * 70 * sizeof(double));
    json_t *j;
    size_t k = 0;

    ck_assert_ptr_nonnull(d);
    test_rng_seed(&rng, 11);
    for (size_t i = 0; i < 300 * 70; i++)
        d[i] = test_rng_normal(&rng) * 1e5;
    proto_buf_init(&b);
    proto_write_tensor(&b, shape, 2, d, PROTO_FORMAT_NESTED);
    j = parse(&b);
    ck_assert_uint_eq(json_array_size(j), 300);
    for (size_t r = 0; r < 300; r++) {
        json_t *row = json_array_get(j, r);

        ck_assert_uint_eq(json_array_size(row), 70);
        for (size_t c = 0; c < 70; c++, k++)
            ck_assert(bits_of(json_real_value(json_array_get(row, c))) ==
                      bits_of(d[k]));
    }
    json_decref(j);
    proto_buf_release(&b);
    free(d);
}
END_TEST

START_TEST(test_shape)
{
    struct proto_buf b;
    const size_t s[] = {2, 0, 12345678901ULL};

    proto_buf_init(&b);
    proto_write_shape(&b, s, 3);
    ck_assert_str_eq(text(&b), "[2,0,12345678901]");
    proto_buf_reset(&b);
    proto_write_shape(&b, s, 0);
    ck_assert_str_eq(text(&b), "[]");
    proto_buf_release(&b);
}
END_TEST

/* --- strings and jansson values ------------------------------------------ */

START_TEST(test_string_escapes)
{
    struct proto_buf b;
    const char raw[] = "a\"b\\c\n\t\x01/\xc3\xa9\0z";
    json_t *j;

    proto_buf_init(&b);
    proto_write_string(&b, raw, sizeof(raw) - 1);
    ck_assert_ptr_null(strchr(text(&b), '\n'));
    j = parse(&b);
    ck_assert_uint_eq(json_string_length(j), sizeof(raw) - 1);
    ck_assert_mem_eq(json_string_value(j), raw, sizeof(raw) - 1);
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

/*
 * Strings that need no escaping skip jansson; every string must still come
 * out exactly as jansson writes it: each byte 0x01-0x7f alone and inside
 * text, and a few longer ones.
 */
START_TEST(test_string_same_as_jansson)
{
    struct proto_buf b;
    const char *longer[] = {"",
                            "mse",
                            "reduction",
                            "/v1/cross_entropy",
                            "a b ~ / { } [ ] : , ' `",
                            "x\"y",
                            "tab\there",
                            "caf\xc3\xa9",
                            "\x7f",
                            "end\\"};
    char s[8];

    proto_buf_init(&b);
    for (int c = 1; c < 0x80; c++) {
        for (int k = 0; k < 2; k++) {
            size_t len = k == 0 ? 1 : 3;
            json_t *j;
            char *want;

            if (k == 0) {
                s[0] = (char)c;
            } else {
                s[0] = 'a';
                s[1] = (char)c;
                s[2] = 'z';
            }
            j = json_stringn(s, len);
            ck_assert_ptr_nonnull(j);
            want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
            proto_buf_reset(&b);
            proto_write_string(&b, s, len);
            ck_assert_msg(strcmp(text(&b), want) == 0,
                          "byte 0x%02x: %s, want %s", c, text(&b), want);
            free(want);
            json_decref(j);
        }
    }
    for (size_t i = 0; i < sizeof(longer) / sizeof(longer[0]); i++) {
        json_t *j = json_string(longer[i]);
        char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);

        proto_buf_reset(&b);
        proto_write_string(&b, longer[i], strlen(longer[i]));
        ck_assert_str_eq(text(&b), want);
        free(want);
        json_decref(j);
    }
    proto_buf_release(&b);
}
END_TEST

/* A detail cut inside a character still makes valid JSON. */
START_TEST(test_string_invalid_utf8_repaired)
{
    struct proto_buf b;
    const char *cases[] = {"ab\xc3", "\xff x", "\xed\xa0\x80", "\xc0\xaf",
                           "ok \xe2\x82"};

    proto_buf_init(&b);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j;

        proto_buf_reset(&b);
        proto_write_string(&b, cases[i], strlen(cases[i]));
        j = parse(&b);
        ck_assert(json_is_string(j));
        ck_assert_ptr_nonnull(strstr(json_string_value(j), "\xEF\xBF\xBD"));
        json_decref(j);
    }
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_write_json)
{
    struct proto_buf b;
    json_t *v = json_pack("{s:f, s:f, s:I, s:[b, n, s], s:{}}", "x", 0.1, "y",
                          1.0, "n", (json_int_t)-100, "a", 1, "q\"", "o");

    ck_assert_ptr_nonnull(v);
    proto_buf_init(&b);
    proto_write_json(&b, v);
    ck_assert_str_eq(text(&b), "{\"x\":0.1,\"y\":1.0,\"n\":-100,"
                               "\"a\":[true,null,\"q\\\"\"],\"o\":{}}");
    json_decref(v);
    proto_write_json(&b, NULL);
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
}
END_TEST

/* --- the buffer --------------------------------------------------------- */

START_TEST(test_buf_growth)
{
    struct proto_buf b;
    size_t len;
    char *s;

    proto_buf_init(&b);
    ck_assert(proto_buf_ok(&b));
    for (size_t i = 0; i < 100000; i++)
        proto_buf_append(&b, "0123456789", i % 11);
    ck_assert_uint_eq(b.len,
                      100000 / 11 * 55 + (100000 % 11) * (100000 % 11 - 1) / 2);
    ck_assert_uint_eq(strlen(b.data), b.len);
    ck_assert_uint_lt(b.len, b.cap);
    proto_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    /* printf longer than what is left, and exactly filling it */
    for (int i = 0; i < 50; i++)
        proto_buf_printf(&b, "%0*d|", i * 20, i);
    ck_assert_uint_eq(strlen(text(&b)), b.len);
    ck_assert_int_eq(b.data[b.len - 1], '|');
    s = proto_buf_steal(&b, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(strlen(s), len);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_null(b.data);
    free(s);
    /* an empty buffer steals as "" */
    s = proto_buf_steal(&b, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "");
    ck_assert_uint_eq(len, 0);
    free(s);
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_buf_printf_boundaries)
{
    struct proto_buf b;
    char expect[1024];

    /* every room left from 0 to 300 bytes against a 40-byte format */
    for (size_t pre = 0; pre < 300; pre++) {
        proto_buf_init(&b);
        for (size_t i = 0; i < pre; i++)
            proto_buf_append(&b, "x", 1);
        proto_buf_printf(&b, "%s-%d", "0123456789012345678901234567890123456",
                         42);
        memset(expect, 'x', pre);
        snprintf(expect + pre, sizeof(expect) - pre, "%s-%d",
                 "0123456789012345678901234567890123456", 42);
        ck_assert_str_eq(text(&b), expect);
        proto_buf_release(&b);
    }
}
END_TEST

START_TEST(test_buf_max_fails_once)
{
    struct proto_buf b;
    const size_t shape[] = {100};
    double d[100] = {0};
    size_t len = 12345;

    proto_buf_init(&b);
    b.max = 64;
    proto_buf_append(&b, "0123456789", 10);
    ck_assert(proto_buf_ok(&b));
    proto_write_tensor(&b, shape, 1, d, PROTO_FORMAT_NESTED);
    ck_assert(!proto_buf_ok(&b));
    ck_assert_uint_le(b.len, 64);
    /* later appends are ignored, not half-written */
    len = b.len;
    proto_buf_puts(&b, "x");
    proto_buf_printf(&b, "%d", 1);
    ck_assert_uint_eq(b.len, len);
    ck_assert(!proto_buf_reserve(&b, 1));
    ck_assert_ptr_null(proto_buf_steal(&b, &len));
    ck_assert_ptr_null(b.data);
    /* reset makes the buffer usable again; exactly max bytes fit */
    proto_buf_reset(&b);
    ck_assert(proto_buf_ok(&b));
    for (int i = 0; i < 64; i++)
        proto_buf_append(&b, "y", 1);
    ck_assert(proto_buf_ok(&b));
    ck_assert_uint_eq(b.len, 64);
    proto_buf_printf(&b, "%s", "");
    ck_assert(proto_buf_ok(&b));
    proto_buf_printf(&b, "%d", 7);
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_buf_overflowing_reserve)
{
    struct proto_buf b;

    proto_buf_init(&b);
    proto_buf_append(&b, "abc", 3);
    ck_assert(!proto_buf_reserve(&b, SIZE_MAX - 1));
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
    /* the NUL's byte overflowing, and a limit refused before realloc */
    proto_buf_init(&b);
    ck_assert(!proto_buf_reserve(&b, SIZE_MAX));
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
    proto_buf_init(&b);
    b.max = 1000;
    ck_assert(proto_buf_reserve(&b, 1000));
    ck_assert(!proto_buf_reserve(&b, SIZE_MAX / 2));
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
}
END_TEST

/* A shape whose product overflows is refused, never written. */
START_TEST(test_tensor_overflowing_shape)
{
    struct proto_buf b;
    const size_t shape[] = {SIZE_MAX / 2, 4};

    proto_buf_init(&b);
    proto_write_tensor(&b, shape, 2, NULL, PROTO_FORMAT_FLAT);
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
}
END_TEST

static Suite *encode_suite(void)
{
    Suite *s = suite_create("proto_encode");
    TCase *num = tcase_create("numbers");
    TCase *ten = tcase_create("tensors");
    TCase *str = tcase_create("strings");
    TCase *buf = tcase_create("buf");

    tcase_add_test(num, test_format_short_forms);
    tcase_add_test(num, test_format_extremes);
    tcase_add_test(num, test_format_random_round_trip);
    tcase_add_test(num, test_format_matches_reference_edges);
    tcase_add_test(num, test_format_matches_reference_random);
    tcase_add_test(ten, test_tensor_nested);
    tcase_add_test(ten, test_tensor_nested_rank8);
    tcase_add_test(ten, test_tensor_flat);
    tcase_add_test(ten, test_tensor_base64);
    tcase_add_test(ten, test_tensor_large_reads_back);
    tcase_add_test(ten, test_shape);
    tcase_add_test(ten, test_tensor_overflowing_shape);
    tcase_add_test(str, test_string_escapes);
    tcase_add_test(str, test_string_same_as_jansson);
    tcase_add_test(str, test_string_invalid_utf8_repaired);
    tcase_add_test(str, test_write_json);
    tcase_add_test(buf, test_buf_growth);
    tcase_add_test(buf, test_buf_printf_boundaries);
    tcase_add_test(buf, test_buf_max_fails_once);
    tcase_add_test(buf, test_buf_overflowing_reserve);
    suite_add_tcase(s, num);
    suite_add_tcase(s, ten);
    suite_add_tcase(s, str);
    suite_add_tcase(s, buf);
    return s;
}

int main(void)
{
    return test_run(encode_suite());
}

/*
 * test_encode.c - proto/encode.c: the tensor formats, string escaping and
 * the jansson writer (numbers as such are test_number.c's, the buffer
 * test_buf.c's). Every output is read back (strtod, jansson, a base64
 * decoder of the test's own) rather than only compared with text.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "testutil.h"

static uint64_t bits_of(double v)
{
    uint64_t u;

    memcpy(&u, &v, sizeof(u));
    return u;
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

/*
 * The text a JSON string of s[0..n) must decode to, worked out here
 * independently of encode.c: well-formed UTF-8 (RFC 3629, table 3-7)
 * kept, each other byte U+FFFD. out has room for 3 * n bytes.
 */
static size_t ref_seq(const unsigned char *s, size_t n)
{
    unsigned long cp;
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = s[0] & 0x1Fu;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0Fu;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static size_t ref_decoded(const char *s, size_t n, char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;

    for (size_t i = 0; i < n;) {
        size_t len = ref_seq(u + i, n - i);

        if (len == 0) {
            memcpy(out + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        } else {
            memcpy(out + k, s + i, len);
            k += len;
            i += len;
        }
    }
    return k;
}

/* Checks that text[0..len) is one JSON string decoding to what s[0..n)
   should, and, when s is valid UTF-8, that it is what jansson writes. */
static void check_string_text(const char *text_, size_t len, const char *s,
                              size_t n)
{
    json_error_t jerr;
    json_t *v = json_loadb(text_, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    char *want = malloc(3 * n + 1);
    size_t wn;
    json_t *j;

    ck_assert_ptr_nonnull(want);
    ck_assert_msg(v != NULL && json_is_string(v), "invalid JSON (%s): %.*s",
                  jerr.text, (int)len, text_);
    for (size_t i = 0; i < len; i++) /* one line, no raw controls */
        ck_assert_uint_ge((unsigned char)text_[i], 0x20);
    wn = ref_decoded(s, n, want);
    ck_assert_uint_eq(json_string_length(v), wn);
    ck_assert(memcmp(json_string_value(v), want, wn) == 0);
    j = json_stringn(s, n);
    if (j != NULL) { /* valid UTF-8: jansson's own text, byte for byte */
        char *dump = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);

        ck_assert_ptr_nonnull(dump);
        ck_assert_uint_eq(strlen(dump), len);
        ck_assert(memcmp(dump, text_, len) == 0);
        free(dump);
        json_decref(j);
    }
    json_decref(v);
    free(want);
}

static void check_string(struct proto_buf *b, const char *s, size_t n)
{
    proto_buf_reset(b);
    proto_write_string(b, s, n);
    ck_assert(proto_buf_ok(b));
    check_string_text(b->data, b->len, s, n);
}

/*
 * Every byte value 0-255, alone, between ASCII letters, after a lead byte
 * and after a whole character: valid UTF-8 unchanged (and as jansson
 * writes it), NUL as \u0000, every other byte U+FFFD, always one valid
 * JSON string.
 */
START_TEST(test_string_all_bytes)
{
    struct proto_buf b;
    char s[8];

    proto_buf_init(&b);
    for (int c = 0; c < 256; c++) {
        s[0] = (char)c;
        check_string(&b, s, 1);
        memcpy(s, "a?z", 3);
        s[1] = (char)c;
        check_string(&b, s, 3);
        memcpy(s, "\xC3?\xE2\x82?", 5); /* a lead byte, then c; and a cut € */
        s[1] = (char)c;
        s[4] = (char)c;
        check_string(&b, s, 5);
        memcpy(s, "\xF0\x9F\x98\x80?", 5); /* U+1F600, then c */
        s[4] = (char)c;
        check_string(&b, s, 5);
    }
    /* all 256 in one string, in order and reversed */
    {
        char all[512];

        for (int c = 0; c < 256; c++) {
            all[c] = (char)c;
            all[511 - c] = (char)c;
        }
        check_string(&b, all, sizeof all);
    }
    proto_buf_release(&b);
}
END_TEST

/* n random bytes into s: raw bytes, or (utf8) random code points of every
   length, controls and quotes included. Returns the length. */
static size_t random_string(struct test_rng *rng, char *s, size_t n, bool utf8)
{
    size_t k = 0;

    while (k + 4 <= n) {
        unsigned long cp;
        double r = test_rng_uniform(rng);

        if (!utf8) {
            s[k++] = (char)(unsigned)(test_rng_uniform(rng) * 256);
            continue;
        }
        cp = r < 0.5   ? (unsigned long)(test_rng_uniform(rng) * 0x80)
             : r < 0.7 ? 0x80 + (unsigned long)(test_rng_uniform(rng) * 0x780)
             : r < 0.9
                 ? 0x800 + (unsigned long)(test_rng_uniform(rng) * 0xF800)
                 : 0x10000 + (unsigned long)(test_rng_uniform(rng) * 0x100000);
        if (cp >= 0xD800 && cp <= 0xDFFF)
            cp = 0xFFFD;
        if (cp < 0x80) {
            s[k++] = (char)cp;
        } else if (cp < 0x800) {
            s[k++] = (char)(0xC0 | cp >> 6);
            s[k++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            s[k++] = (char)(0xE0 | cp >> 12);
            s[k++] = (char)(0x80 | (cp >> 6 & 0x3F));
            s[k++] = (char)(0x80 | (cp & 0x3F));
        } else {
            s[k++] = (char)(0xF0 | cp >> 18);
            s[k++] = (char)(0x80 | (cp >> 12 & 0x3F));
            s[k++] = (char)(0x80 | (cp >> 6 & 0x3F));
            s[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return k;
}

/* Seeded random strings, raw bytes and valid UTF-8, short and long (64 KiB):
   as check_string() wants. */
START_TEST(test_string_random)
{
    struct proto_buf b;
    struct test_rng rng;
    static char s[1 << 16];

    proto_buf_init(&b);
    test_rng_seed(&rng, 20261203);
    for (int i = 0; i < 1000; i++) {
        size_t cap = 4 + (size_t)(test_rng_uniform(&rng) * 200);

        check_string(&b, s, random_string(&rng, s, cap, i % 2 == 0));
    }
    check_string(&b, s, random_string(&rng, s, sizeof s, false));
    check_string(&b, s, random_string(&rng, s, sizeof s, true));
    proto_buf_release(&b);
}
END_TEST

/*
 * The bounded writer: for strings of every kind and every room from too
 * small to more than enough, never more than the room; the whole string
 * when it fits (the same text as proto_write_string()), else one valid
 * JSON string ending in the marker whose text before the marker is a
 * prefix of the whole string's (never cut inside an escape or a
 * character), and at most one character's text (6 bytes) shorter than
 * the room allows.
 */
static void check_bounded(struct proto_buf *b, const char *s, size_t n,
                          size_t cap)
{
    static char out[1 << 16];
    const size_t cut = sizeof(PROTO_STRING_CUT) - 1;
    size_t len;

    ck_assert_uint_le(cap, sizeof out);
    proto_buf_reset(b);
    proto_write_string(b, s, n);
    memset(out, 'X', cap + 1);
    len = proto_write_string_bounded(out, cap, s, n);
    ck_assert_int_eq(out[cap], 'X'); /* nothing past the room */
    if (cap < PROTO_STRING_MIN) {
        ck_assert_uint_eq(len, 0);
        return;
    }
    ck_assert_uint_le(len, cap);
    if (b->len <= cap) {
        ck_assert_uint_eq(len, b->len);
        ck_assert(memcmp(out, b->data, len) == 0);
        return;
    }
    ck_assert_uint_ge(len, cut + 2);
    ck_assert(memcmp(out + len - 1 - cut, PROTO_STRING_CUT "\"", cut + 1) == 0);
    ck_assert(memcmp(out, b->data, len - 1 - cut) == 0);
    ck_assert_uint_ge(len + 6, cap);
    {
        json_error_t jerr;
        json_t *v =
            json_loadb(out, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

        ck_assert_msg(v != NULL && json_is_string(v), "invalid (%s): %.*s",
                      jerr.text, (int)len, out);
        json_decref(v);
    }
}

START_TEST(test_string_bounded)
{
    struct proto_buf b;
    struct test_rng rng;
    static const char *const fixed[] = {
        "",
        "mse",
        "/v1/cross_entropy",
        "\x01\x02\x03\x04\x05\x06\x07\x08",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xff\xfe",
        "\"\\\"\\",
        "a/very/long/path/that/is/longer/than/the/marker/itself/by/far"};
    char s[300];

    proto_buf_init(&b);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        for (size_t cap = 0; cap < 4 * strlen(fixed[i]) + 40; cap++)
            check_bounded(&b, fixed[i], strlen(fixed[i]), cap);
    test_rng_seed(&rng, 424242);
    for (int i = 0; i < 120; i++) {
        size_t n = random_string(&rng, s, 4 + (size_t)i * 2, i % 3);

        /* every room near the whole text's length, a sample below */
        for (size_t cap = 0; cap < 6 * n + 8; cap += cap < 40 ? 1 : 7)
            check_bounded(&b, s, n, cap);
    }
    /* a megabyte cut to 4 KiB */
    {
        static char big[1 << 20];
        size_t n = random_string(&rng, big, sizeof big, true);

        check_bounded(&b, big, n, 4096);
        memset(big, 1, sizeof big);
        check_bounded(&b, big, sizeof big, 4096);
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
    TCase *ten = tcase_create("tensors");
    TCase *str = tcase_create("strings");

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
    tcase_add_test(str, test_string_all_bytes);
    tcase_add_test(str, test_string_random);
    tcase_add_test(str, test_string_bounded);
    tcase_add_test(str, test_write_json);
    suite_add_tcase(s, ten);
    suite_add_tcase(s, str);
    return s;
}

int main(void)
{
    return test_run(encode_suite());
}

/*
 * test_base64.c - proto/base64.c: the test vectors of RFC 4648 section 10
 * both ways, every byte value in every position, padding and lengths the
 * reader must refuse, and round trips of random bytes, whole and in
 * chunks.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "testutil.h"

/* RFC 4648, section 10. */
static const struct {
    const char *raw, *text;
} vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decodes NUL-terminated text expecting want bytes. */
static bool decode(const char *text, unsigned char *out, size_t want)
{
    return proto_base64_decode(text, strlen(text), out, want);
}

START_TEST(test_rfc4648_encode)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const char *raw = vectors[i].raw;
        size_t n = strlen(raw);
        char out[16];
        size_t len;

        memset(out, '#', sizeof(out));
        len = proto_base64_encode((const unsigned char *)raw, n, out);
        ck_assert_uint_eq(len, strlen(vectors[i].text));
        ck_assert_uint_eq(len, proto_base64_len(n));
        ck_assert_mem_eq(out, vectors[i].text, len);
        ck_assert_int_eq(out[len], '#'); /* no NUL, nothing past the end */
    }
}
END_TEST

START_TEST(test_rfc4648_decode)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        size_t n = strlen(vectors[i].raw);
        unsigned char out[16];

        memset(out, '#', sizeof(out));
        ck_assert_msg(decode(vectors[i].text, out, n), "%s", vectors[i].text);
        ck_assert_mem_eq(out, vectors[i].raw, n);
        ck_assert_int_eq(out[n], '#'); /* exactly want bytes written */
        /* any other length is refused */
        ck_assert(!decode(vectors[i].text, out, n + 1));
        if (n > 0)
            ck_assert(!decode(vectors[i].text, out, n - 1));
    }
}
END_TEST

/* What the decoder of request tensors must refuse. */
START_TEST(test_decode_refuses)
{
    static const struct {
        const char *text;
        size_t len; /* bytes of text; 0: strlen */
        size_t want;
    } bad[] = {
        {"Zg", 0, 1},             /* unpadded */
        {"Zm9", 0, 2},            /* unpadded */
        {"Zm9vY", 0, 3},          /* not a multiple of 4 */
        {"Zg=", 0, 1},            /* short padding */
        {"Zg===", 0, 1},          /* long padding */
        {"Z===", 0, 1},           /* three '=' */
        {"====", 0, 1},           /* only padding */
        {"Zm=v", 0, 2},           /* '=' inside a group */
        {"Zm=v", 0, 3},           /* '=' inside a group */
        {"Zg==Zg==", 0, 4},       /* padding in the middle */
        {"Zg==Zm9v", 0, 6},       /* padding in the middle */
        {"Zm9v!A==", 0, 4},       /* not in the alphabet */
        {"Zm 9", 0, 3},           /* white space */
        {"Zm9v\nZm9v", 0, 6},     /* a line break */
        {"-_-_", 0, 3},           /* the URL-safe alphabet */
        {"Zm\0v", 4, 3},          /* NUL */
        {"Zm9v\xc3\xa9==", 0, 4}, /* non-ASCII */
        {"\xff\xff\xff\xff", 0, 3},
    };
    unsigned char out[16];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);

        ck_assert_msg(!proto_base64_decode(bad[i].text, len, out, bad[i].want),
                      "case %zu accepted", i);
    }
}
END_TEST

/*
 * Every byte value in each of the four places of a group: accepted exactly
 * when it is in the alphabet (or '=' where padding may be), with its value.
 */
START_TEST(test_decode_every_byte)
{
    for (int c = 0; c < 256; c++) {
        const char *in_alphabet = c != 0 ? strchr(alphabet, c) : NULL;

        for (int pos = 0; pos < 4; pos++) {
            char text[5] = "AAAA";
            unsigned char out[3];
            bool ok;

            text[pos] = (char)c;
            ok = proto_base64_decode(text, 4, out, 3);
            ck_assert_msg(ok == (in_alphabet != NULL), "byte 0x%02x at %d", c,
                          pos);
            if (ok) {
                unsigned v = (unsigned)(in_alphabet - alphabet);
                unsigned q = v << (6 * (3 - pos));

                ck_assert_uint_eq(out[0], (q >> 16) & 0xff);
                ck_assert_uint_eq(out[1], (q >> 8) & 0xff);
                ck_assert_uint_eq(out[2], q & 0xff);
            }
        }
    }
}
END_TEST

/*
 * The unused low bits of the last character before the padding are not
 * checked (RFC 4648 3.5 lets a decoder refuse such text; this one has never
 * done so, and clients may rely on it).
 */
START_TEST(test_decode_pad_bits_ignored)
{
    unsigned char out[2];

    ck_assert(decode("Zh==", out, 1));
    ck_assert_uint_eq(out[0], 'f');
    ck_assert(decode("Zm9=", out, 2));
    ck_assert_mem_eq(out, "fo", 2);
}
END_TEST

/*
 * Random bytes of every length up to 300 go through and back; text made
 * from chunks of a multiple of 3 bytes is the text of the whole.
 */
START_TEST(test_round_trip)
{
    struct test_rng rng;
    unsigned char raw[300], back[300];
    char whole[400], pieces[400];

    test_rng_seed(&rng, 4648);
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(test_rng_uniform(&rng) * 256.0);
    for (size_t n = 0; n <= sizeof(raw); n++) {
        size_t len = proto_base64_encode(raw, n, whole), at = 0;

        ck_assert_uint_eq(len, proto_base64_len(n));
        for (size_t i = 0; i < len; i++)
            ck_assert(strchr(alphabet, whole[i]) != NULL || whole[i] == '=');
        ck_assert(proto_base64_decode(whole, len, back, n));
        ck_assert_mem_eq(back, raw, n);
        for (size_t i = 0; i < n; i += 3 * 7) {
            size_t k = n - i < 3 * 7 ? n - i : 3 * 7;

            at += proto_base64_encode(raw + i, k, pieces + at);
        }
        ck_assert_uint_eq(at, len);
        ck_assert_mem_eq(pieces, whole, len);
    }
}
END_TEST

static Suite *base64_suite(void)
{
    Suite *s = suite_create("proto_base64");
    TCase *tc = tcase_create("base64");

    tcase_add_test(tc, test_rfc4648_encode);
    tcase_add_test(tc, test_rfc4648_decode);
    tcase_add_test(tc, test_decode_refuses);
    tcase_add_test(tc, test_decode_every_byte);
    tcase_add_test(tc, test_decode_pad_bits_ignored);
    tcase_add_test(tc, test_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(base64_suite());
}

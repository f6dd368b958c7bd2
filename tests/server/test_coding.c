/*
 * test_coding.c - server/coding.c without a socket: which coding an
 * Accept-Encoding value selects, the coding of a request body, compressed
 * responses checked by zlib's own inflate, which large responses are worth
 * compressing, and the streaming inflater fed
 * in every split of its input, past its bound, corrupt, and with data after
 * its end.
 *
 * Every random input comes from a logged seed (test_rng), so a failure can
 * be replayed.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "coding.h"
#include "testutil.h"

/* The inflater hands its output to the sink in pieces of at most this. */
#define PIECE_MAX 16384

/* --- helpers ------------------------------------------------------------ */

/* A growable byte string; tests abort on allocation failure. */
struct bytes {
    char *p;
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            ck_abort_msg("out of memory");
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/*
 * Text shaped like a response body (JSON numbers), len bytes: compressible
 * about as much as real responses, and not periodic, so a mistake in the
 * position of a piece shows up as a mismatch.
 */
static char *json_like(size_t len, unsigned long long seed)
{
    struct test_rng rng;
    char *s = malloc(len + 32);
    size_t n = 0;

    ck_assert_ptr_nonnull(s);
    test_rng_seed(&rng, seed);
    while (n < len)
        n += (size_t)snprintf(s + n, 32, "%.6f,", test_rng_normal(&rng));
    return s;
}

/* len bytes no coding can shrink. */
static char *random_bytes(size_t len, unsigned long long seed)
{
    struct test_rng rng;
    char *s = malloc(len ? len : 1);

    ck_assert_ptr_nonnull(s);
    test_rng_seed(&rng, seed);
    for (size_t i = 0; i < len; i++)
        s[i] = (char)(unsigned char)(test_rng_uniform(&rng) * 256.0);
    return s;
}

/*
 * Base64 of float64 values drawn from a normal distribution, len
 * characters: what a response with "output_format": "base64" is made of.
 * deflate shrinks it by only about a quarter (the sign and exponent bytes
 * repeat; the mantissas do not).
 */
static char *base64_doubles(size_t len, unsigned long long seed)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct test_rng rng;
    unsigned char raw[24]; /* three doubles: 32 characters */
    char *s = malloc(len + 32);
    size_t n = 0;

    ck_assert_ptr_nonnull(s);
    test_rng_seed(&rng, seed);
    while (n < len) {
        for (int i = 0; i < 3; i++) {
            double v = test_rng_normal(&rng);
            memcpy(raw + 8 * i, &v, 8);
        }
        for (int i = 0; i < 24; i += 3) {
            unsigned w =
                (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
            for (int k = 3; k >= 0; k--)
                s[n++] = abc[(w >> (6 * k)) & 63];
        }
    }
    return s;
}

/*
 * data compressed by zlib directly (the reference): wbits 15 for the zlib
 * format, 15 + 16 for gzip; level as given.
 */
static void zcompress(const char *data, size_t len, int wbits, int level,
                      struct bytes *out)
{
    z_stream z;
    char buf[16384];
    int zr;

    memset(&z, 0, sizeof z);
    ck_assert_int_eq(
        deflateInit2(&z, level, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY),
        Z_OK);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    do {
        z.next_out = (Bytef *)buf;
        z.avail_out = sizeof buf;
        zr = deflate(&z, Z_FINISH);
        ck_assert(zr == Z_OK || zr == Z_STREAM_END);
        bytes_add(out, buf, sizeof buf - z.avail_out);
    } while (zr != Z_STREAM_END);
    deflateEnd(&z);
}

/*
 * data inflated by zlib directly with wbits (15: zlib only, 15 + 16: gzip
 * only), so a stream in the wrong format fails. Z_STREAM_END and no bytes
 * left over, or the test fails.
 */
static void zinflate(const char *data, size_t len, int wbits, struct bytes *out)
{
    z_stream z;
    char buf[16384];
    int zr;

    memset(&z, 0, sizeof z);
    ck_assert_int_eq(inflateInit2(&z, wbits), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    do {
        z.next_out = (Bytef *)buf;
        z.avail_out = sizeof buf;
        zr = inflate(&z, Z_NO_FLUSH);
        ck_assert_msg(zr == Z_OK || zr == Z_STREAM_END, "inflate: %d (%s)", zr,
                      z.msg ? z.msg : "");
        bytes_add(out, buf, sizeof buf - z.avail_out);
    } while (zr != Z_STREAM_END);
    ck_assert_uint_eq(z.avail_in, 0);
    inflateEnd(&z);
}

/* A sink that keeps what it gets and checks the size of each piece. */
struct collect {
    struct bytes out;
    size_t calls;
    int fail_at; /* call number (1-based) that returns fail_rc; 0: never */
    int fail_rc;
    bool keep;   /* false: count the bytes only (the bomb) */
    size_t seen; /* bytes received, kept or not */
};

static int collect_sink(void *ctx, const char *data, size_t n)
{
    struct collect *c = ctx;

    if (n == 0 || n > PIECE_MAX)
        ck_abort_msg("a piece of %zu bytes", n);
    c->calls++;
    if (c->fail_at > 0 && c->calls == (size_t)c->fail_at)
        return c->fail_rc;
    c->seen += n;
    if (c->keep)
        bytes_add(&c->out, data, n);
    return 0;
}

/*
 * Feeds all of z (n bytes) to a new inflater in pieces whose sizes come
 * from next_piece, checking that the stream is not `ended` before its last
 * byte, and that it is after. Returns what the inflater produced in *out.
 */
static void inflate_in_pieces(const char *z, size_t n, size_t max,
                              size_t (*next_piece)(void *ctx, size_t left),
                              void *ctx, struct bytes *out)
{
    struct server_inflater in;
    struct collect c = {.keep = true};
    size_t off = 0;
    int rc = 0;

    ck_assert_int_eq(server_inflater_init(&in, max), 0);
    /*
     * No ck_assert per piece: in Check's fork mode each one is a message to
     * the parent, and a byte at a time makes a hundred thousand pieces.
     */
    while (off < n && rc == 0 && !in.ended) {
        size_t k = next_piece(ctx, n - off);

        rc = server_inflater_feed(&in, z + off, k, collect_sink, &c);
        off += k;
    }
    ck_assert_int_eq(rc, 0);
    /* only the last byte of the stream can complete it */
    ck_assert_uint_eq(off, n);
    ck_assert(in.ended);
    ck_assert_uint_eq(in.inflated, c.out.len);
    server_inflater_end(&in);
    *out = c.out;
}

static size_t piece_whole(void *ctx, size_t left)
{
    (void)ctx;
    return left;
}

static size_t piece_one(void *ctx, size_t left)
{
    (void)ctx;
    (void)left;
    return 1;
}

/* Random piece sizes from 1 to 4096, from a seeded rng. */
static size_t piece_random(void *ctx, size_t left)
{
    size_t k = 1 + (size_t)(test_rng_uniform(ctx) * 4096.0);

    return k < left ? k : left;
}

/* --- server_coding_accept ----------------------------------------------- */

struct accept_case {
    const char *ae;
    enum server_coding want;
    const char *why;
};

static const struct accept_case accept_cases[] = {
    {NULL, SERVER_CODING_IDENTITY, "no header: identity"},
    {"", SERVER_CODING_IDENTITY, "empty: nothing accepted"},
    {"identity", SERVER_CODING_IDENTITY, "only identity listed"},
    {"br, zstd", SERVER_CODING_IDENTITY, "codings we do not speak"},
    {"gzip", SERVER_CODING_GZIP, "gzip alone"},
    {"deflate", SERVER_CODING_DEFLATE, "deflate alone"},
    {"x-gzip", SERVER_CODING_GZIP, "x-gzip is gzip (RFC 9110 8.4.1.3)"},
    {"GZip", SERVER_CODING_GZIP, "coding names are case-insensitive"},
    {"DEFLATE", SERVER_CODING_DEFLATE, "coding names are case-insensitive"},
    {"gzipx, deflate2, gzi", SERVER_CODING_IDENTITY,
     "a name must match whole, not as a prefix"},
    {"gzip, deflate", SERVER_CODING_GZIP, "tie at q=1: gzip"},
    {"deflate, gzip", SERVER_CODING_GZIP, "tie: gzip, whatever the order"},
    {"deflate;q=0.5, gzip;q=0.5", SERVER_CODING_GZIP, "tie below 1: gzip"},
    {"gzip;q=0.5, deflate", SERVER_CODING_DEFLATE, "higher q wins"},
    {"gzip;q=1, deflate;q=0.9", SERVER_CODING_GZIP, "higher q wins"},
    {"gzip;q=0.001, deflate;q=0", SERVER_CODING_GZIP,
     "the smallest positive q still accepts"},
    {"x-gzip;q=0.3, deflate;q=0.2", SERVER_CODING_GZIP, "x-gzip's q counts"},
    {"deflate;q=5, gzip", SERVER_CODING_GZIP,
     "q above 1 is clamped to 1, so it cannot beat gzip's 1"},
    {"*", SERVER_CODING_GZIP, "* gives both q=1: tie, gzip"},
    {"*;q=0", SERVER_CODING_IDENTITY, "* refused: both 0"},
    {"*;q=0.5, deflate", SERVER_CODING_DEFLATE,
     "gzip takes *'s 0.5, deflate its own 1"},
    {"*;q=0, gzip", SERVER_CODING_GZIP, "listed gzip keeps its own q"},
    {"*;q=0, deflate", SERVER_CODING_DEFLATE, "listed deflate, gzip refused"},
    {"*;q=0.1, gzip;q=0", SERVER_CODING_DEFLATE,
     "gzip refused; deflate takes *'s 0.1"},
    {"gzip;q=0", SERVER_CODING_IDENTITY,
     "gzip refused, deflate not listed and no *"},
    {"gzip;q=0, deflate;q=0", SERVER_CODING_IDENTITY, "both refused"},
    {"gzip;q=0, *", SERVER_CODING_DEFLATE, "gzip refused, deflate via *"},
    {"gzip;q=0.000, deflate;q=0.001", SERVER_CODING_DEFLATE,
     "0.000 is a refusal"},
    {"gzip;q=abc, deflate;q=0.1", SERVER_CODING_DEFLATE, "garbage q is 0"},
    {"gzip;q=abc", SERVER_CODING_IDENTITY, "garbage q is 0: refused"},
    {"gzip;q=, deflate;q=0.2", SERVER_CODING_DEFLATE, "empty q is 0"},
    {"gzip;q=-1, deflate;q=0.2", SERVER_CODING_DEFLATE, "negative q is 0"},
    {"gzip;q=nan, deflate;q=0.2", SERVER_CODING_DEFLATE, "NaN q is 0"},
    {"gzip;q=0.5x, deflate;q=0.2", SERVER_CODING_DEFLATE,
     "trailing junk makes q unreadable: 0"},
    {"gzip;q=0.50000000000000000001, deflate;q=0.2", SERVER_CODING_DEFLATE,
     "a q far longer than RFC 9110's 3 decimals is unreadable: 0"},
    {"gzip;Q=0, deflate", SERVER_CODING_DEFLATE, "the name Q is q"},
    {"gzip;qq=0, deflate;q=0.5", SERVER_CODING_GZIP,
     "qq is another parameter: gzip keeps q=1"},
    {"gzip;level=9;q=0.2, deflate;q=0.1", SERVER_CODING_GZIP,
     "other parameters before q are skipped"},
    {"gzip;q=0.2;level=9, deflate;q=0.3", SERVER_CODING_DEFLATE,
     "other parameters after q are skipped"},
    {"  gzip ; q=0.3 ,\tdeflate ; q = 0.4 ", SERVER_CODING_DEFLATE,
     "whitespace around tokens, ';' and '=' (RFC 9110 OWS)"},
    {",,, gzip ,,", SERVER_CODING_GZIP, "empty list elements are skipped"},
    {"identity;q=0", SERVER_CODING_IDENTITY,
     "identity refused still gets identity: no 406 here"},
    {"br;q=1, gzip;q=0.1", SERVER_CODING_GZIP,
     "a better coding we lack does not hide gzip"},
    {"gzip foo, deflate;q=0.5", SERVER_CODING_GZIP,
     "junk after a token up to the comma is ignored"},
};

START_TEST(test_accept)
{
    const struct accept_case *c = &accept_cases[_i];

    ck_assert_msg(server_coding_accept(c->ae) == c->want,
                  "Accept-Encoding '%s': got %d, want %d (%s)",
                  c->ae ? c->ae : "(null)", (int)server_coding_accept(c->ae),
                  (int)c->want, c->why);
}
END_TEST

START_TEST(test_name)
{
    ck_assert_str_eq(server_coding_name(SERVER_CODING_GZIP), "gzip");
    ck_assert_str_eq(server_coding_name(SERVER_CODING_DEFLATE), "deflate");
    /* identity is never named in Content-Encoding */
    ck_assert_ptr_null(server_coding_name(SERVER_CODING_IDENTITY));
    /* x-gzip is accepted but always answered as gzip */
    ck_assert_str_eq(server_coding_name(server_coding_accept("x-gzip")),
                     "gzip");
}
END_TEST

/* --- server_coding_of_body ---------------------------------------------- */

START_TEST(test_of_body)
{
    static const struct {
        const char *ce;
        enum server_coding want;
    } ok[] = {
        {NULL, SERVER_CODING_IDENTITY},
        {"identity", SERVER_CODING_IDENTITY},
        {"IDENTITY", SERVER_CODING_IDENTITY},
        {"gzip", SERVER_CODING_GZIP},
        {"GZip", SERVER_CODING_GZIP},
        {"x-gzip", SERVER_CODING_GZIP},
        {"X-GZIP", SERVER_CODING_GZIP},
        {"deflate", SERVER_CODING_DEFLATE},
        {"Deflate", SERVER_CODING_DEFLATE},
    };
    /* one coding only: stacked codings and ones we lack are refused */
    static const char *const bad[] = {
        "br",       "compress",  "zstd",  "gzip, deflate", "gzip ",
        "gzip;q=1", "x-deflate", "gzipx", "deflat",
    };

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        enum server_coding c = (enum server_coding)99;

        ck_assert_int_eq(server_coding_of_body(ok[i].ce, &c), 0);
        ck_assert_msg(c == ok[i].want, "'%s': %d", ok[i].ce ? ok[i].ce : "",
                      (int)c);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum server_coding c = SERVER_CODING_DEFLATE;

        ck_assert_msg(server_coding_of_body(bad[i], &c) == -ENOTSUP, "'%s'",
                      bad[i]);
        /* an output parameter is written only on success */
        ck_assert(c == SERVER_CODING_DEFLATE);
    }
}
END_TEST

/* --- server_coding_compress --------------------------------------------- */

/* Round trip of a json_like body of each size through each coding and
   level, checked by zlib's inflate restricted to the advertised format. */
START_TEST(test_compress_round_trip)
{
    static const size_t sizes[] = {SERVER_COMPRESS_MIN, 4097, 65536,
                                   (size_t)1 << 20};
    static const int levels[] = {SERVER_COMPRESS_LEVEL,
                                 SERVER_COMPRESS_LEVEL_STATIC};

    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        char *data = json_like(sizes[s], 1000 + s);

        for (int gz = 0; gz < 2; gz++)
            for (size_t l = 0; l < 2; l++) {
                enum server_coding c =
                    gz ? SERVER_CODING_GZIP : SERVER_CODING_DEFLATE;
                char *z = NULL;
                size_t zlen = 0;
                struct bytes back = {0};

                ck_assert_int_eq(server_coding_compress(c, levels[l], data,
                                                        sizes[s], &z, &zlen),
                                 0);
                ck_assert_uint_le(zlen, sizes[s]);
                if (gz) {
                    /* RFC 1952: ID1 ID2 CM=8 */
                    ck_assert_uint_eq((unsigned char)z[0], 0x1f);
                    ck_assert_uint_eq((unsigned char)z[1], 0x8b);
                    ck_assert_uint_eq((unsigned char)z[2], 8);
                } else {
                    /* RFC 1950: CM=8, and the header is a multiple of 31 */
                    unsigned cmf = (unsigned char)z[0];
                    unsigned flg = (unsigned char)z[1];

                    ck_assert_uint_eq(cmf & 0x0f, 8);
                    ck_assert_uint_eq((cmf * 256 + flg) % 31, 0);
                }
                zinflate(z, zlen, gz ? 15 + 16 : 15, &back);
                ck_assert_uint_eq(back.len, sizes[s]);
                ck_assert_mem_eq(back.p, data, sizes[s]);
                bytes_free(&back);
                free(z);
            }
        free(data);
    }
}
END_TEST

START_TEST(test_compress_refuses)
{
    char *incompressible = random_bytes(4096, 7);
    char *text = json_like(4096, 8);
    static char sentinel;
    char *z = &sentinel; /* sentinels: must stay untouched */
    size_t zlen = 12345;

    /* identity never compresses */
    ck_assert_int_eq(server_coding_compress(SERVER_CODING_IDENTITY, 1, text,
                                            4096, &z, &zlen),
                     -EMSGSIZE);
    /* nothing to compress */
    ck_assert_int_eq(
        server_coding_compress(SERVER_CODING_GZIP, 1, text, 0, &z, &zlen),
        -EMSGSIZE);
    ck_assert_int_eq(
        server_coding_compress(SERVER_CODING_DEFLATE, 1, text, 0, &z, &zlen),
        -EMSGSIZE);
    for (int gz = 0; gz < 2; gz++) {
        enum server_coding c = gz ? SERVER_CODING_GZIP : SERVER_CODING_DEFLATE;

        /* random bytes come out larger: framing on top of stored blocks */
        ck_assert_int_eq(
            server_coding_compress(c, 9, incompressible, 4096, &z, &zlen),
            -EMSGSIZE);
        /* one byte: the 18 (gzip) or 6 (zlib) bytes of framing alone are
           more */
        ck_assert_int_eq(server_coding_compress(c, 9, "x", 1, &z, &zlen),
                         -EMSGSIZE);
        /* level 0 stores: always a few bytes larger, even for text */
        ck_assert_int_eq(server_coding_compress(c, 0, text, 4096, &z, &zlen),
                         -EMSGSIZE);
    }
    ck_assert_ptr_eq(z, &sentinel);
    ck_assert_uint_eq(zlen, 12345);
    free(incompressible);
    free(text);
}
END_TEST

/*
 * "No larger than data" exactly: zeros followed by random bytes compress to
 * about the size of the random part plus a constant, so as the zeros grow
 * by one byte the input outgrows the output by about one byte, and some
 * count of zeros makes them equal. The reference is zlib itself with the
 * same parameters (its output does not depend on how the output buffer is
 * split). At equality compress succeeds with those very bytes; one byte
 * shorter it refuses.
 */
START_TEST(test_compress_boundary)
{
    const size_t nrand = 1000;
    char *rnd = random_bytes(nrand, 99);

    for (int gz = 0; gz < 2; gz++) {
        enum server_coding c = gz ? SERVER_CODING_GZIP : SERVER_CODING_DEFLATE;
        int wbits = gz ? 15 + 16 : 15;
        int hits = 0;

        for (size_t zeros = 0; zeros < 400; zeros++) {
            size_t len = zeros + nrand;
            char *data = calloc(1, len);
            struct bytes ref = {0};
            char *z = NULL;
            size_t zlen = 0;
            int rc;

            ck_assert_ptr_nonnull(data);
            memcpy(data + zeros, rnd, nrand);
            zcompress(data, len, wbits, SERVER_COMPRESS_LEVEL, &ref);
            rc = server_coding_compress(c, SERVER_COMPRESS_LEVEL, data, len, &z,
                                        &zlen);
            if (ref.len <= len) {
                ck_assert_int_eq(rc, 0);
                ck_assert_uint_eq(zlen, ref.len);
                ck_assert_mem_eq(z, ref.p, zlen);
                free(z);
                hits += ref.len == len;
            } else {
                ck_assert_msg(rc == -EMSGSIZE,
                              "%zu bytes compress to %zu: rc %d", len, ref.len,
                              rc);
            }
            bytes_free(&ref);
            free(data);
        }
        /* the equality case was met (at 65 zeros for zlib and 77 for gzip
           with this seed) */
        ck_assert_int_ge(hits, 1);
    }
    free(rnd);
}
END_TEST

/* --- server_inflater ---------------------------------------------------- */

/* One body in both formats, fed whole, a byte at a time, and in random
   pieces: the exact original comes out through the sink. */
START_TEST(test_inflate_splits)
{
    const size_t len = 200000; /* output spans a dozen sink pieces */
    char *data = json_like(len, 42);
    const unsigned long long seed = 0x5eed0001ull + (unsigned)_i;

    for (int gz = 0; gz < 2; gz++) {
        struct bytes z = {0};

        zcompress(data, len, gz ? 15 + 16 : 15, 6, &z);
        for (int mode = 0; mode < 3; mode++) {
            struct test_rng rng;
            struct bytes out;

            test_rng_seed(&rng, seed);
            inflate_in_pieces(z.p, z.len, len,
                              mode == 0   ? piece_whole
                              : mode == 1 ? piece_one
                                          : piece_random,
                              &rng, &out);
            ck_assert_msg(out.len == len, "%s, mode %d, seed %llx: %zu bytes",
                          gz ? "gzip" : "zlib", mode, seed, out.len);
            ck_assert_mem_eq(out.p, data, len);
            bytes_free(&out);
        }
        bytes_free(&z);
    }
    free(data);
}
END_TEST

/* A body that inflates to nothing ends without calling the sink. */
START_TEST(test_inflate_empty)
{
    for (int gz = 0; gz < 2; gz++) {
        struct bytes z = {0};
        struct server_inflater in;
        struct collect c = {.keep = true};

        zcompress("", 0, gz ? 15 + 16 : 15, 6, &z);
        ck_assert_int_eq(server_inflater_init(&in, 0), 0);
        /* an empty piece is no data: nothing happens */
        ck_assert_int_eq(server_inflater_feed(&in, "", 0, collect_sink, &c), 0);
        ck_assert(!in.ended);
        /* max 0 is enough: nothing is inflated */
        ck_assert_int_eq(
            server_inflater_feed(&in, z.p, z.len, collect_sink, &c), 0);
        ck_assert(in.ended);
        ck_assert_uint_eq(c.calls, 0);
        ck_assert_uint_eq(in.inflated, 0);
        server_inflater_end(&in);
        bytes_free(&z);
    }
}
END_TEST

/* A truncated stream never reports its end; what came out is a prefix. */
START_TEST(test_inflate_truncated)
{
    const size_t len = 100000;
    char *data = json_like(len, 43);

    for (int gz = 0; gz < 2; gz++) {
        struct bytes z = {0};

        zcompress(data, len, gz ? 15 + 16 : 15, 6, &z);
        /* cut in the header, in the middle, and in the trailer */
        const size_t cuts[] = {1, 2, z.len / 2, z.len - 4, z.len - 1};

        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
            struct server_inflater in;
            struct collect c = {.keep = true};

            ck_assert_int_eq(server_inflater_init(&in, len), 0);
            ck_assert_int_eq(
                server_inflater_feed(&in, z.p, cuts[k], collect_sink, &c), 0);
            ck_assert_msg(!in.ended, "%s cut at %zu of %zu: ended",
                          gz ? "gzip" : "zlib", cuts[k], z.len);
            ck_assert_uint_le(c.out.len, len);
            if (c.out.len > 0)
                ck_assert_mem_eq(c.out.p, data, c.out.len);
            /* the rest completes it */
            ck_assert_int_eq(server_inflater_feed(&in, z.p + cuts[k],
                                                  z.len - cuts[k], collect_sink,
                                                  &c),
                             0);
            ck_assert(in.ended);
            ck_assert_uint_eq(c.out.len, len);
            ck_assert_mem_eq(c.out.p, data, len);
            server_inflater_end(&in);
            bytes_free(&c.out);
        }
        bytes_free(&z);
    }
    free(data);
}
END_TEST

/*
 * A gzip bomb: 10 MiB of zeros compress to about 10 KiB. With max 1 MiB
 * the inflater stops with -EMSGSIZE once its output passes 1 MiB, and the
 * sink (which only counts) never receives more than max: nothing anywhere
 * holds the 10 MiB. Built from a 64 KiB buffer fed 160 times, so the test
 * does not allocate it either.
 */
START_TEST(test_inflate_bomb)
{
    const size_t total = (size_t)10 << 20, max = (size_t)1 << 20;
    static const char zeros[65536];
    struct bytes z = {0};
    z_stream d;
    char buf[16384];
    int zr = Z_OK;

    memset(&d, 0, sizeof d);
    ck_assert_int_eq(
        deflateInit2(&d, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    for (size_t fed = 0; fed < total; fed += sizeof zeros) {
        bool last = fed + sizeof zeros == total;

        d.next_in = (Bytef *)(uintptr_t)zeros;
        d.avail_in = sizeof zeros;
        do {
            d.next_out = (Bytef *)buf;
            d.avail_out = sizeof buf;
            zr = deflate(&d, last ? Z_FINISH : Z_NO_FLUSH);
            ck_assert(zr != Z_STREAM_ERROR);
            bytes_add(&z, buf, sizeof buf - d.avail_out);
        } while (d.avail_out == 0);
    }
    ck_assert_int_eq(zr, Z_STREAM_END);
    deflateEnd(&d);
    ck_assert_uint_lt(z.len, 64 * 1024); /* it is a bomb */

    for (int mode = 0; mode < 2; mode++) {
        struct server_inflater in;
        struct collect c = {.keep = false};
        int rc = 0;

        ck_assert_int_eq(server_inflater_init(&in, max), 0);
        if (mode == 0) {
            rc = server_inflater_feed(&in, z.p, z.len, collect_sink, &c);
        } else {
            for (size_t i = 0; i < z.len && rc == 0; i++)
                rc = server_inflater_feed(&in, z.p + i, 1, collect_sink, &c);
        }
        ck_assert_int_eq(rc, -EMSGSIZE);
        ck_assert(!in.ended);
        ck_assert_uint_le(c.seen, max);
        /* it stopped within one piece of the bound, far from 10 MiB */
        ck_assert_uint_gt(in.inflated, max);
        ck_assert_uint_le(in.inflated, max + PIECE_MAX);
        server_inflater_end(&in);
    }
    bytes_free(&z);
}
END_TEST

/* The bound is inclusive: exactly max bytes is fine, one more is not. */
START_TEST(test_inflate_max_exact)
{
    const size_t len = 50000;
    char *data = json_like(len, 44);

    for (int gz = 0; gz < 2; gz++) {
        struct bytes z = {0};
        struct server_inflater in;
        struct collect c = {.keep = false};

        zcompress(data, len, gz ? 15 + 16 : 15, 6, &z);
        ck_assert_int_eq(server_inflater_init(&in, len), 0);
        ck_assert_int_eq(
            server_inflater_feed(&in, z.p, z.len, collect_sink, &c), 0);
        ck_assert(in.ended);
        ck_assert_uint_eq(c.seen, len);
        server_inflater_end(&in);

        c.seen = 0;
        ck_assert_int_eq(server_inflater_init(&in, len - 1), 0);
        ck_assert_int_eq(
            server_inflater_feed(&in, z.p, z.len, collect_sink, &c), -EMSGSIZE);
        ck_assert_uint_le(c.seen, len - 1);
        server_inflater_end(&in);
        bytes_free(&z);
    }
    free(data);
}
END_TEST

/* Corrupt input of several kinds: -EBADMSG with zlib's reason. */
START_TEST(test_inflate_corrupt)
{
    const size_t len = 20000;
    char *data = json_like(len, 45);

    for (int gz = 0; gz < 2; gz++) {
        struct bytes good = {0};

        zcompress(data, len, gz ? 15 + 16 : 15, 6, &good);
        /*
         * 0: the first header byte (neither gzip's 0x1f nor a zlib CMF);
         * 1: the first byte of the trailer's check value (gzip: CRC-32 then
         *    ISIZE, 8 bytes; zlib: Adler-32, 4 bytes), all data intact;
         * 2: gzip's ISIZE (the length mod 2^32) / zlib's last Adler byte;
         * 3: plain text that is no compressed stream at all.
         */
        for (int kind = 0; kind < 4; kind++) {
            struct bytes z = {0};
            struct server_inflater in;
            struct collect c = {.keep = true};
            int rc;

            if (kind == 3)
                bytes_add(&z, "{\"input\":[1,2,3]}", 17);
            else
                bytes_add(&z, good.p, good.len);
            if (kind == 0)
                z.p[0] ^= 0x40;
            else if (kind == 1)
                z.p[z.len - (gz ? 8 : 4)] ^= 0x01;
            else if (kind == 2)
                z.p[z.len - 1] ^= 0x01;
            ck_assert_int_eq(server_inflater_init(&in, len), 0);
            /* before any failure zlib has no message */
            ck_assert_str_eq(server_inflater_reason(&in), "zlib error");
            rc = server_inflater_feed(&in, z.p, z.len, collect_sink, &c);
            ck_assert_msg(rc == -EBADMSG, "%s kind %d: %d",
                          gz ? "gzip" : "zlib", kind, rc);
            ck_assert(!in.ended);
            ck_assert_ptr_nonnull(server_inflater_reason(&in));
            ck_assert_uint_gt(strlen(server_inflater_reason(&in)), 0);
            ck_assert_str_ne(server_inflater_reason(&in), "zlib error");
            server_inflater_end(&in);
            bytes_free(&c.out);
            bytes_free(&z);
        }
        bytes_free(&good);
    }
    free(data);
}
END_TEST

/* Bytes after the end of the stream, in the same piece or a later one. */
START_TEST(test_inflate_trailing)
{
    const size_t len = 30000;
    char *data = json_like(len, 46);

    for (int gz = 0; gz < 2; gz++) {
        struct bytes z = {0}, two = {0};
        struct server_inflater in;
        struct collect c = {.keep = true};

        zcompress(data, len, gz ? 15 + 16 : 15, 6, &z);
        bytes_add(&two, z.p, z.len);
        bytes_add(&two, "x", 1);

        /* same piece: the whole output still arrives, then -EPROTO */
        ck_assert_int_eq(server_inflater_init(&in, len), 0);
        ck_assert_int_eq(
            server_inflater_feed(&in, two.p, two.len, collect_sink, &c),
            -EPROTO);
        ck_assert(in.ended);
        ck_assert_uint_eq(c.out.len, len);
        ck_assert_mem_eq(c.out.p, data, len);
        server_inflater_end(&in);
        bytes_free(&c.out);

        /* a later piece: 0 for the stream, -EPROTO for the byte after,
           and an empty piece after the end is still nothing */
        ck_assert_int_eq(server_inflater_init(&in, len), 0);
        ck_assert_int_eq(
            server_inflater_feed(&in, z.p, z.len, collect_sink, &c), 0);
        ck_assert(in.ended);
        ck_assert_int_eq(server_inflater_feed(&in, "", 0, collect_sink, &c), 0);
        ck_assert_int_eq(server_inflater_feed(&in, "x", 1, collect_sink, &c),
                         -EPROTO);
        server_inflater_end(&in);
        bytes_free(&c.out);

        /* a second stream (a second gzip member) is data after the end */
        bytes_free(&two);
        bytes_add(&two, z.p, z.len);
        bytes_add(&two, z.p, z.len);
        ck_assert_int_eq(server_inflater_init(&in, 2 * len), 0);
        ck_assert_int_eq(
            server_inflater_feed(&in, two.p, two.len, collect_sink, &c),
            -EPROTO);
        ck_assert_uint_eq(c.out.len, len);
        server_inflater_end(&in);
        bytes_free(&c.out);

        bytes_free(&two);
        bytes_free(&z);
    }
    free(data);
}
END_TEST

/* A sink's nonzero value stops inflating and is what feed returns. */
START_TEST(test_inflate_sink_stops)
{
    const size_t len = 100000; /* several pieces */
    char *data = json_like(len, 47);
    static const int rcs[] = {-ENOSPC, 1, 42};

    for (int gz = 0; gz < 2; gz++) {
        struct bytes z = {0};

        zcompress(data, len, gz ? 15 + 16 : 15, 6, &z);
        for (size_t r = 0; r < sizeof rcs / sizeof rcs[0]; r++)
            for (int at = 1; at <= 3; at++) {
                struct server_inflater in;
                struct collect c = {
                    .keep = true, .fail_at = at, .fail_rc = rcs[r]};

                ck_assert_int_eq(server_inflater_init(&in, len), 0);
                ck_assert_int_eq(
                    server_inflater_feed(&in, z.p, z.len, collect_sink, &c),
                    rcs[r]);
                /* no call after the one that said stop */
                ck_assert_uint_eq(c.calls, (size_t)at);
                ck_assert(!in.ended);
                /* what came before is the start of the body */
                if (c.out.len > 0)
                    ck_assert_mem_eq(c.out.p, data, c.out.len);
                server_inflater_end(&in);
                bytes_free(&c.out);
            }
        bytes_free(&z);
    }
    free(data);
}
END_TEST

/* --- server_coding_worth ------------------------------------------------ */

/*
 * Up to the sample size every body is worth trying (compress decides by
 * the result); above it, JSON numbers are, base64 of floats and random
 * bytes are not, the same every time for the same bytes.
 */
START_TEST(test_worth)
{
    const size_t big = (size_t)1 << 20;
    char *text = json_like(big, 11);
    char *b64 = base64_doubles(big, 12);
    char *rnd = random_bytes(big, 13);

    ck_assert(server_coding_worth(rnd, SERVER_COMPRESS_SAMPLE));
    ck_assert(server_coding_worth(b64, SERVER_COMPRESS_SAMPLE));
    ck_assert(!server_coding_worth(rnd, SERVER_COMPRESS_SAMPLE + 1));
    for (int rep = 0; rep < 2; rep++) {
        ck_assert(server_coding_worth(text, big));
        ck_assert(!server_coding_worth(b64, big));
        ck_assert(!server_coding_worth(rnd, big));
    }
    /* base64 of floats does shrink, only too little to pay for itself */
    char *z = NULL;
    size_t zlen = 0;
    ck_assert_int_eq(server_coding_compress(SERVER_CODING_GZIP,
                                            SERVER_COMPRESS_LEVEL, b64, big, &z,
                                            &zlen),
                     0);
    ck_assert_uint_gt(zlen * SERVER_COMPRESS_SAMPLE_DEN,
                      big * SERVER_COMPRESS_SAMPLE_NUM);
    free(z);
    free(text);
    free(b64);
    free(rnd);
}
END_TEST

/*
 * The sample is the middle of the body: text with random bytes in the
 * middle is not worth it, random bytes with text in the middle are, whatever
 * the head says.
 */
START_TEST(test_worth_middle)
{
    const size_t len = 4 * SERVER_COMPRESS_SAMPLE;
    const size_t mid = (len - SERVER_COMPRESS_SAMPLE) / 2;
    char *text = json_like(len, 21);
    char *rnd = random_bytes(len, 22);
    char *a = malloc(len);
    char *b = malloc(len);

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    memcpy(a, text, len);
    memcpy(a + mid, rnd, SERVER_COMPRESS_SAMPLE);
    memcpy(b, rnd, len);
    memcpy(b + mid, text, SERVER_COMPRESS_SAMPLE);
    ck_assert(!server_coding_worth(a, len));
    ck_assert(server_coding_worth(b, len));
    free(text);
    free(rnd);
    free(a);
    free(b);
}
END_TEST

static Suite *coding_suite(void)
{
    Suite *s = suite_create("server_coding");
    TCase *tc = tcase_create("accept");

    tcase_add_loop_test(tc, test_accept, 0,
                        (int)(sizeof accept_cases / sizeof accept_cases[0]));
    tcase_add_test(tc, test_name);
    tcase_add_test(tc, test_of_body);
    suite_add_tcase(s, tc);

    tc = tcase_create("compress");
    tcase_add_test(tc, test_compress_round_trip);
    tcase_add_test(tc, test_compress_refuses);
    tcase_add_test(tc, test_compress_boundary);
    tcase_add_test(tc, test_worth);
    tcase_add_test(tc, test_worth_middle);
    suite_add_tcase(s, tc);

    tc = tcase_create("inflate");
    /* three seeds for the random splits */
    tcase_add_loop_test(tc, test_inflate_splits, 0, 3);
    tcase_add_test(tc, test_inflate_empty);
    tcase_add_test(tc, test_inflate_truncated);
    tcase_add_test(tc, test_inflate_bomb);
    tcase_add_test(tc, test_inflate_max_exact);
    tcase_add_test(tc, test_inflate_corrupt);
    tcase_add_test(tc, test_inflate_trailing);
    tcase_add_test(tc, test_inflate_sink_stops);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(coding_suite());
}

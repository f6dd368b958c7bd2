/*
 * test_number.c - proto/number.c: reading JSON number tokens and printing
 * doubles. Every token read is compared bit for bit with strtod(), from a
 * terminated and from an unterminated buffer (followed by a digit, so a
 * reader that looked past the token would read a different number). Every
 * double printed must read back bit for bit and be exactly what the
 * printf() reference below prints.
 */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "number.h"
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

/* --- reading ------------------------------------------------------------ */

/*
 * Reads token s (NUL-terminated) both ways: in place (terminated) and
 * copied into a buffer where a '7' follows it (unterminated). Long tokens
 * the reader will not copy come back PROTO_NUMBER_UNTERMINATED from the
 * second and are then read from a terminated copy, as a caller does. Both
 * must agree; the result of the first is returned.
 */
static enum proto_number_result read_token(const char *s, locale_t loc,
                                           double *ret)
{
    size_t n = strlen(s);
    char *buf = malloc(n + 2);
    double a = -1.5, b = -2.5;
    enum proto_number_result ra, rb;

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, s, n);
    buf[n] = '7';
    buf[n + 1] = '\0';
    ra = proto_number_read(s, n, true, loc, &a);
    rb = proto_number_read(buf, n, false, loc, &b);
    if (rb == PROTO_NUMBER_UNTERMINATED) {
        ck_assert_msg(n > PROTO_NUMBER_COPY_MAX, "%s: unterminated", s);
        ck_assert_msg(b == -2.5, "%s: *ret written", s);
        buf[n] = '\0';
        rb = proto_number_read(buf, n, true, loc, &b);
    }
    ck_assert_msg(ra == rb, "%s: %d terminated, %d not", s, (int)ra, (int)rb);
    if (ra == PROTO_NUMBER_OK)
        ck_assert_msg(bits_of(a) == bits_of(b), "%s: %a terminated, %a not", s,
                      a, b);
    else
        ck_assert_msg(a == -1.5 && b == -2.5, "%s: *ret written on failure", s);
    free(buf);
    *ret = a;
    return ra;
}

/*
 * proto_number_scan() on token s followed by term (0: nothing, the token
 * ends where the buffer does). Returns the length it reports; *ret is
 * written only then.
 */
static size_t scan_token(const char *s, char term, double *ret)
{
    size_t n = strlen(s);
    char *buf = malloc(n + 1);
    double x = -3.5;
    size_t r;

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, s, n);
    buf[n] = term;
    r = proto_number_scan(buf, buf + n + (term != 0), &x);
    free(buf);
    if (r == 0)
        ck_assert_msg(x == -3.5, "%s: *ret written by a scan of 0", s);
    else
        *ret = x;
    return r;
}

/*
 * s must read as strtod() reads it, bit for bit; false if it does not.
 * proto_number_scan() must agree where it settles s (followed by ',', ']'
 * or a space), and settle nothing when the buffer ends with the token
 * (more may follow in the next chunk) or when a number byte follows it.
 */
static bool same_as_strtod(const char *s, locale_t loc)
{
    double got = 0, want, x = 0;
    enum proto_number_result r = read_token(s, loc, &got);
    static const char terms[] = {',', ']', ' '};
    char *end;
    bool ok;

    errno = 0;
    want = strtod(s, &end);
    ck_assert_ptr_eq(end, s + strlen(s));
    if (errno == ERANGE && (want == HUGE_VAL || want == -HUGE_VAL))
        ok = r == PROTO_NUMBER_RANGE;
    else
        ok = r == PROTO_NUMBER_OK && bits_of(got) == bits_of(want);
    for (size_t i = 0; i < sizeof(terms); i++) {
        size_t n = scan_token(s, terms[i], &x);

        if (n != 0 && (n != strlen(s) || r != PROTO_NUMBER_OK ||
                       bits_of(x) != bits_of(got)))
            ok = false;
    }
    if (scan_token(s, 0, &x) != 0 || scan_token(s, '.', &x) != 0 ||
        scan_token(s, 'e', &x) != 0)
        ok = false;
    return ok;
}

/* Whether proto_number_scan() settles s (followed by a comma) itself. */
static bool scan_settles(const char *s)
{
    double x;

    return scan_token(s, ',', &x) != 0;
}

/*
 * The grammar, on the whole token: -?(0|[1-9][0-9]*)(\.[0-9]+)?
 * ([eE][+-]?[0-9]+)?. strtod() accepts all of the refused ones, or a
 * prefix of them.
 */
START_TEST(test_read_grammar)
{
    static const char *const good[] = {
        "0",     "-0",        "1",       "-1",     "10",        "0.5",
        "-0.0",  "1e5",       "1E5",     "1e+5",   "1e-5",      "1.25e-2",
        "0e0",   "-0e-0",     "0.0e00",  "123456", "9.75E+010", "1e0001",
        "0.001", "100.00100", "-12.5e3", "5e-1",   "0E-999",
    };
    static const char *const bad[] = {
        "",          "-",    "+1",    "01",    "-01",  "00",    "1.",
        ".5",        "-.5",  "1e",    "1e+",   "1e-",  "1E",    "--1",
        "1.2.3",     "0x10", "0X1p3", "1e5.5", "1ee5", "1e+-2", "Infinity",
        "-Infinity", "inf",  "NaN",   "nan",   " 1",   "1 ",    "1,",
        "1_000",     "+0",   "-e1",   "e1",    "1.e5", "1.5e",  "\xd9\xa3",
    };
    locale_t loc = proto_number_locale_new();
    double x;

    ck_assert(loc != (locale_t)0);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(same_as_strtod(good[i], loc), "%s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(read_token(bad[i], loc, &x) == PROTO_NUMBER_SYNTAX,
                      "\"%s\" accepted", bad[i]);
    proto_number_locale_free(loc);
    proto_number_locale_free((locale_t)0);
}
END_TEST

/*
 * Tokens for each way through the reader: the exact double path (up to
 * 2^53 and 10^+-22), the extended one (19 digits, 10^+-27, with results
 * close to a halfway point that must go on to strtod), strtod itself
 * (more digits, larger exponents, subnormals, halfway cases), signed
 * zeros and the limits of the range.
 */
START_TEST(test_read_hard_cases)
{
    static const char *const cases[] = {
        "9007199254740992",
        "9007199254740993",
        "9007199254740991",
        "18014398509481985",
        "1e22",
        "1e23",
        "1e-22",
        "1e-23",
        "123456789e22",
        "9007199254740992e22",
        "9007199254740993e-22",
        "1234567890123456789",
        "1234567890123456789e27",
        "1234567890123456789e-27",
        "1234567890123456789e28",
        "9999999999999999999",
        "12345678901234567890",
        "0.1",
        "0.30000000000000004",
        "2.2250738585072011e-308",
        "2.2250738585072012e-308",
        "2.2250738585072014e-308",
        "4.9406564584124654e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "1e-400",
        "-1e-400",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "-1.7976931348623159e308",
        "1e309",
        "-1e309",
        "1e999999999999999999999",
        "1e-999999999999999999999",
        "-0e-999999999999999999999",
        "4503599627370496.5",
        "4503599627370497.5",
        "8.98846567431158e307",
        "7.038531e-26",
        "123456789012345678901234567890",
        "100000000000000000000000000000000000000e-38",
        "0.0000000000000000000000000000000000000001e40",
        "0.000000000000000000000000000000000000000001",
    };
    locale_t loc = proto_number_locale_new();

    ck_assert(loc != (locale_t)0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(same_as_strtod(cases[i], loc), "%s", cases[i]);
    proto_number_locale_free(loc);
}
END_TEST

/*
 * Beyond PROTO_NUMBER_COPY_MAX bytes an unterminated token that needs
 * strtod is the caller's to terminate; one a fast path settles (zero, a
 * long exponent of few digits) is read in place whatever its length.
 */
START_TEST(test_read_long_tokens)
{
    locale_t loc = proto_number_locale_new();
    char tok[300], zeros[200];
    double x = 42;

    ck_assert(loc != (locale_t)0);
    memset(zeros, '0', sizeof(zeros) - 1);
    zeros[sizeof(zeros) - 1] = '\0';

    /* 64 bytes just above the halfway point 2^53 + 1 between two doubles:
       its first 19 digits (the halfway point, read as 2^53) and the next
       integer up (read as 2^53 + 2) do not settle it, strtod must; and it
       is too long to copy */
    snprintf(tok, sizeof(tok), "9007199254740993.%.46s1", zeros);
    ck_assert_uint_eq(strlen(tok), PROTO_NUMBER_COPY_MAX + 1);
    ck_assert_int_eq(proto_number_read(tok, strlen(tok), false, loc, &x),
                     PROTO_NUMBER_UNTERMINATED);
    ck_assert(x == 42);
    ck_assert(same_as_strtod(tok, loc));
    /* one byte shorter is copied */
    tok[PROTO_NUMBER_COPY_MAX] = '\0';
    ck_assert_int_eq(proto_number_read(tok, strlen(tok), false, loc, &x),
                     PROTO_NUMBER_OK);
    ck_assert(same_as_strtod(tok, loc));

    /* long, but settled without strtod */
    snprintf(tok, sizeof(tok), "-0.%s", zeros);
    ck_assert_int_eq(proto_number_read(tok, strlen(tok), false, loc, &x),
                     PROTO_NUMBER_OK);
    ck_assert(x == 0 && signbit(x));
    snprintf(tok, sizeof(tok), "25e%s1", zeros);
    ck_assert_int_eq(proto_number_read(tok, strlen(tok), false, loc, &x),
                     PROTO_NUMBER_OK);
    ck_assert(x == 250);

    /* long, and needing strtod: many zeros before a digit */
    snprintf(tok, sizeof(tok), "0.%s1", zeros);
    ck_assert(same_as_strtod(tok, loc));
    snprintf(tok, sizeof(tok), "1%se-199", zeros);
    ck_assert(same_as_strtod(tok, loc));
    /* a syntax error is found before any copy is asked for */
    snprintf(tok, sizeof(tok), "1%s.", zeros);
    ck_assert_int_eq(proto_number_read(tok, strlen(tok), false, loc, &x),
                     PROTO_NUMBER_SYNTAX);
    proto_number_locale_free(loc);
}
END_TEST

/* A random JSON number token: up to 30 integer digits, up to 22 decimals,
   an exponent of up to 3 digits. */
static void random_token(struct test_rng *r, char *out, size_t cap)
{
    size_t o = 0;

    if (test_rng_uniform(r) < 0.3)
        out[o++] = '-';
    if (test_rng_uniform(r) < 0.15) {
        out[o++] = '0';
    } else {
        size_t nd = 1 + (size_t)(test_rng_uniform(r) *
                                 (test_rng_uniform(r) < 0.8 ? 19 : 30));

        out[o++] = (char)('1' + (int)(test_rng_uniform(r) * 9));
        for (size_t i = 1; i < nd; i++)
            out[o++] = (char)('0' + (int)(test_rng_uniform(r) * 10));
    }
    if (test_rng_uniform(r) < 0.6) {
        size_t nd = 1 + (size_t)(test_rng_uniform(r) * 22);

        out[o++] = '.';
        for (size_t i = 0; i < nd; i++)
            out[o++] = (char)('0' + (int)(test_rng_uniform(r) * 10));
    }
    if (test_rng_uniform(r) < 0.6) {
        int ev = test_rng_uniform(r) < 0.7
                     ? (int)(test_rng_uniform(r) * 60) - 30
                     : (int)(test_rng_uniform(r) * 700) - 350;

        o += (size_t)snprintf(out + o, cap - o, "%s%d",
                              test_rng_uniform(r) < 0.5 ? "e" : "E", ev);
    }
    out[o] = '\0';
}

START_TEST(test_read_random_tokens)
{
    unsigned long long seed = test_seed();
    locale_t loc = proto_number_locale_new();
    struct test_rng rng;
    int failed = 0;

    ck_assert(loc != (locale_t)0);
    fprintf(stderr,
            "# test_read_random_tokens seed %llu "
            "(replay with LOSSD_TEST_SEED)\n",
            seed);
    test_rng_seed(&rng, seed);
    for (int i = 0; i < 100000; i++) {
        char tok[96];

        random_token(&rng, tok, sizeof(tok));
        if (!same_as_strtod(tok, loc) && failed++ < 10)
            fprintf(stderr, "seed %llu: %s differs from strtod\n", seed, tok);
    }
    proto_number_locale_free(loc);
    ck_assert_msg(failed == 0, "seed %llu: %d tokens differ from strtod", seed,
                  failed);
}
END_TEST

/*
 * Random doubles as clients print them: every bit pattern (subnormals
 * included) with %.17g (the repr of most doubles), %.16g and %.6g, and
 * values 2u - 1 as the benchmark's bodies hold them. The decoder's hot path
 * must settle nearly all of those: only subnormals (about 1 pattern in
 * 2048) and Eisel-Lemire's rare undecided products go to strtod, so fewer
 * than 1% left to strtod means the fast paths still run.
 */
START_TEST(test_read_random_doubles)
{
    static const int precisions[] = {17, 16, 6};
    unsigned long long seed = test_seed();
    locale_t loc = proto_number_locale_new();
    struct test_rng rng;
    size_t settled = 0, total = 0;
    int failed = 0;

    ck_assert(loc != (locale_t)0);
    fprintf(stderr,
            "# test_read_random_doubles seed %llu "
            "(replay with LOSSD_TEST_SEED)\n",
            seed);
    test_rng_seed(&rng, seed);
    for (int i = 0; i < 60000; i++) {
        double v = i % 2 ? double_of(random_bits(&rng))
                         : 2 * test_rng_uniform(&rng) - 1;
        char tok[64];

        if (!isfinite(v))
            continue;
        for (size_t k = 0; k < 3; k++) {
            snprintf(tok, sizeof(tok), "%.*g", precisions[k], v);
            if (!same_as_strtod(tok, loc) && failed++ < 10)
                fprintf(stderr, "seed %llu: %s differs from strtod\n", seed,
                        tok);
            settled += scan_settles(tok);
            total++;
        }
    }
    proto_number_locale_free(loc);
    ck_assert_msg(failed == 0, "seed %llu: %d tokens differ from strtod", seed,
                  failed);
    ck_assert_msg(settled >= total / 100 * 99,
                  "the fast paths settle only %zu of %zu", settled, total);
}
END_TEST

/*
 * Random digit strings of 1 to 25 significant digits, with or without a
 * fraction point and leading zeros, times 10 to a random exponent over the
 * whole range and past it: subnormals, underflow to zero, overflow to a
 * range error and the 19/20-digit edge of the fast paths.
 */
START_TEST(test_read_random_digits)
{
    unsigned long long seed = test_seed();
    locale_t loc = proto_number_locale_new();
    struct test_rng rng;
    int failed = 0;

    ck_assert(loc != (locale_t)0);
    fprintf(stderr,
            "# test_read_random_digits seed %llu "
            "(replay with LOSSD_TEST_SEED)\n",
            seed);
    test_rng_seed(&rng, seed);
    for (int i = 0; i < 100000; i++) {
        size_t nd = 1 + (size_t)(test_rng_uniform(&rng) * 25), o = 0;
        size_t point = (size_t)(test_rng_uniform(&rng) * (double)(nd + 1));
        int ev = (int)(test_rng_uniform(&rng) * 720) - 380;
        char tok[96];

        if (test_rng_uniform(&rng) < 0.5)
            tok[o++] = '-';
        if (point == 0) {
            /* 0.000ddd: zeros that are not significant digits */
            size_t z = (size_t)(test_rng_uniform(&rng) * 4);

            tok[o++] = '0';
            tok[o++] = '.';
            for (size_t j = 0; j < z; j++)
                tok[o++] = '0';
        }
        for (size_t j = 0; j < nd; j++) {
            if (j > 0 && j == point && point < nd)
                tok[o++] = '.';
            tok[o++] =
                (char)((j == 0 ? '1' : '0') +
                       (int)(test_rng_uniform(&rng) * (j == 0 ? 9 : 10)));
        }
        snprintf(tok + o, sizeof(tok) - o, "e%d", ev);
        if (!same_as_strtod(tok, loc) && failed++ < 10)
            fprintf(stderr, "seed %llu: %s differs from strtod\n", seed, tok);
    }
    proto_number_locale_free(loc);
    ck_assert_msg(failed == 0, "seed %llu: %d tokens differ from strtod", seed,
                  failed);
}
END_TEST

#if LDBL_MANT_DIG >= 64
/*
 * Decimals at and near the halfway point between a double and the next
 * one up: the point itself (exact in 64-bit long double, printed in full:
 * it must round to the even double) and its roundings to 16 to 25
 * significant digits, just below or above it. Normal and subnormal
 * doubles.
 */
START_TEST(test_read_near_halfway)
{
    unsigned long long seed = test_seed();
    locale_t loc = proto_number_locale_new();
    struct test_rng rng;
    int failed = 0;
    char *tok = malloc(1200);

    ck_assert(loc != (locale_t)0);
    ck_assert_ptr_nonnull(tok);
    fprintf(stderr,
            "# test_read_near_halfway seed %llu "
            "(replay with LOSSD_TEST_SEED)\n",
            seed);
    test_rng_seed(&rng, seed);
    for (int i = 0; i < 8000; i++) {
        uint64_t b = random_bits(&rng) & ~(UINT64_C(1) << 63);
        double v, up;
        long double mid;

        if (i % 8 == 0)
            b &= (UINT64_C(1) << 52) - 1; /* subnormal */
        v = double_of(b);
        up = nextafter(v, INFINITY);
        if (!isfinite(up))
            continue;
        mid = ((long double)v + (long double)up) / 2;
        for (int digits = 15; digits <= 26; digits++) {
            if (digits == 26) {
                /* the exact point: %Le prints it digit for digit */
                int n = snprintf(tok, 1200, "%.1100Le", mid);
                char *e = strchr(tok, 'e');
                char *z = e;

                ck_assert(n > 0 && n < 1200 && e != NULL);
                while (z[-1] == '0')
                    z--;
                if (z[-1] == '.')
                    z--;
                memmove(z, e, strlen(e) + 1);
            } else {
                snprintf(tok, 1200, "%.*Le", digits, mid);
            }
            if (!same_as_strtod(tok, loc) && failed++ < 10)
                fprintf(stderr, "seed %llu: %.80s differs from strtod\n", seed,
                        tok);
        }
    }
    free(tok);
    proto_number_locale_free(loc);
    ck_assert_msg(failed == 0, "seed %llu: %d tokens differ from strtod", seed,
                  failed);
}
END_TEST
#endif

/* proto_number_scan_list(): where a run stops, and what it says there. */
START_TEST(test_read_scan_list)
{
    static const struct {
        const char *text;
        size_t max;
        size_t n;          /* numbers stored */
        const char *stop;  /* the text left */
        bool after_number; /* stopped right after a number */
    } cases[] = {
        {"1.5, -2e3 ,0.1,\n 7]", 10, 4, "]", true},
        {"1.5, -2e3 ,0.1,\n 7 ]", 10, 4, "]", true},
        {"1.5, -2e3 ,0.1,\n 7]", 2, 2, "0.1,\n 7]", false},
        {"1,2,", 10, 2, "", false},
        {"1,2", 10, 1, "2", false}, /* may go on in the next chunk */
        {"1,2 ", 10, 2, "", true},  /* it cannot */
        {"1, 1e400, 3]", 10, 1, "1e400, 3]", false}, /* needs strtod */
        {"1, 2.5.5]", 10, 1, "2.5.5]", false},
        {"1, -x]", 10, 1, "-x]", false},
        {"1, ]", 10, 1, "]", false},
        {"]", 10, 0, "]", false},
        {"1 2", 10, 1, "2", true},
        {"-0, 0.000123456789012345678, 12345678901234567890, 1", 10, 2,
         "12345678901234567890, 1", false},
    };
    double out[10];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = cases[i].text, *stop = NULL;
        bool after = !cases[i].after_number;
        size_t n = proto_number_scan_list(t, t + strlen(t), out, cases[i].max,
                                          &stop, &after);

        ck_assert_msg(n == cases[i].n, "%s: %zu numbers", t, n);
        ck_assert_msg(strcmp(stop, cases[i].stop) == 0, "%s: stops at %s", t,
                      stop);
        ck_assert_msg(after == cases[i].after_number, "%s: after %d", t,
                      (int)after);
    }
    ck_assert(out[0] == -0.0 && signbit(out[0]));
    ck_assert(bits_of(out[1]) ==
              bits_of(strtod("0.000123456789012345678", NULL)));
}
END_TEST

/* --- writing ------------------------------------------------------------ */

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
 * proto/number.c, is what it is held to.
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
 * Where an exact product decides: v halfway between two 17-digit decimals
 * (1406547535291061.25 and 2^-25 = 2.98023223876953125e-08 print the even
 * one, as printf does), and rounding boundaries that are themselves short
 * decimals, included because the significand is even (62774549265726624 - 4
 * = 6.277454926572662e16; 16 c - 8 and 16 c + 8 multiples of 100 for c just
 * above 2^52, at 10^k = 10). Schubfach's scaled boundaries must come out
 * exact there, not rounded up to odd. Each with its neighbours.
 */
START_TEST(test_format_exact_cases)
{
    static const double cases[] = {
        0x1.3fcfd78cd8ad5p+50, 0x1p-25,
        0x1.be0a3d6bd6794p+55, 0x1.000000000002ap+56,
        0x1.00000000003f8p+56,
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_neighbourhood(cases[i], 8);
    ck_assert_str_eq(fmt(0x1.3fcfd78cd8ad5p+50), "1406547535291061.2");
    ck_assert_str_eq(fmt(0x1p-25), "2.9802322387695312e-08");
    ck_assert_str_eq(fmt(0x1.be0a3d6bd6794p+55), "6.277454926572662e+16");
    ck_assert_str_eq(fmt(0x1.000000000002ap+56), "7.20575940379286e+16");
    /* odd significands near 2^52 in the binades 2^46 to 2^52, whose
       doubles end in .5, .25, ... .0078125: ties and near-ties */
    for (int e = 46; e <= 52; e++)
        for (uint64_t m = 1; m < 4000; m += 2)
            check_same(ldexp((double)((UINT64_C(1) << 52) + m), e - 52), 0);
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
 * The doubles a shortest-digits writer is most likely to get wrong: powers
 * of two and their neighbours, integers (exact up to 2^53, and beyond),
 * subnormals and the smallest normals, and the doubles near 10^j, mostly
 * where %g changes notation (1e-5) or precision (1e15, 1e16, 1e17).
 */
static double random_special(struct test_rng *r)
{
    static const int hot[] = {-5, -4, 15, 16, 17};
    char s[16];
    int j;
    double v;

    switch ((int)(test_rng_uniform(r) * 4.0)) {
    case 0:
        v = ldexp(1.0, (int)(test_rng_uniform(r) * 2098.0) - 1074);
        return double_of(bits_of(v) + (uint64_t)(test_rng_uniform(r) * 9.0) -
                         4);
    case 1:
        v = (double)(random_bits(r) >> (int)(test_rng_uniform(r) * 64.0));
        return test_rng_uniform(r) < 0.25
                   ? ldexp(v, (int)(test_rng_uniform(r) * 100.0))
                   : v;
    case 2:
        return double_of(random_bits(r) & UINT64_C(0x001fffffffffffff));
    default:
        j = test_rng_uniform(r) < 0.5
                ? hot[(int)(test_rng_uniform(r) * 5.0)]
                : (int)(test_rng_uniform(r) * 600.0) - 300;
        snprintf(s, sizeof(s), "1e%d", j);
        v = strtod(s, NULL);
        return double_of(bits_of(v) + (uint64_t)(test_rng_uniform(r) * 2049.0) -
                         1024);
    }
}

/*
 * proto_format_double() against the reference on random doubles: uniform
 * bit patterns over all finite doubles, short decimals (twice as many),
 * normals times a power of ten, and random_special(). LOSSD_FORMAT_IDENTITY_N
 * sets the count (10^6 by default, 2 to 3 s); bench/number_diff runs 10^8
 * by hand.
 */
START_TEST(test_format_matches_reference_random)
{
    unsigned long long seed = test_seed();
    const char *env = getenv("LOSSD_FORMAT_IDENTITY_N");
    size_t count = env != NULL && env[0] != '\0'
                       ? (size_t)strtoull(env, NULL, 0)
                       : 1000000;
    struct test_rng rng;

    fprintf(stderr,
            "# test_format_matches_reference_random seed %llu, %zu values "
            "(replay with LOSSD_TEST_SEED)\n",
            seed, count);
    test_rng_seed(&rng, seed);
    for (size_t i = 0; i < count; i++) {
        double v;

        switch (i % 6) {
        case 0:
            v = double_of(random_bits(&rng));
            break;
        case 1:
        case 3:
            v = random_nice(&rng);
            break;
        case 4:
            v = random_special(&rng);
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

static Suite *number_suite(void)
{
    Suite *s = suite_create("proto_number");
    TCase *rd = tcase_create("reading");
    TCase *wr = tcase_create("writing");

    tcase_add_test(rd, test_read_grammar);
    tcase_add_test(rd, test_read_hard_cases);
    tcase_add_test(rd, test_read_long_tokens);
    tcase_add_test(rd, test_read_random_tokens);
    tcase_add_test(rd, test_read_random_doubles);
    tcase_add_test(rd, test_read_scan_list);
    tcase_add_test(rd, test_read_random_digits);
#if LDBL_MANT_DIG >= 64
    tcase_add_test(rd, test_read_near_halfway);
#endif
    tcase_add_test(wr, test_format_short_forms);
    tcase_add_test(wr, test_format_extremes);
    tcase_add_test(wr, test_format_random_round_trip);
    tcase_add_test(wr, test_format_matches_reference_edges);
    tcase_add_test(wr, test_format_exact_cases);
    tcase_add_test(wr, test_format_matches_reference_random);
    suite_add_tcase(s, rd);
    suite_add_tcase(s, wr);
    return s;
}

int main(void)
{
    return test_run(number_suite());
}

/*
 * number.c - JSON numbers and float64 both ways (number.h): the reader
 * behind the decoder and the shortest round-trip printer behind every
 * writer.
 *
 * Reading checks the grammar and collects up to 19 significant digits as
 * an integer, then tries two exact paths before strtod_l(). Writing runs
 * Grisu3 with the cached powers of ten of powers_table.h and falls back to
 * the printf() formatter it must agree with.
 */
#include "number.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "powers_table.h"

#define IS_DIGIT(c) ((unsigned)(c) - '0' < 10u)

/* --- reading ------------------------------------------------------------ */

locale_t proto_number_locale_new(void)
{
    return newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

void proto_number_locale_free(locale_t c_locale)
{
    if (c_locale != (locale_t)0)
        freelocale(c_locale);
}

static const double pow10_exact[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#if defined(__x86_64__) && LDBL_MANT_DIG == 64
#define HAVE_EXTENDED_PATH 1
static const long double pow10_ext[28] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
    1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L,
};

/*
 * The second fast path, for up to 19 significant digits (most shortest
 * round-trip prints of doubles have 16 or 17). w < 10^19 < 2^64 and 10^|e|
 * for |e| <= 27 (5^27 < 2^64) are exact in x87 extended precision, so
 * r = w * 10^e (or w / 10^-e) is rounded once, to 64 bits: |r - v| <= 1/2
 * ulp64 of the true value v. Rounding r to double then gives the correctly
 * rounded double of v unless v and r may sit on different sides of (or on)
 * a halfway point between doubles, which needs r's 11 bits below the
 * double's 53 to be within one of 0x400: those cases go to strtod. The
 * results lie in [1e-27, 1e46], far from subnormals and overflow.
 */
static bool extended_path(uint64_t w, long exp10, double *ret)
{
    long double r = (long double)w;
    uint64_t mant;
    unsigned low;

    if (exp10 < -27 || exp10 > 27)
        return false;
    r = exp10 < 0 ? r / pow10_ext[-exp10] : r * pow10_ext[exp10];
    memcpy(&mant, &r, sizeof(mant)); /* the 64-bit significand */
    low = (unsigned)(mant & 0x7FF);
    if (low >= 0x3FF && low <= 0x401)
        return false;
    *ret = (double)r;
    return true;
}
#endif

/*
 * Fast path (Clinger): when the significant digits form an integer w <= 2^53
 * and the decimal exponent e is in [-22, 22], both w and 10^|e| are exact
 * doubles, so w * 10^e (or w / 10^-e) is one correctly rounded operation:
 * the same double as strtod's correctly rounded result. Then, on x86-64,
 * extended_path() for up to 19 digits and |e| <= 27. Everything else goes
 * to strtod_l (a private C locale, whatever setlocale() the process did).
 * The tests compare every path with strtod bit for bit.
 */
enum proto_number_result proto_number_read(const char *s, size_t n,
                                           bool terminated, locale_t c_locale,
                                           double *ret)
{
    const char *p = s, *e = s + n;
    bool neg = false, exact = true;
    uint64_t w = 0;
    int nd = 0;
    long exp10 = 0, ev = 0;
    char small[PROTO_NUMBER_COPY_MAX + 1];
    const char *z;
    char *endp;
    double x;

    if (p < e && *p == '-') {
        neg = true;
        p++;
    }
    if (p == e)
        return PROTO_NUMBER_SYNTAX;
    if (*p == '0') {
        p++;
    } else if (IS_DIGIT(*p)) {
        for (; p < e && IS_DIGIT(*p); p++) {
            if (nd < 19) {
                w = w * 10 + (uint64_t)(*p - '0');
                nd++;
            } else {
                exact = false;
            }
        }
    } else {
        return PROTO_NUMBER_SYNTAX;
    }
    if (p < e && *p == '.') {
        p++;
        if (p == e || !IS_DIGIT(*p))
            return PROTO_NUMBER_SYNTAX;
        for (; p < e && IS_DIGIT(*p); p++) {
            if (nd < 19) {
                w = w * 10 + (uint64_t)(*p - '0');
                exp10--;
                if (w != 0)
                    nd++;
            } else {
                exact = false;
            }
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        bool eneg = false;

        p++;
        if (p < e && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p == e || !IS_DIGIT(*p))
            return PROTO_NUMBER_SYNTAX;
        for (; p < e && IS_DIGIT(*p); p++) {
            if (ev < 100000)
                ev = ev * 10 + (*p - '0');
            else
                exact = false;
        }
        exp10 += eneg ? -ev : ev;
    }
    if (p != e)
        return PROTO_NUMBER_SYNTAX;
    if (exact) {
        if (w == 0) {
            *ret = neg ? -0.0 : 0.0;
            return PROTO_NUMBER_OK;
        }
        if (w <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
            x = (double)w;
            x = exp10 < 0 ? x / pow10_exact[-exp10] : x * pow10_exact[exp10];
            *ret = neg ? -x : x;
            return PROTO_NUMBER_OK;
        }
#ifdef HAVE_EXTENDED_PATH
        if (extended_path(w, exp10, &x)) {
            *ret = neg ? -x : x;
            return PROTO_NUMBER_OK;
        }
#endif
    }
    /* strtod needs a NUL-terminated token; a long one is the caller's */
    if (terminated) {
        z = s;
    } else if (n < sizeof(small)) {
        memcpy(small, s, n);
        small[n] = '\0';
        z = small;
    } else {
        return PROTO_NUMBER_UNTERMINATED;
    }
    errno = 0;
    x = strtod_l(z, &endp, c_locale);
    if (endp != z + n)
        return PROTO_NUMBER_SYNTAX; /* cannot happen on a checked token */
    if (errno == ERANGE && (x == HUGE_VAL || x == -HUGE_VAL))
        return PROTO_NUMBER_RANGE;
    *ret = x;
    return PROTO_NUMBER_OK;
}

/* --- writing ------------------------------------------------------------ */

/* The value strtod() reads back, bit for bit. */
static bool round_trips(const char *s, double v)
{
    double r = strtod(s, NULL);

    return memcmp(&r, &v, sizeof(v)) == 0;
}

/*
 * The reference formatter, and the fallback for the doubles Grisu3 cannot
 * settle: the shortest of %.15g, %.16g, %.17g that strtod() reads back to v.
 * Up to three snprintf() and two strtod() calls, about 1.4 us a number;
 * the Grisu3 path must match it byte for byte (tests/proto/test_number.c
 * carries a copy and compares the two).
 */
static size_t format_reference(double v, char out[PROTO_DOUBLE_MAX])
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
    /*
     * %.17g always round-trips; the shorter precisions are tried first so
     * 0.1 prints as 0.1, not 0.10000000000000001.
     */
    for (size_t i = 0; i < sizeof(precisions) / sizeof(precisions[0]); i++) {
        int len = snprintf(out, PROTO_DOUBLE_MAX, "%.*g", precisions[i], v);

        n = (size_t)len;
        /* %.17g needs no check: 17 digits identify every double */
        if (precisions[i] == 17 || round_trips(out, v))
            break;
    }
    /* A float reads as a float: 1 -> 1.0, -0 -> -0.0; 1e+300 is one. */
    if (strpbrk(out, ".e") == NULL) {
        out[n++] = '.';
        out[n++] = '0';
        out[n] = '\0';
    }
    return n;
}

/*
 * Grisu3 (Loitsch, "Printing Floating-Point Numbers Quickly and Accurately
 * with Integers", PLDI 2010). Values are 64-bit significands f times 2^e.
 * v, its rounding boundaries m- and m+ (halfway to the neighbouring doubles)
 * are scaled by a cached 10^k so that their product has exponent -60..-56;
 * each product is off by less than one unit of its last place (half a unit
 * for the cached power's rounding, half for the multiplication's). Digits
 * are generated from too_high = M+ + 1, which lies above every decimal that
 * reads back to v, and stop at the first length with a candidate above
 * too_low = M- - 1: no shorter decimal reads back to v, not even one on a
 * boundary. round_weed() then picks the candidate nearest v, or reports that
 * the error bounds cannot tell.
 */
struct diy_fp {
    uint64_t f;
    int e;
};

/* The upper 64 bits of a * b, rounded to nearest. */
static uint64_t mul_round(uint64_t a, uint64_t b)
{
    const uint64_t m32 = 0xffffffffu;
    uint64_t ah = a >> 32, al = a & m32, bh = b >> 32, bl = b & m32;
    uint64_t hh = ah * bh, hl = ah * bl, lh = al * bh, ll = al * bl;
    uint64_t mid = (ll >> 32) + (hl & m32) + (lh & m32) + (UINT64_C(1) << 31);

    return hh + (hl >> 32) + (lh >> 32) + (mid >> 32);
}

/*
 * Candidates for the last digit sit at distances rest, rest + t, ... below
 * too_high; v (scaled) lies strictly within u of d below too_high; the
 * interval of unsafe units above too_low holds every decimal that reads back
 * to v. Moves the last digit down to the candidate nearest v and accepts it
 * only if it is provably the nearest (v is farther than u from the midpoints
 * with both neighbours, so no tie either) and strictly inside the rounding
 * interval (2u away from too_high and too_low). t is even.
 */
static bool round_weed(char *buf, size_t n, uint64_t d, uint64_t unsafe,
                       uint64_t rest, uint64_t t, uint64_t u)
{
    while (rest < d && d - rest > t / 2 && t < unsafe - rest &&
           buf[n - 1] > '1') {
        buf[n - 1]--;
        rest += t;
    }
    if (rest < 2 * u || unsafe - rest < 2 * u)
        return false;
    return rest + u <= d + t / 2 && d + u <= rest + t / 2;
}

/*
 * The shortest digits that read back to v > 0 (finite) and are nearest to
 * it, into buf (no NUL) with *ret_exp the decimal exponent of the first
 * digit; returns the digit count, 1 to 17, or 0 when Grisu3 cannot be sure
 * (0.5% of uniform bit patterns, 2% of uniform values times 10^k).
 */
static size_t grisu3(double v, char buf[24], int *ret_exp)
{
    uint64_t bits, mant, f;
    int be, e, s, k, one_e;
    struct diy_fp mp, w, mm;
    uint64_t too_high, too_low, unsafe, d, one, frac, rest, unit;
    uint32_t integral, div;
    int kappa;
    size_t n = 0;

    memcpy(&bits, &v, sizeof(bits));
    mant = bits & ((UINT64_C(1) << 52) - 1);
    be = (int)((bits >> 52) & 0x7ff);
    f = be == 0 ? mant : mant | UINT64_C(1) << 52;
    e = be == 0 ? -1074 : be - 1075;
    /* m+ = (2f + 1) 2^(e-1); w and m- are brought to its exponent. */
    s = __builtin_clzll(2 * f + 1);
    mp.f = (2 * f + 1) << s;
    mp.e = e - 1 - s;
    w.f = f << (s + 1);
    w.e = mp.e;
    if (mant == 0 && be > 1) /* the double below is half as far away */
        mm.f = (4 * f - 1) << (s - 1);
    else
        mm.f = (2 * f - 1) << s;
    mm.e = mp.e;
    /* the smallest k with mp.e + 10^k's exponent + 64 >= -60 */
    k = (int)ceil((double)(-61 - mp.e) * 0.30102999566398120);
    if (k < POWERS_MIN_K + 1 || k > POWERS_MAX_K - 1)
        return 0;
    while (k < POWERS_MAX_K &&
           mp.e + powers_table[k - POWERS_MIN_K].e + 64 < -60)
        k++;
    while (k > POWERS_MIN_K &&
           mp.e + powers_table[k - 1 - POWERS_MIN_K].e + 64 >= -60)
        k--;
    one_e = -(mp.e + powers_table[k - POWERS_MIN_K].e + 64);
    if (one_e < 32 || one_e > 60)
        return 0;
    too_high = mul_round(mp.f, powers_table[k - POWERS_MIN_K].f) + 1;
    too_low = mul_round(mm.f, powers_table[k - POWERS_MIN_K].f) - 1;
    d = too_high - mul_round(w.f, powers_table[k - POWERS_MIN_K].f);
    unsafe = too_high - too_low;
    one = UINT64_C(1) << one_e;
    integral = (uint32_t)(too_high >> one_e);
    frac = too_high & (one - 1);
    /* the products are at least 2^62 and one at most 2^60: integral >= 4 */
    for (div = 1, kappa = 1; div <= integral / 10; div *= 10)
        kappa++;
    while (kappa > 0) {
        buf[n++] = (char)('0' + integral / div);
        integral %= div;
        kappa--;
        rest = ((uint64_t)integral << one_e) + frac;
        if (rest < unsafe) {
            if (!round_weed(buf, n, d, unsafe, rest, (uint64_t)div << one_e, 1))
                return 0;
            goto done;
        }
        div /= 10;
    }
    /* rest >= unsafe and frac < one <= 2^60: nothing below overflows */
    unit = 1;
    for (;;) {
        frac *= 10;
        unit *= 10;
        unsafe *= 10;
        buf[n++] = (char)('0' + (frac >> one_e));
        frac &= one - 1;
        kappa--;
        if (frac < unsafe) {
            if (!round_weed(buf, n, d * unit, unsafe, frac, one, unit))
                return 0;
            goto done;
        }
        if (n >= 18)
            return 0;
    }
done:
    if (n > 17)
        return 0;
    *ret_exp = (int)n - 1 + kappa - k;
    return n;
}

/*
 * What format_reference() prints for v = (-)0.dig[0..n) * 10^(x+1), dig the
 * digits grisu3() found for a normal v that is not a power of two: %.Pg with
 * P = max(15, n), then ".0" if integral. Why: the rounding interval of a
 * normal double is narrower than a unit in the 15th digit, so when n <= 15
 * %.15g rounds to exactly these digits (they lie within half that unit of
 * v) and reads back. When n is 16 or 17 no shorter decimal reads back, the
 * nearest n-digit decimal is inside the (symmetric) interval, and grisu3()
 * proved dig the nearest: %.16g or %.17g prints it.
 */
static size_t format_digits(bool neg, const char *dig, size_t n, int x,
                            char out[PROTO_DOUBLE_MAX])
{
    int p = n > 15 ? (int)n : 15;
    size_t o = 0;

    if (neg)
        out[o++] = '-';
    if (x < -4 || x >= p) {
        unsigned ax = (unsigned)(x < 0 ? -x : x);

        out[o++] = dig[0];
        if (n > 1) {
            out[o++] = '.';
            memcpy(out + o, dig + 1, n - 1);
            o += n - 1;
        }
        out[o++] = 'e';
        out[o++] = x < 0 ? '-' : '+';
        if (ax >= 100) {
            out[o++] = (char)('0' + ax / 100);
            ax %= 100;
        }
        out[o++] = (char)('0' + ax / 10);
        out[o++] = (char)('0' + ax % 10);
    } else if (x < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = -1; i > x; i--)
            out[o++] = '0';
        memcpy(out + o, dig, n);
        o += n;
    } else if (n <= (size_t)x + 1) {
        memcpy(out + o, dig, n);
        o += n;
        for (size_t i = n; i < (size_t)x + 1; i++)
            out[o++] = '0';
        out[o++] = '.';
        out[o++] = '0';
    } else {
        memcpy(out + o, dig, (size_t)x + 1);
        o += (size_t)x + 1;
        out[o++] = '.';
        memcpy(out + o, dig + x + 1, n - (size_t)x - 1);
        o += n - (size_t)x - 1;
    }
    out[o] = '\0';
    return o;
}

/* A normal |v| that is a power of two above DBL_MIN. */
static bool is_power_of_two(double v)
{
    uint64_t bits;

    memcpy(&bits, &v, sizeof(bits));
    return (bits & ((UINT64_C(1) << 52) - 1)) == 0 &&
           ((bits >> 52) & 0x7ff) > 1;
}

size_t proto_format_double(double v, char out[PROTO_DOUBLE_MAX])
{
    char dig[24];
    size_t n;
    int x;

    if (!isfinite(v))
        return format_reference(v, out);
    if (v == 0) {
        const char *s = signbit(v) ? "-0.0" : "0.0";

        n = strlen(s);
        memcpy(out, s, n + 1);
        return n;
    }
    /*
     * Subnormals are left to the reference: their rounding interval is wide
     * enough to hold many 15-digit decimals, and %.15g prints the nearest,
     * not the shortest. At a power of two the double below is nearer than
     * the one above, and the nearest 16 digits may not read back where the
     * shortest do: the reference then goes on to %.17g.
     */
    if (fabs(v) < DBL_MIN)
        return format_reference(v, out);
    n = grisu3(fabs(v), dig, &x);
    if (n == 0 || (n > 15 && is_power_of_two(v)))
        return format_reference(v, out);
    return format_digits(signbit(v), dig, n, x, out);
}

/*
 * number_old.c - the number writer proto/number.c had before Schubfach
 * (commit 6095235), kept verbatim but for the names as the baseline and
 * oracle of bench/bench_number.c and bench/number_diff.c: Grisu3 with the
 * cached powers of bench/powers_table.h, and the printf() reference
 * (shortest of %.15g, %.16g, %.17g that strtod() reads back) where Grisu3
 * cannot decide. Not part of lossd.
 */
#include "number_old.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "powers_table.h"

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
size_t old_format_reference(double v, char out[PROTO_DOUBLE_MAX])
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
 * What old_format_reference() prints for v = (-)0.dig[0..n) * 10^(x+1), dig the
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

size_t old_format_double(double v, char out[PROTO_DOUBLE_MAX])
{
    char dig[24];
    size_t n;
    int x;

    if (!isfinite(v))
        return old_format_reference(v, out);
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
        return old_format_reference(v, out);
    n = grisu3(fabs(v), dig, &x);
    if (n == 0 || (n > 15 && is_power_of_two(v)))
        return old_format_reference(v, out);
    return format_digits(signbit(v), dig, n, x, out);
}

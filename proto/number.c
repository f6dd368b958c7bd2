/*
 * number.c - JSON numbers and float64 both ways (number.h): the reader
 * behind the decoder and the shortest round-trip printer behind every
 * writer.
 *
 * Reading checks the grammar and collects up to 19 significant digits as
 * an integer (eight at a time on the decoder's hot path,
 * proto_number_scan_list()), then tries Clinger's exact path and
 * Eisel-Lemire (powers5_table.h) before strtod_l(). Writing runs Schubfach
 * with the powers of ten of pow10_table.h, prints its digits as printf's
 * %g would, and leaves a few rare doubles to the printf() formatter it
 * must agree with.
 */
#include "number.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pow10_table.h"
#include "powers5_table.h"

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

/* The hot path's helpers are inlined into proto_number_scan() (GCC's -O3
   would keep some as calls, one per number). */
#define HOT static inline __attribute__((always_inline))

static const uint64_t pow10_u64[9] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
};

/* The 128-bit product a * b as *ret_hi, *ret_lo. */
HOT void mul_128(uint64_t a, uint64_t b, uint64_t *ret_hi, uint64_t *ret_lo)
{
#ifdef __SIZEOF_INT128__
    __extension__ typedef unsigned __int128 u128;
    u128 r = (u128)a * b;

    *ret_hi = (uint64_t)(r >> 64);
    *ret_lo = (uint64_t)r;
#else
    const uint64_t m32 = 0xffffffffu;
    uint64_t ah = a >> 32, al = a & m32, bh = b >> 32, bl = b & m32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (lh & m32) + (hl & m32);

    *ret_hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    *ret_lo = (mid << 32) | (ll & m32);
#endif
}

/*
 * Eisel-Lemire (Lemire, "Number Parsing at a Gigabyte per Second",
 * Software: Practice and Experience 51(8), 2021, section 5): the double
 * nearest w * 10^q for 0 < w < 2^64, computed from w times a 128-bit
 * truncation of 5^q (powers5_table.h) and an exponent for 2^q. The paper
 * proves the result is the correctly rounded one whenever this returns
 * true, ties to even included (exact halfway points need q in [-4, 23]
 * and a product whose bits below the 54th are zero, checked below). It
 * returns false, for the caller's slower exact path, where the truncated
 * product cannot decide the rounding (its low 64 bits all ones after the
 * second multiplication), for subnormal or zero results and for overflow.
 */
HOT bool eisel_lemire(uint64_t w, long q, double *ret)
{
    uint64_t hi, lo, mant, upper, bits;
    const uint64_t *pw;
    int lz, upperbit;
    long e2;

    if (q < POWERS5_MIN_Q || q > POWERS5_MAX_Q)
        return false;
    lz = __builtin_clzll(w);
    w <<= lz;
    pw = powers5_table[q - POWERS5_MIN_Q];
    mul_128(w, pw[0], &hi, &lo);
    /* the result needs the top 55 bits of the product; the lower 5^q word
       can change them only when the 9 bits below them are all ones */
    if ((hi & 0x1FF) == 0x1FF) {
        uint64_t p2hi, p2lo;

        mul_128(w, pw[1], &p2hi, &p2lo);
        lo += p2hi;
        if (p2hi > lo)
            hi++;
        if (lo == UINT64_MAX)
            return false;
    }
    upperbit = (int)(hi >> 63);
    mant = hi >> (upperbit + 9); /* 54 bits: 53 and a rounding bit */
    /*
     * The binary exponent, biased: floor(q log2(10)) + 1086 + upperbit -
     * lz. floor(q log2(10)) = (217706 q) >> 16 for |q| <= 350; 2^40 keeps
     * the shifted value non-negative.
     */
    e2 = (long)((((int64_t)q * 217706 + ((int64_t)1 << 40)) >> 16) -
                ((int64_t)1 << 24)) +
         1086 + upperbit - lz;
    if (e2 <= 0)
        return false; /* subnormal or zero: strtod */
    /* exactly halfway between two doubles: round to even, not up */
    if (lo <= 1 && q >= -4 && q <= 23 && (mant & 3) == 1 &&
        mant << (upperbit + 9) == hi)
        mant &= ~(uint64_t)1;
    mant += mant & 1;
    mant >>= 1;
    if (mant >= (UINT64_C(1) << 53)) {
        mant = UINT64_C(1) << 52;
        e2++;
    }
    if (e2 >= 0x7FF)
        return false; /* overflow: strtod says ERANGE */
    upper = (uint64_t)e2 << 52;
    bits = upper | (mant & ((UINT64_C(1) << 52) - 1));
    memcpy(ret, &bits, sizeof(*ret));
    return true;
}

/*
 * The double nearest w * 10^q for w < 2^64 (w and q exact), when a fast
 * path can tell: Clinger's (w <= 2^53 and |q| <= 22: w and 10^|q| are
 * exact doubles, so one correctly rounded multiplication or division is
 * the correctly rounded result; measured faster than Eisel-Lemire for
 * short numbers, division included), then Eisel-Lemire. False: strtod.
 */
HOT bool fast_value(uint64_t w, long q, bool neg, double *ret)
{
    uint64_t bits;
    double x;

    if (w == 0) {
        x = 0.0;
    } else if (w <= (UINT64_C(1) << 53) && q >= -22 && q <= 22) {
        x = (double)w;
        x = q < 0 ? x / pow10_exact[-q] : x * pow10_exact[q];
    } else if (!eisel_lemire(w, q, &x)) {
        return false;
    }
    /* x >= 0: the sign is one bit, set without a branch (the signs of a
       body's numbers are as good as random) */
    memcpy(&bits, &x, sizeof(bits));
    bits |= (uint64_t)neg << 63;
    memcpy(ret, &bits, sizeof(bits));
    return true;
}

/* --- digits, eight at a time ---------------------------------------------
 *
 * SWAR on a 64-bit word (any CPU; the byte order is fixed by the load): x
 * is 8 bytes of text minus '0' each, the first byte in the low bits.
 */

HOT uint64_t load8(const char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* Bit 8i+7 set for each byte i of x that is not a digit (x = text ^ '0');
   exact up to the first such byte, which is all the callers use. */
HOT uint64_t nondigit_mask(uint64_t x)
{
    return ((x + UINT64_C(0x7676767676767676)) | x) &
           UINT64_C(0x8080808080808080);
}

/* The value of 8 digits x (each byte 0-9, the first most significant). */
HOT uint64_t digits8(uint64_t x)
{
    x = x * 10 + (x >> 8);
    return ((x & UINT64_C(0x000000FF000000FF)) *
                (100 + (UINT64_C(1000000) << 32)) +
            ((x >> 16) & UINT64_C(0x000000FF000000FF)) *
                (1 + (UINT64_C(10000) << 32))) >>
           32;
}

/*
 * Reads the digits at p (before end) into *w (w * 10 + digit each, modulo
 * 2^64: the callers refuse more than 19 digits); returns the position after
 * the last one.
 */
HOT const char *digit_run(const char *p, const char *end, uint64_t *w)
{
    uint64_t acc = *w;

    while (end - p >= 8) {
        uint64_t x = load8(p) ^ UINT64_C(0x3030303030303030);
        uint64_t m = nondigit_mask(x);
        unsigned k;

        if (m == 0) {
            acc = acc * 100000000 + digits8(x);
            p += 8;
            continue;
        }
        k = (unsigned)__builtin_ctzll(m) >> 3; /* digits before it */
        /* the k digits become the last of 8, after leading zeros; two
           shifts, as k may be 0 (no branch: k varies from number to
           number) */
        acc = acc * pow10_u64[k] + digits8(x << (63 - 8 * k) << 1);
        *w = acc;
        return p + k;
    }
    for (; p < end && IS_DIGIT(*p); p++)
        acc = acc * 10 + (uint64_t)(*p - '0');
    *w = acc;
    return p;
}

/* Whether c may continue a number token: the decoder's token bytes. */
HOT bool is_number_byte(char c)
{
    return IS_DIGIT(c) || c == '.' || c == 'e' || c == 'E' || c == '-' ||
           c == '+';
}

/* proto_number_scan(), inlined into proto_number_scan_list() */
HOT size_t scan_one(const char *s, const char *end, double *ret)
{
    const char *p = s, *d;
    bool neg;
    uint64_t w = 0;
    long nd = 0, q = 0, ev = 0;

    if (p == end)
        return 0;
    neg = *p == '-'; /* no branch: see fast_value() */
    p += neg;
    if (p == end)
        return 0;
    if (*p == '0') {
        p++;
    } else if (IS_DIGIT(*p)) {
        d = p;
        p = digit_run(p, end, &w);
        nd = p - d;
    } else {
        return 0;
    }
    if (p < end && *p == '.') {
        const char *frac = ++p;

        p = digit_run(p, end, &w);
        if (p == frac)
            return 0;
        q = -(long)(p - frac);
        /*
         * The zeros of 0.000ddd are not significant digits. They add
         * nothing to w, which is exact while the significant digits are at
         * most 19: they are counted out only when that count matters (a
         * loop on every number would be a mispredicted branch for one in
         * ten of uniform values).
         */
        if (nd == 0 && p - frac > 19)
            for (d = frac; d < p && *d == '0'; d++)
                nd--;
        nd += p - frac;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool eneg = false;

        p++;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        d = p;
        for (; p < end && IS_DIGIT(*p); p++)
            if (ev < 100000)
                ev = ev * 10 + (*p - '0');
        if (p == d)
            return 0;
        q += eneg ? -ev : ev;
    }
    /* the token must end here, before end, within the fast paths' reach */
    if (p == end || is_number_byte(*p) || nd > 19 || ev >= 100000 ||
        !fast_value(w, q, neg, ret))
        return 0;
    return (size_t)(p - s);
}

size_t proto_number_scan(const char *s, const char *end, double *ret)
{
    return scan_one(s, end, ret);
}

HOT bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

size_t proto_number_scan_list(const char *s, const char *end, double *out,
                              size_t max, const char **ret_end,
                              bool *ret_after_number)
{
    const char *p = s;
    size_t n = 0;
    bool after = false;

    while (n < max) {
        size_t len = p < end ? scan_one(p, end, &out[n]) : 0;

        if (len == 0)
            break;
        n++;
        p += len;
        /* scan_one() saw a byte at p: the common ", " costs two tests */
        if (*p != ',') {
            while (p < end && is_ws(*p))
                p++;
            if (p == end || *p != ',') {
                after = true;
                break;
            }
        }
        p++;
        if (p < end && *p == ' ')
            p++;
        while (p < end && is_ws(*p))
            p++;
    }
    *ret_end = p;
    *ret_after_number = after;
    return n;
}

/*
 * The general reader: the grammar byte by byte, up to 19 significant
 * digits kept in w, the rest dropped (w * 10^exp10 <= v < (w + 1) *
 * 10^exp10). Exactly read tokens take fast_value(); with dropped digits,
 * Eisel-Lemire of both bounds settles v when they round to the same double
 * (rounding is monotonic). Everything else goes to strtod_l (a private C
 * locale, whatever setlocale() the process did). The tests compare every
 * path with strtod bit for bit.
 */
enum proto_number_result proto_number_read(const char *s, size_t n,
                                           bool terminated, locale_t c_locale,
                                           double *ret)
{
    const char *p = s, *e = s + n;
    bool neg = false, dropped = false, huge_exp = false;
    uint64_t w = 0;
    int nd = 0;
    long exp10 = 0, ev = 0;
    char small[PROTO_NUMBER_COPY_MAX + 1];
    const char *z;
    char *endp;
    double x, hi;

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
                exp10++;
                dropped = true;
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
                dropped = true;
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
                huge_exp = true;
        }
        exp10 += eneg ? -ev : ev;
    }
    if (p != e)
        return PROTO_NUMBER_SYNTAX;
    if (!huge_exp && !dropped && fast_value(w, exp10, neg, ret))
        return PROTO_NUMBER_OK;
    if (!huge_exp && dropped && eisel_lemire(w, exp10, &x) &&
        eisel_lemire(w + 1, exp10, &hi) && x == hi) {
        *ret = neg ? -x : x;
        return PROTO_NUMBER_OK;
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
 * The reference formatter, and the fallback for the doubles the fast path
 * leaves to it (subnormals, some powers of two, non-finite values): the
 * shortest of %.15g, %.16g, %.17g that strtod() reads back to v. Up to
 * three snprintf() and two strtod() calls, about 1.4 us a number; the fast
 * path must match it byte for byte (tests/proto/test_number.c carries a
 * copy and compares the two).
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
 * Schubfach (R. Giulietti, "The Schubfach way to render doubles", 2020;
 * the algorithm of Java's Double.toString since JDK 19), written here from
 * the paper: figures 4 and 6, and the table g and rop() of section 9. No
 * code is copied; Alexander Bolz's C++ port (Boost Software License,
 * github.com/abolz/Drachennest) was read as a cross-check. A normal
 * v = c 2^q has the rounding interval R of the decimals strtod() reads back
 * to v: from halfway to the double below to halfway to the one above,
 * boundaries included when c is even (strtod rounds ties to even). At the
 * k with 10^k <= 2^q < 10^(k+1) (3/4 2^q when the double below is half as
 * far, at a power of two), R holds one or two multiples of 10^k and at most
 * one of 10^(k+1); the shortest decimal in R is that multiple of 10^(k+1)
 * if there is one, else the multiple of 10^k nearest v.
 *
 * v and its boundaries, scaled to 4 v 10^-k and (4c -+ 2) 2^q 10^-k, are
 * computed by round_to_odd() from g, a 126-bit overestimate of 10^-k
 * (pow10_table.h). The paper proves that these roundings decide every
 * comparison below exactly as the exact values would, for every double.
 */

/* floor(x / 2^n) for |x| < 2^40, without shifting a negative number */
static int floor_shift(int64_t x, int n)
{
    return (int)((x + ((int64_t)1 << 40)) >> n) -
           (int)(((int64_t)1 << 40) >> n);
}

__extension__ typedef unsigned __int128 u128; /* GCC and Clang */

/*
 * vb = g cp / 2^127 rounded to odd, as the paper's rop() computes it, for
 * g = g1 2^63 + g0 < 2^126 (pow10_table.h) and an even cp < 2^61: the
 * integer part, its last bit set when bits 64 to 126 of g cp are not all
 * zero. The bits below 2^64 are left out on purpose: g exceeds
 * 10^-k 2^-r by at most one, which adds less than cp < 2^64 to the
 * product, so where the exact value is an integer (a tie, or a boundary
 * on a short decimal) vb is that integer, not the odd number above it.
 */

static uint64_t round_to_odd(uint64_t g1, uint64_t g0, uint64_t cp)
{
    const uint64_t low63 = (UINT64_C(1) << 63) - 1;
    uint64_t x1 = (uint64_t)(((u128)g0 * cp) >> 64);
    u128 y = (u128)g1 * cp;
    uint64_t z = ((uint64_t)y >> 1) + x1;
    uint64_t vbp = (uint64_t)(y >> 64) + (z >> 63);

    return vbp | (((z & low63) + low63) >> 63);
}

/*
 * The shortest decimal f 10^*ret_e that reads back to the normal
 * v = c 2^q (2^52 <= c < 2^53), and of those the nearest to v; f may end
 * in zeros, f < 10^17. lower_closer: c = 2^52 and the double below v is
 * half as far as the one above.
 */
static uint64_t schubfach(uint64_t c, int q, bool lower_closer, int *ret_e)
{
    uint64_t out = c & 1; /* an odd c excludes the boundaries */
    uint64_t cb = c << 2, cbr = cb + 2, cbl = cb - 2 + lower_closer;
    /* floor(log10(2^q)) or floor(log10(3/4 2^q)); gen_pow10.py checks both */
    int k = floor_shift((int64_t)q * 1262611 - (lower_closer ? 524031 : 0), 22);
    /* 1 <= h <= 5: floor(log2(10^-k)) by the formula gen_pow10.py checks */
    int h = q + floor_shift((int64_t)-k * 1741647, 19) + 2;
    uint64_t g1 = pow10_table[-k - POW10_MIN_E].g1;
    uint64_t g0 = pow10_table[-k - POW10_MIN_E].g0;
    uint64_t vb = round_to_odd(g1, g0, cb << h);
    uint64_t lower = round_to_odd(g1, g0, cbl << h) + out;
    uint64_t upper = round_to_odd(g1, g0, cbr << h) - out;

    /* s = floor(v 10^-k) >= 2^52 / 10 for a normal v: sp >= 10 */
    uint64_t s = vb >> 2, sp = s / 10;
    /* u' = 10 sp 10^k, w' = u' + 10^(k+1), u = s 10^k, w = u + 10^k in R? */
    uint64_t up_in = lower <= 40 * sp, wp_in = 40 * sp + 40 <= upper;
    uint64_t u_in = lower <= 4 * s, w_in = 4 * s + 4 <= upper;
    /* both u and w in R: w if nearer (a tie goes to the even one) */
    uint64_t w_nearer = vb > 4 * s + 2 || (vb == 4 * s + 2 && (s & 1) != 0);
    uint64_t one_of_s = u_in ^ w_in, one_of_sp = up_in ^ wp_in;
    uint64_t fs = s + ((w_in & one_of_s) | (w_nearer & (one_of_s ^ 1)));
    uint64_t pick_sp = (uint64_t)0 - one_of_sp; /* all ones or none */

    /*
     * The one multiple of 10^(k+1) in R if there is one, else the one of
     * 10^k, else the nearer of the two: chosen with masks, as compilers
     * turn the ?: into branches, which random doubles mispredict (the
     * first two cases are about equally likely).
     */
    *ret_e = k + (int)one_of_sp;
    return ((sp + wp_in) & pick_sp) | (fs & ~pick_sp);
}

static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* x < 10^8 as exactly 8 digits. */
static void put8(char *p, uint32_t x)
{
    uint32_t a = x / 10000, b = x % 10000;

    memcpy(p, digit_pairs + 2 * (a / 100), 2);
    memcpy(p + 2, digit_pairs + 2 * (a % 100), 2);
    memcpy(p + 4, digit_pairs + 2 * (b / 100), 2);
    memcpy(p + 6, digit_pairs + 2 * (b % 100), 2);
}

/* The number of decimal digits of 0 < f < 10^17. */
static int decimal_length(uint64_t f)
{
    static const uint64_t pow10[18] = {
        UINT64_C(1),
        UINT64_C(10),
        UINT64_C(100),
        UINT64_C(1000),
        UINT64_C(10000),
        UINT64_C(100000),
        UINT64_C(1000000),
        UINT64_C(10000000),
        UINT64_C(100000000),
        UINT64_C(1000000000),
        UINT64_C(10000000000),
        UINT64_C(100000000000),
        UINT64_C(1000000000000),
        UINT64_C(10000000000000),
        UINT64_C(100000000000000),
        UINT64_C(1000000000000000),
        UINT64_C(10000000000000000),
        UINT64_C(100000000000000000),
    };
    /* t = floor(bits * log10(2)) is the length or one less */
    int t = ((64 - __builtin_clzll(f)) * 1233) >> 12;

    return t + (f >= pow10[t]);
}

/*
 * Writes (-)f 10^e, 0 < f < 10^17, as %.Pg writes it with
 * P = max(15, n), n the significant digits of f without its trailing
 * zeros, then ".0" if that has neither '.' nor 'e'. Returns the length.
 * Writes only within out[0..PROTO_DOUBLE_MAX): the fixed-size copies below
 * stay in it (the widest ends at byte 31), and bytes after the NUL are
 * unspecified.
 */
static inline size_t format_decimal(bool neg, uint64_t f, int e,
                                    char out[PROTO_DOUBLE_MAX])
{
    /* f as 17 digits (leading zeros), then zeros for integral padding */
    char dig[48];
    uint32_t hi = (uint32_t)(f / 100000000), lo = (uint32_t)(f % 100000000);
    int len = decimal_length(f), end = 17, n, x;
    size_t o = neg;
    const char *d;

    dig[0] = (char)('0' + hi / 100000000);
    put8(dig + 1, hi % 100000000);
    put8(dig + 9, lo);
    memset(dig + 17, '0', 24);
    while (dig[end - 1] == '0') /* f > 0: a digit is not 0 */
        end--;
    d = dig + 17 - len;   /* the first significant digit */
    n = end - (17 - len); /* 1 to 17 */
    x = e + len - 1;      /* v = d.ddd 10^x */
    out[0] = '-';
    if (x < -4 || (x >= 15 && x >= n)) { /* x >= P = max(15, n) */
        unsigned ax = (unsigned)(x < 0 ? -x : x);

        out[o] = d[0];
        out[o + 1] = '.';
        memcpy(out + o + 2, d + 1, 16);
        o += n > 1 ? (size_t)n + 1 : 1;
        out[o++] = 'e';
        out[o++] = x < 0 ? '-' : '+';
        if (ax >= 100) {
            out[o++] = (char)('0' + ax / 100);
            ax %= 100;
        }
        memcpy(out + o, digit_pairs + 2 * ax, 2);
        o += 2;
    } else if (x < 0) {
        /* 0.ddd, 0.0ddd, 0.00ddd or 0.000ddd */
        memcpy(out + o, "0.000", 5);
        memcpy(out + o + (size_t)(1 - x), d, 17);
        o += (size_t)(1 - x + n);
    } else if (n <= x + 1) {
        /* integral: d, padded with zeros to x + 1 <= 17 digits, then .0 */
        memcpy(out + o, d, 17);
        o += (size_t)x + 1;
        out[o++] = '.';
        out[o++] = '0';
    } else {
        /* x + 1 < n <= 17 digits before the point, the rest after it */
        memcpy(out + o, d, 16);
        out[o + (size_t)x + 1] = '.';
        if (x < 14)
            memcpy(out + o + (size_t)x + 2, d + x + 1, 16);
        else /* at most 2 digits after the point */
            memcpy(out + o + (size_t)x + 2, d + x + 1, 2);
        o += (size_t)n + 1;
    }
    out[o] = '\0';
    return o;
}

/*
 * %.15g of a normal double v rounds to its shortest digits when they are 15
 * or fewer: R is narrower than a unit in the 15th digit (a relative 2^-53 at
 * most against 10^-15 at least), so those digits padded with zeros are the
 * only 15-digit decimal within half a unit of v. When the shortest need 16
 * or 17 digits, no shorter printf precision reads back, and the nearest
 * 16- or 17-digit decimal is in R whenever R is symmetric about v (one of
 * them is): schubfach() picked that nearest, and printf rounds to it.
 * Where v lies exactly halfway between two n-digit decimals (2^-25 =
 * 2.98023223876953125e-08 at 17 digits), both are in R; schubfach() takes
 * the one with the even last digit, as printf does (glibc rounds ties to
 * even in the default rounding mode, which lossd never changes).
 * Left to the reference: subnormals, whose R holds many 15-digit decimals
 * of which %.15g prints the nearest, not the shortest; and powers of two
 * whose shortest has 16 digits, as the nearest 16 digits may fall below v
 * outside R's shorter lower half, and %.17g is printed then.
 */
size_t proto_format_double(double v, char out[PROTO_DOUBLE_MAX])
{
    uint64_t bits, mant, c, f;
    int be, q, e;
    bool neg, lower_closer;

    memcpy(&bits, &v, sizeof(bits));
    neg = bits >> 63;
    be = (int)((bits >> 52) & 0x7ff);
    mant = bits & ((UINT64_C(1) << 52) - 1);
    if (be == 0x7ff)
        return format_reference(v, out);
    if (be == 0) {
        if (mant != 0)
            return format_reference(v, out);
        memcpy(out, "-0.0", 5);
        if (!neg)
            memcpy(out, "0.0", 4);
        return neg ? 4 : 3;
    }
    c = mant | UINT64_C(1) << 52;
    q = be - 1075;
    /* integers below 2^53: v itself, exactly */
    if (q <= 0 && q > -53 && (c & ((UINT64_C(1) << -q) - 1)) == 0)
        return format_decimal(neg, c >> -q, 0, out);
    lower_closer = mant == 0 && be > 1;
    f = schubfach(c, q, lower_closer, &e);
    if (lower_closer) {
        uint64_t t = f;

        while (t % 10 == 0)
            t /= 10;
        if (decimal_length(t) == 16)
            return format_reference(v, out);
    }
    return format_decimal(neg, f, e, out);
}

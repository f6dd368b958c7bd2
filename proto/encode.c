#include "encode.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "powers_table.h"
#include "tensor.h"

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
 * format_fast() must match it byte for byte (tests/proto/test_encode.c
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

void proto_write_double(struct proto_buf *b, double v)
{
    char tmp[PROTO_DOUBLE_MAX];
    size_t n = proto_format_double(v, tmp);

    proto_buf_append(b, tmp, n);
}

void proto_write_shape(struct proto_buf *b, const size_t *shape, size_t ndim)
{
    proto_buf_append(b, "[", 1);
    for (size_t i = 0; i < ndim; i++)
        proto_buf_printf(b, i == 0 ? "%zu" : ",%zu", shape[i]);
    proto_buf_append(b, "]", 1);
}

void proto_write_plain_number(struct proto_buf *b, double v)
{
    char tmp[PROTO_DOUBLE_MAX];
    size_t n = proto_format_double(v, tmp);

    if (n > 2 && tmp[n - 2] == '.' && tmp[n - 1] == '0')
        n -= 2;
    proto_buf_append(b, tmp, n);
}

/* Writes v, as proto_write_plain_number() when plain. */
static void write_number(struct proto_buf *b, double v, bool plain)
{
    if (plain)
        proto_write_plain_number(b, v);
    else
        proto_write_double(b, v);
}

/* Writes data[0..n) as numbers separated by commas. */
static void write_numbers(struct proto_buf *b, const double *data, size_t n,
                          bool plain)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            proto_buf_append(b, ",", 1);
        write_number(b, data[i], plain);
    }
}

/*
 * Nested arrays of dims shape[0..ndim), ndim >= 1, from data; returns the
 * elements written. Recursion depth is the rank, at most TENSOR_MAX_RANK.
 */
static size_t write_nested(struct proto_buf *b, const size_t *shape,
                           size_t ndim, const double *data, bool plain)
{
    size_t done = 0;

    proto_buf_append(b, "[", 1);
    if (ndim == 1) {
        write_numbers(b, data, shape[0], plain);
        done = shape[0];
    } else {
        for (size_t i = 0; i < shape[0]; i++) {
            if (i > 0)
                proto_buf_append(b, ",", 1);
            done += write_nested(b, shape + 1, ndim - 1, data + done, plain);
            if (b->failed)
                break;
        }
    }
    proto_buf_append(b, "]", 1);
    return done;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_quad(const unsigned char in[3], size_t n, char out[4])
{
    unsigned v = (unsigned)in[0] << 16 | (unsigned)in[1] << 8 | in[2];

    out[0] = b64_alphabet[(v >> 18) & 63];
    out[1] = b64_alphabet[(v >> 12) & 63];
    out[2] = n > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
    out[3] = n > 2 ? b64_alphabet[v & 63] : '=';
}

/*
 * The little-endian bytes of data[0..n) in standard base64 with padding,
 * whatever the host's byte order. Bytes are staged three at a time and the
 * text goes out in chunks, so nothing of the tensor's size is allocated
 * beyond the buffer itself (reserved once).
 */
static void write_base64(struct proto_buf *b, const double *data, size_t n)
{
    char chunk[4096];
    size_t used = 0, bytes, text;
    unsigned char tri[3];
    size_t ntri = 0;

    if (__builtin_mul_overflow(n, sizeof(double), &bytes) ||
        __builtin_mul_overflow(bytes / 3 + 1, (size_t)4, &text)) {
        b->failed = true;
        return;
    }
    if (!proto_buf_reserve(b, text))
        return;
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;

        memcpy(&bits, &data[i], sizeof(bits));
        for (unsigned k = 0; k < 8; k++) {
            tri[ntri++] = (unsigned char)(bits >> (8 * k));
            if (ntri < 3)
                continue;
            b64_quad(tri, 3, chunk + used);
            used += 4;
            ntri = 0;
            if (used == sizeof(chunk)) {
                proto_buf_append(b, chunk, used);
                used = 0;
            }
        }
    }
    if (ntri > 0) {
        for (size_t k = ntri; k < 3; k++)
            tri[k] = 0;
        b64_quad(tri, ntri, chunk + used);
        used += 4;
    }
    proto_buf_append(b, chunk, used);
}

static void write_tensor(struct proto_buf *b, const size_t *shape, size_t ndim,
                         const double *data, enum proto_format f, bool plain)
{
    size_t numel;

    if (!tensor_shape_numel(shape, ndim, &numel)) {
        b->failed = true;
        return;
    }
    switch (f) {
    case PROTO_FORMAT_NESTED:
        if (ndim == 0)
            write_number(b, data[0], plain);
        else
            write_nested(b, shape, ndim, data, plain);
        return;
    case PROTO_FORMAT_FLAT:
        proto_buf_puts(b, "{\"shape\":");
        proto_write_shape(b, shape, ndim);
        proto_buf_puts(b, ",\"data\":[");
        write_numbers(b, data, numel, plain);
        proto_buf_puts(b, "]}");
        return;
    case PROTO_FORMAT_BASE64:
        proto_buf_puts(b, "{\"shape\":");
        proto_write_shape(b, shape, ndim);
        proto_buf_puts(b, ",\"dtype\":\"float64\",\"base64\":\"");
        write_base64(b, data, numel);
        proto_buf_puts(b, "\"}");
        return;
    }
    b->failed = true; /* not a format: a caller's bug */
}

void proto_write_tensor(struct proto_buf *b, const size_t *shape, size_t ndim,
                        const double *data, enum proto_format f)
{
    write_tensor(b, shape, ndim, data, f, false);
}

void proto_write_tensor_plain(struct proto_buf *b, const size_t *shape,
                              size_t ndim, const double *data,
                              enum proto_format f)
{
    write_tensor(b, shape, ndim, data, f, true);
}

/*
 * The length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF) at s[0..n), or 0 if there is none.
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/*
 * A copy of s with each byte that starts no well-formed sequence replaced by
 * U+FFFD (new, caller frees), or NULL on allocation failure. Details are
 * truncated to a byte count by vsnprintf and can end inside a character;
 * the response must stay valid JSON all the same.
 */
static char *utf8_sanitize(const char *s, size_t len, size_t *ret_len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t cap, n = 0;
    char *out;

    if (__builtin_mul_overflow(len, (size_t)3, &cap))
        return NULL;
    out = malloc(cap + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(u + i, len - i);

        if (k == 0) {
            memcpy(out + n, "\xEF\xBF\xBD", 3);
            n += 3;
            i++;
        } else {
            memcpy(out + n, s + i, k);
            n += k;
            i += k;
        }
    }
    out[n] = '\0';
    *ret_len = n;
    return out;
}

static int dump_to_buf(const char *buffer, size_t size, void *data)
{
    struct proto_buf *b = data;

    proto_buf_append(b, buffer, size);
    return b->failed ? -1 : 0;
}

/* jansson escapes; a string value is dumped with JSON_ENCODE_ANY. */
static void dump_value(struct proto_buf *b, const json_t *v)
{
    if (json_dump_callback(v, dump_to_buf, b, JSON_ENCODE_ANY | JSON_COMPACT))
        b->failed = true;
}

/* True when jansson would write s unchanged: printable ASCII, no '"', no
   backslash (so quoting it is the whole encoding). */
static bool plain_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

void proto_write_string(struct proto_buf *b, const char *s, size_t len)
{
    json_t *str;

    if (b->failed)
        return;
    if (plain_ascii(s, len)) {
        /* The field names and values of every small response: a jansson
           string object and a dump per string were ~2% of its CPU. */
        proto_buf_append(b, "\"", 1);
        proto_buf_append(b, s, len);
        proto_buf_append(b, "\"", 1);
        return;
    }
    str = json_stringn(s, len);
    if (str == NULL) {
        /* Not UTF-8 (or no memory): write the repaired text. */
        size_t clean_len;
        char *clean = utf8_sanitize(s, len, &clean_len);

        if (clean != NULL)
            str = json_stringn_nocheck(clean, clean_len);
        free(clean);
    }
    if (str == NULL) {
        b->failed = true;
        return;
    }
    dump_value(b, str);
    json_decref(str);
}

void proto_write_json(struct proto_buf *b, const struct json_t *v)
{
    const char *key;
    json_t *item;
    size_t i;
    bool first = true;

    if (v == NULL) {
        b->failed = true;
        return;
    }
    if (b->failed)
        return;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        proto_buf_append(b, "{", 1);
        /* json_object_foreach takes a non-const object; it does not write. */
        json_object_foreach((json_t *)v, key, item)
        {
            if (!first)
                proto_buf_append(b, ",", 1);
            first = false;
            proto_write_string(b, key, strlen(key));
            proto_buf_append(b, ":", 1);
            proto_write_json(b, item);
        }
        proto_buf_append(b, "}", 1);
        return;
    case JSON_ARRAY:
        proto_buf_append(b, "[", 1);
        json_array_foreach(v, i, item)
        {
            if (i > 0)
                proto_buf_append(b, ",", 1);
            proto_write_json(b, item);
        }
        proto_buf_append(b, "]", 1);
        return;
    case JSON_REAL:
        proto_write_double(b, json_real_value(v));
        return;
    case JSON_STRING:
        proto_write_string(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        dump_value(b, v);
        return;
    }
}

/*
 * number_gen.c - the random doubles of number_gen.h.
 */
#include "number_gen.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[NUMBER_KINDS] = {
    "bits", "gradient",  "nice",   "digits",  "integer",
    "pow2", "subnormal", "switch", "special",
};

const char *number_kind_name(enum number_kind kind)
{
    return kind_names[kind];
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void number_rng_seed(struct number_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t number_rng_next(struct number_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double number_rng_uniform(struct number_rng *r)
{
    return (double)(number_rng_next(r) >> 11) * 0x1p-53;
}

double number_rng_normal(struct number_rng *r)
{
    double u = 1.0 - number_rng_uniform(r), w = number_rng_uniform(r);

    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w);
}

/* Uniform integer in [lo, hi]. */
static long range(struct number_rng *r, long lo, long hi)
{
    return lo + (long)(number_rng_next(r) % (uint64_t)(hi - lo + 1));
}

static double from_bits(uint64_t u)
{
    double v;

    memcpy(&v, &u, sizeof(v));
    return v;
}

static uint64_t to_bits(double v)
{
    uint64_t u;

    memcpy(&u, &v, sizeof(u));
    return u;
}

/* n random digits (the first not 0) and exponent e, read by strtod. */
static double decimal(struct number_rng *r, int n, int e)
{
    char s[48];
    int o = 0;

    s[o++] = (char)('1' + range(r, 0, 8));
    for (int i = 1; i < n; i++)
        s[o++] = (char)('0' + range(r, 0, 9));
    snprintf(s + o, sizeof(s) - (size_t)o, "e%d", e);
    return strtod(s, NULL);
}

/* v >= 0 moved by d doubles (toward +infinity for d > 0), not below 0 */
static double step(double v, long d)
{
    long long b = (long long)to_bits(v) + d;

    return from_bits(b < 0 ? 0 : (uint64_t)b);
}

static double special(struct number_rng *r)
{
    static const double fixed[] = {
        0.0,  INFINITY, DBL_MIN,   DBL_MAX, DBL_TRUE_MIN, DBL_EPSILON, 1.0,
        0.1,  1e15,     1e16,      1e17,    1e-5,         1e-4,        1e22,
        1e23, 0x1p53,   0x1p-1022, 5e-324,  0x1p-1074 * 3};

    switch (range(r, 0, 2)) {
    case 0: /* NaNs with random payloads, both signs */
        return from_bits(UINT64_C(0x7ff0000000000000) |
                         (number_rng_next(r) & UINT64_C(0x800fffffffffffff)) |
                         1);
    default:
        return fixed[range(r, 0, sizeof(fixed) / sizeof(fixed[0]) - 1)];
    }
}

double number_gen(struct number_rng *r, enum number_kind kind)
{
    double v = 0;

    switch (kind) {
    case NUMBER_BITS:
        return from_bits(number_rng_next(r));
    case NUMBER_GRADIENT:
        v = number_rng_normal(r) * pow(10.0, (double)range(r, -8, 2));
        break;
    case NUMBER_NICE:
        v = decimal(r, (int)range(r, 1, 17),
                    range(r, 0, 4) != 0 ? (int)range(r, -25, 25)
                                        : (int)range(r, -340, 320));
        break;
    case NUMBER_DIGITS:
        v = decimal(r, (int)range(r, 15, 17), (int)range(r, -330, 310));
        break;
    case NUMBER_INTEGER: {
        uint64_t m = number_rng_next(r) >> range(r, 0, 63);

        v = (double)m;
        if (range(r, 0, 3) == 0)
            v = ldexp(v, (int)range(r, 1, 200));
        break;
    }
    case NUMBER_POW2:
        v = step(ldexp(1.0, (int)range(r, -1074, 1023)), range(r, -4, 4));
        break;
    case NUMBER_SUBNORMAL:
        v = from_bits(number_rng_next(r) &
                      (range(r, 0, 3) == 0 ? UINT64_C(0x001fffffffffffff)
                                           : UINT64_C(0x000fffffffffffff)));
        break;
    case NUMBER_SWITCH: {
        /* around 10^j, mostly where %g changes notation or precision */
        static const int hot[] = {-5, -4, 15, 16, 17};
        int j = range(r, 0, 1) == 0 ? hot[range(r, 0, 4)]
                                    : (int)range(r, -320, 308);
        char s[16];

        snprintf(s, sizeof(s), "1e%d", j);
        v = strtod(s, NULL);
        v = step(v, range(r, 0, 1) == 0 ? range(r, -64, 64)
                                        : range(r, -(1L << 20), 1L << 20));
        break;
    }
    case NUMBER_SPECIAL:
        v = special(r);
        break;
    default:
        abort();
    }
    return range(r, 0, 1) == 0 ? v : -v;
}

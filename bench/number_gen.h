/*
 * number_gen.h - random doubles for the number-writer benchmarks
 * (bench_number.c, number_diff.c): a small seeded generator
 * (xoshiro256**, seeded by splitmix64) and the kinds of value the writer
 * must get right or must be fast on. Deterministic for a seed, the same on
 * every machine but for the strtod() and libm calls it makes.
 */
#ifndef LOSSD_BENCH_NUMBER_GEN_H
#define LOSSD_BENCH_NUMBER_GEN_H

#include <stdint.h>

struct number_rng {
    uint64_t s[4];
};

enum number_kind {
    NUMBER_BITS,      /* a uniform 64-bit pattern: NaN, infinities too */
    NUMBER_GRADIENT,  /* normal(0, 1) * 10^k, k in [-8, 2] */
    NUMBER_NICE,      /* m / 10^j read by strtod: 1 to 17 digits */
    NUMBER_DIGITS,    /* 15, 16 or 17 random digits, any exponent */
    NUMBER_INTEGER,   /* integers, up to 2^64, and exact multiples */
    NUMBER_POW2,      /* 2^i and the 4 doubles either side */
    NUMBER_SUBNORMAL, /* any subnormal, and the smallest normals */
    NUMBER_SWITCH,    /* within 2^20 doubles of 10^j: %g's switches */
    NUMBER_SPECIAL,   /* zeros, infinities, NaNs, extremes */
    NUMBER_KINDS
};

/* The name of a kind, for reports. */
const char *number_kind_name(enum number_kind kind);

void number_rng_seed(struct number_rng *r, uint64_t seed);

/* 64 uniform bits. */
uint64_t number_rng_next(struct number_rng *r);

/* Uniform in [0, 1). */
double number_rng_uniform(struct number_rng *r);

/* Standard normal (Box-Muller). */
double number_rng_normal(struct number_rng *r);

/* A random double of the given kind, either sign. */
double number_gen(struct number_rng *r, enum number_kind kind);

#endif

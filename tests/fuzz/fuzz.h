/*
 * fuzz.h - what the fuzz targets of tests/fuzz share: libFuzzer's entry
 * points, a check that aborts in every build, and the chunk splits that
 * feed a body to a streaming reader in pieces chosen by the input.
 *
 * Each target is linked either with libFuzzer (-Dfuzzing=true, clang) or
 * with replay.c, which runs every file of the target's corpus once: the
 * regression test of the normal suite (docs/testing.md).
 */
#ifndef LOSSD_TESTS_FUZZ_H
#define LOSSD_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Called once before the first input; argc and argv may be ignored. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Runs one input; returns 0. A broken invariant aborts (FUZZ_CHECK). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: abort() when it does not hold,
   whatever NDEBUG says, so libFuzzer and the replay both report it. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,         \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/*
 * Chunk lengths for a body: seed 0 gives the whole body as one chunk;
 * any other seed a reproducible mix of 1-byte, short (up to 8 and 64
 * bytes) and "the rest" chunks, so token, escape and UTF-8 boundaries fall
 * at every position.
 */
struct fuzz_split {
    uint32_t state; /* xorshift32; 0: one chunk */
};

static inline void fuzz_split_init(struct fuzz_split *s, uint32_t seed)
{
    s->state = seed;
}

/* The length of the next chunk, 1..left (left > 0). */
static inline size_t fuzz_split_next(struct fuzz_split *s, size_t left)
{
    uint32_t x = s->state;
    size_t n;

    if (x == 0)
        return left;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->state = x;
    switch (x & 3) {
    case 0:
        n = 1;
        break;
    case 1:
        n = 1 + (x >> 2) % 8;
        break;
    case 2:
        n = 1 + (x >> 2) % 64;
        break;
    default:
        n = left;
        break;
    }
    return n < left ? n : left;
}

/* FNV-1a of n bytes: a split seed drawn from the input itself. */
static inline uint32_t fuzz_hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

#endif

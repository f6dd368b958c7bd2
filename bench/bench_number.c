/*
 * bench_number.c - numbers per second of proto_format_double() against the
 * writer it replaced (number_old.c: Grisu3 with its printf() fallback), on
 * the same arrays in the same run.
 *
 *   gradient  normal(0, 1) * 10^k, k uniform in [-8, 2]: what a response's
 *             gradients look like (the figure that matters)
 *   nice      short decimals m / 10^j (1 to 17 digits), as clients send
 *   bits      uniform bit patterns over the finite doubles
 *
 * Each array (count doubles, 1 Mi by default, generated before timing)
 * is written `rounds` times by each writer, old and new alternating and
 * swapping which goes first, into a 32-byte buffer as proto_write_double()
 * does. Before timing, every value's two outputs are compared: a
 * difference is an error. Times are the thread's CPU time, so that other
 * work on a shared machine skews them less than wall time would (it still
 * takes caches and cores). Reports the median numbers per second of each
 * writer, new/old of the medians, and new/old of each writer's fastest
 * round.
 *
 * Usage: bench_number [count [rounds [seed]]]   (defaults 1048576 11 1)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "number.h"
#include "number_gen.h"
#include "number_old.h"

typedef size_t (*writer_fn)(double, char[PROTO_DOUBLE_MAX]);

/* Where the lengths written go, so that no write can be left out. */
static volatile size_t sink_out;

/* The calling thread's CPU time, in seconds. */
static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds to write every x[i]; *sink keeps the work from being dropped. */
static double run(writer_fn w, const double *x, size_t n, size_t *sink)
{
    char out[PROTO_DOUBLE_MAX];
    size_t acc = 0;
    double t0 = now();

    for (size_t i = 0; i < n; i++) {
        size_t len = w(x[i], out);

        acc += len + (unsigned char)out[len - 1];
    }
    *sink += acc;
    return now() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    static const enum number_kind kinds[] = {NUMBER_GRADIENT, NUMBER_NICE,
                                             NUMBER_BITS};
    size_t count = argc > 1 ? strtoull(argv[1], NULL, 0) : 1048576;
    size_t rounds = argc > 2 ? strtoull(argv[2], NULL, 0) : 11;
    unsigned long long seed = argc > 3 ? strtoull(argv[3], NULL, 0) : 1;
    double *x = malloc((count ? count : 1) * sizeof(*x));
    double *t_old = malloc((rounds ? rounds : 1) * sizeof(double));
    double *t_new = malloc((rounds ? rounds : 1) * sizeof(double));
    size_t sink = 0;
    int status = EXIT_SUCCESS;

    if (x == NULL || t_old == NULL || t_new == NULL || count == 0 ||
        rounds == 0) {
        fprintf(stderr, "usage: bench_number [count [rounds [seed]]]\n");
        return EXIT_FAILURE;
    }
    printf("%zu doubles per array, %zu rounds, seed %llu\n", count, rounds,
           seed);
    printf("%-9s %14s %14s %8s %8s\n", "array", "old (M/s)", "new (M/s)",
           "new/old", "fastest");
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        struct number_rng rng;
        size_t differ = 0;
        double old_rate, new_rate;

        number_rng_seed(&rng, seed + k);
        for (size_t i = 0; i < count; i++) {
            do
                x[i] = number_gen(&rng, kinds[k]);
            while (!isfinite(x[i]));
        }
        for (size_t i = 0; i < count; i++) {
            char a[PROTO_DOUBLE_MAX], b[PROTO_DOUBLE_MAX];

            old_format_double(x[i], a);
            proto_format_double(x[i], b);
            if (strcmp(a, b) != 0 && differ++ < 5)
                fprintf(stderr, "%a: old %s, new %s\n", x[i], a, b);
        }
        if (differ != 0) {
            fprintf(stderr, "%s: %zu values differ\n",
                    number_kind_name(kinds[k]), differ);
            status = EXIT_FAILURE;
        }
        run(old_format_double, x, count, &sink); /* warm-up */
        run(proto_format_double, x, count, &sink);
        for (size_t r = 0; r < rounds; r++) {
            if (r % 2 == 0) {
                t_old[r] = run(old_format_double, x, count, &sink);
                t_new[r] = run(proto_format_double, x, count, &sink);
            } else {
                t_new[r] = run(proto_format_double, x, count, &sink);
                t_old[r] = run(old_format_double, x, count, &sink);
            }
        }
        old_rate = (double)count / median(t_old, rounds) / 1e6;
        new_rate = (double)count / median(t_new, rounds) / 1e6;
        /* median() sorted them: [0] is the fastest round */
        printf("%-9s %14.2f %14.2f %7.2fx %7.2fx\n", number_kind_name(kinds[k]),
               old_rate, new_rate, new_rate / old_rate, t_old[0] / t_new[0]);
        fflush(stdout);
    }
    sink_out = sink;
    free(x);
    free(t_old);
    free(t_new);
    return status;
}

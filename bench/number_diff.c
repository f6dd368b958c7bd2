/*
 * number_diff.c - the differential check of proto_format_double(): every
 * value is written by it, by the writer it replaced (number_old.c) and by
 * the printf() reference both are held to (the shortest of %.15g, %.16g,
 * %.17g that strtod() reads back), and the three must agree byte for byte.
 *
 * The values cycle through the kinds of number_gen.h: uniform bit patterns
 * (NaNs and infinities included), gradient-like normals times 10^k, short
 * decimals, 15- to 17-digit decimals, integers, powers of two and their
 * neighbours, subnormals, the doubles around 10^j (%g's switches at 1e-5,
 * 1e15, 1e16, 1e17 most of all) and the specials; each with either sign.
 * The printf reference costs 1 to 2 us a value: 10^8 values take a few
 * minutes on 2 threads. Too slow for the test suite, which runs the same
 * comparison on 10^6 values (tests/proto/test_number.c).
 *
 * Usage: number_diff [count [seed [threads]]]   (defaults 100000000 1 2)
 * Prints the values checked per kind and every difference (the first 20);
 * exits 1 if there was one.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "number.h"
#include "number_gen.h"
#include "number_old.h"

struct job {
    uint64_t seed;
    size_t first, step, count; /* values first, first + step, ... < count */
    size_t checked[NUMBER_KINDS];
    size_t differ;
    pthread_mutex_t *print_lock;
};

static void report(struct job *j, double v, const char *new_s,
                   const char *old_s, const char *ref_s)
{
    uint64_t bits;

    memcpy(&bits, &v, sizeof(bits));
    pthread_mutex_lock(j->print_lock);
    fprintf(stderr, "%a (%016" PRIx64 "): new %s, old %s, printf %s\n", v, bits,
            new_s, old_s, ref_s);
    pthread_mutex_unlock(j->print_lock);
}

static void *run(void *arg)
{
    struct job *j = arg;
    struct number_rng rng;

    number_rng_seed(&rng, j->seed);
    for (size_t i = j->first; i < j->count; i += j->step) {
        enum number_kind kind = (enum number_kind)(i % NUMBER_KINDS);
        double v = number_gen(&rng, kind);
        char new_s[PROTO_DOUBLE_MAX], old_s[PROTO_DOUBLE_MAX],
            ref_s[PROTO_DOUBLE_MAX];
        size_t n_new = proto_format_double(v, new_s);
        size_t n_old = old_format_double(v, old_s);
        size_t n_ref = old_format_reference(v, ref_s);

        j->checked[kind]++;
        if (n_new != strlen(new_s) || n_new != n_old || n_new != n_ref ||
            strcmp(new_s, old_s) != 0 || strcmp(new_s, ref_s) != 0) {
            if (j->differ++ < 20)
                report(j, v, new_s, old_s, ref_s);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    size_t count = argc > 1 ? strtoull(argv[1], NULL, 0) : 100000000;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
    size_t threads = argc > 3 ? strtoull(argv[3], NULL, 0) : 2;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct job *jobs;
    pthread_t *tids;
    size_t total[NUMBER_KINDS] = {0}, all = 0, differ = 0;
    struct timespec t0, t1;

    if (threads == 0 || threads > 256) {
        fprintf(stderr, "usage: number_diff [count [seed [threads]]]\n");
        return EXIT_FAILURE;
    }
    jobs = calloc(threads, sizeof(*jobs));
    tids = calloc(threads, sizeof(*tids));
    if (jobs == NULL || tids == NULL) {
        fprintf(stderr, "number_diff: out of memory\n");
        return EXIT_FAILURE;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t t = 0; t < threads; t++) {
        jobs[t] = (struct job){.seed = seed * 1000003 + t,
                               .first = t,
                               .step = threads,
                               .count = count,
                               .print_lock = &lock};
        if (pthread_create(&tids[t], NULL, run, &jobs[t]) != 0) {
            fprintf(stderr, "number_diff: pthread_create failed\n");
            return EXIT_FAILURE;
        }
    }
    for (size_t t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        for (int k = 0; k < NUMBER_KINDS; k++)
            total[k] += jobs[t].checked[k];
        differ += jobs[t].differ;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("seed %" PRIu64 ", %zu threads, %.1f s\n", seed, threads,
           (double)(t1.tv_sec - t0.tv_sec) +
               1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    for (int k = 0; k < NUMBER_KINDS; k++) {
        printf("%-10s %12zu\n", number_kind_name((enum number_kind)k),
               total[k]);
        all += total[k];
    }
    printf("%-10s %12zu values, %zu differ from the old writer or printf\n",
           "all", all, differ);
    free(jobs);
    free(tids);
    return differ == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * bench_core.c - times lossd's core alone (float64, one thread, OpenBLAS
 * pinned to one thread by loss_blas_init()), forward + backward:
 *
 *   ce     cross_entropy, class-index targets, (10000, 100), reduction mean
 *          (loss_class_forward + loss_class_backward)
 *   pairs  info_nce pairs, normalize, temperature 0.1, N = 4096, D = 128, mean
 *   ntx    info_nce nt_xent, mask_self, normalize, temperature 0.1, same shapes
 *
 * Inputs are generated before timing, by the formula torch_core.py uses too:
 * x[i] = 2 sin(0.7548776662466927 i + off). The timed region of one
 * repetition is what a request costs the core: allocating the outputs and
 * workspace, forward, backward (gradients of every differentiable input),
 * and freeing. Each case runs once untimed (warm-up), then `reps` times.
 *
 * Usage: bench_core [ce_reps [pairs_reps [ntx_reps]]]   (defaults 10 2 1;
 *                                                       0 skips a case)
 *        bench_core --info                              (OpenBLAS core)
 * Output, one line per case: <case> <seconds per repetition> <loss value>
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "info_nce.h"
#include "softmax.h"
#include "sum.h"

#define GOLDEN 0.7548776662466927

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *xmalloc(size_t n, size_t size)
{
    void *p = malloc((n ? n : 1) * size);

    if (p == NULL) {
        fprintf(stderr, "bench_core: out of memory\n");
        exit(EXIT_FAILURE);
    }
    return p;
}

static double *inputs(size_t n, double off)
{
    double *x = xmalloc(n, sizeof(*x));

    for (size_t i = 0; i < n; i++)
        x[i] = 2.0 * sin(GOLDEN * (double)i + off);
    return x;
}

/* One forward + backward of cross_entropy; returns the mean loss. */
static double ce_once(const struct loss_class_args *a)
{
    size_t n = a->shape.outer, c = a->shape.classes;
    double *out = xmalloc(n, sizeof(double));
    double *lsm = xmalloc(loss_class_scratch(a) + 1, sizeof(double));
    double *grad = xmalloc(n * c, sizeof(double));
    double g = 1.0 / (double)n, v;

    loss_class_forward(a, out, NULL, lsm, NULL);
    loss_class_backward(a, lsm, &g, 0, grad, NULL, NULL);
    v = loss_sum(out, n) / (double)n;
    free(out);
    free(lsm);
    free(grad);
    return v;
}

/* One forward + backward of info_nce; returns the mean loss. */
static double nce_once(const struct loss_nce_args *a)
{
    size_t ns = loss_nce_samples(a), nd = a->n * a->d, ws;
    double *out, *gq, *gk, *work, g, v;

    if (!loss_nce_workspace(a, 1, true, &ws)) {
        fprintf(stderr, "bench_core: workspace overflows\n");
        exit(EXIT_FAILURE);
    }
    out = xmalloc(ns, sizeof(double));
    gq = xmalloc(nd, sizeof(double));
    gk = xmalloc(nd, sizeof(double));
    work = xmalloc(ws, sizeof(double));
    g = 1.0 / (double)ns;
    loss_nce_run(a, out, &g, 0, gq, gk, NULL, work, NULL);
    v = loss_sum(out, ns) / (double)ns;
    free(out);
    free(gq);
    free(gk);
    free(work);
    return v;
}

static void report(const char *name, double secs, long reps, double value)
{
    printf("%s %.6f %.17g\n", name, secs / (double)reps, value);
    fflush(stdout);
}

static long arg_reps(int argc, char **argv, int i, long dflt)
{
    long r = i < argc ? strtol(argv[i], NULL, 10) : dflt;

    return r >= 0 ? r : dflt;
}

int main(int argc, char **argv)
{
    const size_t ce_n = 10000, ce_c = 100, nce_n = 4096, nce_d = 128;
    long ce_reps = arg_reps(argc, argv, 1, 10);
    long pairs_reps = arg_reps(argc, argv, 2, 2);
    long ntx_reps = arg_reps(argc, argv, 3, 1);
    double *x, *t, *q, *k, t0, v = 0.0;

    loss_blas_init();
    if (argc > 1 && strcmp(argv[1], "--info") == 0) {
        printf("openblas core: %s\nopenblas config: %s\n", loss_blas_core(),
               loss_blas_config());
        return EXIT_SUCCESS;
    }

    x = inputs(ce_n * ce_c, 0.3);
    t = xmalloc(ce_n, sizeof(*t));
    for (size_t i = 0; i < ce_n; i++)
        t[i] = (double)(i * 37 % ce_c);
    if (ce_reps > 0) {
        struct loss_class_args a = {
            .shape = {.outer = ce_n, .classes = ce_c, .inner = 1},
            .input = x,
            .target = t,
            .apply_log_softmax = true,
            .ignore_index = -100.0,
        };

        ce_once(&a);
        t0 = now();
        for (long r = 0; r < ce_reps; r++)
            v = ce_once(&a);
        report("ce", now() - t0, ce_reps, v);
    }
    free(x);
    free(t);

    q = inputs(nce_n * nce_d, 0.1);
    k = inputs(nce_n * nce_d, 0.2);
    {
        struct loss_nce_args a = {
            .n = nce_n,
            .d = nce_d,
            .query = q,
            .positive_key = k,
            .normalize = true,
            .variant = LOSS_NCE_PAIRS,
            .temperature = 0.1,
        };

        if (pairs_reps > 0) {
            nce_once(&a);
            t0 = now();
            for (long r = 0; r < pairs_reps; r++)
                v = nce_once(&a);
            report("pairs", now() - t0, pairs_reps, v);
        }

        a.variant = LOSS_NCE_NT_XENT;
        a.mask_self = true;
        if (ntx_reps > 0) {
            nce_once(&a);
            t0 = now();
            for (long r = 0; r < ntx_reps; r++)
                v = nce_once(&a);
            report("ntx", now() - t0, ntx_reps, v);
        }
    }
    free(q);
    free(k);
    return EXIT_SUCCESS;
}

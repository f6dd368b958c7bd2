#include "testutil.h"

#include "blas.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Every test binary pins OpenBLAS to one thread before main() and so before
 * any test starts a thread (the same rule as lossd's main). The test
 * library is linked whole, so this runs in every binary that uses it.
 */
__attribute__((constructor)) static void test_blas_init(void)
{
    loss_blas_init();
}

bool agree(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b))
        return a == b;
    return fabs(a - b) <= AGREE_RTOL * fabs(b) + AGREE_ATOL;
}

bool fd_agree(double analytic, double numeric)
{
    double scale = fabs(analytic) > 1.0 ? fabs(analytic) : 1.0;

    return fabs(analytic - numeric) <= FD_TOL * scale;
}

double fd_partial(double (*f)(void *ctx), void *ctx, double *x, size_t i,
                  double h)
{
    double keep = x[i], hi, lo;

    x[i] = keep + h;
    hi = f(ctx);
    x[i] = keep - h;
    lo = f(ctx);
    x[i] = keep;
    return (hi - lo) / (2.0 * h);
}

void test_rng_seed(struct test_rng *r, unsigned long long seed)
{
    r->state = seed;
}

static unsigned long long rng_next(struct test_rng *r)
{
    unsigned long long z = (r->state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double test_rng_uniform(struct test_rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

double test_rng_normal(struct test_rng *r)
{
    double u = test_rng_uniform(r), v = test_rng_uniform(r);

    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

struct test_pool {
    size_t threads;
    unsigned long long seed;
};

struct test_run {
    size_t nblocks;
    size_t *order; /* shuffled block order */
    size_t next;   /* next index into order, under lock */
    pthread_mutex_t lock;
    loss_block_fn fn;
    void *arg;
};

struct test_worker {
    struct test_run *run;
    size_t slot;
};

static void *test_worker_main(void *p)
{
    struct test_worker *w = p;
    struct test_run *run = w->run;

    for (;;) {
        size_t b;

        pthread_mutex_lock(&run->lock);
        if (run->next == run->nblocks) {
            pthread_mutex_unlock(&run->lock);
            return NULL;
        }
        b = run->order[run->next++];
        pthread_mutex_unlock(&run->lock);
        run->fn(run->arg, b, w->slot);
    }
}

static void test_parallel_for(void *ctx, size_t nblocks, loss_block_fn fn,
                              void *arg)
{
    struct test_pool *pool = ctx;
    struct test_run run = {.nblocks = nblocks, .fn = fn, .arg = arg};
    pthread_t tids[64];
    struct test_worker workers[64];
    struct test_rng rng;
    size_t n = pool->threads < 64 ? pool->threads : 64;

    run.order = malloc(nblocks * sizeof(*run.order));
    if (run.order == NULL)
        abort();
    for (size_t i = 0; i < nblocks; i++)
        run.order[i] = i;
    test_rng_seed(&rng, pool->seed + nblocks);
    for (size_t i = nblocks; i > 1; i--) {
        size_t j = (size_t)(test_rng_uniform(&rng) * (double)i);
        size_t t = run.order[i - 1];

        run.order[i - 1] = run.order[j];
        run.order[j] = t;
    }
    pthread_mutex_init(&run.lock, NULL);
    for (size_t i = 0; i < n; i++) {
        workers[i].run = &run;
        workers[i].slot = i;
        if (pthread_create(&tids[i], NULL, test_worker_main, &workers[i]))
            abort();
    }
    for (size_t i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    pthread_mutex_destroy(&run.lock);
    free(run.order);
}

struct loss_exec *test_exec_threads(size_t threads, unsigned long long seed)
{
    struct loss_exec *ex = calloc(1, sizeof(*ex));
    struct test_pool *pool = calloc(1, sizeof(*pool));

    if (ex == NULL || pool == NULL)
        abort();
    pool->threads = threads ? threads : 1;
    pool->seed = seed;
    ex->parallel_for = test_parallel_for;
    ex->ctx = pool;
    ex->slots = pool->threads < 64 ? pool->threads : 64;
    return ex;
}

void test_exec_free(struct loss_exec *ex)
{
    if (ex == NULL)
        return;
    free(ex->ctx);
    free(ex);
}

int test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

const char *test_source_path(const char *rel)
{
    static char path[4096];
    const char *root = getenv("LOSSD_SOURCE_ROOT");

    snprintf(path, sizeof(path), "%s/%s", root ? root : ".", rel);
    return path;
}

char *test_read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL)
        return NULL;
    do {
        if (cap - len < 65536) {
            char *nb = realloc(buf, cap ? cap * 2 : 65536 * 2);

            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap = cap ? cap * 2 : 65536 * 2;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    if (ret_len != NULL)
        *ret_len = len;
    return buf;
}

/*
 * testutil.h - what every test of lossd shares: the agreement rule against
 * PyTorch, a finite-difference helper, executors that shuffle blocks across
 * threads, and the path of the test data.
 */
#ifndef LOSSD_TESTS_TESTUTIL_H
#define LOSSD_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <check.h>

#include "exec.h"

/*
 * The agreement rule, stated once: |a - b| <= 1e-9 * |b| + 1e-11, NaN equals
 * NaN, infinities match in sign.
 *
 * Why these numbers: lossd and PyTorch both compute in float64 but sum in
 * different orders (PyTorch's cascade sum and vectorised exp/log, our fixed
 * pairwise blocks and glibc's libm), so results differ by a few ulps times
 * the condition of the sum: about 1e-15 relative per operation, growing with
 * log2(n) and with cancellation. 1e-9 relative leaves six orders of magnitude
 * of headroom for that while still catching any formula error (those are
 * >= 1e-6 relative in practice); the 1e-11 absolute term covers results that
 * are zero up to cancellation (a gradient component that should be 0 comes
 * out as 1e-17).
 */
#define AGREE_RTOL 1e-9
#define AGREE_ATOL 1e-11
bool agree(double a, double b);

/*
 * The finite-difference rule: central differences with step h have error
 * O(h^2 f''') from truncation plus O(eps |f| / h) from rounding; with h =
 * 1e-6 on values of order 1 both are about 1e-10 to 1e-9, so analytic and
 * numeric gradients must match within 1e-6 * max(1, |g|).
 */
#define FD_STEP 1e-6
#define FD_TOL  1e-6
bool fd_agree(double analytic, double numeric);

/*
 * Central difference of f at x[i]: (f(x + h e_i) - f(x - h e_i)) / 2h,
 * restoring x[i] afterwards.
 */
double fd_partial(double (*f)(void *ctx), void *ctx, double *x, size_t i,
                  double h);

/*
 * A reproducible generator (splitmix64), so every random test logs its seed
 * and can be replayed.
 */
struct test_rng {
    unsigned long long state;
};
void test_rng_seed(struct test_rng *r, unsigned long long seed);
double test_rng_uniform(struct test_rng *r); /* [0, 1) */
double test_rng_normal(struct test_rng *r);

/*
 * Executors for the bit-identity tests. test_exec_threads() runs blocks on
 * `threads` pthreads, each taking blocks in an order shuffled with `seed`.
 * Release with test_exec_free().
 */
struct loss_exec *test_exec_threads(size_t threads, unsigned long long seed);
void test_exec_free(struct loss_exec *ex);

/* Runs every test of s (Check's CK_ENV verbosity); the exit status. */
int test_run(Suite *s);

/* Path of a file under the source tree: $LOSSD_SOURCE_ROOT/rel. Static. */
const char *test_source_path(const char *rel);

/* Reads a whole file (new, caller frees); NULL on error. */
char *test_read_file(const char *path, size_t *ret_len);

#endif

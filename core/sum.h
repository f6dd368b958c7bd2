/*
 * sum.h - the core's one summation, reproducible by construction.
 *
 * Results of lossd must be bit-identical for a given binary whatever the
 * number of threads or how a request is split. Every reduction in the core
 * therefore goes through loss_sum(), whose order of additions depends only on
 * n: pairwise summation over fixed blocks of LOSS_SUM_BLOCK elements (each
 * block summed left to right with four interleaved accumulators), the block
 * sums then combined pairwise. Its error grows as O(log n), like PyTorch's
 * cascade sum, and it never calls BLAS (ddot/dasum may change their order
 * with the CPU kernel or thread count).
 */
#ifndef LOSSD_CORE_SUM_H
#define LOSSD_CORE_SUM_H

#include <stddef.h>

#define LOSS_SUM_BLOCK 128

/* The sum of x[0..n); 0.0 for n == 0. NaN and infinities propagate. */
double loss_sum(const double *x, size_t n);

/* The sum of x[i * stride] for i in [0, n); same order rules as loss_sum. */
double loss_sum_strided(const double *x, size_t n, size_t stride);

#endif

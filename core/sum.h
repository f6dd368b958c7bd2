/*
 * sum.h - the core's one summation, reproducible by construction.
 *
 * Results of lossd must be bit-identical for a given binary whatever the
 * number of threads or how a request is split. Every reduction in the core
 * therefore goes through loss_sum(), whose order of additions depends only on
 * n: pairwise summation over fixed blocks of LOSS_SUM_BLOCK elements (each
 * block summed left to right with four interleaved accumulators), the block
 * sums then combined pairwise. It never calls BLAS (ddot/dasum may change
 * their order with the CPU kernel or thread count).
 *
 * The tree: for n > LOSS_SUM_BLOCK, loss_sum(x, n) is exactly
 * loss_sum(x, h) + loss_sum(x + h, n - h) with h = ceil(floor(n / B) / 2) * B,
 * B = LOSS_SUM_BLOCK. So a caller may sum the two halves (or any subtrees)
 * on different threads and add them back up the same tree for the same bits,
 * and a strided or tiled sum can rebuild the same order (softmax.c does).
 *
 * Error: an element passes through at most h = 36 + ceil(log2(ceil(n / B)))
 * roundings (34 in its accumulator, 2 joining the accumulators, one per level
 * of the tree), so unless a partial sum overflows,
 *   |loss_sum(x, n) - sum x_i| <= gamma(h) * sum |x_i|,
 *   gamma(h) = h u / (1 - h u), u = 2^-53:
 * O(log n), like PyTorch's cascade sum (a left-to-right loop has h = n - 1).
 * An overflowed partial sum never comes back finite.
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

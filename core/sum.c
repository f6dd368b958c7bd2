/*
 * sum.c - the fixed-order pairwise sum (sum.h).
 */
#include "sum.h"

static double block_sum(const double *x, size_t n, size_t stride)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {
        s0 += x[i * stride];
        s1 += x[(i + 1) * stride];
        s2 += x[(i + 2) * stride];
        s3 += x[(i + 3) * stride];
    }
    for (; i < n; i++)
        s0 += x[i * stride];
    return (s0 + s1) + (s2 + s3);
}

double loss_sum_strided(const double *x, size_t n, size_t stride)
{
    size_t half;

    if (n <= LOSS_SUM_BLOCK)
        return block_sum(x, n, stride);
    /* Split at a block boundary so the tree depends on n alone. */
    half = (n / LOSS_SUM_BLOCK + 1) / 2 * LOSS_SUM_BLOCK;
    return loss_sum_strided(x, half, stride) +
           loss_sum_strided(x + half * stride, n - half, stride);
}

double loss_sum(const double *x, size_t n)
{
    return loss_sum_strided(x, n, 1);
}

/*
 * vmath.h - exp and log over arrays, with glibc's vector math library.
 *
 * glibc's libmvec evaluates 2 (SSE2) or 4 (AVX2) doubles per call, to within
 * 4 ulp of the exact result and with the scalar functions' special values
 * (exp(-inf) = 0, exp(+inf) = inf, NaN in, NaN out, overflow to inf). No
 * -ffast-math is involved: the vector entry points are called explicitly.
 *
 * Every element goes through the same vector routine, the last partial
 * vector included (padded), so an element's result depends only on its value
 * and the CPU's instruction set, never on its position or on how an array
 * was split into blocks: results stay bit-identical for a given binary on a
 * given machine.
 */
#ifndef LOSSD_CORE_VMATH_H
#define LOSSD_CORE_VMATH_H

#include <stddef.h>

/* y[i] = exp(x[i]) for i in [0, n). x and y may be the same array. */
void loss_vexp(const double *x, double *y, size_t n);

/* y[i] = log(x[i]) for i in [0, n). x and y may be the same array. */
void loss_vlog(const double *x, double *y, size_t n);

/* "avx2" or "sse2": the vector routines in use on this CPU. */
const char *loss_vmath_isa(void);

#endif

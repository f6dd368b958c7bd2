/*
 * vmath.c - exp and log over arrays through libmvec's fixed entry points
 * (vmath.h).
 */
#include "vmath.h"

#include <immintrin.h>
#include <string.h>

/* The vector ABI entry points of libmvec (x86-64 vector function ABI). */
__m128d _ZGVbN2v_exp(__m128d x);
__m128d _ZGVbN2v_log(__m128d x);
__attribute__((target("avx2"))) __m256d _ZGVdN4v_exp(__m256d x);
__attribute__((target("avx2"))) __m256d _ZGVdN4v_log(__m256d x);

static int have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

#define DEFINE_AVX2(name, fn)                                                  \
    __attribute__((target("avx2"))) static void name(const double *x,          \
                                                     double *y, size_t n)      \
    {                                                                          \
        size_t i = 0;                                                          \
                                                                               \
        for (; i + 4 <= n; i += 4)                                             \
            _mm256_storeu_pd(y + i, fn(_mm256_loadu_pd(x + i)));               \
        if (i < n) {                                                           \
            double buf[4] = {0.0, 0.0, 0.0, 0.0};                              \
                                                                               \
            memcpy(buf, x + i, (n - i) * sizeof(double));                      \
            _mm256_storeu_pd(buf, fn(_mm256_loadu_pd(buf)));                   \
            memcpy(y + i, buf, (n - i) * sizeof(double));                      \
        }                                                                      \
    }

#define DEFINE_SSE2(name, fn)                                                  \
    static void name(const double *x, double *y, size_t n)                     \
    {                                                                          \
        size_t i = 0;                                                          \
                                                                               \
        for (; i + 2 <= n; i += 2)                                             \
            _mm_storeu_pd(y + i, fn(_mm_loadu_pd(x + i)));                     \
        if (i < n) {                                                           \
            double buf[2] = {x[i], 0.0};                                       \
                                                                               \
            _mm_storeu_pd(buf, fn(_mm_loadu_pd(buf)));                         \
            y[i] = buf[0];                                                     \
        }                                                                      \
    }

DEFINE_AVX2(vexp_avx2, _ZGVdN4v_exp)
DEFINE_AVX2(vlog_avx2, _ZGVdN4v_log)
DEFINE_SSE2(vexp_sse2, _ZGVbN2v_exp)
DEFINE_SSE2(vlog_sse2, _ZGVbN2v_log)

void loss_vexp(const double *x, double *y, size_t n)
{
    if (have_avx2())
        vexp_avx2(x, y, n);
    else
        vexp_sse2(x, y, n);
}

void loss_vlog(const double *x, double *y, size_t n)
{
    if (have_avx2())
        vlog_avx2(x, y, n);
    else
        vlog_sse2(x, y, n);
}

const char *loss_vmath_isa(void)
{
    return have_avx2() ? "avx2" : "sse2";
}

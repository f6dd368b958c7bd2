/*
 * test_vmath.c - the vector exp and log of core/vmath.c against glibc's
 * scalar functions: within 4 ulp (libmvec's documented bound), the special
 * values, and results independent of an element's position.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "vmath.h"

/* Distance in units in the last place between two finite doubles. */
static uint64_t ulps(double a, double b)
{
    int64_t ia, ib;

    memcpy(&ia, &a, sizeof(a));
    memcpy(&ib, &b, sizeof(b));
    if (ia < 0)
        ia = INT64_MIN - ia;
    if (ib < 0)
        ib = INT64_MIN - ib;
    return ia > ib ? (uint64_t)(ia - ib) : (uint64_t)(ib - ia);
}

static bool same(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return a == b && signbit(a) == signbit(b);
}

START_TEST(test_exp_log_accuracy)
{
    struct test_rng rng;
    enum { N = 100003 };
    double *x = malloc(N * sizeof(*x)), *y = malloc(N * sizeof(*y));
    uint64_t worst_exp = 0, worst_log = 0;

    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    test_rng_seed(&rng, 5);
    for (size_t i = 0; i < N; i++)
        x[i] = (test_rng_uniform(&rng) - 0.5) * 1400.0;
    loss_vexp(x, y, N);
    for (size_t i = 0; i < N; i++) {
        uint64_t u = ulps(y[i], exp(x[i]));

        if (u > worst_exp)
            worst_exp = u;
    }
    for (size_t i = 0; i < N; i++)
        x[i] = exp((test_rng_uniform(&rng) - 0.5) * 1400.0);
    loss_vlog(x, y, N);
    for (size_t i = 0; i < N; i++) {
        uint64_t u = ulps(y[i], log(x[i]));

        if (u > worst_log)
            worst_log = u;
    }
    fprintf(stderr, "vmath %s: worst exp %llu ulp, log %llu ulp\n",
            loss_vmath_isa(), (unsigned long long)worst_exp,
            (unsigned long long)worst_log);
    ck_assert_uint_le(worst_exp, 4);
    ck_assert_uint_le(worst_log, 4);
    free(x);
    free(y);
}
END_TEST

START_TEST(test_special_values)
{
    double x[7] = {-INFINITY, INFINITY, NAN, 0.0, -0.0, 710.0, -746.0};
    double ye[7], yl[7];
    double lx[7] = {0.0, -0.0, -1.0, INFINITY, NAN, 1.0, 4.9e-324};

    loss_vexp(x, ye, 7);
    for (size_t i = 0; i < 7; i++)
        ck_assert_msg(same(ye[i], exp(x[i])), "exp(%g): %g vs %g", x[i], ye[i],
                      exp(x[i]));
    loss_vlog(lx, yl, 7);
    for (size_t i = 0; i < 7; i++)
        ck_assert_msg(same(yl[i], log(lx[i])) ||
                          (isfinite(yl[i]) && ulps(yl[i], log(lx[i])) <= 4),
                      "log(%g): %g vs %g", lx[i], yl[i], log(lx[i]));
}
END_TEST

/* The same value gives the same bits wherever it sits (tails are padded). */
START_TEST(test_position_independent)
{
    double x[11], y[11], z[1];

    for (size_t i = 0; i < 11; i++)
        x[i] = 0.3183098861837907 * (double)(i + 1);
    loss_vexp(x, y, 11);
    for (size_t i = 0; i < 11; i++) {
        loss_vexp(&x[i], z, 1);
        ck_assert_msg(memcmp(&y[i], z, sizeof(z)) == 0, "element %zu", i);
    }
    loss_vexp(x, x, 11); /* in place */
    ck_assert(memcmp(x, y, sizeof(y)) == 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core_vmath");
    TCase *tc = tcase_create("vmath");

    tcase_add_test(tc, test_exp_log_accuracy);
    tcase_add_test(tc, test_special_values);
    tcase_add_test(tc, test_position_independent);
    suite_add_tcase(s, tc);
    return test_run(s);
}

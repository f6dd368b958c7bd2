/*
 * test_sum.c - core/sum.c: the error bound sum.h states, checked against an
 * exactly rounded reference on inputs chosen to break summations; the
 * special values; and the determinism rule (the same bits whatever the
 * address, the stride, or how the tree's subtrees are spread over threads).
 *
 * The bound is the one sum.h states: unless a partial sum overflows,
 *   |loss_sum(x) - S| <= gamma(h) * A,  gamma(h) = h u / (1 - h u),
 * with S = sum x_i, A = sum |x_i|, u = 2^-53 and h = 36 + ceil(log2(ceil(n /
 * LOSS_SUM_BLOCK))). The tests compare with ref = S rounded to nearest, so
 * they allow |loss_sum - ref| <= (h + 2) u fl(A): gamma(h) A for loss_sum's
 * own error, u A for the rounding of ref (|ref - S| <= u |S| <= u A), and a
 * margin of at least u A - O(h^2 u^2 A) for fl(A) being A rounded and for
 * the rounding of the product itself. That tolerance is rigorous, not
 * empirical: a failure means the claim is wrong. It is also tight enough to
 * catch a left-to-right loop (h = n - 1): on the million-term inputs below
 * its error is 1.3 (uniform), 300 to 2300 (all equal) and 10^4 (2^53 and
 * ones) times the tolerance.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "sum.h"
#include "testutil.h"

#define U 0x1p-53

/*
 * Most non-overlapping partials the reference can hold: each partial owns
 * at least one bit of the 2098 from 2^-1074 to 2^1023, plus carries.
 */
#define REF_PARTIALS 2200

/*
 * Shewchuk's exact summation of x[0..n) (finite, none above 2^1000 in
 * magnitude, so no partial can overflow), rounded to nearest once at the
 * end, as Python's math.fsum: the partials p[0..k) are non-overlapping,
 * increasing in magnitude, and sum exactly to the sum so far; the final
 * loop adds them from the top while that is exact, then corrects a tie that
 * lower partials break.
 */
static double fsum_finite(const double *x, size_t n, bool absolute)
{
    double p[REF_PARTIALS], hi, lo = 0.0;
    size_t k = 0;

    for (size_t e = 0; e < n; e++) {
        double v = absolute ? fabs(x[e]) : x[e];
        size_t i = 0;

        for (size_t j = 0; j < k; j++) {
            double y = p[j], t;

            if (fabs(v) < fabs(y)) {
                t = v;
                v = y;
                y = t;
            }
            hi = v + y;
            lo = y - (hi - v);
            if (lo != 0.0)
                p[i++] = lo;
            v = hi;
        }
        k = i;
        if (v != 0.0) {
            /* not ck_assert(): Check logs every assertion it passes */
            if (k == REF_PARTIALS)
                ck_abort_msg("more than %d partials", REF_PARTIALS);
            p[k++] = v;
        }
    }
    if (k == 0)
        return 0.0;
    hi = p[--k];
    lo = 0.0;
    while (k > 0) {
        double v = hi, y = p[--k];

        hi = v + y;
        lo = y - (hi - v);
        if (lo != 0.0)
            break;
    }
    if (k > 0 &&
        ((lo < 0.0 && p[k - 1] < 0.0) || (lo > 0.0 && p[k - 1] > 0.0))) {
        double y = lo * 2.0, v = hi + y;

        if (y == v - hi)
            hi = v;
    }
    return hi;
}

/*
 * The exactly rounded sum of x[0..n) (of |x_i| when absolute): NaN if any
 * term is NaN or both infinities occur, an infinity if one does; inputs
 * above 2^1000 are scaled by 2^-64 first (checked exact), so that a sum
 * beyond DBL_MAX rounds to infinity as IEEE addition does.
 */
static double ref_sum(const double *x, size_t n, bool absolute)
{
    bool pinf = false, ninf = false, big = false;
    double *scaled, r;

    for (size_t i = 0; i < n; i++) {
        double v = absolute ? fabs(x[i]) : x[i];

        if (isnan(v))
            return NAN;
        pinf |= v == INFINITY;
        ninf |= v == -INFINITY;
        big |= fabs(v) > 0x1p1000;
    }
    if (pinf && ninf)
        return NAN;
    if (pinf || ninf)
        return pinf ? INFINITY : -INFINITY;
    if (!big)
        return fsum_finite(x, n, absolute);
    scaled = malloc((n ? n : 1) * sizeof(*scaled));
    ck_assert_ptr_nonnull(scaled);
    for (size_t i = 0; i < n; i++) {
        scaled[i] = ldexp(x[i], -64);
        if (ldexp(scaled[i], 64) != x[i])
            ck_abort_msg("%g is too small to scale", x[i]);
    }
    r = ldexp(fsum_finite(scaled, n, absolute), 64);
    free(scaled);
    return r;
}

/* ceil(log2(b)) for b >= 1. */
static unsigned ceil_log2(size_t b)
{
    unsigned l = 0;

    while (((size_t)1 << l) < b)
        l++;
    return l;
}

/* h of sum.h: the most roundings an element of n passes through. */
static unsigned sum_height(size_t n)
{
    return 36 + ceil_log2(loss_blocks(n ? n : 1, LOSS_SUM_BLOCK));
}

/* Worst error seen by check_bound(), in units of u * A, for the log. */
static double worst_ratio;

static void log_worst(const char *test)
{
    fprintf(stderr, "sum %s: worst error %.3g u * sum |x_i|\n", test,
            worst_ratio);
    worst_ratio = 0.0;
}

/*
 * Checks loss_sum(x, n) against the bound (see the top of the file) and
 * returns it. what names the input in a failure.
 */
static double check_bound(const char *what, const double *x, size_t n)
{
    double s = loss_sum(x, n), ref = ref_sum(x, n, false);
    double a = ref_sum(x, n, true), err, tol;

    ck_assert_msg(isfinite(a), "%s: sum |x| overflows, the bound is void",
                  what);
    ck_assert_msg(isfinite(s), "%s: loss_sum %g, exact %.17g", what, s, ref);
    err = fabs(s - ref);
    tol = (double)(sum_height(n) + 2) * U * a;
    if (a > 0.0 && err / (U * a) > worst_ratio)
        worst_ratio = err / (U * a);
    ck_assert_msg(err <= tol,
                  "%s (n = %zu): loss_sum %.17g, exact %.17g, error %g > %g "
                  "(h = %u)",
                  what, n, s, ref, err, tol, sum_height(n));
    return s;
}

static double *doubles(size_t n)
{
    double *x = malloc((n ? n : 1) * sizeof(*x));

    ck_assert_ptr_nonnull(x);
    return x;
}

/* A random permutation of x[0..n). */
static void shuffle(struct test_rng *rng, double *x, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(test_rng_uniform(rng) * (double)i);
        double t = x[i - 1];

        x[i - 1] = x[j];
        x[j] = t;
    }
}

/* A normal deviate times 2^e, e uniform in [-span, span]. */
static double wide(struct test_rng *rng, int span)
{
    int e = (int)(test_rng_uniform(rng) * (2 * span + 1)) - span;

    return ldexp(test_rng_normal(rng), e);
}

/* The reference itself, on sums whose exact value is known. */
START_TEST(test_reference_is_exact)
{
    double a[3] = {1e-16, 1.0, 1e16};           /* the tie fsum documents */
    double b[4] = {1e100, 1.0, -1e100, 1e-100}; /* total cancellation */
    double c[2] = {DBL_MAX, DBL_MAX};
    double d[3] = {DBL_MAX, DBL_MAX, -DBL_MAX};
    double e[3] = {0x1p-1074, 0x1p-1074, -0x1p-1073};

    ck_assert(ref_sum(a, 3, false) == 10000000000000002.0);
    ck_assert(ref_sum(b, 4, false) == 1.0 + 1e-100);
    ck_assert(ref_sum(c, 2, false) == INFINITY);
    ck_assert(ref_sum(d, 3, false) == DBL_MAX);
    ck_assert(ref_sum(e, 3, false) == 0.0);
    ck_assert(ref_sum(e, 3, true) == 0x1p-1072);
}
END_TEST

/*
 * x, -x pairs of wide magnitudes with tiny residues: the exact sum is the
 * sum of the residues, 10^-12 of the terms, so relative to S the error may
 * be huge; relative to A it must stay within the bound. Shuffled, partners
 * meet only high in the tree.
 */
START_TEST(test_bound_cancellation)
{
    struct test_rng rng;
    size_t n = 3 * 40000;
    double *x = doubles(n);

    test_rng_seed(&rng, 101);
    for (size_t i = 0; i < n; i += 3) {
        double v = wide(&rng, 30);

        x[i] = v;
        x[i + 1] = -v;
        x[i + 2] = v * 1e-12 * test_rng_normal(&rng);
    }
    check_bound("pairs in place", x, n);
    shuffle(&rng, x, n);
    check_bound("pairs shuffled", x, n);
    log_worst("cancellation");
    free(x);
}
END_TEST

/*
 * Magnitudes from 2^-300 to 2^300, then from 2^-960 to 2^960 (the
 * reference's partials then span most of the exponent range).
 */
START_TEST(test_bound_magnitudes)
{
    struct test_rng rng;
    size_t n = 100003;
    double *x = doubles(n);

    test_rng_seed(&rng, 202);
    for (size_t i = 0; i < n; i++)
        x[i] = wide(&rng, 300);
    check_bound("2^+-300", x, n);
    for (size_t i = 0; i < n; i++)
        x[i] = wide(&rng, 960);
    check_bound("2^+-960", x, n);
    /* subnormals: every sum of them is exact */
    for (size_t i = 0; i < n; i++)
        x[i] = ldexp(test_rng_normal(&rng), -1060);
    ck_assert(loss_sum(x, n) == ref_sum(x, n, false));
    log_worst("magnitudes");
    free(x);
}
END_TEST

/*
 * A million terms: h = 49, a tolerance of 51 u A = 5.7e-15 A, where a
 * left-to-right loop's error grows with n instead.
 */
START_TEST(test_bound_long)
{
    struct test_rng rng;
    size_t n = 1000000;
    double *x = doubles(n);

    test_rng_seed(&rng, 303);
    for (size_t i = 0; i < n; i++)
        x[i] = test_rng_normal(&rng);
    check_bound("normal", x, n);
    for (size_t i = 0; i < n; i++)
        x[i] = test_rng_uniform(&rng);
    check_bound("uniform", x, n);
    /*
     * 2^53 swallows every 1 added to it on its own (the ulp there is 2):
     * the ones must be summed among themselves first. Exact: n - 2.
     */
    for (size_t i = 1; i + 1 < n; i++)
        x[i] = 1.0;
    x[0] = 0x1p53;
    x[n - 1] = -0x1p53;
    check_bound("2^53, ones, -2^53", x, n);
    log_worst("long");
    free(x);
}
END_TEST

/* All equal: A = |S|, so the bound is relative to the result itself. */
START_TEST(test_bound_all_equal)
{
    static const size_t sizes[] = {1,   2,   3,    4,    5,     127,
                                   128, 129, 1000, 1023, 65537, 1000000};
    static const double values[] = {0.1, 1.0 / 3.0, -2.0 / 7.0, 1.0};
    double *x = doubles(1000000);

    for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++)
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            char what[64];
            double s;

            for (size_t i = 0; i < sizes[k]; i++)
                x[i] = values[v];
            snprintf(what, sizeof(what), "all %.17g", values[v]);
            s = check_bound(what, x, sizes[k]);
            if (values[v] == 1.0) /* integers below 2^53: exact */
                ck_assert(s == (double)sizes[k]);
        }
    log_worst("all_equal");
    free(x);
}
END_TEST

/*
 * Alternating signs: the alternating harmonic series (S -> ln 2, A ~ ln n)
 * and (-1)^i (1 + i 2^-30), whose partial sums stay small while the terms
 * carry low bits.
 */
START_TEST(test_bound_alternating)
{
    size_t n = 1000001;
    double *x = doubles(n);

    for (size_t i = 0; i < n; i++)
        x[i] = (i % 2 ? -1.0 : 1.0) / (double)(i + 1);
    check_bound("alternating harmonic", x, n);
    for (size_t i = 0; i < n; i++)
        x[i] = (i % 2 ? -1.0 : 1.0) * (1.0 + (double)i * 0x1p-30);
    check_bound("alternating 1 + i 2^-30", x, n);
    log_worst("alternating");
    free(x);
}
END_TEST

/*
 * Near overflow. With A at 0.45 DBL_MAX no partial sum can overflow (each
 * is at most (1 + gamma(h)) times the A of its own terms) and the bound
 * holds; once A is beyond DBL_MAX the bound is void, and what remains is
 * that an overflow never comes back as a finite number.
 */
START_TEST(test_bound_near_overflow)
{
    struct test_rng rng;
    size_t n = 10007;
    double *x = doubles(n);
    double big[4] = {DBL_MAX, DBL_MAX, -DBL_MAX, -DBL_MAX};
    double two[2] = {DBL_MAX, DBL_MAX};

    test_rng_seed(&rng, 404);
    for (size_t i = 0; i < n; i++)
        x[i] = DBL_MAX / (double)n * 0.9 * test_rng_uniform(&rng);
    check_bound("positive, A near DBL_MAX", x, n);
    for (size_t i = 0; i < n; i++)
        x[i] = DBL_MAX / (double)n * 0.9 * (test_rng_uniform(&rng) - 0.5);
    check_bound("mixed, A near DBL_MAX", x, n);
    ck_assert(loss_sum(two, 2) == INFINITY);
    ck_assert(ref_sum(two, 2, false) == INFINITY);
    /* exact sum 0, but DBL_MAX + DBL_MAX overflows first */
    ck_assert(!isfinite(loss_sum(big, 4)));
    log_worst("near_overflow");
    free(x);
}
END_TEST

/* NaN and infinities, in the first, a middle and the last block. */
START_TEST(test_special_values)
{
    size_t n = 1000, at[3] = {0, 517, 999};
    double *x = doubles(n);

    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < n; i++)
            x[i] = (double)(i % 13) - 6.0;
        x[at[k]] = NAN;
        ck_assert_msg(isnan(loss_sum(x, n)), "NaN at %zu", at[k]);
        x[at[k]] = INFINITY;
        ck_assert(loss_sum(x, n) == INFINITY);
        x[at[k]] = -INFINITY;
        ck_assert(loss_sum(x, n) == -INFINITY);
        x[(at[k] + 500) % n] = INFINITY;
        ck_assert(isnan(loss_sum(x, n)));
        ck_assert(isnan(ref_sum(x, n, false)));
    }
    free(x);
}
END_TEST

/*
 * Empty: +0 (what torch.sum gives). One element: itself, bit for bit but for
 * -0, which comes back +0 as from torch.sum (the accumulators start at +0).
 */
START_TEST(test_empty_and_single)
{
    static const double one[] = {0.1,    -3.5, DBL_MAX,  -DBL_MAX, DBL_MIN,
                                 4e-324, 0.0,  INFINITY, -0.0};
    double s;

    s = loss_sum(NULL, 0);
    ck_assert(s == 0.0 && !signbit(s));
    s = loss_sum_strided(NULL, 0, 3);
    ck_assert(s == 0.0 && !signbit(s));
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
        s = loss_sum(&one[i], 1);
        ck_assert_msg(s == one[i], "%g", one[i]);
        ck_assert(signbit(s) == (one[i] != 0.0 && signbit(one[i])));
    }
    s = loss_sum((const double[]){NAN}, 1);
    ck_assert(isnan(s));
}
END_TEST

static bool same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

/* Sizes around the block and tree boundaries, and a long one. */
static const size_t det_sizes[] = {0,    1,    3,     4,      127,    128,
                                   129,  255,  256,   257,    383,    1000,
                                   4097, 8191, 12345, 100003, 1000000};

/* Wide magnitudes and cancellation: any other order changes the bits. */
static double *det_data(size_t n, unsigned long long seed)
{
    struct test_rng rng;
    double *x = doubles(n);

    test_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = wide(&rng, 40);
    return x;
}

/*
 * The same values at other addresses (every alignment modulo 32 bytes) and
 * strided (other values in between) give the same bits: the order depends
 * on n alone, as softmax.c relies on when it sums a row either way.
 */
START_TEST(test_address_and_stride_free)
{
    for (size_t k = 0; k < sizeof(det_sizes) / sizeof(det_sizes[0]); k++) {
        size_t n = det_sizes[k];
        double *x = det_data(n, 500 + k), *buf = doubles(7 * n + 8);
        double s = loss_sum(x, n);

        for (size_t off = 1; off < 4; off++) {
            memcpy(buf + off, x, n * sizeof(*x));
            ck_assert_msg(same_bits(loss_sum(buf + off, n), s),
                          "n = %zu at offset %zu", n, off);
        }
        for (size_t stride = 2; stride <= 7; stride += 5) {
            for (size_t i = 0; i < stride * n + 1; i++)
                buf[i] = NAN; /* a wrong index shows */
            for (size_t i = 0; i < n; i++)
                buf[1 + i * stride] = x[i];
            ck_assert_msg(same_bits(loss_sum_strided(buf + 1, n, stride), s),
                          "n = %zu, stride %zu", n, stride);
        }
        free(buf);
        free(x);
    }
}
END_TEST

/* The split of sum.h: the first half of n > LOSS_SUM_BLOCK. */
static size_t tree_half(size_t n)
{
    return (n / LOSS_SUM_BLOCK + 1) / 2 * LOSS_SUM_BLOCK;
}

struct span {
    size_t off, len;
};

/* The subtrees `levels` below the root of n's tree, in order, from *k on. */
static void tree_spans(size_t off, size_t n, unsigned levels, struct span *sp,
                       size_t *k)
{
    if (levels == 0 || n <= LOSS_SUM_BLOCK) {
        sp[(*k)++] = (struct span){off, n};
        return;
    }
    tree_spans(off, tree_half(n), levels - 1, sp, k);
    tree_spans(off + tree_half(n), n - tree_half(n), levels - 1, sp, k);
}

/* Adds the subtrees' sums part[*k...] back up the same tree. */
static double tree_combine(size_t n, unsigned levels, const double *part,
                           size_t *k)
{
    double left, right;

    if (levels == 0 || n <= LOSS_SUM_BLOCK)
        return part[(*k)++];
    left = tree_combine(tree_half(n), levels - 1, part, k);
    right = tree_combine(n - tree_half(n), levels - 1, part, k);
    return left + right;
}

struct split_job {
    const double *x;
    const struct span *spans;
    double *part;
    atomic_uint *runs;
};

/* Block b sums subtree b, writing only part[b]. */
static void split_block(void *arg, size_t block, size_t slot)
{
    struct split_job *j = arg;

    (void)slot;
    j->part[block] = loss_sum(j->x + j->spans[block].off, j->spans[block].len);
    atomic_fetch_add(&j->runs[block], 1u);
}

/*
 * The determinism rule for a sum spread over threads: the subtrees of
 * loss_sum's tree at any depth (down to single blocks), summed by the blocks
 * of an executor in whatever order and on whatever threads, then added back
 * up the same tree, give exactly loss_sum's bits.
 */
START_TEST(test_split_over_executors)
{
    struct loss_exec *ex[4] = {NULL, test_exec_threads(2, 61),
                               test_exec_threads(3, 62),
                               test_exec_threads(8, 63)};
    static const unsigned depths[] = {1, 2, 5, 64};

    for (size_t k = 0; k < sizeof(det_sizes) / sizeof(det_sizes[0]); k++) {
        size_t n = det_sizes[k];
        size_t cap = loss_blocks(n ? n : 1, LOSS_SUM_BLOCK);
        double *x = det_data(n, 900 + k), *part = doubles(cap);
        struct span *spans = malloc(cap * sizeof(*spans));
        atomic_uint *runs = malloc(cap * sizeof(*runs));
        double s = loss_sum(x, n);

        ck_assert_ptr_nonnull(spans);
        ck_assert_ptr_nonnull(runs);
        for (size_t d = 0; d < sizeof(depths) / sizeof(depths[0]); d++) {
            size_t nspans = 0, used = 0;

            tree_spans(0, n, depths[d], spans, &nspans);
            ck_assert_uint_le(nspans, cap);
            for (size_t e = 0; e < 4; e++) {
                struct split_job job = {x, spans, part, runs};
                size_t once = 0;
                double t;

                for (size_t b = 0; b < nspans; b++) {
                    atomic_init(&runs[b], 0u);
                    part[b] = NAN;
                }
                loss_exec_run(ex[e], nspans, split_block, &job);
                for (size_t b = 0; b < nspans; b++)
                    once += atomic_load(&runs[b]) == 1;
                ck_assert_uint_eq(once, nspans);
                used = 0;
                t = tree_combine(n, depths[d], part, &used);
                ck_assert_uint_eq(used, nspans);
                ck_assert_msg(same_bits(t, s),
                              "n = %zu, depth %u, executor %zu: %.17g vs "
                              "%.17g",
                              n, depths[d], e, t, s);
            }
        }
        free(runs);
        free(spans);
        free(part);
        free(x);
    }
    for (size_t e = 0; e < 4; e++)
        test_exec_free(ex[e]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core_sum");
    TCase *tc = tcase_create("sum");

    tcase_add_test(tc, test_reference_is_exact);
    tcase_add_test(tc, test_bound_cancellation);
    tcase_add_test(tc, test_bound_magnitudes);
    tcase_add_test(tc, test_bound_long);
    tcase_add_test(tc, test_bound_all_equal);
    tcase_add_test(tc, test_bound_alternating);
    tcase_add_test(tc, test_bound_near_overflow);
    tcase_add_test(tc, test_special_values);
    tcase_add_test(tc, test_empty_and_single);
    tcase_add_test(tc, test_address_and_stride_free);
    tcase_add_test(tc, test_split_over_executors);
    suite_add_tcase(s, tc);
    return test_run(s);
}

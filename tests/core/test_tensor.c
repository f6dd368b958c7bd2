/*
 * test_tensor.c - shapes, broadcasting, the reproducible sum, the status
 * helpers and the serial executor of core/.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "exec.h"
#include "status.h"
#include "sum.h"
#include "tensor.h"
#include "testutil.h"

START_TEST(test_shape_numel_overflow)
{
    size_t shape[3] = {SIZE_MAX / 2, 3, 1};
    size_t ok[3] = {2, 3, 4};
    size_t n = 7;

    ck_assert(!tensor_shape_numel(shape, 3, &n));
    ck_assert_uint_eq(n, 7);
    ck_assert(tensor_shape_numel(ok, 3, &n));
    ck_assert_uint_eq(n, 24);
    ck_assert(tensor_shape_numel(ok, 0, &n));
    ck_assert_uint_eq(n, 1);
    shape[0] = 0;
    ck_assert(tensor_shape_numel(shape, 3, &n));
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_broadcast)
{
    size_t a[2] = {2, 3}, b[1] = {3}, c[2] = {4, 1}, d[1] = {4};
    struct tensor_bcast bc;
    size_t bad = 99;

    ck_assert(tensor_broadcast(a, 2, b, 1, &bc, NULL));
    ck_assert_uint_eq(bc.ndim, 2);
    ck_assert_uint_eq(bc.numel, 6);
    ck_assert(bc.a_is_full);
    ck_assert(!bc.b_is_full);
    ck_assert_uint_eq(bc.bstride[0], 0);
    ck_assert_uint_eq(bc.bstride[1], 1);

    /* (4, 1) with (3): (4, 3), both broadcast */
    ck_assert(tensor_broadcast(c, 2, b, 1, &bc, NULL));
    ck_assert_uint_eq(bc.shape[0], 4);
    ck_assert_uint_eq(bc.shape[1], 3);
    ck_assert(!bc.a_is_full && !bc.b_is_full);

    /* PyTorch: "size of tensor a (3) must match ... b (4) at dim 1" */
    ck_assert(!tensor_broadcast(a, 2, d, 1, &bc, &bad));
    ck_assert_uint_eq(bad, 1);
}
END_TEST

START_TEST(test_broadcast_overflow)
{
    size_t a[2] = {SIZE_MAX / 4, 1}, b[2] = {1, 8};
    struct tensor_bcast bc;
    size_t bad = 0;

    ck_assert(!tensor_broadcast(a, 2, b, 2, &bc, &bad));
    ck_assert_uint_eq(bad, (size_t)-1);
}
END_TEST

START_TEST(test_expand)
{
    size_t w[1] = {3}, x[2] = {2, 3}, big[2] = {5, 3};
    struct tensor_bcast bc;

    ck_assert(tensor_expand(w, 1, x, 2, &bc));
    ck_assert(!tensor_expand(big, 2, x, 2, &bc));
    ck_assert(!tensor_expand(x, 2, w, 1, &bc));
}
END_TEST

START_TEST(test_iter_and_reduce)
{
    size_t a[2] = {2, 1}, b[2] = {1, 3};
    struct tensor_bcast bc;
    struct tensor_iter it;
    double src[6] = {1, 2, 3, 4, 5, 6}, dst[2];
    size_t want_a[6] = {0, 0, 0, 1, 1, 1}, want_b[6] = {0, 1, 2, 0, 1, 2};

    ck_assert(tensor_broadcast(a, 2, b, 2, &bc, NULL));
    tensor_iter_init(&it, &bc, 0);
    for (size_t i = 0; i < 6; i++) {
        ck_assert_uint_eq(it.a, want_a[i]);
        ck_assert_uint_eq(it.b, want_b[i]);
        tensor_iter_next(&it);
    }
    tensor_iter_init(&it, &bc, 4);
    ck_assert_uint_eq(it.a, 1);
    ck_assert_uint_eq(it.b, 1);
    tensor_reduce_to_a(&bc, src, dst, 2);
    ck_assert(dst[0] == 6.0 && dst[1] == 15.0);
}
END_TEST

START_TEST(test_sum_exact_and_order_free)
{
    struct test_rng rng;
    size_t n = 100003;
    double *x = malloc(n * sizeof(*x)), *y = malloc(n * sizeof(*y));
    double s1, s2;

    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    /* Small integers sum exactly whatever the order. */
    for (size_t i = 0; i < n; i++)
        x[i] = (double)(i % 7);
    s1 = loss_sum(x, n);
    s2 = 0.0;
    for (size_t i = 0; i < n; i++)
        s2 += (double)(i % 7);
    ck_assert(s1 == s2);
    /* The same n gives the same bits: the tree depends on n alone. */
    test_rng_seed(&rng, 42);
    for (size_t i = 0; i < n; i++)
        x[i] = test_rng_normal(&rng) * 1e3;
    memcpy(y, x, n * sizeof(*x));
    s1 = loss_sum(x, n);
    s2 = loss_sum(y, n);
    ck_assert(memcmp(&s1, &s2, sizeof(s1)) == 0);
    ck_assert(loss_sum(x, 0) == 0.0);
    x[5] = NAN;
    ck_assert(isnan(loss_sum(x, n)));
    x[5] = INFINITY;
    ck_assert(isinf(loss_sum(x, n)));
    free(x);
    free(y);
}
END_TEST

START_TEST(test_sum_strided)
{
    double x[10] = {1, 100, 2, 100, 3, 100, 4, 100, 5, 100};

    ck_assert(loss_sum_strided(x, 5, 2) == 15.0);
    ck_assert(loss_sum_strided(x + 1, 5, 2) == 500.0);
}
END_TEST

START_TEST(test_status_fail_and_pointer)
{
    struct loss_error err;
    char ptr[64] = "";

    loss_error_init(&err);
    ck_assert_int_eq(
        loss_fail(&err, LOSS_ESHAPE, "/target", "target has %d rows", 3),
        LOSS_ESHAPE);
    ck_assert_str_eq(err.detail, "target has 3 rows");
    ck_assert_str_eq(err.pointer, "/target");
    ck_assert(err.has_pointer);
    loss_error_prefix(&err, "/requests/2");
    ck_assert_str_eq(err.pointer, "/requests/2/target");

    ck_assert_int_eq(loss_fail_at(&err, LOSS_EJSON, 17, "bad"), LOSS_EJSON);
    ck_assert(!err.has_pointer);
    ck_assert_int_eq(err.offset, 17);

    loss_pointer_append(ptr, sizeof(ptr), "a/b~c", 5);
    ck_assert_str_eq(ptr, "/a~1b~0c");
    loss_pointer_append_index(ptr, sizeof(ptr), 12);
    ck_assert_str_eq(ptr, "/a~1b~0c/12");
    loss_pointer_append_index(ptr, sizeof(ptr), 0);
    ck_assert_str_eq(ptr, "/a~1b~0c/12/0");
    ck_assert_int_eq(loss_fail(NULL, LOSS_EVALUE, NULL, "x"), LOSS_EVALUE);
}
END_TEST

/* Truncation as snprintf(buf, cap, "%s" / "/%zu") would truncate. */
START_TEST(test_status_string_helpers)
{
    char small[6] = "/abc";

    loss_pointer_append_index(small, sizeof(small), 1234);
    ck_assert_str_eq(small, "/abc/");
    ck_assert_uint_eq(loss_str_copy(small, sizeof(small), "0123456789"), 5);
    ck_assert_str_eq(small, "01234");
    ck_assert_uint_eq(loss_str_copy(small, sizeof(small), ""), 0);
    ck_assert_str_eq(small, "");
    ck_assert_uint_eq(loss_str_copy(small, 1, "abc"), 0);
    ck_assert_str_eq(small, "");
    loss_str_copy(small, sizeof(small), "/x");
    loss_pointer_append_index(small, sizeof(small), 18446744073709551615u);
    ck_assert_str_eq(small, "/x/18");
    for (int s = 0; s < LOSS_STATUS_COUNT; s++)
        ck_assert_str_ne(loss_status_name((enum loss_status)s), "unknown");
}
END_TEST

static void count_block(void *arg, size_t block, size_t slot)
{
    size_t *seen = arg;

    ck_assert_uint_eq(slot, 0);
    seen[block]++;
}

START_TEST(test_exec_serial_and_threads)
{
    size_t seen[100] = {0};
    struct loss_exec *ex = test_exec_threads(3, 7);

    loss_exec_run(NULL, 100, count_block, seen);
    for (size_t i = 0; i < 100; i++)
        ck_assert_uint_eq(seen[i], 1);
    ck_assert_uint_eq(loss_exec_slots(NULL), 1);
    ck_assert_uint_eq(loss_exec_slots(ex), 3);
    ck_assert_uint_eq(loss_blocks(0, 64), 0);
    ck_assert_uint_eq(loss_blocks(64, 64), 1);
    ck_assert_uint_eq(loss_blocks(65, 64), 2);
    test_exec_free(ex);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core_tensor");
    TCase *tc = tcase_create("core");

    loss_blas_init();
    tcase_add_test(tc, test_shape_numel_overflow);
    tcase_add_test(tc, test_broadcast);
    tcase_add_test(tc, test_broadcast_overflow);
    tcase_add_test(tc, test_expand);
    tcase_add_test(tc, test_iter_and_reduce);
    tcase_add_test(tc, test_sum_exact_and_order_free);
    tcase_add_test(tc, test_sum_strided);
    tcase_add_test(tc, test_status_fail_and_pointer);
    tcase_add_test(tc, test_status_string_helpers);
    tcase_add_test(tc, test_exec_serial_and_threads);
    suite_add_tcase(s, tc);
    return test_run(s);
}

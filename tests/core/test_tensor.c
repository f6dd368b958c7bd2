/*
 * test_tensor.c - shapes and broadcasting (core/tensor.c), the status
 * helpers (core/status.c) and the executor glue (core/exec.c), including
 * work run through a threaded executor. The sum has its own test_sum.c.
 */
#include <check.h>
#include <math.h>
#include <stdatomic.h>
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

/* An executor that records its calls and then runs the blocks in reverse. */
struct spy {
    size_t calls;
    size_t last_nblocks;
};

static void spy_parallel_for(void *ctx, size_t nblocks, loss_block_fn fn,
                             void *arg)
{
    struct spy *spy = ctx;

    spy->calls++;
    spy->last_nblocks = nblocks;
    for (size_t b = nblocks; b-- > 0;)
        fn(arg, b, b % 2);
}

/* Records the order in which the blocks ran. */
struct order {
    size_t ran[16];
    size_t n;
};

static void order_block(void *arg, size_t block, size_t slot)
{
    struct order *o = arg;

    (void)slot;
    o->ran[o->n++] = block;
}

/*
 * loss_exec_run() itself: serial in block order when there is no executor
 * (NULL, or no parallel_for), never calling an executor for zero blocks,
 * handing everything else to parallel_for unchanged.
 */
START_TEST(test_exec_run_dispatch)
{
    size_t seen[100] = {0};
    struct spy spy = {0};
    struct loss_exec ex = {spy_parallel_for, &spy, 2};
    struct loss_exec no_fn = {NULL, &spy, 5};
    struct order o = {{0}, 0};

    loss_exec_run(NULL, 100, count_block, seen);
    for (size_t i = 0; i < 100; i++)
        ck_assert_uint_eq(seen[i], 1);
    loss_exec_run(&no_fn, 3, order_block, &o);
    ck_assert_uint_eq(o.n, 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_uint_eq(o.ran[i], i);
    ck_assert_uint_eq(spy.calls, 0);

    loss_exec_run(&ex, 0, order_block, &o);
    loss_exec_run(NULL, 0, order_block, &o);
    ck_assert_uint_eq(spy.calls, 0);
    ck_assert_uint_eq(o.n, 3);
    o.n = 0;
    loss_exec_run(&ex, 4, order_block, &o);
    ck_assert_uint_eq(spy.calls, 1);
    ck_assert_uint_eq(spy.last_nblocks, 4);
    ck_assert_uint_eq(o.n, 4);
    ck_assert_uint_eq(o.ran[0], 3);

    ck_assert_uint_eq(loss_exec_slots(NULL), 1);
    ck_assert_uint_eq(loss_exec_slots(&no_fn), 1);
    ck_assert_uint_eq(loss_exec_slots(&ex), 2);
    ex.slots = 0;
    ck_assert_uint_eq(loss_exec_slots(&ex), 1);
    ck_assert_uint_eq(loss_blocks(0, 64), 0);
    ck_assert_uint_eq(loss_blocks(1, 64), 1);
    ck_assert_uint_eq(loss_blocks(64, 64), 1);
    ck_assert_uint_eq(loss_blocks(65, 64), 2);
}
END_TEST

/*
 * Work cut as a kernel cuts it (exec.h): block b gathers its slice of a
 * broadcast product a * b into its slot's scratch, sums it, and writes only
 * partial[b]; the partials are added afterwards in block order. The
 * counters check the executor's side of the contract: every block exactly
 * once, slots in range, no two calls at once on one slot. Check's
 * assertions are not thread-safe, so the blocks only count.
 */
#define EX_SLOTS_MAX 64

struct exec_job {
    const struct tensor_bcast *bc;
    const double *a, *b;
    size_t per;      /* loss elements per block */
    size_t slots;    /* of the executor */
    double *scratch; /* slots x per */
    double *partial; /* one per block */
    atomic_uint *runs;
    atomic_bool busy[EX_SLOTS_MAX];
    atomic_uint bad_slot, shared_slot;
};

static void exec_block(void *arg, size_t block, size_t slot)
{
    struct exec_job *j = arg;
    size_t start = block * j->per;
    size_t n = j->bc->numel - start < j->per ? j->bc->numel - start : j->per;
    struct tensor_iter it;
    double *s;

    atomic_fetch_add(&j->runs[block], 1u);
    if (slot >= j->slots) {
        atomic_fetch_add(&j->bad_slot, 1u);
        return;
    }
    if (atomic_exchange(&j->busy[slot], true))
        atomic_fetch_add(&j->shared_slot, 1u);
    s = j->scratch + slot * j->per;
    tensor_iter_init(&it, j->bc, start);
    for (size_t k = 0; k < n; k++) {
        s[k] = j->a[it.a] * j->b[it.b];
        tensor_iter_next(&it);
    }
    j->partial[block] = loss_sum(s, n);
    atomic_store(&j->busy[slot], false);
}

/*
 * Runs the job through ex; *ret_total is the partials added in block order.
 * Fails the test if the executor broke its contract.
 */
static void exec_job_run(struct exec_job *j, const struct loss_exec *ex,
                         size_t nblocks, double *ret_total)
{
    size_t once = 0;
    double total = 0.0;

    j->slots = loss_exec_slots(ex);
    ck_assert_uint_le(j->slots, EX_SLOTS_MAX);
    j->scratch = malloc(j->slots * j->per * sizeof(*j->scratch));
    ck_assert_ptr_nonnull(j->scratch);
    for (size_t b = 0; b < nblocks; b++) {
        atomic_init(&j->runs[b], 0u);
        j->partial[b] = NAN;
    }
    for (size_t s = 0; s < EX_SLOTS_MAX; s++)
        atomic_init(&j->busy[s], false);
    atomic_init(&j->bad_slot, 0u);
    atomic_init(&j->shared_slot, 0u);
    loss_exec_run(ex, nblocks, exec_block, j);
    for (size_t b = 0; b < nblocks; b++) {
        once += atomic_load(&j->runs[b]) == 1;
        total += j->partial[b];
    }
    ck_assert_uint_eq(once, nblocks);
    ck_assert_uint_eq(atomic_load(&j->bad_slot), 0);
    ck_assert_uint_eq(atomic_load(&j->shared_slot), 0);
    free(j->scratch);
    j->scratch = NULL;
    *ret_total = total;
}

/*
 * The same job, serially and on 1, 2, 3 and 8 shuffling threads: every
 * partial and the total bit-identical to the serial run.
 */
START_TEST(test_exec_threads_bit_identical)
{
    size_t ashape[3] = {300, 1, 7}, bshape[2] = {50, 1};
    struct tensor_bcast bc;
    struct test_rng rng;
    double *a = malloc(300 * 7 * sizeof(*a)), *b = malloc(50 * sizeof(*b));
    struct exec_job j = {.bc = &bc, .a = a, .b = b, .per = 1000};
    struct tensor_iter it;
    size_t nblocks, same = 0;
    double *serial, *full, total_serial, total;
    struct loss_exec *ex[4] = {test_exec_threads(1, 3), test_exec_threads(2, 5),
                               test_exec_threads(3, 7),
                               test_exec_threads(8, 11)};

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    test_rng_seed(&rng, 17);
    for (size_t i = 0; i < 300 * 7; i++)
        a[i] = test_rng_normal(&rng) * 1e3;
    for (size_t i = 0; i < 50; i++)
        b[i] = test_rng_normal(&rng);
    /* (300, 1, 7) with (50, 1): (300, 50, 7), both operands broadcast */
    ck_assert(tensor_broadcast(ashape, 3, bshape, 2, &bc, NULL));
    ck_assert_uint_eq(bc.numel, 105000);
    nblocks = loss_blocks(bc.numel, j.per);
    ck_assert_uint_eq(nblocks, 105);
    serial = malloc(nblocks * sizeof(*serial));
    j.partial = malloc(nblocks * sizeof(*j.partial));
    j.runs = malloc(nblocks * sizeof(*j.runs));
    ck_assert_ptr_nonnull(serial);
    ck_assert_ptr_nonnull(j.partial);
    ck_assert_ptr_nonnull(j.runs);

    exec_job_run(&j, NULL, nblocks, &total_serial);
    memcpy(serial, j.partial, nblocks * sizeof(*serial));
    ck_assert(isfinite(total_serial));
    /* A block that starts its iterator mid-shape sees what one walk sees. */
    full = malloc(bc.numel * sizeof(*full));
    ck_assert_ptr_nonnull(full);
    tensor_iter_init(&it, &bc, 0);
    for (size_t k = 0; k < bc.numel; k++) {
        full[k] = a[it.a] * b[it.b];
        tensor_iter_next(&it);
    }
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t n =
            bc.numel - blk * j.per < j.per ? bc.numel - blk * j.per : j.per;
        double want = loss_sum(full + blk * j.per, n);

        same += memcmp(&serial[blk], &want, sizeof(want)) == 0;
    }
    ck_assert_uint_eq(same, nblocks);
    free(full);
    for (size_t e = 0; e < 4; e++)
        for (int rep = 0; rep < 3; rep++) {
            exec_job_run(&j, ex[e], nblocks, &total);
            ck_assert_msg(
                memcmp(j.partial, serial, nblocks * sizeof(*serial)) == 0,
                "executor %zu, run %d: partials differ", e, rep);
            ck_assert_msg(memcmp(&total, &total_serial, sizeof(total)) == 0,
                          "executor %zu, run %d: %.17g vs %.17g", e, rep, total,
                          total_serial);
        }
    for (size_t e = 0; e < 4; e++)
        test_exec_free(ex[e]);
    free(j.runs);
    free(j.partial);
    free(serial);
    free(a);
    free(b);
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
    tcase_add_test(tc, test_status_fail_and_pointer);
    tcase_add_test(tc, test_status_string_helpers);
    tcase_add_test(tc, test_exec_run_dispatch);
    tcase_add_test(tc, test_exec_threads_bit_identical);
    suite_add_tcase(s, tc);
    return test_run(s);
}

/*
 * exec.h - how a kernel spreads its work, without owning any thread.
 *
 * core/ has no threads of its own. A kernel that can run in parallel cuts its
 * work into fixed blocks (a multiple of 64 rows, chosen from the shapes only,
 * never from the number of threads) and asks the caller's executor to run a
 * function once per block. Each block writes only its own outputs; anything
 * combined across blocks is combined afterwards, in block order, by the
 * kernel. So the result is bit-identical whichever thread ran which block, in
 * whatever order: tests check exactly that with shuffled executors.
 */
#ifndef LOSSD_CORE_EXEC_H
#define LOSSD_CORE_EXEC_H

#include <stddef.h>

/*
 * One block of work. slot is in [0, slots) of the executor and no two calls
 * running at the same time share a slot, so a kernel can give each slot its
 * own scratch memory (allocated by the caller, sized by the kernel).
 */
typedef void (*loss_block_fn)(void *arg, size_t block, size_t slot);

struct loss_exec {
    /*
     * Runs fn(arg, b, slot) exactly once for every b in [0, nblocks), in any
     * order and on any threads, with slot in [0, slots) and no slot used by
     * two calls at once; returns when all calls have returned.
     */
    void (*parallel_for)(void *ctx, size_t nblocks, loss_block_fn fn,
                         void *arg);
    void *ctx;
    size_t slots; /* calls that may run at once (>= 1) */
};

/* Slots of ex: 1 for the serial executor (NULL). */
size_t loss_exec_slots(const struct loss_exec *ex);

/* Runs the blocks through ex, or serially in order when ex is NULL. */
void loss_exec_run(const struct loss_exec *ex, size_t nblocks, loss_block_fn fn,
                   void *arg);

/* Rows per block used by the row-parallel kernels: a multiple of 64. */
#define LOSS_BLOCK_ROWS 64

/* Number of blocks of `per` items needed for n items (0 for n == 0). */
static inline size_t loss_blocks(size_t n, size_t per)
{
    return n / per + (n % per != 0);
}

#endif

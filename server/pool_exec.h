/*
 * pool_exec.h - the executor of pooled jobs (core/exec.h) on the worker pool:
 * one big request's kernel runs its blocks on every idle worker.
 *
 * parallel_for(), called by a kernel on the thread that runs its job:
 *   1. takes as many idle workers as can help (pool_claim_idle(): at most
 *      slots - 1 and nblocks - 1; none when every worker is busy or queued
 *      work waits) and queues one helper on each;
 *   2. runs blocks itself, as slot 0, claiming them one at a time from a
 *      shared atomic counter until none is left;
 *   3. waits until every block that a helper claimed has returned.
 * A helper, when a worker starts it, takes the next free slot (1, 2, ...)
 * and claims blocks the same way; it returns at once when none is left,
 * and also before each claim when a job waits for a worker
 * (pool_oversubscribed()), so a queued job starts after at most one block
 * of another job's helper.
 *
 * So the calling thread alone can finish every block: progress never
 * depends on a helper starting, and a full pool never deadlocks, nested
 * calls (a block calling parallel_for) included. Each participant holds one
 * slot in [0, slots) for its whole stay, so no two concurrent blocks of a
 * call share a slot; slots is the worker count. The state of one call is
 * reference-counted: the caller and each queued helper hold one reference,
 * a helper drops its own in its done callback (on the loop thread, whether
 * it ran, found nothing left or was cancelled), so a helper that starts
 * after the call returned touches only that state, never the kernel's.
 * When there is nothing to gain (one block, one slot, no idle worker) or
 * the state cannot be allocated, the blocks run serially on the caller in
 * slot 0: the results are the same, since the kernels' are bit-identical
 * whichever thread runs which block.
 */
#ifndef LOSSD_SERVER_POOL_EXEC_H
#define LOSSD_SERVER_POOL_EXEC_H

#include <stdatomic.h>
#include <stddef.h>

#include "exec.h"
#include "pool.h"

struct pool_exec {
    struct loss_exec ex; /* what the kernels get: &pe->ex */
    struct pool *pool;   /* borrowed */
    /* counters, for tests and operators; relaxed */
    _Atomic size_t calls;         /* parallel_for calls */
    _Atomic size_t helpers;       /* helpers queued */
    _Atomic size_t helper_blocks; /* blocks run by helpers */
    _Atomic size_t live;          /* calls' states not freed yet */
};

/*
 * Makes pe an executor on p with slots = pool_workers(p). pe is the
 * caller's and must outlive every call and every helper (until pool_stop()
 * has returned); nothing to release. Calls follow pool_submit_helper()'s
 * rule: inside a job of p, or finished before pool_stop().
 */
void pool_exec_init(struct pool_exec *pe, struct pool *p);

#endif

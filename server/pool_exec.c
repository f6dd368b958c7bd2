/*
 * pool_exec.c - parallel_for on the worker pool (pool_exec.h).
 */
#include "pool_exec.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct team;

/* One helper of a call: a job on an idle worker. */
struct helper {
    struct pool_job pj;
    struct team *t;
};

/*
 * The state of one parallel_for call, shared by its caller and helpers.
 * fn and arg are the kernel's: touched only by a participant that claimed
 * a block below nblocks, which the caller is then still waiting for.
 */
struct team {
    struct pool_exec *pe;
    size_t nblocks;
    loss_block_fn fn;
    void *arg;
    _Atomic size_t next;      /* the next block to claim */
    _Atomic size_t left;      /* blocks not yet returned */
    _Atomic size_t next_slot; /* the next helper's slot; the caller has 0 */
    _Atomic size_t refs;      /* the caller, and each helper until done */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished; /* guarded by mu: left reached 0 */
    struct helper helpers[];
};

static void team_unref(struct team *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    atomic_fetch_sub_explicit(&t->pe->live, 1, memory_order_relaxed);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/*
 * Claims and runs blocks as slot until none is left; a helper (yield) also
 * stops before a claim when a job waits for a worker. The participant that
 * returns the last block wakes the caller: the seq_cst decrements of left order
 * every block's writes before that wake-up, and the mutex hands them on to the
 * caller.
 */
static void team_work(struct team *t, size_t slot, bool yield)
{
    for (;;) {
        if (yield && pool_oversubscribed(t->pe->pool))
            break;
        size_t b = atomic_fetch_add(&t->next, 1);
        if (b >= t->nblocks)
            break;
        t->fn(t->arg, b, slot);
        if (yield) /* before left: the caller may return at 0 */
            atomic_fetch_add_explicit(&t->pe->helper_blocks, 1,
                                      memory_order_relaxed);
        if (atomic_fetch_sub(&t->left, 1) == 1) {
            pthread_mutex_lock(&t->mu);
            t->finished = true;
            pthread_cond_signal(&t->cv);
            pthread_mutex_unlock(&t->mu);
        }
    }
}

static struct helper *helper_of(struct pool_job *pj)
{
    return (struct helper *)(void *)((char *)pj - offsetof(struct helper, pj));
}

static void helper_work(struct pool_job *pj)
{
    struct team *t = helper_of(pj)->t;
    /* a late helper finds next past nblocks and never uses its slot */
    if (atomic_load(&t->next) >= t->nblocks)
        return;
    team_work(t, atomic_fetch_add(&t->next_slot, 1), true);
}

/* On the loop thread, whether the helper ran or was cancelled. */
static void helper_done(struct pool_job *pj, bool cancelled)
{
    (void)cancelled;
    team_unref(helper_of(pj)->t);
}

static void run_serial(size_t nblocks, loss_block_fn fn, void *arg)
{
    for (size_t b = 0; b < nblocks; b++)
        fn(arg, b, 0);
}

static void exec_parallel_for(void *ctx, size_t nblocks, loss_block_fn fn,
                              void *arg)
{
    struct pool_exec *pe = ctx;
    size_t want = pe->ex.slots - 1, k;
    struct team *t;

    atomic_fetch_add_explicit(&pe->calls, 1, memory_order_relaxed);
    if (nblocks == 0)
        return;
    if (want > nblocks - 1)
        want = nblocks - 1;
    k = want ? pool_claim_idle(pe->pool, want) : 0;
    if (k == 0) {
        run_serial(nblocks, fn, arg);
        return;
    }
    /* k < slots <= 1024 (pool_workers()): the size cannot overflow */
    t = malloc(sizeof *t + k * sizeof t->helpers[0]);
    if (t == NULL) {
        pool_unclaim_idle(pe->pool, k);
        run_serial(nblocks, fn, arg);
        return;
    }
    t->pe = pe;
    t->nblocks = nblocks;
    t->fn = fn;
    t->arg = arg;
    atomic_init(&t->next, 0);
    atomic_init(&t->left, nblocks);
    atomic_init(&t->next_slot, 1);
    atomic_init(&t->refs, 1 + k);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->finished = false;
    atomic_fetch_add_explicit(&pe->live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pe->helpers, k, memory_order_relaxed);
    for (size_t i = 0; i < k; i++) {
        t->helpers[i].t = t;
        t->helpers[i].pj.work = helper_work;
        t->helpers[i].pj.done = helper_done;
        pool_submit_helper(pe->pool, &t->helpers[i].pj);
    }

    team_work(t, 0, false);
    pthread_mutex_lock(&t->mu);
    while (!t->finished)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    team_unref(t);
}

void pool_exec_init(struct pool_exec *pe, struct pool *p)
{
    pe->ex.parallel_for = exec_parallel_for;
    pe->ex.ctx = pe;
    pe->ex.slots = pool_workers(p);
    pe->pool = p;
    atomic_init(&pe->calls, 0);
    atomic_init(&pe->helpers, 0);
    atomic_init(&pe->helper_blocks, 0);
    atomic_init(&pe->live, 0);
}

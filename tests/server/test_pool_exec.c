/*
 * test_pool_exec.c - server/pool_exec.c on the real pool (server/pool.c):
 * every block runs exactly once; no slot is used by two blocks at once
 * (per-slot atomic flags) and every slot is below loss_exec_slots();
 * every idle worker joins a job; nested calls and calls from several jobs
 * and threads at once; a queued job overtakes a helper; a pool of one
 * worker; stopping the pool while helpers are still queued.
 *
 * libuv's threadpool is one per process and sized once, at its first use,
 * so each run of this binary uses one worker count, LOSSD_TEST_WORKERS
 * (tests/server/meson.build runs it with 1, 2 and 4). Tests wait on events
 * (semaphores posted by blocks and jobs); the 60 s bound on each wait only
 * turns a hang into a failure. Blocks never call ck_assert (they run on
 * other threads): they record what went wrong, and the test checks it.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "pool.h"
#include "pool_exec.h"
#include "testutil.h"

#define WAIT_LIMIT_S 60

static size_t workers(void)
{
    const char *w = getenv("LOSSD_TEST_WORKERS");
    long n = w ? strtol(w, NULL, 10) : 2;
    return n > 0 ? (size_t)n : 1;
}

/* Waits for one post of s; false after WAIT_LIMIT_S. */
static bool sem_wait_bounded(sem_t *s)
{
    struct timespec ts;
    int r;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_LIMIT_S;
    do
        r = sem_timedwait(s, &ts);
    while (r < 0 && errno == EINTR);
    return r == 0;
}

/* Main thread: waits for n posts of s or fails the test. */
static void wait_n(sem_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(sem_wait_bounded(s), "no event after %d s", WAIT_LIMIT_S);
}

/* ---- blocks that check the contract ------------------------------------ */

/*
 * The argument of check_block(): counts per block, a busy flag and a used
 * flag per slot. With children, block b runs a nested parallel_for over
 * children[b]. With gate, block b posts gate->started and then waits for
 * one post of gate->tokens[b] (a token per block: with one for all, a
 * thread that finished its block could take the token meant for another).
 */
struct gate {
    sem_t started;
    sem_t *tokens; /* one per block */
};

static void gate_init(struct gate *g, size_t nblocks)
{
    sem_init(&g->started, 0, 0);
    g->tokens = calloc(nblocks, sizeof *g->tokens);
    ck_assert(g->tokens);
    for (size_t b = 0; b < nblocks; b++)
        sem_init(&g->tokens[b], 0, 0);
}

static void gate_release(struct gate *g, size_t nblocks)
{
    sem_destroy(&g->started);
    for (size_t b = 0; b < nblocks; b++)
        sem_destroy(&g->tokens[b]);
    free(g->tokens);
}

struct blocks {
    size_t nblocks, slots;
    _Atomic unsigned *count;
    _Atomic bool *busy, *used;
    _Atomic bool bad; /* a slot out of range or shared, a gate timed out */
    struct pool_exec *pe;
    struct blocks *children; /* NULL: none */
    struct gate *gate;       /* NULL: none */
};

static void blocks_init(struct blocks *k, size_t nblocks, size_t slots)
{
    k->nblocks = nblocks;
    k->slots = slots;
    k->count = calloc(nblocks ? nblocks : 1, sizeof *k->count);
    k->busy = calloc(slots, sizeof *k->busy);
    k->used = calloc(slots, sizeof *k->used);
    ck_assert(k->count && k->busy && k->used);
    atomic_init(&k->bad, false);
    k->pe = NULL;
    k->children = NULL;
    k->gate = NULL;
}

static void blocks_release(struct blocks *k)
{
    free(k->count);
    free((void *)k->busy);
    free((void *)k->used);
}

/* Slots that ran at least one block. */
static size_t blocks_slots_used(const struct blocks *k)
{
    size_t n = 0;
    for (size_t s = 0; s < k->slots; s++)
        n += atomic_load(&k->used[s]);
    return n;
}

/* Main thread: every block exactly once, nothing recorded as bad. */
static void blocks_check(struct blocks *k)
{
    ck_assert(!atomic_load(&k->bad));
    for (size_t b = 0; b < k->nblocks; b++)
        ck_assert_msg(atomic_load(&k->count[b]) == 1,
                      "block %zu of %zu ran %u times", b, k->nblocks,
                      atomic_load(&k->count[b]));
    for (size_t s = 0; s < k->slots; s++)
        ck_assert(!atomic_load(&k->busy[s]));
}

static void run_blocks(struct pool_exec *pe, struct blocks *k);

static void check_block(void *arg, size_t b, size_t slot)
{
    struct blocks *k = arg;
    if (slot >= k->slots || b >= k->nblocks) {
        atomic_store(&k->bad, true);
        return;
    }
    if (atomic_exchange(&k->busy[slot], true))
        atomic_store(&k->bad, true);
    atomic_store(&k->used[slot], true);
    if (k->gate) {
        sem_post(&k->gate->started);
        if (!sem_wait_bounded(&k->gate->tokens[b]))
            atomic_store(&k->bad, true);
    }
    if (k->children)
        run_blocks(k->pe, &k->children[b]);
    /* a little work, so that blocks of a call overlap in time */
    volatile double s = 0;
    for (int i = 0; i < 2000; i++)
        s = s + (double)i * 1e-3;
    atomic_fetch_add(&k->count[b], 1);
    atomic_store(&k->busy[slot], false);
}

static void run_blocks(struct pool_exec *pe, struct blocks *k)
{
    loss_exec_run(&pe->ex, k->nblocks, check_block, k);
}

/* ---- a pool and jobs on it ---------------------------------------------- */

struct fixture {
    struct pool *p;
    struct pool_exec pe;
};

static void fixture_start(struct fixture *f)
{
    ck_assert_int_eq(pool_start(workers(), 64, &f->p), 0);
    pool_exec_init(&f->pe, f->p);
    ck_assert_uint_eq(loss_exec_slots(&f->pe.ex), workers());
}

/* Stops the pool (every job done) and checks that no call's state is left. */
static void fixture_stop(struct fixture *f)
{
    ck_assert_uint_eq(pool_pending(f->p), 0);
    pool_stop(f->p);
    ck_assert_uint_eq(atomic_load(&f->pe.live), 0);
}

/* A job that runs parallel_for over each of calls[0..ncalls). */
struct tjob {
    struct pool_job pj;
    struct pool_exec *pe;
    struct blocks *calls;
    size_t ncalls;
    sem_t *started; /* posted when work begins; NULL: none */
    sem_t done;     /* posted by done */
    bool cancelled;
};

static struct tjob *tjob_of(struct pool_job *pj)
{
    return (struct tjob *)(void *)((char *)pj - offsetof(struct tjob, pj));
}

static void tjob_work(struct pool_job *pj)
{
    struct tjob *j = tjob_of(pj);
    if (j->started)
        sem_post(j->started);
    for (size_t i = 0; i < j->ncalls; i++)
        run_blocks(j->pe, &j->calls[i]);
}

static void tjob_done(struct pool_job *pj, bool cancelled)
{
    struct tjob *j = tjob_of(pj);
    j->cancelled = cancelled;
    sem_post(&j->done);
}

static void tjob_submit(struct fixture *f, struct tjob *j, struct blocks *calls,
                        size_t ncalls)
{
    j->pe = &f->pe;
    j->calls = calls;
    j->ncalls = ncalls;
    j->cancelled = false;
    sem_init(&j->done, 0, 0);
    j->pj.work = tjob_work;
    j->pj.done = tjob_done;
    ck_assert_int_eq(pool_reserve(f->p), 0);
    pool_submit(f->p, &j->pj);
}

static void tjob_wait(struct tjob *j)
{
    wait_n(&j->done, 1);
    ck_assert(!j->cancelled);
    sem_destroy(&j->done);
}

/* ---- tests --------------------------------------------------------------- */

static const size_t block_counts[] = {1, 2, 3, 7, 64, 1000};
#define NCOUNTS (sizeof block_counts / sizeof block_counts[0])

/* From a job and from a thread outside the pool. */
START_TEST(test_every_block_once)
{
    struct fixture f;
    struct blocks calls[NCOUNTS];
    struct tjob j = {.started = NULL};
    fixture_start(&f);
    for (size_t i = 0; i < NCOUNTS; i++)
        blocks_init(&calls[i], block_counts[i], workers());
    tjob_submit(&f, &j, calls, NCOUNTS);
    tjob_wait(&j);
    for (size_t i = 0; i < NCOUNTS; i++) {
        blocks_check(&calls[i]);
        blocks_release(&calls[i]);
        blocks_init(&calls[i], block_counts[i], workers());
        run_blocks(&f.pe, &calls[i]); /* this thread is the caller */
        blocks_check(&calls[i]);
        blocks_release(&calls[i]);
    }
    /* zero blocks: never calls the executor */
    loss_exec_run(&f.pe.ex, 0, check_block, NULL);
    fixture_stop(&f);
}
END_TEST

/*
 * Every idle worker joins: a job's call of `workers` blocks, each of which
 * waits for a token, starts all of them at once, on distinct slots. With
 * one worker that is the job's own thread, with no helper.
 */
START_TEST(test_idle_workers_join)
{
    size_t w = workers();
    struct fixture f;
    struct blocks k;
    struct gate g;
    struct tjob j = {.started = NULL};
    fixture_start(&f);
    blocks_init(&k, w, w);
    gate_init(&g, w);
    k.gate = &g;
    tjob_submit(&f, &j, &k, 1);
    wait_n(&g.started, w); /* all w blocks running at once */
    ck_assert_uint_eq(blocks_slots_used(&k), w);
    for (size_t b = 0; b < w; b++)
        sem_post(&g.tokens[b]);
    tjob_wait(&j);
    blocks_check(&k);
    ck_assert_uint_eq(atomic_load(&f.pe.helpers), w - 1);
    ck_assert_uint_eq(atomic_load(&f.pe.helper_blocks), w - 1);
    fixture_stop(&f);
    blocks_release(&k);
    gate_release(&g, w);
}
END_TEST

/* A pool of one worker: one slot, no helper, every block on slot 0. */
START_TEST(test_one_slot_per_worker)
{
    struct fixture f;
    struct blocks k;
    struct tjob j = {.started = NULL};
    fixture_start(&f);
    blocks_init(&k, 100, workers());
    tjob_submit(&f, &j, &k, 1);
    tjob_wait(&j);
    blocks_check(&k);
    if (workers() == 1) {
        ck_assert_uint_eq(atomic_load(&f.pe.helpers), 0);
        ck_assert_uint_eq(blocks_slots_used(&k), 1);
        ck_assert(atomic_load(&k.used[0]));
    }
    fixture_stop(&f);
    blocks_release(&k);
}
END_TEST

/* Blocks that call parallel_for themselves, on jobs and helpers alike. */
START_TEST(test_nested)
{
    enum { OUTER = 12, INNER = 40 };
    struct fixture f;
    struct blocks outer, inner[OUTER];
    struct tjob j = {.started = NULL};
    fixture_start(&f);
    blocks_init(&outer, OUTER, workers());
    outer.pe = &f.pe;
    outer.children = inner;
    for (size_t i = 0; i < OUTER; i++)
        blocks_init(&inner[i], INNER, workers());
    tjob_submit(&f, &j, &outer, 1);
    tjob_wait(&j);
    blocks_check(&outer);
    for (size_t i = 0; i < OUTER; i++) {
        blocks_check(&inner[i]);
        blocks_release(&inner[i]);
    }
    blocks_release(&outer);
    fixture_stop(&f);
}
END_TEST

/*
 * Several jobs at once, more than there are workers (some queue), each
 * with several calls, nested ones among them, while this thread makes
 * calls of its own.
 */
START_TEST(test_concurrent_jobs)
{
    enum { CALLS = 4, NEST = 6 };
    size_t njobs = 2 * workers() + 1;
    struct fixture f;
    struct tjob *jobs = calloc(njobs, sizeof *jobs);
    struct blocks *calls = calloc(njobs * CALLS, sizeof *calls);
    struct blocks *nested = calloc(njobs * NEST, sizeof *nested);
    ck_assert(jobs && calls && nested);
    fixture_start(&f);
    for (size_t i = 0; i < njobs; i++) {
        struct blocks *c = &calls[i * CALLS];
        for (size_t n = 0; n < CALLS; n++)
            blocks_init(&c[n], 50 + 37 * n + i, workers());
        /* the last call nests */
        blocks_release(&c[CALLS - 1]);
        blocks_init(&c[CALLS - 1], NEST, workers());
        c[CALLS - 1].pe = &f.pe;
        c[CALLS - 1].children = &nested[i * NEST];
        for (size_t n = 0; n < NEST; n++)
            blocks_init(&nested[i * NEST + n], 9 + n, workers());
        tjob_submit(&f, &jobs[i], c, CALLS);
    }
    for (size_t r = 0; r < 20; r++) {
        struct blocks k;
        blocks_init(&k, 33 + r, workers());
        run_blocks(&f.pe, &k);
        blocks_check(&k);
        blocks_release(&k);
    }
    for (size_t i = 0; i < njobs; i++)
        tjob_wait(&jobs[i]);
    for (size_t i = 0; i < njobs * CALLS; i++) {
        blocks_check(&calls[i]);
        blocks_release(&calls[i]);
    }
    for (size_t i = 0; i < njobs * NEST; i++) {
        blocks_check(&nested[i]);
        blocks_release(&nested[i]);
    }
    fixture_stop(&f);
    free(jobs);
    free(calls);
    free(nested);
}
END_TEST

/*
 * A job queued while another job's call holds every worker starts once the
 * helpers' current blocks return: the first helper to see it waiting
 * leaves the call's other blocks to the others. If a helper claimed another
 * block (each waits for a token the test gives only after the queued job
 * started), the queued job could not start and the test would fail on its
 * bound.
 */
START_TEST(test_queued_job_overtakes_helpers)
{
    size_t w = workers();
    struct fixture f;
    struct blocks k;
    struct gate g;
    struct tjob a = {.started = NULL}, b;
    sem_t b_started;
    if (w == 1)
        return; /* no helpers to overtake */
    fixture_start(&f);
    blocks_init(&k, w + 2, w);
    gate_init(&g, w + 2);
    sem_init(&b_started, 0, 0);
    k.gate = &g;
    tjob_submit(&f, &a, &k, 1);
    /* a's caller and w - 1 helpers in blocks 0 to w - 1 (claimed in order) */
    wait_n(&g.started, w);
    b.started = &b_started;
    tjob_submit(&f, &b, NULL, 0); /* queued: every worker is busy */
    for (size_t i = 0; i < w; i++)
        sem_post(&g.tokens[i]);
    wait_n(&b_started, 1);
    /* the rest: a's own thread, or helpers still there (w > 2) */
    sem_post(&g.tokens[w]);
    sem_post(&g.tokens[w + 1]);
    tjob_wait(&a);
    tjob_wait(&b);
    blocks_check(&k);
    fixture_stop(&f);
    blocks_release(&k);
    gate_release(&g, w + 2);
    sem_destroy(&b_started);
}
END_TEST

/*
 * Stopping the pool while a call's helpers are still queued: the call
 * returns (its own thread ran every block) with its helpers behind work
 * that holds every libuv thread (libuv's threadpool is shared by all
 * loops: a loop of the test's own queues it). Then either the helpers are
 * cancelled, or pool_stop() waits for them and they start after the call
 * returned: in both cases they run no block and the call's state is freed
 * (pe.live; AddressSanitizer checks the rest).
 */
struct blocker {
    uv_work_t w;
    sem_t *started, *release;
    _Atomic bool *bad;
};

static void blocker_work(uv_work_t *w)
{
    struct blocker *b = w->data;
    sem_post(b->started);
    if (!sem_wait_bounded(b->release))
        atomic_store(b->bad, true);
}

static void *stop_thread(void *p)
{
    pool_stop(p);
    return NULL;
}

static void shutdown_with_queued_helpers(bool cancel)
{
    size_t w = workers();
    struct fixture f;
    struct blocks k;
    uv_loop_t loop;
    struct blocker *bl = calloc(w, sizeof *bl);
    sem_t started, release;
    _Atomic bool bad = false;
    pthread_t t;
    ck_assert(bl);
    fixture_start(&f); /* first: it sizes libuv's threadpool */
    sem_init(&started, 0, 0);
    sem_init(&release, 0, 0);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    for (size_t i = 0; i < w; i++) {
        bl[i].w.data = &bl[i];
        bl[i].started = &started;
        bl[i].release = &release;
        bl[i].bad = &bad;
        ck_assert_int_eq(uv_queue_work(&loop, &bl[i].w, blocker_work, NULL), 0);
    }
    wait_n(&started, w); /* every libuv thread is held */

    blocks_init(&k, 8, w);
    run_blocks(&f.pe, &k);
    blocks_check(&k);
    ck_assert_uint_eq(atomic_load(&f.pe.helpers), w - 1);
    ck_assert_uint_eq(atomic_load(&f.pe.live), w > 1); /* helpers hold it */
    ck_assert(atomic_load(&k.used[0]));
    ck_assert_uint_eq(blocks_slots_used(&k), 1);

    if (cancel) {
        pool_cancel_queued(f.p);
        pool_stop(f.p); /* the cancelled helpers are done */
        ck_assert_uint_eq(atomic_load(&f.pe.live), 0);
        for (size_t i = 0; i < w; i++)
            sem_post(&release);
    } else {
        /* pool_stop() returns only once the helpers ran, after release */
        ck_assert_int_eq(pthread_create(&t, NULL, stop_thread, f.p), 0);
        for (size_t i = 0; i < w; i++)
            sem_post(&release);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_uint_eq(atomic_load(&f.pe.live), 0);
    }
    ck_assert_uint_eq(atomic_load(&f.pe.helper_blocks), 0);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ck_assert(!atomic_load(&bad));
    blocks_release(&k);
    sem_destroy(&started);
    sem_destroy(&release);
    free(bl);
}

START_TEST(test_stop_cancels_queued_helpers)
{
    shutdown_with_queued_helpers(true);
}
END_TEST

START_TEST(test_stop_waits_for_late_helpers)
{
    shutdown_with_queued_helpers(false);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pool_exec");
    TCase *tc = tcase_create("pool_exec");
    tcase_add_test(tc, test_every_block_once);
    tcase_add_test(tc, test_idle_workers_join);
    tcase_add_test(tc, test_one_slot_per_worker);
    tcase_add_test(tc, test_nested);
    tcase_add_test(tc, test_concurrent_jobs);
    tcase_add_test(tc, test_queued_job_overtakes_helpers);
    tcase_add_test(tc, test_stop_cancels_queued_helpers);
    tcase_add_test(tc, test_stop_waits_for_late_helpers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(suite());
}

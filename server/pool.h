/*
 * pool.h - the worker pool: libuv's threadpool driven from one loop thread.
 *
 * uv_queue_work() is not thread-safe, so only the loop thread calls it: a
 * submitting thread (an HTTP thread) pushes its job on a mutex-protected
 * list and wakes the loop with uv_async_send(); the async callback moves the
 * whole list into libuv (sends coalesce). The queue is bounded by the pool,
 * not by libuv: pool_reserve() takes a slot or refuses.
 *
 * Lifecycle of a job (caller-allocated, embedded in the request):
 *   pool_reserve()  a slot, or -EBUSY (full) / -ECANCELED (stopping);
 *   pool_submit()   never fails once reserved;
 *   work(job)       on a worker thread, at a lower priority than HTTP;
 *   done(job, cancelled) on the loop thread, exactly once; cancelled jobs
 *                   (pool_cancel_queued()) never ran work. The slot is
 *                   released just before done is called.
 * The pool never frees a job.
 *
 * Helpers (pool_exec.h) are jobs without a reservation that lend an idle
 * worker to a running job: pool_claim_idle() then pool_submit_helper(). They
 * follow a job's lifecycle from its submission on, in the same FIFO queue,
 * but never count in pool_pending().
 */
#ifndef LOSSD_SERVER_POOL_H
#define LOSSD_SERVER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct pool_job;
typedef void (*pool_work_fn)(struct pool_job *job);
typedef void (*pool_done_fn)(struct pool_job *job, bool cancelled);

struct pool_job {
    pool_work_fn work;
    pool_done_fn done;
    double submitted; /* monotonic seconds, set by pool_submit() */
    double started;   /* set before work runs */
    /* private */
    uv_work_t req;
    bool helper;                      /* not counted in pending */
    struct pool_job *next;            /* pending list (pool mutex) */
    struct pool_job *prev_q, *next_q; /* in libuv (loop thread only) */
    struct pool *pool;
};

struct pool;

/*
 * Starts the loop thread with workers libuv threads (UV_THREADPOOL_SIZE is
 * set here, so this must run before any other thread uses libuv) and a
 * queue of at most limit jobs. *ret_pool is new on success; negative errno.
 */
int pool_start(size_t workers, size_t limit, struct pool **ret_pool);

/* Takes a slot: 0, -EBUSY when limit jobs are queued or running,
   -ECANCELED after pool_close_submissions(). Any thread. */
int pool_reserve(struct pool *p);
/* Gives back a reserved slot that will not be submitted. */
void pool_unreserve(struct pool *p);
/* Queues job on a reserved slot. Any thread. */
void pool_submit(struct pool *p, struct pool_job *job);

/* Jobs reserved, queued or running (helpers are not counted). */
size_t pool_pending(struct pool *p);

/* The number of workers the pool was started with (at least 1). */
size_t pool_workers(const struct pool *p);

/*
 * Idle workers. The pool counts the work it has been given and whose work
 * function has not returned (jobs and helpers from their submission on,
 * cancelled ones until done): workers minus that count are idle, and a job
 * submitted now would start at once.
 *
 * pool_claim_idle() takes up to n idle workers at once and returns how many
 * it took (0 when none is idle); the caller then submits exactly that many
 * helpers (pool_submit_helper()) or gives the rest back with
 * pool_unclaim_idle(). Any thread. A claim is what keeps helpers from
 * piling up behind queued jobs: with every worker busy nobody claims.
 */
size_t pool_claim_idle(struct pool *p, size_t n);
void pool_unclaim_idle(struct pool *p, size_t n);

/*
 * Queues job, without a reservation, on a worker taken by
 * pool_claim_idle(). Any thread, but only while the pool accepts work:
 * before pool_stop(), by a caller that runs inside a job of the pool or
 * otherwise finishes before pool_stop() is called. The job then runs like
 * any other (work on a worker, done on the loop thread, cancelled by
 * pool_cancel_queued() if it has not started); pool_stop() waits for it.
 */
void pool_submit_helper(struct pool *p, struct pool_job *job);

/*
 * Whether submitted work waits for a worker (more given than workers): a
 * helper leaves its job's remaining blocks to the job's own thread and
 * returns, so the waiting job starts. Any thread; a hint, read without a
 * lock.
 */
bool pool_oversubscribed(const struct pool *p);

/* Refuses new reservations from now on. */
void pool_close_submissions(struct pool *p);

/* Cancels every job not yet started, and every job submitted from now on:
   they get done(job, true). */
void pool_cancel_queued(struct pool *p);

/*
 * Stops the loop and frees the pool. Every job must have been done
 * (pool_pending() == 0): libuv's destructor would run leftover work.
 */
void pool_stop(struct pool *p);

/* Monotonic seconds. */
double pool_now(void);

#endif

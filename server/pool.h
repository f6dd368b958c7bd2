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

/* Jobs reserved, queued or running. */
size_t pool_pending(struct pool *p);

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

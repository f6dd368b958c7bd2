/*
 * pool.c - uv_queue_work on the loop's own thread, fed through a uv_async_t.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The nice value of worker threads: below the HTTP threads, so a long job
   never delays the answers to cheap requests. */
#define WORKER_NICE 10

struct pool {
    uv_loop_t loop;
    uv_async_t async;
    uv_thread_t thread;
    size_t limit;
    size_t workers;
    /* work given and not returned: submitted jobs and helpers, less those
       whose work function returned or that were cancelled (pool.h, "Idle
       workers"); helpers are claimed below workers by a CAS */
    _Atomic size_t given;
    pthread_mutex_t mu;
    /* guarded by mu: */
    size_t pending; /* reserved + queued + running */
    bool closed;    /* no new reservations */
    bool cancel;    /* the loop cancels what is queued; sticky, so a job
                       reserved before pool_close_submissions() and submitted
                       after the cancel is cancelled too */
    bool stop;      /* the loop should close its handles */
    struct pool_job *head, *tail; /* submitted, not yet in libuv */
    /* loop thread only: jobs handed to libuv, not yet done */
    struct pool_job *inuv;
};

double pool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void work_cb(uv_work_t *req)
{
    /* Each libuv worker lowers its own priority once (Linux: per thread). */
    static __thread bool lowered;
    if (!lowered) {
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE);
        lowered = true;
    }
    struct pool_job *job = req->data;
    struct pool *p = job->pool;
    job->started = pool_now();
    job->work(job);
    atomic_fetch_sub(&p->given, 1);
}

static void after_work_cb(uv_work_t *req, int status)
{
    struct pool_job *job = req->data;
    struct pool *p = job->pool;
    /* unlink from the loop thread's list */
    if (job->prev_q)
        job->prev_q->next_q = job->next_q;
    else
        p->inuv = job->next_q;
    if (job->next_q)
        job->next_q->prev_q = job->prev_q;
    if (status == UV_ECANCELED) /* work never ran, never gave it back */
        atomic_fetch_sub(&p->given, 1);
    if (!job->helper) {
        pthread_mutex_lock(&p->mu);
        p->pending--;
        pthread_mutex_unlock(&p->mu);
    }
    job->done(job, status == UV_ECANCELED);
}

static void async_cb(uv_async_t *a)
{
    struct pool *p = a->data;
    pthread_mutex_lock(&p->mu);
    struct pool_job *list = p->head;
    p->head = p->tail = NULL;
    bool cancel = p->cancel, stop = p->stop;
    pthread_mutex_unlock(&p->mu);

    while (list) {
        struct pool_job *job = list;
        list = job->next;
        job->req.data = job;
        job->prev_q = NULL;
        job->next_q = p->inuv;
        if (p->inuv)
            p->inuv->prev_q = job;
        p->inuv = job;
        /* uv_queue_work fails only for a NULL work_cb */
        uv_queue_work(&p->loop, &job->req, work_cb, after_work_cb);
    }
    if (cancel) /* fails for running (and already cancelled) jobs */
        for (struct pool_job *j = p->inuv; j; j = j->next_q)
            uv_cancel((uv_req_t *)&j->req);
    if (stop)
        uv_close((uv_handle_t *)&p->async, NULL);
}

static void loop_main(void *arg)
{
    struct pool *p = arg;
    uv_run(&p->loop, UV_RUN_DEFAULT);
}

int pool_start(size_t workers, size_t limit, struct pool **ret_pool)
{
    char n[32];
    snprintf(n, sizeof n, "%zu", workers > 1024 ? (size_t)1024 : workers);
    /* read by libuv once, when the threadpool first starts */
    setenv("UV_THREADPOOL_SIZE", n, 1);
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->limit = limit;
    p->workers = workers == 0 ? 1 : workers > 1024 ? 1024 : workers;
    int r = uv_loop_init(&p->loop);
    if (r < 0)
        goto out_free;
    r = uv_async_init(&p->loop, &p->async, async_cb);
    if (r < 0)
        goto out_loop;
    p->async.data = p;
    pthread_mutex_init(&p->mu, NULL);
    r = uv_thread_create(&p->thread, loop_main, p);
    if (r < 0) {
        pthread_mutex_destroy(&p->mu);
        uv_close((uv_handle_t *)&p->async, NULL);
        uv_run(&p->loop, UV_RUN_DEFAULT);
        goto out_loop;
    }
    *ret_pool = p;
    return 0;
out_loop:
    uv_loop_close(&p->loop);
out_free:
    free(p);
    return r;
}

int pool_reserve(struct pool *p)
{
    int r = 0;
    pthread_mutex_lock(&p->mu);
    if (p->closed)
        r = -ECANCELED;
    else if (p->pending >= p->limit)
        r = -EBUSY;
    else
        p->pending++;
    pthread_mutex_unlock(&p->mu);
    return r;
}

void pool_unreserve(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->pending--;
    pthread_mutex_unlock(&p->mu);
}

/* Appends job to the pending list and wakes the loop. */
static void enqueue(struct pool *p, struct pool_job *job)
{
    job->pool = p;
    job->next = NULL;
    job->submitted = pool_now();
    job->started = 0;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
}

void pool_submit(struct pool *p, struct pool_job *job)
{
    job->helper = false;
    atomic_fetch_add(&p->given, 1);
    enqueue(p, job);
}

void pool_submit_helper(struct pool *p, struct pool_job *job)
{
    job->helper = true; /* given was counted by pool_claim_idle() */
    enqueue(p, job);
}

size_t pool_workers(const struct pool *p)
{
    return p->workers;
}

size_t pool_claim_idle(struct pool *p, size_t n)
{
    size_t given = atomic_load(&p->given), k;
    do {
        size_t idle = given < p->workers ? p->workers - given : 0;
        k = n < idle ? n : idle;
        if (k == 0)
            return 0;
    } while (!atomic_compare_exchange_weak(&p->given, &given, given + k));
    return k;
}

void pool_unclaim_idle(struct pool *p, size_t n)
{
    atomic_fetch_sub(&p->given, n);
}

bool pool_oversubscribed(const struct pool *p)
{
    return atomic_load_explicit(&p->given, memory_order_relaxed) > p->workers;
}

size_t pool_pending(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->pending;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void pool_close_submissions(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    pthread_mutex_unlock(&p->mu);
}

void pool_cancel_queued(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->cancel = true;
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
}

void pool_stop(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
    uv_thread_join(&p->thread);
    uv_loop_close(&p->loop);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/*
 * metrics.h - the Prometheus metrics of lossd (text format 0.0.4).
 *
 * Every counter is a relaxed atomic, so recording from any thread takes no
 * lock. Histogram sums are exact integers of their unit (nanoseconds,
 * bytes) in 126 bits: they neither wrap nor go back. Bucket bounds are
 * written exactly, as Prometheus' Go client writes them. Label values come
 * from fixed sets only (the route table, status codes, the losses of the
 * registry), so a client cannot grow the output.
 */
#ifndef LOSSD_SERVER_METRICS_H
#define LOSSD_SERVER_METRICS_H

#include <stddef.h>

#include "buf.h"
#include "conns.h"

struct metrics;

/*
 * A new metrics registry for nroutes route labels (indices 0..nroutes-1,
 * named by routes[i]) plus "other" (index nroutes, requests that matched no
 * route), and for nlosses losses (indices 0..nlosses-1, named by losses[i])
 * plus "batch" (index nlosses). Names are borrowed and must be static. NULL
 * when out of memory.
 */
struct metrics *metrics_new(const char *const *routes, size_t nroutes,
                            const char *const *losses, size_t nlosses);
void metrics_free(struct metrics *m);

/* One finished request: its route index (nroutes: none), HTTP code,
   duration and body bytes. */
void metrics_request(struct metrics *m, size_t route, int code, double seconds,
                     size_t bytes_in);
/* In-flight gauge: +1 when a request starts, -1 when it completes. */
void metrics_inflight_add(struct metrics *m, int delta);
/* A job's wait in the pool's queue. */
void metrics_queue_wait(struct metrics *m, double seconds);
/* A job's computation, by loss index (nlosses for batches). */
void metrics_compute(struct metrics *m, size_t loss, double seconds);

/* Gauges whose owners are elsewhere (the pool, the server), read at the
   time of a scrape, with the limits they are held to. */
struct metrics_state {
    size_t pool_jobs;          /* reserved, queued or running */
    size_t queue_limit;        /* --queue-limit */
    size_t inflight_bytes;     /* held by all requests */
    size_t max_inflight_bytes; /* --max-inflight-bytes */
    size_t connections;        /* open */
    size_t max_connections;    /* --max-connections */
    /* connections closed by the rules of conns.h, by reason */
    unsigned long long conns_closed[CONNS_NREASONS];
};

/* Appends the exposition (with st, build info and process_*) to b. */
void metrics_write(struct metrics *m, struct proto_buf *b,
                   const struct metrics_state *st, const char *version,
                   const char *openblas_core);

#endif

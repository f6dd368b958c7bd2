/*
 * conns.c - the registry of open connections and the deadlines libmicrohttpd
 * does not keep (conns.h).
 *
 * Connections are found by socket: by_fd[fd] under the registry's mutex.
 * The accepting thread inserts; libmicrohttpd's CLOSED notification
 * removes, finding the record through the socket context that STARTED set.
 * 0.9.75's cleanup notifies before it closes the socket, but nothing here
 * depends on that: were a number handed out again by accept() before the
 * older connection's CLOSED, the newer connection would replace the stale
 * entry and the late CLOSED would still free the right record.
 * conns_tick() and conns_admit() read the table under the same mutex. A
 * stale entry could never reach a newer connection: only the accepting
 * thread makes sockets, and it registers each one (replacing the stale
 * entry) before its next conns_tick(); a shutdown() of a number reused for
 * anything else fails (ENOTSOCK).
 *
 * A request's phase and its clocks are written by its MHD thread as plain
 * relaxed atomics, without the mutex: the small-request path pays a few
 * stores. The reaper may act on a phase that is a moment old; at worst a
 * connection whose header block completed at its deadline is closed, which
 * the deadline allowed anyway.
 *
 * When a header block's first byte arrived is not something libmicrohttpd
 * tells, and it reads every byte as it comes, so the reaper asks the kernel
 * (TCP_INFO's count of bytes received): on a connection waiting for a
 * request, the first tick that sees the count grow starts the clock (a
 * fresh connection's clock starts at accept).
 */
#include "conns.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum conn_phase {
    PHASE_WAITING, /* for a request: idle, or its header block arriving */
    PHASE_BODY,    /* its body arriving */
    PHASE_DISCARD, /* a refused body arriving, thrown away */
    PHASE_BUSY,    /* answering or computing: no deadline of ours */
};

struct conn {
    int fd;
    /* written by the connection's MHD thread */
    _Atomic int phase;          /* enum conn_phase */
    _Atomic int64_t since_us;   /* when the phase began */
    _Atomic int64_t last_us;    /* the last body bytes */
    _Atomic uint64_t body;      /* body bytes of this request */
    _Atomic unsigned completed; /* requests completed */
    /* the reaper's, under the mutex */
    bool shut;        /* shut down by us; libmicrohttpd closes it soon */
    bool adding;      /* MHD_add_connection() has not returned yet */
    bool closed;      /* libmicrohttpd said CLOSED while adding was true */
    unsigned seen;    /* completed, when base was taken */
    uint64_t base;    /* bytes received by then */
    int64_t first_us; /* a new header block's first bytes seen; 0: none */
};

struct conns {
    struct conns_limits lim;
    const char *late; /* the answer to a connection too slow; NULL: none */
    size_t late_len;
    pthread_mutex_t lock;
    struct conn **by_fd;
    size_t cap;   /* entries of by_fd */
    size_t count; /* registered */
    size_t shut;  /* of those, shut down and not yet closed */
    _Atomic unsigned long long closed[CONNS_NREASONS];
};

/* Connections shut down but not closed yet, past which admission refuses
   (libmicrohttpd's own limit is above max plus this: serve.c). */
#define SHUT_SLACK 64

static const char *const reason_names[CONNS_NREASONS] = {
    [CONNS_HEADER_TIMEOUT] = "header_timeout",
    [CONNS_BODY_TOO_SLOW] = "body_too_slow",
    [CONNS_DISCARD_TIMEOUT] = "discard_timeout",
    [CONNS_SHED] = "shed",
    [CONNS_REFUSED] = "refused",
    [CONNS_DRAINED] = "drained",
};

const char *conns_reason_name(enum conns_reason r)
{
    return (unsigned)r < CONNS_NREASONS ? reason_names[r] : "other";
}

static int64_t usec(double t)
{
    return (int64_t)(t * 1e6);
}

struct conns *conns_new(const struct conns_limits *lim, const char *late,
                        size_t late_len)
{
    struct conns *cs = calloc(1, sizeof *cs);
    if (!cs)
        return NULL;
    cs->lim = *lim;
    cs->late = late;
    cs->late_len = late_len;
    pthread_mutex_init(&cs->lock, NULL);
    return cs;
}

void conns_free(struct conns *cs)
{
    if (!cs)
        return;
    for (size_t i = 0; i < cs->cap; i++)
        free(cs->by_fd[i]);
    free(cs->by_fd);
    pthread_mutex_destroy(&cs->lock);
    free(cs);
}

/*
 * Shuts c's socket down for reason (under the lock): libmicrohttpd reads
 * the end of stream and closes the connection. A client too slow gets the
 * 408 first: libmicrohttpd writes nothing on a connection whose request is
 * still arriving, so the bytes cannot interleave with its own, and a
 * fresh socket buffer takes them whole (MSG_DONTWAIT: never waits).
 */
static void shut(struct conns *cs, struct conn *c, enum conns_reason reason)
{
    if (c->shut)
        return;
    c->shut = true;
    cs->shut++;
    if (cs->late &&
        (reason == CONNS_HEADER_TIMEOUT || reason == CONNS_BODY_TOO_SLOW))
        (void)!send(c->fd, cs->late, cs->late_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(c->fd, SHUT_RDWR);
    atomic_fetch_add_explicit(&cs->closed[reason], 1, memory_order_relaxed);
}

/* The registered connection waiting longest for a request (under the
   lock); NULL when none is. */
static struct conn *oldest_waiting(struct conns *cs)
{
    struct conn *best = NULL;
    int64_t best_since = 0;
    for (size_t i = 0; i < cs->cap; i++) {
        struct conn *c = cs->by_fd[i];
        if (!c || c->shut ||
            atomic_load_explicit(&c->phase, memory_order_relaxed) !=
                PHASE_WAITING)
            continue;
        int64_t since =
            atomic_load_explicit(&c->since_us, memory_order_relaxed);
        if (!best || since < best_since) {
            best = c;
            best_since = since;
        }
    }
    return best;
}

/* Room for fd in by_fd (under the lock); false when out of memory. */
static bool reserve(struct conns *cs, int fd)
{
    if ((size_t)fd < cs->cap)
        return true;
    size_t cap = cs->cap ? cs->cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    struct conn **t = realloc(cs->by_fd, cap * sizeof *t);
    if (!t)
        return false;
    memset(t + cs->cap, 0, (cap - cs->cap) * sizeof *t);
    cs->by_fd = t;
    cs->cap = cap;
    return true;
}

/*
 * Takes c out of the table (under the lock): it is no longer counted and
 * its descriptor is no longer its own (fd -1). Its memory stays until
 * libmicrohttpd's CLOSED notification, which finds it through the socket
 * context, or conns_added().
 */
static void detach(struct conns *cs, struct conn *c)
{
    if (c->fd < 0)
        return;
    cs->by_fd[c->fd] = NULL;
    c->fd = -1;
    cs->count--;
    if (c->shut)
        cs->shut--;
}

int conns_admit(struct conns *cs, int fd, double now, struct conn **ret)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fd = fd;
    atomic_init(&c->phase, PHASE_WAITING);
    atomic_init(&c->since_us, usec(now));
    c->adding = true;
    pthread_mutex_lock(&cs->lock);
    int rc = reserve(cs, fd) ? 0 : -ENOMEM;
    /* a stale entry (conns.c's head) is not counted against the cap */
    if (rc == 0 && cs->by_fd[fd])
        detach(cs, cs->by_fd[fd]);
    if (rc == 0 && cs->count - cs->shut >= cs->lim.max) {
        struct conn *old = oldest_waiting(cs);
        if (!old)
            rc = -EBUSY;
        else if (cs->count >= cs->lim.max + SHUT_SLACK)
            rc = -EAGAIN; /* libmicrohttpd is behind with its closes */
        else
            shut(cs, old, CONNS_SHED);
    }
    if (rc == 0) {
        cs->by_fd[fd] = c;
        cs->count++;
    }
    pthread_mutex_unlock(&cs->lock);
    if (rc < 0)
        free(c);
    if (rc == -EBUSY)
        atomic_fetch_add_explicit(&cs->closed[CONNS_REFUSED], 1,
                                  memory_order_relaxed);
    *ret = rc == 0 ? c : NULL;
    return rc;
}

void conns_added(struct conns *cs, struct conn *c, bool ok)
{
    pthread_mutex_lock(&cs->lock);
    c->adding = false;
    /* refused: libmicrohttpd has let go of it, whether or not it said
       CLOSED; added and already CLOSED: it was left to us */
    bool mine = !ok || c->closed;
    if (mine)
        detach(cs, c);
    pthread_mutex_unlock(&cs->lock);
    if (mine)
        free(c);
}

void conns_notify(void *cls, struct MHD_Connection *connection,
                  void **socket_context,
                  enum MHD_ConnectionNotificationCode code)
{
    struct conns *cs = cls;
    pthread_mutex_lock(&cs->lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
            connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        int fd = ci ? ci->connect_fd : -1;
        /* the descriptor is open and the connection's: the entry is its */
        *socket_context =
            fd >= 0 && (size_t)fd < cs->cap ? cs->by_fd[fd] : NULL;
        pthread_mutex_unlock(&cs->lock);
        return;
    }
    /* by its context, not its descriptor: libmicrohttpd may have closed
       that already, and the number may belong to a newer connection */
    struct conn *c = *socket_context;
    if (c) {
        detach(cs, c);
        if (c->adding) { /* conns_added() frees it */
            c->closed = true;
            c = NULL;
        }
    }
    pthread_mutex_unlock(&cs->lock);
    *socket_context = NULL;
    free(c);
}

struct conn *conns_of(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void set_phase(struct conn *c, enum conn_phase p, double now)
{
    atomic_store_explicit(&c->since_us, usec(now), memory_order_relaxed);
    atomic_store_explicit(&c->phase, p, memory_order_release);
}

void conn_begin(struct conn *c, double now)
{
    if (!c)
        return;
    atomic_store_explicit(&c->body, 0, memory_order_relaxed);
    atomic_store_explicit(&c->last_us, usec(now), memory_order_relaxed);
    set_phase(c, PHASE_BODY, now);
}

void conn_body(struct conn *c, size_t n, double now)
{
    if (!c)
        return;
    atomic_fetch_add_explicit(&c->body, n, memory_order_relaxed);
    atomic_store_explicit(&c->last_us, usec(now), memory_order_relaxed);
}

void conn_discard(struct conn *c, double now)
{
    if (c &&
        atomic_load_explicit(&c->phase, memory_order_relaxed) != PHASE_DISCARD)
        set_phase(c, PHASE_DISCARD, now);
}

void conn_busy(struct conn *c)
{
    if (c)
        atomic_store_explicit(&c->phase, PHASE_BUSY, memory_order_release);
}

void conn_end(struct conn *c, double now)
{
    if (!c)
        return;
    atomic_fetch_add_explicit(&c->completed, 1, memory_order_relaxed);
    set_phase(c, PHASE_WAITING, now);
}

/* Bytes the kernel has received on fd; false if it cannot tell. */
static bool bytes_received(int fd, uint64_t *ret)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) +
                  sizeof ti.tcpi_bytes_received)
        return false;
    *ret = ti.tcpi_bytes_received;
    return true;
}

/* A connection waiting for a request: past the header deadline? */
static bool header_late(struct conns *cs, struct conn *c, int64_t now)
{
    uint64_t got;
    if (!bytes_received(c->fd, &got))
        return false;
    unsigned done = atomic_load_explicit(&c->completed, memory_order_relaxed);
    if (c->seen != done) { /* a new wait, after a request */
        c->seen = done;
        c->base = got;
        c->first_us = 0;
        return false;
    }
    /* a fresh connection's bytes are all its first request's */
    if (c->first_us == 0 && got > c->base)
        c->first_us =
            done == 0 ? atomic_load_explicit(&c->since_us, memory_order_relaxed)
                      : now;
    return c->first_us != 0 && now - c->first_us > usec(cs->lim.header_timeout);
}

/* A body arriving: below the minimum rate, past its allowance? */
static bool body_late(const struct conns *cs, struct conn *c, int64_t now)
{
    if (cs->lim.body_min_rate <= 0)
        return false;
    double allowed =
        cs->lim.body_timeout +
        (double)atomic_load_explicit(&c->body, memory_order_relaxed) /
            cs->lim.body_min_rate;
    return now - atomic_load_explicit(&c->since_us, memory_order_relaxed) >
           usec(allowed);
}

/* A refused body: read for too long, or paused too long? */
static bool discard_late(const struct conns *cs, struct conn *c, int64_t now)
{
    int64_t since = atomic_load_explicit(&c->since_us, memory_order_relaxed);
    int64_t last = atomic_load_explicit(&c->last_us, memory_order_relaxed);
    return (cs->lim.discard_timeout > 0 &&
            now - since > usec(cs->lim.discard_timeout)) ||
           (cs->lim.discard_idle_timeout > 0 &&
            now - last > usec(cs->lim.discard_idle_timeout));
}

void conns_tick(struct conns *cs, double now)
{
    int64_t t = usec(now);
    pthread_mutex_lock(&cs->lock);
    for (size_t i = 0; i < cs->cap; i++) {
        struct conn *c = cs->by_fd[i];
        if (!c || c->shut)
            continue;
        switch (atomic_load_explicit(&c->phase, memory_order_acquire)) {
        case PHASE_WAITING:
            if (cs->lim.header_timeout > 0 && header_late(cs, c, t))
                shut(cs, c, CONNS_HEADER_TIMEOUT);
            break;
        case PHASE_BODY:
            if (body_late(cs, c, t))
                shut(cs, c, CONNS_BODY_TOO_SLOW);
            break;
        case PHASE_DISCARD:
            if (discard_late(cs, c, t))
                shut(cs, c, CONNS_DISCARD_TIMEOUT);
            break;
        default:
            break;
        }
    }
    pthread_mutex_unlock(&cs->lock);
}

size_t conns_count(struct conns *cs)
{
    pthread_mutex_lock(&cs->lock);
    size_t n = cs->count;
    pthread_mutex_unlock(&cs->lock);
    return n;
}

void conns_closed(struct conns *cs, unsigned long long *ret)
{
    for (size_t i = 0; i < CONNS_NREASONS; i++)
        ret[i] = atomic_load_explicit(&cs->closed[i], memory_order_relaxed);
}

bool conns_all_idle(struct conns *cs, double idle, double now)
{
    int64_t t = usec(now), need = usec(idle);
    bool all = true;
    pthread_mutex_lock(&cs->lock);
    for (size_t i = 0; all && i < cs->cap; i++) {
        struct conn *c = cs->by_fd[i];
        if (!c || c->shut)
            continue;
        all = atomic_load_explicit(&c->phase, memory_order_acquire) ==
                  PHASE_WAITING &&
              t - atomic_load_explicit(&c->since_us, memory_order_relaxed) >=
                  need;
    }
    pthread_mutex_unlock(&cs->lock);
    return all;
}

void conns_close_waiting(struct conns *cs)
{
    pthread_mutex_lock(&cs->lock);
    for (size_t i = 0; i < cs->cap; i++) {
        struct conn *c = cs->by_fd[i];
        if (c && !c->shut &&
            atomic_load_explicit(&c->phase, memory_order_acquire) ==
                PHASE_WAITING)
            shut(cs, c, CONNS_DRAINED);
    }
    pthread_mutex_unlock(&cs->lock);
}

/*
 * conns.h - every open connection of `lossd serve`, and the rules that
 * libmicrohttpd 0.9.75 does not enforce itself: a cap on connections, a
 * deadline for a request's header block, a minimum rate for its body, and
 * bounds on how long a refused body is read and thrown away.
 *
 * The accepting thread (listen.c) registers each connection before it hands
 * it to libmicrohttpd, so the cap is exact and holds below the library's
 * own limit (reaching that limit wedged 0.9.75: docs/operations.md,
 * "Connections"). At the cap, the connection that has waited longest for a
 * request (idle keep-alive, or a header block still arriving) is closed to
 * make room, so a new client such as a health probe is served; when every
 * connection is in the middle of a request, the new one is refused with a
 * 503 and closed.
 *
 * http.c tells each connection's phase as its requests go (conn_begin(),
 * conn_body(), conn_discard(), conn_busy(), conn_end()); conns_tick(), on
 * the accepting thread, closes connections past their deadline by shutting
 * their socket down, which libmicrohttpd sees as the client leaving; a
 * plain-HTTP client past its header or body deadline first gets a 408.
 */
#ifndef LOSSD_SERVER_CONNS_H
#define LOSSD_SERVER_CONNS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

struct conns;
struct conn;

/* The rules; a timeout or rate of 0 turns its rule off. */
struct conns_limits {
    size_t max;             /* --max-connections */
    double header_timeout;  /* head complete within this of its first byte */
    double body_timeout;    /* a body's allowance before the rate counts */
    double body_min_rate;   /* bytes/s: each one extends the allowance */
    double discard_timeout; /* a refused body read for at most this */
    double discard_idle_timeout; /* ... with no pause longer than this */
};

/* Why conns_tick() or conns_admit() closed a connection (metrics labels,
   in this order: conns_reason_name()). */
enum conns_reason {
    CONNS_HEADER_TIMEOUT,
    CONNS_BODY_TOO_SLOW,
    CONNS_DISCARD_TIMEOUT,
    CONNS_SHED,    /* waited longest for a request, at the cap */
    CONNS_REFUSED, /* at the cap with nothing to shed */
    CONNS_DRAINED, /* idle when the server stopped */
    CONNS_NREASONS
};
const char *conns_reason_name(enum conns_reason r);

/*
 * NULL when out of memory. late (len bytes, borrowed for the registry's
 * life; NULL for none) is written to a connection closed for its header
 * deadline or its body's rate before the close: a whole HTTP response.
 */
struct conns *conns_new(const struct conns_limits *lim, const char *late,
                        size_t late_len);
void conns_free(struct conns *cs);

/*
 * The accepting thread, for a new connection fd: registers it in *ret and
 * returns 0; then hand fd to libmicrohttpd and tell conns_added() whether
 * it took it. At the cap, first shuts down the connection that has waited
 * longest for a request. -EBUSY: at the cap and every connection is busy
 * (refuse fd); -EAGAIN: too many connections shut down are still open (try
 * again in a moment: libmicrohttpd is closing them); -ENOMEM.
 */
int conns_admit(struct conns *cs, int fd, double now, struct conn **ret);

/*
 * MHD_add_connection() returned for c: ok when it took the connection
 * (false: it closed the socket). Frees c unless libmicrohttpd still holds
 * it, whatever order its notifications came in.
 */
void conns_added(struct conns *cs, struct conn *c, bool ok);

/* MHD_OPTION_NOTIFY_CONNECTION's callback; cls is the struct conns. */
void conns_notify(void *cls, struct MHD_Connection *connection,
                  void **socket_context,
                  enum MHD_ConnectionNotificationCode code);

/* The connection of an MHD connection; NULL if it was never registered. */
struct conn *conns_of(struct MHD_Connection *connection);

/*
 * A request's phases, from its MHD thread (c may be NULL: nothing to do).
 * begin: its header block is complete. body: n more body bytes arrived.
 * discard: its body is refused and from now on read only to be thrown
 * away. busy: the body is complete (answering, or a job computing). end:
 * the request completed; the connection waits for the next one.
 */
void conn_begin(struct conn *c, double now);
void conn_body(struct conn *c, size_t n, double now);
void conn_discard(struct conn *c, double now);
void conn_busy(struct conn *c);
void conn_end(struct conn *c, double now);

/* Enforces the deadlines: the accepting thread calls it a few times a
   second. */
void conns_tick(struct conns *cs, double now);

/* Open connections. */
size_t conns_count(struct conns *cs);

/* Connections closed by these rules so far, by reason (CONNS_NREASONS
   entries into ret). */
void conns_closed(struct conns *cs, unsigned long long *ret);

/*
 * Whether every open connection has waited at least idle seconds for a
 * request (true with none open): at the end of a drain, what is left is
 * idle keep-alive connections, which conns_close_waiting() then closes.
 */
bool conns_all_idle(struct conns *cs, double idle, double now);
void conns_close_waiting(struct conns *cs);

#endif

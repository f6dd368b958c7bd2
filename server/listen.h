/*
 * listen.h - the listening socket of `lossd serve` and the thread that
 * accepts on it, handing each connection to libmicrohttpd.
 *
 * libmicrohttpd 0.9.75 can stop accepting only through
 * MHD_quiesce_daemon(), which on an epoll daemon with its own threads races
 * with those threads for the removal of the listening socket from their
 * epoll sets; the loser calls MHD_PANIC and the process aborts (seen as a
 * SIGABRT during the drain under load). So lossd listens itself, starts the
 * daemon with MHD_USE_NO_LISTEN_SOCKET, and passes connections in with
 * MHD_add_connection(); to stop accepting it stops this thread and closes
 * the socket, and new clients are refused.
 */
#ifndef LOSSD_SERVER_LISTEN_H
#define LOSSD_SERVER_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

struct MHD_Daemon;
struct server_log;
struct conns;
struct listener;

/*
 * Binds addr (SO_REUSEADDR; IPv6 addresses only for IPv6) and listens with
 * backlog. NULL with reason filled (cap bytes) on failure.
 */
struct listener *listener_open(const struct sockaddr *addr, socklen_t len,
                               int backlog, char *reason, size_t cap);

/* The bound port (what port 0 became). */
unsigned listener_port(const struct listener *l);

/* What the accepting thread works with; everything outlives it. */
struct listener_config {
    struct MHD_Daemon *daemon; /* takes the connections */
    struct server_log *log;
    struct conns *conns; /* admits them, and has its deadlines kept */
    const char *refusal; /* sent to a connection over the cap; NULL: none */
    size_t refusal_len;
};

/*
 * Starts the thread that accepts connections and adds them to the daemon,
 * and keeps the connections' deadlines (conns_tick()) while it runs. Call
 * it with SIGTERM and SIGINT blocked (the thread inherits the mask). 0, or
 * a negative errno value.
 */
int listener_start(struct listener *l, const struct listener_config *cfg);

/*
 * Stops the thread (if started), then shuts down and closes the socket:
 * from here new clients are refused. Call it before MHD_stop_daemon(). l
 * may be NULL.
 */
void listener_close(struct listener *l);

#endif

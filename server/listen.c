/*
 * listen.c - the listening socket and the accepting thread (listen.h says
 * why lossd does not let libmicrohttpd listen).
 *
 * The thread waits in poll() on the socket and an eventfd that
 * listener_close() writes; each time the socket is readable it accepts what
 * is pending (up to ACCEPT_BATCH), registers every connection with the
 * connection table (conns.h: the cap) and hands it to MHD_add_connection(),
 * which picks a daemon thread and closes the socket itself when it cannot
 * take it. A connection over the cap is refused: a canned 503 on plain
 * HTTP, then closed. When the process is out of file descriptors the
 * pending connection would keep the socket readable, so the thread then
 * waits 100 ms (woken by a close) and logs at most once a second. Between
 * events, and at least every TICK seconds, it enforces the connections'
 * deadlines (conns_tick()).
 */
#include "listen.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "conns.h"
#include "log.h"
#include "pool.h"

#define ACCEPT_BATCH 64
#define TICK         0.25 /* seconds between conns_tick() */
#define ADMIT_WAIT   1.0

struct listener {
    int fd;
    int wake; /* eventfd: written by listener_close() */
    pthread_t thread;
    bool started;
    struct MHD_Daemon *daemon;
    struct server_log *log;
    struct conns *conns;
    const char *refusal; /* written to a refused connection; NULL: none */
    size_t refusal_len;
    time_t last_warning;
    double last_tick;
};

struct listener *listener_open(const struct sockaddr *addr, socklen_t len,
                               int backlog, char *reason, size_t cap)
{
    struct listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(reason, cap, "out of memory");
        return NULL;
    }
    l->wake = -1;
    l->fd =
        socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        snprintf(reason, cap, "socket: %s", strerror(errno));
        free(l);
        return NULL;
    }
    int one = 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->sa_family == AF_INET6)
        setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(l->fd, addr, len) != 0 || listen(l->fd, backlog) != 0) {
        snprintf(reason, cap, "%s", strerror(errno));
        close(l->fd);
        free(l);
        return NULL;
    }
    return l;
}

unsigned listener_port(const struct listener *l)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    if (getsockname(l->fd, (struct sockaddr *)&a, &len) != 0)
        return 0;
    if (a.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

/* Out of descriptors or memory: a warning at most once a second. */
static void accept_trouble(struct listener *l, int err)
{
    time_t now = time(NULL);
    if (now != l->last_warning) {
        l->last_warning = now;
        server_log_event(l->log, SERVER_LOG_WARN, "accept",
                         "cannot accept connections: %s", strerror(err));
    }
}

/*
 * A connection over the cap: the canned answer if there is one (a fresh
 * socket's buffer takes it whole), then whatever the client already sent is
 * read so the close does not reset the answer away, then the close.
 */
static void refuse(const struct listener *l, int fd)
{
    if (l->refusal) {
        (void)!send(fd, l->refusal, l->refusal_len, MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
        char sink[4096];
        while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
            ;
    }
    close(fd);
}

/*
 * conns_admit(), waiting while libmicrohttpd catches up with the
 * connections shed to make room (new ones meanwhile wait in the backlog),
 * up to ADMIT_WAIT seconds; then, or at -EBUSY, the caller refuses fd.
 */
static int admit(struct listener *l, int fd, struct conn **ret)
{
    double end = pool_now() + ADMIT_WAIT;
    for (;;) {
        int rc = conns_admit(l->conns, fd, pool_now(), ret);
        if (rc != -EAGAIN || pool_now() > end)
            return rc;
        struct pollfd p = {.fd = l->wake, .events = POLLIN};
        if (poll(&p, 1, 2) > 0)
            return rc; /* listener_close() */
    }
}

/* Accepts what is pending; false when the thread should wait a while. */
static bool accept_pending(struct listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage a;
        socklen_t len = sizeof a;
        int fd = accept4(l->fd, (struct sockaddr *)&a, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED || errno == EPROTO)
                return true;
            accept_trouble(l, errno);
            return false;
        }
        struct conn *c = NULL;
        if (admit(l, fd, &c) < 0) {
            refuse(l, fd);
            continue;
        }
        /* On failure (no memory) it has closed fd already. */
        conns_added(l->conns, c,
                    MHD_add_connection(l->daemon, fd, (struct sockaddr *)&a,
                                       len) == MHD_YES);
    }
    return true;
}

static void *accept_main(void *arg)
{
    struct listener *l = arg;
    struct pollfd p[2] = {{.fd = l->fd, .events = POLLIN},
                          {.fd = l->wake, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, (int)(TICK * 1000)) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break; /* listener_close() */
        if ((p[0].revents & POLLIN) && !accept_pending(l) &&
            poll(&p[1], 1, 100) > 0)
            break;
        double now = pool_now();
        if (now - l->last_tick >= TICK) {
            l->last_tick = now;
            conns_tick(l->conns, now);
        }
    }
    return NULL;
}

int listener_start(struct listener *l, const struct listener_config *cfg)
{
    l->daemon = cfg->daemon;
    l->log = cfg->log;
    l->conns = cfg->conns;
    l->refusal = cfg->refusal;
    l->refusal_len = cfg->refusal_len;
    l->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake < 0)
        return -errno;
    int rc = pthread_create(&l->thread, NULL, accept_main, l);
    if (rc != 0)
        return -rc;
    l->started = true;
    return 0;
}

void listener_close(struct listener *l)
{
    if (!l)
        return;
    if (l->started) {
        uint64_t one = 1;
        while (write(l->wake, &one, sizeof one) < 0 && errno == EINTR)
            ;
        pthread_join(l->thread, NULL);
    }
    if (l->wake >= 0)
        close(l->wake);
    shutdown(l->fd, SHUT_RDWR); /* refuse what waits in the backlog */
    close(l->fd);
    free(l);
}

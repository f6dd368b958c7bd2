/*
 * listen.c - the listening socket and the accepting thread (listen.h says
 * why lossd does not let libmicrohttpd listen).
 *
 * The thread waits in poll() on the socket and an eventfd that
 * listener_close() writes; each time the socket is readable it accepts what
 * is pending (up to ACCEPT_BATCH) and hands every connection to
 * MHD_add_connection(), which picks a daemon thread, applies the connection
 * limit and closes the socket itself when it cannot take it. When the
 * process is out of file descriptors the pending connection would keep the
 * socket readable, so the thread then waits 100 ms (woken by a close) and
 * logs at most once a second.
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

#include "log.h"

#define ACCEPT_BATCH 64

struct listener {
    int fd;
    int wake; /* eventfd: written by listener_close() */
    pthread_t thread;
    bool started;
    struct MHD_Daemon *daemon;
    struct server_log *log;
    time_t last_warning;
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
        /* On failure (the limit, no memory) it has closed fd already. */
        MHD_add_connection(l->daemon, fd, (struct sockaddr *)&a, len);
    }
    return true;
}

static void *accept_main(void *arg)
{
    struct listener *l = arg;
    struct pollfd p[2] = {{.fd = l->fd, .events = POLLIN},
                          {.fd = l->wake, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break; /* listener_close() */
        if ((p[0].revents & POLLIN) && !accept_pending(l) &&
            poll(&p[1], 1, 100) > 0)
            break;
    }
    return NULL;
}

int listener_start(struct listener *l, struct MHD_Daemon *d,
                   struct server_log *log)
{
    l->daemon = d;
    l->log = log;
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

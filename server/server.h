/*
 * server.h - what the parts of `lossd serve` share: the server's context
 * (the MHD cls and the owner of everything a request reaches) and its
 * phase. serve.c starts, drains and stops it; http.c answers requests in
 * it. Not for anything outside server/.
 */
#ifndef LOSSD_SERVER_SERVER_H
#define LOSSD_SERVER_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include "config.h"
#include "handler.h"
#include "pool_exec.h"

enum server_phase {
    SERVER_SERVING,  /* ready */
    SERVER_DRAINING, /* readyz 503, everything else served */
    SERVER_CLOSING,  /* not accepting; every answer has Connection: close */
};

/* Retry-After of every 503, seconds. */
#define SERVER_RETRY_AFTER "1"

/* A document built once at start, with its gzip form when smaller. */
struct server_doc {
    char *body;
    size_t len;
    char *gz; /* NULL: not smaller, or out of memory at start */
    size_t gz_len;
};

struct server {
    struct server_config cfg;
    struct handler_pipeline *pipeline; /* limits, the in-flight budget */
    struct MHD_Daemon *daemon;
    struct listener *listener; /* NULL once closed */
    struct conns *conns;       /* every open connection */
    char *refusal;             /* the answer over --max-connections (conns.h) */
    size_t refusal_len;
    char *late; /* the answer to a client too slow (conns.h) */
    size_t late_len;
    struct pool *pool;
    struct pool_exec exec; /* pooled jobs' executor on pool */
    struct metrics *metrics;
    struct server_log *log;
    struct server_auth *auth;  /* NULL: no --auth-token-file */
    const char **loss_names;   /* handler_count(), static: metrics labels */
    const char **route_labels; /* server_route_count(), static */
    struct server_doc catalog, openapi;
    char *oip_server;  /* GET /v2, written at start */
    char *oom_problem; /* the out-of-memory answer, written at start */
    size_t oom_problem_len;
    _Atomic int phase;     /* enum server_phase */
    _Atomic size_t active; /* requests with state, not completed */
    _Atomic unsigned long long next_id;
    unsigned long long id_seed;
};

#endif

/*
 * config.h - the configuration of `lossd serve`: flags, LOSSD_* environment
 * variables (flags win), defaults, and the CPUs the process may really use.
 *
 * Configuration is the one thing the server keeps for its whole life and
 * never changes after start; everything else lives in a context passed down.
 */
#ifndef LOSSD_SERVER_CONFIG_H
#define LOSSD_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "conns.h"
#include "handler.h"

enum server_log_format { SERVER_LOG_JSON, SERVER_LOG_TEXT };

enum server_log_level {
    SERVER_LOG_DEBUG,
    SERVER_LOG_INFO,
    SERVER_LOG_WARN,
    SERVER_LOG_ERROR,
};

#define SERVER_HOST_MAX    256
#define SERVER_ORIGINS_MAX 2048
#define SERVER_PATH_MAX    4096

struct server_config {
    char host[SERVER_HOST_MAX];
    unsigned port; /* 0: any free port */
    size_t threads;
    size_t workers;
    struct handler_limits limits; /* body, elements, work, batch items */
    size_t max_inflight_bytes;
    size_t queue_limit;
    double inline_max_cost;
    double drain_seconds;
    double exit_timeout;
    unsigned connection_timeout; /* seconds */
    size_t connection_memory;    /* bytes: libmicrohttpd's pool */
    struct conns_limits conns;   /* --max-connections and the deadlines */
    /* comma-separated origins, "*" for any, "" for none */
    char cors_origins[SERVER_ORIGINS_MAX];
    enum server_log_format log_format;
    enum server_log_level log_level;
    /* files read at start (docs/security.md); "" for none */
    char auth_token_file[SERVER_PATH_MAX]; /* also reread on SIGHUP */
    char tls_cert[SERVER_PATH_MAX];        /* PEM; with tls_key or neither */
    char tls_key[SERVER_PATH_MAX];
};

/*
 * The CPUs this process may use: its affinity mask, lowered by a cgroup v2
 * cpu.max or v1 CFS quota (rounded up), at least 1.
 */
size_t server_cpus_available(void);

/* The defaults (CPU-dependent ones from server_cpus_available()). */
void server_config_default(struct server_config *c);

/*
 * Fills c from defaults, then the environment (LOSSD_PORT, ...), then
 * argv[1..argc) (argv[0] is the subcommand). 0 on success, with *ret_help
 * set when --help was asked (the help is written to out and c is not to be
 * used); -EINVAL with a one-line reason in ret_reason (of size cap) for bad
 * configuration.
 */
int server_config_load(struct server_config *c, int argc, char **argv,
                       FILE *out, bool *ret_help, char *ret_reason, size_t cap);

/* Whether origin (len bytes) is allowed by c->cors_origins. */
bool server_config_origin_allowed(const struct server_config *c,
                                  const char *origin, size_t len);

#endif

/*
 * serve.c - `lossd serve`: starts the server (configuration, the worker
 * pool, the listening socket, libmicrohttpd in epoll mode with a pool of
 * HTTP threads), waits for a signal, drains and stops it. What happens to
 * a request is http.c's.
 */
#include "serve.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "blas.h"
#include "coding.h"
#include "conns.h"
#include "document.h"
#include "http.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "route.h"
#include "server.h"

#ifndef LOSSD_VERSION
#define LOSSD_VERSION "unknown"
#endif

static double now_mono(void)
{
    return pool_now();
}

/* d's body from b (stolen), and its gzip form when that is smaller.
   -ENOMEM when b failed. */
static int doc_init(struct server_doc *d, struct proto_buf *b)
{
    d->body = proto_buf_steal(b, &d->len);
    if (!d->body)
        return -ENOMEM;
    /* failure leaves NULL: those clients get the identity form */
    if (server_coding_compress(SERVER_CODING_GZIP, SERVER_COMPRESS_LEVEL_STATIC,
                               d->body, d->len, &d->gz, &d->gz_len) < 0)
        d->gz = NULL;
    return 0;
}

static void doc_release(struct server_doc *d)
{
    free(d->body);
    free(d->gz);
}

/*
 * A whole response sent as it is, outside libmicrohttpd (conns.h): the
 * problem document of err with its status line, Connection: close and
 * (for a 503) Retry-After. NULL when out of memory.
 */
static char *canned_write(const struct loss_error *err, size_t *ret_len)
{
    struct proto_buf doc, b;
    size_t len = 0;
    int status = proto_status_http(err->status);
    proto_buf_init(&doc);
    proto_problem_write(&doc, err, NULL, NULL);
    char *body = proto_buf_steal(&doc, &len);
    if (!body)
        return NULL;
    proto_buf_init(&b);
    proto_buf_printf(&b,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: application/problem+json\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n\r\n",
                     status, MHD_get_reason_phrase_for((unsigned)status), len,
                     status == 503 ? "Retry-After: " SERVER_RETRY_AFTER "\r\n"
                                   : "");
    proto_buf_append(&b, body, len);
    free(body);
    return proto_buf_steal(&b, ret_len);
}

/* Everything a request may reach, built before the first one. 0 or
   -ENOMEM. */
static int server_init(struct server *s)
{
    size_t nlosses = handler_count(), nroutes = server_route_count();
    s->loss_names = calloc(nlosses + 1, sizeof *s->loss_names);
    s->route_labels = calloc(nroutes + 1, sizeof *s->route_labels);
    const struct proto_loss_desc **descs = calloc(nlosses + 1, sizeof *descs);
    if (!s->loss_names || !s->route_labels || !descs) {
        free(descs);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nlosses; i++) {
        descs[i] = handler_describe(handler_at(i));
        s->loss_names[i] = descs[i]->name;
    }
    for (size_t i = 0; i < nroutes; i++)
        s->route_labels[i] = server_route_at(i)->label;
    struct proto_limits_desc ld;
    handler_limits_describe(&s->cfg.limits, &ld);
    struct proto_buf b;
    proto_buf_init(&b);
    proto_catalog_write(&b, descs, nlosses, &ld);
    int rc = doc_init(&s->catalog, &b);
    proto_buf_init(&b);
    proto_openapi_write(&b, descs, nlosses, &ld, LOSSD_VERSION);
    if (rc == 0)
        rc = doc_init(&s->openapi, &b);
    else
        proto_buf_release(&b);
    free(descs);
    /* the answer when memory runs out, from the one status table */
    struct loss_error oom;
    loss_fail(&oom, LOSS_ENOMEM, NULL, "out of memory");
    proto_buf_init(&b);
    proto_problem_write(&b, &oom, NULL, NULL);
    s->oom_problem = proto_buf_steal(&b, &s->oom_problem_len);
    size_t oip_len = 0;
    proto_buf_init(&b);
    proto_buf_puts(&b, "{\"name\":\"lossd\",\"version\":");
    proto_write_string(&b, LOSSD_VERSION, strlen(LOSSD_VERSION));
    proto_buf_puts(&b, ",\"extensions\":[\"binary_tensor_data\"]}");
    s->oip_server = proto_buf_steal(&b, &oip_len);
    s->pipeline =
        handler_pipeline_new(&s->cfg.limits, s->cfg.max_inflight_bytes);
    struct loss_error e;
    loss_fail(&e, LOSS_EUNAVAIL, NULL,
              "too many connections (max-connections %zu); retry",
              s->cfg.conns.max);
    s->refusal = canned_write(&e, &s->refusal_len);
    loss_fail(&e, LOSS_ETIMEOUT, NULL,
              "the request came too slowly (header-timeout %g s, "
              "body-timeout %g s, body-min-rate %g bytes/s)",
              s->cfg.conns.header_timeout, s->cfg.conns.body_timeout,
              s->cfg.conns.body_min_rate);
    s->late = canned_write(&e, &s->late_len);
    /* a TLS client would read plain text as a broken record */
    s->conns = conns_new(&s->cfg.conns, s->cfg.tls_cert[0] ? NULL : s->late,
                         s->late_len);
    s->metrics = metrics_new(s->route_labels, nroutes, s->loss_names, nlosses);
    if (rc < 0 || !s->oom_problem || !s->oip_server || !s->pipeline ||
        !s->metrics || !s->conns || !s->refusal || !s->late)
        return -ENOMEM;
    unsigned long long seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
        seed = (unsigned long long)time(NULL) ^
               ((unsigned long long)getpid() << 32);
    s->id_seed = seed;
    return 0;
}

static void server_release(struct server *s)
{
    conns_free(s->conns);
    free(s->refusal);
    free(s->late);
    metrics_free(s->metrics);
    handler_pipeline_free(s->pipeline);
    doc_release(&s->catalog);
    doc_release(&s->openapi);
    free(s->oom_problem);
    free(s->oip_server);
    free(s->loss_names);
    free(s->route_labels);
    server_auth_free(s->auth);
    server_log_free(s->log);
}

/*
 * The thread that waits for SIGTERM, SIGINT and SIGHUP with sigtimedwait(). A
 * signal handler can reach nothing else, hence a global, written once
 * before the handler is installed.
 */
static pthread_t signal_thread;

/*
 * Threads started before main() do not block SIGTERM and SIGINT (OpenBLAS
 * starts its pool in a library constructor). The kernel gives a
 * process-directed signal to any thread that does not block it whenever
 * the main thread is not inside sigtimedwait(): with the default action
 * that killed the process in the middle of requests instead of draining.
 * This handler runs only in such threads and hands the signal to the main
 * thread, where it stays pending until sigtimedwait() takes it.
 */
static void forward_signal(int sig)
{
    int saved = errno;
    pthread_kill(signal_thread, sig);
    errno = saved;
}

/* Waits up to seconds for a signal in set: the signal, or 0 if none came. */
static int wait_signal(const sigset_t *set, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    struct timespec ts = {
        .tv_sec = (time_t)seconds,
        .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return sig;
        if (errno != EINTR)
            return 0;
    }
}

/*
 * SIGHUP: rereads --auth-token-file. A file that fails keeps the tokens in
 * force (auth.h), with a warning; the event is flushed at once, so whoever
 * rotated the file sees the outcome.
 */
static void reload(struct server *s)
{
    char reason[512];
    size_t n = 0;
    if (!s->auth) {
        server_log_event(s->log, SERVER_LOG_INFO, "reload",
                         "SIGHUP: nothing to reload (no --auth-token-file)");
    } else if (server_auth_reload(s->auth, &n, reason, sizeof reason) < 0) {
        server_log_event(s->log, SERVER_LOG_WARN, "reload",
                         "auth tokens not reloaded, %zu kept in force: %s",
                         server_auth_count(s->auth), reason);
    } else {
        server_log_event(s->log, SERVER_LOG_INFO, "reload",
                         "%zu auth tokens in force from '%s'", n,
                         server_auth_path(s->auth));
    }
    server_log_flush(s->log);
}

/* Sleeps up to seconds, flushing the log every 100 ms; SIGHUP reloads, a
   second stopping signal ends the process at once. */
static void wait_tick(struct server *s, const sigset_t *set, double seconds)
{
    double step = seconds < 0.1 ? seconds : 0.1;
    int sig = wait_signal(set, step);
    if (sig == SIGHUP) {
        reload(s);
    } else if (sig) {
        server_log_event(s->log, SERVER_LOG_WARN, "exit",
                         "second signal: exiting at once");
        server_log_flush(s->log);
        _exit(1);
    }
    server_log_flush(s->log);
}

static int resolve(const char *host, unsigned port,
                   struct sockaddr_storage *ret, socklen_t *ret_len,
                   char *numeric, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0 || !res)
        return -EADDRNOTAVAIL;
    memcpy(ret, res->ai_addr, res->ai_addrlen);
    *ret_len = res->ai_addrlen;
    getnameinfo(res->ai_addr, res->ai_addrlen, numeric, (socklen_t)cap, NULL, 0,
                NI_NUMERICHOST);
    freeaddrinfo(res);
    return 0;
}

/*
 * TLS 1.2 and 1.3 only, GnuTLS's NORMAL choice of ciphers within them
 * (libmicrohttpd's default is NORMAL, which still allows TLS 1.0 and 1.1).
 */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* The largest certificate chain or key file read. */
#define TLS_FILE_MAX ((size_t)1 << 20)

/*
 * The PEM text of a --tls-cert or --tls-key file (flag names it in the
 * reason) in a new *ret: libmicrohttpd takes the text, not a file name.
 * 0, or -errno with a one-line reason.
 */
static int read_pem(const char *flag, const char *path, char **ret,
                    size_t *ret_len, char *reason, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(reason, cap, "%s: cannot open '%s': %s", flag, path,
                 strerror(e));
        return -e;
    }
    char *buf = malloc(TLS_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, TLS_FILE_MAX + 1, f) : 0;
    int e = !buf ? ENOMEM : ferror(f) ? errno : 0;
    fclose(f);
    if (!e && n > TLS_FILE_MAX)
        e = EFBIG;
    if (!e && (n == 0 || !memmem(buf, n, "-----BEGIN ", 11)))
        e = EBADMSG;
    if (e) {
        if (buf)
            explicit_bzero(buf, n < TLS_FILE_MAX ? n : TLS_FILE_MAX);
        free(buf);
        snprintf(reason, cap, "%s: cannot read '%s': %s", flag, path,
                 e == EBADMSG ? "not a PEM file" : strerror(e));
        return -e;
    }
    buf[n] = '\0';
    *ret = buf;
    *ret_len = n;
    return 0;
}

/* Frees PEM text, the key's bytes first cleared. */
static void pem_free(char *pem, size_t len)
{
    if (!pem)
        return;
    explicit_bzero(pem, len);
    free(pem);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/*
 * The bound on everything after the first signal, whatever libmicrohttpd
 * does: the drain, the exit timeout, a second for running jobs and one for
 * their answers, and a second to stop. A thread of its own, so that even
 * a main thread stuck in MHD_stop_daemon() leaves in time.
 */
struct watchdog {
    struct server_log *log;
    struct timespec deadline; /* CLOCK_MONOTONIC */
};

static void *watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &w->deadline,
                           NULL) == EINTR)
        ;
    server_log_event(w->log, SERVER_LOG_WARN, "exit",
                     "still stopping at the end of the exit timeout; "
                     "leaving");
    server_log_flush(w->log);
    _exit(0);
    return NULL;
}

static void watchdog_start(struct server *s)
{
    static struct watchdog w; /* lives until _exit() or exit() */
    double after = s->cfg.drain_seconds + s->cfg.exit_timeout + 3.0;
    clock_gettime(CLOCK_MONOTONIC, &w.deadline);
    w.log = s->log;
    w.deadline.tv_sec += (time_t)after;
    w.deadline.tv_nsec += (long)((after - (double)(time_t)after) * 1e9);
    if (w.deadline.tv_nsec >= 1000000000L) {
        w.deadline.tv_sec++;
        w.deadline.tv_nsec -= 1000000000L;
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, watchdog_main, &w) != 0)
        server_log_event(s->log, SERVER_LOG_WARN, "exit",
                         "no exit watchdog: cannot start a thread");
    pthread_attr_destroy(&attr);
}

/* Seconds a keep-alive connection must have been idle, once nothing is in
   flight, before the end of a drain closes it. */
#define LINGER_IDLE 1.0

/*
 * Waits (until end) for what requests have left: connections told
 * Connection: close go away by themselves; a client still sending on its
 * keep-alive connection gets one more answer, with Connection: close. Once
 * every connection left has been idle LINGER_IDLE seconds, they are closed
 * (a client about to reuse one is the only one that can lose a request,
 * as with any idle close), before MHD_stop_daemon() would close them all.
 */
static void linger(struct server *s, const sigset_t *set, double end)
{
    while (now_mono() < end && conns_count(s->conns) > 0 &&
           !conns_all_idle(s->conns, LINGER_IDLE, now_mono())) {
        conns_tick(s->conns, now_mono());
        wait_tick(s, set, end - now_mono());
    }
    conns_close_waiting(s->conns);
}

/* After the first signal: docs/operations.md, "Start and stop". Returns the
   exit code. */
static int drain(struct server *s, const sigset_t *set)
{
    watchdog_start(s);
    atomic_store(&s->phase, SERVER_DRAINING);
    server_log_event(s->log, SERVER_LOG_INFO, "draining",
                     "readiness 503; serving for %g s", s->cfg.drain_seconds);
    double end = now_mono() + s->cfg.drain_seconds;
    while (now_mono() < end)
        wait_tick(s, set, end - now_mono());

    /*
     * Not MHD_quiesce_daemon(): listen.h says why. The socket closes before
     * answers say Connection: close, so a client that reconnects is refused
     * at once instead of waiting in a backlog that is reset at the close.
     * The accepting thread is gone, so this one keeps the deadlines.
     */
    listener_close(s->listener);
    s->listener = NULL;
    atomic_store(&s->phase, SERVER_CLOSING);
    server_log_event(s->log, SERVER_LOG_INFO, "closing",
                     "not accepting; %zu requests in flight on %zu "
                     "connections",
                     atomic_load(&s->active), conns_count(s->conns));
    end = now_mono() + s->cfg.exit_timeout;
    while (atomic_load(&s->active) > 0 && now_mono() < end) {
        conns_tick(s->conns, now_mono());
        wait_tick(s, set, end - now_mono());
    }
    if (atomic_load(&s->active) == 0) {
        linger(s, set, end);
        return 0;
    }
    /* Exit timeout: queued jobs resume with 503; running ones get 1 s. */
    pool_close_submissions(s->pool);
    pool_cancel_queued(s->pool);
    end = now_mono() + 1.0;
    while (pool_pending(s->pool) > 0 && now_mono() < end)
        wait_tick(s, set, end - now_mono());
    if (pool_pending(s->pool) > 0) {
        server_log_event(s->log, SERVER_LOG_WARN, "exit",
                         "exit timeout: %zu jobs still running; leaving",
                         pool_pending(s->pool));
        server_log_flush(s->log);
        _exit(0);
    }
    /* resumed connections answer; give them a moment to write */
    end = now_mono() + 1.0;
    while (atomic_load(&s->active) > 0 && now_mono() < end)
        wait_tick(s, set, end - now_mono());
    return 0;
}

/*
 * The --max-connections that the file descriptor limit allows: each
 * connection is one descriptor, and the rest of the process (epoll sets,
 * event descriptors, libuv, the log) keeps a reserve.
 */
static size_t connections_allowed(const struct server *s)
{
    struct rlimit rl;
    size_t want = s->cfg.conns.max;
    size_t reserve = 64 + 4 * s->cfg.threads;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return want;
    size_t room = rl.rlim_cur > reserve + 16 ? rl.rlim_cur - reserve : 16;
    return want < room ? want : room;
}

int server_serve_main(int argc, char **argv)
{
    struct server *s = calloc(1, sizeof *s);
    char reason[512];
    int code = 1;
    if (!s) {
        fprintf(stderr, "lossd serve: out of memory\n");
        return 1;
    }
    bool help = false;
    int rc = server_config_load(&s->cfg, argc, argv, stdout, &help, reason,
                                sizeof reason);
    if (rc < 0 || help) {
        if (rc < 0)
            fprintf(stderr, "lossd serve: %s\n", reason);
        free(s);
        return rc < 0 ? 2 : 0;
    }
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    char numeric[NI_MAXHOST] = "";
    if (resolve(s->cfg.host, s->cfg.port, &addr, &addr_len, numeric,
                sizeof numeric) < 0) {
        fprintf(stderr, "lossd serve: --host: cannot resolve '%s'\n",
                s->cfg.host);
        free(s);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    /* Every thread started from here inherits this mask: only
       sigtimedwait() below sees the signals (older threads forward them). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    signal_thread = pthread_self();
    struct sigaction sa = {.sa_handler = forward_signal,
                           .sa_flags = SA_RESTART};
    sigfillset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    raise_fd_limit();

    if (s->cfg.auth_token_file[0] &&
        server_auth_new(s->cfg.auth_token_file, &s->auth, reason,
                        sizeof reason) < 0) {
        fprintf(stderr, "lossd serve: --auth-token-file: %s\n", reason);
        free(s);
        return 2;
    }
    /* kept until the daemon has stopped, whatever libmicrohttpd copies */
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    bool tls = s->cfg.tls_cert[0] != '\0';
    if (tls && (read_pem("--tls-cert", s->cfg.tls_cert, &cert, &cert_len,
                         reason, sizeof reason) < 0 ||
                read_pem("--tls-key", s->cfg.tls_key, &key, &key_len, reason,
                         sizeof reason) < 0)) {
        fprintf(stderr, "lossd serve: %s\n", reason);
        pem_free(cert, cert_len);
        server_auth_free(s->auth);
        free(s);
        return 2;
    }
    s->log = server_log_new(STDERR_FILENO, s->cfg.log_format, s->cfg.log_level);
    size_t allowed = connections_allowed(s);
    if (s->log && allowed < s->cfg.conns.max) {
        server_log_event(s->log, SERVER_LOG_WARN, "start",
                         "--max-connections lowered from %zu to %zu: the "
                         "file descriptor limit allows no more",
                         s->cfg.conns.max, allowed);
        s->cfg.conns.max = allowed;
    }
    if (!s->log || server_init(s) < 0) {
        fprintf(stderr, "lossd serve: out of memory\n");
        goto out;
    }
    int prc = pool_start(s->cfg.workers, s->cfg.queue_limit, &s->pool);
    if (prc < 0) {
        server_log_event(s->log, SERVER_LOG_ERROR, "start", "worker pool: %s",
                         uv_strerror(prc));
        goto out;
    }
    pool_exec_init(&s->exec, s->pool);
    /* a burst of new connections waits in the backlog rather than having
       its SYNs dropped (the kernel caps it at net.core.somaxconn) */
    s->listener = listener_open((struct sockaddr *)&addr, addr_len, 4096,
                                reason, sizeof reason);
    if (!s->listener) {
        server_log_event(s->log, SERVER_LOG_ERROR, "start",
                         "cannot listen on %s port %u: %s", s->cfg.host,
                         s->cfg.port, reason);
        pool_stop(s->pool);
        s->pool = NULL;
        goto out;
    }
    /* lossd listens itself and adds the connections (listen.h) */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    /* HTTPS only when asked: libmicrohttpd runs the handshake of every
       connection listen.c adds (MHD_add_connection), on its own threads */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    if (tls)
        flags |= MHD_USE_TLS;
    else
        tls_opts[0].option = MHD_OPTION_END;
    /*
     * Connection memory (--connection-memory, 8 KiB): libmicrohttpd 0.9.75
     * clears the whole pool (twice) for every request on a keep-alive
     * connection, so its size is paid on every small request
     * (bench/README.md, "Where a small request's CPU goes"). Bodies stream
     * to the pipeline in whatever chunks arrive, so uploads hardly notice
     * (docs/operations.md); the pool bounds the request line and headers
     * (431 beyond).
     */
    /*
     * libmicrohttpd's own connection limit must never be reached (0.9.75
     * wedged there): lossd's cap is below it. The library splits its limit
     * among its threads and picks a thread by descriptor number, so each
     * thread's share must hold the whole cap, plus connections shut down
     * and not yet closed, plus an accept batch.
     */
    unsigned conn_limit =
        (unsigned)((s->cfg.conns.max + 256) * (s->cfg.threads + 1));
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, server_http_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, server_http_logger, s, /* first, as asked */
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.threads,
        MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.connection_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->cfg.connection_memory,
        MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_NOTIFY_COMPLETED,
        server_http_completed, s, MHD_OPTION_NOTIFY_CONNECTION, conns_notify,
        s->conns, MHD_OPTION_UNESCAPE_CALLBACK, server_http_unescape, s,
        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    int lrc = 0;
    if (s->daemon) {
        struct listener_config lc = {
            .daemon = s->daemon,
            .log = s->log,
            .conns = s->conns,
            /* a TLS client would read plain text as a broken handshake */
            .refusal = tls ? NULL : s->refusal,
            .refusal_len = s->refusal_len,
        };
        lrc = listener_start(s->listener, &lc);
    }
    if (!s->daemon || lrc != 0) {
        server_log_event(s->log, SERVER_LOG_ERROR, "start",
                         "cannot start the HTTP daemon on %s port %u%s%s",
                         s->cfg.host, s->cfg.port, lrc ? ": " : "",
                         lrc   ? strerror(-lrc)
                         : tls ? " (are --tls-cert and --tls-key a "
                                 "certificate and its key?)"
                               : "");
        if (!s->daemon && tls)
            code = 2; /* configuration, as unreadable files are */
        listener_close(s->listener);
        s->listener = NULL;
        if (s->daemon)
            MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
        pool_stop(s->pool);
        s->pool = NULL;
        goto out;
    }
    unsigned port = listener_port(s->listener);
    printf("{\"event\":\"listening\",\"host\":\"%s\",\"port\":%u}\n", numeric,
           port);
    fflush(stdout);
    server_log_event(s->log, SERVER_LOG_INFO, "listening",
                     "%s port %u (%s), %zu HTTP threads, %zu workers, "
                     "lossd %s, OpenBLAS %s",
                     numeric, port, tls ? "HTTPS, TLS 1.2 and 1.3" : "HTTP",
                     s->cfg.threads, s->cfg.workers, LOSSD_VERSION,
                     loss_blas_core());
    if (s->auth)
        server_log_event(s->log, SERVER_LOG_INFO, "auth",
                         "%zu bearer tokens from '%s'; SIGHUP rereads it",
                         server_auth_count(s->auth), server_auth_path(s->auth));

    for (;;) {
        int sig = wait_signal(&set, 0.1);
        if (sig == SIGHUP)
            reload(s);
        else if (sig)
            break;
        server_log_flush(s->log);
    }
    code = drain(s, &set);
    MHD_stop_daemon(s->daemon);
    pool_stop(s->pool);
    server_log_event(s->log, SERVER_LOG_INFO, "stopped", "exit %d", code);
out:
    pem_free(cert, cert_len);
    pem_free(key, key_len);
    server_release(s);
    free(s);
    return code;
}

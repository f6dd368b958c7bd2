/*
 * config.c - flags, environment and defaults of `lossd serve`.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum opt_kind {
    OPT_HOST,
    OPT_PORT,
    OPT_COUNT,   /* size_t >= 1 */
    OPT_SIZE,    /* size_t >= 1, with an optional K/M/G (binary) suffix */
    OPT_DOUBLE,  /* finite >= 0 */
    OPT_SECONDS, /* unsigned seconds, 0 allowed */
    OPT_ORIGINS,
    OPT_FORMAT,
    OPT_LEVEL,
    OPT_PATH, /* a file name, "" for none */
};

struct opt {
    const char *name; /* flag without "--" */
    const char *env;
    enum opt_kind kind;
    size_t offset;      /* into struct server_config */
    const char *dflt;   /* the default in words when it depends on the
                           machine, else NULL (printed from the value) */
    const char *reason; /* what it is and why the default; --help */
};

#define OFF(field) offsetof(struct server_config, field)

/*
 * The text of `lossd serve --help`, from which docs/ is written: keep each
 * reason true to what the code does.
 */
static const struct opt opts[] = {
    {"host", "LOSSD_HOST", OPT_HOST, OFF(host), NULL,
     "Address to listen on: every IPv4 interface by default, as a "
     "container expects. A name resolves to its first address; an IPv6 "
     "address (::1, ::) listens on IPv6 only."},
    {"port", "LOSSD_PORT", OPT_PORT, OFF(port), NULL,
     "TCP port; 0 picks a free one. Once listening, lossd prints one JSON "
     "line on stdout with the bound host and port "
     "({\"event\":\"listening\",\"host\":...,\"port\":...})."},
    {"threads", "LOSSD_THREADS", OPT_COUNT, OFF(threads),
     "the CPUs available, at least 2",
     "HTTP threads (libmicrohttpd's epoll pool), which read requests, run "
     "cheap jobs and write answers. At least 2: a single epoll thread of "
     "libmicrohttpd 0.9.75 stalls at 128+ connections. \"CPUs available\" "
     "is the process's CPU affinity lowered by its cgroup CPU quota, not "
     "the host's count."},
    {"workers", "LOSSD_WORKERS", OPT_COUNT, OFF(workers), "the CPUs available",
     "Worker threads (libuv's pool, at a lower scheduling priority than the "
     "HTTP threads) for jobs above --inline-max-cost. Sets "
     "UV_THREADPOOL_SIZE, replacing any value in the environment; libuv "
     "caps it at 1024."},
    {"max-body-bytes", "LOSSD_MAX_BODY_BYTES", OPT_SIZE,
     OFF(limits.max_body_bytes), NULL,
     "Request body limit in bytes, as received and again after gzip or "
     "deflate decompression (413 past it); Triton's default."},
    {"max-elements", "LOSSD_MAX_ELEMENTS", OPT_SIZE, OFF(limits.max_elements),
     NULL,
     "Tensor elements in one request, all tensors together (413 past it); "
     "bounds the memory of decoding."},
    {"max-work", "LOSSD_MAX_WORK", OPT_SIZE, OFF(limits.max_work), NULL,
     "Elements of any derived array: a broadcast result, an InfoNCE "
     "similarity matrix (N x N; 2N x 2N for nt_xent), the response's "
     "tensors (413 past it); bounds the memory of computing."},
    {"max-batch-items", "LOSSD_MAX_BATCH_ITEMS", OPT_SIZE,
     OFF(limits.max_batch_items), NULL,
     "Items in one POST /v1/batch (413 past it)."},
    {"max-inflight-bytes", "LOSSD_MAX_INFLIGHT_BYTES", OPT_SIZE,
     OFF(max_inflight_bytes), NULL,
     "Memory held by all requests together: decoded bodies and the "
     "estimated working memory of their jobs. A request that would pass it "
     "is answered 503 with Retry-After instead of risking an out-of-memory "
     "kill. Gauge lossd_inflight_bytes."},
    {"queue-limit", "LOSSD_QUEUE_LIMIT", OPT_COUNT, OFF(queue_limit), NULL,
     "Jobs queued or running on the worker pool; a job past it is answered "
     "503 with Retry-After, so a burst is refused quickly instead of "
     "waiting unboundedly. Gauge lossd_pool_jobs."},
    {"inline-max-cost", "LOSSD_INLINE_MAX_COST", OPT_DOUBLE,
     OFF(inline_max_cost), NULL,
     "Jobs whose estimated cost is at most this many work units (about one "
     "multiply-add or exp/log each) run on the HTTP thread: handing them "
     "to a worker costs more than they do. The rest run on the pool."},
    {"drain-seconds", "LOSSD_DRAIN_SECONDS", OPT_DOUBLE, OFF(drain_seconds),
     NULL,
     "Seconds to keep serving after SIGTERM or SIGINT, with /readyz "
     "answering 503, while load balancers learn the pod is leaving (a "
     "scratch image has no sleep for a preStop hook)."},
    {"exit-timeout", "LOSSD_EXIT_TIMEOUT", OPT_DOUBLE, OFF(exit_timeout), NULL,
     "After the drain, seconds for requests in flight to finish (no new "
     "connections; keep-alive ones get Connection: close). Past it, queued "
     "jobs are answered 503, a job still running a second later is "
     "abandoned and lossd exits 0. Drain plus exit timeout stay inside "
     "Kubernetes' default 30 s grace period. A second signal exits at once "
     "(code 1)."},
    {"connection-timeout", "LOSSD_CONNECTION_TIMEOUT", OPT_SECONDS,
     OFF(connection_timeout), NULL,
     "Seconds a connection may be idle, or stall in the middle of a "
     "request, before it is closed; 0 never closes (libmicrohttpd's "
     "default, which lets idle clients hold connections forever); at most "
     "86400. A connection waiting for its job on the pool has no timeout."},
    {"max-connections", "LOSSD_MAX_CONNECTIONS", OPT_COUNT, OFF(conns.max),
     NULL,
     "Open connections. At the cap, the connection that has waited "
     "longest for a request (idle keep-alive, or a header block still "
     "arriving) is closed to make room, so new clients such as health "
     "probes are served; when every connection is in the middle of a "
     "request, a new one is answered 503 (plain HTTP) and closed. Lowered "
     "at start, with a warning, to what the file descriptor limit allows. "
     "Gauge lossd_connections."},
    {"header-timeout", "LOSSD_HEADER_TIMEOUT", OPT_DOUBLE,
     OFF(conns.header_timeout), NULL,
     "Seconds from a request's first byte (a new connection's accept, "
     "with its TLS handshake) to the end of its header block; past it the "
     "connection is closed, so a client sending a byte at a time cannot "
     "hold it. 0: no deadline."},
    {"body-timeout", "LOSSD_BODY_TIMEOUT", OPT_DOUBLE, OFF(conns.body_timeout),
     NULL,
     "Seconds a request body may take before --body-min-rate counts: the "
     "body is allowed this plus one second per --body-min-rate bytes "
     "received; past it the connection is closed."},
    {"body-min-rate", "LOSSD_BODY_MIN_RATE", OPT_DOUBLE,
     OFF(conns.body_min_rate), NULL,
     "Bytes per second a request body must keep up on average, after "
     "--body-timeout (a 64 MiB body may take 18 hours at the default). 0: "
     "no deadline for bodies."},
    {"discard-timeout", "LOSSD_DISCARD_TIMEOUT", OPT_DOUBLE,
     OFF(conns.discard_timeout), NULL,
     "Seconds a refused body (413, or any failure before the body's end) "
     "is read and thrown away, so that a client which sends its whole "
     "body before reading reads the answer; past it the connection is "
     "closed without one. Like nginx's lingering_time. 0: no limit."},
    {"discard-idle-timeout", "LOSSD_DISCARD_IDLE_TIMEOUT", OPT_DOUBLE,
     OFF(conns.discard_idle_timeout), NULL,
     "Seconds a refused body may pause; past it the connection is closed "
     "without an answer. Like nginx's lingering_timeout. 0: no limit."},
    {"connection-memory", "LOSSD_CONNECTION_MEMORY", OPT_SIZE,
     OFF(connection_memory), NULL,
     "Bytes of memory per connection (libmicrohttpd's pool), for the "
     "request line, the headers and reading the body, which streams "
     "through it. Each header field and query parameter also takes about "
     "60 bytes of it: 8192 holds about 7.7 KB in a few fields, or about "
     "110 short fields; beyond, 431 or 414. libmicrohttpd 0.9.75 clears "
     "the whole pool for every "
     "request on a keep-alive connection, so more memory costs throughput "
     "(8192 is Tomcat's default header limit). From 4096 to 1048576."},
    {"cors-origins", "LOSSD_CORS_ORIGINS", OPT_ORIGINS, OFF(cors_origins), NULL,
     "Comma-separated origins (scheme://host[:port], matched exactly) "
     "allowed to call lossd from a browser, or * for any; none by default, "
     "so no CORS header is sent."},
    {"log-format", "LOSSD_LOG_FORMAT", OPT_FORMAT, OFF(log_format), NULL,
     "json: one object per line on stderr, for log collectors; text: one "
     "line \"TIME LEVEL EVENT ...\" for people (access lines continue with "
     "key=value fields, events with a message)."},
    {"log-level", "LOSSD_LOG_LEVEL", OPT_LEVEL, OFF(log_level), NULL,
     "error: failures to start; warn: adds abandoned jobs and forced exits; "
     "info: adds start, drain and stop events and the access log (one line "
     "per request); debug: as info (no debug lines yet)."},
    {"auth-token-file", "LOSSD_AUTH_TOKEN_FILE", OPT_PATH, OFF(auth_token_file),
     NULL,
     "A file of bearer tokens, one per line (blank lines and # comments "
     "ignored); when set, every request but /healthz, /readyz and CORS "
     "preflights needs Authorization: Bearer TOKEN (401 without). Reread on "
     "SIGHUP; a file that cannot be read or holds no token stops the start, "
     "and a failed reload keeps the tokens in force. Empty: no "
     "authentication."},
    {"tls-cert", "LOSSD_TLS_CERT", OPT_PATH, OFF(tls_cert), NULL,
     "A PEM certificate (chain) file: with --tls-key, lossd serves HTTPS "
     "only, TLS 1.2 and 1.3. Read once at start."},
    {"tls-key", "LOSSD_TLS_KEY", OPT_PATH, OFF(tls_key), NULL,
     "The PEM private key of --tls-cert."},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const format_names[] = {"json", "text"};
static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Reads a small text file into buf; false when absent or empty. */
static bool read_small_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

/* CPUs allowed by a quota of quota/period, rounded up; 0 for no quota. */
static size_t quota_cpus(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    return (size_t)((quota + period - 1) / period);
}

/* cgroup v2: cpu.max of our own cgroup, then of the root of the mount. */
static size_t cgroup2_cpus(void)
{
    char line[4096], path[4200], buf[128];
    size_t cpus = 0;
    if (read_small_file("/proc/self/cgroup", line, sizeof line)) {
        char *p = strstr(line, "0::");
        if (p) {
            p += 3;
            p[strcspn(p, "\n")] = '\0';
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", p);
            if (read_small_file(path, buf, sizeof buf)) {
                long long q = 0, per = 0;
                if (sscanf(buf, "%lld %lld", &q, &per) == 2)
                    cpus = quota_cpus(q, per);
                return cpus; /* "max 100000" leaves q 0 */
            }
        }
    }
    if (read_small_file("/sys/fs/cgroup/cpu.max", buf, sizeof buf)) {
        long long q = 0, per = 0;
        if (sscanf(buf, "%lld %lld", &q, &per) == 2)
            cpus = quota_cpus(q, per);
    }
    return cpus;
}

static size_t cgroup1_cpus(void)
{
    char buf[64];
    long long q = 0, per = 0;
    if (!read_small_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", buf,
                         sizeof buf))
        return 0;
    q = atoll(buf);
    if (!read_small_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us", buf,
                         sizeof buf))
        return 0;
    per = atoll(buf);
    return quota_cpus(q, per);
}

size_t server_cpus_available(void)
{
    size_t n = 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        n = (size_t)CPU_COUNT(&set);
    size_t q = cgroup2_cpus();
    if (q == 0)
        q = cgroup1_cpus();
    if (q > 0 && q < n)
        n = q;
    return n;
}

void server_config_default(struct server_config *c)
{
    memset(c, 0, sizeof *c);
    size_t cpus = server_cpus_available();
    snprintf(c->host, sizeof c->host, "0.0.0.0");
    c->port = 8080;
    c->threads = cpus < 2 ? 2 : cpus;
    c->workers = cpus;
    handler_limits_default(&c->limits);
    c->max_inflight_bytes = (size_t)1 << 30;
    c->queue_limit = 256;
    c->inline_max_cost = 1e5;
    c->drain_seconds = 5;
    c->exit_timeout = 20;
    c->connection_timeout = 60;
    c->connection_memory = 8192;
    c->conns.max = 4096;
    c->conns.header_timeout = 10;
    c->conns.body_timeout = 10;
    c->conns.body_min_rate = 1024;
    c->conns.discard_timeout = 30;
    c->conns.discard_idle_timeout = 5;
    c->cors_origins[0] = '\0';
    c->log_format = SERVER_LOG_JSON;
    c->log_level = SERVER_LOG_INFO;
}

static int fail(char *reason, size_t cap, const char *src, const char *what,
                const char *val)
{
    snprintf(reason, cap, "%s: %s (got '%s')", src, what, val);
    return -EINVAL;
}

/* Parses an unsigned decimal, with an optional binary suffix if sizes. */
static bool parse_size(const char *s, bool suffix, size_t *ret)
{
    if (!isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned long long mul = 1;
    if (suffix && *end) {
        switch (*end) {
        case 'K':
        case 'k':
            mul = 1ull << 10;
            break;
        case 'M':
            mul = 1ull << 20;
            break;
        case 'G':
            mul = 1ull << 30;
            break;
        default:
            return false;
        }
        end++;
        if (!strcmp(end, "iB") || !strcmp(end, "B"))
            end += strlen(end);
    }
    if (*end)
        return false;
    unsigned long long r;
    if (__builtin_mul_overflow(v, mul, &r) || r > SIZE_MAX)
        return false;
    *ret = (size_t)r;
    return true;
}

static int pick(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], s))
            return (int)i;
    return -1;
}

/* Applies value s of option o to c; src names where it came from. */
static int apply(struct server_config *c, const struct opt *o, const char *s,
                 const char *src, char *reason, size_t cap)
{
    char *field = (char *)c + o->offset;
    size_t v;
    switch (o->kind) {
    case OPT_HOST:
        if (!*s || strlen(s) >= SERVER_HOST_MAX)
            return fail(reason, cap, src, "expected a host address", s);
        snprintf(field, SERVER_HOST_MAX, "%s", s);
        return 0;
    case OPT_PORT:
        if (!parse_size(s, false, &v) || v > 65535)
            return fail(reason, cap, src, "expected a port in [0, 65535]", s);
        *(unsigned *)(void *)field = (unsigned)v;
        return 0;
    case OPT_COUNT:
        if (!parse_size(s, false, &v) || v == 0 || v > 4096)
            return fail(reason, cap, src, "expected a count in [1, 4096]", s);
        *(size_t *)(void *)field = v;
        return 0;
    case OPT_SIZE:
        if (!parse_size(s, true, &v) || v == 0)
            return fail(reason, cap, src,
                        "expected a positive size (suffix K, M or G allowed)",
                        s);
        *(size_t *)(void *)field = v;
        return 0;
    case OPT_SECONDS:
        if (!parse_size(s, false, &v) || v > 86400)
            return fail(reason, cap, src, "expected seconds in [0, 86400]", s);
        *(unsigned *)(void *)field = (unsigned)v;
        return 0;
    case OPT_DOUBLE: {
        errno = 0;
        char *end;
        double d = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(d) || d < 0 || d > 1e15)
            return fail(reason, cap, src, "expected a finite number >= 0", s);
        *(double *)(void *)field = d;
        return 0;
    }
    case OPT_ORIGINS:
        if (strlen(s) >= SERVER_ORIGINS_MAX)
            return fail(reason, cap, src, "origin list too long", s);
        snprintf(field, SERVER_ORIGINS_MAX, "%s", s);
        return 0;
    case OPT_PATH:
        if (strlen(s) >= SERVER_PATH_MAX)
            return fail(reason, cap, src, "file name too long", s);
        snprintf(field, SERVER_PATH_MAX, "%s", s);
        return 0;
    case OPT_FORMAT: {
        int i = pick(format_names, 2, s);
        if (i < 0)
            return fail(reason, cap, src, "expected json or text", s);
        *(enum server_log_format *)(void *)field = (enum server_log_format)i;
        return 0;
    }
    case OPT_LEVEL: {
        int i = pick(level_names, 4, s);
        if (i < 0)
            return fail(reason, cap, src, "expected debug, info, warn or error",
                        s);
        *(enum server_log_level *)(void *)field = (enum server_log_level)i;
        return 0;
    }
    }
    return fail(reason, cap, src, "unhandled option", s);
}

/* The default of o in d, as text. */
static void describe_default(const struct server_config *d, const struct opt *o,
                             char *buf, size_t cap)
{
    const char *field = (const char *)d + o->offset;
    if (o->dflt) {
        snprintf(buf, cap, "%s (%zu here)", o->dflt,
                 *(const size_t *)(const void *)field);
        return;
    }
    switch (o->kind) {
    case OPT_HOST:
    case OPT_ORIGINS:
    case OPT_PATH:
        snprintf(buf, cap, "'%s'", field);
        break;
    case OPT_PORT:
    case OPT_SECONDS:
        snprintf(buf, cap, "%u", *(const unsigned *)(const void *)field);
        break;
    case OPT_COUNT:
        snprintf(buf, cap, "%zu", *(const size_t *)(const void *)field);
        break;
    case OPT_SIZE: {
        size_t v = *(const size_t *)(const void *)field;
        static const char suffix[] = "GMK";
        for (int i = 0; i < 3; i++) {
            size_t unit = (size_t)1 << (10 * (3 - i));
            if (v >= unit && v % unit == 0) {
                snprintf(buf, cap, "%zu%c (%zu)", v / unit, suffix[i], v);
                return;
            }
        }
        snprintf(buf, cap, "%zu", v);
        break;
    }
    case OPT_DOUBLE:
        snprintf(buf, cap, "%g", *(const double *)(const void *)field);
        break;
    case OPT_FORMAT:
        snprintf(
            buf, cap, "%s",
            format_names[*(const enum server_log_format *)(const void *)field]);
        break;
    case OPT_LEVEL:
        snprintf(
            buf, cap, "%s",
            level_names[*(const enum server_log_level *)(const void *)field]);
        break;
    }
}

/* Writes text wrapped at 78 columns, each line indented by indent. */
static void wrap(FILE *out, const char *text, int indent)
{
    const size_t width = 78 - (size_t)indent;
    while (*text) {
        size_t n = strlen(text);
        if (n > width) {
            n = width;
            while (n > 0 && text[n] != ' ')
                n--;
            if (n == 0)
                n = strcspn(text, " ");
        }
        fprintf(out, "%*s%.*s\n", indent, "", (int)n, text);
        text += n;
        while (*text == ' ')
            text++;
    }
}

static void help(FILE *out, const struct server_config *d)
{
    fprintf(out, "usage: lossd serve [OPTIONS]\n\n");
    wrap(out,
         "Serves PyTorch's loss functions over HTTP (routes in "
         "GET /openapi.json). Every option is also read from the "
         "environment variable shown; a flag wins over the variable. "
         "Flags take --name VALUE or --name=VALUE. Sizes are integers with "
         "an optional K, M or G suffix (binary: 1K = 1024), optionally "
         "followed by B or iB; counts are in [1, 4096]. Bad configuration "
         "exits 2 with a one-line reason on stderr.",
         0);
    fprintf(out, "\n");
    for (size_t i = 0; i < NOPTS; i++) {
        char def[SERVER_ORIGINS_MAX + 64];
        describe_default(d, &opts[i], def, sizeof def);
        fprintf(out, "  --%s (%s), default %s\n", opts[i].name, opts[i].env,
                def);
        wrap(out, opts[i].reason, 6);
    }
    fprintf(out, "  --help, -h\n      This text.\n\n");
    wrap(out,
         "Responses of 1 KiB or more are compressed with gzip (or deflate) "
         "when the request's Accept-Encoding allows it, with Vary: "
         "Accept-Encoding; above 64 KiB only when 64 KiB from their middle "
         "deflate to 2/3 or less (base64 tensors go out uncompressed, as "
         "compressing them costs more time than it saves). Request bodies may "
         "be sent with Content-Encoding "
         "gzip or deflate. SIGTERM and SIGINT drain and exit 0.",
         0);
}

static const struct opt *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && !memcmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

int server_config_load(struct server_config *c, int argc, char **argv,
                       FILE *out, bool *ret_help, char *ret_reason, size_t cap)
{
    *ret_help = false;
    server_config_default(c);
    /* --help anywhere wins, even over a bad variable in the environment */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help(out, c);
            *ret_help = true;
            return 0;
        }
    }
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = getenv(opts[i].env);
        if (v && apply(c, &opts[i], v, opts[i].env, ret_reason, cap) < 0)
            return -EINVAL;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(ret_reason, cap, "unexpected argument '%s'", a);
            return -EINVAL;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = find_opt(name, len);
        if (!o) {
            snprintf(ret_reason, cap, "unknown option '%s' (see --help)", a);
            return -EINVAL;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(ret_reason, cap, "--%s needs a value", o->name);
                return -EINVAL;
            }
            val = argv[++i];
        }
        char src[64];
        snprintf(src, sizeof src, "--%s", o->name);
        if (apply(c, o, val, src, ret_reason, cap) < 0)
            return -EINVAL;
    }
    if (c->connection_memory < 4096 || c->connection_memory > (1u << 20)) {
        snprintf(ret_reason, cap,
                 "--connection-memory: from 4096 to 1048576 bytes");
        return -EINVAL;
    }
    if (c->threads < 2) {
        snprintf(ret_reason, cap,
                 "--threads: at least 2 (one epoll thread stalls)");
        return -EINVAL;
    }
    if (!c->tls_cert[0] != !c->tls_key[0]) {
        snprintf(ret_reason, cap,
                 "--tls-cert and --tls-key: give both or neither");
        return -EINVAL;
    }
    return 0;
}

bool server_config_origin_allowed(const struct server_config *c,
                                  const char *origin, size_t len)
{
    const char *p = c->cors_origins;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 1 && *p == '*')
            return true;
        if (n > 0 && n == len && !memcmp(p, origin, len))
            return true;
        p += n;
    }
    return false;
}

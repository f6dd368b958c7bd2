/*
 * metrics.c - lock-free counters and histograms, written as Prometheus text.
 */
#include "metrics.h"

#include <dirent.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Prometheus' Go client default buckets (seconds). */
static const double time_bounds[] = {.005, .01, .025, .05, .1, .25,
                                     .5,   1,   2.5,  5,   10};
#define NTIME (sizeof(time_bounds) / sizeof(time_bounds[0]))
/* Request body sizes, bytes: decades from 100 B to 64 MiB. */
static const double size_bounds[] = {100, 1000, 10000,   100000,
                                     1e6, 1e7,  67108864};
#define NSIZE (sizeof(size_bounds) / sizeof(size_bounds[0]))
#define NBMAX 16

static const int codes[] = {200, 204, 400, 401, 404, 405, 408,
                            413, 415, 422, 500, 501, 503};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

/*
 * A sum of integer units (nanoseconds, bytes) that does not wrap. A 64-bit
 * count of nanoseconds would not do: summed durations grow as fast as the
 * number of requests in flight times wall time (Little's law), so 10,000
 * slow clients at once add 10,000 s a second and 2^64 ns (584 years of one
 * request) pass in 21 days; at 1e6 connections 100 years sum to 3e24 ns,
 * about 2^81. Bytes would pass 2^64 in 47 years at 100 Gbit/s. So the sum
 * is hi * 2^62 + lo, 126 bits:
 *
 * - every observation (at most SUM_OBS_MAX) is one relaxed fetch_add on lo,
 *   without a lock;
 * - one that leaves lo at 2^62 or more takes the sum's lock and, if lo is
 *   still there, moves 2^62 from lo to hi: once per 2^62 units (146 years
 *   of summed durations);
 * - a reader takes the lock to read hi and lo, so it never sees a move
 *   half done and every scrape reads at least what the one before it read:
 *   the sum is monotonic.
 *
 * A writer that finds lo past 2^62 waits for the lock, so lo passes 2^62
 * by at most one observation per thread: it could wrap only if a dozen
 * threads each added SUM_OBS_MAX (36 years of nanoseconds) at once.
 */
__extension__ typedef unsigned __int128 u128; /* GCC and Clang */

struct sum {
    _Atomic uint64_t lo;
    _Atomic uint64_t hi; /* units of SUM_MOVE */
    _Atomic bool locked; /* guards moves and reads (zero: free) */
};

#define SUM_MOVE    ((uint64_t)1 << 62)
#define SUM_OBS_MAX ((uint64_t)1 << 60)

static void sum_lock(struct sum *s)
{
    while (atomic_exchange_explicit(&s->locked, true, memory_order_acquire))
        sched_yield(); /* rare: a move or a scrape holds it */
}

static void sum_unlock(struct sum *s)
{
    atomic_store_explicit(&s->locked, false, memory_order_release);
}

static void sum_add(struct sum *s, uint64_t v)
{
    if (v > SUM_OBS_MAX)
        v = SUM_OBS_MAX;
    if (atomic_fetch_add_explicit(&s->lo, v, memory_order_relaxed) + v <
        SUM_MOVE)
        return;
    sum_lock(s);
    if (atomic_load_explicit(&s->lo, memory_order_relaxed) >= SUM_MOVE) {
        atomic_fetch_add_explicit(&s->hi, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&s->lo, SUM_MOVE, memory_order_relaxed);
    }
    sum_unlock(s);
}

static u128 sum_load(struct sum *s)
{
    uint64_t hi, lo;

    sum_lock(s);
    hi = atomic_load_explicit(&s->hi, memory_order_relaxed);
    lo = atomic_load_explicit(&s->lo, memory_order_relaxed);
    sum_unlock(s);
    return (u128)hi * SUM_MOVE + lo;
}

/* The decimal digits of v into out (at least 40 bytes); their count. */
static size_t u128_digits(u128 v, char *out)
{
    char tmp[40];
    size_t n = 0;

    do
        tmp[n++] = (char)('0' + (int)(v % 10));
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* A histogram's unit: what its sum counts and how it is written. */
enum hist_unit {
    HIST_SECONDS, /* observed in seconds, summed in nanoseconds */
    HIST_BYTES,   /* observed and summed in bytes */
};

/* A histogram: per-bucket (not cumulative) counts, the last one for values
   above every bound, and the exact sum of its unit. */
struct hist {
    _Atomic unsigned long long bucket[NBMAX + 1];
    struct sum sum;
};

/* Requests of one route label, by status code (the last: any other). */
struct route_stats {
    _Atomic unsigned long long requests[NCODES + 1];
    struct hist duration;
};

struct metrics {
    size_t nroutes, nlosses;
    const char *const *route_names;
    const char *const *names;
    struct route_stats *routes; /* nroutes + 1 */
    struct hist size;
    struct hist queue_wait;
    _Atomic long long inflight;
    struct hist *compute; /* nlosses + 1 */
    double start_time;
    char time_les[NTIME][32]; /* the bounds as written (le_format) */
    char size_les[NSIZE][32];
};

/*
 * A bucket bound as Prometheus' Go client writes le (strconv.FormatFloat(v,
 * 'g', -1, 64)): the shortest digits that read back to v, in exponent form
 * when the exponent is below -4 or 6 or more ("0.005", "2.5", "100000",
 * "1e+06", "6.7108864e+07"), so series keep the names other exporters give
 * them. Bounds are finite and positive.
 */
static void le_format(double v, char out[32])
{
    char e[32];
    int digits, exp;

    for (digits = 1; digits < 17; digits++) {
        snprintf(e, sizeof e, "%.*e", digits - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    snprintf(e, sizeof e, "%.*e", digits - 1, v);
    exp = atoi(strchr(e, 'e') + 1);
    if (exp < -4 || exp >= 6)
        memcpy(out, e, strlen(e) + 1);
    else
        snprintf(out, 32, "%.*f", digits - 1 - exp > 0 ? digits - 1 - exp : 0,
                 v);
}

struct metrics *metrics_new(const char *const *routes, size_t nroutes,
                            const char *const *losses, size_t nlosses)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->compute = calloc(nlosses + 1, sizeof *m->compute);
    m->routes = calloc(nroutes + 1, sizeof *m->routes);
    if (!m->compute || !m->routes) {
        metrics_free(m);
        return NULL;
    }
    m->nroutes = nroutes;
    m->route_names = routes;
    m->nlosses = nlosses;
    m->names = losses;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_time = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    for (size_t i = 0; i < NTIME; i++)
        le_format(time_bounds[i], m->time_les[i]);
    for (size_t i = 0; i < NSIZE; i++)
        le_format(size_bounds[i], m->size_les[i]);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    free(m->compute);
    free(m->routes);
    free(m);
}

/* v's bucket among bounds[0..n) (le: v <= bound), n when above all. */
static size_t bucket_of(const double *bounds, size_t n, double v)
{
    size_t i = 0;

    while (i < n && v > bounds[i])
        i++;
    return i;
}

/* A duration; below 0 (a clock step) or NaN counts as 0 in the sum. */
static void hist_observe_seconds(struct hist *h, const double *bounds, size_t n,
                                 double v)
{
    double ns = v * 1e9 + 0.5;
    uint64_t units = 0;

    atomic_fetch_add_explicit(&h->bucket[bucket_of(bounds, n, v)], 1,
                              memory_order_relaxed);
    if (ns >= (double)SUM_OBS_MAX)
        units = SUM_OBS_MAX;
    else if (ns >= 1)
        units = (uint64_t)ns;
    sum_add(&h->sum, units);
}

static void hist_observe_bytes(struct hist *h, const double *bounds, size_t n,
                               size_t v)
{
    /* a size_t past 2^53 rounds, far above every bound */
    atomic_fetch_add_explicit(&h->bucket[bucket_of(bounds, n, (double)v)], 1,
                              memory_order_relaxed);
    sum_add(&h->sum, (uint64_t)v);
}

void metrics_request(struct metrics *m, size_t route, int code, double seconds,
                     size_t bytes_in)
{
    size_t c = NCODES;
    for (size_t i = 0; i < NCODES; i++)
        if (codes[i] == code)
            c = i;
    if (route > m->nroutes)
        route = m->nroutes;
    struct route_stats *rs = &m->routes[route];
    atomic_fetch_add_explicit(&rs->requests[c], 1, memory_order_relaxed);
    hist_observe_seconds(&rs->duration, time_bounds, NTIME, seconds);
    hist_observe_bytes(&m->size, size_bounds, NSIZE, bytes_in);
}

void metrics_inflight_add(struct metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->inflight, delta, memory_order_relaxed);
}

void metrics_queue_wait(struct metrics *m, double seconds)
{
    hist_observe_seconds(&m->queue_wait, time_bounds, NTIME, seconds);
}

void metrics_compute(struct metrics *m, size_t loss, double seconds)
{
    if (loss > m->nlosses)
        loss = m->nlosses;
    hist_observe_seconds(&m->compute[loss], time_bounds, NTIME, seconds);
}

/* The sum in its unit: seconds with nine decimals, or bytes. */
static void sum_write(struct proto_buf *b, struct sum *s, enum hist_unit unit)
{
    u128 v = sum_load(s);
    char out[48];
    size_t n;

    if (unit == HIST_BYTES) {
        n = u128_digits(v, out);
    } else {
        uint64_t frac = (uint64_t)(v % 1000000000u);

        n = u128_digits(v / 1000000000u, out);
        out[n++] = '.';
        for (int i = 8; i >= 0; i--, frac /= 10)
            out[n + (size_t)i] = (char)('0' + frac % 10);
        n += 9;
    }
    proto_buf_append(b, out, n);
}

/* Writes the series of one histogram; labels is "" or `k="v",`; les[0..n)
   the bounds as written. */
static void hist_write(struct proto_buf *b, const char *name,
                       const char *labels, struct hist *h, char (*les)[32],
                       size_t n, enum hist_unit unit)
{
    unsigned long long cum = 0;
    size_t ll = strlen(labels);

    for (size_t i = 0; i < n; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        proto_buf_printf(b, "%s_bucket{%sle=\"%s\"} %llu\n", name, labels,
                         les[i], cum);
    }
    cum += atomic_load_explicit(&h->bucket[n], memory_order_relaxed);
    proto_buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, cum);
    /* labels without the trailing comma, in braces, or nothing */
    if (ll > 0)
        proto_buf_printf(b, "%s_sum{%.*s} ", name, (int)(ll - 1), labels);
    else
        proto_buf_printf(b, "%s_sum ", name);
    sum_write(b, &h->sum, unit);
    if (ll > 0)
        proto_buf_printf(b, "\n%s_count{%.*s} %llu\n", name, (int)(ll - 1),
                         labels, cum);
    else
        proto_buf_printf(b, "\n%s_count %llu\n", name, cum);
}

static void head(struct proto_buf *b, const char *name, const char *type,
                 const char *help)
{
    proto_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static size_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory's own fd */
}

static void process_write(const struct metrics *m, struct proto_buf *b)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu =
        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    head(b, "process_cpu_seconds_total", "counter",
         "Total user and system CPU time spent in seconds.");
    proto_buf_printf(b, "process_cpu_seconds_total %.6f\n", cpu);

    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    head(b, "process_resident_memory_bytes", "gauge",
         "Resident memory size in bytes.");
    proto_buf_printf(b, "process_resident_memory_bytes %lld\n",
                     (long long)rss * (long long)sysconf(_SC_PAGESIZE));
    head(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    proto_buf_printf(b, "process_open_fds %zu\n", count_fds());
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    head(b, "process_max_fds", "gauge",
         "Maximum number of open file descriptors.");
    proto_buf_printf(b, "process_max_fds %llu\n",
                     (unsigned long long)rl.rlim_cur);
    head(b, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
    proto_buf_printf(b, "process_start_time_seconds %.3f\n", m->start_time);
}

/*
 * A label value from outside the fixed tables (the version, OpenBLAS' core
 * name), escaped as the text format wants ('\\', '"', newline) and cut at
 * 128 bytes: whatever it holds, the line stays one sample.
 */
static void label_value_write(struct proto_buf *b, const char *s)
{
    for (size_t i = 0; s && s[i]; i++) {
        if (s[i] == '\\' || s[i] == '"')
            proto_buf_append(b, "\\", 1);
        if (s[i] == '\n')
            proto_buf_append(b, "\\n", 2);
        else
            proto_buf_append(b, s + i, 1);
    }
}

static const char *route_name(const struct metrics *m, size_t r)
{
    return r < m->nroutes ? m->route_names[r] : "other";
}

void metrics_write(struct metrics *m, struct proto_buf *b,
                   const struct metrics_state *st, const char *version,
                   const char *openblas_core)
{
    char labels[160];
    head(b, "lossd_requests_total", "counter",
         "HTTP requests answered, by route and status code.");
    for (size_t r = 0; r <= m->nroutes; r++)
        for (size_t c = 0; c <= NCODES; c++) {
            unsigned long long v = atomic_load_explicit(
                &m->routes[r].requests[c], memory_order_relaxed);
            if (v == 0)
                continue;
            if (c < NCODES)
                proto_buf_printf(b,
                                 "lossd_requests_total{route=\"%s\","
                                 "code=\"%d\"} %llu\n",
                                 route_name(m, r), codes[c], v);
            else
                proto_buf_printf(b,
                                 "lossd_requests_total{route=\"%s\","
                                 "code=\"other\"} %llu\n",
                                 route_name(m, r), v);
        }
    head(b, "lossd_request_duration_seconds", "histogram",
         "Time from the request's headers to its completion.");
    for (size_t r = 0; r <= m->nroutes; r++) {
        snprintf(labels, sizeof labels, "route=\"%s\",", route_name(m, r));
        hist_write(b, "lossd_request_duration_seconds", labels,
                   &m->routes[r].duration, m->time_les, NTIME, HIST_SECONDS);
    }
    head(b, "lossd_request_size_bytes", "histogram",
         "Request body bytes as received (before decompression).");
    hist_write(b, "lossd_request_size_bytes", "", &m->size, m->size_les, NSIZE,
               HIST_BYTES);
    head(b, "lossd_queue_wait_seconds", "histogram",
         "Time jobs waited for a pool worker.");
    hist_write(b, "lossd_queue_wait_seconds", "", &m->queue_wait, m->time_les,
               NTIME, HIST_SECONDS);
    head(b, "lossd_compute_duration_seconds", "histogram",
         "Time computing a loss and writing its JSON response, by loss.");
    for (size_t l = 0; l <= m->nlosses; l++) {
        snprintf(labels, sizeof labels, "loss=\"%s\",",
                 l < m->nlosses ? m->names[l] : "batch");
        hist_write(b, "lossd_compute_duration_seconds", labels, &m->compute[l],
                   m->time_les, NTIME, HIST_SECONDS);
    }
    head(b, "lossd_requests_in_flight", "gauge",
         "Requests received and not yet completed.");
    proto_buf_printf(b, "lossd_requests_in_flight %lld\n",
                     atomic_load_explicit(&m->inflight, memory_order_relaxed));
    head(b, "lossd_pool_jobs", "gauge",
         "Jobs reserved, queued or running on the worker pool.");
    proto_buf_printf(b, "lossd_pool_jobs %zu\n", st->pool_jobs);
    head(b, "lossd_pool_jobs_limit", "gauge",
         "Pool jobs allowed (--queue-limit); past it, 503.");
    proto_buf_printf(b, "lossd_pool_jobs_limit %zu\n", st->queue_limit);
    head(b, "lossd_inflight_bytes", "gauge",
         "Memory held by the requests in flight (decoded bodies, jobs).");
    proto_buf_printf(b, "lossd_inflight_bytes %zu\n", st->inflight_bytes);
    head(b, "lossd_inflight_limit_bytes", "gauge",
         "Memory requests may hold (--max-inflight-bytes); past it, 503.");
    proto_buf_printf(b, "lossd_inflight_limit_bytes %zu\n",
                     st->max_inflight_bytes);
    head(b, "lossd_connections", "gauge", "Open connections.");
    proto_buf_printf(b, "lossd_connections %zu\n", st->connections);
    head(b, "lossd_connections_limit", "gauge",
         "Connections allowed (--max-connections); past it the one waiting "
         "longest for a request is closed, or the new one refused.");
    proto_buf_printf(b, "lossd_connections_limit %zu\n", st->max_connections);
    head(b, "lossd_connections_closed_total", "counter",
         "Connections lossd closed itself, by reason: header_timeout, "
         "body_too_slow, discard_timeout, shed (at the limit), refused (at "
         "the limit, nothing to shed), drained (idle at shutdown).");
    for (size_t i = 0; i < CONNS_NREASONS; i++)
        proto_buf_printf(b,
                         "lossd_connections_closed_total{reason=\"%s\"} "
                         "%llu\n",
                         conns_reason_name((enum conns_reason)i),
                         st->conns_closed[i]);
    head(b, "lossd_build_info", "gauge",
         "Build information; the value is always 1.");
    proto_buf_puts(b, "lossd_build_info{version=\"");
    label_value_write(b, version);
    proto_buf_puts(b, "\",openblas_core=\"");
    label_value_write(b, openblas_core);
    proto_buf_puts(b, "\"} 1\n");
    process_write(m, b);
}

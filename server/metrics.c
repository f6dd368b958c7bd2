/*
 * metrics.c - lock-free counters and histograms, written as Prometheus text.
 */
#include "metrics.h"

#include <dirent.h>
#include <stdatomic.h>
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

static const int codes[] = {200, 204, 400, 404, 405, 408,
                            413, 415, 422, 500, 503};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

/*
 * A histogram: per-bucket (not cumulative) counts, the last one for values
 * above every bound; the sum in nanounits so it stays an integer atomic.
 */
struct hist {
    _Atomic unsigned long long bucket[NBMAX + 1];
    _Atomic unsigned long long sum_nano;
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
};

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

static void hist_observe(struct hist *h, const double *bounds, size_t n,
                         double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    if (v < 0)
        v = 0;
    atomic_fetch_add_explicit(&h->sum_nano, (unsigned long long)(v * 1e9 + 0.5),
                              memory_order_relaxed);
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
    hist_observe(&rs->duration, time_bounds, NTIME, seconds);
    hist_observe(&m->size, size_bounds, NSIZE, (double)bytes_in);
}

void metrics_inflight_add(struct metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->inflight, delta, memory_order_relaxed);
}

void metrics_queue_wait(struct metrics *m, double seconds)
{
    hist_observe(&m->queue_wait, time_bounds, NTIME, seconds);
}

void metrics_compute(struct metrics *m, size_t loss, double seconds)
{
    if (loss > m->nlosses)
        loss = m->nlosses;
    hist_observe(&m->compute[loss], time_bounds, NTIME, seconds);
}

/* Writes the series of one histogram; labels is "" or `k="v",`. */
static void hist_write(struct proto_buf *b, const char *name,
                       const char *labels, const struct hist *h,
                       const double *bounds, size_t n)
{
    unsigned long long cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        proto_buf_printf(b, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels,
                         bounds[i], cum);
    }
    cum += atomic_load_explicit(&h->bucket[n], memory_order_relaxed);
    proto_buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, cum);
    size_t ll = strlen(labels);
    /* labels without the trailing comma, in braces, or nothing */
    if (ll > 0)
        proto_buf_printf(
            b, "%s_sum{%.*s} %.9f\n%s_count{%.*s} %llu\n", name, (int)(ll - 1),
            labels,
            (double)atomic_load_explicit(&h->sum_nano, memory_order_relaxed) *
                1e-9,
            name, (int)(ll - 1), labels, cum);
    else
        proto_buf_printf(
            b, "%s_sum %.9f\n%s_count %llu\n", name,
            (double)atomic_load_explicit(&h->sum_nano, memory_order_relaxed) *
                1e-9,
            name, cum);
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
                   &m->routes[r].duration, time_bounds, NTIME);
    }
    head(b, "lossd_request_size_bytes", "histogram",
         "Request body bytes as received (before decompression).");
    hist_write(b, "lossd_request_size_bytes", "", &m->size, size_bounds, NSIZE);
    head(b, "lossd_queue_wait_seconds", "histogram",
         "Time jobs waited for a pool worker.");
    hist_write(b, "lossd_queue_wait_seconds", "", &m->queue_wait, time_bounds,
               NTIME);
    head(b, "lossd_compute_duration_seconds", "histogram",
         "Time computing a loss and writing its JSON response, by loss.");
    for (size_t l = 0; l <= m->nlosses; l++) {
        snprintf(labels, sizeof labels, "loss=\"%s\",",
                 l < m->nlosses ? m->names[l] : "batch");
        hist_write(b, "lossd_compute_duration_seconds", labels, &m->compute[l],
                   time_bounds, NTIME);
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
    head(b, "lossd_build_info", "gauge",
         "Build information; the value is always 1.");
    proto_buf_printf(b,
                     "lossd_build_info{version=\"%s\",openblas_core=\"%s\"} "
                     "1\n",
                     version, openblas_core);
    process_write(m, b);
}

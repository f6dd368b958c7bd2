/*
 * test_metrics.c - server/metrics.c: what is recorded is what is written,
 * by route label and status code (with "other" for both), histograms that
 * are cumulative with le="+Inf" equal to _count, the compute histogram of
 * every loss plus "batch", the gauges, build info, and the exposition
 * format itself (Prometheus text 0.0.4), parsed line by line.
 *
 * The registry is built as serve.c builds it: the route table's labels and
 * the handlers' loss names.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "handler.h"
#include "metrics.h"
#include "route.h"
#include "testutil.h"

/* The route and loss names, as serve.c passes them (static strings). */
static const char *route_names[16];
static const char *loss_names[64];
static size_t nroutes, nlosses;

static struct metrics *new_metrics(void)
{
    struct metrics *m;

    nroutes = server_route_count();
    ck_assert_uint_le(nroutes, 16);
    for (size_t i = 0; i < nroutes; i++)
        route_names[i] = server_route_at(i)->label;
    nlosses = handler_count();
    ck_assert_uint_le(nlosses, 64);
    for (size_t i = 0; i < nlosses; i++)
        loss_names[i] = handler_describe(handler_at(i))->name;
    m = metrics_new(route_names, nroutes, loss_names, nlosses);
    ck_assert_ptr_nonnull(m);
    return m;
}

static const struct metrics_state state0 = {
    .queue_limit = 256, .max_inflight_bytes = (size_t)1 << 30};

/* The exposition of m (new, caller frees). */
static char *scrape(struct metrics *m, const struct metrics_state *st)
{
    struct proto_buf b;
    char *text;
    size_t len;

    proto_buf_init(&b);
    metrics_write(m, &b, st ? st : &state0, "1.2.3", "Haswell");
    ck_assert(proto_buf_ok(&b));
    text = proto_buf_steal(&b, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    return text;
}

/*
 * The value of one series, written exactly as metrics.c writes it ("name"
 * or "name{a=\"x\",b=\"y\"}"); NAN when absent. Every sample follows a
 * newline (the text starts with "# HELP").
 */
static double value(const char *text, const char *series)
{
    char key[512];
    const char *p;

    snprintf(key, sizeof key, "\n%s ", series);
    p = strstr(text, key);
    if (!p)
        return NAN;
    ck_assert_ptr_null(strstr(p + 1, key)); /* a series appears once */
    return strtod(p + strlen(key), NULL);
}

/* Samples of metric name (any labels). */
static size_t count_samples(const char *text, const char *name)
{
    char key[256];
    size_t n = 0;

    snprintf(key, sizeof key, "\n%s{", name);
    for (const char *p = text; (p = strstr(p, key)) != NULL; p++)
        n++;
    snprintf(key, sizeof key, "\n%s ", name);
    for (const char *p = text; (p = strstr(p, key)) != NULL; p++)
        n++;
    return n;
}

/* --- the exposition format ---------------------------------------------- */

#define MAX_SERIES 2048

/* [a-zA-Z_][a-zA-Z0-9_]*, n bytes of s */
static bool label_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = c == '_' || (c >= 'a' && c <= 'z') ||
                  (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9');

        if (!ok)
            return false;
    }
    return true;
}

/*
 * Checks text line by line against the text format, 0.0.4:
 *   - every line ends in '\n', none is empty;
 *   - each family opens with "# HELP name ..." then "# TYPE name type"
 *     (counter, gauge or histogram), once, before any of its samples, and
 *     its samples follow as one group;
 *   - a sample is the family's name (histograms: name_bucket, name_sum,
 *     name_count), labels name="value" separated by commas, one space, and
 *     a number; no series twice; counters are not negative;
 *   - for each histogram label set: buckets with strictly increasing le,
 *     cumulative counts, le="+Inf" last, then _sum, then _count equal to the
 *     +Inf bucket.
 * Returns the number of families.
 */
static size_t check_format(const char *text)
{
    static char seen[MAX_SERIES][512];
    char fam[512] = "", type[512] = "", families[64][512];
    size_t nseen = 0, nfam = 0, lineno = 0;
    bool typed = false;
    /* the histogram label set being read */
    char hist_labels[256] = "";
    double last_le = -INFINITY, last_cum = 0, inf_cum = -1;
    int hist_stage = 0; /* 0: none, 1: buckets, 2: +Inf seen, 3: _sum */

    ck_assert_uint_gt(strlen(text), 0);
    ck_assert_int_eq(text[strlen(text) - 1], '\n');
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        char line[512];

        lineno++;
        ck_assert_msg(n > 0 && n < sizeof line, "line %zu: length %zu", lineno,
                      n);
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;

        if (!strncmp(line, "# HELP ", 7)) {
            char *name = line + 7, *sp = strchr(name, ' ');

            ck_assert_msg(sp && sp[1], "line %zu: HELP without text", lineno);
            *sp = '\0';
            ck_assert_msg(hist_stage == 0, "line %zu: histogram unfinished",
                          lineno);
            for (size_t i = 0; i < nfam; i++)
                ck_assert_msg(strcmp(families[i], name) != 0,
                              "line %zu: %s again", lineno, name);
            ck_assert_uint_lt(nfam, 64);
            snprintf(families[nfam++], sizeof families[0], "%s", name);
            snprintf(fam, sizeof fam, "%s", name);
            type[0] = '\0';
            typed = false;
            continue;
        }
        if (!strncmp(line, "# TYPE ", 7)) {
            char *name = line + 7, *sp = strchr(name, ' ');

            ck_assert_msg(sp != NULL, "line %zu: TYPE without type", lineno);
            *sp = '\0';
            ck_assert_msg(!strcmp(name, fam) && !typed,
                          "line %zu: TYPE %s not right after its HELP", lineno,
                          name);
            ck_assert_msg(!strcmp(sp + 1, "counter") ||
                              !strcmp(sp + 1, "gauge") ||
                              !strcmp(sp + 1, "histogram"),
                          "line %zu: type %s", lineno, sp + 1);
            snprintf(type, sizeof type, "%s", sp + 1);
            typed = true;
            continue;
        }
        ck_assert_msg(line[0] != '#', "line %zu: stray comment", lineno);
        ck_assert_msg(typed, "line %zu: sample before HELP and TYPE", lineno);

        /* name */
        size_t nn = strcspn(line, "{ ");
        char name[128], labels[256] = "", nole[256] = "", le[64] = "";
        const char *q = line + nn;

        ck_assert_uint_lt(nn, sizeof name);
        memcpy(name, line, nn);
        name[nn] = '\0';
        if (!strcmp(type, "histogram")) {
            size_t fl = strlen(fam);

            ck_assert_msg(!strncmp(name, fam, fl) &&
                              (!strcmp(name + fl, "_bucket") ||
                               !strcmp(name + fl, "_sum") ||
                               !strcmp(name + fl, "_count")),
                          "line %zu: %s in family %s", lineno, name, fam);
        } else {
            ck_assert_msg(!strcmp(name, fam), "line %zu: %s in family %s",
                          lineno, name, fam);
        }
        /* labels */
        if (*q == '{') {
            const char *start = ++q;

            for (;;) {
                size_t ln = strcspn(q, "=");
                const char *v;
                size_t vn = 0;

                ck_assert_msg(label_name_ok(q, ln) && q[ln] == '=' &&
                                  q[ln + 1] == '"',
                              "line %zu: bad label", lineno);
                v = q + ln + 2;
                while (v[vn] && v[vn] != '"') {
                    ck_assert_msg(v[vn] != '\\' || v[vn + 1], "line %zu",
                                  lineno);
                    vn += v[vn] == '\\' ? 2 : 1;
                }
                ck_assert_msg(v[vn] == '"', "line %zu: open label value",
                              lineno);
                if (ln == 2 && !strncmp(q, "le", 2)) {
                    ck_assert_uint_lt(vn, sizeof le);
                    memcpy(le, v, vn);
                    le[vn] = '\0';
                } else {
                    size_t k = strlen(nole);

                    snprintf(nole + k, sizeof nole - k, "%.*s,",
                             (int)(v + vn + 1 - q), q);
                }
                q = v + vn + 1;
                if (*q == ',') {
                    q++;
                    continue;
                }
                ck_assert_msg(*q == '}', "line %zu: labels not closed", lineno);
                break;
            }
            ck_assert_uint_lt((size_t)(q - start), sizeof labels);
            memcpy(labels, start, (size_t)(q - start));
            labels[q - start] = '\0';
            q++;
        }
        /* one space, then a number, then the end of the line */
        ck_assert_msg(q[0] == ' ' && q[1] && q[1] != ' ',
                      "line %zu: no single space before the value", lineno);
        char *end;
        double v = strtod(q + 1, &end);

        ck_assert_msg(*end == '\0' && end != q + 1, "line %zu: value '%s'",
                      lineno, q + 1);
        ck_assert_msg(strcmp(type, "counter") != 0 || v >= 0,
                      "line %zu: negative counter", lineno);
        /* no series twice */
        ck_assert_uint_lt(nseen, MAX_SERIES);
        snprintf(seen[nseen], sizeof seen[0], "%s{%s}", name, labels);
        for (size_t i = 0; i < nseen; i++)
            ck_assert_msg(strcmp(seen[i], seen[nseen]) != 0,
                          "line %zu: %s twice", lineno, seen[nseen]);
        nseen++;

        if (strcmp(type, "histogram") != 0)
            continue;
        const char *suffix = name + strlen(fam);

        if (!strcmp(suffix, "_bucket")) {
            double lev;

            ck_assert_msg(le[0], "line %zu: bucket without le", lineno);
            lev = !strcmp(le, "+Inf") ? INFINITY : strtod(le, &end);
            ck_assert_msg(isinf(lev) || *end == '\0', "line %zu: le '%s'",
                          lineno, le);
            if (hist_stage == 0) {
                snprintf(hist_labels, sizeof hist_labels, "%s", nole);
                last_le = -INFINITY;
                last_cum = 0;
                hist_stage = 1;
            }
            ck_assert_msg(hist_stage == 1 && !strcmp(nole, hist_labels),
                          "line %zu: bucket out of its group", lineno);
            ck_assert_msg(lev > last_le, "line %zu: le not increasing", lineno);
            ck_assert_msg(v >= last_cum, "line %zu: not cumulative", lineno);
            last_le = lev;
            last_cum = v;
            if (isinf(lev)) {
                inf_cum = v;
                hist_stage = 2;
            }
        } else {
            ck_assert_msg(le[0] == '\0', "line %zu: le on %s", lineno, name);
            ck_assert_msg(!strcmp(nole, hist_labels),
                          "line %zu: %s of another label set", lineno, name);
            if (!strcmp(suffix, "_sum")) {
                ck_assert_msg(hist_stage == 2, "line %zu: _sum before +Inf",
                              lineno);
                ck_assert_msg(v >= 0, "line %zu: negative sum", lineno);
                hist_stage = 3;
            } else {
                ck_assert_msg(hist_stage == 3, "line %zu: _count before _sum",
                              lineno);
                ck_assert_msg(v == inf_cum, "line %zu: _count %g, +Inf %g",
                              lineno, v, inf_cum);
                hist_stage = 0;
            }
        }
    }
    ck_assert_msg(hist_stage == 0, "histogram unfinished at the end");
    return nfam;
}

/* --- tests -------------------------------------------------------------- */

/* A fresh registry: every family, no request counted, zeros throughout. */
START_TEST(test_empty)
{
    struct metrics *m = new_metrics();
    char *text = scrape(m, NULL);

    /* requests, their duration and size, queue wait, compute; 7 gauges;
       connections closed; build info; 5 process_* */
    ck_assert_uint_eq(check_format(text), 19);
    ck_assert_ptr_nonnull(strstr(text, "# HELP lossd_requests_total "));
    ck_assert_uint_eq(count_samples(text, "lossd_requests_total"), 0);
    /* a duration histogram for every route label and "other" */
    ck_assert_uint_eq(
        count_samples(text, "lossd_request_duration_seconds_count"),
        nroutes + 1);
    for (size_t r = 0; r < nroutes; r++) {
        char s[256];

        snprintf(s, sizeof s,
                 "lossd_request_duration_seconds_count{route=\"%s\"}",
                 route_names[r]);
        ck_assert(value(text, s) == 0);
    }
    ck_assert(value(text, "lossd_request_duration_seconds_count"
                          "{route=\"other\"}") == 0);
    ck_assert(value(text, "lossd_request_size_bytes_count") == 0);
    ck_assert(value(text, "lossd_queue_wait_seconds_count") == 0);
    ck_assert(value(text, "lossd_requests_in_flight") == 0);
    free(text);
    metrics_free(m);
}
END_TEST

/*
 * Requests by route and code: each recorded pair is one series with its
 * count; codes outside the fixed set are "other", as are route indices past
 * the table (so a client cannot grow the output); pairs never seen are not
 * written.
 */
START_TEST(test_requests)
{
    struct metrics *m = new_metrics();
    const size_t batch = 1, catalog = 2, other = nroutes;
    char *text, s[256];

    ck_assert_str_eq(route_names[batch], "/v1/batch");
    ck_assert_str_eq(route_names[catalog], "/v1/losses");
    for (int i = 0; i < 3; i++)
        metrics_request(m, batch, 200, 0.001, 100);
    metrics_request(m, batch, 413, 0.001, 100);
    metrics_request(m, catalog, 404, 0.001, 0);
    metrics_request(m, catalog, 401, 0.001, 0); /* --auth-token-file */
    metrics_request(m, catalog, 501, 0.001, 0); /* Transfer-Encoding: gzip */
    metrics_request(m, other, 404, 0.001, 0);
    metrics_request(m, other, 404, 0.001, 0);
    metrics_request(m, other + 1000, 405, 0.001, 0); /* past the table */
    metrics_request(m, 0, 418, 0.001, 10);           /* not a known code */
    metrics_request(m, 0, 299, 0.001, 10);
    metrics_request(m, other, -1, 0.001, 0);
    text = scrape(m, NULL);
    check_format(text);

#define REQ(route, code)                                                       \
    "lossd_requests_total{route=\"" route "\",code=\"" code "\"}"
    ck_assert(value(text, REQ("/v1/batch", "200")) == 3);
    ck_assert(value(text, REQ("/v1/batch", "413")) == 1);
    ck_assert(value(text, REQ("/v1/losses", "404")) == 1);
    ck_assert(value(text, REQ("/v1/losses", "401")) == 1);
    ck_assert(value(text, REQ("/v1/losses", "501")) == 1);
    ck_assert(value(text, REQ("other", "404")) == 2);
    ck_assert(value(text, REQ("other", "405")) == 1);
    ck_assert(value(text, REQ("/v1/{loss}", "other")) == 2);
    ck_assert(value(text, REQ("other", "other")) == 1);
#undef REQ
    /* nine pairs, nothing else: no zero series */
    ck_assert_uint_eq(count_samples(text, "lossd_requests_total"), 9);

    /* each route's duration histogram counts its own requests */
    snprintf(s, sizeof s, "lossd_request_duration_seconds_count{route=\"%s\"}",
             "/v1/batch");
    ck_assert(value(text, s) == 4);
    ck_assert(value(text, "lossd_request_duration_seconds_count"
                          "{route=\"other\"}") == 4);
    ck_assert(value(text, "lossd_request_duration_seconds_count"
                          "{route=\"/healthz\"}") == 0);
    /* one size histogram for all */
    ck_assert(value(text, "lossd_request_size_bytes_count") == 13);
    ck_assert(fabs(value(text, "lossd_request_size_bytes_sum") - 420) < 1e-6);
    free(text);
    metrics_free(m);
}
END_TEST

/* The time buckets metrics.c uses (Prometheus' defaults), in order. */
static const double time_bounds[] = {.005, .01, .025, .05, .1, .25,
                                     .5,   1,   2.5,  5,   10};
#define NTIME (sizeof time_bounds / sizeof time_bounds[0])
/* The size buckets (bytes). */
static const double size_bounds[] = {100, 1000, 10000,   100000,
                                     1e6, 1e7,  67108864};
#define NSIZE      (sizeof size_bounds / sizeof size_bounds[0])
#define NBMAX_TEST 32

/*
 * The k-th bucket (0-based, +Inf at nb) of the series family{labels}: its
 * cumulative count, read by position so that it does not depend on how
 * le is spelled.
 */
static double bucket_at(const char *text, const char *family,
                        const char *labels, size_t k)
{
    char key[1024];
    const char *p;

    snprintf(key, sizeof key, "\n%s_bucket{%sle=\"", family, labels);
    p = strstr(text, key);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < k; i++) {
        p = strstr(p + 1, key);
        ck_assert_ptr_nonnull(p);
    }
    p = strstr(p + 1, "} "); /* a label value may hold '}' ("/v1/{loss}") */
    return strtod(p + 2, NULL);
}

/*
 * Bucket boundaries are inclusive (le: less or equal): a value equal to a
 * bound counts in that bucket, the next value up in the next one. One
 * observation at each bound and one just above it, so bucket i holds
 * 2i + 1 cumulatively and +Inf holds them all; plus 0 and a negative value,
 * which land in the first bucket.
 */
START_TEST(test_buckets)
{
    struct metrics *m = new_metrics();
    double sum = 0;
    size_t nobs = 0;
    char *text;

    for (size_t i = 0; i < NTIME; i++) {
        metrics_request(m, 4, 200, time_bounds[i], (size_t)size_bounds[0]);
        metrics_request(m, 4, 200, nextafter(time_bounds[i], INFINITY),
                        (size_t)size_bounds[0]);
        sum += time_bounds[i] + nextafter(time_bounds[i], INFINITY);
        nobs += 2;
    }
    metrics_request(m, 4, 200, 0, 0);
    metrics_request(m, 4, 200, -1, 0); /* a clock step: first bucket, adds 0 */
    nobs += 2;
    for (size_t i = 0; i < NSIZE; i++) {
        metrics_request(m, 5, 200, 0, (size_t)size_bounds[i]);
        metrics_request(m, 5, 200, 0, (size_t)size_bounds[i] + 1);
    }
    text = scrape(m, NULL);
    check_format(text);

    const char *lbl = "route=\"/healthz\",";

    ck_assert_str_eq(route_names[4], "/healthz");
    for (size_t i = 0; i < NTIME; i++)
        ck_assert_msg(bucket_at(text, "lossd_request_duration_seconds", lbl,
                                i) == (double)(2 * i + 1 + 2),
                      "bucket %zu (le %g)", i, time_bounds[i]);
    ck_assert(bucket_at(text, "lossd_request_duration_seconds", lbl, NTIME) ==
              (double)nobs);
    ck_assert(value(text, "lossd_request_duration_seconds_count"
                          "{route=\"/healthz\"}") == (double)nobs);
    /* the sum, kept in nanoseconds: each observation rounds by at most
       half a nanosecond */
    ck_assert(fabs(value(text, "lossd_request_duration_seconds_sum"
                               "{route=\"/healthz\"}") -
                   sum) <= (double)nobs * 0.5e-9 + 1e-12 * sum);

    /* sizes: the /healthz observations (2 per time bound at 100 bytes, 2
       at 0) are in the first bucket too */
    for (size_t i = 0; i < NSIZE; i++)
        ck_assert_msg(bucket_at(text, "lossd_request_size_bytes", "", i) ==
                          (double)(2 * NTIME + 2 + 2 * i + 1),
                      "size bucket %zu (%g bytes)", i, size_bounds[i]);
    ck_assert(bucket_at(text, "lossd_request_size_bytes", "", NSIZE) ==
              (double)(2 * NTIME + 2 + 2 * NSIZE));
    /* the number of buckets: the bounds plus +Inf */
    ck_assert_uint_eq(count_samples(text, "lossd_request_size_bytes_bucket"),
                      NSIZE + 1);
    ck_assert_uint_eq(count_samples(text, "lossd_queue_wait_seconds_bucket"),
                      NTIME + 1);
    free(text);
    metrics_free(m);
}
END_TEST

/* A compute histogram per loss of the registry, plus "batch" (the index
   nlosses, and anything past it); and the queue wait. */
START_TEST(test_compute)
{
    struct metrics *m = new_metrics();
    char *text, s[256];

    for (size_t l = 0; l < nlosses; l++)
        for (size_t k = 0; k <= l; k++)
            metrics_compute(m, l, 0.02);
    metrics_compute(m, nlosses, 3);
    metrics_compute(m, nlosses + 7, 3);
    metrics_queue_wait(m, 0.2);
    metrics_queue_wait(m, 20);
    text = scrape(m, NULL);
    check_format(text);

    ck_assert_uint_eq(
        count_samples(text, "lossd_compute_duration_seconds_count"),
        nlosses + 1);
    for (size_t l = 0; l < nlosses; l++) {
        snprintf(s, sizeof s,
                 "lossd_compute_duration_seconds_count{loss=\"%s\"}",
                 loss_names[l]);
        ck_assert_msg(value(text, s) == (double)(l + 1), "%s", s);
        /* 0.02 is above 0.01 and within 0.025: bucket 2 (0-based) */
        snprintf(s, sizeof s, "loss=\"%s\",", loss_names[l]);
        ck_assert(bucket_at(text, "lossd_compute_duration_seconds", s, 1) == 0);
        ck_assert(bucket_at(text, "lossd_compute_duration_seconds", s, 2) ==
                  (double)(l + 1));
    }
    ck_assert(value(text, "lossd_compute_duration_seconds_count"
                          "{loss=\"batch\"}") == 2);
    ck_assert(fabs(value(text, "lossd_compute_duration_seconds_sum"
                               "{loss=\"batch\"}") -
                   6) < 1e-9);
    ck_assert(value(text, "lossd_queue_wait_seconds_count") == 2);
    /* 0.2 within 0.25 (bucket 5); 20 only in +Inf */
    ck_assert(bucket_at(text, "lossd_queue_wait_seconds", "", 4) == 0);
    ck_assert(bucket_at(text, "lossd_queue_wait_seconds", "", 5) == 1);
    ck_assert(bucket_at(text, "lossd_queue_wait_seconds", "", NTIME - 1) == 1);
    ck_assert(bucket_at(text, "lossd_queue_wait_seconds", "", NTIME) == 2);
    free(text);
    metrics_free(m);
}
END_TEST

/* Gauges: in flight as added, the state as given, build info, process. */
START_TEST(test_gauges)
{
    struct metrics *m = new_metrics();
    const struct metrics_state st = {
        .pool_jobs = 17,
        .queue_limit = 256,
        .inflight_bytes = 123456789,
        .max_inflight_bytes = (size_t)3 << 30,
        .connections = 42,
        .max_connections = 4096,
        .conns_closed = {[CONNS_SHED] = 7, [CONNS_HEADER_TIMEOUT] = 3},
    };
    struct rlimit rl;
    struct timespec now;
    char *text, *text2;
    int fds[2];

    metrics_inflight_add(m, 1);
    metrics_inflight_add(m, 1);
    metrics_inflight_add(m, 1);
    metrics_inflight_add(m, -1);
    text = scrape(m, &st);
    check_format(text);
    ck_assert(value(text, "lossd_requests_in_flight") == 2);
    ck_assert(value(text, "lossd_pool_jobs") == 17);
    ck_assert(value(text, "lossd_pool_jobs_limit") == 256);
    ck_assert(value(text, "lossd_inflight_bytes") == 123456789);
    ck_assert(value(text, "lossd_inflight_limit_bytes") ==
              (double)((size_t)3 << 30));
    ck_assert(value(text, "lossd_connections") == 42);
    ck_assert(value(text, "lossd_connections_limit") == 4096);
    ck_assert(value(text, "lossd_connections_closed_total{reason=\"shed\"}") ==
              7);
    ck_assert(value(text, "lossd_connections_closed_total{reason="
                          "\"header_timeout\"}") == 3);
    ck_assert(value(text, "lossd_connections_closed_total{reason="
                          "\"refused\"}") == 0);
    ck_assert(value(text, "lossd_build_info{version=\"1.2.3\","
                          "openblas_core=\"Haswell\"}") == 1);
    ck_assert_ptr_nonnull(
        strstr(text, "# TYPE lossd_requests_in_flight gauge\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "# TYPE lossd_requests_total counter\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "# TYPE lossd_request_duration_seconds histogram\n"));

    /* process_*: the standard names, with values of this process */
    ck_assert(value(text, "process_cpu_seconds_total") >= 0);
    ck_assert(value(text, "process_resident_memory_bytes") > 0);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert(value(text, "process_max_fds") == (double)rl.rlim_cur);
    clock_gettime(CLOCK_REALTIME, &now);
    ck_assert(value(text, "process_start_time_seconds") <=
              (double)now.tv_sec + 1);
    ck_assert(value(text, "process_start_time_seconds") >=
              (double)now.tv_sec - 60);
    /* two more descriptors are two more in the count */
    ck_assert_int_eq(pipe(fds), 0);
    text2 = scrape(m, &st);
    ck_assert(value(text2, "process_open_fds") ==
              value(text, "process_open_fds") + 2);
    close(fds[0]);
    close(fds[1]);
    free(text2);
    free(text);
    metrics_free(m);
}
END_TEST

/* Counters are atomic: threads recording at once lose nothing. */
#define THREADS    8
#define PER_THREAD 20000

static void *record(void *arg)
{
    struct metrics *m = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        metrics_inflight_add(m, 1);
        metrics_request(m, (size_t)i % (nroutes + 1), i % 2 ? 200 : 503, 0.001,
                        10);
        metrics_compute(m, (size_t)i % (nlosses + 1), 0.001);
        metrics_inflight_add(m, -1);
    }
    return NULL;
}

START_TEST(test_concurrent)
{
    struct metrics *m = new_metrics();
    pthread_t t[THREADS];
    char *text;
    double total = 0;

    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, record, m), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    text = scrape(m, NULL);
    check_format(text);
    /* "} " ends the labels: a label value may hold '}' ("/v1/{loss}") */
    for (const char *p = text;
         (p = strstr(p, "\nlossd_requests_total{")) != NULL; p++)
        total += strtod(strstr(p, "} ") + 2, NULL);
    ck_assert(total == (double)THREADS * PER_THREAD);
    ck_assert(value(text, "lossd_request_size_bytes_count") ==
              (double)THREADS * PER_THREAD);
    ck_assert(value(text, "lossd_requests_in_flight") == 0);
    free(text);
    metrics_free(m);
}
END_TEST

/* --- sums past 2^64 and exact bounds ------------------------------------ */

__extension__ typedef unsigned __int128 u128;

/* A sum as written ("123" or "123.456000000") in its integer unit: ns when
   it has nine decimals, else bytes. Fails the test on any other form. */
static u128 sum_units(const char *text, const char *series)
{
    char key[256];
    const char *p;
    u128 v = 0;
    size_t frac = 0;
    bool point = false;

    snprintf(key, sizeof key, "\n%s ", series);
    p = strstr(text, key);
    ck_assert_msg(p != NULL, "no %s", series);
    for (p += strlen(key); *p != '\n'; p++) {
        if (*p == '.' && !point) {
            point = true;
            continue;
        }
        ck_assert_msg(*p >= '0' && *p <= '9', "%s: '%c'", series, *p);
        v = v * 10 + (u128)(unsigned)(*p - '0');
        frac += point;
    }
    ck_assert(!point || frac == 9);
    return v;
}

/* v in decimal, for messages (a static buffer: one call per message). */
static const char *u128_str(u128 v)
{
    static char out[48];
    char tmp[48];
    size_t n = 0;

    do
        tmp[n++] = (char)('0' + (int)(v % 10));
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return out;
}

/*
 * Sums are exact integers of their unit past 2^64 and never go back: 20
 * durations of 1e9 s (2e19 ns, past 2^64 = 1.8e19 ns), scraped after each;
 * body sizes of 2^60 bytes (the most one observation adds) 17 times, past
 * 2^64 bytes. A 64-bit sum would read 1.55e9 s after the 19th duration.
 */
START_TEST(test_sum_past_2_64)
{
    struct metrics *m = new_metrics();
    const char *dur = "lossd_request_duration_seconds_sum{route=\"/healthz\"}";
    const char *size = "lossd_request_size_bytes_sum";
    u128 last = 0;
    char *text;

    for (int i = 1; i <= 20; i++) {
        u128 got;

        metrics_request(m, 4, 200, 1e9, (size_t)1 << 26);
        text = scrape(m, NULL);
        if (i == 20) /* check_format() takes a while under sanitizers */
            check_format(text);
        got = sum_units(text, dur);
        ck_assert_msg(got == (u128)i * 1000000000000000000u, "%d: %s ns", i,
                      u128_str(got));
        ck_assert(got > last);
        last = got;
        ck_assert(sum_units(text, size) == (u128)i << 26);
        free(text);
    }
    text = scrape(m, NULL);
    ck_assert_ptr_nonnull(
        strstr(text, "\nlossd_request_duration_seconds_sum{route=\"/healthz\"} "
                     "20000000000.000000000\n"));
    free(text);

    /* sizes: 20 * 64 MiB so far, then 2^60 17 times */
    last = (u128)20 << 26;
    for (int i = 1; i <= 17; i++) {
        u128 got;

        metrics_request(m, 4, 200, 0, (size_t)1 << 60);
        text = scrape(m, NULL);
        got = sum_units(text, size);
        ck_assert_msg(got == ((u128)20 << 26) + ((u128)i << 60), "%d: %s", i,
                      u128_str(got));
        ck_assert(got > last);
        last = got;
        free(text);
    }
    ck_assert(last > (u128)1 << 64);
    /* one observation adds at most 2^60: SIZE_MAX and infinite seconds
       count as that */
    metrics_request(m, 4, 200, INFINITY, SIZE_MAX);
    text = scrape(m, NULL);
    ck_assert(sum_units(text, size) == ((u128)20 << 26) + ((u128)18 << 60));
    ck_assert(sum_units(text, dur) ==
              (u128)20 * 1000000000000000000u + ((u128)1 << 60));
    free(text);
    metrics_free(m);
}
END_TEST

/* Writers that push one sum past 2^62 again and again (1e9 s is 1e18 ns:
   a move every 4.6 observations) while a reader scrapes: the reader never
   sees the sum go back, and nothing is lost. */
#define SUM_THREADS 4
#define SUM_SCRAPES 300

struct sum_writer {
    struct metrics *m;
    _Atomic int *stop;
    unsigned long long n;
};

static void *observe_long(void *arg)
{
    struct sum_writer *w = arg;

    while (!atomic_load(w->stop) || w->n == 0) {
        metrics_queue_wait(w->m, 1e9);
        w->n++;
    }
    return NULL;
}

START_TEST(test_sum_concurrent)
{
    struct metrics *m = new_metrics();
    pthread_t t[SUM_THREADS];
    struct sum_writer w[SUM_THREADS];
    _Atomic int stop = 0;
    u128 last = 0, got, total = 0;
    char *text;

    for (int i = 0; i < SUM_THREADS; i++) {
        w[i] = (struct sum_writer){m, &stop, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, observe_long, &w[i]), 0);
    }
    for (int k = 0; k < SUM_SCRAPES; k++) {
        text = scrape(m, NULL);
        got = sum_units(text, "lossd_queue_wait_seconds_sum");
        ck_assert_msg(got >= last, "went back from %s", u128_str(last));
        ck_assert_msg(got % 1000000000000000000u == 0, "%s", u128_str(got));
        last = got;
        free(text);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < SUM_THREADS; i++) {
        pthread_join(t[i], NULL);
        total += w[i].n;
    }
    /* the reader saw moves happen, not only a finished sum */
    ck_assert(last > (u128)1 << 64);
    text = scrape(m, NULL);
    got = sum_units(text, "lossd_queue_wait_seconds_sum");
    ck_assert_msg(got == total * 1000000000000000000u, "%s", u128_str(got));
    ck_assert(value(text, "lossd_queue_wait_seconds_count") == (double)total);
    free(text);
    metrics_free(m);
}
END_TEST

/* Every le of family{labels}, in order, into les (at most max); count. */
static size_t les_of(const char *text, const char *family, const char *labels,
                     char les[][32], size_t max)
{
    char key[256];
    size_t n = 0;

    snprintf(key, sizeof key, "\n%s_bucket{%sle=\"", family, labels);
    for (const char *p = text; (p = strstr(p, key)) != NULL; p++) {
        const char *v = p + strlen(key);
        size_t len = strcspn(v, "\"");

        ck_assert_uint_lt(n, max);
        ck_assert_uint_lt(len, 32);
        memcpy(les[n], v, len);
        les[n][len] = '\0';
        n++;
    }
    return n;
}

/*
 * Every le reads back (strtod) to its exact bound, spelled as Prometheus'
 * Go client spells it (shortest digits, exponent from 1e+06 up), so series
 * keep their names; the 64 MiB bound was "6.71089e+07" with %g, which reads
 * back as 67108900 while 67108870 bytes counted only in +Inf.
 */
START_TEST(test_le_exact)
{
    struct metrics *m = new_metrics();
    static const char *const time_les[] = {"0.005", "0.01", "0.025", "0.05",
                                           "0.1",   "0.25", "0.5",   "1",
                                           "2.5",   "5",    "10"};
    static const char *const size_les[] = {
        "100", "1000", "10000", "100000", "1e+06", "1e+07", "6.7108864e+07"};
    char les[NBMAX_TEST][32];
    char *text;
    size_t n;

    metrics_request(m, 0, 200, 0.1, 67108864);
    metrics_request(m, 0, 200, 0.1, 67108870);
    text = scrape(m, NULL);
    check_format(text);

    n = les_of(text, "lossd_request_size_bytes", "", les, NBMAX_TEST);
    ck_assert_uint_eq(n, NSIZE + 1);
    for (size_t i = 0; i < NSIZE; i++) {
        char *end;

        ck_assert(strtod(les[i], &end) == size_bounds[i] && *end == '\0');
        ck_assert_str_eq(les[i], size_les[i]);
    }
    ck_assert_str_eq(les[NSIZE], "+Inf");
    /* 67108864 within the last bound, 67108870 above it */
    ck_assert(bucket_at(text, "lossd_request_size_bytes", "", NSIZE - 1) == 1);
    ck_assert(bucket_at(text, "lossd_request_size_bytes", "", NSIZE) == 2);

    n = les_of(text, "lossd_queue_wait_seconds", "", les, NBMAX_TEST);
    ck_assert_uint_eq(n, NTIME + 1);
    for (size_t i = 0; i < NTIME; i++) {
        char *end;

        ck_assert(strtod(les[i], &end) == time_bounds[i] && *end == '\0');
        ck_assert_str_eq(les[i], time_les[i]);
    }
    free(text);
    metrics_free(m);
}
END_TEST

/* Build info's values come from outside the fixed tables: a quote, a
   backslash or a newline in them is escaped, and the line stays one
   sample. */
START_TEST(test_build_info_escaped)
{
    struct metrics *m = new_metrics();
    struct proto_buf b;

    proto_buf_init(&b);
    metrics_write(m, &b, &state0, "1\"2\\3\n4", "Has\"well");
    ck_assert(proto_buf_ok(&b));
    check_format(b.data);
    ck_assert(value(b.data, "lossd_build_info{version=\"1\\\"2\\\\3\\n4\","
                            "openblas_core=\"Has\\\"well\"}") == 1);
    proto_buf_release(&b);
    metrics_free(m);
}
END_TEST

/* metrics_free(NULL) is nothing; a registry with no routes or losses
   still writes "other" and "batch". */
START_TEST(test_edges)
{
    struct metrics *m = metrics_new(NULL, 0, NULL, 0);
    struct proto_buf b;

    metrics_free(NULL);
    ck_assert_ptr_nonnull(m);
    metrics_request(m, 0, 200, 0.1, 1);
    metrics_compute(m, 0, 0.1);
    proto_buf_init(&b);
    metrics_write(m, &b, &state0, "v", "c");
    ck_assert(proto_buf_ok(&b));
    check_format(b.data);
    ck_assert(value(b.data, "lossd_requests_total{route=\"other\","
                            "code=\"200\"}") == 1);
    ck_assert(value(b.data, "lossd_compute_duration_seconds_count"
                            "{loss=\"batch\"}") == 1);
    proto_buf_release(&b);
    metrics_free(m);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("server_metrics");
    TCase *tc = tcase_create("metrics");

    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_requests);
    tcase_add_test(tc, test_buckets);
    tcase_add_test(tc, test_compute);
    tcase_add_test(tc, test_gauges);
    tcase_add_test(tc, test_concurrent);
    tcase_add_test(tc, test_edges);
    tcase_add_test(tc, test_sum_past_2_64);
    tcase_add_test(tc, test_sum_concurrent);
    tcase_add_test(tc, test_le_exact);
    tcase_add_test(tc, test_build_info_escaped);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(metrics_suite());
}

/*
 * bench_json.c - how fast request bodies of numbers decode: lossd's
 * streaming decoder against simdjson On-Demand (when built with it) and
 * jansson, on the same bytes, in one run.
 *
 * Two bodies {"input": [n numbers]} are generated before timing, from
 * x = 2u - 1 with u uniform in [0, 1) (a fixed splitmix64 sequence):
 *
 *   long17   each number printed with %.17g (17 significant digits, what
 *            the repr of a random double usually needs)
 *   short6   each number printed with %.6g
 *
 * Each repetition times, per decoder, everything from the body in memory to
 * the sum of its numbers in document order:
 *
 *   lossd     proto_decoder_feed() in 16 KiB chunks (as the server feeds a
 *             body), finish, sum the "input" tensor; one decoder, reset
 *             between bodies, with the limits handlers use
 *   simdjson  parser.iterate() on the buffer (padded once, untimed), then
 *             "input" as an array, its count_elements(), a std::vector
 *             reserved to that count and filled with get_double() of each
 *             element, then summed; one parser. The vector is the same
 *             output as lossd's tensor: every double stored in memory the
 *             body's reader allocated.
 *   simdjson-sum  the same, but each element added as it is read, no
 *             vector: what simdjson's reading alone costs (a body decoded
 *             for a tensor cannot do without the store)
 *   jansson   json_loadb(), then json_number_value() of each element
 *
 * The sums must be equal bit for bit (each reader is correctly rounded),
 * or the run fails. The decoders take turns within a repetition, the first
 * rotating; each is timed in the thread's CPU time (see now()); the
 * figures are the median and the best over the repetitions, in MB/s (10^6
 * bytes of body per CPU second), and lossd's ratio to each other decoder: of
 * the medians, of the bests, and per repetition (lossd's time and the other's
 * in the same repetition), the median and the range of those.
 *
 * Usage: bench_json [count [reps [chunk [decoders]]]]
 *        (defaults 1000000 11 16384 lossd,simdjson,simdjson-sum,jansson;
 *        naming fewer decoders, e.g. under perf, skips the others)
 * Output: one line per body and decoder, then the ratios per body.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode.h"
#include "doc.h"
#include "value.h"

#if HAVE_SIMDJSON
#include "bench_json_simdjson.h"
#endif

/* simdjson reads up to SIMDJSON_PADDING (64) bytes past the body */
#define PAD 64

enum { LOSSD, SIMDJSON, SIMDJSON_SUM, JANSSON, NDECODERS };

static const char *const names[NDECODERS] = {"lossd", "simdjson",
                                             "simdjson-sum", "jansson"};

struct body {
    const char *name;
    char *buf; /* len bytes, then PAD zero bytes */
    size_t len;
};

struct ctx {
    struct proto_decoder *d;
    size_t chunk;
    bool use[NDECODERS];
#if HAVE_SIMDJSON
    struct bench_simdjson *sj;
#endif
};

/*
 * The calling thread's CPU time, in seconds, user and system (the page
 * faults of the memory a decoder fills are its own work): what other
 * programs on a shared machine take while a decoder waits for a core is
 * left out, which wall time counted.
 */
static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_json: %s\n", what);
    exit(EXIT_FAILURE);
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void body_make(struct body *b, const char *name, int digits, size_t n)
{
    size_t cap = 16 + n * 32 + PAD, o = 0;
    uint64_t seed = 42;

    b->name = name;
    b->buf = malloc(cap);
    if (b->buf == NULL)
        die("out of memory");
    o += (size_t)snprintf(b->buf, cap, "{\"input\": [");
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(&seed) >> 11) * 0x1p-53;

        o += (size_t)snprintf(b->buf + o, cap - o, "%s%.*g", i ? ", " : "",
                              digits, 2 * u - 1);
    }
    o += (size_t)snprintf(b->buf + o, cap - o, "]}\n");
    b->len = o;
    memset(b->buf + o, 0, PAD);
}

static double sum_lossd(struct ctx *c, const struct body *b, size_t *ret_n)
{
    struct proto_doc *doc = NULL;
    struct loss_error err;
    const struct proto_value *in;
    const struct tensor *t;
    double sum = 0;

    loss_error_init(&err);
    proto_decoder_reset(c->d);
    for (size_t o = 0; o < b->len; o += c->chunk) {
        size_t n = b->len - o < c->chunk ? b->len - o : c->chunk;

        if (proto_decoder_feed(c->d, b->buf + o, n, &err) != LOSS_OK)
            die(err.detail);
    }
    if (proto_decoder_finish(c->d, &doc, &err) != LOSS_OK)
        die(err.detail);
    in = proto_object_get(proto_doc_root(doc), "input");
    if (in == NULL || in->type != PROTO_TENSOR)
        die("lossd: no input tensor");
    t = &in->u.tensor->t;
    for (size_t i = 0; i < t->shape[0]; i++)
        sum += t->data[i];
    *ret_n = t->shape[0];
    proto_doc_free(doc);
    return sum;
}

static double sum_jansson(const struct body *b, size_t *ret_n)
{
    json_error_t e;
    json_t *root = json_loadb(b->buf, b->len, 0, &e);
    json_t *arr, *v;
    double sum = 0;
    size_t i;

    if (root == NULL)
        die(e.text);
    arr = json_object_get(root, "input");
    json_array_foreach(arr, i, v)
    {
        sum += json_number_value(v);
    }
    *ret_n = json_array_size(arr);
    json_decref(root);
    return sum;
}

/* One decode of b by decoder k; seconds, or a negative number if absent. */
static double time_one(struct ctx *c, int k, const struct body *b,
                       double *ret_sum, size_t *ret_n)
{
    double t0 = now();

    switch (k) {
    case LOSSD:
        *ret_sum = sum_lossd(c, b, ret_n);
        break;
    case SIMDJSON:
    case SIMDJSON_SUM:
#if HAVE_SIMDJSON
        if (bench_simdjson_sum(c->sj, b->buf, b->len, b->len + PAD,
                               k == SIMDJSON, ret_sum, ret_n) != 0)
            die("simdjson failed");
        break;
#else
        return -1;
#endif
    default:
        *ret_sum = sum_jansson(b, ret_n);
        break;
    }
    return now() - t0;
}

static int cmp_double(const void *a, const void *b);

/* Whether name is one of the comma-separated names of list. */
static bool in_list(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; *p != '\0'; p += strcspn(p, ","), p += *p == ',')
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* The median of x[0..n) (sorted in place) in *ret_mid, min and max. */
static void spread(double *x, int n, double *ret_mid, double *ret_lo,
                   double *ret_hi)
{
    qsort(x, (size_t)n, sizeof(*x), cmp_double);
    *ret_mid = x[n / 2];
    *ret_lo = x[0];
    *ret_hi = x[n - 1];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t count = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int reps = argc > 2 ? atoi(argv[2]) : 11;
    struct proto_limits lim = {
        .max_elements = 16u << 20, /* handler_limits_default() */
        .max_rank = TENSOR_MAX_RANK,
        .max_depth = 64,
        .recover_values = true,
        .max_value_errors = 257,
    };
    struct ctx c = {0};
    struct body bodies[2];
    double *secs;

    c.chunk = argc > 3 ? strtoull(argv[3], NULL, 10) : 16384;
    for (int k = 0; k < NDECODERS; k++)
        c.use[k] = argc <= 4 || in_list(argv[4], names[k]);
    if (count == 0 || reps < 1 || c.chunk == 0)
        die("usage: bench_json [count [reps [chunk [decoders]]]]");
    secs = malloc((size_t)reps * sizeof(*secs));
    c.d = proto_decoder_new(&lim);
    if (secs == NULL || c.d == NULL)
        die("out of memory");
#if HAVE_SIMDJSON
    c.sj = bench_simdjson_new();
    if (c.sj == NULL)
        die("out of memory");
    printf("# simdjson %s kernel\n", bench_simdjson_implementation());
#else
    printf("# built without simdjson\n");
#endif
    printf("# %zu numbers a body, %d repetitions, lossd fed %zu-byte "
           "chunks\n",
           count, reps, c.chunk);
    body_make(&bodies[0], "long17", 17, count);
    body_make(&bodies[1], "short6", 6, count);
    for (int bi = 0; bi < 2; bi++) {
        struct body *b = &bodies[bi];
        double mbs[NDECODERS] = {0}, best[NDECODERS] = {0}, sums[NDECODERS];
        double all[NDECODERS][64];
        size_t n;

        if (reps > 64)
            reps = 64;
        for (int r = 0; r < reps; r++) {
            for (int k = 0; k < NDECODERS; k++) {
                /* rotate who goes first */
                int kk = (k + r) % NDECODERS;

                if (!c.use[kk]) {
                    all[kk][r] = -1;
                    continue;
                }
                all[kk][r] = time_one(&c, kk, b, &sums[kk], &n);
                if (all[kk][r] >= 0 && n != count)
                    die("wrong element count");
            }
        }
        for (int k = 0; k < NDECODERS; k++) {
            if (all[k][0] < 0)
                continue;
            memcpy(secs, all[k], (size_t)reps * sizeof(*secs));
            qsort(secs, (size_t)reps, sizeof(*secs), cmp_double);
            mbs[k] = (double)b->len / secs[reps / 2] / 1e6;
            best[k] = (double)b->len / secs[0] / 1e6;
            if (c.use[LOSSD] &&
                memcmp(&sums[k], &sums[LOSSD], sizeof(double)) != 0) {
                fprintf(stderr, "bench_json: %s: %s sums to %a, lossd %a\n",
                        b->name, names[k], sums[k], sums[LOSSD]);
                exit(EXIT_FAILURE);
            }
            printf("%-7s %-12s %9zu bytes  median %7.1f MB/s  best %7.1f MB/s"
                   "  (sum %.17g)\n",
                   b->name, names[k], b->len, mbs[k], best[k], sums[k]);
        }
        /* per repetition, lossd's time over the other's: the two ran
           within the same second, so load that comes and goes moves both */
        for (int k = SIMDJSON; k < NDECODERS; k++) {
            double mid, lo, hi;

            if (mbs[LOSSD] <= 0 || mbs[k] <= 0)
                continue;
            for (int r = 0; r < reps; r++)
                secs[r] = all[k][r] / all[LOSSD][r];
            spread(secs, reps, &mid, &lo, &hi);
            printf("%-7s lossd/%-12s median %.2f  best %.2f  "
                   "per repetition: median %.2f, %.2f-%.2f\n",
                   b->name, names[k], mbs[LOSSD] / mbs[k],
                   best[LOSSD] / best[k], mid, lo, hi);
        }
    }
    for (int bi = 0; bi < 2; bi++)
        free(bodies[bi].buf);
#if HAVE_SIMDJSON
    bench_simdjson_free(c.sj);
#endif
    proto_decoder_free(c.d);
    free(secs);
    return 0;
}

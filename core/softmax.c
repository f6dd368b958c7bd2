/*
 * softmax.c - the kernels of softmax.h.
 *
 * A row is one (outer, inner) position: one softmax, or one sample of a class
 * loss. Work is cut into blocks of whole rows (rows_per_block()); a block
 * writes only the outputs of its own rows, so results are bit-identical for
 * any executor.
 *
 * When inner == 1 a row is contiguous and is handled alone. Otherwise classes
 * are `inner` apart, and a tile of up to TILE neighbouring rows of one outer
 * index is handled together: every pass over the classes then reads runs of
 * TILE contiguous doubles instead of one double per cache line.
 *
 * Every sum over classes is taken in loss_sum()'s order (sum.h): plain
 * contiguous sums call loss_sum(), the others go through sum_cols(), which
 * builds the same tree. A row therefore gives the same bits whether it was
 * contiguous or strided, with or without a tile around it. exp and log go
 * through loss_vexp()/loss_vlog() (vmath.h), whose result for an element does
 * not depend on where it sits in the array, so that holds for them too.
 *
 * Each pass over a tile is written twice: once for a contiguous row (stride
 * 1, which the compiler vectorises along the classes) and once for a strided
 * tile (vectorised along the tile's width). Both do the same operations on
 * every element.
 */
#include "softmax.h"

#include <assert.h>
#include <emmintrin.h>
#include <math.h>

#include "sum.h"
#include "vmath.h"

/* Rows of one outer index handled together in the strided layout. */
#define TILE 64

/*
 * Elements a block should hold at least: rows of a few classes are cheap, so
 * blocks of LOSS_BLOCK_ROWS of them would cost more to hand to a thread than
 * to compute.
 */
#define BLOCK_MIN_ELEMS 16384

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* A multiple of LOSS_BLOCK_ROWS that depends on the shape alone. */
static size_t rows_per_block(const struct loss_softmax_shape *s)
{
    size_t c = s->classes ? s->classes : 1;
    size_t k = BLOCK_MIN_ELEMS / LOSS_BLOCK_ROWS / c;

    return LOSS_BLOCK_ROWS * (k ? k : 1);
}

/*
 * `width` consecutive rows of one outer index, starting at row `row`
 * (= o * inner + j); class c of its j-th row is at base + c * inner + j.
 */
struct tile {
    size_t row;
    size_t base;
    size_t width;
};

/*
 * Cuts rows [*row, end) into tiles, one per call; false when none is left.
 * With inner == 1 every tile is a single contiguous row.
 */
static bool tile_next(const struct loss_softmax_shape *s, size_t *row,
                      size_t end, struct tile *t)
{
    size_t o, j;

    if (*row >= end)
        return false;
    o = *row / s->inner;
    j = *row % s->inner;
    t->row = *row;
    t->base = o * s->classes * s->inner + j;
    t->width = min_size(min_size(end - *row, s->inner - j), TILE);
    *row += t->width;
    return true;
}

/*
 * Loops that must be fast when built with -O2 (meson's debugoptimized)
 * handle four elements per iteration, loaded into locals before anything is
 * stored: GCC's -O2 cost model vectorises only loops whose vector form needs
 * no remainder and no aliasing check, and this form is one. Every element of
 * the remainder gets the same operations, so positions never change bits.
 *
 * y[i] = x[i] - a - b for i < n.
 */
static void shift_row(size_t n, const double *x, double a, double b, double *y)
{
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {
        double v0 = x[i] - a - b, v1 = x[i + 1] - a - b;
        double v2 = x[i + 2] - a - b, v3 = x[i + 3] - a - b;

        y[i] = v0;
        y[i + 1] = v1;
        y[i + 2] = v2;
        y[i + 3] = v3;
    }
    for (; i < n; i++)
        y[i] = x[i] - a - b;
}

/* y[j] = x[j] - a[j] - b[j] for j < n. */
static void shift_cols(size_t n, const double *x, const double *a,
                       const double *b, double *y)
{
    size_t j = 0;

    for (; j + 4 <= n; j += 4) {
        double v0 = x[j] - a[j] - b[j], v1 = x[j + 1] - a[j + 1] - b[j + 1];
        double v2 = x[j + 2] - a[j + 2] - b[j + 2];
        double v3 = x[j + 3] - a[j + 3] - b[j + 3];

        y[j] = v0;
        y[j + 1] = v1;
        y[j + 2] = v2;
        y[j + 3] = v3;
    }
    for (; j < n; j++)
        y[j] = x[j] - a[j] - b[j];
}

/* Doubles of the chunk buffers below: 2 KiB of stack. */
#define CHUNK 256

/*
 * Classes per chunk for a tile `width` rows wide: as many as fill CHUNK, a
 * multiple of 4 (the accumulators of sum_leaf() cycle through 4), and at
 * least 4 since width <= TILE = CHUNK / 4.
 */
static size_t chunk_classes(size_t width)
{
    return CHUNK / width / 4 * 4;
}

/*
 * buf[q * width + j] = x - m[j] - ls[j] for class c0 + q of row j of the tile
 * at x, q < cnt (cnt * width <= CHUNK): log_softmax given the row statistics,
 * or x - m when ls is all zeros (subtracting +0 changes no bit). Then exp of
 * it when take_exp: the softmax, or exp(x - m).
 */
static void tile_chunk(const double *x, size_t stride, size_t width, size_t c0,
                       size_t cnt, const double *m, const double *ls,
                       bool take_exp, double *buf)
{
    if (stride == 1)
        shift_row(cnt, x + c0, m[0], ls[0], buf);
    else
        for (size_t q = 0; q < cnt; q++)
            shift_cols(width, x + (c0 + q) * stride, m, ls, buf + q * width);
    if (take_exp)
        loss_vexp(buf, buf, cnt * width);
}

/*
 * The summand of sum_cols() for class c, row j, at offset k (= c * stride +
 * j): L(x[k]) * T(y[k]) * w[c], where L(v) = v - m[j] - ls[j] when m is set
 * (log_softmax from the row statistics, as tile_chunk() computes it) and v
 * otherwise, and T(y) = ya * y + yb when affine (smoothed probability
 * targets), y otherwise. A NULL operand stands for 1; the products by 1 are
 * exact, so an omitted factor changes no bit.
 *
 * With take_exp the summand is exp(x[k] - m[j]) instead (ls all zeros; y and
 * w unused), evaluated by loss_vexp() a chunk at a time.
 */
struct terms {
    const double *x;
    const double *m, *ls;
    bool take_exp;
    const double *y;
    const double *w;
    bool affine;
    double ya, yb;
};

static double term(const struct terms *t, size_t c, size_t k, size_t j)
{
    double v = t->x ? t->x[k] : 1.0;

    if (t->m)
        v = v - t->m[j] - t->ls[j];
    if (t->y)
        v *= t->affine ? t->ya * t->y[k] + t->yb : t->y[k];
    if (t->w)
        v *= t->w[c];
    return v;
}

/* buf[q * width + j] = the summand of class c0 + q, row j, for q < cnt. */
static void terms_chunk(const struct terms *t, size_t c0, size_t cnt,
                        size_t stride, size_t width, double *buf)
{
    if (t->take_exp) {
        tile_chunk(t->x, stride, width, c0, cnt, t->m, t->ls, true, buf);
        return;
    }
    for (size_t q = 0; q < cnt; q++)
        for (size_t j = 0; j < width; j++)
            buf[q * width + j] = term(t, c0 + q, (c0 + q) * stride + j, j);
}

/*
 * One leaf of sum_cols(): classes [c0, c0 + n), n <= LOSS_SUM_BLOCK, their
 * summands made a chunk at a time. Chunks hold a multiple of 4 classes, so
 * class c0 + i still goes to accumulator i % 4 and the last n % 4 classes to
 * the first one, in order, as in sum.c.
 */
static void sum_leaf(const struct terms *t, size_t c0, size_t n, size_t stride,
                     size_t width, double *ret)
{
    double s0[TILE], s1[TILE], s2[TILE], s3[TILE], buf[CHUNK];
    size_t g = chunk_classes(width);

    for (size_t j = 0; j < width; j++)
        s0[j] = s1[j] = s2[j] = s3[j] = 0.0;
    for (size_t cg = 0; cg < n; cg += g) {
        size_t cnt = min_size(g, n - cg), q = 0;

        terms_chunk(t, c0 + cg, cnt, stride, width, buf);
        if (width == 1) {
            double a0 = s0[0], a1 = s1[0], a2 = s2[0], a3 = s3[0];

            for (; q + 4 <= cnt; q += 4) {
                a0 += buf[q];
                a1 += buf[q + 1];
                a2 += buf[q + 2];
                a3 += buf[q + 3];
            }
            for (; q < cnt; q++)
                a0 += buf[q];
            s0[0] = a0;
            s1[0] = a1;
            s2[0] = a2;
            s3[0] = a3;
            continue;
        }
        for (; q + 4 <= cnt; q += 4)
            for (size_t j = 0; j < width; j++) {
                s0[j] += buf[q * width + j];
                s1[j] += buf[(q + 1) * width + j];
                s2[j] += buf[(q + 2) * width + j];
                s3[j] += buf[(q + 3) * width + j];
            }
        for (; q < cnt; q++)
            for (size_t j = 0; j < width; j++)
                s0[j] += buf[q * width + j];
    }
    for (size_t j = 0; j < width; j++)
        ret[j] = (s0[j] + s1[j]) + (s2[j] + s3[j]);
}

/*
 * ret[j] = sum over classes [c0, c0 + n) of the summands of row j for every
 * j < width (<= TILE), each one added in exactly the order
 * loss_sum_strided() would use on that column (see sum.c): four interleaved
 * accumulators within leaves of LOSS_SUM_BLOCK, leaves combined pairwise,
 * split at a leaf boundary. Recursion depth is log2(n / LOSS_SUM_BLOCK).
 */
static void sum_cols(const struct terms *t, size_t c0, size_t n, size_t stride,
                     size_t width, double *ret)
{
    double right[TILE];
    size_t half;

    if (n <= LOSS_SUM_BLOCK) {
        sum_leaf(t, c0, n, stride, width, ret);
        return;
    }
    half = (n / LOSS_SUM_BLOCK + 1) / 2 * LOSS_SUM_BLOCK;
    sum_cols(t, c0, half, stride, width, ret);
    sum_cols(t, c0 + half, n - half, stride, width, right);
    for (size_t j = 0; j < width; j++)
        ret[j] += right[j];
}

/*
 * The maximum of a contiguous row, NaN skipped (a NaN never compares
 * greater). Four running maxima, in two SSE2 registers (baseline x86-64):
 * _mm_max_pd(v, m) is v > m ? v : m in each lane, the scalar rule. A zero
 * maximum is returned as +0. The maximum of a set is one value but for the
 * sign of a zero, so the result does not depend on the order of the compares
 * and equals tile_max()'s, which compares in class order.
 */
static double row_max(size_t n, const double *x)
{
    __m128d lo = _mm_set1_pd(-INFINITY), hi = lo;
    double m[4], m0;
    size_t c = 0;

    for (; c + 4 <= n; c += 4) {
        lo = _mm_max_pd(_mm_loadu_pd(x + c), lo);
        hi = _mm_max_pd(_mm_loadu_pd(x + c + 2), hi);
    }
    _mm_storeu_pd(m, lo);
    _mm_storeu_pd(m + 2, hi);
    m0 = m[0];
    for (size_t k = 1; k < 4; k++)
        m0 = m[k] > m0 ? m[k] : m0;
    for (; c < n; c++)
        m0 = x[c] > m0 ? x[c] : m0;
    return m0 == 0.0 ? 0.0 : m0;
}

/*
 * row_max() of each of `width` rows whose classes are `stride` apart; a
 * contiguous row when stride == 1.
 */
static void tile_max(size_t n, size_t stride, size_t width, const double *x,
                     double *m)
{
    if (stride == 1) {
        m[0] = row_max(n, x);
        return;
    }
    for (size_t j = 0; j < width; j++)
        m[j] = -INFINITY;
    for (size_t c = 0; c < n; c++) {
        const double *xc = x + c * stride;

        for (size_t j = 0; j < width; j++)
            m[j] = xc[j] > m[j] ? xc[j] : m[j];
    }
    for (size_t j = 0; j < width; j++)
        m[j] = m[j] == 0.0 ? 0.0 : m[j];
}

/*
 * ls[j] = log(s[j]) for j < width. The array is padded with ones to whole
 * vectors: loss_vlog() would pad with zeros, and log(0) takes libmvec's slow
 * special-value path.
 */
static void tile_vlog(size_t width, const double *s, double *ls)
{
    double buf[TILE + 4];
    size_t j = 0;

    buf[0] = 1.0; /* width > 0, but the compiler cannot know */
    for (; j < width; j++)
        buf[j] = s[j];
    for (; j % 4 != 0; j++)
        buf[j] = 1.0;
    loss_vlog(buf, buf, j);
    for (j = 0; j < width; j++)
        ls[j] = buf[j];
}

/* m or ls for a shift that subtracts nothing (x - +0 is x, bit for bit). */
static const double zeros[TILE];

/*
 * y = exp(y) over a tile, in as few calls as the layout allows: a contiguous
 * row, or a tile spanning all of `inner` (width == stride), is one run.
 */
static void tile_vexp(size_t n, size_t stride, size_t width, double *y)
{
    if (width == stride) {
        loss_vexp(y, y, n * width);
        return;
    }
    for (size_t c = 0; c < n; c++)
        loss_vexp(y + c * stride, y + c * stride, width);
}

/* out = x - m - ls over a tile (the operations of tile_chunk()). */
static void tile_shift(size_t n, size_t stride, size_t width, const double *x,
                       const double *m, const double *ls, double *out)
{
    if (stride == 1) {
        shift_row(n, x, m[0], ls[0], out);
        return;
    }
    for (size_t c = 0; c < n; c++)
        shift_cols(width, x + c * stride, m, ls, out + c * stride);
}

/* out *= r over a tile: softmax, given e in out and r = 1 / s. */
static void tile_scale(size_t n, size_t stride, size_t width, const double *r,
                       double *out)
{
    if (stride == 1) {
        double r0 = r[0];

        for (size_t c = 0; c < n; c++)
            out[c] *= r0;
        return;
    }
    for (size_t c = 0; c < n; c++)
        for (size_t j = 0; j < width; j++)
            out[c * stride + j] *= r[j];
}

/*
 * The statistics of a softmax over a tile: m = max, s = sum exp(x - m) in
 * loss_sum()'s order, exp(x - m) evaluated a chunk at a time and not kept.
 * Edge values come out of the formula itself: +inf gives m = inf and
 * inf - inf = NaN in s; an all -inf row gives -inf - -inf = NaN; NaN input is
 * skipped by the max but poisons s.
 */
static void tile_stats(size_t n, size_t stride, size_t width, const double *x,
                       double *m, double *s)
{
    struct terms e = {.x = x, .m = m, .ls = zeros, .take_exp = true};

    tile_max(n, stride, width, x, m);
    sum_cols(&e, 0, n, stride, width, s);
}

/*
 * (log_)softmax of one tile, whichever the layout: log_softmax = x - m -
 * log(s); softmax = exp(x - m) * (1 / s), exp(x - m) written to out first.
 */
static void softmax_any(const struct loss_softmax_shape *s,
                        const struct tile *t, bool take_log, const double *x,
                        double *out)
{
    size_t n = s->classes, stride = s->inner, w = t->width;
    double m[TILE], sum[TILE];

    x += t->base;
    out += t->base;
    if (take_log) {
        tile_stats(n, stride, w, x, m, sum);
        tile_vlog(w, sum, sum);
        tile_shift(n, stride, w, x, m, sum, out);
        return;
    }
    tile_max(n, stride, w, x, m);
    tile_shift(n, stride, w, x, m, zeros, out);
    tile_vexp(n, stride, w, out);
    if (stride == 1) {
        sum[0] = loss_sum(out, n);
    } else {
        struct terms e = {.x = out};

        sum_cols(&e, 0, n, stride, w, sum);
    }
    for (size_t j = 0; j < w; j++)
        sum[j] = 1.0 / sum[j];
    tile_scale(n, stride, w, sum, out);
}

/*
 * log_softmax backward over a tile: grad = g - exp(out) * s. exp(out) is
 * taken a chunk at a time into a buffer, so grad may be g itself.
 */
static void log_back_tile(size_t n, size_t stride, size_t width,
                          const double *s, const double *out, const double *g,
                          double *grad)
{
    double e[CHUNK];
    size_t cg = chunk_classes(width);

    for (size_t c0 = 0; c0 < n; c0 += cg) {
        size_t cnt = min_size(cg, n - c0);

        tile_chunk(out, stride, width, c0, cnt, zeros, zeros, true, e);
        for (size_t q = 0; q < cnt; q++) {
            size_t k = (c0 + q) * stride;

            for (size_t j = 0; j < width; j++)
                grad[k + j] = g[k + j] - e[q * width + j] * s[j];
        }
    }
}

/*
 * Backward of `width` rows (classes `stride` apart):
 *   log_softmax: grad = g - exp(out) * sum(g)
 *   softmax:     grad = out * (g - sum(g * out))
 * All sums are taken before grad is written.
 */
static void softmax_back_tile(size_t n, size_t stride, size_t width,
                              bool take_log, const double *out, const double *g,
                              double *grad)
{
    double s[TILE];

    if (take_log) {
        if (stride == 1) {
            s[0] = loss_sum(g, n);
        } else {
            struct terms sum = {.x = g};

            sum_cols(&sum, 0, n, stride, width, s);
        }
        log_back_tile(n, stride, width, s, out, g, grad);
    } else {
        struct terms sum = {.x = g, .y = out};

        sum_cols(&sum, 0, n, stride, width, s);
        if (stride == 1) {
            for (size_t c = 0; c < n; c++)
                grad[c] = out[c] * (g[c] - s[0]);
            return;
        }
        for (size_t c = 0; c < n; c++)
            for (size_t j = 0; j < width; j++) {
                size_t k = c * stride + j;

                grad[k] = out[k] * (g[k] - s[j]);
            }
    }
}

struct softmax_job {
    const struct loss_softmax_shape *shape;
    bool take_log;
    const double *x; /* forward: input; backward: forward output */
    const double *g; /* backward only */
    double *out;     /* forward: output; backward: grad */
    size_t rows;
    size_t per;
};

static void softmax_forward_block(void *arg, size_t block, size_t slot)
{
    const struct softmax_job *job = arg;
    size_t row = block * job->per;
    size_t end = min_size(row + job->per, job->rows);
    struct tile t;

    (void)slot;
    while (tile_next(job->shape, &row, end, &t))
        softmax_any(job->shape, &t, job->take_log, job->x, job->out);
}

static void softmax_backward_block(void *arg, size_t block, size_t slot)
{
    const struct softmax_job *job = arg;
    const struct loss_softmax_shape *s = job->shape;
    size_t row = block * job->per;
    size_t end = min_size(row + job->per, job->rows);
    struct tile t;

    (void)slot;
    while (tile_next(s, &row, end, &t))
        softmax_back_tile(s->classes, s->inner, t.width, job->take_log,
                          job->x + t.base, job->g + t.base, job->out + t.base);
}

static void softmax_run(const struct loss_softmax_shape *s, bool take_log,
                        const double *x, const double *g, double *out,
                        loss_block_fn fn, const struct loss_exec *ex)
{
    struct softmax_job job = {
        .shape = s,
        .take_log = take_log,
        .x = x,
        .g = g,
        .out = out,
        .rows = s->outer * s->inner,
        .per = rows_per_block(s),
    };

    if (s->classes == 0 || job.rows == 0)
        return;
    loss_exec_run(ex, loss_blocks(job.rows, job.per), fn, &job);
}

void loss_softmax_forward(const struct loss_softmax_shape *s, bool log,
                          const double *x, double *out,
                          const struct loss_exec *ex)
{
    softmax_run(s, log, x, NULL, out, softmax_forward_block, ex);
}

void loss_softmax_backward(const struct loss_softmax_shape *s, bool log,
                           const double *out, const double *g, double *grad,
                           const struct loss_exec *ex)
{
    softmax_run(s, log, out, g, grad, softmax_backward_block, ex);
}

/*
 * Class losses. One job serves forward and backward; eps is the effective
 * smoothing (0 for nll, which has none, and for C == 0).
 *
 * cross_entropy keeps per row, in lsm, only ls = log(s) (at lsm[row]) and m
 * (at lsm[rows + row], when C >= 2 leaves room for it; with one class
 * backward takes the max again, one compare). Backward rebuilds log_softmax
 * as x - m - ls and the softmax as its exp, chunk by chunk: one vector exp
 * per element costs less than storing outer*C*inner doubles and reading
 * them back (and, in a freshly allocated lsm, faulting their pages in), and
 * the rest of lsm is never touched.
 */
struct class_job {
    const struct loss_class_args *a;
    double eps;
    double wsum; /* sum of the class weights (C without weights) */
    size_t rows;
    size_t per;
    /* forward */
    double *out;
    double *count_w;
    double *lsm;
    /* backward */
    const double *clsm;
    const double *g;
    size_t gstride;
    double *grad_input;
    double *grad_target;
};

/* The terms of T(target) for a tile at base: smoothed when eps > 0. */
static struct terms prob_terms(const struct class_job *job, size_t base)
{
    const struct loss_class_args *a = job->a;
    struct terms t = {
        .y = a->target + base,
        .w = a->weight,
        .affine = job->eps > 0.0,
        .ya = 1.0 - job->eps,
        .yb = job->eps > 0.0 ? job->eps / (double)a->shape.classes : 0.0,
    };

    return t;
}

static bool is_ignored(const struct loss_class_args *a, double t)
{
    return t == a->ignore_index;
}

/* The class index of a target that is not ignored. */
static size_t class_of(const struct loss_class_args *a, double t)
{
    assert(t >= 0.0 && t < (double)a->shape.classes && t == floor(t));
    return (size_t)t;
}

/* Stores the statistics of a tile's rows (see struct class_job). */
static void stats_store(const struct class_job *job, const struct tile *t,
                        const double *m, const double *ls)
{
    size_t classes = job->a->shape.classes;

    for (size_t j = 0; classes > 0 && j < t->width; j++) {
        job->lsm[t->row + j] = ls[j];
        if (classes >= 2)
            job->lsm[job->rows + t->row + j] = m[j];
    }
}

/* Loads what stats_store() stored; x is the tile's input. */
static void stats_load(const struct class_job *job, const struct tile *t,
                       const double *x, double *m, double *ls)
{
    const struct loss_softmax_shape *s = &job->a->shape;

    if (s->classes == 0)
        return;
    for (size_t j = 0; j < t->width; j++) {
        ls[j] = job->clsm[t->row + j];
        if (s->classes >= 2)
            m[j] = job->clsm[job->rows + t->row + j];
    }
    if (s->classes < 2)
        tile_max(s->classes, s->inner, t->width, x, m);
}

/*
 * Index targets, forward, with lp the log-probabilities (terms with x, and
 * m and ls for cross_entropy; only lp's L() is used):
 *   l = (1 - eps) * (-w[t] * lp[t]) + (eps / C) * (-sum_c w_c * lp_c)
 * with the smoothing term left out entirely when eps == 0 (PyTorch does not
 * compute it, so an infinite lp elsewhere in the row cannot leak in as 0*inf).
 */
static void index_forward_tile(const struct class_job *job,
                               const struct tile *t, const struct terms *lp)
{
    const struct loss_class_args *a = job->a;
    size_t stride = a->shape.inner, classes = a->shape.classes;
    double smooth[TILE];

    if (job->eps > 0.0) {
        struct terms sum = *lp;

        sum.w = a->weight;
        sum_cols(&sum, 0, classes, stride, t->width, smooth);
    }
    for (size_t j = 0; j < t->width; j++) {
        size_t i = t->row + j, k;
        double tv = a->target[i], wt, l;

        if (is_ignored(a, tv)) {
            job->out[i] = 0.0;
            if (job->count_w)
                job->count_w[i] = 0.0;
            continue;
        }
        k = class_of(a, tv);
        wt = a->weight ? a->weight[k] : 1.0;
        l = -term(lp, k, k * stride + j, j) * wt;
        if (job->eps > 0.0)
            l = (1.0 - job->eps) * l +
                -smooth[j] * (job->eps / (double)classes);
        job->out[i] = l;
        if (job->count_w)
            job->count_w[i] = wt;
    }
}

/* Probability targets, forward: l = -sum_c lp_c * T_c * w_c; count 1. */
static void prob_forward_tile(const struct class_job *job, const struct tile *t,
                              const struct terms *lp)
{
    const struct loss_class_args *a = job->a;
    struct terms sum = prob_terms(job, t->base);
    double s[TILE];

    sum.x = lp->x;
    sum.m = lp->m;
    sum.ls = lp->ls;
    sum_cols(&sum, 0, a->shape.classes, a->shape.inner, t->width, s);
    for (size_t j = 0; j < t->width; j++) {
        job->out[t->row + j] = -s[j];
        if (job->count_w)
            job->count_w[t->row + j] = 1.0;
    }
}

static void class_forward_block(void *arg, size_t block, size_t slot)
{
    const struct class_job *job = arg;
    const struct loss_class_args *a = job->a;
    size_t n = a->shape.classes, stride = a->shape.inner;
    size_t row = block * job->per;
    size_t end = min_size(row + job->per, job->rows);
    struct tile t;

    (void)slot;
    while (tile_next(&a->shape, &row, end, &t)) {
        double m[TILE], ls[TILE];
        struct terms lp = {.x = a->input + t.base};

        if (a->apply_log_softmax) {
            tile_stats(n, stride, t.width, lp.x, m, ls);
            tile_vlog(t.width, ls, ls);
            stats_store(job, &t, m, ls);
            lp.m = m;
            lp.ls = ls;
        }
        if (a->prob_target)
            prob_forward_tile(job, &t, &lp);
        else
            index_forward_tile(job, &t, &lp);
    }
}

/*
 * cross_entropy, index targets, backward: with
 *   q_c = (1 - eps) * w[t] * 1{c = t} + (eps / C) * w_c,
 * dx_c = g * ((sum_c q_c) * p_c - q_c), where sum_c q_c =
 * (1 - eps) * w[t] + (eps / C) * wsum and p = softmax. Written first for
 * every class as if it were not the target (q_c = (eps / C) * w_c; without
 * smoothing nothing is subtracted), then the target's element is redone.
 */
struct index_rows {
    double g[TILE], qt[TILE], qsum[TILE];
    size_t cls[TILE];
    bool skip[TILE];
};

/* dx for classes [c0, c0 + cnt) of a tile, p[q * width + j] the softmax. */
static void ce_index_chunk(const struct class_job *job,
                           const struct index_rows *r, size_t width, size_t c0,
                           size_t cnt, const double *p, double *dx)
{
    const struct loss_class_args *a = job->a;
    const double *wc = a->weight;
    size_t stride = a->shape.inner;
    bool smooth = job->eps > 0.0;
    double e = job->eps / (double)a->shape.classes;

    if (stride == 1) {
        double g0 = r->g[0], q0 = r->qsum[0];

        dx += c0;
        if (!smooth) {
            size_t q = 0;

            /* four at a time for -O2, as shift_row() */
            for (; q + 4 <= cnt; q += 4) {
                double v0 = g0 * (q0 * p[q]), v1 = g0 * (q0 * p[q + 1]);
                double v2 = g0 * (q0 * p[q + 2]), v3 = g0 * (q0 * p[q + 3]);

                dx[q] = v0;
                dx[q + 1] = v1;
                dx[q + 2] = v2;
                dx[q + 3] = v3;
            }
            for (; q < cnt; q++)
                dx[q] = g0 * (q0 * p[q]);
        } else if (wc)
            for (size_t q = 0; q < cnt; q++)
                dx[q] = g0 * (q0 * p[q] - e * wc[c0 + q]);
        else
            for (size_t q = 0; q < cnt; q++)
                dx[q] = g0 * (q0 * p[q] - e);
        dx -= c0;
    } else {
        for (size_t q = 0; q < cnt; q++) {
            size_t c = c0 + q;
            double ec = smooth ? e * (wc ? wc[c] : 1.0) : 0.0;

            for (size_t j = 0; j < width; j++)
                dx[c * stride + j] =
                    r->g[j] * (r->qsum[j] * p[q * width + j] - ec);
        }
    }
    for (size_t j = 0; j < width; j++) {
        size_t c = r->cls[j], k = c * stride + j;
        double pt;

        if (r->skip[j]) {
            for (size_t q = 0; q < cnt; q++)
                dx[(c0 + q) * stride + j] = 0.0;
            continue;
        }
        if (c < c0 || c - c0 >= cnt)
            continue;
        pt = p[(c - c0) * width + j];
        if (smooth)
            dx[k] = r->g[j] *
                    (r->qsum[j] * pt - (r->qt[j] + e * (wc ? wc[c] : 1.0)));
        else
            dx[k] = r->g[j] * (r->qsum[j] * pt - r->qt[j]);
    }
}

/*
 * Index targets, backward: cross_entropy as above; nll: dx_t = -w[t] * g,
 * else 0. Ignored rows get exact zeros, even where the row's softmax is NaN.
 */
static void index_backward_tile(const struct class_job *job,
                                const struct tile *t)
{
    const struct loss_class_args *a = job->a;
    size_t stride = a->shape.inner, classes = a->shape.classes, w = t->width;
    struct index_rows r;
    double *dx = job->grad_input + t->base;
    bool any = false;

    for (size_t j = 0; j < w; j++) {
        size_t i = t->row + j;
        double tv = a->target[i];

        r.g[j] = r.qt[j] = r.qsum[j] = 0.0;
        r.cls[j] = 0;
        r.skip[j] = is_ignored(a, tv);
        if (r.skip[j])
            continue;
        any = true;
        r.cls[j] = class_of(a, tv);
        r.g[j] = job->g[i * job->gstride];
        r.qt[j] = a->weight ? a->weight[r.cls[j]] : 1.0;
        if (a->apply_log_softmax) {
            r.qt[j] *= 1.0 - job->eps;
            r.qsum[j] = job->eps > 0.0
                            ? r.qt[j] + job->eps / (double)classes * job->wsum
                            : r.qt[j];
        }
    }
    if (!a->apply_log_softmax || !any) {
        /* nll, or every row ignored: zeros but at the targets */
        for (size_t c = 0; c < classes; c++)
            for (size_t j = 0; j < w; j++)
                dx[c * stride + j] = 0.0;
        for (size_t j = 0; j < w; j++)
            if (!r.skip[j])
                dx[r.cls[j] * stride + j] = -r.qt[j] * r.g[j];
        return;
    }
    {
        const double *x = a->input + t->base;
        double m[TILE], ls[TILE], p[CHUNK];
        size_t cg = chunk_classes(w);

        stats_load(job, t, x, m, ls);
        for (size_t c0 = 0; c0 < classes; c0 += cg) {
            size_t cnt = min_size(cg, classes - c0);

            tile_chunk(x, stride, w, c0, cnt, m, ls, true, p);
            ce_index_chunk(job, &r, w, c0, cnt, p, dx);
        }
    }
}

/*
 * Probability targets, backward, with T and w as in forward:
 *   cross_entropy: dx_c = g * ((sum_c w_c T_c) * softmax_c - w_c T_c)
 *   nll (input already log-probabilities): dx_c = -g * w_c T_c
 *   dy_c = -g * w_c * lp_c * (1 - eps)
 * lp (and its exp) is made a chunk at a time.
 */
static void prob_backward_tile(const struct class_job *job,
                               const struct tile *t)
{
    const struct loss_class_args *a = job->a;
    size_t stride = a->shape.inner, classes = a->shape.classes, w = t->width;
    struct terms wt = prob_terms(job, t->base);
    const double *x = a->input + t->base;
    double gi[TILE], swt[TILE], m[TILE], ls[TILE], lp[CHUNK], e[CHUNK];
    double *dx = job->grad_input ? job->grad_input + t->base : NULL;
    double *dy = job->grad_target ? job->grad_target + t->base : NULL;
    bool ce = a->apply_log_softmax;
    size_t cg = chunk_classes(w);

    for (size_t j = 0; j < w; j++) {
        gi[j] = job->g[(t->row + j) * job->gstride];
        swt[j] = m[j] = ls[j] = 0.0;
    }
    if (dx && ce)
        sum_cols(&wt, 0, classes, stride, w, swt);
    if (ce)
        stats_load(job, t, x, m, ls);
    for (size_t c0 = 0; c0 < classes; c0 += cg) {
        size_t cnt = min_size(cg, classes - c0);

        tile_chunk(x, stride, w, c0, cnt, m, ls, false, lp);
        if (dx && ce)
            loss_vexp(lp, e, cnt * w);
        for (size_t q = 0; q < cnt; q++) {
            size_t c = c0 + q;
            double wc = a->weight ? a->weight[c] : 1.0;

            for (size_t j = 0; j < w; j++) {
                size_t k = c * stride + j, b = q * w + j;

                if (dx) {
                    double tq = term(&wt, c, k, j);

                    dx[k] = ce ? gi[j] * (swt[j] * e[b] - tq) : -gi[j] * tq;
                }
                if (dy)
                    dy[k] = -gi[j] * wc * lp[b] * wt.ya;
            }
        }
    }
}

static void class_backward_block(void *arg, size_t block, size_t slot)
{
    const struct class_job *job = arg;
    const struct loss_class_args *a = job->a;
    size_t row = block * job->per;
    size_t end = min_size(row + job->per, job->rows);
    struct tile t;

    (void)slot;
    while (tile_next(&a->shape, &row, end, &t)) {
        if (a->prob_target)
            prob_backward_tile(job, &t);
        else if (job->grad_input)
            index_backward_tile(job, &t);
    }
}

static void class_job_init(struct class_job *job,
                           const struct loss_class_args *a)
{
    size_t classes = a->shape.classes;

    *job = (struct class_job){
        .a = a,
        .eps = a->apply_log_softmax && classes ? a->label_smoothing : 0.0,
        .wsum = a->weight ? loss_sum(a->weight, classes) : (double)classes,
        .rows = a->shape.outer * a->shape.inner,
        .per = rows_per_block(&a->shape),
    };
}

size_t loss_class_scratch(const struct loss_class_args *a)
{
    size_t samples = a->shape.outer * a->shape.inner;

    if (!a->apply_log_softmax)
        return 0;
    /* log(s) per sample, and the row maximum when there are 2+ classes */
    return a->shape.classes >= 2 ? 2 * samples : a->shape.classes * samples;
}

void loss_class_forward(const struct loss_class_args *a, double *out,
                        double *count_w, double *lsm,
                        const struct loss_exec *ex)
{
    struct class_job job;

    assert(!a->apply_log_softmax || lsm != NULL);
    class_job_init(&job, a);
    job.out = out;
    job.count_w = count_w;
    job.lsm = lsm;
    loss_exec_run(ex, loss_blocks(job.rows, job.per), class_forward_block,
                  &job);
}

void loss_class_backward(const struct loss_class_args *a, const double *lsm,
                         const double *g, size_t gstride, double *grad_input,
                         double *grad_target, const struct loss_exec *ex)
{
    struct class_job job;

    assert(!a->apply_log_softmax || lsm != NULL);
    class_job_init(&job, a);
    job.clsm = lsm;
    job.g = g;
    job.gstride = gstride;
    job.grad_input = grad_input;
    job.grad_target = a->prob_target ? grad_target : NULL;
    if (grad_input == NULL && job.grad_target == NULL)
        return;
    loss_exec_run(ex, loss_blocks(job.rows, job.per), class_backward_block,
                  &job);
}

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
 * contiguous or strided, with or without a tile around it.
 */
#include "softmax.h"

#include <assert.h>
#include <math.h>

#include "sum.h"

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
 * The summand of sum_cols() for class c at offset k (= c * stride + j):
 * x[k] * T(y[k]) * w[c], with T(y) = ya * y + yb when affine (smoothed
 * probability targets) and y otherwise. A NULL operand stands for 1; the
 * products by 1 are exact, so an omitted factor changes no bit.
 */
struct terms {
    const double *x;
    const double *y;
    const double *w;
    bool affine;
    double ya, yb;
};

static double term(const struct terms *t, size_t c, size_t k)
{
    double v = t->x ? t->x[k] : 1.0;

    if (t->y)
        v *= t->affine ? t->ya * t->y[k] + t->yb : t->y[k];
    if (t->w)
        v *= t->w[c];
    return v;
}

/* One leaf of sum_cols(): classes [c0, c0 + n), n <= LOSS_SUM_BLOCK. */
static void sum_leaf(const struct terms *t, size_t c0, size_t n, size_t stride,
                     size_t width, double *ret)
{
    double s0[TILE], s1[TILE], s2[TILE], s3[TILE];
    size_t c = c0, end = c0 + n;

    for (size_t j = 0; j < width; j++)
        s0[j] = s1[j] = s2[j] = s3[j] = 0.0;
    for (; c + 4 <= end; c += 4) {
        for (size_t j = 0; j < width; j++) {
            s0[j] += term(t, c, c * stride + j);
            s1[j] += term(t, c + 1, (c + 1) * stride + j);
            s2[j] += term(t, c + 2, (c + 2) * stride + j);
            s3[j] += term(t, c + 3, (c + 3) * stride + j);
        }
    }
    for (; c < end; c++)
        for (size_t j = 0; j < width; j++)
            s0[j] += term(t, c, c * stride + j);
    for (size_t j = 0; j < width; j++)
        ret[j] = (s0[j] + s1[j]) + (s2[j] + s3[j]);
}

/*
 * ret[j] = sum over classes [c0, c0 + n) of term(t, c, c * stride + j) for
 * every j < width (<= TILE), each one added in exactly the order
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
 * (log_)softmax of one contiguous row. Edge values come out of the formula
 * itself: +inf gives m = inf and inf - inf = NaN in s; an all -inf row gives
 * -inf - -inf = NaN; NaN input is skipped by the max but poisons s.
 */
static void softmax_row(size_t n, bool take_log, const double *x, double *out)
{
    double m = -INFINITY, s;

    for (size_t c = 0; c < n; c++)
        if (x[c] > m)
            m = x[c];
    for (size_t c = 0; c < n; c++)
        out[c] = exp(x[c] - m);
    s = loss_sum(out, n);
    if (take_log) {
        double ls = log(s);

        for (size_t c = 0; c < n; c++)
            out[c] = x[c] - m - ls;
    } else {
        double r = 1.0 / s;

        for (size_t c = 0; c < n; c++)
            out[c] *= r;
    }
}

/* softmax_row() for `width` rows whose classes are `stride` apart. */
static void softmax_tile(size_t n, size_t stride, size_t width, bool take_log,
                         const double *x, double *out)
{
    double m[TILE], s[TILE];
    struct terms sum = {.x = out};

    for (size_t j = 0; j < width; j++)
        m[j] = -INFINITY;
    for (size_t c = 0; c < n; c++) {
        const double *xc = x + c * stride;

        for (size_t j = 0; j < width; j++)
            if (xc[j] > m[j])
                m[j] = xc[j];
    }
    for (size_t c = 0; c < n; c++)
        for (size_t j = 0; j < width; j++)
            out[c * stride + j] = exp(x[c * stride + j] - m[j]);
    sum_cols(&sum, 0, n, stride, width, s);
    if (take_log) {
        for (size_t j = 0; j < width; j++)
            s[j] = log(s[j]);
        for (size_t c = 0; c < n; c++)
            for (size_t j = 0; j < width; j++)
                out[c * stride + j] = x[c * stride + j] - m[j] - s[j];
    } else {
        for (size_t j = 0; j < width; j++)
            s[j] = 1.0 / s[j];
        for (size_t c = 0; c < n; c++)
            for (size_t j = 0; j < width; j++)
                out[c * stride + j] *= s[j];
    }
}

/* The softmax forward of one tile, whichever the layout. */
static void softmax_any(const struct loss_softmax_shape *s,
                        const struct tile *t, bool take_log, const double *x,
                        double *out)
{
    if (s->inner == 1)
        softmax_row(s->classes, take_log, x + t->base, out + t->base);
    else
        softmax_tile(s->classes, s->inner, t->width, take_log, x + t->base,
                     out + t->base);
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
        if (width == 1 && stride == 1) {
            s[0] = loss_sum(g, n);
        } else {
            struct terms sum = {.x = g};

            sum_cols(&sum, 0, n, stride, width, s);
        }
        for (size_t c = 0; c < n; c++)
            for (size_t j = 0; j < width; j++) {
                size_t k = c * stride + j;

                grad[k] = g[k] - exp(out[k]) * s[j];
            }
    } else {
        struct terms sum = {.x = g, .y = out};

        sum_cols(&sum, 0, n, stride, width, s);
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

/*
 * Index targets, forward:
 *   l = (1 - eps) * (-w[t] * lp[t]) + (eps / C) * (-sum_c w_c * lp_c)
 * with the smoothing term left out entirely when eps == 0 (PyTorch does not
 * compute it, so an infinite lp elsewhere in the row cannot leak in as 0*inf).
 */
static void index_forward_tile(const struct class_job *job,
                               const struct tile *t, const double *lp)
{
    const struct loss_class_args *a = job->a;
    size_t stride = a->shape.inner, classes = a->shape.classes;
    double smooth[TILE];

    if (job->eps > 0.0) {
        struct terms sum = {.x = lp, .w = a->weight};

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
        l = -lp[k * stride + j] * wt;
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
                              const double *lp)
{
    const struct loss_class_args *a = job->a;
    struct terms sum = prob_terms(job, t->base);
    double s[TILE];

    sum.x = lp;
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
    size_t row = block * job->per;
    size_t end = min_size(row + job->per, job->rows);
    struct tile t;

    (void)slot;
    while (tile_next(&a->shape, &row, end, &t)) {
        const double *lp = a->input + t.base;

        if (a->apply_log_softmax) {
            softmax_any(&a->shape, &t, true, a->input, job->lsm);
            lp = job->lsm + t.base;
        }
        if (a->prob_target)
            prob_forward_tile(job, &t, lp);
        else
            index_forward_tile(job, &t, lp);
    }
}

/*
 * Index targets, backward. cross_entropy: with
 *   q_c = (1 - eps) * w[t] * 1{c = t} + (eps / C) * w_c,
 * dx_c = g * ((sum_c q_c) * softmax_c - q_c), where sum_c q_c =
 * (1 - eps) * w[t] + (eps / C) * wsum. nll: dx_t = -w[t] * g, else 0.
 * Ignored rows get exact zeros, even where the row's softmax is NaN.
 */
static void index_backward_tile(const struct class_job *job,
                                const struct tile *t, const double *lp)
{
    const struct loss_class_args *a = job->a;
    size_t stride = a->shape.inner, classes = a->shape.classes;
    double gi[TILE], qt[TILE], qsum[TILE];
    size_t cls[TILE];
    bool skip[TILE];
    double e = job->eps / (double)(classes ? classes : 1);
    double *dx = job->grad_input + t->base;

    for (size_t j = 0; j < t->width; j++) {
        size_t i = t->row + j;
        double tv = a->target[i];

        skip[j] = is_ignored(a, tv);
        if (skip[j])
            continue;
        cls[j] = class_of(a, tv);
        gi[j] = job->g[i * job->gstride];
        qt[j] = a->weight ? a->weight[cls[j]] : 1.0;
        if (a->apply_log_softmax) {
            qt[j] *= 1.0 - job->eps;
            qsum[j] = job->eps > 0.0 ? qt[j] + e * job->wsum : qt[j];
        }
    }
    for (size_t c = 0; c < classes; c++) {
        double ec = job->eps > 0.0 ? e * (a->weight ? a->weight[c] : 1.0) : 0;

        for (size_t j = 0; j < t->width; j++) {
            size_t k = c * stride + j;
            double q;

            if (skip[j]) {
                dx[k] = 0.0;
                continue;
            }
            q = c == cls[j] ? qt[j] : 0.0;
            if (!a->apply_log_softmax)
                dx[k] = c == cls[j] ? -q * gi[j] : 0.0;
            else if (job->eps > 0.0)
                dx[k] = gi[j] * (qsum[j] * exp(lp[k]) - (q + ec));
            else
                dx[k] = gi[j] * (qsum[j] * exp(lp[k]) - q);
        }
    }
}

/*
 * Probability targets, backward, with T and w as in forward:
 *   cross_entropy: dx_c = g * ((sum_c w_c T_c) * softmax_c - w_c T_c)
 *   nll (input already log-probabilities): dx_c = -g * w_c T_c
 *   dy_c = -g * w_c * lp_c * (1 - eps)
 */
static void prob_backward_tile(const struct class_job *job,
                               const struct tile *t, const double *lp)
{
    const struct loss_class_args *a = job->a;
    size_t stride = a->shape.inner, classes = a->shape.classes;
    struct terms wt = prob_terms(job, t->base);
    double gi[TILE], swt[TILE];
    double *dx = job->grad_input ? job->grad_input + t->base : NULL;
    double *dy = job->grad_target ? job->grad_target + t->base : NULL;

    for (size_t j = 0; j < t->width; j++)
        gi[j] = job->g[(t->row + j) * job->gstride];
    if (dx && a->apply_log_softmax)
        sum_cols(&wt, 0, classes, stride, t->width, swt);
    for (size_t c = 0; c < classes; c++) {
        double w = a->weight ? a->weight[c] : 1.0;

        for (size_t j = 0; j < t->width; j++) {
            size_t k = c * stride + j;

            if (dx) {
                double q = term(&wt, c, k);

                dx[k] = a->apply_log_softmax ? gi[j] * (swt[j] * exp(lp[k]) - q)
                                             : -gi[j] * q;
            }
            if (dy)
                dy[k] = -gi[j] * w * lp[k] * wt.ya;
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
        const double *src = a->apply_log_softmax ? job->clsm : a->input;

        if (a->prob_target)
            prob_backward_tile(job, &t, src + t.base);
        else if (job->grad_input)
            index_backward_tile(job, &t, src + t.base);
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

/*
 * pointwise.c - the element-wise losses of pointwise.h.
 *
 * Every formula below follows the operation order of PyTorch 1.13's CPU
 * kernels (or, for the composite losses l1 and kl_div, of the autograd graph
 * they build), so results agree with it to a few ulps and the signs of zeros
 * and the NaNs of its edge cases are the same.
 *
 * Work is cut into blocks of PW_BLOCK loss elements, a constant, and every
 * element is computed on its own: a block writes only its slice of the
 * output (or of the linear-indexed scratch), so results do not depend on the
 * executor. Gradients of a broadcast operand are first written per loss
 * element to scratch and then summed back serially by tensor_reduce_to_a(),
 * whose order of additions depends on the shapes alone.
 */
#include "pointwise.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "loss.h"

/* Loss elements per executor block; independent of the number of threads. */
#define PW_BLOCK ((size_t)64 * 1024)

/* Elements gathered on the stack at a time when an operand is broadcast. */
#define PW_CHUNK 256

/* BCE's log clamp (PyTorch's -100). */
#define PW_LOG_MIN (-100.0)

/* BCE's gradient EPSILON is a float even in float64: 9.999999960041972e-13. */
#define PW_BCE_EPS ((double)1e-12f)

#define PW_INLINE static inline __attribute__((always_inline))

/* One forward or backward pass over the loss elements. */
struct pw_job {
    const struct loss_pointwise_args *a;
    /* forward: out is not NULL */
    double *out;
    atomic_uint warn;
    /* backward: linear-indexed destinations (bc->numel), each may be NULL */
    const double *g;
    size_t gstride;
    double *gx;
    double *gy;
    /* operand i of the loss is operand element i (no iterator needed) */
    bool dense_x, dense_y, dense_w, dense_pw;
};

/*
 * True when an operand with element strides `stride` into bc is laid out like
 * the broadcast shape, so loss element i is operand element i (same shape, or
 * the same dims behind leading 1s). Such an operand has bc->numel elements.
 */
static bool pw_dense(const struct tensor_bcast *bc, const size_t *stride)
{
    size_t expect = 1;

    for (size_t d = bc->ndim; d-- > 0;) {
        if (bc->shape[d] != 1 && stride[d] != expect)
            return false;
        expect *= bc->shape[d];
    }
    return true;
}

/*
 * Elements of the operand with strides `stride` into bc: its broadcast
 * dimensions have stride 0. A dimension whose stride is 0 only because a later
 * dimension of the operand is 0 is skipped too, harmlessly: the product is 0.
 */
static size_t pw_operand_numel(const struct tensor_bcast *bc,
                               const size_t *stride)
{
    size_t n = 1;

    for (size_t d = 0; d < bc->ndim; d++)
        if (stride[d] != 0)
            n *= bc->shape[d];
    return n;
}

/* bc with its operands exchanged, so tensor_reduce_to_a() reduces to b. */
static void pw_bcast_swap(const struct tensor_bcast *bc,
                          struct tensor_bcast *ret)
{
    *ret = *bc;
    memcpy(ret->astride, bc->bstride, sizeof(ret->astride));
    memcpy(ret->bstride, bc->astride, sizeof(ret->bstride));
    ret->a_is_full = bc->b_is_full;
    ret->b_is_full = bc->a_is_full;
}

/* out[i] *= w[i]: PyTorch applies weights as a separate multiplication. */
static void pw_scale(double *restrict out, const double *restrict w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] *= w[i];
}

/*
 * PyTorch's sign as used by abs' backward: 0 for 0 and for NaN. Written as a
 * difference of two selects of constants, which vectorises without
 * -ffast-math where a chained select does not.
 */
PW_INLINE double pw_sign(double d)
{
    return (d > 0.0 ? 1.0 : 0.0) - (d < 0.0 ? 1.0 : 0.0);
}

/* xlogy(t, t) of 1.13: NaN if t is NaN, 0 if t == 0, else t * log(t). */
PW_INLINE double pw_xlogx(double t)
{
    if (isnan(t))
        return t;
    return t == 0.0 ? 0.0 : t * log(t);
}

/* log(sigmoid(v)) = min(v, 0) - log1p(exp(-|v|)); NaN stays NaN. */
PW_INLINE double pw_log_sigmoid(double v)
{
    return (v < 0.0 ? v : 0.0) - log1p(exp(-fabs(v)));
}

/* Forward of n elements; returns the warnings (only BCE has one). */
static unsigned
pw_forward_span(const struct loss_pointwise_args *a, const double *restrict x,
                const double *restrict y, const double *restrict w,
                const double *restrict pw, double *restrict out, size_t n)
{
    const double p = a->param;
    bool clamped = false;

    switch (a->kind) {
    case LOSS_PW_MSE:
        for (size_t i = 0; i < n; i++) {
            double d = x[i] - y[i];

            out[i] = d * d;
        }
        break;
    case LOSS_PW_L1:
        for (size_t i = 0; i < n; i++)
            out[i] = fabs(x[i] - y[i]);
        break;
    case LOSS_PW_SMOOTH_L1:
        /* beta = 0 never takes the quadratic branch: exactly |d|. */
        for (size_t i = 0; i < n; i++) {
            double z = fabs(x[i] - y[i]);
            double quad = 0.5 * z * z / p, lin = z - 0.5 * p;

            out[i] = z < p ? quad : lin;
        }
        break;
    case LOSS_PW_HUBER:
        for (size_t i = 0; i < n; i++) {
            double z = fabs(x[i] - y[i]);
            double quad = 0.5 * z * z, lin = p * (z - 0.5 * p);

            out[i] = z < p ? quad : lin;
        }
        break;
    case LOSS_PW_BCE:
        /* 1.13 takes log(1 - p), not log1p(-p); a NaN log is not clamped. */
        for (size_t i = 0; i < n; i++) {
            double lp = log(x[i]), lq = log(1.0 - x[i]);

            /*
             * Warn only when a clamped log reaches the loss: p = 0 with
             * y = 0 (a perfect prediction) clamps log p but multiplies it
             * by 0, and is no news to the client.
             */
            if (lp < PW_LOG_MIN) {
                lp = PW_LOG_MIN;
                clamped |= y[i] != 0.0;
            }
            if (lq < PW_LOG_MIN) {
                lq = PW_LOG_MIN;
                clamped |= y[i] != 1.0;
            }
            out[i] = (y[i] - 1.0) * lq - y[i] * lp;
        }
        break;
    case LOSS_PW_BCE_LOGITS:
        /*
         * The 1.13 form with m = max(-x, 0): softplus(-x) = m + log(exp(-m)
         * + exp(-x - m)). m keeps a NaN x as NaN, as clamp_min does.
         */
        for (size_t i = 0; i < n; i++) {
            double v = x[i], t = y[i], nv = -v;
            double m = nv < 0.0 ? 0.0 : nv;
            double lse = log(exp(-m) + exp(nv - m));

            if (pw == NULL)
                out[i] = ((1.0 - t) * v + m) + lse;
            else
                out[i] = (1.0 - t) * v + ((pw[i] - 1.0) * t + 1.0) * (lse + m);
        }
        break;
    case LOSS_PW_KL_DIV:
        if (p != 0.0)
            for (size_t i = 0; i < n; i++)
                out[i] = exp(y[i]) * (y[i] - x[i]);
        else
            for (size_t i = 0; i < n; i++)
                out[i] = pw_xlogx(y[i]) - y[i] * x[i];
        break;
    }
    if (w != NULL)
        pw_scale(out, w, n);
    return clamped ? LOSS_WARN_BCE_LOG_CLAMP : 0u;
}

/*
 * Backward of n elements into gx and gy (each may be NULL), with upstream
 * gradient g[i * gs]. Always inlined so that the callers' constant gs (0 or
 * 1) gives loops the compiler can vectorise.
 */
PW_INLINE void
pw_backward_kind(const struct loss_pointwise_args *a, const double *restrict x,
                 const double *restrict y, const double *restrict w,
                 const double *restrict pw, const double *restrict g, size_t gs,
                 double *restrict gx, double *restrict gy, size_t n)
{
    const double p = a->param;

    switch (a->kind) {
    case LOSS_PW_MSE:
        /* The target's gradient is the same kernel with x and y exchanged. */
        if (gx != NULL)
            for (size_t i = 0; i < n; i++)
                gx[i] = 2.0 * (x[i] - y[i]) * g[i * gs];
        if (gy != NULL)
            for (size_t i = 0; i < n; i++)
                gy[i] = 2.0 * (y[i] - x[i]) * g[i * gs];
        break;
    case LOSS_PW_L1:
        /*
         * Composite |x - y|: sign(0) = sign(NaN) = 0, and the target gets
         * the negation, -0.0 where x == y.
         */
        if (gx != NULL)
            for (size_t i = 0; i < n; i++)
                gx[i] = g[i * gs] * pw_sign(x[i] - y[i]);
        if (gy != NULL)
            for (size_t i = 0; i < n; i++)
                gy[i] = -(g[i * gs] * pw_sign(x[i] - y[i]));
        break;
    case LOSS_PW_SMOOTH_L1:
        /*
         * The kernel tests d <= -beta first: with beta = 0 and d = 0 it gives
         * -g, and the target (same kernel, x and y exchanged) gets -g too.
         */
        for (int side = 0; side < 2; side++) {
            double *restrict o = side ? gy : gx;
            const double *restrict u = side ? y : x;
            const double *restrict v = side ? x : y;

            if (o == NULL)
                continue;
            for (size_t i = 0; i < n; i++) {
                double d = u[i] - v[i], gi = g[i * gs];
                double inner = d * gi / p;

                o[i] = d <= -p ? -gi : d >= p ? gi : inner;
            }
        }
        break;
    case LOSS_PW_HUBER:
        for (int side = 0; side < 2; side++) {
            double *restrict o = side ? gy : gx;
            const double *restrict u = side ? y : x;
            const double *restrict v = side ? x : y;

            if (o == NULL)
                continue;
            for (size_t i = 0; i < n; i++) {
                double d = u[i] - v[i], gi = g[i * gs];
                double lo = -gi * p, hi = gi * p, inner = d * gi;

                o[i] = d <= -p ? lo : d >= p ? hi : inner;
            }
        }
        break;
    case LOSS_PW_BCE:
        /*
         * Input: g (p - y) / max((1 - p) p, EPS), not the derivative of the
         * clamped forward. Target: -logit(p) g, unclamped (+-inf at 0, 1).
         */
        if (gx != NULL)
            for (size_t i = 0; i < n; i++) {
                double q = (1.0 - x[i]) * x[i];

                gx[i] = g[i * gs] * (x[i] - y[i]) /
                        (q < PW_BCE_EPS ? PW_BCE_EPS : q);
            }
        if (gy != NULL)
            for (size_t i = 0; i < n; i++)
                gy[i] = -log(x[i] / (1.0 - x[i])) * g[i * gs];
        break;
    case LOSS_PW_BCE_LOGITS:
        if (gx != NULL)
            for (size_t i = 0; i < n; i++) {
                double s = 1.0 / (1.0 + exp(-x[i]));

                if (pw == NULL) {
                    gx[i] = (s - y[i]) * g[i * gs];
                } else {
                    double t = pw[i] * y[i];

                    gx[i] = ((t + 1.0 - y[i]) * s - t) * g[i * gs];
                }
            }
        if (gy != NULL)
            for (size_t i = 0; i < n; i++) {
                if (pw == NULL)
                    gy[i] = -x[i] * g[i * gs];
                else
                    gy[i] =
                        (pw_log_sigmoid(-x[i]) - pw_log_sigmoid(x[i]) * pw[i]) *
                        g[i * gs];
            }
        break;
    case LOSS_PW_KL_DIV:
        if (gx != NULL) {
            if (p != 0.0)
                for (size_t i = 0; i < n; i++)
                    gx[i] = -(g[i * gs] * exp(y[i]));
            else
                for (size_t i = 0; i < n; i++)
                    gx[i] = -g[i * gs] * y[i];
        }
        if (gy == NULL)
            break;
        if (p != 0.0) {
            for (size_t i = 0; i < n; i++) {
                double gi = g[i * gs], e = exp(y[i]);

                gy[i] = gi * (y[i] - x[i]) * e + gi * e;
            }
            break;
        }
        /*
         * Autograd of xlogy(y, y) - y * x: xlogy's grad for its first
         * argument, xlogy(g, y) masked to 0 at y == 0; for its second, g y /
         * y (NaN at y == 0); then -g x. So g = 0 still gives NaN at y = 0
         * but 0 for y < 0.
         */
        for (size_t i = 0; i < n; i++) {
            double gi = g[i * gs], t = y[i], first;

            if (isnan(t))
                first = t;
            else if (t == 0.0 || gi == 0.0)
                first = 0.0;
            else
                first = gi * log(t);
            gy[i] = (first + gi * t / t) + -gi * x[i];
        }
        break;
    }
    if (w != NULL) {
        if (gx != NULL)
            pw_scale(gx, w, n);
        if (gy != NULL)
            pw_scale(gy, w, n);
    }
}

static void pw_backward_span(const struct loss_pointwise_args *a,
                             const double *x, const double *y, const double *w,
                             const double *pw, const double *g, size_t gs,
                             double *gx, double *gy, size_t n)
{
    if (gs == 0)
        pw_backward_kind(a, x, y, w, pw, g, 0, gx, gy, n);
    else if (gs == 1)
        pw_backward_kind(a, x, y, w, pw, g, 1, gx, gy, n);
    else
        pw_backward_kind(a, x, y, w, pw, g, gs, gx, gy, n);
}

/* Runs the job's pass over loss elements [start, start + n). */
static void pw_span(struct pw_job *job, size_t start, const double *x,
                    const double *y, const double *w, const double *pw,
                    size_t n)
{
    unsigned warn;

    if (job->out == NULL) {
        pw_backward_span(job->a, x, y, w, pw, job->g + start * job->gstride,
                         job->gstride, job->gx ? job->gx + start : NULL,
                         job->gy ? job->gy + start : NULL, n);
        return;
    }
    warn = pw_forward_span(job->a, x, y, w, pw, job->out + start, n);
    if (warn != 0)
        atomic_fetch_or_explicit(&job->warn, warn, memory_order_relaxed);
}

static void pw_block(void *arg, size_t block, size_t slot)
{
    struct pw_job *job = arg;
    const struct loss_pointwise_args *a = job->a;
    size_t numel = a->bc->numel;
    size_t start = block * PW_BLOCK;
    size_t end = numel - start < PW_BLOCK ? numel : start + PW_BLOCK;
    struct tensor_iter it, wit, pit;
    double xb[PW_CHUNK], yb[PW_CHUNK], wb[PW_CHUNK], pb[PW_CHUNK];

    (void)slot;
    if (job->dense_x && job->dense_y && job->dense_w && job->dense_pw) {
        pw_span(job, start, a->input + start, a->target + start,
                a->weight ? a->weight + start : NULL,
                a->pos_weight ? a->pos_weight + start : NULL, end - start);
        return;
    }
    if (!job->dense_x || !job->dense_y)
        tensor_iter_init(&it, a->bc, start);
    if (!job->dense_w)
        tensor_iter_init(&wit, a->weight_bc, start);
    if (!job->dense_pw)
        tensor_iter_init(&pit, a->pos_weight_bc, start);
    for (size_t i = start; i < end;) {
        size_t n = end - i < PW_CHUNK ? end - i : PW_CHUNK;
        const double *x = xb, *y = yb, *w = wb, *pw = pb;

        if (!job->dense_x || !job->dense_y)
            for (size_t k = 0; k < n; k++) {
                xb[k] = a->input[it.a];
                yb[k] = a->target[it.b];
                tensor_iter_next(&it);
            }
        if (job->dense_x)
            x = a->input + i;
        if (job->dense_y)
            y = a->target + i;
        if (a->weight == NULL)
            w = NULL;
        else if (job->dense_w)
            w = a->weight + i;
        else
            for (size_t k = 0; k < n; k++) {
                wb[k] = a->weight[wit.a];
                tensor_iter_next(&wit);
            }
        if (a->pos_weight == NULL)
            pw = NULL;
        else if (job->dense_pw)
            pw = a->pos_weight + i;
        else
            for (size_t k = 0; k < n; k++) {
                pb[k] = a->pos_weight[pit.a];
                tensor_iter_next(&pit);
            }
        pw_span(job, i, x, y, w, pw, n);
        i += n;
    }
}

/* Checks the programmer's side of the contract and fills the layout flags. */
static void pw_job_init(struct pw_job *job, const struct loss_pointwise_args *a)
{
    const struct tensor_bcast *bc = a->bc;

    assert(a->input != NULL || bc->numel == 0);
    assert(a->target != NULL || bc->numel == 0);
    assert(a->weight == NULL || a->kind == LOSS_PW_BCE ||
           a->kind == LOSS_PW_BCE_LOGITS);
    assert(a->pos_weight == NULL || a->kind == LOSS_PW_BCE_LOGITS);
    assert(a->weight == NULL || a->weight_bc->numel == bc->numel);
    assert(a->pos_weight == NULL || a->pos_weight_bc->numel == bc->numel);
    assert(a->kind != LOSS_PW_SMOOTH_L1 || a->param >= 0.0);
    assert(a->kind != LOSS_PW_HUBER || a->param > 0.0);

    memset(job, 0, sizeof(*job));
    job->a = a;
    atomic_init(&job->warn, 0u);
    job->dense_x = pw_dense(bc, bc->astride);
    job->dense_y = pw_dense(bc, bc->bstride);
    job->dense_w =
        a->weight == NULL || pw_dense(a->weight_bc, a->weight_bc->astride);
    job->dense_pw = a->pos_weight == NULL ||
                    pw_dense(a->pos_weight_bc, a->pos_weight_bc->astride);
}

unsigned loss_pointwise_forward(const struct loss_pointwise_args *a,
                                double *out, const struct loss_exec *ex)
{
    struct pw_job job;

    pw_job_init(&job, a);
    assert(out != NULL || a->bc->numel == 0);
    if (a->bc->numel == 0)
        return 0;
    job.out = out;
    loss_exec_run(ex, loss_blocks(a->bc->numel, PW_BLOCK), pw_block, &job);
    return atomic_load_explicit(&job.warn, memory_order_relaxed);
}

size_t loss_pointwise_scratch(const struct loss_pointwise_args *a,
                              bool want_input, bool want_target)
{
    const struct tensor_bcast *bc = a->bc;

    if ((want_input && !pw_dense(bc, bc->astride)) ||
        (want_target && !pw_dense(bc, bc->bstride)))
        return bc->numel;
    return 0;
}

void loss_pointwise_backward(const struct loss_pointwise_args *a,
                             const double *g, size_t gstride,
                             double *grad_input, double *grad_target,
                             double *scratch, const struct loss_exec *ex)
{
    const struct tensor_bcast *bc = a->bc;
    size_t nblocks = loss_blocks(bc->numel, PW_BLOCK);
    struct pw_job job;
    bool x_summed, y_summed;

    pw_job_init(&job, a);
    assert(g != NULL || bc->numel == 0);
    x_summed = grad_input != NULL && !job.dense_x;
    y_summed = grad_target != NULL && !job.dense_y;
    assert(scratch != NULL || !(x_summed || y_summed) || bc->numel == 0);
    job.g = g;
    job.gstride = gstride;

    /*
     * One pass for the gradients that go straight to their output and at
     * most one that goes through scratch; a second pass when both operands
     * are broadcast, since scratch holds one loss-shaped gradient.
     */
    job.gx = grad_input == NULL ? NULL : x_summed ? scratch : grad_input;
    job.gy = grad_target == NULL ? NULL
             : !y_summed         ? grad_target
             : x_summed          ? NULL
                                 : scratch;
    if (job.gx != NULL || job.gy != NULL)
        loss_exec_run(ex, nblocks, pw_block, &job);
    if (x_summed)
        tensor_reduce_to_a(bc, scratch, grad_input,
                           pw_operand_numel(bc, bc->astride));
    if (y_summed) {
        struct tensor_bcast swapped;

        if (x_summed) {
            job.gx = NULL;
            job.gy = scratch;
            loss_exec_run(ex, nblocks, pw_block, &job);
        }
        pw_bcast_swap(bc, &swapped);
        tensor_reduce_to_a(&swapped, scratch, grad_target,
                           pw_operand_numel(bc, bc->bstride));
    }
}

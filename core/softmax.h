/*
 * softmax.h - softmax and log_softmax along one dimension, and the class
 * losses built on them: nll and cross_entropy.
 *
 * Shapes are seen as (outer, C, inner): the dimension `dim` of size C, the
 * product of the dimensions before it, and of those after it. For
 * cross_entropy's (N, C, d1..dk) input that is N, C, d1*..*dk; for an
 * unbatched (C) input, outer = inner = 1.
 *
 * softmax: m = max, s = sum exp(x - m); log_softmax = x - m - log(s),
 * softmax = exp(x - m) * (1 / s): stable at logits of magnitude 1000, with
 * PyTorch's edge values (+inf in a row -> NaN row; all -inf -> NaN); see
 * docs/semantics.md section 5.
 */
#ifndef LOSSD_CORE_SOFTMAX_H
#define LOSSD_CORE_SOFTMAX_H

#include <stdbool.h>
#include <stddef.h>

#include "exec.h"

struct loss_softmax_shape {
    size_t outer;
    size_t classes;
    size_t inner;
};

/* out = (log_)softmax(x) along the class dimension; outer*classes*inner. */
void loss_softmax_forward(const struct loss_softmax_shape *s, bool log,
                          const double *x, double *out,
                          const struct loss_exec *ex);

/*
 * grad = vector-Jacobian product of (log_)softmax with upstream g (same
 * shape), given the forward output out:
 *   log_softmax: g - exp(out) * sum(g);  softmax: out * (g - sum(g * out)).
 */
void loss_softmax_backward(const struct loss_softmax_shape *s, bool log,
                           const double *out, const double *g, double *grad,
                           const struct loss_exec *ex);

/*
 * nll and cross_entropy (docs/semantics.md section 6).
 *
 * Class-index targets hold outer*inner integral values in [0, C) or equal to
 * ignore_index (validated by the handler). Probability targets have the
 * input's shape. For nll, input already holds log-probabilities; for
 * cross_entropy the kernel applies log_softmax itself.
 */
struct loss_class_args {
    struct loss_softmax_shape shape;
    const double *input;
    const double *target;
    bool prob_target;       /* cross_entropy with probability targets */
    bool apply_log_softmax; /* true: cross_entropy; false: nll */
    const double *weight;   /* C class weights, or NULL */
    double ignore_index;    /* integral; class-index targets only */
    double label_smoothing; /* epsilon in [0, 1] */
};

/*
 * Forward. out: the outer*inner per-sample losses (0 for ignored samples).
 * count_w: if not NULL, outer*inner per-sample contributions to `count`
 * (w[t_i], 1 without weights, 0 if ignored; 1 for probability targets).
 * lsm: scratch of loss_class_scratch(a) doubles (NULL when that is 0, as
 * for nll); keep it unchanged for backward. Its content is private to these
 * two calls: per-sample statistics of the softmax (its log-normaliser, and
 * its maximum when C >= 2), from which backward rebuilds log_softmax and
 * softmax, so the scratch is O(samples), not O(samples x C).
 */
/* Doubles of lsm scratch loss_class_forward() needs for a. */
size_t loss_class_scratch(const struct loss_class_args *a);

void loss_class_forward(const struct loss_class_args *a, double *out,
                        double *count_w, double *lsm,
                        const struct loss_exec *ex);

/*
 * Backward from upstream g[i*gstride] per sample, using lsm from forward
 * (cross_entropy rebuilds the softmax from input and lsm, one vector exp per
 * element).
 * grad_input (input's shape) and grad_target (probability targets only; the
 * input's shape) are skipped when NULL. Ignored samples get 0.
 */
void loss_class_backward(const struct loss_class_args *a, const double *lsm,
                         const double *g, size_t gstride, double *grad_input,
                         double *grad_target, const struct loss_exec *ex);

#endif

/*
 * pointwise.h - element-wise losses: mse, l1, smooth_l1, huber,
 * binary_cross_entropy, binary_cross_entropy_with_logits, kl_div.
 *
 * Semantics are PyTorch 1.13's torch.nn.functional, float64, forward and
 * backward, including its quirks (docs/semantics.md sections 3 and 4):
 * sign(0) = 0 for l1; the smooth_l1 beta = 0 gradient at d = 0; BCE's -100
 * log clamp and its gradient with EPS = 1e-12f at p in {0, 1}; the 1.13
 * stable form of BCE-with-logits; kl_div's xlogy and its NaN gradient at
 * y = 0.
 *
 * Input (operand a) and target (operand b) broadcast to the loss shape bc
 * (the handler checked that BCE's shapes are equal). weight and pos_weight
 * (BCE losses only) expand to the loss shape through their own bcast.
 */
#ifndef LOSSD_CORE_POINTWISE_H
#define LOSSD_CORE_POINTWISE_H

#include <stdbool.h>
#include <stddef.h>

#include "exec.h"
#include "tensor.h"

enum loss_pointwise_kind {
    LOSS_PW_MSE,
    LOSS_PW_L1,
    LOSS_PW_SMOOTH_L1, /* param: beta >= 0 */
    LOSS_PW_HUBER,     /* param: delta > 0 */
    LOSS_PW_BCE,
    LOSS_PW_BCE_LOGITS,
    LOSS_PW_KL_DIV, /* param: 0 = target is probabilities, 1 = log_target */
};

struct loss_pointwise_args {
    enum loss_pointwise_kind kind;
    double param;
    const double *input;                      /* elements of operand a of bc */
    const double *target;                     /* elements of operand b of bc */
    const struct tensor_bcast *bc;            /* input (a) with target (b) */
    const double *weight;                     /* or NULL */
    const struct tensor_bcast *weight_bc;     /* weight (a) to loss shape */
    const double *pos_weight;                 /* BCE_LOGITS only, or NULL */
    const struct tensor_bcast *pos_weight_bc; /* pos_weight (a) to shape */
};

/*
 * Writes the bc->numel per-element losses to out. Returns a mask of
 * enum loss_warning (LOSS_WARN_BCE_LOG_CLAMP when BCE clamped a log).
 */
unsigned loss_pointwise_forward(const struct loss_pointwise_args *a,
                                double *out, const struct loss_exec *ex);

/*
 * Doubles of scratch loss_pointwise_backward() needs: bc->numel when a
 * requested gradient belongs to an operand that is broadcast (its gradient is
 * summed back over the broadcast dimensions), else 0.
 */
size_t loss_pointwise_scratch(const struct loss_pointwise_args *a,
                              bool want_input, bool want_target);

/*
 * Gradients of sum_i g[i*gstride] * loss_i with respect to input (into
 * grad_input, as many elements as input has) and target (grad_target), each
 * skipped when NULL. scratch holds loss_pointwise_scratch() doubles.
 */
void loss_pointwise_backward(const struct loss_pointwise_args *a,
                             const double *g, size_t gstride,
                             double *grad_input, double *grad_target,
                             double *scratch, const struct loss_exec *ex);

#endif

/*
 * pointwise.c - the handlers of the element-wise losses: mse, l1,
 * smooth_l1, huber, binary_cross_entropy(_with_logits), kl_div.
 *
 * Shape rules and messages follow PyTorch 1.13 (docs/semantics.md): mse, l1,
 * smooth_l1, huber and kl_div broadcast input with target (the first four
 * warn); BCE needs equal shapes; BCE weights expand to the input's shape.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { T_INPUT, T_TARGET, T_WEIGHT, T_POS_WEIGHT };

static bool is_bce(enum loss_pointwise_kind k)
{
    return k == LOSS_PW_BCE || k == LOSS_PW_BCE_LOGITS;
}

/* Every element of t in [0, 1] (NaN fails), or a 422 at the first one. */
static enum loss_status check_unit(struct handler_call *c,
                                   const struct handler_tensor *t,
                                   const char *what, struct loss_error *err)
{
    const double *x = t->pt.t.data;
    size_t n = tensor_numel(&t->pt.t);

    for (size_t i = 0; i < n; i++) {
        if (x[i] >= 0.0 && x[i] <= 1.0)
            continue;
        char ptr[LOSS_POINTER_MAX];

        call_element_pointer(c, t, i, ptr, sizeof(ptr));
        return loss_fail(err, LOSS_EVALUE, ptr,
                         "all elements of %s should be between 0 and 1 "
                         "(element %zu is %.17g)",
                         what, i, x[i]);
    }
    return LOSS_OK;
}

/* weight (operand a) expands to the input's shape, or a 422 naming it. */
static enum loss_status expand_to_input(struct handler_call *c, int which,
                                        struct tensor_bcast *bc,
                                        struct loss_error *err)
{
    const struct handler_tensor *w = &c->tensors[which];
    const struct tensor *x = &c->tensors[T_INPUT].pt.t;
    char ws[128], xs[128];

    if (tensor_expand(w->pt.t.shape, w->pt.t.ndim, x->shape, x->ndim, bc))
        return LOSS_OK;
    tensor_shape_format(w->pt.t.shape, w->pt.t.ndim, ws, sizeof(ws));
    tensor_shape_format(x->shape, x->ndim, xs, sizeof(xs));
    return call_fail(c, err, LOSS_ESHAPE, &w->at,
                     "%s of shape %s cannot be broadcast to the input's "
                     "shape %s",
                     c->loss->desc.tensors[which].name, ws, xs);
}

static enum loss_status pw_prepare(struct handler_call *c,
                                   struct loss_error *err)
{
    enum loss_pointwise_kind kind = (enum loss_pointwise_kind)c->loss->kind;
    struct handler_tensor *in = &c->tensors[T_INPUT];
    struct handler_tensor *tg = &c->tensors[T_TARGET];
    struct loss_pointwise_args *a = &c->u.pw.args;
    char is[128], ts[128];
    size_t bad;
    enum loss_status st;

    if (is_bce(kind) && !tensor_same_shape(&in->pt.t, &tg->pt.t)) {
        call_torch_size(&tg->pt.t, ts, sizeof(ts));
        call_torch_size(&in->pt.t, is, sizeof(is));
        if (kind == LOSS_PW_BCE)
            return call_fail(c, err, LOSS_ESHAPE, &tg->at,
                             "Using a target size (%s) that is different to "
                             "the input size (%s) is deprecated. Please "
                             "ensure they have the same size.",
                             ts, is);
        return call_fail(c, err, LOSS_ESHAPE, &tg->at,
                         "Target size (%s) must be the same as input size "
                         "(%s)",
                         ts, is);
    }
    if (!tensor_broadcast(in->pt.t.shape, in->pt.t.ndim, tg->pt.t.shape,
                          tg->pt.t.ndim, &c->u.pw.bc, &bad)) {
        size_t nd =
            in->pt.t.ndim > tg->pt.t.ndim ? in->pt.t.ndim : tg->pt.t.ndim;
        size_t ia, ib;

        if (bad == (size_t)-1)
            return call_fail(c, err, LOSS_ETOOLARGE, &tg->at,
                             "the broadcast of input and target overflows");
        ia = bad + in->pt.t.ndim - nd;
        ib = bad + tg->pt.t.ndim - nd;
        return call_fail(c, err, LOSS_ESHAPE, &tg->at,
                         "The size of tensor a (%zu) must match the size of "
                         "tensor b (%zu) at non-singleton dimension %zu",
                         in->pt.t.shape[ia], tg->pt.t.shape[ib], bad);
    }
    st = call_check_work(c, c->u.pw.bc.numel,
                         "the broadcast of input and "
                         "target",
                         err);
    if (st != LOSS_OK)
        return st;
    if (!tensor_same_shape(&in->pt.t, &tg->pt.t) && kind != LOSS_PW_KL_DIV) {
        call_torch_size(&tg->pt.t, ts, sizeof(ts));
        call_torch_size(&in->pt.t, is, sizeof(is));
        call_warn(c, "broadcast-target", &tg->at,
                  "Using a target size (%s) that is different to the input "
                  "size (%s). This will likely lead to incorrect results due "
                  "to broadcasting. Please ensure they have the same size.",
                  ts, is);
    }
    if (kind == LOSS_PW_BCE) {
        if ((st = check_unit(c, in, "input", err)) != LOSS_OK ||
            (st = check_unit(c, tg, "target", err)) != LOSS_OK)
            return st;
    }
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    a->input = in->pt.t.data;
    a->target = tg->pt.t.data;
    a->bc = &c->u.pw.bc;
    if (is_bce(kind) && c->tensors[T_WEIGHT].present) {
        st = expand_to_input(c, T_WEIGHT, &c->u.pw.weight_bc, err);
        if (st != LOSS_OK)
            return st;
        a->weight = c->tensors[T_WEIGHT].pt.t.data;
        a->weight_bc = &c->u.pw.weight_bc;
    }
    if (kind == LOSS_PW_BCE_LOGITS && c->tensors[T_POS_WEIGHT].present) {
        st = expand_to_input(c, T_POS_WEIGHT, &c->u.pw.pos_weight_bc, err);
        if (st != LOSS_OK)
            return st;
        a->pos_weight = c->tensors[T_POS_WEIGHT].pt.t.data;
        a->pos_weight_bc = &c->u.pw.pos_weight_bc;
    }
    switch (kind) {
    case LOSS_PW_SMOOTH_L1:
        a->param = call_option(c, "beta")->number;
        break;
    case LOSS_PW_HUBER:
        a->param = call_option(c, "delta")->number;
        break;
    case LOSS_PW_KL_DIV:
        a->param = call_option(c, "log_target")->boolean ? 1.0 : 0.0;
        if (c->reduction == LOSS_REDUCTION_MEAN)
            call_warn(c, "kl-div-mean", NULL,
                      "reduction 'mean' divides the total loss by both the "
                      "batch size and the support size; 'batchmean' divides "
                      "only by the batch size, and aligns with the KL "
                      "divergence's definition");
        if (c->reduction == LOSS_REDUCTION_BATCHMEAN && in->pt.t.ndim < 2)
            call_warn(c, "batchmean-1d", &in->at,
                      "batchmean on a %zu-d input divides by %s, not by a "
                      "batch size",
                      in->pt.t.ndim, in->pt.t.ndim ? "its length" : "1");
        break;
    default:
        break;
    }
    c->out_ndim = c->u.pw.bc.ndim;
    memcpy(c->out_shape, c->u.pw.bc.shape, sizeof(c->out_shape));
    c->out_numel = c->u.pw.bc.numel;
    c->diff_mask = 1u << T_INPUT | 1u << T_TARGET;
    c->cost = 8.0 * (double)c->out_numel;
    /* out, plus a broadcast-shaped scratch for summed-back gradients */
    c->bytes = 2 * c->out_numel * sizeof(double);
    return LOSS_OK;
}

static enum loss_status pw_forward(struct handler_call *c,
                                   const struct loss_exec *ex,
                                   struct handler_output *o,
                                   struct loss_error *err)
{
    const struct tensor *in = &c->tensors[T_INPUT].pt.t;

    (void)err;
    o->warn = loss_pointwise_forward(&c->u.pw.args, o->out, ex);
    o->count = (double)c->out_numel;
    if (c->reduction == LOSS_REDUCTION_BATCHMEAN)
        o->count = in->ndim ? (double)in->shape[0] : 1.0;
    return LOSS_OK;
}

static enum loss_status pw_backward(struct handler_call *c,
                                    const struct loss_exec *ex,
                                    struct handler_output *o, const double *g,
                                    size_t gstride, struct loss_error *err)
{
    bool want_in = c->grad_mask & (1u << T_INPUT);
    bool want_tg = c->grad_mask & (1u << T_TARGET);
    size_t n = loss_pointwise_scratch(&c->u.pw.args, want_in, want_tg);

    if (n) {
        o->scratch = malloc(n * sizeof(double));
        if (o->scratch == NULL)
            return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
    }
    loss_pointwise_backward(
        &c->u.pw.args, g, gstride, want_in ? o->grads[T_INPUT] : NULL,
        want_tg ? o->grads[T_TARGET] : NULL, o->scratch, ex);
    return LOSS_OK;
}

const struct handler_family handler_pointwise_family = {
    .prepare = pw_prepare,
    .forward = pw_forward,
    .backward = pw_backward,
};

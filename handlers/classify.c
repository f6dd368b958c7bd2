/*
 * classify.c - the handlers of cross_entropy and nll.
 *
 * Dispatch and messages follow PyTorch 1.13 (docs/semantics.md):
 * cross_entropy reads the target as probabilities when it has the input's
 * shape, as class indices otherwise (JSON carries no dtype, so the shape
 * decides). Class indices must be integral values in [0, C) or equal to
 * ignore_index.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sum.h"

enum { T_INPUT, T_TARGET, T_WEIGHT };

/* Target shape rules of nll_loss / nll_loss2d / nll_loss_nd. */
static enum loss_status check_index_shape(struct handler_call *c,
                                          struct loss_error *err)
{
    const struct tensor *x = &c->tensors[T_INPUT].pt.t;
    const struct tensor *y = &c->tensors[T_TARGET].pt.t;
    char ptr[LOSS_POINTER_MAX];
    char xs[128], ys[128];

    call_pointer(c, &c->tensors[T_TARGET].at, ptr, sizeof(ptr));
    tensor_shape_format(x->shape, x->ndim, xs, sizeof(xs));
    tensor_shape_format(y->shape, y->ndim, ys, sizeof(ys));
    if (x->ndim == 1) {
        if (y->ndim == 0)
            return LOSS_OK;
        if (y->ndim > 1)
            return loss_fail(err, LOSS_ESHAPE, ptr,
                             "0D or 1D target tensor expected, multi-target "
                             "not supported");
        return loss_fail(err, LOSS_ESHAPE, ptr,
                         "size mismatch (got input: %s, target: %s); an "
                         "unbatched (C) input takes a 0-d target",
                         xs, ys);
    }
    if (x->ndim == 2 && y->ndim != 1)
        return loss_fail(err, LOSS_ESHAPE, ptr,
                         "0D or 1D target tensor expected, multi-target not "
                         "supported");
    if (y->ndim == 0 || y->shape[0] != x->shape[0])
        return loss_fail(err, LOSS_ESHAPE, ptr,
                         "Expected input batch_size (%zu) to match target "
                         "batch_size (%zu).",
                         x->shape[0], y->ndim ? y->shape[0] : 0);
    if (x->ndim > 2) {
        bool ok = y->ndim == x->ndim - 1;

        for (size_t d = 1; ok && d < y->ndim; d++)
            ok = y->shape[d] == x->shape[d + 1];
        if (!ok) {
            size_t want[TENSOR_MAX_RANK];

            want[0] = x->shape[0];
            for (size_t d = 2; d < x->ndim; d++)
                want[d - 1] = x->shape[d];
            tensor_shape_format(want, x->ndim - 1, xs, sizeof(xs));
            return loss_fail(err, LOSS_ESHAPE, ptr,
                             "Expected target size %s, got %s", xs, ys);
        }
    }
    return LOSS_OK;
}

/* Every class index integral and in [0, C) or equal to ignore_index. */
static enum loss_status check_indices(struct handler_call *c, size_t classes,
                                      double ignore_index,
                                      struct loss_error *err)
{
    const struct handler_tensor *t = &c->tensors[T_TARGET];
    const double *y = t->pt.t.data;
    size_t n = tensor_numel(&t->pt.t);

    for (size_t i = 0; i < n; i++) {
        char ptr[LOSS_POINTER_MAX];

        if (y[i] == ignore_index)
            continue;
        if (floor(y[i]) == y[i] && y[i] >= 0.0 && y[i] < (double)classes)
            continue;
        call_element_pointer(c, t, i, ptr, sizeof(ptr));
        if (floor(y[i]) != y[i])
            return loss_fail(err, LOSS_EVALUE, ptr,
                             "class indices must be integral values; target "
                             "element %zu is %.17g (send probabilities with "
                             "the input's shape instead)",
                             i, y[i]);
        return loss_fail(err, LOSS_EVALUE, ptr,
                         "Target %.17g is out of bounds (classes are 0 to "
                         "%zu, ignore_index is %.17g).",
                         y[i], classes - 1, ignore_index);
    }
    return LOSS_OK;
}

static enum loss_status cls_prepare(struct handler_call *c,
                                    struct loss_error *err)
{
    bool ce = c->loss->kind != 0;
    const struct handler_tensor *in = &c->tensors[T_INPUT];
    const struct handler_tensor *tg = &c->tensors[T_TARGET];
    const struct handler_tensor *w = &c->tensors[T_WEIGHT];
    const struct tensor *x = &in->pt.t;
    struct loss_class_args *a = &c->u.cls.args;
    const struct handler_option *ii = call_option(c, "ignore_index");
    size_t n;
    enum loss_status st;

    if (x->ndim == 0)
        return call_fail(c, err, LOSS_ESHAPE, &in->at,
                         "Expected 1 or more dimensions (got 0)");
    memset(a, 0, sizeof(*a));
    a->shape.classes = x->ndim >= 2 ? x->shape[1] : x->shape[0];
    a->shape.outer = x->ndim >= 2 ? x->shape[0] : 1;
    a->shape.inner = 1;
    for (size_t d = 2; d < x->ndim; d++)
        a->shape.inner *= x->shape[d];
    a->input = x->data;
    a->target = tg->pt.t.data;
    a->apply_log_softmax = ce;
    a->prob_target = ce && tensor_same_shape(x, &tg->pt.t);
    a->ignore_index = ii->number;
    a->label_smoothing = ce ? call_option(c, "label_smoothing")->number : 0.0;
    if (w->present) {
        if (w->pt.t.ndim != 1 || w->pt.t.shape[0] != a->shape.classes) {
            char ws[128];

            tensor_shape_format(w->pt.t.shape, w->pt.t.ndim, ws, sizeof(ws));
            return call_fail(c, err, LOSS_ESHAPE, &w->at,
                             "%sweight tensor should be defined either for "
                             "all %zu classes or no classes but got weight "
                             "tensor of shape: %s",
                             a->prob_target ? "cross_entropy: " : "",
                             a->shape.classes, ws);
        }
        a->weight = w->pt.t.data;
    }
    if (a->prob_target) {
        if (ii->given && ii->number >= 0.0)
            return call_fail(c, err, LOSS_EOPTION, &ii->at,
                             "ignore_index is not supported for floating "
                             "point target (probability targets have the "
                             "input's shape)");
    } else {
        if ((st = check_index_shape(c, err)) != LOSS_OK)
            return st;
        if ((st = check_indices(c, a->shape.classes, a->ignore_index, err)) !=
            LOSS_OK)
            return st;
    }
    /* The output: the input's shape without the class dimension. */
    c->out_ndim = x->ndim >= 2 ? x->ndim - 1 : 0;
    if (x->ndim >= 2) {
        c->out_shape[0] = x->shape[0];
        for (size_t d = 2; d < x->ndim; d++)
            c->out_shape[d - 1] = x->shape[d];
    }
    c->out_numel = a->shape.outer * a->shape.inner;
    c->diff_mask = 1u << T_INPUT;
    if (a->prob_target)
        c->diff_mask |= 1u << T_TARGET;
    n = tensor_numel(x);
    /* per element, and per sample: with C = 0 every sample is still one */
    c->cost = 12.0 * (double)n + 4.0 * (double)c->out_numel;
    c->bytes = (n + 3 * c->out_numel) * sizeof(double);
    return LOSS_OK;
}

static enum loss_status cls_forward(struct handler_call *c,
                                    const struct loss_exec *ex,
                                    struct handler_output *o,
                                    struct loss_error *err)
{
    const struct loss_class_args *a = &c->u.cls.args;
    size_t samples = c->out_numel;
    size_t n = loss_class_scratch(a);
    double *count_w, *lsm;

    /* scratch: lsm of softmax.h (cross_entropy only), then count_w */
    o->scratch = malloc((n + samples + 1) * sizeof(double));
    if (o->scratch == NULL)
        return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
    lsm = a->apply_log_softmax ? o->scratch : NULL;
    count_w = o->scratch + n;
    loss_class_forward(a, o->out, count_w, lsm, ex);
    o->count = a->prob_target ? (double)samples : loss_sum(count_w, samples);
    if (!a->prob_target && o->count == 0.0 && samples > 0) {
        call_warn(c, "all-ignored", &c->tensors[T_TARGET].at,
                  "every target is ignored (or their weights sum to 0): the "
                  "mean is NaN and the gradients are 0");
    }
    return LOSS_OK;
}

static enum loss_status cls_backward(struct handler_call *c,
                                     const struct loss_exec *ex,
                                     struct handler_output *o, const double *g,
                                     size_t gstride, struct loss_error *err)
{
    const struct loss_class_args *a = &c->u.cls.args;

    (void)err;
    loss_class_backward(
        a, a->apply_log_softmax ? o->scratch : NULL, g, gstride,
        (c->grad_mask & (1u << T_INPUT)) ? o->grads[T_INPUT] : NULL,
        (c->grad_mask & (1u << T_TARGET)) ? o->grads[T_TARGET] : NULL, ex);
    return LOSS_OK;
}

const struct handler_family handler_class_family = {
    .prepare = cls_prepare,
    .forward = cls_forward,
    .backward = cls_backward,
};

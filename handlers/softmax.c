/*
 * softmax.c - the handlers of softmax and log_softmax.
 *
 * Without dim, lossd uses dim 1 when the input has 2 or more dimensions and
 * 0 otherwise, with an implicit-dim warning (a documented departure:
 * PyTorch's deprecated rule picks 0 for 3-D input). Negative dims count from
 * the end. No reduction, no sum or count: the value is the output tensor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static enum loss_status sm_prepare(struct handler_call *c,
                                   struct loss_error *err)
{
    const struct handler_tensor *in = &c->tensors[0];
    const struct tensor *x = &in->pt.t;
    const struct handler_option *dim = call_option(c, "dim");
    long long nd = x->ndim ? (long long)x->ndim : 1;
    long long d;
    struct loss_softmax_shape *s = &c->u.sm.shape;

    c->u.sm.log = c->loss->kind != 0;
    if (dim->given) {
        d = (long long)dim->number;
        if (d < -nd || d >= nd)
            return call_fail(c, err, LOSS_EOPTION, &dim->at,
                             "Dimension out of range (expected to be in "
                             "range of [%lld, %lld], but got %lld)",
                             -nd, nd - 1, d);
        if (d < 0)
            d += nd;
    } else {
        d = x->ndim >= 2 ? 1 : 0;
        call_warn(c, "implicit-dim", NULL,
                  "no dim given: using dim=%lld (dim 1 when the input has 2 "
                  "or more dimensions, else 0; PyTorch's deprecated implicit "
                  "choice differs for 3-D input). Send dim explicitly.",
                  d);
    }
    s->outer = 1;
    s->inner = 1;
    s->classes = x->ndim ? x->shape[d] : 1;
    for (long long k = 0; k < d; k++)
        s->outer *= x->shape[k];
    for (size_t k = (size_t)d + 1; k < x->ndim; k++)
        s->inner *= x->shape[k];
    c->out_ndim = x->ndim;
    memcpy(c->out_shape, x->shape, sizeof(c->out_shape));
    c->out_numel = tensor_numel(x);
    c->diff_mask = 1u;
    c->cost = 6.0 * (double)c->out_numel;
    c->bytes = 2 * c->out_numel * sizeof(double);
    return LOSS_OK;
}

static enum loss_status sm_forward(struct handler_call *c,
                                   const struct loss_exec *ex,
                                   struct handler_output *o,
                                   struct loss_error *err)
{
    (void)err;
    loss_softmax_forward(&c->u.sm.shape, c->u.sm.log, c->tensors[0].pt.t.data,
                         o->out, ex);
    return LOSS_OK;
}

static enum loss_status sm_backward(struct handler_call *c,
                                    const struct loss_exec *ex,
                                    struct handler_output *o, const double *g,
                                    size_t gstride, struct loss_error *err)
{
    if (gstride == 0) {
        /* The default grad_output of a tensor output is ones. */
        o->scratch = malloc((c->out_numel ? c->out_numel : 1) * sizeof(double));
        if (o->scratch == NULL)
            return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
        for (size_t i = 0; i < c->out_numel; i++)
            o->scratch[i] = g[0];
        g = o->scratch;
    }
    loss_softmax_backward(&c->u.sm.shape, c->u.sm.log, o->out, g, o->grads[0],
                          ex);
    return LOSS_OK;
}

const struct handler_family handler_softmax_family = {
    .prepare = sm_prepare,
    .forward = sm_forward,
    .backward = sm_backward,
};

/*
 * info_nce.c - the handler of info_nce (docs/api.md, "info_nce").
 *
 * The per-sample count is known from shapes (N, or 2N for nt_xent), so the
 * forward pass also computes the gradients in one go (core/info_nce.h):
 * backward has nothing left to do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { T_QUERY, T_POSITIVE, T_NEGATIVE };

static enum loss_status nce_prepare(struct handler_call *c,
                                    struct loss_error *err)
{
    const struct handler_tensor *q = &c->tensors[T_QUERY];
    const struct handler_tensor *k = &c->tensors[T_POSITIVE];
    const struct handler_tensor *neg = &c->tensors[T_NEGATIVE];
    const struct handler_option *variant = call_option(c, "variant");
    const struct handler_option *mode = call_option(c, "negative_mode");
    const struct handler_option *mask = call_option(c, "mask_self");
    struct loss_nce_args *a = &c->u.nce.args;
    char qs[128], ks[128];
    size_t rows, cols, work;
    enum loss_status st;

    tensor_shape_format(q->pt.t.shape, q->pt.t.ndim, qs, sizeof(qs));
    tensor_shape_format(k->pt.t.shape, k->pt.t.ndim, ks, sizeof(ks));
    if (q->pt.t.ndim != 2)
        return call_fail(c, err, LOSS_ESHAPE, &q->at,
                         "query must have 2 dimensions (N, D), got shape %s",
                         qs);
    if (!tensor_same_shape(&q->pt.t, &k->pt.t))
        return call_fail(c, err, LOSS_ESHAPE, &k->at,
                         "positive_key must have the query's shape %s, got "
                         "%s",
                         qs, ks);
    memset(a, 0, sizeof(*a));
    a->n = q->pt.t.shape[0];
    a->d = q->pt.t.shape[1];
    a->query = q->pt.t.data;
    a->positive_key = k->pt.t.data;
    a->temperature = call_option(c, "temperature")->number;
    a->normalize = call_option(c, "normalize")->boolean;
    a->variant = strcmp(variant->string, "symmetric") == 0 ? LOSS_NCE_SYMMETRIC
                 : strcmp(variant->string, "nt_xent") == 0 ? LOSS_NCE_NT_XENT
                                                           : LOSS_NCE_PAIRS;
    a->mask_self = mask->boolean;
    if (mask->given && a->variant != LOSS_NCE_NT_XENT)
        return call_fail(c, err, LOSS_EOPTION, &mask->at,
                         "mask_self applies only to variant \"nt_xent\"");
    if (neg->present && a->variant != LOSS_NCE_PAIRS)
        return call_fail(c, err, LOSS_EOPTION,
                         variant->given ? &variant->at : &neg->at,
                         "negative_keys can only be used with variant "
                         "\"pairs\"");
    if (mode->given && !neg->present)
        return call_fail(c, err, LOSS_EOPTION, &mode->at,
                         "negative_mode needs negative_keys");
    if (neg->present) {
        const struct tensor *nt = &neg->pt.t;
        char ns[128];

        a->paired = strcmp(mode->string, "paired") == 0;
        tensor_shape_format(nt->shape, nt->ndim, ns, sizeof(ns));
        if (!a->paired && (nt->ndim != 2 || nt->shape[1] != a->d))
            return call_fail(c, err, LOSS_ESHAPE, &neg->at,
                             "negative_keys must have shape (M, %zu) when "
                             "negative_mode is \"unpaired\", got %s",
                             a->d, ns);
        if (a->paired &&
            (nt->ndim != 3 || nt->shape[0] != a->n || nt->shape[2] != a->d))
            return call_fail(c, err, LOSS_ESHAPE, &neg->at,
                             "negative_keys must have shape (%zu, M, %zu) "
                             "when negative_mode is \"paired\", got %s",
                             a->n, a->d, ns);
        a->m = a->paired ? nt->shape[1] : nt->shape[0];
        a->negative_keys = nt->data;
    }
    /* The similarity matrix: rows x cols logits. */
    rows = a->variant == LOSS_NCE_NT_XENT ? 2 * a->n : a->n;
    cols = neg->present ? a->m + 1 : rows;
    if (!tensor_mul(rows, cols, &work))
        work = (size_t)-1;
    st = call_check_work(c, work, "the similarity matrix", err);
    if (st != LOSS_OK)
        return st;
    c->out_ndim = 1;
    c->out_shape[0] = loss_nce_samples(a);
    c->out_numel = c->out_shape[0];
    c->diff_mask = 1u << T_QUERY | 1u << T_POSITIVE | 1u << T_NEGATIVE;
    /* multiply-adds of the products, forward and (roughly) backward */
    c->cost = 2.0 * (double)work * (double)(a->d ? a->d : 1);
    c->bytes = c->out_numel * sizeof(double);
    return LOSS_OK;
}

static enum loss_status nce_forward(struct handler_call *c,
                                    const struct loss_exec *ex,
                                    struct handler_output *o,
                                    struct loss_error *err)
{
    const struct loss_nce_args *a = &c->u.nce.args;
    bool backward = c->grad_mask != 0;
    double gscalar = 0.0;
    const double *g = NULL;
    size_t gstride = 0, work;

    o->count = (double)loss_nce_samples(a);
    if (!loss_nce_workspace(a, loss_exec_slots(ex), backward, &work))
        return loss_fail(err, LOSS_ETOOLARGE, NULL,
                         "the info_nce workspace overflows");
    o->scratch = malloc((work ? work : 1) * sizeof(double));
    if (o->scratch == NULL)
        return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
    if (backward)
        call_upstream(c, o->count, &gscalar, &g, &gstride);
    o->warn = loss_nce_run(a, o->out, g, gstride, o->grads[T_QUERY],
                           o->grads[T_POSITIVE], o->grads[T_NEGATIVE],
                           o->scratch, ex);
    return LOSS_OK;
}

static enum loss_status nce_backward(struct handler_call *c,
                                     const struct loss_exec *ex,
                                     struct handler_output *o, const double *g,
                                     size_t gstride, struct loss_error *err)
{
    (void)c, (void)ex, (void)o, (void)g, (void)gstride, (void)err;
    return LOSS_OK; /* done by nce_forward */
}

const struct handler_family handler_nce_family = {
    .prepare = nce_prepare,
    .forward = nce_forward,
    .backward = nce_backward,
};

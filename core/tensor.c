/*
 * tensor.c - shapes, checked sizes and broadcasting (tensor.h).
 */
#include "tensor.h"

#include <stdio.h>
#include <string.h>

bool tensor_mul(size_t a, size_t b, size_t *ret)
{
    size_t r;

    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *ret = r;
    return true;
}

bool tensor_shape_numel(const size_t *shape, size_t ndim, size_t *ret)
{
    size_t n = 1;

    for (size_t i = 0; i < ndim; i++)
        if (!tensor_mul(n, shape[i], &n))
            return false;
    *ret = n;
    return true;
}

size_t tensor_numel(const struct tensor *t)
{
    size_t n = 1;

    for (size_t i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

bool tensor_same_shape(const struct tensor *a, const struct tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (size_t i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

void tensor_shape_format(const size_t *shape, size_t ndim, char *buf,
                         size_t cap)
{
    size_t n = 0;

    if (cap == 0)
        return;
    buf[0] = '\0';
    n += (size_t)snprintf(buf, cap, "[");
    for (size_t i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %zu" : "%zu", shape[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

/* Row-major element strides of a shape (stride of a size-1 dim is moot). */
static void contiguous_strides(const size_t *shape, size_t ndim,
                               size_t *strides)
{
    size_t s = 1;

    for (size_t i = ndim; i-- > 0;) {
        strides[i] = s;
        s *= shape[i];
    }
}

bool tensor_broadcast(const size_t *a, size_t an, const size_t *b, size_t bn,
                      struct tensor_bcast *ret, size_t *ret_dim)
{
    size_t as[TENSOR_MAX_RANK], bs[TENSOR_MAX_RANK];
    size_t nd = an > bn ? an : bn;
    struct tensor_bcast bc;

    memset(&bc, 0, sizeof(bc));
    contiguous_strides(a, an, as);
    contiguous_strides(b, bn, bs);
    bc.ndim = nd;
    bc.a_is_full = an == nd;
    bc.b_is_full = bn == nd;
    for (size_t i = 0; i < nd; i++) {
        /* i counts from the front of the result; align at the back. */
        size_t ai = i + an >= nd ? i + an - nd : (size_t)-1;
        size_t bi = i + bn >= nd ? i + bn - nd : (size_t)-1;
        size_t ad = ai != (size_t)-1 ? a[ai] : 1;
        size_t bd = bi != (size_t)-1 ? b[bi] : 1;

        if (ad != bd && ad != 1 && bd != 1) {
            if (ret_dim != NULL)
                *ret_dim = i;
            return false;
        }
        bc.shape[i] = ad == 1 ? bd : ad;
        bc.astride[i] = ai != (size_t)-1 && ad != 1 ? as[ai] : 0;
        bc.bstride[i] = bi != (size_t)-1 && bd != 1 ? bs[bi] : 0;
        if (ad != bc.shape[i])
            bc.a_is_full = false;
        if (bd != bc.shape[i])
            bc.b_is_full = false;
    }
    if (!tensor_shape_numel(bc.shape, nd, &bc.numel)) {
        if (ret_dim != NULL)
            *ret_dim = (size_t)-1;
        return false;
    }
    *ret = bc;
    return true;
}

bool tensor_expand(const size_t *s, size_t sn, const size_t *t, size_t tn,
                   struct tensor_bcast *ret)
{
    struct tensor_bcast bc;

    if (sn > tn || !tensor_broadcast(s, sn, t, tn, &bc, NULL))
        return false;
    if (!bc.b_is_full)
        return false;
    *ret = bc;
    return true;
}

void tensor_iter_init(struct tensor_iter *it, const struct tensor_bcast *bc,
                      size_t linear)
{
    it->bc = bc;
    it->a = 0;
    it->b = 0;
    for (size_t d = bc->ndim; d-- > 0;) {
        size_t n = bc->shape[d];

        it->idx[d] = n ? linear % n : 0;
        linear = n ? linear / n : 0;
        it->a += it->idx[d] * bc->astride[d];
        it->b += it->idx[d] * bc->bstride[d];
    }
}

void tensor_reduce_to_a(const struct tensor_bcast *bc, const double *src,
                        double *dst, size_t dst_numel)
{
    struct tensor_iter it;

    memset(dst, 0, dst_numel * sizeof(*dst));
    if (bc->a_is_full) {
        memcpy(dst, src, bc->numel * sizeof(*dst));
        return;
    }
    tensor_iter_init(&it, bc, 0);
    for (size_t i = 0; i < bc->numel; i++) {
        dst[it.a] += src[i];
        tensor_iter_next(&it);
    }
}

/*
 * tensor.h - dense float64 tensors, shapes and broadcasting for the kernels.
 *
 * A struct tensor is a view: it never owns its data. Whoever allocated data
 * frees it. Shapes come from the network, so every product of dimensions is
 * computed with tensor_shape_numel(), which reports overflow instead of
 * wrapping. A tensor that reached a kernel was built from a shape that passed
 * that check, so tensor_numel() on it cannot overflow.
 */
#ifndef LOSSD_CORE_TENSOR_H
#define LOSSD_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>

/* The largest rank any tensor may have (max_rank of docs/api.md, Limits). */
#define TENSOR_MAX_RANK 8

struct tensor {
    size_t ndim;
    size_t shape[TENSOR_MAX_RANK];
    double *data; /* borrowed; row-major, tensor_numel() elements */
};

/*
 * Multiplies the ndim dimensions of shape into *ret (1 for ndim == 0).
 * Returns false, leaving *ret untouched, if the product overflows size_t.
 */
bool tensor_shape_numel(const size_t *shape, size_t ndim, size_t *ret);

/* Checked a * b; false on overflow (ret untouched). */
bool tensor_mul(size_t a, size_t b, size_t *ret);

/* Number of elements of a tensor whose shape was already checked. */
size_t tensor_numel(const struct tensor *t);

/* True when a and b have the same rank and dimensions. */
bool tensor_same_shape(const struct tensor *a, const struct tensor *b);

/* Writes "[2, 3]" (at most cap bytes, NUL-terminated) for messages. */
void tensor_shape_format(const size_t *shape, size_t ndim, char *buf,
                         size_t cap);

/*
 * Broadcasting of two shapes, as torch.broadcast_tensors: shapes are aligned
 * at their last dimension; each pair must be equal or contain a 1.
 * Strides are element strides into each operand, 0 along broadcast
 * dimensions, for the broadcast shape.
 */
struct tensor_bcast {
    size_t ndim;
    size_t shape[TENSOR_MAX_RANK];
    size_t astride[TENSOR_MAX_RANK];
    size_t bstride[TENSOR_MAX_RANK];
    size_t numel;   /* elements of the broadcast shape */
    bool a_is_full; /* a has exactly the broadcast shape */
    bool b_is_full; /* b has exactly the broadcast shape */
};

/*
 * Computes the broadcast of shapes a (an dims) and b (bn dims) into *ret.
 * Returns true on success. On a size conflict returns false and, if ret_dim
 * is not NULL, stores in it the index of the conflicting dimension counted
 * from the front of the result (PyTorch's "non-singleton dimension N"). If
 * the broadcast element count overflows size_t, returns false with *ret_dim
 * set to (size_t)-1.
 */
bool tensor_broadcast(const size_t *a, size_t an, const size_t *b, size_t bn,
                      struct tensor_bcast *ret, size_t *ret_dim);

/*
 * Broadcasts one shape s (sn dims) to the target shape t (tn dims) without
 * changing t ("expand"): true when every dim of s is 1 or equal to t's
 * aligned dim and sn <= tn. On success *ret gets strides for s as the "a"
 * operand and t as "b" (b is full).
 */
bool tensor_expand(const size_t *s, size_t sn, const size_t *t, size_t tn,
                   struct tensor_bcast *ret);

/*
 * An odometer over the broadcast shape that tracks the offsets into both
 * operands. Start at any linear index; then step with tensor_iter_next().
 */
struct tensor_iter {
    const struct tensor_bcast *bc;
    size_t idx[TENSOR_MAX_RANK];
    size_t a; /* current offset into operand a */
    size_t b; /* current offset into operand b */
};

void tensor_iter_init(struct tensor_iter *it, const struct tensor_bcast *bc,
                      size_t linear);

static inline void tensor_iter_next(struct tensor_iter *it)
{
    const struct tensor_bcast *bc = it->bc;

    for (size_t d = bc->ndim; d-- > 0;) {
        it->a += bc->astride[d];
        it->b += bc->bstride[d];
        if (++it->idx[d] < bc->shape[d])
            return;
        it->a -= bc->astride[d] * bc->shape[d];
        it->b -= bc->bstride[d] * bc->shape[d];
        it->idx[d] = 0;
    }
}

/*
 * Sums a tensor of the broadcast shape (src, bc->numel elements) back to the
 * shape of operand a (dst, elements as many as a has), as autograd does for a
 * broadcast operand. The order of additions is fixed by the shapes alone.
 * dst is overwritten.
 */
void tensor_reduce_to_a(const struct tensor_bcast *bc, const double *src,
                        double *dst, size_t dst_numel);

#endif

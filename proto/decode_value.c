/*
 * decode_value.c - the values of the decoder of decode.h: what each token
 * becomes once decode.c's byte state machine has read it (the calls of
 * decode_internal.h). Tensors are decode_tensor.c's.
 *
 * Values of open containers wait on two stacks (values of arrays, members of
 * objects); a closing container copies its children into the document's
 * arena (doc.h). Tensor data and long strings are handed to the document
 * whole, so freeing it walks no tree. An object is checked for duplicate
 * keys when it closes: pairwise when small, by sorting an index when large,
 * so a hostile object costs O(n log n).
 *
 * Recovery (recover_values). A value error inside a tensor records the
 * error, turns the tensor's open levels (or pending arrays) into "skip"
 * levels - a stack of container kinds only - and handles the current token
 * again in skip mode. While skipping, nothing is stored: tokens still go
 * through the same byte machine (so syntax is checked exactly as anywhere
 * else), containers still count towards max_depth, numbers towards
 * max_elements. When the last skip level closes, the PROTO_INVALID waiting
 * in skip_value is emitted in the tensor's place. Errors found when an
 * object closes (duplicate keys, tensor objects) need no skipping: the
 * duplicate member's value or the object itself becomes the PROTO_INVALID.
 * A tensor object with an invalid member is invalid with that member's
 * error, recorded once. Errors are kept in full (loss_error in the arena)
 * only up to max_value_errors: a PROTO_INVALID costs no more than any
 * other value however many a body holds.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode_internal.h"
#include "doc.h"

/* --- containers ----------------------------------------------------------- */

enum loss_status proto_decode_emit(struct proto_decoder *d,
                                   const struct proto_value *v)
{
    struct frame *f;

    if (d->nframes == 0) {
        proto_doc_set_root(d->doc, v);
        d->state = ST_DONE;
        return LOSS_OK;
    }
    f = &d->frames[d->nframes - 1];
    if (f->kind == FR_ARRAY) {
        struct proto_value *p = proto_decode_grow(
            d, d->vals, &d->vals_cap, d->nvals + 1, sizeof(*d->vals));

        if (p == NULL)
            return proto_decode_oom(d);
        d->vals = p;
        d->vals[d->nvals++] = *v;
    } else {
        struct proto_member *m = &d->mems[f->base + f->count];

        m->value = *v;
        if (v->type == PROTO_TENSOR && m->key_len == 4 &&
            memcmp(m->key, "data", 4) == 0)
            f->data_elements += tensor_numel(&v->u.tensor->t);
    }
    f->count++;
    d->state = ST_AFTER;
    return LOSS_OK;
}

static enum loss_status push_frame(struct proto_decoder *d,
                                   enum frame_kind kind)
{
    struct frame *f = proto_decode_grow(d, d->frames, &d->frames_cap,
                                        d->nframes + 1, sizeof(*d->frames));

    if (f == NULL)
        return proto_decode_oom(d);
    d->frames = f;
    f = &d->frames[d->nframes++];
    f->kind = kind;
    f->base = kind == FR_ARRAY ? d->nvals : d->nmems;
    f->count = 0;
    f->data_elements = 0;
    return LOSS_OK;
}

/* The first leaf was not a tensor leaf: the pending arrays are generic. */
static enum loss_status pending_to_generic(struct proto_decoder *d)
{
    while (d->pending > 0) {
        if (push_frame(d, FR_ARRAY) != LOSS_OK)
            return d->status;
        d->pending--;
    }
    return LOSS_OK;
}

/* --- skipping an invalid value (recover_values) --------------------------- */

enum loss_status proto_decode_skip_push(struct proto_decoder *d,
                                        enum frame_kind kind)
{
    unsigned char *p =
        proto_decode_grow(d, d->skipk, &d->skip_cap, d->nskip + 1, 1);

    if (p == NULL)
        return proto_decode_oom(d);
    d->skipk = p;
    d->skipk[d->nskip++] = (unsigned char)kind;
    return LOSS_OK;
}

enum loss_status proto_decode_skip_close(struct proto_decoder *d)
{
    if (--d->nskip == 0)
        return proto_decode_emit(d, &d->skip_value);
    d->state = ST_AFTER;
    return LOSS_OK;
}

/* A complete leaf while skipping; number: it counts as an element. */
static enum loss_status skip_leaf(struct proto_decoder *d, bool number)
{
    if (number && d->skip_counts) {
        if (d->elements >= d->lim.max_elements) {
            char ptr[LOSS_POINTER_MAX];

            proto_decode_pointer_here(d, ptr);
            return proto_decode_fail(
                d, LOSS_ETOOLARGE, ptr,
                "more tensor elements than the limit max_elements "
                "= %zu",
                d->lim.max_elements);
        }
        d->elements++;
    }
    d->state = ST_AFTER;
    return LOSS_OK;
}

/* --- tokens into values --------------------------------------------------- */

enum loss_status proto_decode_put_number(struct proto_decoder *d, double x)
{
    struct proto_value v;

    if (d->nskip == 0 && d->pending > 0 &&
        proto_decode_tensor_begin(d) != LOSS_OK)
        return d->status;
    if (d->nskip == 0 && d->t.active &&
        (proto_decode_tensor_number(d, x) != LOSS_OK || d->nskip == 0))
        return d->status;
    if (d->nskip > 0)
        return skip_leaf(d, true);
    v.type = PROTO_NUMBER;
    v.u.number = x;
    return proto_decode_emit(d, &v);
}

enum loss_status proto_decode_put_string(struct proto_decoder *d)
{
    struct proto_value v;
    double x;
    bool nf = proto_nonfinite(d->str, d->slen, &x);
    char *s;

    if (d->nskip == 0 && d->pending > 0) {
        if ((nf ? proto_decode_tensor_begin(d) : pending_to_generic(d)) !=
            LOSS_OK)
            return d->status;
    }
    if (d->nskip == 0 && d->t.active) {
        if (nf &&
            (proto_decode_tensor_number(d, x) != LOSS_OK || d->nskip == 0))
            return d->status;
        if (!nf && proto_decode_tensor_not_number(d, "a string") != LOSS_OK)
            return d->status;
    }
    if (d->nskip > 0)
        return skip_leaf(d, nf);
    if (d->slen >= PROTO_DOC_CHUNK_MAX) {
        /* a long string (base64) is moved, not copied */
        s = realloc(d->str, d->slen + 1);
        if (s == NULL)
            s = d->str;
        if (!proto_doc_own(d->doc, s, d->slen + 1)) {
            d->str = s;
            return proto_decode_oom(d);
        }
        d->scratch -= d->scap;
        d->str = NULL;
        d->scap = 0;
    } else {
        s = proto_doc_alloc(d->doc, d->slen + 1);
        if (s == NULL)
            return proto_decode_oom(d);
        memcpy(s, d->str, d->slen + 1);
    }
    v.type = PROTO_STRING;
    v.u.string.ptr = s;
    v.u.string.len = d->slen;
    return proto_decode_emit(d, &v);
}

enum loss_status proto_decode_put_literal(struct proto_decoder *d, char first)
{
    struct proto_value v;

    if (d->nskip == 0 && d->pending > 0) {
        if ((first == 'n' ? proto_decode_tensor_begin(d)
                          : pending_to_generic(d)) != LOSS_OK)
            return d->status;
    }
    if (d->nskip == 0 && d->t.active) {
        char ptr[LOSS_POINTER_MAX];

        if (first != 'n') {
            if (proto_decode_tensor_not_number(d, "a boolean") != LOSS_OK)
                return d->status;
        } else {
            proto_decode_pointer_here(d, ptr);
            if (proto_decode_tensor_fail(
                    d, LOSS_EVALUE, ptr,
                    "null in a tensor: a missing value is the "
                    "string \"NaN\"") != LOSS_OK)
                return d->status;
        }
    }
    if (d->nskip > 0)
        return skip_leaf(d, false);
    if (first == 'n') {
        v.type = PROTO_NULL;
    } else {
        v.type = PROTO_BOOL;
        v.u.boolean = first == 't';
    }
    return proto_decode_emit(d, &v);
}

static enum loss_status check_depth(struct proto_decoder *d)
{
    size_t depth =
        d->nframes + d->pending + d->nskip + (d->t.active ? d->t.level + 1 : 0);
    char ptr[LOSS_POINTER_MAX];

    if (depth < d->lim.max_depth)
        return LOSS_OK;
    proto_decode_pointer_here(d, ptr);
    return proto_decode_fail(d, LOSS_ETOOLARGE, ptr,
                             "nesting deeper than the limit max_depth = %zu",
                             d->lim.max_depth);
}

enum loss_status proto_decode_open_array(struct proto_decoder *d)
{
    if (check_depth(d) != LOSS_OK)
        return d->status;
    if (d->nskip == 0 && d->t.active && proto_decode_tensor_open(d) != LOSS_OK)
        return d->status;
    if (d->nskip > 0) {
        if (proto_decode_skip_push(d, FR_ARRAY) != LOSS_OK)
            return d->status;
    } else if (!d->t.active) {
        d->pending++;
    }
    d->state = ST_VALUE_OR_CLOSE;
    return LOSS_OK;
}

enum loss_status proto_decode_open_object(struct proto_decoder *d)
{
    if (check_depth(d) != LOSS_OK)
        return d->status;
    if (d->nskip == 0 && d->pending > 0 && pending_to_generic(d) != LOSS_OK)
        return d->status;
    if (d->nskip == 0 && d->t.active &&
        proto_decode_tensor_not_number(d, "an object") != LOSS_OK)
        return d->status;
    if (d->nskip > 0) {
        if (proto_decode_skip_push(d, FR_OBJECT) != LOSS_OK)
            return d->status;
    } else if (push_frame(d, FR_OBJECT) != LOSS_OK) {
        return d->status;
    }
    d->state = ST_KEY_OR_CLOSE;
    return LOSS_OK;
}

enum loss_status proto_decode_close_array(struct proto_decoder *d)
{
    struct frame *f;
    struct proto_value v;

    if (d->nskip == 0 && d->pending > 0 &&
        proto_decode_tensor_begin(d) != LOSS_OK)
        return d->status;
    if (d->nskip > 0)
        return proto_decode_skip_close(d);
    if (d->t.active)
        return proto_decode_tensor_close(d);
    f = &d->frames[d->nframes - 1];
    v.type = PROTO_ARRAY;
    v.u.array.items = NULL;
    v.u.array.len = f->count;
    if (f->count > 0) {
        v.u.array.items =
            proto_doc_alloc(d->doc, f->count * sizeof(struct proto_value));
        if (v.u.array.items == NULL)
            return proto_decode_oom(d);
        memcpy(v.u.array.items, d->vals + f->base,
               f->count * sizeof(struct proto_value));
    }
    d->nvals = f->base;
    d->nframes--;
    return proto_decode_emit(d, &v);
}

/* --- objects -------------------------------------------------------------- */

static int key_cmp(const struct proto_member *m, size_t a, size_t b)
{
    size_t la = m[a].key_len, lb = m[b].key_len;
    int c = memcmp(m[a].key, m[b].key, la < lb ? la : lb);

    if (c != 0)
        return c;
    if (la != lb)
        return la < lb ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
}

/* Heap sort of member indices by (key, index): O(n log n) on any input. */
static void sift(const struct proto_member *m, size_t *idx, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= n)
            return;
        if (c + 1 < n && key_cmp(m, idx[c + 1], idx[c]) > 0)
            c++;
        if (key_cmp(m, idx[c], idx[i]) <= 0)
            return;
        size_t tmp = idx[c];
        idx[c] = idx[i];
        idx[i] = tmp;
        i = c;
    }
}

/*
 * The first member (in document order) whose key appeared before, or n.
 * With dups (n bytes, zeroed) not NULL, also marks every such member.
 * Small objects compare pairwise; large ones sort an index.
 */
static enum loss_status find_duplicate(struct proto_decoder *d,
                                       const struct proto_member *m, size_t n,
                                       unsigned char *dups, size_t *ret)
{
    size_t *idx, dup = n;

    if (n <= 16) {
        for (size_t j = 1; j < n && (dup == n || dups != NULL); j++)
            for (size_t i = 0; i < j; i++)
                if (m[i].key_len == m[j].key_len &&
                    memcmp(m[i].key, m[j].key, m[i].key_len) == 0) {
                    if (dup == n)
                        dup = j;
                    if (dups != NULL)
                        dups[j] = 1;
                    break;
                }
        *ret = dup;
        return LOSS_OK;
    }
    if (n > SIZE_MAX / sizeof(*idx))
        return proto_decode_oom(d);
    idx = malloc(n * sizeof(*idx));
    if (idx == NULL)
        return proto_decode_oom(d);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = n / 2; i-- > 0;)
        sift(m, idx, i, n);
    for (size_t end = n; end-- > 1;) {
        size_t tmp = idx[0];
        idx[0] = idx[end];
        idx[end] = tmp;
        sift(m, idx, 0, end);
    }
    for (size_t i = 1; i < n; i++) {
        const struct proto_member *a = &m[idx[i - 1]], *b = &m[idx[i]];

        if (a->key_len == b->key_len &&
            memcmp(a->key, b->key, a->key_len) == 0) {
            /* sorted by (key, index): idx[i] follows an earlier equal key */
            if (idx[i] < dup)
                dup = idx[i];
            if (dups != NULL)
                dups[idx[i]] = 1;
        }
    }
    free(idx);
    *ret = dup;
    return LOSS_OK;
}

/*
 * Recovery: every member whose key appeared before gets an invalid value
 * (one that is invalid already keeps its own error), and each is recorded,
 * in document order.
 */
static enum loss_status mark_duplicates(struct proto_decoder *d,
                                        struct proto_member *m, size_t n)
{
    unsigned char small[16] = {0}, *dups = small;
    size_t first = n;

    if (n > sizeof(small)) {
        dups = calloc(n, 1);
        if (dups == NULL)
            return proto_decode_oom(d);
    }
    if (find_duplicate(d, m, n, dups, &first) != LOSS_OK)
        goto out;
    for (size_t j = first; j < n; j++) {
        char ptr[LOSS_POINTER_MAX];
        struct proto_value v;

        if (!dups[j])
            continue;
        proto_decode_member_pointer(d, NULL, ptr);
        loss_pointer_append(ptr, sizeof(ptr), m[j].key, m[j].key_len);
        if (proto_decode_fail_value(d, &v, LOSS_EUNKNOWN, ptr,
                                    "duplicate key \"%.64s\"",
                                    m[j].key) != LOSS_OK)
            goto out;
        if (m[j].value.type != PROTO_INVALID)
            m[j].value = v;
    }
out:
    if (dups != small)
        free(dups);
    return d->status;
}

enum loss_status proto_decode_close_object(struct proto_decoder *d)
{
    struct frame *f;
    struct proto_member *m;
    size_t n, dup;
    struct proto_value v;
    bool tensor = false;

    if (d->nskip > 0)
        return proto_decode_skip_close(d);
    f = &d->frames[d->nframes - 1];
    m = f->count ? d->mems + f->base : NULL;
    n = dup = f->count;
    if (d->lim.recover_values) {
        if (mark_duplicates(d, m, n) != LOSS_OK)
            return d->status;
    } else {
        if (find_duplicate(d, m, n, NULL, &dup) != LOSS_OK)
            return d->status;
        if (dup < n) {
            char ptr[LOSS_POINTER_MAX];

            proto_decode_member_pointer(d, NULL, ptr);
            loss_pointer_append(ptr, sizeof(ptr), m[dup].key, m[dup].key_len);
            return proto_decode_fail(d, LOSS_EUNKNOWN, ptr,
                                     "duplicate key \"%.64s\"", m[dup].key);
        }
    }
    for (size_t i = 0; i < n && !tensor && !d->plain_objects; i++)
        tensor = proto_decode_key_is(&m[i], "shape");
    if (tensor) {
        if (proto_decode_tensor_object(d, m, n, &v) != LOSS_OK)
            return d->status;
    } else {
        v.type = PROTO_OBJECT;
        v.u.object.members = NULL;
        v.u.object.len = n;
        if (n > 0) {
            v.u.object.members = proto_doc_alloc(d->doc, n * sizeof(*m));
            if (v.u.object.members == NULL)
                return proto_decode_oom(d);
            memcpy(v.u.object.members, m, n * sizeof(*m));
        }
    }
    d->nmems = f->base;
    d->nframes--;
    return proto_decode_emit(d, &v);
}

enum loss_status proto_decode_put_key(struct proto_decoder *d)
{
    struct proto_member *m;
    char *k;

    if (d->nskip > 0) {
        d->state = ST_COLON;
        return LOSS_OK;
    }
    k = proto_doc_alloc(d->doc, d->slen + 1);
    if (k == NULL)
        return proto_decode_oom(d);
    memcpy(k, d->str, d->slen + 1);
    m = proto_decode_grow(d, d->mems, &d->mems_cap, d->nmems + 1,
                          sizeof(*d->mems));
    if (m == NULL)
        return proto_decode_oom(d);
    d->mems = m;
    m = &d->mems[d->nmems++];
    m->key = k;
    m->key_len = d->slen;
    m->value.type = PROTO_NULL;
    d->state = ST_COLON;
    return LOSS_OK;
}

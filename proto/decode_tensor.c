/*
 * decode_tensor.c - tensor assembly for the decoder of decode.h: nested
 * arrays of numbers, the "shape" of a tensor object, and the tensor objects
 * {"shape", "data"} and {"shape", "dtype", "base64"}. decode_value.c calls
 * in here for every token inside a tensor and for every object with a
 * "shape" key (decode_internal.h); the rows of numbers themselves are
 * mostly stored by decode.c's hot loop, tensor_run().
 *
 * An array whose first leaf is not known yet is "pending": only a counter,
 * no memory. The first leaf decides: a number, a non-finite string or null
 * makes the whole pending chain one tensor; anything else makes it generic
 * arrays. At most one tensor is open at a time (a tensor holds only arrays
 * and numbers), so its state is one struct: the open level, the element
 * count at each open level, and each dimension, known once the first array
 * at that level closed. Rectangularity is checked at every '[', ']' and
 * number, before the number is stored; numbers go into one doubling buffer
 * whose growth is capped by what max_elements still allows (from
 * TENSOR_MAP_MIN bytes a mapping of its own, see tens_resize()). A small
 * closed tensor is copied into the document's arena and the buffer serves
 * the next one; a large one's buffer moves to the document.
 *
 * An object with a "shape" key is a tensor object. Its "shape" value is read
 * as a flat array of non-negative integers that is not counted as tensor
 * elements; when the shape is complete its element count is checked against
 * max_elements, before any "data" or base64 buffer exists.
 *
 * A value error inside a tensor (proto_decode_tensor_fail()) turns its open
 * levels into skip levels when recovering; decode_value.c skips the rest.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base64.h"
#include "decode_internal.h"
#include "doc.h"

enum loss_status proto_decode_tensor_fail(struct proto_decoder *d,
                                          enum loss_status st,
                                          const char *pointer, const char *fmt,
                                          ...)
{
    struct tens *t = &d->t;
    enum loss_status r;
    size_t n = t->active ? t->level + 1 : d->pending;
    va_list ap;

    va_start(ap, fmt);
    r = proto_decode_vfail_value(d, &d->skip_value, st, pointer, fmt, ap);
    va_end(ap);
    if (r != LOSS_OK || !d->lim.recover_values)
        return r;
    for (size_t i = 0; i < n; i++)
        if (proto_decode_skip_push(d, FR_ARRAY) != LOSS_OK)
            return d->status;
    d->skip_counts = !t->is_shape;
    d->pending = 0;
    t->active = false;
    t->len = 0;
    d->scratch -= t->cap * sizeof(double);
    proto_decode_tensor_release(t);
    return LOSS_OK;
}

/*
 * A tensor buffer of TENSOR_MAP_MIN bytes or more is an anonymous mapping
 * of its own rather than a malloc() block. A body of 10^6 numbers fills
 * 8 MB of fresh memory. From malloc() that memory was a new mapping for
 * each body (glibc's threshold follows the last block freed, and a doubling
 * buffer outgrows it), faulted in 4 KiB at a time, a quarter of the
 * decoding time on a VM, plus a copy of the buffer each time realloc()
 * moved it off the heap. Our own mapping grows with mremap(), which moves
 * pages and never copies them, and asks for transparent huge pages
 * (MADV_HUGEPAGE, a hint): with THP in "madvise" mode, Debian's default,
 * it is faulted in 2 MiB at a time. Without THP it is 4 KiB faults, as
 * before. Once mapped, a buffer stays mapped until the document unmaps it.
 */
#define TENSOR_MAP_MIN PROTO_BIG_MIN /* proto_big_alloc()'s mappings */

/*
 * Moves the buffer to one of ncap elements (more or fewer than t->len:
 * the first t->len are kept; ncap * sizeof(double) does not overflow).
 * False when out of memory, with the buffer unchanged.
 */
static bool tens_resize(struct tens *t, size_t ncap)
{
    size_t bytes = ncap * sizeof(double), len;
    void *p;

    if (t->map_len == 0 && bytes < TENSOR_MAP_MIN) {
        p = realloc(t->data, bytes ? bytes : sizeof(double));
        if (p == NULL)
            return false;
        t->data = p;
        t->cap = ncap;
        return true;
    }
    len = proto_big_len(bytes);
    if (len == 0)
        return false;
    if (t->map_len == 0) {
        p = proto_big_alloc(bytes); /* a mapping of len bytes */
        if (p == NULL)
            return false;
        if (t->len > 0)
            memcpy(p, t->data, t->len * sizeof(double));
        free(t->data);
    } else {
        p = mremap(t->data, t->map_len, len, MREMAP_MAYMOVE);
        if (p == MAP_FAILED)
            return false;
    }
    t->data = p;
    t->map_len = len;
    t->cap = ncap;
    return true;
}

void proto_decode_tensor_release(struct tens *t)
{
    if (t->map_len > 0)
        munmap(t->data, t->map_len);
    else
        free(t->data);
    t->data = NULL;
    t->cap = 0;
    t->map_len = 0;
}

static bool is_shape_member(const struct proto_decoder *d)
{
    const struct frame *f;
    const struct proto_member *m;

    if (d->nframes == 0)
        return false;
    f = &d->frames[d->nframes - 1];
    if (f->kind != FR_OBJECT)
        return false;
    m = &d->mems[f->base + f->count];
    return m->key_len == 5 && memcmp(m->key, "shape", 5) == 0;
}

enum loss_status proto_decode_tensor_begin(struct proto_decoder *d)
{
    struct tens *t = &d->t;
    size_t n = d->pending;
    char ptr[LOSS_POINTER_MAX];

    t->is_shape = is_shape_member(d);
    if (t->is_shape && n > 1) {
        proto_decode_pointer_of(d, d->nframes, false, 0, ptr);
        return proto_decode_tensor_fail(
            d, LOSS_ETENSOR, ptr,
            "shape must be a flat array of non-negative "
            "integers");
    }
    if (n > d->lim.max_rank) {
        proto_decode_pointer_of(d, d->nframes, false, 0, ptr);
        return proto_decode_fail(d, LOSS_ETOOLARGE, ptr,
                                 "tensor rank exceeds the limit max_rank = %zu",
                                 d->lim.max_rank);
    }
    d->pending = 0;
    t->active = true;
    t->level = n - 1;
    t->rank = 0;
    t->known = 0;
    t->len = 0;
    for (size_t l = 0; l < n; l++)
        t->count[l] = 0;
    return LOSS_OK;
}

/* The array at tensor level L has more (or fewer) children than the first. */
static enum loss_status ragged(struct proto_decoder *d, size_t L, size_t have,
                               bool more)
{
    char ptr[LOSS_POINTER_MAX];

    proto_decode_pointer_of(d, d->nframes, false, L, ptr);
    if (more)
        return proto_decode_tensor_fail(
            d, LOSS_ETENSOR, ptr,
            "ragged tensor: this array has more elements than "
            "the first array at this depth (%zu)",
            d->t.dims[L]);
    return proto_decode_tensor_fail(
        d, LOSS_ETENSOR, ptr,
        "ragged tensor: this array has %zu elements, the "
        "first array at this depth has %zu",
        have, d->t.dims[L]);
}

enum loss_status proto_decode_tensor_open(struct proto_decoder *d)
{
    struct tens *t = &d->t;
    size_t L = t->level;
    char ptr[LOSS_POINTER_MAX];

    if (t->is_shape || (t->rank != 0 && L + 1 >= t->rank)) {
        proto_decode_pointer_here(d, ptr);
        if (t->is_shape)
            return proto_decode_tensor_fail(
                d, LOSS_ETENSOR, ptr,
                "shape must be a flat array of non-negative "
                "integers");
        return proto_decode_tensor_fail(
            d, LOSS_ETENSOR, ptr,
            "ragged tensor: expected a number, found an "
            "array");
    }
    if (L + 1 >= d->lim.max_rank) {
        proto_decode_pointer_here(d, ptr);
        return proto_decode_fail(d, LOSS_ETOOLARGE, ptr,
                                 "tensor rank exceeds the limit max_rank = %zu",
                                 d->lim.max_rank);
    }
    if ((t->known >> L & 1u) && t->count[L] >= t->dims[L])
        return ragged(d, L, 0, true);
    t->level = L + 1;
    t->count[L + 1] = 0;
    return LOSS_OK;
}

enum loss_status proto_decode_tensor_number(struct proto_decoder *d, double x)
{
    struct tens *t = &d->t;
    size_t L = t->level;
    char ptr[LOSS_POINTER_MAX];

    if (t->rank == 0) {
        t->rank = L + 1;
    } else if (L + 1 != t->rank) {
        proto_decode_pointer_here(d, ptr);
        return proto_decode_tensor_fail(
            d, LOSS_ETENSOR, ptr,
            "ragged tensor: expected an array, found a "
            "number");
    }
    if ((t->known >> L & 1u) && t->count[L] >= t->dims[L])
        return ragged(d, L, 0, true);
    if (t->is_shape) {
        if (!(x >= 0 && x < 0x1p64 && x == (double)(uint64_t)x)) {
            proto_decode_pointer_here(d, ptr);
            return proto_decode_tensor_fail(
                d, LOSS_ETENSOR, ptr,
                "shape must be a flat array of non-negative "
                "integers");
        }
        if (t->len >= d->lim.max_rank) {
            proto_decode_pointer_here(d, ptr);
            return proto_decode_fail(
                d, LOSS_ETOOLARGE, ptr,
                "tensor rank exceeds the limit max_rank = %zu",
                d->lim.max_rank);
        }
    } else if (d->elements >= d->lim.max_elements) {
        proto_decode_pointer_here(d, ptr);
        return proto_decode_fail(
            d, LOSS_ETOOLARGE, ptr,
            "more tensor elements than the limit max_elements = %zu",
            d->lim.max_elements);
    }
    if (t->len == t->cap) {
        /* double, but never past what max_elements still allows */
        size_t room = t->is_shape
                          ? TENSOR_MAX_RANK
                          : d->lim.max_elements - (d->elements - t->len);
        size_t ncap = t->cap ? t->cap * 2 : 64, old = t->cap;

        if (ncap > room)
            ncap = room;
        if (ncap > SIZE_MAX / sizeof(double))
            return proto_decode_oom(d);
        if (!tens_resize(t, ncap))
            return proto_decode_oom(d);
        d->scratch += (ncap - old) * sizeof(double);
    }
    t->data[t->len++] = x;
    t->count[L]++;
    if (!t->is_shape)
        d->elements++;
    d->state = ST_AFTER;
    return LOSS_OK;
}

/*
 * True when every element is a finite integral value. |x| >= 2^52 is always
 * integral; below that the conversion to long long is exact.
 */
static bool all_integral(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double a = x[i] < 0 ? -x[i] : x[i];

        if (a < 0x1p52) {
            if (x[i] != (double)(long long)x[i])
                return false;
        } else if (!(a <= 1.79769313486231570815e308)) {
            return false; /* infinity or NaN */
        }
    }
    return true;
}

/* A new document-owned proto_tensor; NULL on OOM. */
static struct proto_tensor *tensor_new(struct proto_decoder *d, size_t ndim,
                                       const size_t *shape, double *data,
                                       size_t len, enum proto_encoding encoding)
{
    struct proto_tensor *pt = proto_doc_alloc(d->doc, sizeof(*pt));

    if (pt == NULL)
        return NULL;
    memset(pt, 0, sizeof(*pt));
    pt->t.ndim = ndim;
    for (size_t i = 0; i < ndim; i++)
        pt->t.shape[i] = shape[i];
    pt->t.data = data;
    pt->integral = all_integral(data, len);
    pt->encoding = encoding;
    return pt;
}

/*
 * The extent of a shape: its element count or, for an empty tensor, the
 * product of its dimensions other than 0 (0 when all are 0); false when it
 * overflows. It is what an empty tensor costs all the same: a (10^8, 0)
 * tensor holds no number, but a loss over it has 10^8 samples and its
 * per-sample answer 10^8 rows. Limits count extents, so a small body can
 * never ask for more work than max_elements allows.
 */
static bool shape_extent(const size_t *dims, size_t n, size_t *ret)
{
    size_t e = 1;
    bool empty = false, nonzero = false;

    for (size_t i = 0; i < n; i++) {
        empty = empty || dims[i] == 0;
        nonzero = nonzero || dims[i] != 0;
        if (!tensor_mul(e, dims[i] ? dims[i] : 1, &e))
            return false;
    }
    *ret = empty && !nonzero ? 0 : e;
    return true;
}

/*
 * The dimensions of a checked shape value (x holds n non-negative integers
 * below 2^64) and their product, refused when the extent overflows or
 * exceeds room.
 */
static enum loss_status shape_check(struct proto_decoder *d, const double *x,
                                    size_t n, size_t room, size_t *dims,
                                    size_t *ret_numel, bool closing)
{
    size_t numel = 1, extent = 0;
    bool overflow = false;
    char ptr[LOSS_POINTER_MAX];

    for (size_t i = 0; i < n; i++) {
        dims[i] = (size_t)x[i];
        overflow = overflow || !tensor_mul(numel, dims[i], &numel);
    }
    overflow = overflow || !shape_extent(dims, n, &extent);
    if (!overflow && extent <= room) {
        *ret_numel = numel;
        return LOSS_OK;
    }
    if (closing)
        proto_decode_member_pointer(d, "shape", ptr);
    else
        proto_decode_pointer_of(d, d->nframes, false, 0, ptr);
    if (overflow)
        return proto_decode_fail(d, LOSS_ETOOLARGE, ptr,
                                 "shape has more elements than the limit "
                                 "max_elements = %zu",
                                 d->lim.max_elements);
    if (numel < extent)
        return proto_decode_fail(d, LOSS_ETOOLARGE, ptr,
                                 "shape spans %zu elements (its dimensions "
                                 "but 0), more than the limit "
                                 "max_elements = %zu allows",
                                 extent, d->lim.max_elements);
    return proto_decode_fail(d, LOSS_ETOOLARGE, ptr,
                             "shape has %zu elements, more than the limit "
                             "max_elements = %zu allows",
                             numel, d->lim.max_elements);
}

/*
 * Counts an empty tensor of shape dims (rank n) against max_elements by its
 * extent (shape_extent()); ptr names it.
 */
static enum loss_status count_empty(struct proto_decoder *d, const size_t *dims,
                                    size_t n, const char *ptr)
{
    size_t extent;

    if (!shape_extent(dims, n, &extent) ||
        extent > d->lim.max_elements - d->elements)
        return proto_decode_fail(d, LOSS_ETOOLARGE, ptr,
                                 "an empty tensor spans more elements (its "
                                 "dimensions but 0) than the "
                                 "limit max_elements = %zu allows",
                                 d->lim.max_elements);
    d->elements += extent;
    return LOSS_OK;
}

/*
 * How many elements a shape being completed may declare: what max_elements
 * still allows, plus the elements of a "data" member read before the shape
 * (already counted, and the same elements the shape describes). O(1): a
 * hostile object repeating "shape" 100k times must not rescan its members.
 */
static size_t shape_room(const struct proto_decoder *d)
{
    const struct frame *f = &d->frames[d->nframes - 1];

    return d->lim.max_elements - d->elements + f->data_elements;
}

/*
 * A closed tensor of at most TENSOR_COPY_MAX elements is copied into the
 * arena, so a small one costs no allocation of its own; a larger one's
 * buffer is moved to the document and shrunk only when TENSOR_SLACK_MAX or
 * more of it is unused (a realloc per tensor otherwise buys nothing). The
 * copy bound also keeps that slack small next to the data (a buffer that
 * doubled from 64 elements has less slack than data), and a body of many
 * one-element tensors does not hold 64 doubles for each.
 */
#define TENSOR_COPY_MAX  32
#define TENSOR_SLACK_MAX ((size_t)4096)

/* The tensor's root array closed: it becomes a value. */
static enum loss_status tensor_finish(struct proto_decoder *d)
{
    struct tens *t = &d->t;
    struct proto_tensor *pt;
    struct proto_value v;
    size_t numel;
    double *data;

    if (!tensor_shape_numel(t->dims, t->rank, &numel) || numel != t->len)
        return proto_decode_fail(d, LOSS_EINTERNAL, NULL,
                                 "tensor shape bookkeeping");
    if (t->is_shape) {
        size_t dims[TENSOR_MAX_RANK];

        if (shape_check(d, t->data, t->len, shape_room(d), dims, &numel,
                        false) != LOSS_OK)
            return d->status;
    } else if (numel == 0) {
        char ptr[LOSS_POINTER_MAX];

        proto_decode_pointer_of(d, d->nframes, false, 0, ptr);
        if (count_empty(d, t->dims, t->rank, ptr) != LOSS_OK)
            return d->status;
    }
    if (t->len <= TENSOR_COPY_MAX) {
        /* copied: no block of its own (and never a NULL data pointer, even
           for zero elements); the buffer stays for the next tensor */
        data = proto_doc_alloc(d->doc, (t->len ? t->len : 1) * sizeof(double));
        if (data == NULL)
            return proto_decode_oom(d);
        if (t->len > 0)
            memcpy(data, t->data, t->len * sizeof(double));
    } else {
        /* moved: what it keeps unused is under TENSOR_SLACK_MAX */
        size_t old = t->cap;

        if ((t->cap - t->len) * sizeof(double) >= TENSOR_SLACK_MAX &&
            tens_resize(t, t->len))
            d->scratch -= (old - t->len) * sizeof(double);
        if (!(t->map_len > 0
                  ? proto_doc_own_mapping(d->doc, t->data, t->map_len)
                  : proto_doc_own(d->doc, t->data, t->cap * sizeof(double))))
            return proto_decode_oom(d);
        data = t->data;
        d->scratch -= t->cap * sizeof(double);
        t->data = NULL;
        t->cap = 0;
        t->map_len = 0;
    }
    t->active = false;
    pt = tensor_new(d, t->rank, t->dims, data, t->len, PROTO_ENC_NESTED);
    if (pt == NULL)
        return proto_decode_oom(d);
    v.type = PROTO_TENSOR;
    v.u.tensor = pt;
    return proto_decode_emit(d, &v);
}

enum loss_status proto_decode_tensor_close(struct proto_decoder *d)
{
    struct tens *t = &d->t;
    size_t L = t->level;
    size_t c = t->count[L];

    if (t->rank == 0)
        t->rank = L + 1; /* an empty innermost array: [] or [[], []] */
    if (t->known >> L & 1u) {
        if (c != t->dims[L]) {
            if (ragged(d, L, c, false) != LOSS_OK)
                return d->status;
            return proto_decode_skip_close(
                d); /* recovered: this ']' closes a level */
        }
    } else {
        t->dims[L] = c;
        t->known |= 1u << L;
    }
    if (L == 0)
        return tensor_finish(d);
    t->level = L - 1;
    t->count[L - 1]++;
    d->state = ST_AFTER;
    return LOSS_OK;
}

enum loss_status proto_decode_tensor_not_number(struct proto_decoder *d,
                                                const char *what)
{
    char ptr[LOSS_POINTER_MAX];

    proto_decode_pointer_here(d, ptr);
    if (d->t.is_shape)
        return proto_decode_tensor_fail(
            d, LOSS_ETENSOR, ptr,
            "shape must be a flat array of non-negative "
            "integers");
    return proto_decode_tensor_fail(
        d, LOSS_ETENSOR, ptr,
        "a tensor holds numbers (or \"NaN\", \"Infinity\", "
        "\"-Infinity\"), found %s",
        what);
}

static uint64_t le_bytes(const unsigned char *b, size_t n)
{
    uint64_t u = 0;

    for (size_t i = n; i-- > 0;)
        u = u << 8 | b[i];
    return u;
}

/*
 * Converts numel little-endian elements of size es at the start of buf to
 * doubles in place. Going backwards is safe: element i's source bytes
 * [i*es, (i+1)*es) are read before its destination [8i, 8i+8) is written,
 * and the destination only covers sources of elements already converted.
 */
static void b64_convert(unsigned char *buf, size_t numel, int dtype)
{
    for (size_t i = numel; i-- > 0;) {
        double x;

        switch (dtype) {
        case 0: { /* float32 */
            uint32_t u = (uint32_t)le_bytes(buf + 4 * i, 4);
            float f;

            memcpy(&f, &u, sizeof(f));
            x = (double)f;
            break;
        }
        case 1: { /* float64 */
            uint64_t u = le_bytes(buf + 8 * i, 8);

            memcpy(&x, &u, sizeof(x));
            break;
        }
        case 2: /* int32 */
            x = (double)(int32_t)(uint32_t)le_bytes(buf + 4 * i, 4);
            break;
        default: /* int64 */
            x = (double)(int64_t)le_bytes(buf + 8 * i, 8);
            break;
        }
        memcpy(buf + 8 * i, &x, sizeof(x));
    }
}

/* proto_decode_member_pointer() as an expression, for one-line failures. */
static const char *mptr(const struct proto_decoder *d, const char *key,
                        char *buf)
{
    proto_decode_member_pointer(d, key, buf);
    return buf;
}

enum loss_status proto_decode_tensor_object(struct proto_decoder *d,
                                            const struct proto_member *m,
                                            size_t n, struct proto_value *ret)
{
    static const char *const dtypes[] = {"float32", "float64", "int32",
                                         "int64"};
    static const size_t dsize[] = {4, 8, 4, 8};
    const struct proto_value *shape = NULL, *data = NULL, *dtype = NULL,
                             *b64 = NULL;
    size_t dims[TENSOR_MAX_RANK], numel, rank;
    char ptr[LOSS_POINTER_MAX];
    struct proto_tensor *pt;
    int dt = -1;

    /* recovered: an invalid member (already recorded) makes it invalid */
    for (size_t i = 0; i < n && d->lim.recover_values; i++) {
        if (m[i].value.type == PROTO_INVALID) {
            *ret = m[i].value;
            return LOSS_OK;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (proto_decode_key_is(&m[i], "shape")) {
            shape = &m[i].value;
        } else if (proto_decode_key_is(&m[i], "data")) {
            data = &m[i].value;
        } else if (proto_decode_key_is(&m[i], "dtype")) {
            dtype = &m[i].value;
        } else if (proto_decode_key_is(&m[i], "base64")) {
            b64 = &m[i].value;
        } else {
            proto_decode_member_pointer(d, NULL, ptr);
            loss_pointer_append(ptr, sizeof(ptr), m[i].key, m[i].key_len);
            return proto_decode_fail_value(
                d, ret, LOSS_EUNKNOWN, ptr,
                "unknown key \"%.64s\" in a tensor object (an object "
                "with \"shape\" takes data, or dtype and base64)",
                m[i].key);
        }
    }
    if (shape->type != PROTO_TENSOR || shape->u.tensor->t.ndim != 1 ||
        shape->u.tensor->encoding != PROTO_ENC_NESTED)
        return proto_decode_fail_value(
            d, ret, LOSS_ETENSOR, mptr(d, "shape", ptr),
            "shape must be a flat array of non-negative integers");
    rank = shape->u.tensor->t.shape[0];
    /* data was counted as it was read; base64 is counted below */
    if (shape_check(d, shape->u.tensor->t.data, rank, SIZE_MAX, dims, &numel,
                    true) != LOSS_OK)
        return d->status;
    if (data != NULL && b64 != NULL)
        return proto_decode_fail_value(
            d, ret, LOSS_ETENSOR, mptr(d, NULL, ptr),
            "a tensor object has data or base64, not both");
    if (data != NULL) {
        const struct proto_tensor *dv;

        if (dtype != NULL)
            return proto_decode_fail_value(
                d, ret, LOSS_EUNKNOWN, mptr(d, "dtype", ptr),
                "dtype goes with base64 only; data is numbers");
        if (data->type != PROTO_TENSOR || data->u.tensor->t.ndim != 1 ||
            data->u.tensor->encoding != PROTO_ENC_NESTED)
            return proto_decode_fail_value(
                d, ret, LOSS_ETENSOR, mptr(d, "data", ptr),
                "data must be a flat array of numbers");
        dv = data->u.tensor;
        if (dv->t.shape[0] != numel) {
            char s[128];

            tensor_shape_format(dims, rank, s, sizeof(s));
            return proto_decode_fail_value(
                d, ret, LOSS_ETENSOR, mptr(d, "data", ptr),
                "data has %zu numbers but shape %s has %zu elements",
                dv->t.shape[0], s, numel);
        }
        if (numel == 0 &&
            count_empty(d, dims, rank, mptr(d, "shape", ptr)) != LOSS_OK)
            return d->status;
        pt = tensor_new(d, rank, dims, dv->t.data, numel, PROTO_ENC_FLAT);
        if (pt == NULL)
            return proto_decode_oom(d);
    } else if (b64 != NULL) {
        size_t bytes, room;
        unsigned char *buf;

        if (dtype == NULL)
            return proto_decode_fail_value(
                d, ret, LOSS_ETENSOR, mptr(d, NULL, ptr),
                "base64 needs a dtype: float32, float64, int32 or "
                "int64");
        for (int i = 0; i < 4 && dtype->type == PROTO_STRING; i++)
            if (strcmp(dtype->u.string.ptr, dtypes[i]) == 0 &&
                dtype->u.string.len == strlen(dtypes[i]))
                dt = i;
        if (dt < 0)
            return proto_decode_fail_value(
                d, ret, LOSS_ETENSOR, mptr(d, "dtype", ptr),
                "dtype must be float32, float64, int32 or int64");
        if (b64->type != PROTO_STRING)
            return proto_decode_fail_value(d, ret, LOSS_ETENSOR,
                                           mptr(d, "base64", ptr),
                                           "base64 must be a string");
        if (numel == 0 &&
            count_empty(d, dims, rank, mptr(d, "shape", ptr)) != LOSS_OK)
            return d->status;
        if (numel > d->lim.max_elements - d->elements)
            return proto_decode_fail(
                d, LOSS_ETOOLARGE, mptr(d, "shape", ptr),
                "shape has %zu elements, more than the limit "
                "max_elements = %zu allows",
                numel, d->lim.max_elements);
        if (!tensor_mul(numel, sizeof(double), &room))
            return proto_decode_oom(d);
        bytes = numel * dsize[dt];
        buf = malloc(room ? room : sizeof(double));
        if (buf == NULL)
            return proto_decode_oom(d);
        if (!proto_base64_decode(b64->u.string.ptr, b64->u.string.len, buf,
                                 bytes)) {
            char s[128];

            free(buf);
            tensor_shape_format(dims, rank, s, sizeof(s));
            return proto_decode_fail_value(
                d, ret, LOSS_ETENSOR, mptr(d, "base64", ptr),
                "base64 must be padded standard base64 of %zu "
                "bytes (shape %s of %s)",
                bytes, s, dtypes[dt]);
        }
        b64_convert(buf, numel, dt);
        if (!proto_doc_own(d->doc, buf, room ? room : sizeof(double))) {
            free(buf);
            return proto_decode_oom(d);
        }
        d->elements += numel;
        pt = tensor_new(d, rank, dims, (double *)(void *)buf, numel,
                        PROTO_ENC_BASE64);
        if (pt == NULL)
            return proto_decode_oom(d);
    } else {
        return proto_decode_fail_value(
            d, ret, LOSS_ETENSOR, mptr(d, NULL, ptr),
            "a tensor object needs data, or dtype and base64");
    }
    ret->type = PROTO_TENSOR;
    ret->u.tensor = pt;
    return LOSS_OK;
}

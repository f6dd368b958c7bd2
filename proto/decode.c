/*
 * decode.c - the streaming decoder of decode.h.
 *
 * One explicit state machine reads the body byte by byte, whatever the chunk
 * boundaries: a token cut by a chunk boundary leaves its state in the
 * decoder (a partial number in tok, a partial string in str, the position in
 * a literal, a \u escape or a UTF-8 sequence), so results never depend on how
 * the body was split. There is no recursion: open containers sit on an
 * explicit stack bounded by max_depth.
 *
 * Tensors. An array whose first leaf is not known yet is "pending": only a
 * counter, no memory. The first leaf decides: a number, a non-finite string
 * or null makes the whole pending chain one tensor; anything else makes it
 * generic arrays. At most one tensor is open at a time (a tensor holds only
 * arrays and numbers), so its state is one struct: the open level, the
 * element count at each open level, and each dimension, known once the first
 * array at that level closed. Rectangularity is checked at every '[', ']'
 * and number, before the number is stored; numbers go into one doubling
 * buffer whose growth is capped by what max_elements still allows. A small
 * closed tensor is copied into the document's arena and the buffer serves
 * the next one; a large one's buffer moves to the document.
 *
 * Reuse. proto_decoder_reset() starts a new body from the state calloc()
 * gives proto_decoder_new(), but keeps the capacity of the stacks and
 * buffers (bounded in all), so a decoder that serves many small bodies
 * stops allocating for them.
 *
 * Values of open containers wait on two stacks (values of arrays, members of
 * objects); a closing container copies its children into the document's
 * arena (doc.h). Tensor data and long strings are handed to the document
 * whole, so freeing it walks no tree. Tensor elements are counted here and
 * given to the document when the body ends.
 *
 * An object with a "shape" key is a tensor object. Its "shape" value is read
 * as a flat array of non-negative integers that is not counted as tensor
 * elements; when the shape is complete its element count is checked against
 * max_elements, before any "data" or base64 buffer exists.
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
 *
 * Costs: O(1) work per byte and per value, except duplicate detection
 * (O(n log n) per object, at its close) and JSON pointers, which are built
 * only when an error is reported.
 */
#include "decode.h"

#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "doc.h"
#include "number.h"

/* --- the decoder --------------------------------------------------------- */

enum state {
    ST_VALUE,          /* a value (after ',' in an array, ':' or at start) */
    ST_VALUE_OR_CLOSE, /* after '[' */
    ST_AFTER,          /* after a value inside a container */
    ST_KEY_OR_CLOSE,   /* after '{' */
    ST_KEY,            /* after ',' in an object */
    ST_COLON,
    ST_STRING,
    ST_ESCAPE,  /* after '\' */
    ST_HEX,     /* in the four digits of \u */
    ST_LOW_BS,  /* after a high surrogate: its pair's '\' */
    ST_LOW_U,   /* after a high surrogate: its pair's 'u' */
    ST_UTF8,    /* inside a multi-byte UTF-8 sequence of a string */
    ST_NUMBER,  /* a number cut by the end of a chunk, in tok */
    ST_LITERAL, /* true, false, null */
    ST_DONE,    /* after the root value */
    ST_FINISHED /* finish() succeeded */
};

enum frame_kind { FR_ARRAY, FR_OBJECT };

struct frame {
    enum frame_kind kind;
    size_t base;          /* first child on the value or member stack */
    size_t count;         /* children completed */
    size_t data_elements; /* objects: elements of tensor "data" members */
};

/* The open tensor; at most one at a time. */
struct tens {
    bool active;
    bool is_shape;  /* the value of a "shape" key */
    size_t level;   /* innermost open level (0 = the tensor's root array) */
    size_t rank;    /* 0 while unknown */
    unsigned known; /* bit l: dims[l] is known */
    size_t dims[TENSOR_MAX_RANK];
    size_t count[TENSOR_MAX_RANK]; /* children completed at each level */
    double *data;
    size_t len;
    size_t cap;
};

struct proto_decoder {
    struct proto_limits lim;
    struct proto_doc *doc;
    enum state state;
    enum loss_status status; /* the first error, replayed */
    struct loss_error err;
    const unsigned char *chunk; /* start of the chunk being read */
    long long offset;           /* body bytes before chunk */
    long long tok_start;        /* offset of the current token */

    struct frame *frames;
    size_t nframes, frames_cap;
    struct proto_value *vals;
    size_t nvals, vals_cap;
    struct proto_member *mems;
    size_t nmems, mems_cap;
    size_t pending;  /* undecided arrays above the top frame */
    size_t elements; /* tensor elements so far (max_elements) */
    struct tens t;

    /* recovery: the open containers of a value being skipped */
    unsigned char *skipk; /* enum frame_kind of each, innermost last */
    size_t nskip, skip_cap;
    bool skip_counts;              /* its numbers count as elements */
    struct proto_value skip_value; /* the PROTO_INVALID emitted at its end */

    char *str; /* string being read, escapes decoded */
    size_t slen, scap;
    bool str_is_key;
    unsigned hex, hex_n, high;
    unsigned utf8_need;
    unsigned char utf8_lo, utf8_hi;

    char *tok; /* a number cut by a chunk boundary, NUL-terminated */
    size_t tlen, tcap;
    const char *lit;
    size_t lit_pos;

    size_t scratch; /* heap bytes of the stacks and buffers above */
    locale_t c_locale;
};

/* Bytes of JSON white space, number tokens and plain string content. */
enum { C_WS = 1, C_NUM = 2, C_PLAIN = 4 };

static const unsigned char ctype[256] = {
    ['\t'] = C_WS,           ['\n'] = C_WS,           ['\r'] = C_WS,
    [' '] = C_WS | C_PLAIN,  ['!'] = C_PLAIN,         ['#'] = C_PLAIN,
    ['$'] = C_PLAIN,         ['%'] = C_PLAIN,         ['&'] = C_PLAIN,
    ['\''] = C_PLAIN,        ['('] = C_PLAIN,         [')'] = C_PLAIN,
    ['*'] = C_PLAIN,         ['+'] = C_NUM | C_PLAIN, [','] = C_PLAIN,
    ['-'] = C_NUM | C_PLAIN, ['.'] = C_NUM | C_PLAIN, ['/'] = C_PLAIN,
    ['0'] = C_NUM | C_PLAIN, ['1'] = C_NUM | C_PLAIN, ['2'] = C_NUM | C_PLAIN,
    ['3'] = C_NUM | C_PLAIN, ['4'] = C_NUM | C_PLAIN, ['5'] = C_NUM | C_PLAIN,
    ['6'] = C_NUM | C_PLAIN, ['7'] = C_NUM | C_PLAIN, ['8'] = C_NUM | C_PLAIN,
    ['9'] = C_NUM | C_PLAIN, [':'] = C_PLAIN,         [';'] = C_PLAIN,
    ['<'] = C_PLAIN,         ['='] = C_PLAIN,         ['>'] = C_PLAIN,
    ['?'] = C_PLAIN,         ['@'] = C_PLAIN,         ['A'] = C_PLAIN,
    ['B'] = C_PLAIN,         ['C'] = C_PLAIN,         ['D'] = C_PLAIN,
    ['E'] = C_NUM | C_PLAIN, ['F'] = C_PLAIN,         ['G'] = C_PLAIN,
    ['H'] = C_PLAIN,         ['I'] = C_PLAIN,         ['J'] = C_PLAIN,
    ['K'] = C_PLAIN,         ['L'] = C_PLAIN,         ['M'] = C_PLAIN,
    ['N'] = C_PLAIN,         ['O'] = C_PLAIN,         ['P'] = C_PLAIN,
    ['Q'] = C_PLAIN,         ['R'] = C_PLAIN,         ['S'] = C_PLAIN,
    ['T'] = C_PLAIN,         ['U'] = C_PLAIN,         ['V'] = C_PLAIN,
    ['W'] = C_PLAIN,         ['X'] = C_PLAIN,         ['Y'] = C_PLAIN,
    ['Z'] = C_PLAIN,         ['['] = C_PLAIN,         [']'] = C_PLAIN,
    ['^'] = C_PLAIN,         ['_'] = C_PLAIN,         ['`'] = C_PLAIN,
    ['a'] = C_PLAIN,         ['b'] = C_PLAIN,         ['c'] = C_PLAIN,
    ['d'] = C_PLAIN,         ['e'] = C_NUM | C_PLAIN, ['f'] = C_PLAIN,
    ['g'] = C_PLAIN,         ['h'] = C_PLAIN,         ['i'] = C_PLAIN,
    ['j'] = C_PLAIN,         ['k'] = C_PLAIN,         ['l'] = C_PLAIN,
    ['m'] = C_PLAIN,         ['n'] = C_PLAIN,         ['o'] = C_PLAIN,
    ['p'] = C_PLAIN,         ['q'] = C_PLAIN,         ['r'] = C_PLAIN,
    ['s'] = C_PLAIN,         ['t'] = C_PLAIN,         ['u'] = C_PLAIN,
    ['v'] = C_PLAIN,         ['w'] = C_PLAIN,         ['x'] = C_PLAIN,
    ['y'] = C_PLAIN,         ['z'] = C_PLAIN,         ['{'] = C_PLAIN,
    ['|'] = C_PLAIN,         ['}'] = C_PLAIN,         ['~'] = C_PLAIN,
    [0x7f] = C_PLAIN,
};

#define IS_WS(c)    (ctype[(c)] & C_WS)
#define IS_NUM(c)   (ctype[(c)] & C_NUM)
#define IS_PLAIN(c) (ctype[(c)] & C_PLAIN)
#define IS_DIGIT(c) ((unsigned)(c) - '0' < 10u)

/* --- failures --------------------------------------------------------------
 */

static long long off_of(const struct proto_decoder *d, const unsigned char *p)
{
    return d->offset + (long long)(p - d->chunk);
}

__attribute__((format(printf, 3, 4))) static enum loss_status
syntax_at(struct proto_decoder *d, long long offset, const char *fmt, ...)
{
    char msg[LOSS_DETAIL_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d->status = loss_fail_at(&d->err, LOSS_EJSON, offset, "%s", msg);
    return d->status;
}

__attribute__((format(printf, 4, 5))) static enum loss_status
fail(struct proto_decoder *d, enum loss_status st, const char *pointer,
     const char *fmt, ...)
{
    char msg[LOSS_DETAIL_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d->status = loss_fail(&d->err, st, pointer, "%s", msg);
    return d->status;
}

static enum loss_status oom(struct proto_decoder *d)
{
    return fail(d, LOSS_ENOMEM, NULL, "out of memory while decoding");
}

/*
 * A value error (LOSS_ETENSOR, LOSS_EVALUE, LOSS_EUNKNOWN). Without
 * recover_values it is the decoder's error, as fail(). With it, the error
 * is added to the document's list (kept in full while there is room) and
 * *ret becomes the PROTO_INVALID that carries it; returns LOSS_OK (or
 * LOSS_ENOMEM).
 */
__attribute__((format(printf, 5, 0))) static enum loss_status
vfail_value(struct proto_decoder *d, struct proto_value *ret,
            enum loss_status st, const char *pointer, const char *fmt,
            va_list ap)
{
    const struct loss_error *e;
    char msg[LOSS_DETAIL_MAX];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (!d->lim.recover_values) {
        d->status = loss_fail(&d->err, st, pointer, "%s", msg);
        return d->status;
    }
    if (!proto_doc_add_error(d->doc, d->lim.max_value_errors, st, pointer, msg,
                             &e))
        return oom(d);
    ret->type = PROTO_INVALID;
    ret->u.invalid.status = st;
    ret->u.invalid.error = e;
    return LOSS_OK;
}

__attribute__((format(printf, 5, 6))) static enum loss_status
fail_value(struct proto_decoder *d, struct proto_value *ret,
           enum loss_status st, const char *pointer, const char *fmt, ...)
{
    enum loss_status r;
    va_list ap;

    va_start(ap, fmt);
    r = vfail_value(d, ret, st, pointer, fmt, ap);
    va_end(ap);
    return r;
}

/*
 * The JSON pointer of the position being read: every open generic container
 * (its current index or key), then index 0 for each pending array, then the
 * first tensor_levels levels of the open tensor.
 */
static void pointer_of(const struct proto_decoder *d, size_t nframes,
                       bool with_pending, size_t tensor_levels, char *buf)
{
    buf[0] = '\0';
    for (size_t i = 0; i < nframes; i++) {
        const struct frame *f = &d->frames[i];

        if (f->kind == FR_ARRAY) {
            loss_pointer_append_index(buf, LOSS_POINTER_MAX, f->count);
        } else {
            const struct proto_member *m = &d->mems[f->base + f->count];

            loss_pointer_append(buf, LOSS_POINTER_MAX, m->key, m->key_len);
        }
    }
    if (with_pending)
        for (size_t i = 0; i < d->pending; i++)
            loss_pointer_append_index(buf, LOSS_POINTER_MAX, 0);
    for (size_t l = 0; l < tensor_levels; l++)
        loss_pointer_append_index(buf, LOSS_POINTER_MAX, d->t.count[l]);
}

/*
 * While the top object closes: the pointer of the object itself, or of its
 * member key (when key is not NULL). Computed only for errors: it is
 * O(depth).
 */
static void member_pointer(const struct proto_decoder *d, const char *key,
                           char *buf)
{
    pointer_of(d, d->nframes - 1, false, 0, buf);
    if (key != NULL)
        loss_pointer_append(buf, LOSS_POINTER_MAX, key, strlen(key));
}

/* The pointer of the element being read now. */
static void pointer_here(const struct proto_decoder *d, char *buf)
{
    pointer_of(d, d->nframes, true, d->t.active ? d->t.level + 1 : 0, buf);
}

/* --- growable buffers ------------------------------------------------------
 */

/* Grows p (cap elements of size) to hold need; NULL on failure. */
static void *grow(struct proto_decoder *d, void *p, size_t *cap, size_t need,
                  size_t size)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;

    if (need <= *cap)
        return p;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size)
            return NULL;
        ncap *= 2;
    }
    np = realloc(p, ncap * size);
    if (np == NULL)
        return NULL;
    d->scratch += (ncap - *cap) * size;
    *cap = ncap;
    return np;
}

static bool str_append(struct proto_decoder *d, const void *s, size_t n)
{
    if (d->slen + n + 1 > d->scap) {
        char *p;

        if (n > SIZE_MAX / 2 - d->slen)
            return false;
        p = grow(d, d->str, &d->scap, d->slen + n + 1, 1);
        if (p == NULL)
            return false;
        d->str = p;
    }
    memcpy(d->str + d->slen, s, n);
    d->slen += n;
    return true;
}

static bool str_append_cp(struct proto_decoder *d, unsigned cp)
{
    unsigned char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return str_append(d, b, n);
}

static bool tok_append(struct proto_decoder *d, const unsigned char *s,
                       size_t n)
{
    if (d->tlen + n + 1 > d->tcap) {
        char *p;

        if (n > SIZE_MAX / 2 - d->tlen)
            return false;
        p = grow(d, d->tok, &d->tcap, d->tlen + n + 1, 1);
        if (p == NULL)
            return false;
        d->tok = p;
    }
    memcpy(d->tok + d->tlen, s, n);
    d->tlen += n;
    d->tok[d->tlen] = '\0';
    return true;
}

/* --- numbers ---------------------------------------------------------------
 */

/*
 * proto_number_read() on a token of the body: s is either tok (a token cut
 * by a chunk boundary, NUL-terminated there) or inside the chunk. A long
 * token that needs strtod is copied into tok to be terminated; when that
 * copy fails, the result stays PROTO_NUMBER_UNTERMINATED (out of memory).
 */
static enum proto_number_result
number_read(struct proto_decoder *d, const char *s, size_t n, double *ret)
{
    enum proto_number_result r =
        proto_number_read(s, n, s == d->tok, d->c_locale, ret);

    if (r != PROTO_NUMBER_UNTERMINATED)
        return r;
    d->tlen = 0;
    if (!tok_append(d, (const unsigned char *)s, n))
        return r;
    return proto_number_read(d->tok, n, true, d->c_locale, ret);
}
/* --- values into containers -------------------------------------------- */

/* Hands a complete value to its container (or makes it the root). */
static enum loss_status emit(struct proto_decoder *d,
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
        struct proto_value *p =
            grow(d, d->vals, &d->vals_cap, d->nvals + 1, sizeof(*d->vals));

        if (p == NULL)
            return oom(d);
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
    struct frame *f =
        grow(d, d->frames, &d->frames_cap, d->nframes + 1, sizeof(*d->frames));

    if (f == NULL)
        return oom(d);
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

/* --- skipping an invalid value (recover_values) ------------------------ */

static enum loss_status skip_push(struct proto_decoder *d, enum frame_kind kind)
{
    unsigned char *p = grow(d, d->skipk, &d->skip_cap, d->nskip + 1, 1);

    if (p == NULL)
        return oom(d);
    d->skipk = p;
    d->skipk[d->nskip++] = (unsigned char)kind;
    return LOSS_OK;
}

/* A ']' or '}' while skipping: the last one emits the invalid value. */
static enum loss_status skip_close(struct proto_decoder *d)
{
    if (--d->nskip == 0)
        return emit(d, &d->skip_value);
    d->state = ST_AFTER;
    return LOSS_OK;
}

/* A complete leaf while skipping; number: it counts as an element. */
static enum loss_status skip_leaf(struct proto_decoder *d, bool number)
{
    if (number && d->skip_counts) {
        if (d->elements >= d->lim.max_elements) {
            char ptr[LOSS_POINTER_MAX];

            pointer_here(d, ptr);
            return fail(d, LOSS_ETOOLARGE, ptr,
                        "more tensor elements than the limit max_elements "
                        "= %zu",
                        d->lim.max_elements);
        }
        d->elements++;
    }
    d->state = ST_AFTER;
    return LOSS_OK;
}

/*
 * A value error inside the open tensor (or its pending arrays). Without
 * recover_values, the decoder's error. With it, the error is recorded, the
 * tensor's open levels become skip levels, and the caller handles the
 * current token again in skip mode (d->nskip > 0 tells it to).
 */
__attribute__((format(printf, 4, 5))) static enum loss_status
tensor_fail(struct proto_decoder *d, enum loss_status st, const char *pointer,
            const char *fmt, ...)
{
    struct tens *t = &d->t;
    enum loss_status r;
    size_t n = t->active ? t->level + 1 : d->pending;
    va_list ap;

    va_start(ap, fmt);
    r = vfail_value(d, &d->skip_value, st, pointer, fmt, ap);
    va_end(ap);
    if (r != LOSS_OK || !d->lim.recover_values)
        return r;
    for (size_t i = 0; i < n; i++)
        if (skip_push(d, FR_ARRAY) != LOSS_OK)
            return d->status;
    d->skip_counts = !t->is_shape;
    d->pending = 0;
    t->active = false;
    t->len = 0;
    d->scratch -= t->cap * sizeof(double);
    free(t->data);
    t->data = NULL;
    t->cap = 0;
    return LOSS_OK;
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

/* The first leaf was a number, a non-finite string or null. */
static enum loss_status tensor_begin(struct proto_decoder *d)
{
    struct tens *t = &d->t;
    size_t n = d->pending;
    char ptr[LOSS_POINTER_MAX];

    t->is_shape = is_shape_member(d);
    if (t->is_shape && n > 1) {
        pointer_of(d, d->nframes, false, 0, ptr);
        return tensor_fail(d, LOSS_ETENSOR, ptr,
                           "shape must be a flat array of non-negative "
                           "integers");
    }
    if (n > d->lim.max_rank) {
        pointer_of(d, d->nframes, false, 0, ptr);
        return fail(d, LOSS_ETOOLARGE, ptr,
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

    pointer_of(d, d->nframes, false, L, ptr);
    if (more)
        return tensor_fail(d, LOSS_ETENSOR, ptr,
                           "ragged tensor: this array has more elements than "
                           "the first array at this depth (%zu)",
                           d->t.dims[L]);
    return tensor_fail(d, LOSS_ETENSOR, ptr,
                       "ragged tensor: this array has %zu elements, the "
                       "first array at this depth has %zu",
                       have, d->t.dims[L]);
}

/* '[' inside a tensor. */
static enum loss_status tensor_open(struct proto_decoder *d)
{
    struct tens *t = &d->t;
    size_t L = t->level;
    char ptr[LOSS_POINTER_MAX];

    if (t->is_shape || (t->rank != 0 && L + 1 >= t->rank)) {
        pointer_here(d, ptr);
        if (t->is_shape)
            return tensor_fail(d, LOSS_ETENSOR, ptr,
                               "shape must be a flat array of non-negative "
                               "integers");
        return tensor_fail(d, LOSS_ETENSOR, ptr,
                           "ragged tensor: expected a number, found an "
                           "array");
    }
    if (L + 1 >= d->lim.max_rank) {
        pointer_here(d, ptr);
        return fail(d, LOSS_ETOOLARGE, ptr,
                    "tensor rank exceeds the limit max_rank = %zu",
                    d->lim.max_rank);
    }
    if ((t->known >> L & 1u) && t->count[L] >= t->dims[L])
        return ragged(d, L, 0, true);
    t->level = L + 1;
    t->count[L + 1] = 0;
    return LOSS_OK;
}

/* A number (or a non-finite string) inside a tensor. */
static enum loss_status tensor_number(struct proto_decoder *d, double x)
{
    struct tens *t = &d->t;
    size_t L = t->level;
    char ptr[LOSS_POINTER_MAX];

    if (t->rank == 0) {
        t->rank = L + 1;
    } else if (L + 1 != t->rank) {
        pointer_here(d, ptr);
        return tensor_fail(d, LOSS_ETENSOR, ptr,
                           "ragged tensor: expected an array, found a "
                           "number");
    }
    if ((t->known >> L & 1u) && t->count[L] >= t->dims[L])
        return ragged(d, L, 0, true);
    if (t->is_shape) {
        if (!(x >= 0 && x < 0x1p64 && x == (double)(uint64_t)x)) {
            pointer_here(d, ptr);
            return tensor_fail(d, LOSS_ETENSOR, ptr,
                               "shape must be a flat array of non-negative "
                               "integers");
        }
        if (t->len >= d->lim.max_rank) {
            pointer_here(d, ptr);
            return fail(d, LOSS_ETOOLARGE, ptr,
                        "tensor rank exceeds the limit max_rank = %zu",
                        d->lim.max_rank);
        }
    } else if (d->elements >= d->lim.max_elements) {
        pointer_here(d, ptr);
        return fail(d, LOSS_ETOOLARGE, ptr,
                    "more tensor elements than the limit max_elements = %zu",
                    d->lim.max_elements);
    }
    if (t->len == t->cap) {
        /* double, but never past what max_elements still allows */
        size_t room = t->is_shape
                          ? TENSOR_MAX_RANK
                          : d->lim.max_elements - (d->elements - t->len);
        size_t ncap = t->cap ? t->cap * 2 : 64;
        double *p;

        if (ncap > room)
            ncap = room;
        if (ncap > SIZE_MAX / sizeof(double))
            return oom(d);
        p = realloc(t->data, ncap * sizeof(double));
        if (p == NULL)
            return oom(d);
        d->scratch += (ncap - t->cap) * sizeof(double);
        t->data = p;
        t->cap = ncap;
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
 * The dimensions of a checked shape value (x holds n non-negative integers
 * below 2^64) and their product, refused when it overflows or exceeds room.
 */
static enum loss_status shape_check(struct proto_decoder *d, const double *x,
                                    size_t n, size_t room, size_t *dims,
                                    size_t *ret_numel, bool closing)
{
    size_t numel = 1;
    bool overflow = false;
    char ptr[LOSS_POINTER_MAX];

    for (size_t i = 0; i < n; i++) {
        dims[i] = (size_t)x[i];
        overflow = overflow || !tensor_mul(numel, dims[i], &numel);
    }
    if (!overflow && numel <= room) {
        *ret_numel = numel;
        return LOSS_OK;
    }
    if (closing)
        member_pointer(d, "shape", ptr);
    else
        pointer_of(d, d->nframes, false, 0, ptr);
    if (overflow)
        return fail(d, LOSS_ETOOLARGE, ptr,
                    "shape has more elements than the limit "
                    "max_elements = %zu",
                    d->lim.max_elements);
    return fail(d, LOSS_ETOOLARGE, ptr,
                "shape has %zu elements, more than the limit "
                "max_elements = %zu allows",
                numel, d->lim.max_elements);
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
        return fail(d, LOSS_EINTERNAL, NULL, "tensor shape bookkeeping");
    if (t->is_shape) {
        size_t dims[TENSOR_MAX_RANK];

        if (shape_check(d, t->data, t->len, shape_room(d), dims, &numel,
                        false) != LOSS_OK)
            return d->status;
    }
    if (t->len <= TENSOR_COPY_MAX) {
        /* copied: no block of its own (and never a NULL data pointer, even
           for zero elements); the buffer stays for the next tensor */
        data = proto_doc_alloc(d->doc, (t->len ? t->len : 1) * sizeof(double));
        if (data == NULL)
            return oom(d);
        if (t->len > 0)
            memcpy(data, t->data, t->len * sizeof(double));
    } else {
        /* moved: what it keeps unused is under TENSOR_SLACK_MAX */
        if ((t->cap - t->len) * sizeof(double) >= TENSOR_SLACK_MAX) {
            double *p = realloc(t->data, t->len * sizeof(double));

            if (p != NULL) {
                d->scratch -= (t->cap - t->len) * sizeof(double);
                t->data = p;
                t->cap = t->len;
            }
        }
        if (!proto_doc_own(d->doc, t->data, t->cap * sizeof(double)))
            return oom(d);
        data = t->data;
        d->scratch -= t->cap * sizeof(double);
        t->data = NULL;
        t->cap = 0;
    }
    t->active = false;
    pt = tensor_new(d, t->rank, t->dims, data, t->len, PROTO_ENC_NESTED);
    if (pt == NULL)
        return oom(d);
    v.type = PROTO_TENSOR;
    v.u.tensor = pt;
    return emit(d, &v);
}

/* ']' inside a tensor. */
static enum loss_status tensor_close(struct proto_decoder *d)
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
            return skip_close(d); /* recovered: this ']' closes a level */
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

/*
 * The put_ and open/close functions below share one pattern: a value error
 * met while handling a token, when recovered, leaves d->nskip > 0 and the
 * token is then handled as part of the skipped value.
 */
static enum loss_status put_number(struct proto_decoder *d, double x)
{
    struct proto_value v;

    if (d->nskip == 0 && d->pending > 0 && tensor_begin(d) != LOSS_OK)
        return d->status;
    if (d->nskip == 0 && d->t.active &&
        (tensor_number(d, x) != LOSS_OK || d->nskip == 0))
        return d->status;
    if (d->nskip > 0)
        return skip_leaf(d, true);
    v.type = PROTO_NUMBER;
    v.u.number = x;
    return emit(d, &v);
}

/* A complete number token s[0..n); term is the byte after it (0 at EOF). */
static enum loss_status number_done(struct proto_decoder *d, const char *s,
                                    size_t n, unsigned char term)
{
    double x = 0;

    switch (number_read(d, s, n, &x)) {
    case PROTO_NUMBER_OK:
        return put_number(d, x);
    case PROTO_NUMBER_RANGE:
        return syntax_at(d, d->tok_start,
                         "number out of range: %.*s%s is beyond float64",
                         (int)(n > 40 ? 40 : n), s, n > 40 ? "..." : "");
    case PROTO_NUMBER_UNTERMINATED:
        return oom(d);
    case PROTO_NUMBER_SYNTAX:
        break;
    }
    if (n == 1 && s[0] == '-' && term == 'I')
        return syntax_at(d, d->tok_start,
                         "-Infinity is not JSON: send the string "
                         "\"-Infinity\"");
    return syntax_at(d, d->tok_start, "invalid number \"%.*s\"%s",
                     (int)(n > 40 ? 40 : n), s, n > 40 ? "..." : "");
}

/* A leaf that is not a number inside a tensor. */
static enum loss_status tensor_not_number(struct proto_decoder *d,
                                          const char *what)
{
    char ptr[LOSS_POINTER_MAX];

    pointer_here(d, ptr);
    if (d->t.is_shape)
        return tensor_fail(d, LOSS_ETENSOR, ptr,
                           "shape must be a flat array of non-negative "
                           "integers");
    return tensor_fail(d, LOSS_ETENSOR, ptr,
                       "a tensor holds numbers (or \"NaN\", \"Infinity\", "
                       "\"-Infinity\"), found %s",
                       what);
}

/* The string in str is a complete value. */
static enum loss_status put_string(struct proto_decoder *d)
{
    struct proto_value v;
    double x;
    bool nf = proto_nonfinite(d->str, d->slen, &x);
    char *s;

    if (d->nskip == 0 && d->pending > 0) {
        if ((nf ? tensor_begin(d) : pending_to_generic(d)) != LOSS_OK)
            return d->status;
    }
    if (d->nskip == 0 && d->t.active) {
        if (nf && (tensor_number(d, x) != LOSS_OK || d->nskip == 0))
            return d->status;
        if (!nf && tensor_not_number(d, "a string") != LOSS_OK)
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
            return oom(d);
        }
        d->scratch -= d->scap;
        d->str = NULL;
        d->scap = 0;
    } else {
        s = proto_doc_alloc(d->doc, d->slen + 1);
        if (s == NULL)
            return oom(d);
        memcpy(s, d->str, d->slen + 1);
    }
    v.type = PROTO_STRING;
    v.u.string.ptr = s;
    v.u.string.len = d->slen;
    return emit(d, &v);
}

/* true, false, null. */
static enum loss_status put_literal(struct proto_decoder *d, char first)
{
    struct proto_value v;

    if (d->nskip == 0 && d->pending > 0) {
        if ((first == 'n' ? tensor_begin(d) : pending_to_generic(d)) != LOSS_OK)
            return d->status;
    }
    if (d->nskip == 0 && d->t.active) {
        char ptr[LOSS_POINTER_MAX];

        if (first != 'n') {
            if (tensor_not_number(d, "a boolean") != LOSS_OK)
                return d->status;
        } else {
            pointer_here(d, ptr);
            if (tensor_fail(d, LOSS_EVALUE, ptr,
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
    return emit(d, &v);
}

static enum loss_status check_depth(struct proto_decoder *d)
{
    size_t depth =
        d->nframes + d->pending + d->nskip + (d->t.active ? d->t.level + 1 : 0);
    char ptr[LOSS_POINTER_MAX];

    if (depth < d->lim.max_depth)
        return LOSS_OK;
    pointer_here(d, ptr);
    return fail(d, LOSS_ETOOLARGE, ptr,
                "nesting deeper than the limit max_depth = %zu",
                d->lim.max_depth);
}

static enum loss_status open_array(struct proto_decoder *d)
{
    if (check_depth(d) != LOSS_OK)
        return d->status;
    if (d->nskip == 0 && d->t.active && tensor_open(d) != LOSS_OK)
        return d->status;
    if (d->nskip > 0) {
        if (skip_push(d, FR_ARRAY) != LOSS_OK)
            return d->status;
    } else if (!d->t.active) {
        d->pending++;
    }
    d->state = ST_VALUE_OR_CLOSE;
    return LOSS_OK;
}

static enum loss_status open_object(struct proto_decoder *d)
{
    if (check_depth(d) != LOSS_OK)
        return d->status;
    if (d->nskip == 0 && d->pending > 0 && pending_to_generic(d) != LOSS_OK)
        return d->status;
    if (d->nskip == 0 && d->t.active &&
        tensor_not_number(d, "an object") != LOSS_OK)
        return d->status;
    if (d->nskip > 0) {
        if (skip_push(d, FR_OBJECT) != LOSS_OK)
            return d->status;
    } else if (push_frame(d, FR_OBJECT) != LOSS_OK) {
        return d->status;
    }
    d->state = ST_KEY_OR_CLOSE;
    return LOSS_OK;
}

static enum loss_status close_array(struct proto_decoder *d)
{
    struct frame *f;
    struct proto_value v;

    if (d->nskip == 0 && d->pending > 0 && tensor_begin(d) != LOSS_OK)
        return d->status;
    if (d->nskip > 0)
        return skip_close(d);
    if (d->t.active)
        return tensor_close(d);
    f = &d->frames[d->nframes - 1];
    v.type = PROTO_ARRAY;
    v.u.array.items = NULL;
    v.u.array.len = f->count;
    if (f->count > 0) {
        v.u.array.items =
            proto_doc_alloc(d->doc, f->count * sizeof(struct proto_value));
        if (v.u.array.items == NULL)
            return oom(d);
        memcpy(v.u.array.items, d->vals + f->base,
               f->count * sizeof(struct proto_value));
    }
    d->nvals = f->base;
    d->nframes--;
    return emit(d, &v);
}

/* --- objects ---------------------------------------------------------------
 */

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
        return oom(d);
    idx = malloc(n * sizeof(*idx));
    if (idx == NULL)
        return oom(d);
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

static bool key_is(const struct proto_member *m, const char *k)
{
    size_t n = strlen(k);

    return m->key_len == n && memcmp(m->key, k, n) == 0;
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

/* member_pointer() as an expression, for one-line failures. */
static const char *mptr(const struct proto_decoder *d, const char *key,
                        char *buf)
{
    member_pointer(d, key, buf);
    return buf;
}

/* An object with a "shape" key: {"shape","data"} or {"shape","dtype","base64"}.
 */
static enum loss_status tensor_object(struct proto_decoder *d,
                                      const struct proto_member *m, size_t n,
                                      struct proto_value *ret)
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
        if (key_is(&m[i], "shape")) {
            shape = &m[i].value;
        } else if (key_is(&m[i], "data")) {
            data = &m[i].value;
        } else if (key_is(&m[i], "dtype")) {
            dtype = &m[i].value;
        } else if (key_is(&m[i], "base64")) {
            b64 = &m[i].value;
        } else {
            member_pointer(d, NULL, ptr);
            loss_pointer_append(ptr, sizeof(ptr), m[i].key, m[i].key_len);
            return fail_value(
                d, ret, LOSS_EUNKNOWN, ptr,
                "unknown key \"%.64s\" in a tensor object (an object "
                "with \"shape\" takes data, or dtype and base64)",
                m[i].key);
        }
    }
    if (shape->type != PROTO_TENSOR || shape->u.tensor->t.ndim != 1 ||
        shape->u.tensor->encoding != PROTO_ENC_NESTED)
        return fail_value(
            d, ret, LOSS_ETENSOR, mptr(d, "shape", ptr),
            "shape must be a flat array of non-negative integers");
    rank = shape->u.tensor->t.shape[0];
    /* data was counted as it was read; base64 is counted below */
    if (shape_check(d, shape->u.tensor->t.data, rank, SIZE_MAX, dims, &numel,
                    true) != LOSS_OK)
        return d->status;
    if (data != NULL && b64 != NULL)
        return fail_value(d, ret, LOSS_ETENSOR, mptr(d, NULL, ptr),
                          "a tensor object has data or base64, not both");
    if (data != NULL) {
        const struct proto_tensor *dv;

        if (dtype != NULL)
            return fail_value(d, ret, LOSS_EUNKNOWN, mptr(d, "dtype", ptr),
                              "dtype goes with base64 only; data is numbers");
        if (data->type != PROTO_TENSOR || data->u.tensor->t.ndim != 1 ||
            data->u.tensor->encoding != PROTO_ENC_NESTED)
            return fail_value(d, ret, LOSS_ETENSOR, mptr(d, "data", ptr),
                              "data must be a flat array of numbers");
        dv = data->u.tensor;
        if (dv->t.shape[0] != numel) {
            char s[128];

            tensor_shape_format(dims, rank, s, sizeof(s));
            return fail_value(
                d, ret, LOSS_ETENSOR, mptr(d, "data", ptr),
                "data has %zu numbers but shape %s has %zu elements",
                dv->t.shape[0], s, numel);
        }
        pt = tensor_new(d, rank, dims, dv->t.data, numel, PROTO_ENC_FLAT);
        if (pt == NULL)
            return oom(d);
    } else if (b64 != NULL) {
        size_t bytes, room;
        unsigned char *buf;

        if (dtype == NULL)
            return fail_value(
                d, ret, LOSS_ETENSOR, mptr(d, NULL, ptr),
                "base64 needs a dtype: float32, float64, int32 or "
                "int64");
        for (int i = 0; i < 4 && dtype->type == PROTO_STRING; i++)
            if (strcmp(dtype->u.string.ptr, dtypes[i]) == 0 &&
                dtype->u.string.len == strlen(dtypes[i]))
                dt = i;
        if (dt < 0)
            return fail_value(d, ret, LOSS_ETENSOR, mptr(d, "dtype", ptr),
                              "dtype must be float32, float64, int32 or int64");
        if (b64->type != PROTO_STRING)
            return fail_value(d, ret, LOSS_ETENSOR, mptr(d, "base64", ptr),
                              "base64 must be a string");
        if (numel > d->lim.max_elements - d->elements)
            return fail(d, LOSS_ETOOLARGE, mptr(d, "shape", ptr),
                        "shape has %zu elements, more than the limit "
                        "max_elements = %zu allows",
                        numel, d->lim.max_elements);
        if (!tensor_mul(numel, sizeof(double), &room))
            return oom(d);
        bytes = numel * dsize[dt];
        buf = malloc(room ? room : sizeof(double));
        if (buf == NULL)
            return oom(d);
        if (!proto_base64_decode(b64->u.string.ptr, b64->u.string.len, buf,
                                 bytes)) {
            char s[128];

            free(buf);
            tensor_shape_format(dims, rank, s, sizeof(s));
            return fail_value(d, ret, LOSS_ETENSOR, mptr(d, "base64", ptr),
                              "base64 must be padded standard base64 of %zu "
                              "bytes (shape %s of %s)",
                              bytes, s, dtypes[dt]);
        }
        b64_convert(buf, numel, dt);
        if (!proto_doc_own(d->doc, buf, room ? room : sizeof(double))) {
            free(buf);
            return oom(d);
        }
        d->elements += numel;
        pt = tensor_new(d, rank, dims, (double *)(void *)buf, numel,
                        PROTO_ENC_BASE64);
        if (pt == NULL)
            return oom(d);
    } else {
        return fail_value(d, ret, LOSS_ETENSOR, mptr(d, NULL, ptr),
                          "a tensor object needs data, or dtype and base64");
    }
    ret->type = PROTO_TENSOR;
    ret->u.tensor = pt;
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
            return oom(d);
    }
    if (find_duplicate(d, m, n, dups, &first) != LOSS_OK)
        goto out;
    for (size_t j = first; j < n; j++) {
        char ptr[LOSS_POINTER_MAX];
        struct proto_value v;

        if (!dups[j])
            continue;
        member_pointer(d, NULL, ptr);
        loss_pointer_append(ptr, sizeof(ptr), m[j].key, m[j].key_len);
        if (fail_value(d, &v, LOSS_EUNKNOWN, ptr, "duplicate key \"%.64s\"",
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

static enum loss_status close_object(struct proto_decoder *d)
{
    struct frame *f;
    struct proto_member *m;
    size_t n, dup;
    struct proto_value v;
    bool tensor = false;

    if (d->nskip > 0)
        return skip_close(d);
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

            member_pointer(d, NULL, ptr);
            loss_pointer_append(ptr, sizeof(ptr), m[dup].key, m[dup].key_len);
            return fail(d, LOSS_EUNKNOWN, ptr, "duplicate key \"%.64s\"",
                        m[dup].key);
        }
    }
    for (size_t i = 0; i < n && !tensor; i++)
        tensor = key_is(&m[i], "shape");
    if (tensor) {
        if (tensor_object(d, m, n, &v) != LOSS_OK)
            return d->status;
    } else {
        v.type = PROTO_OBJECT;
        v.u.object.members = NULL;
        v.u.object.len = n;
        if (n > 0) {
            v.u.object.members = proto_doc_alloc(d->doc, n * sizeof(*m));
            if (v.u.object.members == NULL)
                return oom(d);
            memcpy(v.u.object.members, m, n * sizeof(*m));
        }
    }
    d->nmems = f->base;
    d->nframes--;
    return emit(d, &v);
}

/* The string in str is a key: a new member waits for its value. */
static enum loss_status put_key(struct proto_decoder *d)
{
    struct proto_member *m;
    char *k;

    if (d->nskip > 0) {
        d->state = ST_COLON;
        return LOSS_OK;
    }
    k = proto_doc_alloc(d->doc, d->slen + 1);
    if (k == NULL)
        return oom(d);
    memcpy(k, d->str, d->slen + 1);
    m = grow(d, d->mems, &d->mems_cap, d->nmems + 1, sizeof(*d->mems));
    if (m == NULL)
        return oom(d);
    d->mems = m;
    m = &d->mems[d->nmems++];
    m->key = k;
    m->key_len = d->slen;
    m->value.type = PROTO_NULL;
    d->state = ST_COLON;
    return LOSS_OK;
}

/* --- the byte loop
 * ------------------------------------------------------------ */

static enum loss_status string_done(struct proto_decoder *d)
{
    if (!str_append(d, "", 0))
        return oom(d);
    d->str[d->slen] = '\0';
    return d->str_is_key ? put_key(d) : put_string(d);
}

/* Reads string bytes; returns the position after what it consumed. */
static const unsigned char *string_run(struct proto_decoder *d,
                                       const unsigned char *p,
                                       const unsigned char *end)
{
    while (p < end) {
        const unsigned char *s = p;
        unsigned char c;

        while (p < end && IS_PLAIN(*p))
            p++;
        if (p > s && !str_append(d, s, (size_t)(p - s))) {
            oom(d);
            return p;
        }
        if (p == end)
            return p;
        c = *p;
        if (c == '"') {
            string_done(d);
            return p + 1;
        }
        if (c == '\\') {
            d->state = ST_ESCAPE;
            return p + 1;
        }
        if (c < 0x20) {
            syntax_at(d, off_of(d, p),
                      "control character U+%04X in a string: escape it",
                      (unsigned)c);
            return p;
        }
        /* the lead byte of a multi-byte sequence (RFC 3629 table) */
        if (c >= 0xC2 && c <= 0xDF) {
            d->utf8_need = 1;
            d->utf8_lo = 0x80;
            d->utf8_hi = 0xBF;
        } else if (c >= 0xE0 && c <= 0xEF) {
            d->utf8_need = 2;
            d->utf8_lo = c == 0xE0 ? 0xA0 : 0x80;
            d->utf8_hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            d->utf8_need = 3;
            d->utf8_lo = c == 0xF0 ? 0x90 : 0x80;
            d->utf8_hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            syntax_at(d, off_of(d, p), "invalid UTF-8 byte 0x%02X",
                      (unsigned)c);
            return p;
        }
        if (!str_append(d, p, 1)) {
            oom(d);
            return p;
        }
        d->state = ST_UTF8;
        return p + 1;
    }
    return p;
}

/* A complete \uXXXX code unit in hex. */
static enum loss_status escape_unit(struct proto_decoder *d,
                                    const unsigned char *p)
{
    unsigned u = d->hex;

    if (d->high != 0) {
        unsigned cp;

        if (u < 0xDC00 || u > 0xDFFF)
            return syntax_at(d, off_of(d, p),
                             "lone surrogate \\u%04X: a high surrogate must "
                             "be followed by a low one",
                             d->high);
        cp = 0x10000 + ((d->high - 0xD800) << 10) + (u - 0xDC00);
        d->high = 0;
        d->state = ST_STRING;
        return str_append_cp(d, cp) ? LOSS_OK : oom(d);
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
        d->high = u;
        d->state = ST_LOW_BS;
        return LOSS_OK;
    }
    if (u >= 0xDC00 && u <= 0xDFFF)
        return syntax_at(d, off_of(d, p), "lone surrogate \\u%04X", u);
    d->state = ST_STRING;
    return str_append_cp(d, u) ? LOSS_OK : oom(d);
}

/*
 * The hot loop for the common case: numbers separated by commas inside the
 * innermost level of a tensor whose rank is known, all within the chunk.
 * It stops (leaving the decision to the general machine, which then reports
 * any error exactly as it would have) at anything else: a token cut by the
 * chunk end, a ']', a string, a full row, the element limit.
 */
static const unsigned char *tensor_run(struct proto_decoder *d,
                                       const unsigned char *p,
                                       const unsigned char *end)
{
    struct tens *t = &d->t;
    size_t L = t->level;
    size_t limit = (t->known >> L & 1u) ? t->dims[L] : SIZE_MAX;
    size_t max = d->lim.max_elements;

    while (p < end && (IS_DIGIT(*p) || *p == '-')) {
        const unsigned char *q = p;
        double x;

        while (q < end && IS_NUM(*q))
            q++;
        if (q == end || t->count[L] >= limit || d->elements >= max ||
            t->len == t->cap)
            break;
        switch (number_read(d, (const char *)p, (size_t)(q - p), &x)) {
        case PROTO_NUMBER_OK:
            break;
        default:
            /* let the general path report it */
            return p;
        }
        t->data[t->len++] = x;
        t->count[L]++;
        d->elements++;
        p = q;
        while (p < end && IS_WS(*p))
            p++;
        if (p == end || *p != ',') {
            d->state = ST_AFTER;
            return p;
        }
        p++;
        d->state = ST_VALUE;
        while (p < end && IS_WS(*p))
            p++;
    }
    return p;
}

/* A value starts at *p (state ST_VALUE or ST_VALUE_OR_CLOSE). */
static const unsigned char *value_start(struct proto_decoder *d,
                                        const unsigned char *p,
                                        const unsigned char *end)
{
    unsigned char c = *p;
    const unsigned char *q;

    d->tok_start = off_of(d, p);
    switch (c) {
    case '[':
        open_array(d);
        return p + 1;
    case '{':
        open_object(d);
        return p + 1;
    case ']':
        if (d->state == ST_VALUE_OR_CLOSE) {
            close_array(d);
            return p + 1;
        }
        syntax_at(d, off_of(d, p), "expected a value after ',', found ']'");
        return p;
    case '"':
        d->slen = 0;
        d->str_is_key = false;
        d->state = ST_STRING;
        return p + 1;
    case 't':
        d->lit = "true";
        break;
    case 'f':
        d->lit = "false";
        break;
    case 'n':
        d->lit = "null";
        break;
    case 'N':
        syntax_at(d, off_of(d, p), "NaN is not JSON: send the string \"NaN\"");
        return p;
    case 'I':
        syntax_at(d, off_of(d, p),
                  "Infinity is not JSON: send the string \"Infinity\"");
        return p;
    default:
        if (c == '-' || IS_DIGIT(c)) {
            q = p;
            while (q < end && IS_NUM(*q))
                q++;
            if (q == end) {
                d->tlen = 0;
                if (!tok_append(d, p, (size_t)(q - p)))
                    oom(d);
                d->state = ST_NUMBER;
                return q;
            }
            number_done(d, (const char *)p, (size_t)(q - p), *q);
            return q;
        }
        if (c >= 0x20 && c < 0x7f)
            syntax_at(d, off_of(d, p), "expected a value, found '%c'", c);
        else
            syntax_at(d, off_of(d, p), "expected a value, found byte 0x%02X",
                      (unsigned)c);
        return p;
    }
    d->lit_pos = 0;
    d->state = ST_LITERAL;
    return p;
}

static const unsigned char *after_value(struct proto_decoder *d,
                                        const unsigned char *p)
{
    unsigned char c = *p;
    bool in_array =
        d->nskip > 0
            ? d->skipk[d->nskip - 1] == FR_ARRAY
            : d->t.active || d->frames[d->nframes - 1].kind == FR_ARRAY;

    if (c == ',') {
        d->state = in_array ? ST_VALUE : ST_KEY;
        return p + 1;
    }
    if (c == ']' && in_array) {
        close_array(d);
        return p + 1;
    }
    if (c == '}' && !in_array) {
        close_object(d);
        return p + 1;
    }
    syntax_at(d, off_of(d, p), "expected ',' or '%c' after a value",
              in_array ? ']' : '}');
    return p;
}

static int hex_value(unsigned char c)
{
    if (IS_DIGIT(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void run(struct proto_decoder *d, const unsigned char *p,
                const unsigned char *end)
{
    while (p < end && d->status == LOSS_OK) {
        unsigned char c;

        switch (d->state) {
        case ST_VALUE:
        case ST_VALUE_OR_CLOSE:
            while (p < end && IS_WS(*p))
                p++;
            if (p == end)
                return;
            if (d->t.active && d->t.level + 1 == d->t.rank && !d->t.is_shape) {
                p = tensor_run(d, p, end);
                if (p == end || d->state == ST_AFTER)
                    break;
            }
            p = value_start(d, p, end);
            break;
        case ST_AFTER:
            while (p < end && IS_WS(*p))
                p++;
            if (p < end)
                p = after_value(d, p);
            break;
        case ST_KEY_OR_CLOSE:
        case ST_KEY:
            while (p < end && IS_WS(*p))
                p++;
            if (p == end)
                return;
            if (*p == '"') {
                d->tok_start = off_of(d, p);
                d->slen = 0;
                d->str_is_key = true;
                d->state = ST_STRING;
                p++;
            } else if (*p == '}' && d->state == ST_KEY_OR_CLOSE) {
                close_object(d);
                p++;
            } else {
                syntax_at(d, off_of(d, p),
                          d->state == ST_KEY ? "expected a key after ','"
                                             : "expected a key or '}'");
            }
            break;
        case ST_COLON:
            while (p < end && IS_WS(*p))
                p++;
            if (p == end)
                return;
            if (*p != ':') {
                syntax_at(d, off_of(d, p), "expected ':' after a key");
                break;
            }
            d->state = ST_VALUE;
            p++;
            break;
        case ST_STRING:
            p = string_run(d, p, end);
            break;
        case ST_ESCAPE: {
            static const char esc[256] = {
                ['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
                ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t',
            };

            c = *p;
            if (c == 'u') {
                d->hex = 0;
                d->hex_n = 0;
                d->state = ST_HEX;
            } else if (esc[c] != 0) {
                if (!str_append(d, &esc[c], 1)) {
                    oom(d);
                    break;
                }
                d->state = ST_STRING;
            } else {
                syntax_at(d, off_of(d, p), "invalid escape in a string");
                break;
            }
            p++;
            break;
        }
        case ST_HEX: {
            int v = hex_value(*p);

            if (v < 0) {
                syntax_at(d, off_of(d, p), "\\u needs four hex digits");
                break;
            }
            d->hex = d->hex << 4 | (unsigned)v;
            if (++d->hex_n == 4)
                escape_unit(d, p);
            p++;
            break;
        }
        case ST_LOW_BS:
        case ST_LOW_U:
            if (*p != (d->state == ST_LOW_BS ? '\\' : 'u')) {
                syntax_at(d, off_of(d, p),
                          "lone surrogate \\u%04X: a high surrogate must be "
                          "followed by a low one",
                          d->high);
                break;
            }
            if (d->state == ST_LOW_BS) {
                d->state = ST_LOW_U;
            } else {
                d->hex = 0;
                d->hex_n = 0;
                d->state = ST_HEX;
            }
            p++;
            break;
        case ST_UTF8:
            c = *p;
            if (c < d->utf8_lo || c > d->utf8_hi) {
                syntax_at(d, off_of(d, p),
                          "invalid UTF-8 (overlong, surrogate, beyond "
                          "U+10FFFF or truncated) at byte 0x%02X",
                          (unsigned)c);
                break;
            }
            if (!str_append(d, p, 1)) {
                oom(d);
                break;
            }
            d->utf8_lo = 0x80;
            d->utf8_hi = 0xBF;
            if (--d->utf8_need == 0)
                d->state = ST_STRING;
            p++;
            break;
        case ST_NUMBER: {
            const unsigned char *s = p;

            while (p < end && IS_NUM(*p))
                p++;
            if (!tok_append(d, s, (size_t)(p - s))) {
                oom(d);
                break;
            }
            if (p < end)
                number_done(d, d->tok, d->tlen, *p);
            break;
        }
        case ST_LITERAL:
            if (*p != (unsigned char)d->lit[d->lit_pos]) {
                syntax_at(d, off_of(d, p), "invalid literal: expected \"%s\"",
                          d->lit);
                break;
            }
            p++;
            if (d->lit[++d->lit_pos] == '\0')
                put_literal(d, d->lit[0]);
            break;
        case ST_DONE:
            while (p < end && IS_WS(*p))
                p++;
            if (p < end)
                syntax_at(d, off_of(d, p),
                          "trailing data after the JSON value");
            break;
        case ST_FINISHED:
            fail(d, LOSS_EINTERNAL, NULL, "the decoder was already finished");
            break;
        }
    }
}

/* --- the interface ----------------------------------------------------------
 */

struct proto_decoder *proto_decoder_new(const struct proto_limits *lim)
{
    struct proto_decoder *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    d->lim = *lim;
    if (d->lim.max_rank > TENSOR_MAX_RANK)
        d->lim.max_rank = TENSOR_MAX_RANK;
    if (d->lim.max_value_errors == 0)
        d->lim.max_value_errors = 1;
    d->doc = proto_doc_new();
    d->c_locale = proto_number_locale_new();
    if (d->doc == NULL || d->c_locale == (locale_t)0) {
        proto_decoder_free(d);
        return NULL;
    }
    d->state = ST_VALUE;
    loss_error_init(&d->err);
    return d;
}

static enum loss_status report(const struct proto_decoder *d,
                               struct loss_error *err)
{
    if (err != NULL && d->status != LOSS_OK)
        *err = d->err;
    return d->status;
}

enum loss_status proto_decoder_feed(struct proto_decoder *d, const char *buf,
                                    size_t len, struct loss_error *err)
{
    if (d->status == LOSS_OK && len > 0) {
        d->chunk = (const unsigned char *)buf;
        run(d, d->chunk, d->chunk + len);
        d->offset += (long long)len;
    }
    return report(d, err);
}

enum loss_status proto_decoder_finish(struct proto_decoder *d,
                                      struct proto_doc **ret_doc,
                                      struct loss_error *err)
{
    if (d->status != LOSS_OK)
        return report(d, err);
    if (d->state == ST_NUMBER) {
        d->chunk = NULL;
        number_done(d, d->tok, d->tlen, 0);
        if (d->status != LOSS_OK)
            return report(d, err);
    }
    if (d->state == ST_FINISHED) {
        fail(d, LOSS_EINTERNAL, NULL, "the decoder was already finished");
        return report(d, err);
    }
    if (d->state != ST_DONE) {
        syntax_at(d, d->offset,
                  d->offset == 0 ? "empty body: expected a JSON value"
                                 : "unexpected end of the body");
        return report(d, err);
    }
    proto_doc_set_elements(d->doc, d->elements);
    *ret_doc = d->doc;
    d->doc = NULL;
    d->state = ST_FINISHED;
    return LOSS_OK;
}

size_t proto_decoder_bytes(const struct proto_decoder *d)
{
    return sizeof(*d) + d->scratch + (d->doc ? proto_doc_bytes(d->doc) : 0);
}

/*
 * Keeps buffer p of cap elements of size when it fits in what is left of
 * *budget bytes, else frees it and makes *cap 0. Returns what to keep.
 */
static void *keep_or_free(void *p, size_t *cap, size_t size, size_t *budget)
{
    size_t bytes = *cap * size;

    if (p != NULL && bytes <= *budget) {
        *budget -= bytes;
        return p;
    }
    free(p);
    *cap = 0;
    return NULL;
}

void proto_decoder_reset(struct proto_decoder *d)
{
    /* everything as calloc() left it in proto_decoder_new(), but for what
       is listed here */
    struct proto_decoder n = {0};
    size_t budget = PROTO_DECODER_KEEP_BYTES;

    n.lim = d->lim;
    n.c_locale = d->c_locale;
    n.frames_cap = d->frames_cap;
    n.frames =
        keep_or_free(d->frames, &n.frames_cap, sizeof(*n.frames), &budget);
    n.vals_cap = d->vals_cap;
    n.vals = keep_or_free(d->vals, &n.vals_cap, sizeof(*n.vals), &budget);
    n.mems_cap = d->mems_cap;
    n.mems = keep_or_free(d->mems, &n.mems_cap, sizeof(*n.mems), &budget);
    n.t.cap = d->t.cap;
    n.t.data = keep_or_free(d->t.data, &n.t.cap, sizeof(double), &budget);
    n.skip_cap = d->skip_cap;
    n.skipk = keep_or_free(d->skipk, &n.skip_cap, 1, &budget);
    n.scap = d->scap;
    n.str = keep_or_free(d->str, &n.scap, 1, &budget);
    n.tcap = d->tcap;
    n.tok = keep_or_free(d->tok, &n.tcap, 1, &budget);
    n.scratch = PROTO_DECODER_KEEP_BYTES - budget;
    /* a document not moved out is emptied and serves the new body */
    n.doc = d->doc;
    if (n.doc != NULL)
        proto_doc_clear(n.doc);
    else
        n.doc = proto_doc_new();
    n.state = ST_VALUE;
    loss_error_init(&n.err);
    *d = n;
    if (d->doc == NULL)
        oom(d);
}

void proto_decoder_free(struct proto_decoder *d)
{
    if (d == NULL)
        return;
    proto_doc_free(d->doc);
    free(d->frames);
    free(d->vals);
    free(d->mems);
    free(d->t.data);
    free(d->skipk);
    free(d->str);
    free(d->tok);
    proto_number_locale_free(d->c_locale);
    free(d);
}

enum loss_status proto_decode(const char *buf, size_t len,
                              const struct proto_limits *lim,
                              struct proto_doc **ret_doc,
                              struct loss_error *err)
{
    struct proto_decoder *d = proto_decoder_new(lim);
    enum loss_status st;

    if (d == NULL)
        return loss_fail(err, LOSS_ENOMEM, NULL,
                         "out of memory while decoding");
    st = proto_decoder_feed(d, buf, len, err);
    if (st == LOSS_OK)
        st = proto_decoder_finish(d, ret_doc, err);
    proto_decoder_free(d);
    return st;
}

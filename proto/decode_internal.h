/*
 * decode_internal.h - the decoder's state and the calls between the three
 * files of the decoder of decode.h: decode.c (the byte state machine,
 * failures, the interface), decode_value.c (values and generic containers,
 * duplicate keys, skipping invalid values) and decode_tensor.c (tensor
 * assembly: nested arrays, shapes, tensor objects). Only those files
 * include it; nothing here is an interface of proto/.
 *
 * Every call below that returns an enum loss_status returns LOSS_OK or the
 * decoder's first error, which it has recorded (d->status, d->err): the
 * caller returns d->status at once.
 */
#ifndef LOSSD_PROTO_DECODE_INTERNAL_H
#define LOSSD_PROTO_DECODE_INTERNAL_H

#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "decode.h"
#include "status.h"
#include "tensor.h"
#include "value.h"

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
    size_t map_len; /* data is a mapping of map_len bytes; 0: malloc() */
};

struct proto_decoder {
    struct proto_limits lim;
    bool plain_objects; /* proto_decoder_set_plain_objects() */
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

/* --- failures and JSON pointers (decode.c) -------------------------------- */

/* Records the error st (pointer may be NULL) as the decoder's; returns it. */
__attribute__((format(printf, 4, 5))) enum loss_status
proto_decode_fail(struct proto_decoder *d, enum loss_status st,
                  const char *pointer, const char *fmt, ...);

/* proto_decode_fail() with LOSS_ENOMEM. */
enum loss_status proto_decode_oom(struct proto_decoder *d);

/*
 * A value error (LOSS_ETENSOR, LOSS_EVALUE, LOSS_EUNKNOWN). Without
 * recover_values it is the decoder's error, as proto_decode_fail(). With
 * it, the error is added to the document's list (kept in full while there
 * is room) and *ret becomes the PROTO_INVALID that carries it; returns
 * LOSS_OK (or LOSS_ENOMEM).
 */
__attribute__((format(printf, 5, 0))) enum loss_status
proto_decode_vfail_value(struct proto_decoder *d, struct proto_value *ret,
                         enum loss_status st, const char *pointer,
                         const char *fmt, va_list ap);
__attribute__((format(printf, 5, 6))) enum loss_status
proto_decode_fail_value(struct proto_decoder *d, struct proto_value *ret,
                        enum loss_status st, const char *pointer,
                        const char *fmt, ...);

/*
 * The JSON pointer of the position being read, into buf (LOSS_POINTER_MAX
 * bytes): every open generic container of the first nframes (its current
 * index or key), then index 0 for each pending array (with_pending), then
 * the first tensor_levels levels of the open tensor. O(depth): built only
 * for errors.
 */
void proto_decode_pointer_of(const struct proto_decoder *d, size_t nframes,
                             bool with_pending, size_t tensor_levels,
                             char *buf);

/*
 * While the top object closes: the pointer of the object itself, or of its
 * member key (when key is not NULL).
 */
void proto_decode_member_pointer(const struct proto_decoder *d, const char *key,
                                 char *buf);

/* The pointer of the element being read now. */
void proto_decode_pointer_here(const struct proto_decoder *d, char *buf);

/* --- buffers (decode.c) --------------------------------------------------- */

/*
 * Grows p, a buffer of *cap elements of size bytes, to hold need elements
 * (doubling from 16) and counts the growth in d->scratch. Returns the
 * buffer, moved, with *cap updated; NULL when out of memory, with p and
 * *cap unchanged (p is still the caller's). Inline when there is room: it
 * runs for every value of an array and every key.
 */
void *proto_decode_grow_to(struct proto_decoder *d, void *p, size_t *cap,
                           size_t need, size_t size);
static inline void *proto_decode_grow(struct proto_decoder *d, void *p,
                                      size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    return proto_decode_grow_to(d, p, cap, need, size);
}

/* --- values and containers (decode_value.c) ------------------------------- */

/*
 * The byte state machine calls these for each complete token and bracket.
 * Each builds its value (or opens or closes its container) and moves
 * d->state on; inside a tensor it hands over to decode_tensor.c, inside a
 * value being skipped (d->nskip > 0) it only checks limits. With
 * recover_values, a value error met while handling a token leaves
 * d->nskip > 0, and the token is handled as part of the skipped value.
 */

/* A number token, read as x. */
enum loss_status proto_decode_put_number(struct proto_decoder *d, double x);

/* The string in d->str (d->slen bytes, NUL-terminated) is a value. */
enum loss_status proto_decode_put_string(struct proto_decoder *d);

/* true, false or null, told by its first letter. */
enum loss_status proto_decode_put_literal(struct proto_decoder *d, char first);

/* The string in d->str is a key: a new member waits for its value. */
enum loss_status proto_decode_put_key(struct proto_decoder *d);

/* '[' and '{': each checks max_depth first. */
enum loss_status proto_decode_open_array(struct proto_decoder *d);
enum loss_status proto_decode_open_object(struct proto_decoder *d);

/* ']' and '}'. An object is checked for duplicate keys when it closes; one
   with a "shape" key becomes a tensor (proto_decode_tensor_object()). */
enum loss_status proto_decode_close_array(struct proto_decoder *d);
enum loss_status proto_decode_close_object(struct proto_decoder *d);

/*
 * Hands a complete value (copied) to its container, or makes it the root,
 * and moves to the state after a value.
 */
enum loss_status proto_decode_emit(struct proto_decoder *d,
                                   const struct proto_value *v);

/* Opens a container of kind inside a value being skipped. */
enum loss_status proto_decode_skip_push(struct proto_decoder *d,
                                        enum frame_kind kind);

/* A ']' or '}' while skipping: the last one emits the invalid value. */
enum loss_status proto_decode_skip_close(struct proto_decoder *d);

/* Whether member m's key is k (NUL-terminated). */
static inline bool proto_decode_key_is(const struct proto_member *m,
                                       const char *k)
{
    size_t n = strlen(k);

    return m->key_len == n && memcmp(m->key, k, n) == 0;
}

/* --- tensors (decode_tensor.c) -------------------------------------------- */

/*
 * The value handlers of decode_value.c call these while a tensor is open
 * (d->t.active) or, for proto_decode_tensor_begin(), when its first leaf
 * arrives. With recover_values, a value error they meet leaves d->nskip > 0
 * and LOSS_OK: the caller then handles the same token again as part of the
 * skipped value.
 */

/*
 * A value error inside the open tensor (or its pending arrays). Without
 * recover_values, the decoder's error. With it, the error is recorded, the
 * tensor's open levels become skip levels and its buffer is freed.
 */
__attribute__((format(printf, 4, 5))) enum loss_status
proto_decode_tensor_fail(struct proto_decoder *d, enum loss_status st,
                         const char *pointer, const char *fmt, ...);

/* The first leaf was a number, a non-finite string or null: the pending
   arrays become the open tensor (or the value of "shape"). */
enum loss_status proto_decode_tensor_begin(struct proto_decoder *d);

/* '[' inside a tensor. */
enum loss_status proto_decode_tensor_open(struct proto_decoder *d);

/* A number (or a non-finite string) inside a tensor: checked and stored. */
enum loss_status proto_decode_tensor_number(struct proto_decoder *d, double x);

/* Frees the tensor buffer, a mapping or not; it is then empty. */
void proto_decode_tensor_release(struct tens *t);

/* ']' inside a tensor; the tensor's last one emits it. */
enum loss_status proto_decode_tensor_close(struct proto_decoder *d);

/* A leaf that is not a number inside a tensor (what: "a string", ...). */
enum loss_status proto_decode_tensor_not_number(struct proto_decoder *d,
                                                const char *what);

/*
 * The top object, members m[0..n) (borrowed), has a "shape" key: *ret
 * becomes the tensor of {"shape", "data"} or {"shape", "dtype", "base64"},
 * or, recovered, the PROTO_INVALID of its error.
 */
enum loss_status proto_decode_tensor_object(struct proto_decoder *d,
                                            const struct proto_member *m,
                                            size_t n, struct proto_value *ret);

#endif

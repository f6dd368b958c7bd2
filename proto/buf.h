/*
 * buf.h - a growable byte buffer, the sink every writer in proto/ writes to.
 *
 * Appends never fail loudly: on allocation failure (or growth past max, if
 * set) the buffer is marked failed and later appends are ignored, so a
 * writer checks once at the end (proto_buf_ok()).
 */
#ifndef LOSSD_PROTO_BUF_H
#define LOSSD_PROTO_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct proto_buf {
    char *data; /* owned; NUL-terminated while len < cap */
    size_t len;
    size_t cap;
    size_t max; /* 0 = unbounded */
    bool failed;
};

void proto_buf_init(struct proto_buf *b);
/* Frees the data; the buffer can be reused after proto_buf_init(). */
void proto_buf_release(struct proto_buf *b);
/* Empties the buffer and clears failed, keeping the allocation. */
void proto_buf_reset(struct proto_buf *b);
bool proto_buf_ok(const struct proto_buf *b);
/* Makes room for n more bytes; false (and failed) if it cannot. */
bool proto_buf_reserve(struct proto_buf *b, size_t n);
/* proto_buf_append() when the data does not fit (or the buffer failed). */
void proto_buf_append_grow(struct proto_buf *b, const char *s, size_t n);

/*
 * Appends n bytes of s. Inline when they fit: a response is written in a
 * few dozen small appends, and a call and the checks of proto_buf_reserve()
 * for each were measurable on a small request. cap > len + n also keeps
 * len + n <= max (cap never exceeds max + 1).
 */
static inline void proto_buf_append(struct proto_buf *b, const char *s,
                                    size_t n)
{
    if (!b->failed && b->cap - b->len > n) {
        if (n > 0) /* s may be NULL then */
            memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    proto_buf_append_grow(b, s, n);
}

void proto_buf_puts(struct proto_buf *b, const char *s);
void proto_buf_printf(struct proto_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * Moves the data out (new, caller frees with free()); *ret_len gets its
 * length. The buffer is left empty. NULL if the buffer failed.
 */
char *proto_buf_steal(struct proto_buf *b, size_t *ret_len);

#endif

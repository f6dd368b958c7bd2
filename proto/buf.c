/*
 * buf.c - the growable byte buffer of buf.h, and its failure flag.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation; small enough for a problem document. */
#define BUF_MIN_CAP 256

void proto_buf_init(struct proto_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = 0;
    b->failed = false;
}

void proto_buf_release(struct proto_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = false;
}

void proto_buf_reset(struct proto_buf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->data != NULL)
        b->data[0] = '\0';
}

bool proto_buf_ok(const struct proto_buf *b)
{
    return !b->failed;
}

/*
 * Room for n more bytes plus the terminating NUL, so data stays a C string.
 * The limit max applies to len, never to the NUL.
 */
bool proto_buf_reserve(struct proto_buf *b, size_t n)
{
    size_t need, cap;
    char *p;

    if (b->failed)
        return false;
    if (__builtin_add_overflow(b->len, n, &need) ||
        (b->max != 0 && need > b->max) ||
        __builtin_add_overflow(need, (size_t)1, &need))
        goto fail;
    if (need <= b->cap)
        return true;
    cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
    while (cap < need) {
        if (__builtin_mul_overflow(cap, (size_t)2, &cap)) {
            cap = need;
            break;
        }
    }
    if (b->max != 0 && cap > b->max + 1)
        cap = b->max + 1;
    p = realloc(b->data, cap);
    if (p == NULL)
        goto fail;
    if (b->data == NULL)
        p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return true;
fail:
    b->failed = true;
    return false;
}

void proto_buf_append_grow(struct proto_buf *b, const char *s, size_t n)
{
    if (!proto_buf_reserve(b, n))
        return;
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void proto_buf_puts(struct proto_buf *b, const char *s)
{
    proto_buf_append(b, s, strlen(s));
}

void proto_buf_printf(struct proto_buf *b, const char *fmt, ...)
{
    va_list ap;
    size_t room;
    int n;

    if (!proto_buf_reserve(b, 0))
        return;
    room = b->cap - b->len;
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->data[b->len] = '\0';
        b->failed = true;
        return;
    }
    if ((size_t)n >= room) {
        /* vsnprintf wrote a truncated prefix; make room and write again. */
        b->data[b->len] = '\0';
        if (!proto_buf_reserve(b, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    } else if (b->max != 0 && b->len + (size_t)n > b->max) {
        b->data[b->len] = '\0';
        b->failed = true;
        return;
    }
    b->len += (size_t)n;
}

char *proto_buf_steal(struct proto_buf *b, size_t *ret_len)
{
    char *p;

    if (b->failed) {
        proto_buf_release(b);
        return NULL;
    }
    p = b->data;
    if (p == NULL) {
        /* Never NULL on success, so NULL always means failure. */
        p = malloc(1);
        if (p == NULL)
            return NULL;
        p[0] = '\0';
    }
    if (ret_len != NULL)
        *ret_len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

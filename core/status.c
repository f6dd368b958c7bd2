/*
 * status.c - filling a struct loss_error, and building JSON pointers
 * (status.h).
 */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void loss_error_init(struct loss_error *err)
{
    err->status = LOSS_OK;
    err->has_pointer = 0;
    err->offset = -1;
    err->pointer[0] = '\0';
    err->detail[0] = '\0';
}

static void set_pointer(struct loss_error *err, const char *pointer)
{
    if (pointer == NULL) {
        err->has_pointer = 0;
        err->pointer[0] = '\0';
        return;
    }
    err->has_pointer = 1;
    snprintf(err->pointer, sizeof(err->pointer), "%s", pointer);
}

enum loss_status loss_fail(struct loss_error *err, enum loss_status st,
                           const char *pointer, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return st;
    err->status = st;
    err->offset = -1;
    set_pointer(err, pointer);
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
    va_end(ap);
    return st;
}

enum loss_status loss_fail_at(struct loss_error *err, enum loss_status st,
                              long long offset, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return st;
    err->status = st;
    err->offset = offset;
    set_pointer(err, NULL);
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
    va_end(ap);
    return st;
}

void loss_error_prefix(struct loss_error *err, const char *prefix)
{
    char tmp[LOSS_POINTER_MAX];

    if (!err->has_pointer)
        return;
    snprintf(tmp, sizeof(tmp), "%s%s", prefix, err->pointer);
    memcpy(err->pointer, tmp, sizeof(tmp));
}

void loss_pointer_append(char *buf, size_t cap, const char *key, size_t len)
{
    size_t n = strlen(buf);

    if (n + 1 >= cap)
        return;
    buf[n++] = '/';
    for (size_t i = 0; i < len; i++) {
        const char *esc = key[i] == '~' ? "~0" : key[i] == '/' ? "~1" : NULL;
        size_t need = esc != NULL ? 2 : 1;

        if (n + need >= cap)
            break;
        if (esc != NULL) {
            buf[n++] = esc[0];
            buf[n++] = esc[1];
        } else {
            buf[n++] = key[i];
        }
    }
    buf[n] = '\0';
}

void loss_pointer_append_index(char *buf, size_t cap, size_t index)
{
    char digits[24];
    size_t n = strlen(buf), k = sizeof(digits);

    do
        digits[--k] = (char)('0' + index % 10);
    while ((index /= 10) != 0);
    digits[--k] = '/';
    while (k < sizeof(digits) && n + 1 < cap)
        buf[n++] = digits[k++];
    if (n < cap)
        buf[n] = '\0';
}

size_t loss_str_copy(char *buf, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);

    memcpy(buf, src, n);
    buf[n] = '\0';
    return n;
}

const char *loss_status_name(enum loss_status st)
{
    static const char *const names[LOSS_STATUS_COUNT] = {
        [LOSS_OK] = "ok",
        [LOSS_EJSON] = "invalid-json",
        [LOSS_ETENSOR] = "invalid-tensor",
        [LOSS_ENOTFOUND] = "not-found",
        [LOSS_EMETHOD] = "method-not-allowed",
        [LOSS_ETOOLARGE] = "too-large",
        [LOSS_EMEDIA] = "unsupported-media-type",
        [LOSS_EUNKNOWN] = "unknown-field",
        [LOSS_EMISSING] = "missing-field",
        [LOSS_ESHAPE] = "shape-mismatch",
        [LOSS_EOPTION] = "invalid-option",
        [LOSS_EVALUE] = "invalid-value",
        [LOSS_EUNAVAIL] = "unavailable",
        [LOSS_ENOMEM] = "out-of-memory",
        [LOSS_EINTERNAL] = "internal",
        [LOSS_EAUTH] = "unauthorized",
        [LOSS_EREQUEST] = "bad-request",
        [LOSS_ENOTIMPL] = "not-implemented",
        [LOSS_ETIMEOUT] = "timeout",
    };

    if ((unsigned)st >= LOSS_STATUS_COUNT)
        return "unknown";
    return names[st];
}

/*
 * encode.c - the streaming writers of encode.h: tensors in the three
 * formats, shapes, JSON strings and jansson values. Numbers are
 * number.c's, base64 is base64.c's.
 */
#include "encode.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "number.h"
#include "tensor.h"

void proto_write_double(struct proto_buf *b, double v)
{
    char tmp[PROTO_DOUBLE_MAX];
    size_t n = proto_format_double(v, tmp);

    proto_buf_append(b, tmp, n);
}

void proto_write_shape(struct proto_buf *b, const size_t *shape, size_t ndim)
{
    proto_buf_append(b, "[", 1);
    for (size_t i = 0; i < ndim; i++)
        proto_buf_printf(b, i == 0 ? "%zu" : ",%zu", shape[i]);
    proto_buf_append(b, "]", 1);
}

void proto_write_plain_number(struct proto_buf *b, double v)
{
    char tmp[PROTO_DOUBLE_MAX];
    size_t n = proto_format_double(v, tmp);

    if (n > 2 && tmp[n - 2] == '.' && tmp[n - 1] == '0')
        n -= 2;
    proto_buf_append(b, tmp, n);
}

/* Writes v, as proto_write_plain_number() when plain. */
static void write_number(struct proto_buf *b, double v, bool plain)
{
    if (plain)
        proto_write_plain_number(b, v);
    else
        proto_write_double(b, v);
}

/* Writes data[0..n) as numbers separated by commas. */
static void write_numbers(struct proto_buf *b, const double *data, size_t n,
                          bool plain)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            proto_buf_append(b, ",", 1);
        write_number(b, data[i], plain);
    }
}

/*
 * Nested arrays of dims shape[0..ndim), ndim >= 1, from data; returns the
 * elements written. Recursion depth is the rank, at most TENSOR_MAX_RANK.
 */
static size_t write_nested(struct proto_buf *b, const size_t *shape,
                           size_t ndim, const double *data, bool plain)
{
    size_t done = 0;

    proto_buf_append(b, "[", 1);
    if (ndim == 1) {
        write_numbers(b, data, shape[0], plain);
        done = shape[0];
    } else {
        for (size_t i = 0; i < shape[0]; i++) {
            if (i > 0)
                proto_buf_append(b, ",", 1);
            done += write_nested(b, shape + 1, ndim - 1, data + done, plain);
            if (b->failed)
                break;
        }
    }
    proto_buf_append(b, "]", 1);
    return done;
}

/*
 * The little-endian bytes of data[0..n) in standard base64 with padding,
 * whatever the host's byte order. Bytes are staged a chunk of whole doubles
 * and whole base64 groups at a time, so nothing of the tensor's size is
 * allocated beyond the buffer itself (reserved once) and only the last
 * chunk is padded.
 */
static void write_base64(struct proto_buf *b, const double *data, size_t n)
{
    enum { CHUNK = 3 * 128 }; /* doubles: 3 * 8 * 128 bytes, 8 * 128 groups */
    unsigned char raw[CHUNK * 8];
    char text[CHUNK * 8 / 3 * 4];
    size_t bytes, len;

    if (__builtin_mul_overflow(n, sizeof(double), &bytes) ||
        __builtin_mul_overflow(bytes / 3 + 1, (size_t)4, &len)) {
        b->failed = true;
        return;
    }
    if (!proto_buf_reserve(b, len))
        return;
    for (size_t i = 0; i < n;) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;

        for (size_t j = 0; j < k; j++) {
            uint64_t bits;

            memcpy(&bits, &data[i + j], sizeof(bits));
            for (unsigned m = 0; m < 8; m++)
                raw[8 * j + m] = (unsigned char)(bits >> (8 * m));
        }
        proto_buf_append(b, text, proto_base64_encode(raw, 8 * k, text));
        i += k;
    }
}

static void write_tensor(struct proto_buf *b, const size_t *shape, size_t ndim,
                         const double *data, enum proto_format f, bool plain)
{
    size_t numel;

    if (!tensor_shape_numel(shape, ndim, &numel)) {
        b->failed = true;
        return;
    }
    switch (f) {
    case PROTO_FORMAT_NESTED:
        if (ndim == 0)
            write_number(b, data[0], plain);
        else
            write_nested(b, shape, ndim, data, plain);
        return;
    case PROTO_FORMAT_FLAT:
        proto_buf_puts(b, "{\"shape\":");
        proto_write_shape(b, shape, ndim);
        proto_buf_puts(b, ",\"data\":[");
        write_numbers(b, data, numel, plain);
        proto_buf_puts(b, "]}");
        return;
    case PROTO_FORMAT_BASE64:
        proto_buf_puts(b, "{\"shape\":");
        proto_write_shape(b, shape, ndim);
        proto_buf_puts(b, ",\"dtype\":\"float64\",\"base64\":\"");
        write_base64(b, data, numel);
        proto_buf_puts(b, "\"}");
        return;
    }
    b->failed = true; /* not a format: a caller's bug */
}

void proto_write_tensor(struct proto_buf *b, const size_t *shape, size_t ndim,
                        const double *data, enum proto_format f)
{
    write_tensor(b, shape, ndim, data, f, false);
}

void proto_write_tensor_plain(struct proto_buf *b, const size_t *shape,
                              size_t ndim, const double *data,
                              enum proto_format f)
{
    write_tensor(b, shape, ndim, data, f, true);
}

/*
 * The length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF) at s[0..n), or 0 if there is none.
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* Bytes written as they are: ASCII but controls, '"' and '\\' (DEL too, as
   jansson writes it). */
static bool plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/*
 * The next piece of a JSON string's text, from s[0..n) (n >= 1): a run of
 * plain bytes (which may be cut anywhere), one well-formed UTF-8 sequence,
 * or the escape or replacement of one byte (which may not). esc is room for
 * an escape.
 */
struct piece {
    const char *text;
    size_t len;  /* bytes of text */
    size_t used; /* bytes of s it stands for */
    bool divisible;
};

static void next_piece(const unsigned char *s, size_t n, char esc[8],
                       struct piece *p)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char c = s[0];
    size_t k;

    p->divisible = false;
    if (plain_byte(c)) {
        for (k = 1; k < n && plain_byte(s[k]); k++)
            ;
        p->text = (const char *)s;
        p->len = p->used = k;
        p->divisible = true;
        return;
    }
    p->used = 1;
    if (c >= 0x80) {
        k = utf8_seq(s, n);
        if (k > 0) {
            p->text = (const char *)s;
            p->len = p->used = k;
        } else {
            p->text = "\xEF\xBF\xBD"; /* U+FFFD, as UTF-8 */
            p->len = 3;
        }
        return;
    }
    p->text = esc;
    p->len = 2;
    esc[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
        esc[1] = (char)c;
        return;
    case '\b':
        esc[1] = 'b';
        return;
    case '\f':
        esc[1] = 'f';
        return;
    case '\n':
        esc[1] = 'n';
        return;
    case '\r':
        esc[1] = 'r';
        return;
    case '\t':
        esc[1] = 't';
        return;
    default: /* a control character, as jansson writes it */
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        p->len = 6;
        return;
    }
}

void proto_write_string(struct proto_buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    char esc[8];
    struct piece p;

    /* The field names and values of every small response are one run of
       plain bytes: three appends. */
    proto_buf_append(b, "\"", 1);
    for (size_t i = 0; i < len && !b->failed; i += p.used) {
        next_piece(u + i, len - i, esc, &p);
        proto_buf_append(b, p.text, p.len);
    }
    proto_buf_append(b, "\"", 1);
}

/* Whether the text of s[0..n) takes at most room bytes. */
static bool string_fits(const unsigned char *s, size_t n, size_t room)
{
    char esc[8];
    struct piece p;

    for (size_t i = 0; i < n; i += p.used) {
        next_piece(s + i, n - i, esc, &p);
        if (p.len > room)
            return false;
        room -= p.len;
    }
    return true;
}

size_t proto_write_string_bounded(char *out, size_t cap, const char *s,
                                  size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    const size_t cut = sizeof(PROTO_STRING_CUT) - 1;
    size_t pos = 1, limit;
    bool whole = false;
    char esc[8];
    struct piece p;

    if (cap < PROTO_STRING_MIN)
        return 0;
    out[0] = '"';
    /* room for the closing quote, and for the marker until the rest is
       known to fit without it */
    limit = cap - 1 - cut;
    for (size_t i = 0; i < len; i += p.used) {
        next_piece(u + i, len - i, esc, &p);
        if (pos + p.len > limit) {
            if (!whole && string_fits(u + i, len - i, cap - 1 - pos)) {
                whole = true;
                limit = cap - 1;
            } else {
                if (p.divisible) { /* plain bytes: as many as fit */
                    memcpy(out + pos, p.text, limit - pos);
                    pos = limit;
                }
                memcpy(out + pos, PROTO_STRING_CUT, cut);
                pos += cut;
                break;
            }
        }
        memcpy(out + pos, p.text, p.len);
        pos += p.len;
    }
    out[pos++] = '"';
    return pos;
}

static int dump_to_buf(const char *buffer, size_t size, void *data)
{
    struct proto_buf *b = data;

    proto_buf_append(b, buffer, size);
    return b->failed ? -1 : 0;
}

/* jansson escapes; a string value is dumped with JSON_ENCODE_ANY. */
static void dump_value(struct proto_buf *b, const json_t *v)
{
    if (json_dump_callback(v, dump_to_buf, b, JSON_ENCODE_ANY | JSON_COMPACT))
        b->failed = true;
}

void proto_write_json(struct proto_buf *b, const struct json_t *v)
{
    const char *key;
    json_t *item;
    size_t i;
    bool first = true;

    if (v == NULL) {
        b->failed = true;
        return;
    }
    if (b->failed)
        return;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        proto_buf_append(b, "{", 1);
        /* json_object_foreach takes a non-const object; it does not write. */
        json_object_foreach((json_t *)v, key, item)
        {
            if (!first)
                proto_buf_append(b, ",", 1);
            first = false;
            proto_write_string(b, key, strlen(key));
            proto_buf_append(b, ":", 1);
            proto_write_json(b, item);
        }
        proto_buf_append(b, "}", 1);
        return;
    case JSON_ARRAY:
        proto_buf_append(b, "[", 1);
        json_array_foreach(v, i, item)
        {
            if (i > 0)
                proto_buf_append(b, ",", 1);
            proto_write_json(b, item);
        }
        proto_buf_append(b, "]", 1);
        return;
    case JSON_REAL:
        proto_write_double(b, json_real_value(v));
        return;
    case JSON_STRING:
        proto_write_string(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        dump_value(b, v);
        return;
    }
}

/*
 * decode.c - the streaming decoder of decode.h: the byte state machine,
 * how it reports errors, and the interface.
 *
 * One explicit state machine reads the body byte by byte, whatever the chunk
 * boundaries: a token cut by a chunk boundary leaves its state in the
 * decoder (a partial number in tok, a partial string in str, the position in
 * a literal, a \u escape or a UTF-8 sequence), so results never depend on how
 * the body was split. There is no recursion: open containers sit on an
 * explicit stack bounded by max_depth.
 *
 * The decoder is three files around one struct (decode_internal.h): this
 * one reads bytes into tokens and hands each complete token or bracket to
 * decode_value.c, which builds values and containers and skips invalid
 * values, and which hands everything inside a tensor to decode_tensor.c.
 * One shortcut crosses that line: tensor_run() below stores the numbers of
 * a tensor's innermost rows itself, the hot loop of large bodies; it hands
 * whole runs of comma-separated numbers within the chunk to
 * proto_number_scan_list() (number.h), and leaves whatever that does not
 * settle, a token cut by the chunk's end included, to the byte machine.
 *
 * Reuse. proto_decoder_reset() starts a new body from the state calloc()
 * gives proto_decoder_new(), but keeps the capacity of the stacks and
 * buffers (bounded in all), so a decoder that serves many small bodies
 * stops allocating for them. Tensor elements are counted in the decoder and
 * given to the document when the body ends.
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

#include "decode_internal.h"
#include "doc.h"
#include "number.h"

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

/* --- failures ------------------------------------------------------------- */

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

enum loss_status proto_decode_fail(struct proto_decoder *d, enum loss_status st,
                                   const char *pointer, const char *fmt, ...)
{
    char msg[LOSS_DETAIL_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d->status = loss_fail(&d->err, st, pointer, "%s", msg);
    return d->status;
}

enum loss_status proto_decode_oom(struct proto_decoder *d)
{
    return proto_decode_fail(d, LOSS_ENOMEM, NULL,
                             "out of memory while decoding");
}

enum loss_status proto_decode_vfail_value(struct proto_decoder *d,
                                          struct proto_value *ret,
                                          enum loss_status st,
                                          const char *pointer, const char *fmt,
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
        return proto_decode_oom(d);
    ret->type = PROTO_INVALID;
    ret->u.invalid.status = st;
    ret->u.invalid.error = e;
    return LOSS_OK;
}

enum loss_status proto_decode_fail_value(struct proto_decoder *d,
                                         struct proto_value *ret,
                                         enum loss_status st,
                                         const char *pointer, const char *fmt,
                                         ...)
{
    enum loss_status r;
    va_list ap;

    va_start(ap, fmt);
    r = proto_decode_vfail_value(d, ret, st, pointer, fmt, ap);
    va_end(ap);
    return r;
}

void proto_decode_pointer_of(const struct proto_decoder *d, size_t nframes,
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

void proto_decode_member_pointer(const struct proto_decoder *d, const char *key,
                                 char *buf)
{
    proto_decode_pointer_of(d, d->nframes - 1, false, 0, buf);
    if (key != NULL)
        loss_pointer_append(buf, LOSS_POINTER_MAX, key, strlen(key));
}

void proto_decode_pointer_here(const struct proto_decoder *d, char *buf)
{
    proto_decode_pointer_of(d, d->nframes, true,
                            d->t.active ? d->t.level + 1 : 0, buf);
}

/* --- growable buffers ----------------------------------------------------- */

/* Grows p (cap elements of size) to hold need; NULL on failure. */
void *proto_decode_grow_to(struct proto_decoder *d, void *p, size_t *cap,
                           size_t need, size_t size)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;

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
        p = proto_decode_grow(d, d->str, &d->scap, d->slen + n + 1, 1);
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
        p = proto_decode_grow(d, d->tok, &d->tcap, d->tlen + n + 1, 1);
        if (p == NULL)
            return false;
        d->tok = p;
    }
    memcpy(d->tok + d->tlen, s, n);
    d->tlen += n;
    d->tok[d->tlen] = '\0';
    return true;
}

/* --- numbers -------------------------------------------------------------- */

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

/* A complete number token s[0..n); term is the byte after it (0 at EOF). */
static enum loss_status number_done(struct proto_decoder *d, const char *s,
                                    size_t n, unsigned char term)
{
    double x = 0;

    switch (number_read(d, s, n, &x)) {
    case PROTO_NUMBER_OK:
        return proto_decode_put_number(d, x);
    case PROTO_NUMBER_RANGE:
        return syntax_at(d, d->tok_start,
                         "number out of range: %.*s%s is beyond float64",
                         (int)(n > 40 ? 40 : n), s, n > 40 ? "..." : "");
    case PROTO_NUMBER_UNTERMINATED:
        return proto_decode_oom(d);
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

/* --- the byte loop -------------------------------------------------------- */

static enum loss_status string_done(struct proto_decoder *d)
{
    if (!str_append(d, "", 0))
        return proto_decode_oom(d);
    d->str[d->slen] = '\0';
    return d->str_is_key ? proto_decode_put_key(d) : proto_decode_put_string(d);
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
            proto_decode_oom(d);
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
            proto_decode_oom(d);
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
        return str_append_cp(d, cp) ? LOSS_OK : proto_decode_oom(d);
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
        d->high = u;
        d->state = ST_LOW_BS;
        return LOSS_OK;
    }
    if (u >= 0xDC00 && u <= 0xDFFF)
        return syntax_at(d, off_of(d, p), "lone surrogate \\u%04X", u);
    d->state = ST_STRING;
    return str_append_cp(d, u) ? LOSS_OK : proto_decode_oom(d);
}

/*
 * The hot loop for the common case: numbers separated by commas inside the
 * innermost level of a tensor whose rank is known, all within the chunk.
 * proto_number_scan_list() reads runs of them in one pass each; a token it
 * does not settle (one that needs strtod, or is not a number) is delimited
 * here and read by number_read(), as value_start() would, and the run goes
 * on. The loop stops (leaving the decision to the general machine, which
 * then reports any error exactly as it would have) at anything else: a
 * token that may go on past the chunk end, a ']', a string, a full row,
 * the element limit, a full buffer.
 */
static const unsigned char *tensor_run(struct proto_decoder *d,
                                       const unsigned char *p,
                                       const unsigned char *end)
{
    struct tens *t = &d->t;
    size_t L = t->level;
    size_t limit = (t->known >> L & 1u) ? t->dims[L] : SIZE_MAX;
    size_t room, len = t->len;
    bool after = false;

    /* numbers that fit: in the row, under max_elements, in the buffer */
    room = t->cap - len;
    if (t->count[L] >= limit || d->elements >= d->lim.max_elements)
        return p;
    if (limit - t->count[L] < room)
        room = limit - t->count[L];
    if (d->lim.max_elements - d->elements < room)
        room = d->lim.max_elements - d->elements;
    while (room > 0 && p < end) {
        const char *stop;
        const unsigned char *q;
        size_t n = proto_number_scan_list((const char *)p, (const char *)end,
                                          &t->data[len], room, &stop, &after);

        len += n;
        room -= n;
        p = (const unsigned char *)stop;
        /* '|', not '||': half the numbers of a body may start with '-' */
        if (after || room == 0 || p == end || !(IS_DIGIT(*p) | (*p == '-')))
            break;
        /* a token the fast paths decline */
        for (q = p; q < end && IS_NUM(*q);)
            q++;
        if (q == end || number_read(d, (const char *)p, (size_t)(q - p),
                                    &t->data[len]) != PROTO_NUMBER_OK)
            break; /* the general path reads it, or reports it */
        len++;
        room--;
        p = q;
        while (p < end && IS_WS(*p))
            p++;
        if (p == end || *p != ',') {
            after = true;
            break;
        }
        p++;
        while (p < end && IS_WS(*p))
            p++;
    }
    t->count[L] += len - t->len;
    d->elements += len - t->len;
    if (after)
        d->state = ST_AFTER;
    else if (len != t->len)
        d->state = ST_VALUE; /* after a ',' */
    t->len = len;
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
        proto_decode_open_array(d);
        return p + 1;
    case '{':
        proto_decode_open_object(d);
        return p + 1;
    case ']':
        if (d->state == ST_VALUE_OR_CLOSE) {
            proto_decode_close_array(d);
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
                    proto_decode_oom(d);
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
        proto_decode_close_array(d);
        return p + 1;
    }
    if (c == '}' && !in_array) {
        proto_decode_close_object(d);
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
                proto_decode_close_object(d);
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
                    proto_decode_oom(d);
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
                proto_decode_oom(d);
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
                proto_decode_oom(d);
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
                proto_decode_put_literal(d, d->lit[0]);
            break;
        case ST_DONE:
            while (p < end && IS_WS(*p))
                p++;
            if (p < end)
                syntax_at(d, off_of(d, p),
                          "trailing data after the JSON value");
            break;
        case ST_FINISHED:
            proto_decode_fail(d, LOSS_EINTERNAL, NULL,
                              "the decoder was already finished");
            break;
        }
    }
}

/* --- the interface -------------------------------------------------------- */

void proto_decoder_set_plain_objects(struct proto_decoder *d)
{
    d->plain_objects = true;
}

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
        proto_decode_fail(d, LOSS_EINTERNAL, NULL,
                          "the decoder was already finished");
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
    if (d->t.map_len > 0) /* never within the budget */
        proto_decode_tensor_release(&d->t);
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
        proto_decode_oom(d);
}

void proto_decoder_free(struct proto_decoder *d)
{
    if (d == NULL)
        return;
    proto_doc_free(d->doc);
    free(d->frames);
    free(d->vals);
    free(d->mems);
    proto_decode_tensor_release(&d->t);
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

/*
 * encode.h - the streaming tensor encoder, and the one JSON string writer
 * of lossd (documents and log lines).
 *
 * Large response tensors (gradients, 'none' reductions, softmax outputs)
 * are written number by number into a proto_buf, never as a jansson tree.
 * Numbers are printed as proto_format_double() (number.h) prints them: the
 * shortest text that reads back to the same float64, the strings "NaN",
 * "Infinity", "-Infinity" for non-finite values, -0.0 for -0, and a ".0" on
 * integral values so clients read floats.
 */
#ifndef LOSSD_PROTO_ENCODE_H
#define LOSSD_PROTO_ENCODE_H

#include <stddef.h>

#include "buf.h"
#include "number.h"

enum proto_format {
    PROTO_FORMAT_NESTED, /* [[1.0, 2.0], [3.0, 4.0]]; a 0-d tensor as 1.0 */
    PROTO_FORMAT_FLAT,   /* {"shape": [2, 2], "data": [1.0, 2.0, 3.0, 4.0]} */
    PROTO_FORMAT_BASE64, /* {"shape", "dtype": "float64", "base64"} LE */
};

/* Writes v as proto_format_double() (number.h) prints it. */
void proto_write_double(struct proto_buf *b, double v);

/* Writes a shape as a JSON array of integers: [2, 3]. */
void proto_write_shape(struct proto_buf *b, const size_t *shape, size_t ndim);

/* Writes a tensor (row-major data, numel of shape elements) in format f. */
void proto_write_tensor(struct proto_buf *b, const size_t *shape, size_t ndim,
                        const double *data, enum proto_format f);

/* A number with an integral value written without ".0" (7, not 7.0), as
   an id is echoed. */
void proto_write_plain_number(struct proto_buf *b, double v);

/* proto_write_tensor() with numbers as proto_write_plain_number() writes
   them (base64 is the same). */
void proto_write_tensor_plain(struct proto_buf *b, const size_t *shape,
                              size_t ndim, const double *data,
                              enum proto_format f);

/*
 * JSON strings: the one writer of every string lossd writes, in documents
 * and in log lines. Any bytes make a valid JSON string:
 *
 * - well-formed UTF-8 (RFC 3629) is written as it is, non-ASCII included;
 * - '"' and '\\' are escaped, and so are control characters: \b \f \n \r
 *   \t, the others as \u00XX (upper-case hex); DEL is written as it is;
 * - each byte that starts no well-formed sequence (a stray continuation
 *   byte, a truncated sequence, an overlong form, a surrogate, 0xF5-0xFF)
 *   becomes U+FFFD, written as UTF-8 (EF BF BD);
 * - NUL is \u0000: s need not be NUL-terminated and may hold NULs.
 *
 * Valid text comes out exactly as jansson writes it (json_dumps with
 * JSON_ENCODE_ANY | JSON_COMPACT).
 */

/* Writes s (len bytes, any bytes) as a JSON string, quotes included. */
void proto_write_string(struct proto_buf *b, const char *s, size_t len);

/* What ends a string proto_write_string_bounded() had to cut, inside its
   quotes. */
#define PROTO_STRING_CUT "...[truncated]"
/* The least cap proto_write_string_bounded() writes into: the quotes and
   the marker. */
#define PROTO_STRING_MIN (sizeof(PROTO_STRING_CUT) - 1 + 2)

/*
 * Writes s (len bytes, any bytes) as proto_write_string() does into
 * out[0..cap), not NUL-terminated, and returns the bytes written. When the
 * whole string takes more than cap bytes, it is cut after the last
 * character that leaves room for PROTO_STRING_CUT and the closing quote:
 * never inside an escape or a UTF-8 sequence, so the result is always one
 * valid JSON string of at most cap bytes. Writes nothing and returns 0 when
 * cap < PROTO_STRING_MIN. For writers with a fixed buffer (the log).
 */
size_t proto_write_string_bounded(char *out, size_t cap, const char *s,
                                  size_t len);

/*
 * Writes a jansson value (borrowed; declared here without jansson.h so that
 * includers need not see it) as compact JSON: reals as proto_write_double(),
 * strings as proto_write_string(), objects in insertion order. For proto/
 * only: no json_t crosses out of proto/. A NULL v, what a failed jansson
 * build returns, marks b failed.
 */
struct json_t;
void proto_write_json(struct proto_buf *b, const struct json_t *v);

#endif

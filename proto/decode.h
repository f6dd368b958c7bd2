/*
 * decode.h - the streaming request decoder.
 *
 * A strict RFC 8259 reader fed the body chunk by chunk, as it arrives from
 * the socket or stdin, so a request is never held twice: numbers go straight
 * into one growing double buffer per tensor. Every number is read as float64
 * exactly as strtod() in the C locale reads it (-0 keeps its sign, a
 * 20-digit integer is a number too); a literal beyond float64's range is
 * LOSS_EJSON. Limits (elements, rank, depth) are counted while reading,
 * before memory grows.
 *
 * Errors: syntax errors are LOSS_EJSON with a byte offset; errors inside a
 * value are reported with a JSON pointer: ragged arrays, non-numbers in a
 * tensor, bad base64 or data length != shape are LOSS_ETENSOR; null inside a
 * tensor LOSS_EVALUE; duplicate keys LOSS_EUNKNOWN; limits LOSS_ETOOLARGE.
 * A bare NaN/Infinity token is LOSS_EJSON whose detail says to send the
 * string "NaN". After the first error, feed() and finish() return it again.
 *
 * Recovery (recover_values): value errors - LOSS_ETENSOR, LOSS_EVALUE and
 * LOSS_EUNKNOWN above - no longer stop the decoder. The offending value
 * becomes a PROTO_INVALID carrying the error (value.h): the whole tensor
 * for an error inside a nested array (a ragged row, a null, a string, an
 * object), the tensor object for a bad {"shape", ...} object (including a
 * bad "shape" or "data" inside it), and the value of the second member for
 * a duplicate key (the first member is kept). The decoder then reads on
 * from the end of that value: what it skips is still checked for JSON
 * syntax and still counts against max_depth, and its numbers against
 * max_elements (as they would have as tensor elements, but never those of
 * a "shape"). Syntax errors and limits (LOSS_EJSON, LOSS_ETOOLARGE) stay
 * fatal for the whole body, so a syntax error after a value error is what
 * feed()/finish() report. The document lists its value errors in the order
 * they were found (proto_doc_error()), one per invalid value: the first is
 * exactly the error a decoder without recovery stops at.
 */
#ifndef LOSSD_PROTO_DECODE_H
#define LOSSD_PROTO_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "value.h"

struct proto_limits {
    size_t max_elements; /* tensor elements in the whole document */
    size_t max_rank;     /* at most TENSOR_MAX_RANK */
    size_t max_depth;    /* JSON nesting depth (a tensor's levels count) */
    bool recover_values; /* value errors become PROTO_INVALID values */
    /* with recover_values: errors kept in full by the document (at least
       1; 0 means 1); later ones are counted, and their values carry only
       their status. Bounds what a body of many small errors costs. */
    size_t max_value_errors;
};

struct proto_decoder;

/* A new decoder, or NULL when out of memory. lim is copied. */
struct proto_decoder *proto_decoder_new(const struct proto_limits *lim);

/* Feeds the next len bytes of the body. */
enum loss_status proto_decoder_feed(struct proto_decoder *d, const char *buf,
                                    size_t len, struct loss_error *err);

/*
 * Ends the body: checks that exactly one value was read (trailing white
 * space only) and moves the document to *ret_doc (new, caller frees) on
 * success.
 */
enum loss_status proto_decoder_finish(struct proto_decoder *d,
                                      struct proto_doc **ret_doc,
                                      struct loss_error *err);

/*
 * Bytes the decoder holds now (for in-flight accounting): itself, the
 * capacity of its internal buffers (also what proto_decoder_reset() kept)
 * and the document being built.
 */
size_t proto_decoder_bytes(const struct proto_decoder *d);

/* What proto_decoder_reset() keeps of the internal buffers, in all. */
#define PROTO_DECODER_KEEP_BYTES ((size_t)64 * 1024)

/*
 * Makes d decode a new body, exactly as a decoder new from
 * proto_decoder_new() with d's limits would, whatever state d is in: never
 * fed, in the middle of a body (the rest is never fed), failed, or finished
 * with or without an error. What the previous body still owns is freed: a
 * document not moved out by finish(), tensor data, the error. The capacity
 * of the internal buffers (the stacks of open containers and values, the
 * string, number and tensor buffers) is kept, up to PROTO_DECODER_KEEP_BYTES
 * in all; larger buffers are freed, so one big body does not pin memory in
 * a long-lived decoder. The limits and the private C locale are kept.
 *
 * The new body's document is allocated here; when that fails, feed() and
 * finish() return LOSS_ENOMEM until a reset succeeds. Afterwards
 * proto_decoder_bytes() is that of a new decoder plus the kept capacity
 * (counted as held, as buffer capacity is during a body): at most
 * PROTO_DECODER_KEEP_BYTES more.
 */
void proto_decoder_reset(struct proto_decoder *d);

/*
 * From now on (resets included), an object with a "shape" member stays a
 * PROTO_OBJECT instead of becoming a {"shape", "data"} tensor: for the Open
 * Inference Protocol's inputs, whose "shape" and "data" are read by their
 * caller. Call it before the first feed.
 */
void proto_decoder_set_plain_objects(struct proto_decoder *d);

/* Frees the decoder and any partial document. NULL is fine. */
void proto_decoder_free(struct proto_decoder *d);

/* Decodes a whole buffer: new, feed, finish, free. */
enum loss_status proto_decode(const char *buf, size_t len,
                              const struct proto_limits *lim,
                              struct proto_doc **ret_doc,
                              struct loss_error *err);

#endif

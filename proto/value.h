/*
 * value.h - a decoded request body.
 *
 * The streaming decoder (decode.h) turns a body into a tree of proto_value.
 * Tensors never become trees: a nested array of numbers, a {"shape","data"}
 * object and a {"shape","dtype","base64"} object all become one PROTO_TENSOR
 * whose numbers sit in one contiguous double buffer. Everything in the tree
 * is owned by the struct proto_doc (doc.h) and freed with it.
 *
 * Arrays: an array whose elements are numbers, the strings "NaN",
 * "Infinity", "-Infinity", or nested such arrays is a tensor ([] is a tensor
 * of shape [0]); an array whose first element is an object, a boolean or any
 * other string is a generic PROTO_ARRAY (["input", "target"]). A bare number
 * stays a PROTO_NUMBER and a bare "NaN" a PROTO_STRING: whether a field is a
 * tensor is the handlers' judgement (proto_value_as_tensor()).
 *
 * Invalid values: a decoder told to recover from value errors
 * (proto_limits.recover_values) puts a PROTO_INVALID where a value was
 * wrong (a ragged tensor, a null in a tensor, a bad tensor object, the
 * second of two equal keys) and goes on; the value carries its error, and
 * the document lists its errors (proto_doc_error()). Consumers must treat a
 * PROTO_INVALID wherever they find one as that error (proto_value_error()).
 */
#ifndef LOSSD_PROTO_VALUE_H
#define LOSSD_PROTO_VALUE_H

#include <stdbool.h>
#include <stddef.h>

#include "doc.h"
#include "status.h"
#include "tensor.h"

enum proto_type {
    PROTO_NULL,
    PROTO_BOOL,
    PROTO_NUMBER,
    PROTO_STRING,
    PROTO_TENSOR,
    PROTO_ARRAY,
    PROTO_OBJECT,
    PROTO_INVALID, /* a value the decoder refused; see proto_value_error() */
};

enum proto_encoding {
    PROTO_ENC_NESTED,
    PROTO_ENC_FLAT,   /* {"shape", "data"} */
    PROTO_ENC_BASE64, /* {"shape", "dtype", "base64"} */
};

struct proto_tensor {
    struct tensor t; /* t.data owned by the document */
    bool integral;   /* every element is a finite integral value */
    enum proto_encoding encoding;
};

struct proto_member;

struct proto_value {
    enum proto_type type;
    union {
        bool boolean;
        double number;
        struct {
            char *ptr; /* NUL-terminated; may contain NUL (\u0000) */
            size_t len;
        } string;
        struct proto_tensor *tensor;
        struct {
            struct proto_value *items;
            size_t len;
        } array;
        struct {
            struct proto_member *members; /* in document order */
            size_t len;
        } object;
        struct {
            enum loss_status status;
            /* the full error, or NULL past the document's first
               max_value_errors (then only status is known) */
            const struct loss_error *error;
        } invalid;
    } u;
};

struct proto_member {
    char *key; /* NUL-terminated, valid UTF-8 */
    size_t key_len;
    struct proto_value value;
};

/* The member named key (NUL-terminated) of an object, or NULL. Borrowed. */
const struct proto_value *proto_object_get(const struct proto_value *obj,
                                           const char *key);

/*
 * "null", "boolean", "number", "string", "tensor", "array", "object",
 * "invalid".
 */
const char *proto_type_name(enum proto_type t);

/*
 * Whether s (n bytes) is one of the strings that stand for a non-finite
 * number: "NaN", "Infinity", "-Infinity"; if so its value goes to *ret.
 */
bool proto_nonfinite(const char *s, size_t n, double *ret);

/*
 * Views v as a tensor: a PROTO_TENSOR as it is, a PROTO_NUMBER as a 0-d
 * tensor, the strings "NaN", "Infinity", "-Infinity" as 0-d tensors. The
 * 0-d cases use *scalar as storage (so ret->t.data points to scalar).
 * Returns LOSS_EVALUE for null, the value's own error for PROTO_INVALID
 * (proto_value_error()) and LOSS_ETENSOR for anything else, with pointer as
 * the error pointer.
 */
enum loss_status proto_value_as_tensor(const struct proto_value *v,
                                       struct proto_tensor *ret, double *scalar,
                                       const char *pointer,
                                       struct loss_error *err);

/*
 * Fills err with the error of an invalid value v and returns its status:
 * the decoder's error as it was recorded (status, detail, pointer) when the
 * document kept it, else v's status with a generic detail and pointer (the
 * pointer of v, as the caller knows it) as the pointer.
 */
enum loss_status proto_value_error(const struct proto_value *v,
                                   const char *pointer, struct loss_error *err);

/*
 * The first PROTO_INVALID in v (v itself, or inside its arrays and objects,
 * in document order), or NULL when v holds none. Borrowed. Recursion is
 * bounded by the decoder's max_depth.
 */
const struct proto_value *proto_value_find_invalid(const struct proto_value *v);

/* True for a generic array or an empty tensor (both are lists to callers). */
bool proto_value_is_list(const struct proto_value *v, size_t *ret_len);

#endif

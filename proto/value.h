/*
 * value.h - a decoded request body.
 *
 * The streaming decoder (decode.h) turns a body into a tree of proto_value.
 * Tensors never become trees: a nested array of numbers, a {"shape","data"}
 * object and a {"shape","dtype","base64"} object all become one PROTO_TENSOR
 * whose numbers sit in one contiguous double buffer. Everything in the tree
 * is owned by the struct proto_doc and freed with it.
 *
 * Arrays: an array whose elements are numbers, the strings "NaN",
 * "Infinity", "-Infinity", or nested such arrays is a tensor ([] is a tensor
 * of shape [0]); an array whose first element is an object, a boolean or any
 * other string is a generic PROTO_ARRAY (["input", "target"]). A bare number
 * stays a PROTO_NUMBER and a bare "NaN" a PROTO_STRING: whether a field is a
 * tensor is the handlers' judgement (proto_value_as_tensor()).
 */
#ifndef LOSSD_PROTO_VALUE_H
#define LOSSD_PROTO_VALUE_H

#include <stdbool.h>
#include <stddef.h>

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
    } u;
};

struct proto_member {
    char *key; /* NUL-terminated, valid UTF-8 */
    size_t key_len;
    struct proto_value value;
};

struct proto_doc;

/* The root value; borrowed from doc. */
const struct proto_value *proto_doc_root(const struct proto_doc *doc);

/* Total tensor elements in the document (what max_elements counted). */
size_t proto_doc_elements(const struct proto_doc *doc);

/* Bytes the document holds on the heap, for in-flight memory accounting. */
size_t proto_doc_bytes(const struct proto_doc *doc);

/* Frees the document and everything in it. NULL is fine. */
void proto_doc_free(struct proto_doc *doc);

/* The member named key (NUL-terminated) of an object, or NULL. Borrowed. */
const struct proto_value *proto_object_get(const struct proto_value *obj,
                                           const char *key);

/* "null", "boolean", "number", "string", "tensor", "array", "object". */
const char *proto_type_name(enum proto_type t);

/*
 * Views v as a tensor: a PROTO_TENSOR as it is, a PROTO_NUMBER as a 0-d
 * tensor, the strings "NaN", "Infinity", "-Infinity" as 0-d tensors. The
 * 0-d cases use *scalar as storage (so ret->t.data points to scalar).
 * Returns LOSS_EVALUE for null and LOSS_ETENSOR for anything else, with
 * pointer as the error pointer.
 */
enum loss_status proto_value_as_tensor(const struct proto_value *v,
                                       struct proto_tensor *ret, double *scalar,
                                       const char *pointer,
                                       struct loss_error *err);

/* True for a generic array or an empty tensor (both are lists to callers). */
bool proto_value_is_list(const struct proto_value *v, size_t *ret_len);

#endif

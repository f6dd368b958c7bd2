/*
 * tensor_bytes.h - tensors as raw little-endian bytes: the datatypes of the
 * Open Inference Protocol's binary tensor data extension, and their exact
 * widening to float64 as the bytes stream in.
 *
 * A proto_widener turns the bytes of one tensor, fed in chunks of any size
 * (a chunk may end in the middle of an element: the partial element is
 * carried to the next feed), into float64 elements written straight into
 * the destination buffer. Nothing is copied whole and nothing is read
 * twice. Every conversion is exact: float64 holds every value of every
 * datatype below (FP16 and BF16 subnormals, infinities and NaN included;
 * INT64 beyond 2^53 is rounded to nearest, as PyTorch's .double() does).
 */
#ifndef LOSSD_PROTO_TENSOR_BYTES_H
#define LOSSD_PROTO_TENSOR_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum proto_dtype {
    PROTO_DT_BOOL,  /* 1 byte: 0 is false, anything else true (1.0) */
    PROTO_DT_UINT8, /* 1 byte */
    PROTO_DT_INT32,
    PROTO_DT_INT64,
    PROTO_DT_FP16, /* IEEE 754 binary16 */
    PROTO_DT_BF16, /* bfloat16: the upper half of a binary32 */
    PROTO_DT_FP32,
    PROTO_DT_FP64,
    PROTO_DT_COUNT
};

/* Bit of a datatype in a set of them. */
#define PROTO_DT_BIT(dt) (1u << (dt))
#define PROTO_DT_FLOATS                                                        \
    (PROTO_DT_BIT(PROTO_DT_FP16) | PROTO_DT_BIT(PROTO_DT_BF16) |               \
     PROTO_DT_BIT(PROTO_DT_FP32) | PROTO_DT_BIT(PROTO_DT_FP64))
#define PROTO_DT_INTS                                                          \
    (PROTO_DT_BIT(PROTO_DT_INT32) | PROTO_DT_BIT(PROTO_DT_INT64))
#define PROTO_DT_BINARY                                                        \
    (PROTO_DT_BIT(PROTO_DT_BOOL) | PROTO_DT_BIT(PROTO_DT_UINT8))

/* The protocol's name of dt ("FP32"); static. */
const char *proto_dtype_name(enum proto_dtype dt);

/* Bytes per element of dt. */
size_t proto_dtype_size(enum proto_dtype dt);

/*
 * The datatype named s (n bytes, exactly as the protocol spells it: "FP32",
 * not "fp32"); false when s names none of the above (UINT16, BYTES, ...).
 */
bool proto_dtype_parse(const char *s, size_t n, enum proto_dtype *ret);

/* Exact float64 values of a binary16 and a bfloat16 bit pattern. */
double proto_fp16_to_double(uint16_t h);
double proto_bf16_to_double(uint16_t b);

struct proto_widener {
    enum proto_dtype dt;
    double *dst;  /* borrowed: numel elements */
    size_t numel; /* elements in all */
    size_t done;  /* elements written */
    size_t npart; /* bytes of the next element held in part */
    unsigned char part[8];
};

/* Starts widening numel elements of dt into dst (borrowed). */
void proto_widener_init(struct proto_widener *w, enum proto_dtype dt,
                        double *dst, size_t numel);

/* Bytes still expected: numel * size - what was fed. */
size_t proto_widener_left(const struct proto_widener *w);

/*
 * Widens the first bytes of src (len bytes) into the destination, up to
 * the end of the tensor, and returns how many bytes it took: len, or
 * proto_widener_left() when that is smaller (the rest belongs to whatever
 * follows the tensor).
 */
size_t proto_widener_feed(struct proto_widener *w, const void *src, size_t len);

/*
 * Appends n float64 values as dt (only PROTO_DT_FP64 or PROTO_DT_FP32,
 * rounded to nearest) in little-endian byte order to dst, which has room
 * for n * proto_dtype_size(dt) bytes.
 */
void proto_narrow(enum proto_dtype dt, const double *src, size_t n, void *dst);

#endif

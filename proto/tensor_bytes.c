/*
 * tensor_bytes.c - raw little-endian tensors (tensor_bytes.h).
 */
#include "tensor_bytes.h"

#include <math.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor_bytes.c reads and writes little-endian tensors in place"
#endif

static const struct {
    const char *name;
    size_t size;
} dtypes[PROTO_DT_COUNT] = {
    [PROTO_DT_BOOL] = {"BOOL", 1},   [PROTO_DT_UINT8] = {"UINT8", 1},
    [PROTO_DT_INT32] = {"INT32", 4}, [PROTO_DT_INT64] = {"INT64", 8},
    [PROTO_DT_FP16] = {"FP16", 2},   [PROTO_DT_BF16] = {"BF16", 2},
    [PROTO_DT_FP32] = {"FP32", 4},   [PROTO_DT_FP64] = {"FP64", 8},
};

const char *proto_dtype_name(enum proto_dtype dt)
{
    return (unsigned)dt < PROTO_DT_COUNT ? dtypes[dt].name : "?";
}

size_t proto_dtype_size(enum proto_dtype dt)
{
    return (unsigned)dt < PROTO_DT_COUNT ? dtypes[dt].size : 1;
}

bool proto_dtype_parse(const char *s, size_t n, enum proto_dtype *ret)
{
    for (unsigned i = 0; i < PROTO_DT_COUNT; i++) {
        if (strlen(dtypes[i].name) == n && memcmp(dtypes[i].name, s, n) == 0) {
            *ret = (enum proto_dtype)i;
            return true;
        }
    }
    return false;
}

/*
 * binary16: 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits. Every
 * value is m * 2^e with an 11-bit m, so ldexp() is exact.
 */
double proto_fp16_to_double(uint16_t h)
{
    unsigned exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    double v;

    if (exp == 0x1f)
        v = frac ? NAN : INFINITY;
    else if (exp == 0)
        v = ldexp((double)frac, -24); /* subnormal (or zero) */
    else
        v = ldexp((double)(frac | 0x400), (int)exp - 25);
    return (h & 0x8000) ? -v : v;
}

/* bfloat16 is the upper half of a binary32: widened through float. */
double proto_bf16_to_double(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;

    memcpy(&f, &u, sizeof(f));
    return (double)f;
}

void proto_widener_init(struct proto_widener *w, enum proto_dtype dt,
                        double *dst, size_t numel)
{
    w->dt = dt;
    w->dst = dst;
    w->numel = numel;
    w->done = 0;
    w->npart = 0;
}

size_t proto_widener_left(const struct proto_widener *w)
{
    return (w->numel - w->done) * proto_dtype_size(w->dt) - w->npart;
}

/* Widens n whole elements of src into dst: one loop per datatype. */
static void widen(enum proto_dtype dt, const unsigned char *src, size_t n,
                  double *dst)
{
    switch (dt) {
    case PROTO_DT_BOOL:
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i] ? 1.0 : 0.0;
        break;
    case PROTO_DT_UINT8:
        for (size_t i = 0; i < n; i++)
            dst[i] = (double)src[i];
        break;
    case PROTO_DT_INT32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (double)v;
        }
        break;
    case PROTO_DT_INT64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (double)v;
        }
        break;
    case PROTO_DT_FP16:
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, src + 2 * i, 2);
            dst[i] = proto_fp16_to_double(v);
        }
        break;
    case PROTO_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, src + 2 * i, 2);
            dst[i] = proto_bf16_to_double(v);
        }
        break;
    case PROTO_DT_FP32:
        for (size_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (double)v;
        }
        break;
    case PROTO_DT_FP64:
        memcpy(dst, src, n * sizeof(double));
        break;
    case PROTO_DT_COUNT:
        break;
    }
}

size_t proto_widener_feed(struct proto_widener *w, const void *src, size_t len)
{
    const unsigned char *p = src;
    size_t size = proto_dtype_size(w->dt), left = proto_widener_left(w);
    size_t take = len < left ? len : left, rest = take, whole;

    if (take == 0)
        return 0;
    if (w->npart > 0) {
        size_t k = size - w->npart < rest ? size - w->npart : rest;

        memcpy(w->part + w->npart, p, k);
        w->npart += k;
        p += k;
        rest -= k;
        if (w->npart < size)
            return take;
        widen(w->dt, w->part, 1, w->dst + w->done);
        w->done++;
        w->npart = 0;
    }
    whole = rest / size;
    widen(w->dt, p, whole, w->dst + w->done);
    w->done += whole;
    p += whole * size;
    rest -= whole * size;
    memcpy(w->part, p, rest);
    w->npart = rest;
    return take;
}

void proto_narrow(enum proto_dtype dt, const double *src, size_t n, void *dst)
{
    unsigned char *p = dst;

    if (dt == PROTO_DT_FP64) {
        memcpy(p, src, n * sizeof(double));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float f = (float)src[i];
        memcpy(p + 4 * i, &f, 4);
    }
}

/*
 * schema.h - the plain description of a loss: names, tensors, options,
 * reductions. The handlers' registry holds one per loss (handlers/registry.c)
 * and drives validation with it; proto/ writes the catalog (GET /v1/losses)
 * and the OpenAPI document from the same descriptions, so nothing is listed
 * twice. Plain data only: no functions, no JSON types.
 */
#ifndef LOSSD_PROTO_SCHEMA_H
#define LOSSD_PROTO_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

enum proto_option_type {
    PROTO_OPT_NUMBER,  /* any JSON number (finite) */
    PROTO_OPT_INTEGER, /* a JSON number with an integral value */
    PROTO_OPT_BOOLEAN,
    PROTO_OPT_STRING, /* one of choices */
};

struct proto_option_desc {
    const char *name;
    enum proto_option_type type;
    const char *description;
    /* default: by type */
    double def_number;
    bool def_boolean;
    const char *def_string;
    bool has_default; /* false: no default (absent means "not given") */
    /* range, numbers and integers */
    bool has_minimum;
    double minimum;
    bool exclusive_minimum;
    bool has_maximum;
    double maximum;
    bool exclusive_maximum;
    const char *const *choices; /* PROTO_OPT_STRING: NULL-terminated */
};

struct proto_tensor_desc {
    const char *name;
    bool required;
    bool differentiable;
    const char *description; /* shapes it takes */
};

/* Bits of proto_loss_desc.reductions. */
enum {
    PROTO_RED_NONE = 1u << 0,
    PROTO_RED_MEAN = 1u << 1,
    PROTO_RED_SUM = 1u << 2,
    PROTO_RED_BATCHMEAN = 1u << 3,
};

/* Each reduction's bit and name, in the order the catalog lists them. */
struct proto_reduction {
    unsigned bit;
    const char *name;
};
#define PROTO_NREDUCTIONS 4
extern const struct proto_reduction proto_reductions[PROTO_NREDUCTIONS];

struct proto_loss_desc {
    const char *name;
    const char *summary;     /* one line */
    const char *description; /* a paragraph, Markdown */
    const char *torch;       /* "torch.nn.functional.mse_loss" */
    const struct proto_tensor_desc *tensors;
    size_t ntensors;
    const struct proto_option_desc *options; /* without reduction */
    size_t noptions;
    unsigned reductions; /* 0: the loss takes no reduction (softmax) */
    bool has_sum;        /* responses carry sum and count */
};

/* The limits published under "limits" in the catalog. */
struct proto_limits_desc {
    size_t max_body_bytes;
    size_t max_elements;
    size_t max_rank;
    size_t max_depth;
    size_t max_work;
    size_t max_batch_items;
};

#endif

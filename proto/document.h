/*
 * document.h - the JSON documents lossd writes: responses, problem details,
 * the catalog and the OpenAPI document. Envelopes and small values are
 * written with jansson; tensors with the streaming encoder (encode.h).
 */
#ifndef LOSSD_PROTO_DOCUMENT_H
#define LOSSD_PROTO_DOCUMENT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "encode.h"
#include "schema.h"
#include "status.h"
#include "tensor.h"
#include "value.h"

/* --- problem details (RFC 9457) --------------------------------------- */

/* The one table from a status to HTTP: code, type ("/problems/..."), title. */
int proto_status_http(enum loss_status st);
const char *proto_status_type(enum loss_status st);
const char *proto_status_title(enum loss_status st);

/*
 * Writes the problem document for err: type, title, status, detail, error
 * (= detail), pointer or offset when err has them, instance (when not NULL).
 * In a batch, id (a decoded value or NULL) is added.
 */
void proto_problem_write(struct proto_buf *b, const struct loss_error *err,
                         const char *instance, const struct proto_value *id);

/*
 * Writes a decoded value (borrowed), a batch item's "id", back as JSON:
 * numbers with an integral value without the ".0" of proto_write_double()
 * (an id 7 comes back as 7), tensors in the encoding they arrived in
 * (base64 ones as float64).
 */
void proto_write_value(struct proto_buf *b, const struct proto_value *v);

/* --- loss responses ---------------------------------------------------- */

struct proto_warning {
    const char *code; /* "broadcast-target", ... (static) */
    char message[256];
    char pointer[LOSS_POINTER_MAX]; /* "" for none */
};

struct proto_out_tensor {
    const char *name;
    size_t ndim;
    size_t shape[TENSOR_MAX_RANK];
    const double *data;
};

struct proto_response {
    const struct proto_value *id; /* batch items: the item's id, or NULL */
    int status;                   /* batch items: 200; 0 outside batches */
    const char *loss;
    const char *reduction; /* NULL for losses without reduction */
    /* value: a number (value_is_tensor false) or a tensor */
    bool value_is_tensor;
    double value;
    struct proto_out_tensor value_tensor; /* name unused */
    bool has_sum;                         /* sum and count present */
    double sum;
    double count;
    const struct proto_out_tensor *grads; /* in the loss's tensor order */
    size_t ngrads;
    const struct proto_warning *warnings;
    size_t nwarnings;
    enum proto_format format;
};

/*
 * Writes {"loss", "reduction", "value", "shape", "sum", "count", "grad",
 * "warnings"} (with "id" and "status" first for batch items). "shape" is
 * the shape of value ([] for a number). "grad" only when ngrads > 0;
 * "warnings" always (an empty array when none).
 */
void proto_response_write(struct proto_buf *b, const struct proto_response *r);

/* --- catalog and OpenAPI ------------------------------------------------ */

/* GET /v1/losses: {"losses": [...], "limits": {...}} (docs/api.md). */
void proto_catalog_write(struct proto_buf *b,
                         const struct proto_loss_desc *const *losses, size_t n,
                         const struct proto_limits_desc *limits);

/*
 * GET /openapi.json: an OpenAPI 3.0.3 document of every route of docs/api.md,
 * with one request schema per loss built from its description
 * (additionalProperties false), the response and problem schemas.
 */
void proto_openapi_write(struct proto_buf *b,
                         const struct proto_loss_desc *const *losses, size_t n,
                         const struct proto_limits_desc *limits,
                         const char *version);

#endif

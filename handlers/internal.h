/*
 * internal.h - what the handlers' files share: the parsed call, the family
 * interface, and the registry entry. Not installed, not seen by the server.
 *
 * One request for one loss is a struct handler_call. call.c parses the body
 * generically from the loss's description (unknown fields, tensors, option
 * types and ranges, reduction, grad, grad_output, output_format); then the
 * loss's family validates shapes and derived sizes (prepare), and later
 * computes (forward, backward). call.c builds the response.
 */
#ifndef LOSSD_HANDLERS_INTERNAL_H
#define LOSSD_HANDLERS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "document.h"
#include "handler.h"
#include "info_nce.h"
#include "loss.h"
#include "pointwise.h"
#include "softmax.h"
#include "tensor.h"

#define HANDLER_MAX_TENSORS  4
#define HANDLER_MAX_OPTIONS  6
#define HANDLER_MAX_WARNINGS 8

/*
 * Room for the pointer of a tensor or option: its prefix ("", "/shared" or
 * "/requests/<index>", at most 30 bytes) and "/" and one of the loss's own
 * field names. Smaller than LOSS_POINTER_MAX because every call clears
 * eleven of them (4 KiB less to clear per request).
 */
#define HANDLER_POINTER_MAX 96

struct handler_tensor {
    bool present;
    struct proto_tensor pt; /* pt.t.data borrowed from the document */
    double scalar;          /* storage for a 0-d tensor given as a number */
    char pointer[HANDLER_POINTER_MAX];
};

struct handler_option {
    bool given; /* present in the body (else the default applies) */
    char pointer[HANDLER_POINTER_MAX]; /* where it was given */
    double number;
    bool boolean;
    const char *string;
};

struct handler_call;

/* Per-sample results of a forward pass; freed by call.c. */
struct handler_output {
    double *out; /* c->out_numel per-sample losses (or softmax output) */
    double sum;
    double count;
    unsigned warn;                      /* enum loss_warning bits */
    double *grads[HANDLER_MAX_TENSORS]; /* by tensor index, or NULL */
    double *scratch; /* family state kept between forward and backward */
};

struct handler_family {
    /*
     * Checks shapes and values, computes the output shape, the count when it
     * is known from shapes, cost and bytes, marks which tensors are
     * differentiable here (c->diff_mask), and adds warnings.
     */
    enum loss_status (*prepare)(struct handler_call *c, struct loss_error *err);
    /* Fills o->out, o->count and o->warn (o->sum is computed by call.c). */
    enum loss_status (*forward)(struct handler_call *c,
                                const struct loss_exec *ex,
                                struct handler_output *o,
                                struct loss_error *err);
    /*
     * Fills o->grads[i] (allocated by call.c with the tensor's numel) for
     * every bit of c->grad_mask, from upstream g[i * gstride].
     */
    enum loss_status (*backward)(struct handler_call *c,
                                 const struct loss_exec *ex,
                                 struct handler_output *o, const double *g,
                                 size_t gstride, struct loss_error *err);
};

struct handler_loss {
    struct proto_loss_desc desc;
    const struct handler_family *family;
    int kind; /* family-specific: enum loss_pointwise_kind, ... */
};

struct handler_call {
    const struct handler_loss *loss;
    const struct handler_limits *lim;
    const struct proto_value *id;                       /* batch items */
    struct handler_tensor tensors[HANDLER_MAX_TENSORS]; /* desc order */
    struct handler_option options[HANDLER_MAX_OPTIONS]; /* desc order */
    enum loss_reduction reduction;
    unsigned grad_mask; /* bits by tensor index: gradients requested */
    unsigned diff_mask; /* set by prepare: differentiable in this call */
    bool grad_all;      /* "grad": true */
    struct handler_tensor grad_output;
    enum proto_format format;
    size_t nwarnings; /* of warnings[], last below */
    /* set by prepare */
    size_t out_ndim;
    size_t out_shape[TENSOR_MAX_RANK];
    size_t out_numel;
    double cost;     /* work units */
    size_t bytes;    /* peak bytes while running */
    bool scalar_out; /* softmax: false; losses: reduction != none */
    union {
        struct {
            struct loss_pointwise_args args;
            struct tensor_bcast bc, weight_bc, pos_weight_bc;
        } pw;
        struct {
            struct loss_class_args args;
        } cls;
        struct {
            struct loss_softmax_shape shape;
            bool log;
        } sm;
        struct {
            struct loss_nce_args args;
        } nce;
    } u;
    /* Last: call_prepare() clears the call up to here (6 KiB less to clear
       per request); only the first nwarnings are ever read. */
    struct proto_warning warnings[HANDLER_MAX_WARNINGS];
};

/* Families (one file each). */
extern const struct handler_family handler_pointwise_family;
extern const struct handler_family handler_class_family;
extern const struct handler_family handler_softmax_family;
extern const struct handler_family handler_nce_family;

/* --- helpers for families (call.c) ------------------------------------- */

/* Index of the tensor or option named name in the loss's description. */
int call_tensor_index(const struct handler_call *c, const char *name);
int call_option_index(const struct handler_call *c, const char *name);

/* The tensor named name (present or not); name must exist in the desc. */
struct handler_tensor *call_tensor(struct handler_call *c, const char *name);
/* The option named name, with its default applied when not given. */
const struct handler_option *call_option(const struct handler_call *c,
                                         const char *name);

/* Adds a warning (at most HANDLER_MAX_WARNINGS; later ones are dropped). */
void call_warn(struct handler_call *c, const char *code, const char *pointer,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "torch.Size([2, 3])" for messages that quote PyTorch. */
void call_torch_size(const struct tensor *t, char *buf, size_t cap);

/* Fails with LOSS_ETOOLARGE if n exceeds max_work; what names the size. */
enum loss_status call_check_work(const struct handler_call *c, size_t n,
                                 const char *what, struct loss_error *err);

/* Pointer of element `linear` of a tensor: "/input/1/2" (nested) or
 * "/input/data/5" (flat) or "/input" (base64). */
void call_element_pointer(const struct handler_tensor *t, size_t linear,
                          char *buf, size_t cap);

/*
 * The upstream gradient of each per-sample loss for this call's reduction
 * and grad_output, given count (core/loss.h): *ret_g[i * *ret_stride].
 * storage holds the scalar case. A mean over count 0 has upstream 0, so
 * every gradient is 0 (PyTorch's all-ignored rule).
 */
void call_upstream(const struct handler_call *c, double count, double *storage,
                   const double **ret_g, size_t *ret_stride);

/* --- call lifecycle (call.c) -------------------------------------------- */

/*
 * Parses body (an object) for loss and runs the family's prepare. prefix is
 * the pointer of body ("" outside batches, "/requests/3" in one); shared
 * (may be NULL) supplies the fields body lacks, with pointers under
 * "/shared". In a batch item, "loss" and "id" are allowed too.
 */
enum loss_status
call_prepare(struct handler_call *c, const struct handler_loss *loss,
             const struct handler_limits *lim, const struct proto_value *body,
             const char *prefix, const struct proto_value *shared,
             struct loss_error *err);

/* Runs a prepared call and appends its response document to out. */
enum loss_status call_run(struct handler_call *c, const struct loss_exec *ex,
                          int status_member, struct proto_buf *out,
                          struct loss_error *err);

#endif

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
 * Room for a call's own pointer: "" outside batches, "/requests/<index>" in
 * one (an index of at most 20 digits).
 */
#define HANDLER_PREFIX_MAX 32

/*
 * Where a field of the call was given: its name (static: the loss's
 * description, or "grad_output") under the call's prefix, or under
 * "/shared" when a batch's shared object supplied it. call_pointer() spells
 * it out when a message needs it.
 */
struct handler_at {
    const char *name; /* NULL: not given */
    bool shared;
};

struct handler_tensor {
    bool present;
    struct handler_at at;
    struct proto_tensor pt; /* pt.t.data borrowed from the document */
    double scalar;          /* storage for a 0-d tensor given as a number */
};

struct handler_option {
    bool given; /* present in the body (else the default applies) */
    struct handler_at at;
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
    char prefix[HANDLER_PREFIX_MAX]; /* the call's own pointer */
    /* HANDLER_MAX_WARNINGS, allocated by the first call_warn() and freed by
       call_release(); nwarnings of them are set */
    struct proto_warning *warnings;
    size_t nwarnings;
    bool warnings_lost; /* that allocation failed: prepare and run fail */
    /* set by prepare */
    size_t out_ndim;
    size_t out_shape[TENSOR_MAX_RANK];
    size_t out_numel;
    double cost;     /* work units */
    size_t bytes;    /* peak bytes while running */
    bool scalar_out; /* softmax: false; losses: reduction != none */
    /* an Open Inference Protocol request: call_run() writes its response
       (oip_response_write()) instead of the v1 document; NULL otherwise */
    struct handler_oip *oip;
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

/*
 * The JSON pointer of a field given at at, e.g. "/requests/2/target" or
 * "/shared/weight", in buf (cap bytes, truncated); "" for at NULL or a
 * field not given.
 */
void call_pointer(const struct handler_call *c, const struct handler_at *at,
                  char *buf, size_t cap);

/* loss_fail() with the pointer of the field at at: a failure in one line. */
enum loss_status call_fail(const struct handler_call *c, struct loss_error *err,
                           enum loss_status st, const struct handler_at *at,
                           const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*
 * Adds a warning about the field at at (NULL: none), at most
 * HANDLER_MAX_WARNINGS; later ones and repeats of a code are dropped.
 * When their storage cannot be allocated, warnings_lost is set and the
 * call fails with LOSS_ENOMEM at the end of prepare or run: an answer
 * never depends on memory.
 */
void call_warn(struct handler_call *c, const char *code,
               const struct handler_at *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "torch.Size([2, 3])" for messages that quote PyTorch. */
void call_torch_size(const struct tensor *t, char *buf, size_t cap);

/* Fails with LOSS_ETOOLARGE if n exceeds max_work; what names the size. */
enum loss_status call_check_work(const struct handler_call *c, size_t n,
                                 const char *what, struct loss_error *err);

/* Pointer of element `linear` of a tensor: "/input/1/2" (nested) or
 * "/input/data/5" (flat) or "/input" (base64). */
void call_element_pointer(const struct handler_call *c,
                          const struct handler_tensor *t, size_t linear,
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
 * Parses body (an object) for loss and runs the family's prepare. c must be
 * zeroed memory (a job's calls are allocated cleared); free what it holds
 * afterwards with call_release(), whatever this returned. prefix is
 * the pointer of body ("" outside batches, "/requests/3" in one); shared
 * (may be NULL) supplies the fields body lacks, with pointers under
 * "/shared". In a batch item, "loss" and "id" are allowed too.
 */
enum loss_status
call_prepare(struct handler_call *c, const struct handler_loss *loss,
             const struct handler_limits *lim, const struct proto_value *body,
             const char *prefix, const struct proto_value *shared,
             struct loss_error *err);

/*
 * Frees what a call holds (its warnings); the call may be prepared again.
 * Safe on a call that call_prepare() failed on, and on a zeroed one.
 */
void call_release(struct handler_call *c);

/* Runs a prepared call and appends its response document to out. */
enum loss_status call_run(struct handler_call *c, const struct loss_exec *ex,
                          int status_member, struct proto_buf *out,
                          struct loss_error *err);

/* --- jobs (job.c): what request.c prepares and runs --------------------- */

struct handler_job;

/*
 * Validates a decoded body for loss (NULL: the batch route) and takes
 * ownership of doc (freed with the job, or here on failure). On success
 * *ret_job is new (free with job_free()). Value errors the decoder
 * recovered from fail one loss as if the decoder had stopped there; in a
 * batch they are the results of their items (docs/api.md, "Batch").
 */
enum loss_status job_prepare(const struct handler_loss *loss,
                             struct proto_doc *doc,
                             const struct handler_limits *lim,
                             struct handler_job **ret_job,
                             struct loss_error *err);

/*
 * The job's estimated cost in abstract work units (about one unit per
 * multiply-add or transcendental call), from shapes alone.
 */
double job_cost(const struct handler_job *job);

/* Bytes the job holds at most while running: its document, scratch and
   outputs. */
size_t job_bytes(const struct handler_job *job);

/* The loss name of the job (HANDLER_BATCH for batches); static. */
const char *job_loss(const struct handler_job *job);

/*
 * Computes the job and appends the 200 response body to out. Failures are
 * rare: LOSS_ENOMEM, or (one loss) a kernel's refusal; a batch item's
 * failure is its result inside the 200 body. ex may be NULL (serial).
 */
enum loss_status job_run(struct handler_job *job, const struct loss_exec *ex,
                         struct proto_buf *out, struct loss_error *err);

/* Frees the job, its calls and its document. NULL is fine. */
void job_free(struct handler_job *job);

/* The call of a one-loss job (borrowed); NULL for a batch. */
struct handler_call *job_call(struct handler_job *job);

/* --- the Open Inference Protocol (oip.c) --------------------------------- */

/*
 * The state of one infer request, owned by its handler_request: the framing
 * (header_len and body_len, HANDLER_OIP_WHOLE when absent or unknown), the
 * binary inputs being widened, the requested outputs and, after the run,
 * the response's header length. request.c drives it:
 *
 *   oip_new()            with the request;
 *   oip_check_framing()  at once: 0 < header_len <= body_len, and the header
 *                        within max_body_bytes;
 *   oip_header_room()    how many of the next bytes are the header's, which
 *                        go to the decoder (oip_header_fed() counts them);
 *   oip_plan()           the decoded header checked in full (before any
 *                        large allocation) and the document's root rewritten
 *                        into the v1 body; *ret_bytes: what oip_allocate()
 *                        will add to the document (to hold first);
 *   oip_allocate()       the binary inputs' float64 buffers, in the document;
 *   oip_binary_feed()    the bytes after the header, widened in place;
 *   oip_binary_finish()  at the end of the body: every byte came;
 *   oip_attach()         after job_prepare(): the outputs checked against the
 *                        prepared call, which then writes an OIP response.
 */
struct handler_oip;

struct handler_oip *oip_new(const struct handler_loss *loss, size_t header_len,
                            size_t body_len);
void oip_free(struct handler_oip *o);
enum loss_status oip_check_framing(const struct handler_oip *o,
                                   const struct handler_limits *lim,
                                   struct loss_error *err);
size_t oip_header_room(const struct handler_oip *o);
void oip_header_fed(struct handler_oip *o, size_t n);
enum loss_status oip_plan(struct handler_oip *o, struct proto_doc *doc,
                          const struct handler_limits *lim, size_t *ret_bytes,
                          struct loss_error *err);
enum loss_status oip_allocate(struct handler_oip *o, struct proto_doc *doc,
                              struct loss_error *err);
enum loss_status oip_binary_feed(struct handler_oip *o, const char *data,
                                 size_t n, struct loss_error *err);
enum loss_status oip_binary_finish(const struct handler_oip *o,
                                   struct loss_error *err);
enum loss_status oip_attach(struct handler_oip *o, struct handler_call *c,
                            struct loss_error *err);

/*
 * Writes the infer response of r to out: the JSON header, then the binary
 * outputs in order (unless streaming, below); records the header's length for
 * oip_response_header_len() (0 when every output is JSON).
 */
void oip_response_write(struct handler_oip *o, const struct proto_response *r,
                        struct proto_buf *out);
size_t oip_response_header_len(const struct handler_oip *o);

/*
 * Streaming (oip_set_stream(), before the run): oip_response_write() writes
 * the JSON header only and records where each binary output's numbers are;
 * oip_tail_read() then reads the oip_tail_bytes() that follow the header,
 * narrowed to each output's datatype on the way, from those buffers: the
 * run's outputs, which call_run() hands to oip_keep() instead of freeing
 * (freed with o; oip_kept_bytes() is their size).
 */
void oip_set_stream(struct handler_oip *o);
bool oip_keep(struct handler_oip *o, double *buf, size_t bytes);
size_t oip_kept_bytes(const struct handler_oip *o);
size_t oip_tail_bytes(const struct handler_oip *o);
/* Copies the tail's bytes [pos, pos + max) (fewer at its end) to buf;
   returns how many. */
size_t oip_tail_read(const struct handler_oip *o, size_t pos, char *buf,
                     size_t max);

#endif

/*
 * handler.h - the request pipeline: from the bytes of a body to a response
 * document, for every caller (`lossd serve`, `lossd eval`, tests).
 *
 * Handlers know nothing of sockets or HTTP libraries. A request is one
 * object that goes through fixed stages, and request.c is the one place
 * that sequences them:
 *
 *   handler_request_new()     for one loss or the batch route;
 *                             handler_request_new_oip() for an Open
 *                             Inference Protocol infer request (JSON
 *                             header, then binary tensor data);
 *   handler_request_feed()    body bytes as they arrive: decoded at once,
 *                             limits and the in-flight budget checked;
 *   handler_request_finish()  the end of the body: validation against the
 *                             loss's description, shapes and derived sizes,
 *                             and the cost estimate (cheap; any thread);
 *   handler_request_cost()    lets the caller choose where to run it;
 *   handler_request_run()     computes and writes the 200 body or, for a
 *                             request that failed on the way, its problem
 *                             document (the expensive part; any thread);
 *   handler_request_problem() the problem document of a request that failed
 *                             before it could run.
 *
 * A handler_pipeline is what the requests of one server share: limits and
 * the in-flight byte budget. Every byte a request holds (decoder, document,
 * job) is counted against it from the moment it is allocated until the
 * request gives it back.
 */
#ifndef LOSSD_HANDLERS_HANDLER_H
#define LOSSD_HANDLERS_HANDLER_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "decode.h"
#include "exec.h"
#include "schema.h"
#include "status.h"
#include "value.h"

struct handler_limits {
    size_t max_body_bytes; /* decoded body bytes */
    size_t max_elements;   /* tensor elements per request */
    size_t max_rank;       /* <= TENSOR_MAX_RANK */
    size_t max_depth;      /* JSON nesting */
    size_t max_work;       /* derived sizes: broadcast result, similarity
                              matrices (N x N), response elements */
    size_t max_batch_items;
};

/* The defaults of docs/api.md and `lossd serve --help`. */
void handler_limits_default(struct handler_limits *lim);

/* The limits as published in the catalog. */
void handler_limits_describe(const struct handler_limits *lim,
                             struct proto_limits_desc *ret);

struct handler_loss;

/* The loss named name (len bytes), or NULL. Static; never freed. */
const struct handler_loss *handler_find(const char *name, size_t len);

/* Every loss, in catalog order. */
size_t handler_count(void);
const struct handler_loss *handler_at(size_t i);
const struct proto_loss_desc *handler_describe(const struct handler_loss *l);

/* The name given to the batch route's pseudo-loss. */
#define HANDLER_BATCH "batch"

struct handler_pipeline;
struct handler_request;

/*
 * A pipeline for requests held to lim (copied), with max_inflight_bytes of
 * memory for all requests in flight together (SIZE_MAX: no budget). NULL
 * when out of memory. Free it after its last request.
 */
struct handler_pipeline *handler_pipeline_new(const struct handler_limits *lim,
                                              size_t max_inflight_bytes);
void handler_pipeline_free(struct handler_pipeline *p);

/* The limits of the pipeline (borrowed, for its lifetime). */
const struct handler_limits *
handler_pipeline_limits(const struct handler_pipeline *p);

/* Bytes held by the pipeline's requests now. Any thread. */
size_t handler_pipeline_inflight(const struct handler_pipeline *p);

/*
 * A new request for loss (NULL: the batch route), ready for its body. NULL
 * when out of memory (LOSS_ENOMEM). One thread at a time may use it; it
 * may move between threads between calls.
 */
struct handler_request *handler_request_new(struct handler_pipeline *p,
                                            const struct handler_loss *loss);

/* --- the Open Inference Protocol (KServe v2), docs/api.md ---------------- */

/* The one version every model has: "/versions/1" names it. */
#define HANDLER_OIP_VERSION "1"

/* An absent Inference-Header-Content-Length, or an unknown body length. */
#define HANDLER_OIP_WHOLE SIZE_MAX

/*
 * A new request for POST /v2/models/{loss}/infer (loss not NULL): the body
 * is a JSON inference header of header_len bytes followed by the binary
 * data of the inputs that give parameters.binary_data_size
 * (HANDLER_OIP_WHOLE: the whole body is the header, as without
 * Inference-Header-Content-Length). body_len is the body's length when the
 * caller knows it (Content-Length), else HANDLER_OIP_WHOLE: the sizes are
 * then checked against it before anything large is allocated. A request
 * whose framing is wrong (a header length of 0 or beyond the body) is
 * failed at once: feed() and finish() return the failure. Binary data is
 * widened to float64 straight into the tensors as it is fed; it is bounded
 * by max_elements, the header by max_body_bytes. run() writes the
 * protocol's response. NULL when out of memory.
 */
struct handler_request *handler_request_new_oip(struct handler_pipeline *p,
                                                const struct handler_loss *loss,
                                                size_t header_len,
                                                size_t body_len);

/*
 * After a 200 run() of an infer request: the length of the response's JSON
 * header when binary outputs follow it (the response is then
 * application/octet-stream with Inference-Header-Content-Length), else 0.
 */
size_t handler_request_oip_header_len(const struct handler_request *r);

/*
 * Asks an infer request (before run()) to leave its binary outputs out of
 * run()'s body: run() then writes the JSON header only, and the
 * handler_request_tail_bytes() that follow it are read with
 * handler_request_tail_read(), straight from the run's gradient and output
 * buffers (narrowed to FP32 on the way when asked), so an answer is never
 * held a second time. The request keeps those buffers, counted against the
 * in-flight budget, until it is freed. No effect on other requests.
 */
void handler_request_stream_binary(struct handler_request *r);
size_t handler_request_tail_bytes(const struct handler_request *r);
/* Copies the tail's bytes [pos, pos + max), fewer at its end, to buf and
   returns how many. Any thread, one at a time. */
size_t handler_request_tail_read(const struct handler_request *r, size_t pos,
                                 char *buf, size_t max);

/* The most bytes an infer body can have under lim: the header's
   max_body_bytes plus max_elements of 8 bytes. SIZE_MAX on overflow. */
size_t handler_oip_body_max(const struct handler_limits *lim);

/* GET /v2/models/{loss}: the model's metadata (inputs with their
   datatypes, outputs). */
void handler_oip_model_write(struct proto_buf *b, const struct handler_loss *l);

/* GET /v2/models: every model (one per loss). */
void handler_oip_models_write(struct proto_buf *b);

/*
 * Decodes the next n bytes of the body. Counts them against max_body_bytes
 * and what the decoder holds against the in-flight budget. On the first
 * failure the request drops its body (and gives its bytes back at once):
 * later feeds and finish() return that failure again, and problem() writes
 * it.
 */
enum loss_status handler_request_feed(struct handler_request *r,
                                      const char *data, size_t n);

/*
 * Ends the body: the document is checked and the request prepared, its
 * memory held against the budget. LOSS_OK, or the failure (as for feed()).
 */
enum loss_status handler_request_finish(struct handler_request *r);

/* After a successful finish(): the estimated cost in abstract work units
   (about one unit per multiply-add or transcendental call, from shapes
   alone), and the bytes it holds at most while running. */
double handler_request_cost(const struct handler_request *r);
size_t handler_request_bytes(const struct handler_request *r);

/* The loss name (HANDLER_BATCH for the batch route); static. */
const char *handler_request_loss(const struct handler_request *r);

/*
 * Computes and writes the 200 body to out, which must be empty, and
 * returns 200. A request whose feed() or finish() failed, or whose run
 * fails, writes its problem document instead (with instance as its
 * "instance", may be NULL) and returns its HTTP status. Gives the request's
 * memory back to the budget. ex may be NULL (serial). Once only.
 */
int handler_request_run(struct handler_request *r, const struct loss_exec *ex,
                        const char *instance, struct proto_buf *out);

/*
 * After a failed feed() or finish(): appends the problem document (with
 * instance, may be NULL) to out and returns its HTTP status.
 */
int handler_request_problem(const struct handler_request *r,
                            const char *instance, struct proto_buf *out);

/* Frees the request and gives back what it held. NULL is fine. */
void handler_request_free(struct handler_request *r);

/*
 * One whole body (len bytes) through a request of a pipeline of its own
 * with the limits lim and no budget: writes the response or the problem
 * document (instance as its "instance", may be NULL) to out and returns the
 * HTTP status. loss_name HANDLER_BATCH selects the batch route; an unknown
 * name answers 404.
 */
int handler_eval(const char *loss_name, const char *body, size_t len,
                 const struct handler_limits *lim, const struct loss_exec *ex,
                 const char *instance, struct proto_buf *out);

#endif

/*
 * handler.h - from a decoded request to a response: validation, limits,
 * computation in the core, and the response document.
 *
 * Handlers know nothing of sockets or HTTP libraries. A request goes through
 * two steps so the server can decide where to run it:
 *
 *   handler_prepare()  validates the body against the loss's description
 *                      and shapes, checks every derived size against the
 *                      limits, and estimates the cost (cheap; any thread);
 *   handler_job_run()  computes and writes the 200 body (the expensive
 *                      part; the server runs it inline or on its pool).
 *
 * Either step that fails fills a struct loss_error; proto_problem_write()
 * turns it into the problem document. handler_eval() chains everything for
 * one whole body (lossd eval, tests).
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
    size_t max_body_bytes; /* enforced by the server / eval reader */
    size_t max_elements;   /* tensor elements per request */
    size_t max_rank;       /* <= TENSOR_MAX_RANK */
    size_t max_depth;      /* JSON nesting */
    size_t max_work;       /* derived sizes: broadcast result, similarity
                              matrices (N x N), response elements */
    size_t max_batch_items;
};

/* The defaults of API.md and `lossd serve --help`. */
void handler_limits_default(struct handler_limits *lim);

/* The decoder limits that go with lim. */
void handler_decoder_limits(const struct handler_limits *lim,
                            struct proto_limits *ret);

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

struct handler_job;

/*
 * Validates a decoded body for loss (NULL: the batch route) and takes
 * ownership of doc (freed with the job, or on failure). On success *ret_job
 * is new (free with handler_job_free()).
 */
enum loss_status handler_prepare(const struct handler_loss *loss,
                                 struct proto_doc *doc,
                                 const struct handler_limits *lim,
                                 struct handler_job **ret_job,
                                 struct loss_error *err);

/*
 * The job's estimated cost in abstract work units (about one unit per
 * multiply-add or transcendental call), from shapes alone. The server runs
 * jobs cheaper than its inline threshold on the HTTP thread.
 */
double handler_job_cost(const struct handler_job *job);

/* Bytes the job will hold at most while running (scratch and outputs). */
size_t handler_job_bytes(const struct handler_job *job);

/* The loss name of the job ("batch" for batches); static. */
const char *handler_job_loss(const struct handler_job *job);

/*
 * Computes the job and appends the 200 response body to out. Failures here
 * are rare (LOSS_ENOMEM, or an item of a batch, which is reported inside
 * the batch's 200 body). ex may be NULL (serial).
 */
enum loss_status handler_job_run(struct handler_job *job,
                                 const struct loss_exec *ex,
                                 struct proto_buf *out, struct loss_error *err);

void handler_job_free(struct handler_job *job);

/*
 * One whole body through decode, prepare and run: writes the response or the
 * problem document (instance as its "instance", may be NULL) to out and
 * returns the HTTP status. loss_name "batch" selects the batch route; an
 * unknown name answers 404. The body limit applies to len.
 */
int handler_eval(const char *loss_name, const char *body, size_t len,
                 const struct handler_limits *lim, const struct loss_exec *ex,
                 const char *instance, struct proto_buf *out);

#endif

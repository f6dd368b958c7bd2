/*
 * request.c - the request pipeline (handler.h): the one place that takes a
 * body from its bytes through decoding, preparation and the run to a
 * response or a problem document, and that accounts for the memory a
 * request holds on the way.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * Decoders kept for the next request, reset (proto_decoder_reset() keeps
 * at most PROTO_DECODER_KEEP_BYTES of buffers each): a new decoder per
 * request costs a dozen allocations and a locale for a small body. Enough
 * for the requests decoding at once on a few HTTP threads; past that,
 * decoders are freed. Idle ones are the pipeline's, not any request's, so
 * they are not in the in-flight bytes.
 */
#define SPARE_DECODERS 16

struct handler_pipeline {
    struct handler_limits lim;
    struct proto_limits dlim;     /* the decoder's, from lim */
    struct proto_limits oip_dlim; /* an inference header's decoder's */
    size_t max_inflight;
    _Atomic size_t inflight;  /* held by all requests */
    pthread_mutex_t spare_mu; /* guards spare and nspare */
    struct proto_decoder *spare[SPARE_DECODERS];
    size_t nspare;
};

struct handler_request {
    struct handler_pipeline *p;
    const struct handler_loss *loss; /* NULL: batch */
    struct proto_decoder *dec;       /* while the body streams */
    struct handler_job *job;         /* from a successful finish() */
    struct handler_oip *oip;         /* an infer request's state, or NULL */
    struct proto_doc *doc;   /* infer: the decoded header, until finish() */
    size_t fed;              /* body bytes */
    size_t held;             /* bytes counted in p->inflight */
    enum loss_status status; /* LOSS_OK until the first failure */
    /* That failure's detail, allocated when it happens (most requests
       never fail, and a 1 KiB error would double what a request costs to
       allocate); NULL when even that failed: status is then LOSS_ENOMEM,
       as an answer without its detail would depend on memory, and
       problem() says so. */
    struct loss_error *err;
};

void handler_limits_default(struct handler_limits *lim)
{
    lim->max_body_bytes = 64u << 20; /* Triton's default */
    lim->max_elements = 16u << 20;   /* 128 MiB of float64 */
    lim->max_rank = TENSOR_MAX_RANK;
    lim->max_depth = 64;
    lim->max_work = 64u << 20; /* e.g. nt_xent up to N = 4096 */
    lim->max_batch_items = 256;
}

static void decoder_limits(const struct handler_limits *lim,
                           struct proto_limits *ret)
{
    ret->max_elements = lim->max_elements;
    ret->max_rank =
        lim->max_rank < TENSOR_MAX_RANK ? lim->max_rank : TENSOR_MAX_RANK;
    ret->max_depth = lim->max_depth;
    /* value errors belong to batch items (docs/api.md, "Batch"): the decoder
       reads on past them; one error per item plus one for the envelope */
    ret->recover_values = true;
    ret->max_value_errors = lim->max_batch_items < SIZE_MAX - 1
                                ? lim->max_batch_items + 1
                                : SIZE_MAX;
}

/* An inference header's: its first error is the request's (its inputs,
   objects with "shape", are kept plain by the decoder itself). */
static void oip_decoder_limits(const struct handler_limits *lim,
                               struct proto_limits *ret)
{
    decoder_limits(lim, ret);
    ret->recover_values = false;
    ret->max_value_errors = 1;
}

void handler_limits_describe(const struct handler_limits *lim,
                             struct proto_limits_desc *ret)
{
    ret->max_body_bytes = lim->max_body_bytes;
    ret->max_elements = lim->max_elements;
    ret->max_rank = lim->max_rank;
    ret->max_depth = lim->max_depth;
    ret->max_work = lim->max_work;
    ret->max_batch_items = lim->max_batch_items;
}

struct handler_pipeline *handler_pipeline_new(const struct handler_limits *lim,
                                              size_t max_inflight_bytes)
{
    struct handler_pipeline *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    if (pthread_mutex_init(&p->spare_mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    p->lim = *lim;
    decoder_limits(lim, &p->dlim);
    oip_decoder_limits(lim, &p->oip_dlim);
    p->max_inflight = max_inflight_bytes;
    return p;
}

void handler_pipeline_free(struct handler_pipeline *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nspare; i++)
        proto_decoder_free(p->spare[i]);
    pthread_mutex_destroy(&p->spare_mu);
    free(p);
}

/* A decoder for a new body: a spare one, else new. NULL: out of memory. */
static struct proto_decoder *decoder_take(struct handler_pipeline *p)
{
    struct proto_decoder *d = NULL;

    pthread_mutex_lock(&p->spare_mu);
    if (p->nspare > 0)
        d = p->spare[--p->nspare];
    pthread_mutex_unlock(&p->spare_mu);
    return d ? d : proto_decoder_new(&p->dlim);
}

/* Takes back a request's decoder (NULL is fine): reset and kept, or freed
   when SPARE_DECODERS are kept already or the reset ran out of memory (the
   decoder would fail the next body with LOSS_ENOMEM: a feed of nothing
   says so). */
static void decoder_give(struct handler_pipeline *p, struct proto_decoder *d)
{
    if (d == NULL)
        return;
    proto_decoder_reset(d);
    if (proto_decoder_feed(d, NULL, 0, NULL) == LOSS_OK) {
        pthread_mutex_lock(&p->spare_mu);
        if (p->nspare < SPARE_DECODERS) {
            p->spare[p->nspare++] = d;
            d = NULL;
        }
        pthread_mutex_unlock(&p->spare_mu);
    }
    proto_decoder_free(d);
}

const struct handler_limits *
handler_pipeline_limits(const struct handler_pipeline *p)
{
    return &p->lim;
}

size_t handler_pipeline_inflight(const struct handler_pipeline *p)
{
    return atomic_load_explicit(&p->inflight, memory_order_relaxed);
}

/*
 * Sets the bytes r holds to total; false (nothing changed) when that would
 * take the pipeline past its budget.
 */
static bool hold(struct handler_request *r, size_t total)
{
    struct handler_pipeline *p = r->p;
    size_t delta, before;

    if (total <= r->held) {
        atomic_fetch_sub(&p->inflight, r->held - total);
        r->held = total;
        return true;
    }
    delta = total - r->held;
    before = atomic_fetch_add(&p->inflight, delta);
    if (before + delta < before || before + delta > p->max_inflight) {
        atomic_fetch_sub(&p->inflight, delta);
        return false;
    }
    r->held = total;
    return true;
}

/* Gives back the request's decoder: to the spares, unless it is an
   inference header's (other limits), which is freed. */
static void release_decoder(struct handler_request *r)
{
    if (r->oip != NULL)
        proto_decoder_free(r->dec);
    else
        decoder_give(r->p, r->dec);
    r->dec = NULL;
}

/* Drops everything the request holds but its error (and a streamed
   answer's buffers, of keep bytes, which stay counted). */
static void drop_but(struct handler_request *r, size_t keep)
{
    release_decoder(r);
    proto_doc_free(r->doc);
    r->doc = NULL;
    job_free(r->job);
    r->job = NULL;
    hold(r, keep);
}

static void drop(struct handler_request *r)
{
    drop_but(r, 0);
}

/* The request's first failure: recorded (err as the lower layer wrote
   it), its memory dropped. Returns the status. */
static enum loss_status failed(struct handler_request *r,
                               const struct loss_error *err)
{
    if (r->status == LOSS_OK) {
        r->status = err->status;
        r->err = malloc(sizeof(*r->err));
        if (r->err != NULL)
            *r->err = *err;
        else
            r->status = LOSS_ENOMEM;
    }
    drop(r);
    return r->status;
}

static enum loss_status over_budget(struct handler_request *r)
{
    struct loss_error err;

    loss_fail(&err, LOSS_EUNAVAIL, NULL,
              "the server holds max-inflight-bytes (%zu) of requests; "
              "retry later",
              r->p->max_inflight);
    return failed(r, &err);
}

/* A request reading its body with dec, whose bytes it holds (a 503 when
   over the budget); NULL when out of memory or dec is NULL (dec is then
   still the caller's). */
static struct handler_request *request_new(struct handler_pipeline *p,
                                           const struct handler_loss *loss,
                                           struct handler_oip *oip,
                                           struct proto_decoder *dec)
{
    struct handler_request *r = dec ? malloc(sizeof(*r)) : NULL;

    if (r == NULL)
        return NULL;
    r->p = p;
    r->loss = loss;
    r->job = NULL;
    r->oip = oip;
    r->doc = NULL;
    r->fed = 0;
    r->held = 0;
    r->status = LOSS_OK;
    r->err = NULL;
    r->dec = dec;
    if (!hold(r, proto_decoder_bytes(r->dec)))
        over_budget(r); /* its answer is the 503 */
    return r;
}

struct handler_request *handler_request_new(struct handler_pipeline *p,
                                            const struct handler_loss *loss)
{
    struct proto_decoder *dec = decoder_take(p);
    struct handler_request *r = request_new(p, loss, NULL, dec);

    if (r == NULL)
        decoder_give(p, dec);
    return r;
}

struct handler_request *handler_request_new_oip(struct handler_pipeline *p,
                                                const struct handler_loss *loss,
                                                size_t header_len,
                                                size_t body_len)
{
    /* not a spare: an inference header's decoder has limits of its own */
    struct handler_oip *oip = oip_new(loss, header_len, body_len);
    struct proto_decoder *dec = oip ? proto_decoder_new(&p->oip_dlim) : NULL;
    struct handler_request *r;
    struct loss_error err;

    if (dec != NULL)
        proto_decoder_set_plain_objects(dec);
    r = request_new(p, loss, oip, dec);
    if (r == NULL) {
        proto_decoder_free(dec);
        oip_free(oip);
        return NULL;
    }
    loss_error_init(&err);
    if (r->status == LOSS_OK &&
        oip_check_framing(r->oip, &r->p->lim, &err) != LOSS_OK)
        failed(r, &err);
    return r;
}

size_t handler_request_oip_header_len(const struct handler_request *r)
{
    return r->oip != NULL ? oip_response_header_len(r->oip) : 0;
}

void handler_request_stream_binary(struct handler_request *r)
{
    if (r->oip != NULL)
        oip_set_stream(r->oip);
}

size_t handler_request_tail_bytes(const struct handler_request *r)
{
    return r->oip != NULL ? oip_tail_bytes(r->oip) : 0;
}

size_t handler_request_tail_read(const struct handler_request *r, size_t pos,
                                 char *buf, size_t max)
{
    return r->oip != NULL ? oip_tail_read(r->oip, pos, buf, max) : 0;
}

/*
 * The end of an infer request's header: the decoded header planned into
 * the v1 body and the binary inputs' buffers allocated, each held against
 * the budget before it is allocated.
 */
static enum loss_status end_header(struct handler_request *r)
{
    struct loss_error err;
    size_t need = 0;

    loss_error_init(&err);
    if (proto_decoder_finish(r->dec, &r->doc, &err) != LOSS_OK)
        return failed(r, &err);
    release_decoder(r);
    if (oip_plan(r->oip, r->doc, &r->p->lim, &need, &err) != LOSS_OK)
        return failed(r, &err);
    if (!hold(r, proto_doc_bytes(r->doc) + need))
        return over_budget(r);
    if (oip_allocate(r->oip, r->doc, &err) != LOSS_OK)
        return failed(r, &err);
    if (!hold(r, proto_doc_bytes(r->doc)))
        return over_budget(r);
    return LOSS_OK;
}

/* feed() of an infer request: the header's bytes to the decoder (counted
   against max_body_bytes), the rest to the binary inputs. */
static enum loss_status feed_oip(struct handler_request *r, const char *data,
                                 size_t n)
{
    struct loss_error err;

    loss_error_init(&err);
    while (n > 0) {
        size_t k;

        if (r->dec == NULL) {
            if (oip_binary_feed(r->oip, data, n, &err) != LOSS_OK)
                return failed(r, &err);
            return LOSS_OK;
        }
        k = oip_header_room(r->oip);
        k = k < n ? k : n;
        r->fed += k;
        if (r->fed > r->p->lim.max_body_bytes) {
            loss_fail(&err, LOSS_ETOOLARGE, NULL,
                      "the inference header exceeds max_body_bytes (%zu "
                      "bytes)",
                      r->p->lim.max_body_bytes);
            return failed(r, &err);
        }
        if (proto_decoder_feed(r->dec, data, k, &err) != LOSS_OK)
            return failed(r, &err);
        if (!hold(r, proto_decoder_bytes(r->dec)))
            return over_budget(r);
        oip_header_fed(r->oip, k);
        data += k;
        n -= k;
        if (oip_header_room(r->oip) == 0 && end_header(r) != LOSS_OK)
            return r->status;
    }
    return LOSS_OK;
}

/* finish() of an infer request. */
static enum loss_status finish_oip(struct handler_request *r)
{
    struct loss_error err;
    struct proto_doc *doc;

    loss_error_init(&err);
    if (r->dec != NULL) {
        if (oip_header_room(r->oip) != HANDLER_OIP_WHOLE) {
            loss_fail(&err, LOSS_EREQUEST, NULL,
                      "the body ends inside the inference header "
                      "(Inference-Header-Content-Length is %zu bytes more)",
                      oip_header_room(r->oip));
            return failed(r, &err);
        }
        if (end_header(r) != LOSS_OK)
            return r->status;
    }
    if (oip_binary_finish(r->oip, &err) != LOSS_OK)
        return failed(r, &err);
    doc = r->doc;
    r->doc = NULL;
    /* the document stays held while it is validated */
    if (job_prepare(r->loss, doc, &r->p->lim, &r->job, &err) != LOSS_OK)
        return failed(r, &err);
    if (oip_attach(r->oip, job_call(r->job), &err) != LOSS_OK)
        return failed(r, &err);
    if (!hold(r, job_bytes(r->job))) /* the document included */
        return over_budget(r);
    return LOSS_OK;
}

enum loss_status handler_request_feed(struct handler_request *r,
                                      const char *data, size_t n)
{
    struct loss_error err;

    if (r->status != LOSS_OK)
        return r->status;
    if (r->oip != NULL)
        return feed_oip(r, data, n);
    r->fed += n;
    if (r->fed > r->p->lim.max_body_bytes || r->fed < n) {
        loss_fail(&err, LOSS_ETOOLARGE, NULL,
                  "request body exceeds max_body_bytes (%zu bytes)",
                  r->p->lim.max_body_bytes);
        return failed(r, &err);
    }
    loss_error_init(&err);
    if (proto_decoder_feed(r->dec, data, n, &err) != LOSS_OK)
        return failed(r, &err);
    if (!hold(r, proto_decoder_bytes(r->dec)))
        return over_budget(r);
    return LOSS_OK;
}

enum loss_status handler_request_finish(struct handler_request *r)
{
    struct proto_doc *doc = NULL;
    struct loss_error err;
    size_t doc_bytes;

    if (r->status != LOSS_OK)
        return r->status;
    if (r->oip != NULL)
        return finish_oip(r);
    loss_error_init(&err);
    doc_bytes = proto_decoder_bytes(r->dec);
    if (proto_decoder_finish(r->dec, &doc, &err) != LOSS_OK)
        return failed(r, &err);
    decoder_give(r->p, r->dec);
    r->dec = NULL;
    /* the document stays held (doc_bytes) while it is validated */
    if (job_prepare(r->loss, doc, &r->p->lim, &r->job, &err) != LOSS_OK)
        return failed(r, &err);
    if (!hold(r, doc_bytes + job_bytes(r->job)))
        return over_budget(r);
    return LOSS_OK;
}

double handler_request_cost(const struct handler_request *r)
{
    return r->job ? job_cost(r->job) : 0.0;
}

size_t handler_request_bytes(const struct handler_request *r)
{
    return r->held;
}

const char *handler_request_loss(const struct handler_request *r)
{
    return r->loss ? r->loss->desc.name : HANDLER_BATCH;
}

int handler_request_run(struct handler_request *r, const struct loss_exec *ex,
                        const char *instance, struct proto_buf *out)
{
    struct loss_error err;

    if (r->job == NULL) /* not finished, or failed */
        return handler_request_problem(r, instance, out);
    loss_error_init(&err);
    if (job_run(r->job, ex, out, &err) != LOSS_OK) {
        proto_buf_reset(out); /* drop whatever the failed run wrote */
        failed(r, &err);
        return handler_request_problem(r, instance, out);
    }
    /* a streamed answer's buffers stay held until it is read and freed:
       fewer bytes than the run held, so this never fails */
    drop_but(r, r->oip != NULL ? oip_kept_bytes(r->oip) : 0);
    return 200;
}

int handler_request_problem(const struct handler_request *r,
                            const char *instance, struct proto_buf *out)
{
    struct loss_error err;
    const struct loss_error *e = r->err;

    if (r->status == LOSS_OK) {
        /* a caller's mistake: run() before finish() */
        loss_fail(&err, LOSS_EINTERNAL, NULL,
                  "the request was run before its body was finished");
        e = &err;
    } else if (e == NULL) {
        loss_fail(&err, r->status, NULL,
                  "%s (out of memory writing the details)",
                  proto_status_title(r->status));
        e = &err;
    }
    proto_problem_write(out, e, instance, NULL);
    return proto_status_http(e->status);
}

void handler_request_free(struct handler_request *r)
{
    if (r == NULL)
        return;
    drop(r);
    oip_free(r->oip);
    free(r->err);
    free(r);
}

int handler_eval(const char *loss_name, const char *body, size_t len,
                 const struct handler_limits *lim, const struct loss_exec *ex,
                 const char *instance, struct proto_buf *out)
{
    const struct handler_loss *loss = NULL;
    struct handler_pipeline *p = NULL;
    struct handler_request *r = NULL;
    struct loss_error err;
    int status;

    if (strcmp(loss_name, HANDLER_BATCH) != 0) {
        loss = handler_find(loss_name, strlen(loss_name));
        if (loss == NULL) {
            loss_fail(&err, LOSS_ENOTFOUND, NULL,
                      "unknown loss \"%.64s\" (GET /v1/losses lists them)",
                      loss_name);
            goto fail;
        }
    }
    p = handler_pipeline_new(lim, SIZE_MAX);
    r = p ? handler_request_new(p, loss) : NULL;
    if (r == NULL) {
        loss_fail(&err, LOSS_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    handler_request_feed(r, body, len);
    handler_request_finish(r);
    status = handler_request_run(r, ex, instance, out);
    handler_request_free(r);
    handler_pipeline_free(p);
    return status;
fail:
    handler_pipeline_free(p);
    proto_problem_write(out, &err, instance, NULL);
    return proto_status_http(err.status);
}

/*
 * handler.c - jobs: a validated request (one loss, or a batch of them) that
 * owns its decoded document, ready to run anywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct handler_job {
    struct proto_doc *doc;
    const struct handler_loss *loss; /* NULL: batch */
    struct handler_limits lim;
    struct handler_call *calls;     /* 1, or one per batch item */
    struct loss_error *item_errors; /* batch: status != OK = refused item */
    size_t ncalls;
    double cost;
    size_t bytes;
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

void handler_decoder_limits(const struct handler_limits *lim,
                            struct proto_limits *ret)
{
    ret->max_elements = lim->max_elements;
    ret->max_rank =
        lim->max_rank < TENSOR_MAX_RANK ? lim->max_rank : TENSOR_MAX_RANK;
    ret->max_depth = lim->max_depth;
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

static struct handler_job *job_new(struct proto_doc *doc,
                                   const struct handler_loss *loss,
                                   const struct handler_limits *lim, size_t n)
{
    struct handler_job *job = calloc(1, sizeof(*job));

    if (job == NULL)
        return NULL;
    job->calls = calloc(n ? n : 1, sizeof(*job->calls));
    job->item_errors = calloc(n ? n : 1, sizeof(*job->item_errors));
    if (job->calls == NULL || job->item_errors == NULL) {
        free(job->calls);
        free(job->item_errors);
        free(job);
        return NULL;
    }
    job->doc = doc;
    job->loss = loss;
    job->lim = *lim;
    job->ncalls = n;
    job->bytes = proto_doc_bytes(doc);
    return job;
}

void handler_job_free(struct handler_job *job)
{
    if (job == NULL)
        return;
    proto_doc_free(job->doc);
    free(job->calls);
    free(job->item_errors);
    free(job);
}

/* The loss an item names (its own "loss", else shared's), or a problem. */
static enum loss_status item_loss(const struct proto_value *item,
                                  const struct proto_value *shared,
                                  const char *prefix,
                                  const struct handler_loss **ret,
                                  struct loss_error *err)
{
    const struct proto_value *v = proto_object_get(item, "loss");
    char ptr[LOSS_POINTER_MAX];

    snprintf(ptr, sizeof(ptr), "%s/loss", v || !shared ? prefix : "/shared");
    if (v == NULL && shared != NULL)
        v = proto_object_get(shared, "loss");
    if (v == NULL)
        return loss_fail(err, LOSS_EMISSING, ptr,
                         "every batch item needs \"loss\" (its own or "
                         "shared's)");
    if (v->type != PROTO_STRING)
        return loss_fail(
            err, v->type == PROTO_NULL ? LOSS_EVALUE : LOSS_EOPTION, ptr,
            "loss must be a string, not %s", proto_type_name(v->type));
    *ret = handler_find(v->u.string.ptr, v->u.string.len);
    if (*ret == NULL)
        return loss_fail(err, LOSS_ENOTFOUND, ptr,
                         "unknown loss \"%.64s\" (GET /v1/losses lists them)",
                         v->u.string.ptr);
    return LOSS_OK;
}

static enum loss_status batch_prepare(struct handler_job **ret_job,
                                      struct proto_doc *doc,
                                      const struct handler_limits *lim,
                                      struct loss_error *err)
{
    const struct proto_value *root = proto_doc_root(doc);
    const struct proto_value *requests, *shared;
    struct handler_job *job;
    size_t n = 0;

    if (root->type != PROTO_OBJECT)
        return loss_fail(err, LOSS_EVALUE, "",
                         "the batch body must be a JSON object, not %s",
                         proto_type_name(root->type));
    for (size_t i = 0; i < root->u.object.len; i++) {
        const struct proto_member *m = &root->u.object.members[i];
        char ptr[LOSS_POINTER_MAX] = "";

        if (strcmp(m->key, "requests") == 0 || strcmp(m->key, "shared") == 0)
            continue;
        loss_pointer_append(ptr, sizeof(ptr), m->key, m->key_len);
        return loss_fail(err, LOSS_EUNKNOWN, ptr,
                         "unknown field \"%.64s\" in a batch, which takes "
                         "requests and shared",
                         m->key);
    }
    requests = proto_object_get(root, "requests");
    shared = proto_object_get(root, "shared");
    if (requests == NULL)
        return loss_fail(err, LOSS_EMISSING, "/requests",
                         "a batch needs \"requests\", an array of request "
                         "objects");
    if (!proto_value_is_list(requests, &n) ||
        (n > 0 && requests->type != PROTO_ARRAY))
        return loss_fail(err, LOSS_EVALUE, "/requests",
                         "requests must be an array of request objects");
    if (n == 0)
        return loss_fail(err, LOSS_EVALUE, "/requests",
                         "requests must not be empty");
    if (n > lim->max_batch_items)
        return loss_fail(err, LOSS_ETOOLARGE, "/requests",
                         "the batch has %zu items, over the max_batch_items "
                         "limit of %zu",
                         n, lim->max_batch_items);
    if (shared != NULL && shared->type != PROTO_OBJECT)
        return loss_fail(err, LOSS_EVALUE, "/shared",
                         "shared must be an object of fields for every item");
    job = job_new(doc, NULL, lim, n);
    if (job == NULL)
        return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct proto_value *item = &requests->u.array.items[i];
        struct loss_error *ierr = &job->item_errors[i];
        const struct handler_loss *loss = NULL;
        char prefix[LOSS_POINTER_MAX] = "/requests";

        loss_pointer_append_index(prefix, sizeof(prefix), i);
        loss_error_init(ierr);
        if (item->type != PROTO_OBJECT) {
            loss_fail(ierr, LOSS_EVALUE, prefix,
                      "a batch item must be an object, not %s",
                      proto_type_name(item->type));
            continue;
        }
        job->calls[i].id = proto_object_get(item, "id");
        if (item_loss(item, shared, prefix, &loss, ierr) != LOSS_OK)
            continue;
        if (call_prepare(&job->calls[i], loss, &job->lim, item, prefix, shared,
                         ierr) != LOSS_OK) {
            job->calls[i].id = proto_object_get(item, "id");
            continue;
        }
        job->cost += job->calls[i].cost;
        job->bytes += job->calls[i].bytes;
    }
    *ret_job = job;
    return LOSS_OK;
}

enum loss_status handler_prepare(const struct handler_loss *loss,
                                 struct proto_doc *doc,
                                 const struct handler_limits *lim,
                                 struct handler_job **ret_job,
                                 struct loss_error *err)
{
    struct handler_job *job = NULL;
    enum loss_status st;

    if (loss == NULL) {
        st = batch_prepare(&job, doc, lim, err);
        if (st != LOSS_OK)
            proto_doc_free(doc);
        else
            *ret_job = job;
        return st;
    }
    job = job_new(doc, loss, lim, 1);
    if (job == NULL) {
        proto_doc_free(doc);
        return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
    }
    st = call_prepare(&job->calls[0], loss, &job->lim, proto_doc_root(doc), "",
                      NULL, err);
    if (st != LOSS_OK) {
        handler_job_free(job);
        return st;
    }
    job->cost = job->calls[0].cost;
    job->bytes += job->calls[0].bytes;
    *ret_job = job;
    return LOSS_OK;
}

double handler_job_cost(const struct handler_job *job)
{
    return job->cost;
}

size_t handler_job_bytes(const struct handler_job *job)
{
    return job->bytes;
}

const char *handler_job_loss(const struct handler_job *job)
{
    return job->loss ? job->loss->desc.name : HANDLER_BATCH;
}

static enum loss_status batch_run(struct handler_job *job,
                                  const struct loss_exec *ex,
                                  struct proto_buf *out)
{
    proto_buf_puts(out, "{\"results\":[");
    for (size_t i = 0; i < job->ncalls; i++) {
        struct loss_error *ierr = &job->item_errors[i];
        size_t mark;

        if (i)
            proto_buf_puts(out, ",");
        mark = out->len;
        if (ierr->status == LOSS_OK &&
            call_run(&job->calls[i], ex, 200, out, ierr) == LOSS_OK)
            continue;
        out->len = mark; /* drop whatever a failed run wrote */
        proto_problem_write(out, ierr, NULL, job->calls[i].id);
    }
    proto_buf_puts(out, "]}");
    return LOSS_OK;
}

enum loss_status handler_job_run(struct handler_job *job,
                                 const struct loss_exec *ex,
                                 struct proto_buf *out, struct loss_error *err)
{
    enum loss_status st;

    if (job->loss == NULL)
        st = batch_run(job, ex, out);
    else
        st = call_run(&job->calls[0], ex, 0, out, err);
    if (st == LOSS_OK && !proto_buf_ok(out))
        st = loss_fail(err, LOSS_ENOMEM, NULL,
                       "out of memory writing the response");
    return st;
}

int handler_eval(const char *loss_name, const char *body, size_t len,
                 const struct handler_limits *lim, const struct loss_exec *ex,
                 const char *instance, struct proto_buf *out)
{
    const struct handler_loss *loss = NULL;
    struct handler_job *job = NULL;
    struct proto_doc *doc = NULL;
    struct proto_limits plim;
    struct loss_error err;
    enum loss_status st;

    loss_error_init(&err);
    if (strcmp(loss_name, HANDLER_BATCH) != 0) {
        loss = handler_find(loss_name, strlen(loss_name));
        if (loss == NULL) {
            st = loss_fail(&err, LOSS_ENOTFOUND, NULL,
                           "unknown loss \"%.64s\" (GET /v1/losses lists "
                           "them)",
                           loss_name);
            goto out;
        }
    }
    if (len > lim->max_body_bytes) {
        st = loss_fail(&err, LOSS_ETOOLARGE, NULL,
                       "request body exceeds max_body_bytes (%zu bytes)",
                       lim->max_body_bytes);
        goto out;
    }
    handler_decoder_limits(lim, &plim);
    st = proto_decode(body, len, &plim, &doc, &err);
    if (st != LOSS_OK)
        goto out;
    st = handler_prepare(loss, doc, lim, &job, &err);
    if (st != LOSS_OK)
        goto out;
    st = handler_job_run(job, ex, out, &err);
out:
    handler_job_free(job);
    if (st != LOSS_OK) {
        proto_buf_reset(out);
        proto_problem_write(out, &err, instance, NULL);
        return proto_status_http(st);
    }
    return 200;
}

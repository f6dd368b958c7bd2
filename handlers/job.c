/*
 * job.c - jobs: a validated request (one loss, or a batch of them) that owns
 * its decoded document, ready to run anywhere. request.c drives them.
 *
 * Value errors. The pipeline's decoder limits set recover_values: the decoder
 * reads on past a ragged tensor, a null in a tensor, a bad tensor object or
 * a duplicate key, leaving an invalid value and listing the error
 * (proto_doc_error()). job_prepare() then decides: for one loss, the
 * first error fails the request, as if the decoder had stopped there (a
 * later syntax error or limit still wins: the decoder reports those). In a
 * batch, an error under "/requests/<i>" is item i's result, with the item's
 * id when the id itself is valid, and the other items run; an error
 * anywhere else ("/shared", the envelope) or a broken envelope fails the
 * whole request (docs/api.md, "Batch").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct handler_job {
    struct proto_doc *doc;
    const struct handler_loss *loss; /* NULL: batch */
    struct handler_limits lim;
    struct loss_error *item_errors; /* batch: status != OK = refused item */
    size_t ncalls;
    size_t room; /* calls[] allocated (ncalls, or 1 for an empty batch) */
    double cost;
    size_t bytes;
    struct handler_call calls[]; /* 1, or one per batch item */
};

/*
 * One allocation for the job and its calls, all cleared (call_prepare()
 * takes zeroed calls). Only a batch (loss NULL) has item_errors.
 */
static struct handler_job *job_new(struct proto_doc *doc,
                                   const struct handler_loss *loss,
                                   const struct handler_limits *lim, size_t n)
{
    struct handler_job *job;
    size_t room = n ? n : 1;

    if (room > (SIZE_MAX - sizeof(*job)) / sizeof(job->calls[0]))
        return NULL;
    job = calloc(1, sizeof(*job) + room * sizeof(job->calls[0]));
    if (job == NULL)
        return NULL;
    job->room = room;
    if (loss == NULL) {
        job->item_errors = calloc(room, sizeof(*job->item_errors));
        if (job->item_errors == NULL) {
            free(job);
            return NULL;
        }
    }
    job->doc = doc;
    job->loss = loss;
    job->lim = *lim;
    job->ncalls = n;
    job->bytes = proto_doc_bytes(doc);
    return job;
}

void job_free(struct handler_job *job)
{
    if (job == NULL)
        return;
    for (size_t i = 0; i < job->room; i++)
        call_release(&job->calls[i]);
    proto_doc_free(job->doc);
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

    loss_str_copy(ptr, sizeof(ptr), v || !shared ? prefix : "/shared");
    loss_pointer_append(ptr, sizeof(ptr), "loss", 4);
    if (v == NULL && shared != NULL)
        v = proto_object_get(shared, "loss");
    if (v == NULL)
        return loss_fail(err, LOSS_EMISSING, ptr,
                         "every batch item needs \"loss\" (its own or "
                         "shared's)");
    if (v->type == PROTO_INVALID)
        return proto_value_error(v, ptr, err);
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

/*
 * The index of the batch item (of n) that the pointer of e lies in:
 * "/requests/<i>" or anything below it; n when it lies elsewhere (the
 * envelope, "/shared").
 */
static size_t error_item(const struct loss_error *e, size_t n)
{
    static const char prefix[] = "/requests/";
    const char *p = e->pointer;
    size_t i = 0;

    if (!e->has_pointer || strncmp(p, prefix, sizeof(prefix) - 1) != 0)
        return n;
    p += sizeof(prefix) - 1;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
        return n;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (i >= n)
            return n; /* also keeps i * 10 from overflowing */
        i = i * 10 + (size_t)(*p - '0');
    }
    if (*p != '\0' && *p != '/')
        return n;
    return i < n ? i : n;
}

/* An item's "id" when it can be written back: present and wholly valid. */
static const struct proto_value *item_id(const struct proto_value *item)
{
    const struct proto_value *id = proto_object_get(item, "id");

    return id != NULL && proto_value_find_invalid(id) == NULL ? id : NULL;
}

/*
 * Checks the shape of the batch envelope (docs/api.md, "Batch"): an object of
 * "requests" (a non-empty array within max_batch_items) and "shared" (an
 * object). Sets *ret_requests, *ret_shared (NULL when absent) and *ret_n.
 */
static enum loss_status batch_envelope(const struct proto_value *root,
                                       const struct handler_limits *lim,
                                       const struct proto_value **ret_requests,
                                       const struct proto_value **ret_shared,
                                       size_t *ret_n, struct loss_error *err)
{
    const struct proto_value *requests, *shared;
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
    *ret_requests = requests;
    *ret_shared = shared;
    *ret_n = n;
    return LOSS_OK;
}

/*
 * The first value error outside the n items: in the document's list, else
 * (past the errors it kept) an invalid value in "shared" or at the top of
 * the envelope (a duplicate "requests").
 */
static enum loss_status outside_items(const struct proto_doc *doc, size_t n,
                                      const struct proto_value *shared,
                                      struct loss_error *err)
{
    const struct proto_value *root = proto_doc_root(doc), *bad;
    size_t nerrors = proto_doc_errors(doc, NULL);

    for (size_t k = 0; k < nerrors; k++) {
        const struct loss_error *e = proto_doc_error(doc, k);

        if (error_item(e, n) == n) {
            if (err != NULL)
                *err = *e;
            return e->status;
        }
    }
    for (size_t i = 0; i < root->u.object.len; i++) {
        const struct proto_member *m = &root->u.object.members[i];
        char ptr[LOSS_POINTER_MAX] = "";

        loss_pointer_append(ptr, sizeof(ptr), m->key, m->key_len);
        if (m->value.type == PROTO_INVALID)
            return proto_value_error(&m->value, ptr, err);
    }
    bad = shared != NULL ? proto_value_find_invalid(shared) : NULL;
    if (bad != NULL)
        return proto_value_error(bad, "/shared", err);
    return LOSS_OK;
}

/*
 * A batch. The decoder read on past value errors (recover_values), so the
 * document may hold some: an error inside item i is item i's result; the
 * first one anywhere else (in "shared", in the envelope) answers the whole
 * request. So does a malformed envelope, with the document's first error
 * when it has one, as the decoder reported before batches recovered (the
 * items cannot be told apart then). Errors past the document's kept ones
 * are found in the tree instead: outside_items() looks there, and an
 * item's invalid values fail it in call_prepare().
 */
static enum loss_status batch_prepare(struct handler_job **ret_job,
                                      struct proto_doc *doc,
                                      const struct handler_limits *lim,
                                      struct loss_error *err)
{
    const struct proto_value *requests = NULL, *shared = NULL;
    const struct loss_error *first = proto_doc_error(doc, 0);
    size_t nerrors = proto_doc_errors(doc, NULL);
    struct handler_job *job;
    enum loss_status st;
    size_t n = 0;

    st = batch_envelope(proto_doc_root(doc), lim, &requests, &shared, &n, err);
    if (st != LOSS_OK && first != NULL) {
        if (err != NULL)
            *err = *first;
        return first->status;
    }
    if (st != LOSS_OK)
        return st;
    st = outside_items(doc, n, shared, err);
    if (st != LOSS_OK)
        return st;
    job = job_new(doc, NULL, lim, n);
    if (job == NULL)
        return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        loss_error_init(&job->item_errors[i]);
    for (size_t k = 0; k < nerrors; k++) {
        const struct loss_error *e = proto_doc_error(doc, k);
        struct loss_error *ierr = &job->item_errors[error_item(e, n)];

        if (ierr->status == LOSS_OK)
            *ierr = *e; /* an item's first error is its result */
    }
    for (size_t i = 0; i < n; i++) {
        const struct proto_value *item = &requests->u.array.items[i];
        struct loss_error *ierr = &job->item_errors[i];
        const struct handler_loss *loss = NULL;
        char prefix[LOSS_POINTER_MAX] = "/requests";

        loss_pointer_append_index(prefix, sizeof(prefix), i);
        job->calls[i].id = item_id(item);
        if (ierr->status != LOSS_OK)
            continue;
        if (item->type == PROTO_INVALID) {
            proto_value_error(item, prefix, ierr);
            continue;
        }
        if (item->type != PROTO_OBJECT) {
            loss_fail(ierr, LOSS_EVALUE, prefix,
                      "a batch item must be an object, not %s",
                      proto_type_name(item->type));
            continue;
        }
        if (item_loss(item, shared, prefix, &loss, ierr) != LOSS_OK)
            continue;
        if (call_prepare(&job->calls[i], loss, &job->lim, item, prefix, shared,
                         ierr) != LOSS_OK) {
            job->calls[i].id = item_id(item);
            continue;
        }
        job->cost += job->calls[i].cost;
        job->bytes += job->calls[i].bytes;
    }
    *ret_job = job;
    return LOSS_OK;
}

enum loss_status job_prepare(const struct handler_loss *loss,
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
    if (proto_doc_errors(doc, NULL) > 0) {
        /*
         * One loss: the first value error answers, exactly as when the
         * decoder stopped at it (a later syntax error or limit is reported
         * by the decoder instead, since those stay fatal).
         */
        st = proto_doc_error(doc, 0)->status;
        if (err != NULL)
            *err = *proto_doc_error(doc, 0);
        proto_doc_free(doc);
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
        job_free(job);
        return st;
    }
    job->cost = job->calls[0].cost;
    job->bytes += job->calls[0].bytes;
    *ret_job = job;
    return LOSS_OK;
}

struct handler_call *job_call(struct handler_job *job)
{
    return job->loss != NULL ? &job->calls[0] : NULL;
}

double job_cost(const struct handler_job *job)
{
    return job->cost;
}

size_t job_bytes(const struct handler_job *job)
{
    return job->bytes;
}

const char *job_loss(const struct handler_job *job)
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

enum loss_status job_run(struct handler_job *job, const struct loss_exec *ex,
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

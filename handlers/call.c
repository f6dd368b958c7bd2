/*
 * call.c - what every loss request has in common: parsing a body against the
 * loss's description, the response, and the reduction arithmetic (sum,
 * count, value, upstream gradients) described in core/loss.h.
 */
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sum.h"

int call_tensor_index(const struct handler_call *c, const char *name)
{
    const struct proto_loss_desc *d = &c->loss->desc;

    for (size_t i = 0; i < d->ntensors; i++)
        if (strcmp(d->tensors[i].name, name) == 0)
            return (int)i;
    return -1;
}

int call_option_index(const struct handler_call *c, const char *name)
{
    const struct proto_loss_desc *d = &c->loss->desc;

    for (size_t i = 0; i < d->noptions; i++)
        if (strcmp(d->options[i].name, name) == 0)
            return (int)i;
    return -1;
}

struct handler_tensor *call_tensor(struct handler_call *c, const char *name)
{
    int i = call_tensor_index(c, name);

    return i < 0 ? NULL : &c->tensors[i];
}

const struct handler_option *call_option(const struct handler_call *c,
                                         const char *name)
{
    static const struct handler_option absent;
    int i = call_option_index(c, name);

    return i < 0 ? &absent : &c->options[i];
}

void call_pointer(const struct handler_call *c, const struct handler_at *at,
                  char *buf, size_t cap)
{
    buf[0] = '\0';
    if (at == NULL || at->name == NULL)
        return;
    loss_str_copy(buf, cap, at->shared ? "/shared" : c->prefix);
    loss_pointer_append(buf, cap, at->name, strlen(at->name));
}

enum loss_status call_fail(const struct handler_call *c, struct loss_error *err,
                           enum loss_status st, const struct handler_at *at,
                           const char *fmt, ...)
{
    char ptr[LOSS_POINTER_MAX], msg[LOSS_DETAIL_MAX];
    va_list ap;

    call_pointer(c, at, ptr, sizeof(ptr));
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return loss_fail(err, st, ptr, "%s", msg);
}

void call_warn(struct handler_call *c, const char *code,
               const struct handler_at *at, const char *fmt, ...)
{
    struct proto_warning *w;
    va_list ap;

    if (c->nwarnings == HANDLER_MAX_WARNINGS)
        return;
    for (size_t i = 0; i < c->nwarnings; i++)
        if (strcmp(c->warnings[i].code, code) == 0)
            return;
    if (c->warnings == NULL) {
        c->warnings = calloc(HANDLER_MAX_WARNINGS, sizeof(*c->warnings));
        if (c->warnings == NULL) {
            c->warnings_lost = true;
            return;
        }
    }
    w = &c->warnings[c->nwarnings++];
    w->code = code;
    call_pointer(c, at, w->pointer, sizeof(w->pointer));
    va_start(ap, fmt);
    vsnprintf(w->message, sizeof(w->message), fmt, ap);
    va_end(ap);
}

void call_release(struct handler_call *c)
{
    free(c->warnings);
    c->warnings = NULL;
    c->nwarnings = 0;
    c->warnings_lost = false;
}

void call_torch_size(const struct tensor *t, char *buf, size_t cap)
{
    char dims[128];

    tensor_shape_format(t->shape, t->ndim, dims, sizeof(dims));
    snprintf(buf, cap, "torch.Size(%s)", dims);
}

enum loss_status call_check_work(const struct handler_call *c, size_t n,
                                 const char *what, struct loss_error *err)
{
    if (n <= c->lim->max_work)
        return LOSS_OK;
    return loss_fail(err, LOSS_ETOOLARGE, NULL,
                     "%s has %zu elements, over the max_work limit of %zu",
                     what, n, c->lim->max_work);
}

void call_element_pointer(const struct handler_call *c,
                          const struct handler_tensor *t, size_t linear,
                          char *buf, size_t cap)
{
    const struct tensor *x = &t->pt.t;
    size_t idx[TENSOR_MAX_RANK];

    call_pointer(c, &t->at, buf, cap);
    if (t->pt.encoding == PROTO_ENC_BASE64 || x->ndim == 0)
        return;
    if (t->pt.encoding == PROTO_ENC_FLAT) {
        size_t n = strlen(buf);

        if (n < cap)
            snprintf(buf + n, cap - n, "/data/%zu", linear);
        return;
    }
    for (size_t d = x->ndim; d-- > 0;) {
        idx[d] = linear % x->shape[d];
        linear /= x->shape[d];
    }
    for (size_t d = 0; d < x->ndim; d++)
        loss_pointer_append_index(buf, cap, idx[d]);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */

static const char *const reduction_names[] = {
    [LOSS_REDUCTION_NONE] = "none",
    [LOSS_REDUCTION_MEAN] = "mean",
    [LOSS_REDUCTION_SUM] = "sum",
    [LOSS_REDUCTION_BATCHMEAN] = "batchmean",
};

static const unsigned reduction_bits[] = {
    [LOSS_REDUCTION_NONE] = PROTO_RED_NONE,
    [LOSS_REDUCTION_MEAN] = PROTO_RED_MEAN,
    [LOSS_REDUCTION_SUM] = PROTO_RED_SUM,
    [LOSS_REDUCTION_BATCHMEAN] = PROTO_RED_BATCHMEAN,
};

/* "input, target, weight, reduction, ..." : the fields a loss takes. */
static void list_fields(const struct proto_loss_desc *d, char *buf, size_t cap)
{
    size_t n = 0;

    buf[0] = '\0';
#define ADD(name)                                                              \
    do {                                                                       \
        if (n < cap)                                                           \
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "",     \
                                  (name));                                     \
    } while (0)
    for (size_t i = 0; i < d->ntensors; i++)
        ADD(d->tensors[i].name);
    if (d->reductions)
        ADD("reduction");
    for (size_t i = 0; i < d->noptions; i++)
        ADD(d->options[i].name);
    ADD("grad");
    ADD("grad_output");
    ADD("output_format");
#undef ADD
}

static enum loss_status parse_reduction(struct handler_call *c,
                                        const struct proto_value *v,
                                        const char *ptr, struct loss_error *err)
{
    const struct proto_loss_desc *d = &c->loss->desc;

    if (v->type == PROTO_NULL)
        return loss_fail(err, LOSS_EVALUE, ptr, "reduction must not be null");
    if (v->type != PROTO_STRING)
        return loss_fail(err, LOSS_EOPTION, ptr,
                         "reduction must be a string, not %s",
                         proto_type_name(v->type));
    for (size_t r = 0; r < sizeof(reduction_names) / sizeof(*reduction_names);
         r++) {
        if (strcmp(v->u.string.ptr, reduction_names[r]) != 0)
            continue;
        if (!(d->reductions & reduction_bits[r]))
            break;
        c->reduction = (enum loss_reduction)r;
        return LOSS_OK;
    }
    return loss_fail(err, LOSS_EOPTION, ptr,
                     "%s is not a valid value for reduction of %s (use %s)",
                     v->u.string.ptr, d->name,
                     (d->reductions & PROTO_RED_BATCHMEAN)
                         ? "none, mean, sum or batchmean"
                         : "none, mean or sum");
}

static enum loss_status check_range(const struct proto_option_desc *o, double x,
                                    const char *ptr, struct loss_error *err)
{
    bool low = o->has_minimum &&
               (o->exclusive_minimum ? !(x > o->minimum) : !(x >= o->minimum));
    bool high = o->has_maximum &&
                (o->exclusive_maximum ? !(x < o->maximum) : !(x <= o->maximum));

    if (!low && !high)
        return LOSS_OK;
    if (o->has_minimum && o->has_maximum)
        return loss_fail(
            err, LOSS_EOPTION, ptr, "%s must be between %g and %g%s, got %.17g",
            o->name, o->minimum, o->maximum,
            o->exclusive_minimum ? " (exclusive of the minimum)" : "", x);
    if (low)
        return loss_fail(err, LOSS_EOPTION, ptr, "%s must be %s %g, got %.17g",
                         o->name, o->exclusive_minimum ? ">" : ">=", o->minimum,
                         x);
    return loss_fail(err, LOSS_EOPTION, ptr, "%s must be %s %g, got %.17g",
                     o->name, o->exclusive_maximum ? "<" : "<=", o->maximum, x);
}

static enum loss_status parse_option(const struct proto_option_desc *o,
                                     struct handler_option *out,
                                     const struct proto_value *v,
                                     const char *ptr, bool shared,
                                     struct loss_error *err)
{
    static const char *const type_names[] = {
        [PROTO_OPT_NUMBER] = "a number",
        [PROTO_OPT_INTEGER] = "an integer",
        [PROTO_OPT_BOOLEAN] = "a boolean",
        [PROTO_OPT_STRING] = "a string",
    };

    out->at.name = o->name;
    out->at.shared = shared;
    if (v->type == PROTO_NULL)
        return loss_fail(err, LOSS_EVALUE, ptr, "%s must not be null", o->name);
    switch (o->type) {
    case PROTO_OPT_NUMBER:
    case PROTO_OPT_INTEGER:
        if (v->type != PROTO_NUMBER)
            break;
        if (o->type == PROTO_OPT_INTEGER &&
            (floor(v->u.number) != v->u.number ||
             fabs(v->u.number) > 9007199254740992.0))
            return loss_fail(err, LOSS_EOPTION, ptr,
                             "%s must be an integer, got %.17g", o->name,
                             v->u.number);
        out->number = v->u.number;
        out->given = true;
        return check_range(o, v->u.number, ptr, err);
    case PROTO_OPT_BOOLEAN:
        if (v->type != PROTO_BOOL)
            break;
        out->boolean = v->u.boolean;
        out->given = true;
        return LOSS_OK;
    case PROTO_OPT_STRING:
        if (v->type != PROTO_STRING)
            break;
        for (const char *const *ch = o->choices; ch && *ch; ch++) {
            if (strcmp(*ch, v->u.string.ptr) == 0) {
                out->string = *ch;
                out->given = true;
                return LOSS_OK;
            }
        }
        return loss_fail(err, LOSS_EOPTION, ptr,
                         "%s must be one of the documented values (GET "
                         "/v1/losses), got \"%.64s\"",
                         o->name, v->u.string.ptr);
    }
    return loss_fail(err, LOSS_EOPTION, ptr, "%s must be %s, not %s", o->name,
                     type_names[o->type], proto_type_name(v->type));
}

static enum loss_status parse_grad(struct handler_call *c,
                                   const struct proto_value *v, const char *ptr,
                                   struct loss_error *err)
{
    size_t n;

    if (v->type == PROTO_BOOL) {
        c->grad_all = v->u.boolean;
        return LOSS_OK;
    }
    if (v->type == PROTO_NULL)
        return loss_fail(err, LOSS_EVALUE, ptr, "grad must not be null");
    if (!proto_value_is_list(v, &n))
        return loss_fail(err, LOSS_EOPTION, ptr,
                         "grad must be true, false or an array of tensor "
                         "names, not %s",
                         proto_type_name(v->type));
    for (size_t i = 0; i < n; i++) {
        const struct proto_value *item = &v->u.array.items[i];
        char iptr[LOSS_POINTER_MAX];
        int t;

        loss_str_copy(iptr, sizeof(iptr), ptr);
        loss_pointer_append_index(iptr, sizeof(iptr), i);
        if (item->type == PROTO_INVALID)
            return proto_value_error(item, iptr, err);
        if (item->type != PROTO_STRING)
            return loss_fail(err, LOSS_EOPTION, iptr,
                             "grad must list tensor names (strings)");
        t = call_tensor_index(c, item->u.string.ptr);
        if (t < 0)
            return loss_fail(err, LOSS_EOPTION, iptr,
                             "grad names \"%.64s\", which is not a tensor of "
                             "%s",
                             item->u.string.ptr, c->loss->desc.name);
        c->grad_mask |= 1u << t;
    }
    return LOSS_OK;
}

static enum loss_status parse_member(struct handler_call *c, const char *key,
                                     const struct proto_value *v,
                                     const char *ptr, bool batch_item,
                                     bool shared, struct loss_error *err)
{
    const struct proto_loss_desc *d = &c->loss->desc;
    const struct proto_value *bad;
    char fields[512];
    int i;

    /*
     * A value the decoder refused (recover_values) is the field's error.
     * handler_prepare() reports the errors the document kept; this catches
     * those past them. Inside a field only an "id" can hold one without
     * failing on its type (grad checks its items), and an id with one
     * could not be written back.
     */
    if (v->type == PROTO_INVALID)
        return proto_value_error(v, ptr, err);
    if (batch_item && strcmp(key, "loss") == 0)
        return LOSS_OK; /* read by the batch */
    if (batch_item && strcmp(key, "id") == 0) {
        bad = proto_value_find_invalid(v);
        if (bad != NULL)
            return proto_value_error(bad, ptr, err);
        c->id = v;
        return LOSS_OK;
    }
    if ((i = call_tensor_index(c, key)) >= 0) {
        struct handler_tensor *t = &c->tensors[i];

        t->at.name = d->tensors[i].name;
        t->at.shared = shared;
        t->present = true;
        return proto_value_as_tensor(v, &t->pt, &t->scalar, ptr, err);
    }
    if ((i = call_option_index(c, key)) >= 0)
        return parse_option(&d->options[i], &c->options[i], v, ptr, shared,
                            err);
    if (d->reductions && strcmp(key, "reduction") == 0)
        return parse_reduction(c, v, ptr, err);
    if (strcmp(key, "grad") == 0)
        return parse_grad(c, v, ptr, err);
    if (strcmp(key, "grad_output") == 0) {
        c->grad_output.at.name = "grad_output";
        c->grad_output.at.shared = shared;
        c->grad_output.present = true;
        return proto_value_as_tensor(v, &c->grad_output.pt,
                                     &c->grad_output.scalar, ptr, err);
    }
    if (strcmp(key, "output_format") == 0) {
        static const char *const names[] = {"nested", "flat", "base64"};

        if (v->type == PROTO_STRING)
            for (size_t f = 0; f < 3; f++)
                if (strcmp(v->u.string.ptr, names[f]) == 0) {
                    c->format = (enum proto_format)f;
                    return LOSS_OK;
                }
        return loss_fail(
            err, v->type == PROTO_NULL ? LOSS_EVALUE : LOSS_EOPTION, ptr,
            "output_format must be \"nested\", \"flat\" or "
            "\"base64\"");
    }
    if (strcmp(key, "size_average") == 0 || strcmp(key, "reduce") == 0 ||
        strcmp(key, "elementwise_mean") == 0)
        return loss_fail(err, LOSS_EUNKNOWN, ptr,
                         "%s is PyTorch's legacy argument and is not "
                         "accepted; use reduction",
                         key);
    list_fields(d, fields, sizeof(fields));
    return loss_fail(err, LOSS_EUNKNOWN, ptr,
                     "unknown field \"%.64s\" for %s, which takes: %s", key,
                     d->name, fields);
}

static void member_pointer(const char *prefix, const struct proto_member *m,
                           char *buf, size_t cap)
{
    loss_str_copy(buf, cap, prefix);
    loss_pointer_append(buf, cap, m->key, m->key_len);
}

/* The default of option i, as a handler_option not marked given. */
static void apply_default(const struct proto_option_desc *o,
                          struct handler_option *v)
{
    if (v->given || !o->has_default)
        return;
    v->number = o->def_number;
    v->boolean = o->def_boolean;
    v->string = o->def_string;
}

static enum loss_status check_grads(struct handler_call *c, const char *prefix,
                                    struct loss_error *err)
{
    const struct proto_loss_desc *d = &c->loss->desc;
    char ptr[LOSS_POINTER_MAX];

    loss_str_copy(ptr, sizeof(ptr), prefix);
    loss_pointer_append(ptr, sizeof(ptr), "grad", 4);
    if (c->grad_all) {
        for (size_t i = 0; i < d->ntensors; i++)
            if (c->tensors[i].present && (c->diff_mask & (1u << i)))
                c->grad_mask |= 1u << i;
    }
    for (size_t i = 0; i < d->ntensors; i++) {
        if (!(c->grad_mask & (1u << i)))
            continue;
        if (!d->tensors[i].differentiable || !(c->diff_mask & (1u << i)))
            return loss_fail(err, LOSS_EOPTION, ptr,
                             "%s of %s is not differentiable%s",
                             d->tensors[i].name, d->name,
                             strcmp(d->tensors[i].name, "target") == 0 &&
                                     d->tensors[i].differentiable
                                 ? " for class-index targets"
                                 : "");
        if (!c->tensors[i].present)
            return loss_fail(err, LOSS_EOPTION, ptr,
                             "grad asks for %s, which the request does not "
                             "have",
                             d->tensors[i].name);
    }
    if (c->grad_output.present && c->grad_mask == 0 && !c->grad_all)
        return call_fail(c, err, LOSS_EOPTION, &c->grad_output.at,
                         "grad_output needs grad (true or a list of tensors)");
    if (c->grad_output.present) {
        const struct tensor *g = &c->grad_output.pt.t;
        size_t ndim = c->scalar_out ? 0 : c->out_ndim;
        bool ok = g->ndim == ndim;

        for (size_t k = 0; ok && k < ndim; k++)
            ok = g->shape[k] == c->out_shape[k];
        if (!ok) {
            char want[128], got[128];

            tensor_shape_format(c->out_shape, ndim, want, sizeof(want));
            tensor_shape_format(g->shape, g->ndim, got, sizeof(got));
            return call_fail(c, err, LOSS_ESHAPE, &c->grad_output.at,
                             "grad_output has shape %s but the output has "
                             "shape %s",
                             got, want);
        }
    }
    return LOSS_OK;
}

enum loss_status
call_prepare(struct handler_call *c, const struct handler_loss *loss,
             const struct handler_limits *lim, const struct proto_value *body,
             const char *prefix, const struct proto_value *shared,
             struct loss_error *err)
{
    const struct proto_loss_desc *d = &loss->desc;
    bool batch_item = shared != NULL || prefix[0] != '\0';
    char ptr[LOSS_POINTER_MAX];
    size_t resp = 0;
    enum loss_status st;

    c->loss = loss;
    c->lim = lim;
    c->reduction = d->reductions ? LOSS_REDUCTION_MEAN : LOSS_REDUCTION_NONE;
    c->format = PROTO_FORMAT_NESTED;
    loss_str_copy(c->prefix, sizeof(c->prefix), prefix);
    if (body->type != PROTO_OBJECT)
        return loss_fail(err, LOSS_EVALUE, prefix,
                         "the request body must be a JSON object, not %s",
                         proto_type_name(body->type));
    for (size_t i = 0; i < body->u.object.len; i++) {
        const struct proto_member *m = &body->u.object.members[i];

        member_pointer(prefix, m, ptr, sizeof(ptr));
        st = parse_member(c, m->key, &m->value, ptr, batch_item, false, err);
        if (st != LOSS_OK)
            return st;
    }
    for (size_t i = 0; shared != NULL && i < shared->u.object.len; i++) {
        const struct proto_member *m = &shared->u.object.members[i];

        if (proto_object_get(body, m->key) != NULL)
            continue; /* the item's own field wins */
        if (strcmp(m->key, "id") == 0)
            continue; /* an id belongs to one item */
        member_pointer("/shared", m, ptr, sizeof(ptr));
        st = parse_member(c, m->key, &m->value, ptr, true, true, err);
        if (st != LOSS_OK)
            return st;
    }
    for (size_t i = 0; i < d->ntensors; i++) {
        if (!c->tensors[i].present && d->tensors[i].required) {
            loss_str_copy(ptr, sizeof(ptr), prefix);
            loss_pointer_append(ptr, sizeof(ptr), d->tensors[i].name,
                                strlen(d->tensors[i].name));
            return loss_fail(err, LOSS_EMISSING, ptr,
                             "%s needs the tensor \"%s\"", d->name,
                             d->tensors[i].name);
        }
    }
    for (size_t i = 0; i < d->noptions; i++)
        apply_default(&d->options[i], &c->options[i]);
    c->scalar_out = d->reductions && c->reduction != LOSS_REDUCTION_NONE;
    st = loss->family->prepare(c, err);
    if (st == LOSS_OK && c->warnings_lost)
        st = loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
    if (st != LOSS_OK)
        return st;
    st = check_grads(c, prefix, err);
    if (st != LOSS_OK)
        return st;
    /* Every element the response will carry counts against max_work. */
    resp = c->scalar_out ? 1 : c->out_numel;
    for (size_t i = 0; i < d->ntensors; i++)
        if (c->grad_mask & (1u << i))
            resp += tensor_numel(&c->tensors[i].pt.t);
    st = call_check_work(c, resp, "the response", err);
    if (st != LOSS_OK)
        return st;
    c->bytes += resp * sizeof(double) * 4; /* outputs and their text */
    return LOSS_OK;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                  */

/* A run's output or gradient array of n doubles (proto_big_alloc(): huge
   pages from 2 MiB); freed by output_release() or the handler_oip that
   keeps it, with its size, doubles_size(n). */
static size_t doubles_size(size_t n)
{
    return (n ? n : 1) * sizeof(double);
}

static double *alloc_doubles(size_t n)
{
    return proto_big_alloc(doubles_size(n));
}

/*
 * A streamed infer answer reads its binary outputs from the run's own
 * arrays after call_run() returns: they go to the request's handler_oip
 * instead of being freed here. false when one could not be taken (never:
 * there is room for every array a run has).
 */
static bool keep_outputs(const struct handler_call *c, struct handler_output *o)
{
    bool ok = true;

    if (o->out != NULL) {
        ok = oip_keep(c->oip, o->out, doubles_size(c->out_numel));
        if (ok)
            o->out = NULL;
    }
    for (size_t i = 0; ok && i < HANDLER_MAX_TENSORS; i++) {
        if (o->grads[i] == NULL)
            continue;
        ok = oip_keep(c->oip, o->grads[i],
                      doubles_size(tensor_numel(&c->tensors[i].pt.t)));
        if (ok)
            o->grads[i] = NULL;
    }
    return ok;
}

static void output_release(const struct handler_call *c,
                           struct handler_output *o)
{
    proto_big_free(o->out, doubles_size(c->out_numel));
    free(o->scratch);
    for (size_t i = 0; i < HANDLER_MAX_TENSORS; i++)
        proto_big_free(o->grads[i],
                       doubles_size(tensor_numel(&c->tensors[i].pt.t)));
}

void call_upstream(const struct handler_call *c, double count, double *storage,
                   const double **ret_g, size_t *ret_stride)
{
    double g0 = 1.0;

    if (c->grad_output.present && !c->scalar_out) {
        *ret_g = c->grad_output.pt.t.data;
        *ret_stride = 1;
        return;
    }
    if (c->grad_output.present)
        g0 = c->grad_output.pt.t.data[0];
    if (c->reduction == LOSS_REDUCTION_MEAN ||
        c->reduction == LOSS_REDUCTION_BATCHMEAN)
        g0 = count == 0.0 ? 0.0 : g0 / count;
    *storage = g0;
    *ret_g = storage;
    *ret_stride = 0;
}

static void kernel_warnings(struct handler_call *c, unsigned warn)
{
    if (warn & LOSS_WARN_BCE_LOG_CLAMP)
        call_warn(c, "bce-log-clamp", &c->tensors[0].at,
                  "log(input) or log(1 - input) was clamped at -100, as "
                  "PyTorch does: an input of 0 or 1 against the opposite "
                  "target costs 100, not infinity");
    if (warn & LOSS_WARN_NORMALIZE_EPS)
        call_warn(c, "normalize-eps", NULL,
                  "a vector's norm was at most 1e-12: normalize divided by "
                  "1e-12 instead");
}

enum loss_status call_run(struct handler_call *c, const struct loss_exec *ex,
                          int status_member, struct proto_buf *out,
                          struct loss_error *err)
{
    const struct proto_loss_desc *d = &c->loss->desc;
    struct handler_output o;
    struct proto_out_tensor grads[HANDLER_MAX_TENSORS];
    struct proto_response r;
    enum loss_status st;
    double gscalar = 0.0;
    const double *g = NULL;
    size_t gstride = 0, ngrads = 0;

    memset(&o, 0, sizeof(o));
    memset(&r, 0, sizeof(r));
    o.out = alloc_doubles(c->out_numel);
    if (o.out == NULL) {
        st = loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < d->ntensors; i++) {
        if (!(c->grad_mask & (1u << i)))
            continue;
        o.grads[i] = alloc_doubles(tensor_numel(&c->tensors[i].pt.t));
        if (o.grads[i] == NULL) {
            st = loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
            goto out;
        }
    }
    st = c->loss->family->forward(c, ex, &o, err);
    if (st != LOSS_OK)
        goto out;
    if (c->grad_mask)
        call_upstream(c, o.count, &gscalar, &g, &gstride);
    if (d->has_sum)
        o.sum = loss_sum(o.out, c->out_numel);
    kernel_warnings(c, o.warn);

    r.id = c->id;
    r.status = status_member;
    r.loss = d->name;
    r.reduction = d->reductions ? reduction_names[c->reduction] : NULL;
    r.has_sum = d->has_sum;
    r.sum = o.sum;
    r.count = o.count;
    r.format = c->format;
    switch (c->reduction) {
    case LOSS_REDUCTION_NONE:
        r.value_is_tensor = true;
        r.value_tensor.ndim = c->out_ndim;
        memcpy(r.value_tensor.shape, c->out_shape, sizeof(c->out_shape));
        r.value_tensor.data = o.out;
        break;
    case LOSS_REDUCTION_SUM:
        r.value = o.sum;
        break;
    case LOSS_REDUCTION_MEAN:
    case LOSS_REDUCTION_BATCHMEAN:
        r.value = o.count == 0.0 ? NAN : o.sum / o.count;
        break;
    }

    if (c->grad_mask) {
        st = c->loss->family->backward(c, ex, &o, g, gstride, err);
        if (st != LOSS_OK)
            goto out;
        for (size_t i = 0; i < d->ntensors; i++) {
            const struct tensor *t = &c->tensors[i].pt.t;

            if (!(c->grad_mask & (1u << i)))
                continue;
            grads[ngrads].name = d->tensors[i].name;
            grads[ngrads].ndim = t->ndim;
            memcpy(grads[ngrads].shape, t->shape, sizeof(t->shape));
            grads[ngrads].data = o.grads[i];
            ngrads++;
        }
    }
    r.grads = grads;
    r.ngrads = ngrads;
    if (c->warnings_lost) {
        st = loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
        goto out;
    }
    r.warnings = c->warnings;
    r.nwarnings = c->nwarnings;
    if (c->oip != NULL) {
        oip_response_write(c->oip, &r, out);
        if (oip_tail_bytes(c->oip) > 0 && !keep_outputs(c, &o))
            out->failed = true;
    } else
        proto_response_write(out, &r);
    if (!proto_buf_ok(out))
        st = loss_fail(err, LOSS_ENOMEM, NULL,
                       "out of memory writing the response");
out:
    output_release(c, &o);
    return st;
}

/*
 * catalog.c - GET /v1/losses of document.h: every loss with its tensors,
 * options and reductions, and the limits in force.
 *
 * The catalog is a jansson tree written with proto_write_json(), so numbers
 * print as everywhere else (0.1, not 0.10000000000000001). A failed
 * allocation anywhere makes the whole tree NULL or short: every insertion is
 * checked and the buffer is marked failed rather than sent incomplete.
 */
#include "document.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>

/* Inserts v (stolen, may be NULL) into o; false on any failure. */
static bool put(json_t *o, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(o, key, v) == 0;
}

static bool push(json_t *a, json_t *v)
{
    return v != NULL && json_array_append_new(a, v) == 0;
}

/* Inserts s when it is not NULL; a NULL s is "not described". */
static bool put_opt_string(json_t *o, const char *key, const char *s)
{
    return s == NULL || put(o, key, json_string(s));
}

/* An integer option's number as a JSON integer when it is one exactly. */
static json_t *number_json(double v, bool integral)
{
    if (integral && isfinite(v) && v == floor(v) && fabs(v) <= 0x1p53)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static json_t *option_json(const struct proto_option_desc *o)
{
    static const char *const type_names[] = {
        [PROTO_OPT_NUMBER] = "number",
        [PROTO_OPT_INTEGER] = "integer",
        [PROTO_OPT_BOOLEAN] = "boolean",
        [PROTO_OPT_STRING] = "string",
    };
    bool integral = o->type == PROTO_OPT_INTEGER;
    json_t *j = json_object();
    bool ok = j != NULL;

    ok = ok && put(j, "name", json_string(o->name));
    ok = ok && put(j, "type", json_string(type_names[o->type]));
    ok = ok && put_opt_string(j, "description", o->description);
    if (ok && o->has_default) {
        json_t *def = NULL;

        switch (o->type) {
        case PROTO_OPT_NUMBER:
        case PROTO_OPT_INTEGER:
            def = number_json(o->def_number, integral);
            break;
        case PROTO_OPT_BOOLEAN:
            def = json_boolean(o->def_boolean);
            break;
        case PROTO_OPT_STRING:
            def = o->def_string != NULL ? json_string(o->def_string)
                                        : json_null();
            break;
        }
        ok = put(j, "default", def);
    }
    if (ok && o->has_minimum) {
        ok = put(j, "minimum", number_json(o->minimum, integral));
        if (ok && o->exclusive_minimum)
            ok = put(j, "exclusive_minimum", json_true());
    }
    if (ok && o->has_maximum) {
        ok = put(j, "maximum", number_json(o->maximum, integral));
        if (ok && o->exclusive_maximum)
            ok = put(j, "exclusive_maximum", json_true());
    }
    if (ok && o->type == PROTO_OPT_STRING && o->choices != NULL) {
        json_t *e = json_array();

        ok = put(j, "enum", e);
        for (size_t i = 0; ok && o->choices[i] != NULL; i++)
            ok = push(e, json_string(o->choices[i]));
    }
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static json_t *tensor_json(const struct proto_tensor_desc *t)
{
    json_t *j = json_object();
    bool ok = j != NULL;

    ok = ok && put(j, "name", json_string(t->name));
    ok = ok && put(j, "required", json_boolean(t->required));
    ok = ok && put(j, "differentiable", json_boolean(t->differentiable));
    ok = ok && put_opt_string(j, "description", t->description);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

const struct proto_reduction proto_reductions[PROTO_NREDUCTIONS] = {
    {PROTO_RED_NONE, "none"},
    {PROTO_RED_MEAN, "mean"},
    {PROTO_RED_SUM, "sum"},
    {PROTO_RED_BATCHMEAN, "batchmean"},
};

static json_t *reductions_json(unsigned bits)
{
    json_t *a = json_array();
    bool ok = a != NULL;

    for (size_t i = 0; ok && i < PROTO_NREDUCTIONS; i++)
        if (bits & proto_reductions[i].bit)
            ok = push(a, json_string(proto_reductions[i].name));
    if (!ok) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *loss_json(const struct proto_loss_desc *d)
{
    json_t *j = json_object(), *tensors = json_array(), *options = json_array(),
           *diff = json_array();
    bool ok = j != NULL && tensors != NULL && options != NULL && diff != NULL;

    ok = ok && put(j, "name", json_string(d->name));
    ok = ok && put(j, "path", json_sprintf("/v1/%s", d->name));
    ok = ok && put_opt_string(j, "summary", d->summary);
    ok = ok && put_opt_string(j, "description", d->description);
    ok = ok && put_opt_string(j, "torch", d->torch);
    for (size_t i = 0; ok && i < d->ntensors; i++) {
        ok = push(tensors, tensor_json(&d->tensors[i]));
        if (ok && d->tensors[i].differentiable)
            ok = push(diff, json_string(d->tensors[i].name));
    }
    for (size_t i = 0; ok && i < d->noptions; i++)
        ok = push(options, option_json(&d->options[i]));
    ok = ok && put(j, "tensors", json_incref(tensors));
    ok = ok && put(j, "options", json_incref(options));
    ok = ok && put(j, "reductions", reductions_json(d->reductions));
    ok = ok && put(j, "differentiable", json_incref(diff));
    ok = ok && put(j, "sum_and_count", json_boolean(d->has_sum));
    json_decref(tensors);
    json_decref(options);
    json_decref(diff);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Limits are sizes; JSON integers are signed 64-bit in jansson. */
static json_t *size_json(size_t v)
{
    return json_integer(v > (size_t)INT64_MAX ? (json_int_t)INT64_MAX
                                              : (json_int_t)v);
}

static json_t *limits_json(const struct proto_limits_desc *l)
{
    json_t *j = json_object();
    bool ok = j != NULL;

    ok = ok && put(j, "max_body_bytes", size_json(l->max_body_bytes));
    ok = ok && put(j, "max_elements", size_json(l->max_elements));
    ok = ok && put(j, "max_rank", size_json(l->max_rank));
    ok = ok && put(j, "max_depth", size_json(l->max_depth));
    ok = ok && put(j, "max_work", size_json(l->max_work));
    ok = ok && put(j, "max_batch_items", size_json(l->max_batch_items));
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

void proto_catalog_write(struct proto_buf *b,
                         const struct proto_loss_desc *const *losses, size_t n,
                         const struct proto_limits_desc *limits)
{
    json_t *root = json_object(), *list = json_array();
    bool ok = root != NULL && list != NULL;

    for (size_t i = 0; ok && i < n; i++)
        ok = push(list, loss_json(losses[i]));
    ok = ok && put(root, "losses", json_incref(list));
    ok = ok && put(root, "limits", limits_json(limits));
    if (ok)
        proto_write_json(b, root);
    else
        b->failed = true;
    json_decref(list);
    json_decref(root);
}

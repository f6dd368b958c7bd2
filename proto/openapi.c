/*
 * openapi.c - GET /openapi.json of document.h: the OpenAPI 3.0.3 document
 * of the API (docs/api.md), built as one jansson tree and written with
 * proto_write_json(). Everything loss-specific comes from the
 * proto_loss_desc table, so a loss added to the registry appears here with
 * its own path and request schema without touching this file.
 *
 * Building: every json_t made is either inserted into its parent or freed,
 * and a failed allocation clears bld.ok, so the caller sends either the whole
 * document or nothing (the buffer is marked failed). json_pack() is used only
 * for leaves whose arguments are plain C values: with an "o" argument it
 * could leak the stolen references of a failed call.
 */
#include "document.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct bld {
    bool ok;
};

#define SCHEMAS   "#/components/schemas/"
#define RESPONSES "#/components/responses/"
#define HEADERS   "#/components/headers/"

static json_t *check(struct bld *c, json_t *v)
{
    if (v == NULL)
        c->ok = false;
    return v;
}

static json_t *obj(struct bld *c)
{
    return check(c, json_object());
}

static json_t *arr(struct bld *c)
{
    return check(c, json_array());
}

/* Inserts v (stolen; NULL means a failed allocation) into o. */
static void set(struct bld *c, json_t *o, const char *key, json_t *v)
{
    if (v == NULL) {
        c->ok = false;
        return;
    }
    if (o == NULL) {
        json_decref(v);
        c->ok = false;
        return;
    }
    if (json_object_set_new(o, key, v) != 0)
        c->ok = false;
}

static void add(struct bld *c, json_t *a, json_t *v)
{
    if (v == NULL) {
        c->ok = false;
        return;
    }
    if (a == NULL) {
        json_decref(v);
        c->ok = false;
        return;
    }
    if (json_array_append_new(a, v) != 0)
        c->ok = false;
}

static void set_str(struct bld *c, json_t *o, const char *key, const char *s)
{
    if (s != NULL)
        set(c, o, key, json_string(s));
}

static json_t *ref(struct bld *c, const char *prefix, const char *name)
{
    json_t *o = obj(c);

    set(c, o, "$ref", json_sprintf("%s%s", prefix, name));
    return o;
}

static json_t *schema_ref(struct bld *c, const char *name)
{
    return ref(c, SCHEMAS, name);
}

/* A $ref with its own description: siblings of $ref are ignored in 3.0. */
static json_t *described_ref(struct bld *c, const char *name,
                             const char *description)
{
    json_t *o, *all;

    if (description == NULL)
        return schema_ref(c, name);
    o = obj(c);
    all = arr(c);
    add(c, all, schema_ref(c, name));
    set(c, o, "allOf", all);
    set_str(c, o, "description", description);
    return o;
}

static json_t *number_json(double v, bool integral)
{
    if (integral && isfinite(v) && v == floor(v) && fabs(v) <= 0x1p53)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static json_t *size_json(size_t v)
{
    return json_integer(v > (size_t)INT64_MAX ? (json_int_t)INT64_MAX
                                              : (json_int_t)v);
}

/* "BinaryCrossEntropy" from "binary_cross_entropy", plus suffix. */
static json_t *schema_name(const char *loss, const char *suffix)
{
    char name[160];
    size_t n = 0;
    bool up = true;

    for (const char *p = loss; *p != '\0' && n + 1 < sizeof(name); p++) {
        unsigned char ch = (unsigned char)*p;

        if (!isalnum(ch)) {
            up = true;
            continue;
        }
        name[n++] = (char)(up ? toupper(ch) : ch);
        up = false;
    }
    name[n] = '\0';
    return json_sprintf("%s%s", name, suffix);
}

/* --- shared schemas ----------------------------------------------------- */

static json_t *scalar_schema(struct bld *c)
{
    return check(
        c, json_pack("{s:s, s:[{s:s}, {s:s, s:[sss]}]}", "description",
                     "A float64: a JSON number, or one of the strings "
                     "\"NaN\", \"Infinity\", \"-Infinity\" (bare NaN tokens "
                     "are not JSON).",
                     "oneOf", "type", "number", "type", "string", "enum", "NaN",
                     "Infinity", "-Infinity"));
}

static json_t *shape_schema(struct bld *c, size_t max_rank)
{
    json_t *o = check(c, json_pack("{s:s, s:s, s:{s:s, s:i}}", "description",
                                   "Dimensions, outermost first; [] for a "
                                   "0-d tensor.",
                                   "type", "array", "items", "type", "integer",
                                   "minimum", 0));

    set(c, o, "maxItems", size_json(max_rank));
    return o;
}

/*
 * Nested arrays up to TENSOR_MAX_RANK levels, written out rather than as a
 * recursive $ref so that every tool can dereference the document. Arrays
 * must also be rectangular, which JSON Schema cannot say.
 */
static json_t *nested_schema(struct bld *c)
{
    json_t *level = obj(c);

    set_str(c, level, "type", "array");
    set(c, level, "items", schema_ref(c, "Scalar"));
    for (size_t k = 1; k < TENSOR_MAX_RANK; k++) {
        json_t *outer = obj(c), *items = obj(c), *any = arr(c);

        add(c, any, schema_ref(c, "Scalar"));
        add(c, any, level);
        set(c, items, "anyOf", any);
        set_str(c, outer, "type", "array");
        set(c, outer, "items", items);
        level = outer;
    }
    set_str(c, level, "description",
            "Rectangular nested arrays of numbers, row-major: [[1, 2], [3, "
            "4]] has shape [2, 2]; [] has shape [0].");
    return level;
}

static json_t *flat_schema(struct bld *c)
{
    json_t *o = check(c, json_pack("{s:s, s:s, s:[ss], s:b}", "description",
                                   "{\"shape\", \"data\"}: the numbers "
                                   "flat, row-major.",
                                   "type", "object", "required", "shape",
                                   "data", "additionalProperties", 0));
    json_t *props = obj(c), *data = obj(c);

    set(c, props, "shape", schema_ref(c, "Shape"));
    set_str(c, data, "type", "array");
    set(c, data, "items", schema_ref(c, "Scalar"));
    set(c, props, "data", data);
    set(c, o, "properties", props);
    return o;
}

static json_t *base64_schema(struct bld *c)
{
    json_t *o = check(
        c, json_pack("{s:s, s:s, s:[sss], s:b}", "description",
                     "{\"shape\", \"dtype\", \"base64\"}: the little-endian "
                     "bytes of the elements, row-major, in standard base64. "
                     "Responses are always float64.",
                     "type", "object", "required", "shape", "dtype", "base64",
                     "additionalProperties", 0));
    json_t *props = obj(c);

    set(c, props, "shape", schema_ref(c, "Shape"));
    set(c, props, "dtype",
        json_pack("{s:s, s:[ssss]}", "type", "string", "enum", "float32",
                  "float64", "int32", "int64"));
    set(c, props, "base64",
        json_pack("{s:s, s:s}", "type", "string", "format", "byte"));
    set(c, o, "properties", props);
    return o;
}

static json_t *tensor_schema(struct bld *c)
{
    json_t *o = obj(c), *one = arr(c);

    set_str(c, o, "description",
            "A tensor in any of the three encodings; a bare number is a 0-d "
            "tensor. Every number is read as a float64.");
    add(c, one, schema_ref(c, "Scalar"));
    add(c, one, schema_ref(c, "NestedArray"));
    add(c, one, schema_ref(c, "FlatTensor"));
    add(c, one, schema_ref(c, "Base64Tensor"));
    set(c, o, "oneOf", one);
    return o;
}

static json_t *warning_schema(struct bld *c)
{
    return check(
        c, json_pack("{s:s, s:s, s:[ss], s:b, s:{s:{s:s, s:s}, s:{s:s}, "
                     "s:{s:s, s:s}}}",
                     "description",
                     "Something the client may not expect. Codes: "
                     "broadcast-target, implicit-dim, kl-div-mean, "
                     "batchmean-1d, all-ignored, bce-log-clamp, "
                     "normalize-eps.",
                     "type", "object", "required", "code", "message",
                     "additionalProperties", 0, "properties", "code", "type",
                     "string", "example", "broadcast-target", "message", "type",
                     "string", "pointer", "type", "string", "description",
                     "JSON pointer into the request"));
}

static json_t *loss_names(struct bld *c,
                          const struct proto_loss_desc *const *losses, size_t n)
{
    json_t *a = arr(c);

    for (size_t i = 0; i < n; i++)
        add(c, a, json_string(losses[i]->name));
    return a;
}

static json_t *response_schema(struct bld *c,
                               const struct proto_loss_desc *const *losses,
                               size_t n)
{
    json_t *o =
        check(c, json_pack("{s:s, s:s, s:[ssss], s:b}", "description",
                           "The result of one loss evaluation.", "type",
                           "object", "required", "loss", "value", "shape",
                           "warnings", "additionalProperties", 0));
    json_t *props = obj(c), *loss = obj(c), *grad = obj(c), *warn = obj(c);

    set(c, props, "id",
        json_pack("{s:s}", "description",
                  "Batch items only: the item's id, any JSON value."));
    set(c, props, "status",
        json_pack("{s:s, s:s, s:[i]}", "description", "Batch items only: 200.",
                  "type", "integer", "enum", 200));
    set_str(c, loss, "type", "string");
    if (n > 0)
        set(c, loss, "enum", loss_names(c, losses, n));
    set(c, props, "loss", loss);
    set(c, props, "reduction",
        json_pack("{s:s, s:s, s:[ssss]}", "description",
                  "Absent for losses without a reduction (softmax, "
                  "log_softmax).",
                  "type", "string", "enum", "none", "mean", "sum",
                  "batchmean"));
    set(c, props, "value",
        described_ref(c, "Tensor",
                      "A number for mean/sum/batchmean, a tensor for none "
                      "and for softmax/log_softmax; \"NaN\" when every "
                      "target is ignored."));
    set(c, props, "shape",
        described_ref(c, "Shape", "The shape of value; [] for a number."));
    set(c, props, "sum",
        described_ref(c, "Scalar", "Sum of the per-sample losses."));
    set(c, props, "count",
        described_ref(c, "Scalar",
                      "The divisor of PyTorch's mean (not always an "
                      "integer): value = sum / count for mean and "
                      "batchmean."));
    set_str(c, grad, "type", "object");
    set_str(c, grad, "description",
            "One tensor per requested input, shaped like that input.");
    set(c, grad, "additionalProperties", schema_ref(c, "Tensor"));
    set(c, props, "grad", grad);
    set_str(c, warn, "type", "array");
    set(c, warn, "items", schema_ref(c, "Warning"));
    set(c, props, "warnings", warn);
    set(c, o, "properties", props);
    return o;
}

/*
 * Exactly the members proto_problem_write() sends: a stray or missing member
 * fails the integration tests' response validation (tests/server/openapi).
 * The types come from the one status table, so they cannot drift.
 */
static json_t *problem_schema(struct bld *c)
{
    json_t *o = check(
        c,
        json_pack(
            "{s:s, s:s, s:[sssss], s:b, s:{s:{s:s}, s:{s:s, s:i, s:i}, "
            "s:{s:s}, s:{s:s, s:s}, s:{s:s, s:i, s:s}, s:{s:s, s:s}, "
            "s:{s:s, s:s}, s:{s:s}}}",
            "description",
            "RFC 9457 problem details; error repeats detail for inference "
            "clients.",
            "type", "object", "required", "type", "title", "status", "detail",
            "error", "additionalProperties", 0, "properties", "title", "type",
            "string", "status", "type", "integer", "minimum", 400, "maximum",
            599, "detail", "type", "string", "pointer", "type", "string",
            "description", "JSON pointer to the offending part of the body",
            "offset", "type", "integer", "minimum", 0, "description",
            "Byte offset of a JSON syntax error", "instance", "type", "string",
            "description", "The request's X-Request-Id (absent in batch items)",
            "error", "type", "string", "description", "Same as detail", "id",
            "description", "Batch items only: the item's id"));
    json_t *type = obj(c), *types = arr(c);

    set_str(c, type, "type", "string");
    set_str(c, type, "example", "/problems/shape-mismatch");
    for (int st = LOSS_OK + 1; st < LOSS_STATUS_COUNT; st++) {
        const char *t = proto_status_type((enum loss_status)st);
        bool dup = false;

        for (size_t i = 0; i < json_array_size(types); i++)
            dup = dup ||
                  strcmp(json_string_value(json_array_get(types, i)), t) == 0;
        if (!dup)
            add(c, types, json_string(t));
    }
    set(c, type, "enum", types);
    set(c, json_object_get(o, "properties"), "type", type);
    return o;
}

static json_t *limits_schema(struct bld *c)
{
    static const char *const names[] = {"max_body_bytes", "max_elements",
                                        "max_rank",       "max_depth",
                                        "max_work",       "max_batch_items"};
    json_t *o = obj(c), *props = obj(c);

    set_str(c, o, "type", "object");
    set(c, o, "additionalProperties", json_false());
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        set(c, props, names[i],
            json_pack("{s:s, s:i}", "type", "integer", "minimum", 0));
    set(c, o, "properties", props);
    return o;
}

static json_t *catalog_schema(struct bld *c)
{
    json_t *o = check(
        c, json_pack("{s:s, s:s, s:[ss]}", "description",
                     "GET /v1/losses: every loss, its tensors, options and "
                     "reductions, and the limits in force.",
                     "type", "object", "required", "losses", "limits"));
    json_t *props = obj(c), *losses = obj(c), *loss = obj(c), *lprops = obj(c),
           *tensors = obj(c), *options = obj(c);

    set(c, tensors, "type", json_string("array"));
    set(c, tensors, "items",
        json_pack("{s:s, s:[sss], s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}}",
                  "type", "object", "required", "name", "required",
                  "differentiable", "properties", "name", "type", "string",
                  "required", "type", "boolean", "differentiable", "type",
                  "boolean", "description", "type", "string"));
    set(c, options, "type", json_string("array"));
    set(c, options, "items",
        json_pack("{s:s, s:[ss], s:{s:{s:s}, s:{s:s, s:[ssss]}, s:{s:s}, "
                  "s:{}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, "
                  "s:{s:s}}}}",
                  "type", "object", "required", "name", "type", "properties",
                  "name", "type", "string", "type", "type", "string", "enum",
                  "number", "integer", "boolean", "string", "description",
                  "type", "string", "default", "minimum", "type", "number",
                  "maximum", "type", "number", "exclusive_minimum", "type",
                  "boolean", "exclusive_maximum", "type", "boolean", "enum",
                  "type", "array", "items", "type", "string"));
    set(c, lprops, "name", json_pack("{s:s}", "type", "string"));
    set(c, lprops, "path", json_pack("{s:s}", "type", "string"));
    set(c, lprops, "summary", json_pack("{s:s}", "type", "string"));
    set(c, lprops, "description", json_pack("{s:s}", "type", "string"));
    set(c, lprops, "torch", json_pack("{s:s}", "type", "string"));
    set(c, lprops, "tensors", tensors);
    set(c, lprops, "options", options);
    set(c, lprops, "reductions",
        json_pack("{s:s, s:{s:s, s:[ssss]}}", "type", "array", "items", "type",
                  "string", "enum", "none", "mean", "sum", "batchmean"));
    set(c, lprops, "differentiable",
        json_pack("{s:s, s:{s:s}}", "type", "array", "items", "type",
                  "string"));
    set(c, lprops, "sum_and_count", json_pack("{s:s}", "type", "boolean"));
    set_str(c, loss, "type", "object");
    set(c, loss, "required",
        json_pack("[ssssss]", "name", "path", "tensors", "options",
                  "reductions", "differentiable"));
    set(c, loss, "properties", lprops);
    set_str(c, losses, "type", "array");
    set(c, losses, "items", loss);
    set(c, props, "losses", losses);
    set(c, props, "limits", schema_ref(c, "Limits"));
    set(c, o, "properties", props);
    return o;
}

static json_t *health_schema(struct bld *c)
{
    return check(
        c, json_pack("{s:s, s:s, s:b, s:{s:{s:s}, s:{s:s}}}", "description",
                     "A small body for humans ({\"live\": true} or "
                     "{\"ready\": ...}); the status code decides.",
                     "type", "object", "additionalProperties", 0, "properties",
                     "live", "type", "boolean", "ready", "type", "boolean"));
}

static json_t *batch_item_schema(struct bld *c,
                                 const struct proto_loss_desc *const *losses,
                                 size_t n)
{
    json_t *o = obj(c), *props = obj(c), *loss = obj(c);

    set_str(c, o, "type", "object");
    set_str(c, o, "description",
            "One evaluation: \"loss\" names the loss and the other fields "
            "are those of its request schema (<Loss>Request), after "
            "\"shared\" is merged in (the item's own fields win). \"id\", "
            "any JSON value, is echoed in the result.");
    set_str(c, loss, "type", "string");
    if (n > 0)
        set(c, loss, "enum", loss_names(c, losses, n));
    set(c, props, "loss", loss);
    set(c, props, "id", json_pack("{s:s}", "description", "Any JSON value."));
    set(c, o, "properties", props);
    return o;
}

static json_t *batch_request_schema(struct bld *c,
                                    const struct proto_limits_desc *limits)
{
    json_t *o =
        check(c, json_pack("{s:s, s:[s], s:b}", "type", "object", "required",
                           "requests", "additionalProperties", 0));
    json_t *props = obj(c), *requests = obj(c);

    set_str(c, requests, "type", "array");
    set(c, requests, "minItems", json_integer(1));
    if (limits->max_batch_items > 0)
        set(c, requests, "maxItems", size_json(limits->max_batch_items));
    set(c, requests, "items", schema_ref(c, "BatchItem"));
    set(c, props, "requests", requests);
    set(c, props, "shared",
        json_pack("{s:s, s:s}", "type", "object", "description",
                  "Fields merged into every item."));
    set(c, o, "properties", props);
    return o;
}

static json_t *batch_response_schema(struct bld *c)
{
    json_t *o =
        check(c, json_pack("{s:s, s:[s], s:b}", "type", "object", "required",
                           "results", "additionalProperties", 0));
    json_t *props = obj(c), *results = obj(c), *items = obj(c), *any = arr(c);

    add(c, any, schema_ref(c, "LossResponse"));
    add(c, any, schema_ref(c, "Problem"));
    set(c, items, "anyOf", any);
    set_str(c, results, "type", "array");
    set_str(c, results, "description",
            "One result per item, in order: a loss response with status "
            "200 or a problem with its status.");
    set(c, results, "items", items);
    set(c, props, "results", results);
    set(c, o, "properties", props);
    return o;
}

/* --- per-loss request schemas ------------------------------------------- */

static json_t *option_schema(struct bld *c, const struct proto_option_desc *d)
{
    bool integral = d->type == PROTO_OPT_INTEGER;
    json_t *o = obj(c);

    switch (d->type) {
    case PROTO_OPT_NUMBER:
        set_str(c, o, "type", "number");
        break;
    case PROTO_OPT_INTEGER:
        set_str(c, o, "type", "integer");
        break;
    case PROTO_OPT_BOOLEAN:
        set_str(c, o, "type", "boolean");
        break;
    case PROTO_OPT_STRING:
        set_str(c, o, "type", "string");
        if (d->choices != NULL && d->choices[0] != NULL) {
            json_t *e = arr(c);

            for (size_t i = 0; d->choices[i] != NULL; i++)
                add(c, e, json_string(d->choices[i]));
            set(c, o, "enum", e);
        }
        break;
    }
    set_str(c, o, "description", d->description);
    if (d->has_default) {
        switch (d->type) {
        case PROTO_OPT_NUMBER:
        case PROTO_OPT_INTEGER:
            set(c, o, "default", number_json(d->def_number, integral));
            break;
        case PROTO_OPT_BOOLEAN:
            set(c, o, "default", json_boolean(d->def_boolean));
            break;
        case PROTO_OPT_STRING:
            set_str(c, o, "default", d->def_string);
            break;
        }
    }
    if (integral || d->type == PROTO_OPT_NUMBER) {
        if (d->has_minimum) {
            set(c, o, "minimum", number_json(d->minimum, integral));
            if (d->exclusive_minimum)
                set(c, o, "exclusiveMinimum", json_true());
        }
        if (d->has_maximum) {
            set(c, o, "maximum", number_json(d->maximum, integral));
            if (d->exclusive_maximum)
                set(c, o, "exclusiveMaximum", json_true());
        }
    }
    return o;
}

static json_t *reduction_schema(struct bld *c, unsigned bits)
{
    json_t *o = obj(c), *e = arr(c);

    set_str(c, o, "type", "string");
    for (size_t i = 0; i < PROTO_NREDUCTIONS; i++)
        if (bits & proto_reductions[i].bit)
            add(c, e, json_string(proto_reductions[i].name));
    set(c, o, "enum", e);
    if (bits & PROTO_RED_MEAN)
        set_str(c, o, "default", "mean");
    set_str(c, o, "description",
            "How per-sample losses are combined into value.");
    return o;
}

static json_t *grad_schema(struct bld *c, const struct proto_loss_desc *d)
{
    json_t *o = obj(c), *one = arr(c), *list = obj(c), *items = obj(c),
           *names = arr(c);
    size_t ndiff = 0;

    set_str(c, o, "description",
            "true for the gradients of every differentiable tensor, or the "
            "names of the tensors to differentiate.");
    add(c, one, json_pack("{s:s}", "type", "boolean"));
    set_str(c, items, "type", "string");
    for (size_t i = 0; i < d->ntensors; i++) {
        if (!d->tensors[i].differentiable)
            continue;
        add(c, names, json_string(d->tensors[i].name));
        ndiff++;
    }
    if (ndiff > 0)
        set(c, items, "enum", names);
    else
        json_decref(names);
    set_str(c, list, "type", "array");
    set(c, list, "items", items);
    if (ndiff == 0)
        set(c, list, "maxItems", json_integer(0));
    add(c, one, list);
    set(c, o, "oneOf", one);
    return o;
}

static json_t *request_schema(struct bld *c, const struct proto_loss_desc *d)
{
    json_t *o = obj(c), *props = obj(c), *required = arr(c);
    size_t nrequired = 0;

    set_str(c, o, "type", "object");
    set_str(c, o, "description", d->summary);
    for (size_t i = 0; i < d->ntensors; i++) {
        const struct proto_tensor_desc *t = &d->tensors[i];

        set(c, props, t->name, described_ref(c, "Tensor", t->description));
        if (t->required) {
            add(c, required, json_string(t->name));
            nrequired++;
        }
    }
    for (size_t i = 0; i < d->noptions; i++)
        set(c, props, d->options[i].name, option_schema(c, &d->options[i]));
    if (d->reductions != 0)
        set(c, props, "reduction", reduction_schema(c, d->reductions));
    set(c, props, "grad", grad_schema(c, d));
    set(c, props, "grad_output",
        described_ref(c, "Tensor",
                      "The vector of the vector-Jacobian product, of the "
                      "output's shape (needs grad). Default: ones."));
    set(c, props, "output_format",
        json_pack("{s:s, s:[sss], s:s, s:s}", "type", "string", "enum",
                  "nested", "flat", "base64", "default", "nested",
                  "description", "The encoding of every response tensor."));
    set(c, o, "properties", props);
    /* OpenAPI 3.0 wants a non-empty "required" or none. */
    if (nrequired > 0)
        set(c, o, "required", required);
    else
        json_decref(required);
    set(c, o, "additionalProperties", json_false());
    return o;
}

/* --- responses and paths ------------------------------------------------ */

static json_t *request_id_headers(struct bld *c)
{
    json_t *h = obj(c);

    set(c, h, "X-Request-Id", ref(c, HEADERS, "X-Request-Id"));
    return h;
}

static json_t *problem_response(struct bld *c, const char *description,
                                const char *extra_header)
{
    json_t *o = obj(c), *h = request_id_headers(c), *content = obj(c),
           *media = obj(c);

    set_str(c, o, "description", description);
    if (extra_header != NULL)
        set(c, h, extra_header, ref(c, HEADERS, extra_header));
    set(c, o, "headers", h);
    set(c, media, "schema", schema_ref(c, "Problem"));
    set(c, content, "application/problem+json", media);
    set(c, o, "content", content);
    return o;
}

static json_t *ok_response(struct bld *c, const char *description,
                           const char *media_type, json_t *schema)
{
    json_t *o = obj(c), *content = obj(c), *media = obj(c);

    set_str(c, o, "description", description);
    set(c, o, "headers", request_id_headers(c));
    set(c, media, "schema", schema);
    set(c, content, media_type, media);
    set(c, o, "content", content);
    return o;
}

static json_t *headers_components(struct bld *c)
{
    return check(
        c,
        json_pack("{s:{s:s, s:{s:s}}, s:{s:s, s:{s:s, s:i}}, s:{s:s, s:{s:s}}, "
                  "s:{s:s, s:{s:s}}}",
                  "X-Request-Id", "description",
                  "The client's own X-Request-Id (at most 128 visible ASCII "
                  "characters) or a generated one.",
                  "schema", "type", "string", "Retry-After", "description",
                  "Seconds to wait before retrying.", "schema", "type",
                  "integer", "minimum", 0, "Allow", "description",
                  "The methods the route takes.", "schema", "type", "string",
                  "Accept-Encoding", "description",
                  "The content encodings the server reads.", "schema", "type",
                  "string"));
}

static json_t *headers_object(struct bld *c)
{
    json_t *h = headers_components(c);

    set(c, h, "WWW-Authenticate",
        json_pack("{s:s, s:{s:s, s:s}}", "description",
                  "The scheme to authenticate with: Bearer, with "
                  "error=\"invalid_token\" for a token not in force.",
                  "schema", "type", "string", "pattern", "^Bearer"));
    return h;
}

static void oip_response_components(struct bld *c, json_t *o);

static json_t *responses_components(struct bld *c)
{
    json_t *o = obj(c);

    set(c, o, "BadRequest",
        problem_response(c,
                         "Invalid JSON (with offset), an invalid tensor "
                         "(with pointer), or a malformed request: framing "
                         "(Content-Length with Transfer-Encoding, differing "
                         "Content-Lengths) or a control byte in the path "
                         "(bad-request; the connection is closed).",
                         NULL));
    set(c, o, "NotFound", problem_response(c, "Unknown route or loss.", NULL));
    set(c, o, "Timeout",
        problem_response(c,
                         "The header block or the body came too slowly "
                         "(--header-timeout, --body-min-rate); the "
                         "connection is closed.",
                         NULL));
    set(c, o, "MethodNotAllowed",
        problem_response(c, "The route takes another method.", "Allow"));
    set(c, o, "TooLarge",
        problem_response(c,
                         "Body (also after decompression), elements, rank, "
                         "nesting, derived work or batch items over the "
                         "limits.",
                         NULL));
    set(c, o, "UnsupportedMediaType",
        problem_response(c,
                         "Content-Type is not JSON, or an unsupported "
                         "Content-Encoding.",
                         "Accept-Encoding"));
    set(c, o, "Unprocessable",
        problem_response(c,
                         "Unknown or missing field, shape mismatch, invalid "
                         "option or value.",
                         NULL));
    set(c, o, "Unavailable",
        problem_response(c, "Draining, or the work queue is full.",
                         "Retry-After"));
    set(c, o, "Internal", problem_response(c, "A bug in lossd.", NULL));
    set(c, o, "NotImplemented",
        problem_response(c,
                         "A Transfer-Encoding other than chunked (the "
                         "connection is closed).",
                         NULL));
    set(c, o, "Unauthorized",
        problem_response(c,
                         "Authentication is on and the request has no "
                         "bearer token, or one not in force.",
                         "WWW-Authenticate"));
    oip_response_components(c, o);
    return o;
}

/*
 * The bearer scheme. The document is the same whatever the configuration:
 * it declares the token every operation but the probes needs once the
 * server runs with --auth-token-file; without it a token is not needed and
 * one sent is ignored.
 */
static json_t *security_schemes(struct bld *c)
{
    return check(
        c, json_pack("{s:{s:s, s:s, s:s}}", "bearer", "type", "http", "scheme",
                     "bearer", "description",
                     "Authorization: Bearer TOKEN, a token of the server's "
                     "--auth-token-file; needed only when the server runs "
                     "with one (401 with WWW-Authenticate: Bearer "
                     "otherwise). /healthz, /readyz and CORS preflights "
                     "never need it."));
}

/* The requirement of every operation but the probes: [{"bearer": []}]. */
static json_t *bearer_security(struct bld *c)
{
    return check(c, json_pack("[{s:[]}]", "bearer"));
}

/* The error responses of an operation, by code: "400" -> BadRequest. */
static void add_errors(struct bld *c, json_t *responses, const char *codes)
{
    static const struct {
        const char *code;
        const char *name;
    } table[] = {
        {"400", "BadRequest"},
        {"401", "Unauthorized"},
        {"404", "NotFound"},
        {"405", "MethodNotAllowed"},
        {"408", "Timeout"},
        {"413", "TooLarge"},
        {"415", "UnsupportedMediaType"},
        {"422", "Unprocessable"},
        {"500", "Internal"},
        {"501", "NotImplemented"},
        {"503", "Unavailable"},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strstr(codes, table[i].code) != NULL)
            set(c, responses, table[i].code, ref(c, RESPONSES, table[i].name));
}

static json_t *operation(struct bld *c, const char *id, const char *tag,
                         const char *summary, const char *description)
{
    json_t *op = obj(c), *tags = arr(c);

    set_str(c, op, "operationId", id);
    add(c, tags, json_string(tag));
    set(c, op, "tags", tags);
    set_str(c, op, "summary", summary);
    set_str(c, op, "description", description);
    return op;
}

static json_t *json_request_body(struct bld *c, json_t *schema)
{
    json_t *body = obj(c), *content = obj(c), *media = obj(c);

    set(c, body, "required", json_true());
    set(c, media, "schema", schema);
    set(c, content, "application/json", media);
    set(c, body, "content", content);
    return body;
}

static json_t *loss_path(struct bld *c, const struct proto_loss_desc *d)
{
    json_t *item = obj(c), *op, *responses = obj(c);
    json_t *id = json_sprintf("loss_%s", d->name);
    json_t *desc = json_sprintf(
        "%s%sComputes `%s` in float64.\n\nAlso served at `/%s` (an "
        "alias of this path).",
        d->description != NULL ? d->description : "",
        d->description != NULL ? "\n\n" : "",
        d->torch != NULL ? d->torch : d->name, d->name);
    json_t *name = schema_name(d->name, "Request");

    check(c, id);
    check(c, desc);
    check(c, name);
    op = operation(c, id != NULL ? json_string_value(id) : "", "losses",
                   d->summary != NULL ? d->summary : d->name,
                   desc != NULL ? json_string_value(desc) : "");
    set(c, op, "requestBody",
        json_request_body(
            c, schema_ref(c, name != NULL ? json_string_value(name) : "")));
    set(c, responses, "200",
        ok_response(c, "The loss, and gradients if asked.", "application/json",
                    schema_ref(c, "LossResponse")));
    add_errors(c, responses, "400 401 404 405 408 413 415 422 500 501 503");
    set(c, op, "responses", responses);
    set(c, item, "post", op);
    json_decref(id);
    json_decref(desc);
    json_decref(name);
    return item;
}

static json_t *batch_path(struct bld *c)
{
    json_t *item = obj(c), *responses = obj(c);
    json_t *op = operation(
        c, "batch", "batch", "Many evaluations in one round trip",
        "Each item is evaluated as if posted to its loss's path, with "
        "\"shared\" merged in; results keep the items' order and carry "
        "their status and id. Pointers in problems are absolute "
        "(/requests/3/target). Errors in the envelope answer the whole "
        "request.");

    set(c, op, "requestBody",
        json_request_body(c, schema_ref(c, "BatchRequest")));
    set(c, responses, "200",
        ok_response(c, "One result per item.", "application/json",
                    schema_ref(c, "BatchResponse")));
    add_errors(c, responses, "400 401 405 408 413 415 422 500 501 503");
    set(c, op, "responses", responses);
    set(c, item, "post", op);
    return item;
}

static json_t *get_path(struct bld *c, const char *id, const char *tag,
                        const char *summary, const char *media_type,
                        json_t *schema, const char *errors)
{
    json_t *item = obj(c), *responses = obj(c);
    json_t *op = operation(c, id, tag, summary, NULL);

    set(c, responses, "200", ok_response(c, summary, media_type, schema));
    add_errors(c, responses, errors);
    set(c, op, "responses", responses);
    set(c, item, "get", op);
    return item;
}

static json_t *readyz_path(struct bld *c)
{
    json_t *item = get_path(c, "readyz", "health", "Readiness: 200 when ready",
                            "application/json", schema_ref(c, "Health"),
                            "400 405 408 500 501");
    json_t *op = json_object_get(item, "get");
    json_t *responses = json_object_get(op, "responses");
    json_t *r503 = obj(c), *content = obj(c), *js = obj(c), *pj = obj(c);

    set_str(c, r503, "description", "Starting or draining.");
    set(c, r503, "headers", request_id_headers(c));
    set(c, js, "schema", schema_ref(c, "Health"));
    set(c, pj, "schema", schema_ref(c, "Problem"));
    set(c, content, "application/json", js);
    set(c, content, "application/problem+json", pj);
    set(c, r503, "content", content);
    set(c, responses, "503", r503);
    return item;
}

/* --- the Open Inference Protocol (docs/api.md) -------------------------- */

static json_t *oip_parameters_schema(struct bld *c)
{
    return check(
        c, json_pack("{s:s, s:s, s:{s:[{s:s},{s:s},{s:s}]}}", "description",
                     "Parameters: strings, numbers or booleans.", "type",
                     "object", "additionalProperties", "oneOf", "type",
                     "string", "type", "number", "type", "boolean"));
}

static json_t *oip_tensor_schema(struct bld *c, bool input)
{
    json_t *o = check(
        c, json_pack("{s:s, s:[s,s,s], s:{s:{s:s}, s:{s:s, s:{s:s, s:i}}, "
                     "s:{s:s, s:[s,s,s,s,s,s,s,s]}, s:o, s:{}}}",
                     "type", "object", "required", "name", "shape", "datatype",
                     "properties", "name", "type", "string", "shape", "type",
                     "array", "items", "type", "integer", "minimum",
                     input ? 0 : -1, "datatype", "type", "string", "enum",
                     "FP64", "FP32", "FP16", "BF16", "INT64", "INT32", "BOOL",
                     "UINT8", "parameters", oip_parameters_schema(c), "data"));

    if (!input)
        json_object_del(json_object_get(o, "properties"), "data");
    if (!input)
        set(c, o, "required", json_pack("[s,s]", "name", "datatype"));
    set(c, o, "additionalProperties", json_false());
    return o;
}

static json_t *oip_infer_request_schema(struct bld *c)
{
    json_t *input = oip_tensor_schema(c, true);
    json_t *out =
        check(c, json_pack("{s:s, s:[s], s:b, s:{s:{s:s}, s:o}}", "type",
                           "object", "required", "name", "additionalProperties",
                           0, "properties", "name", "type", "string",
                           "parameters", oip_parameters_schema(c)));

    return check(
        c, json_pack("{s:s, s:s, s:[s], s:b, s:{s:{s:s}, s:o, s:{s:s, s:o}, "
                     "s:{s:s, s:o}}}",
                     "description",
                     "The inference header: inputs named after the loss's "
                     "tensors (and grad_output), request parameters "
                     "reduction, the loss's options, grad, grad_output and "
                     "binary_data_output; outputs value, sum, count, "
                     "grad_<tensor>.",
                     "type", "object", "required", "inputs",
                     "additionalProperties", 0, "properties", "id", "type",
                     "string", "parameters", oip_parameters_schema(c), "inputs",
                     "type", "array", "items", input, "outputs", "type",
                     "array", "items", out));
}

static json_t *oip_infer_response_schema(struct bld *c)
{
    json_t *output = oip_tensor_schema(c, true);

    set(c, json_object_get(output, "properties"), "data",
        json_pack("{s:s, s:{}}", "type", "array", "items"));
    return check(
        c, json_pack("{s:s, s:[s,s], s:b, s:{s:{s:s}, s:{s:s}, s:{s:s}, "
                     "s:o, s:{s:s, s:o}}}",
                     "type", "object", "required", "model_name", "outputs",
                     "additionalProperties", 0, "properties", "model_name",
                     "type", "string", "model_version", "type", "string", "id",
                     "type", "string", "parameters", oip_parameters_schema(c),
                     "outputs", "type", "array", "items", output));
}

static json_t *oip_model_schema(struct bld *c)
{
    json_t *io = oip_tensor_schema(c, false);
    json_t *io2 = oip_tensor_schema(c, false);

    return check(
        c, json_pack("{s:s, s:[s,s,s,s], s:{s:{s:s}, s:{s:s, s:{s:s}}, "
                     "s:{s:s}, s:{s:s, s:o}, s:{s:s, s:o}}}",
                     "type", "object", "required", "name", "platform", "inputs",
                     "outputs", "properties", "name", "type", "string",
                     "versions", "type", "array", "items", "type", "string",
                     "platform", "type", "string", "inputs", "type", "array",
                     "items", io, "outputs", "type", "array", "items", io2));
}

static json_t *oip_models_schema(struct bld *c)
{
    return check(
        c, json_pack("{s:s, s:[s], s:{s:{s:s, s:{s:s, s:[s], s:{s:{s:s}, "
                     "s:{s:s, s:{s:s}}, s:{s:s}, s:{s:s}}}}}}",
                     "type", "object", "required", "models", "properties",
                     "models", "type", "array", "items", "type", "object",
                     "required", "name", "properties", "name", "type", "string",
                     "versions", "type", "array", "items", "type", "string",
                     "platform", "type", "string", "ready", "type", "boolean"));
}

static json_t *oip_server_schema(struct bld *c)
{
    return check(c,
                 json_pack("{s:s, s:[s,s,s], s:{s:{s:s}, s:{s:s}, s:{s:s, "
                           "s:{s:s}}}}",
                           "type", "object", "required", "name", "version",
                           "extensions", "properties", "name", "type", "string",
                           "version", "type", "string", "extensions", "type",
                           "array", "items", "type", "string"));
}

static json_t *oip_ready_schema(struct bld *c)
{
    return check(c, json_pack("{s:s, s:b, s:{s:{s:s}, s:{s:s}, s:{s:s}}}",
                              "type", "object", "additionalProperties", 0,
                              "properties", "name", "type", "string", "ready",
                              "type", "boolean", "live", "type", "boolean"));
}

/* The path parameters of a model route: the model, and its version. */
static json_t *oip_path_params(struct bld *c,
                               const struct proto_loss_desc *const *losses,
                               size_t n, bool version)
{
    json_t *a = arr(c);

    add(c, a,
        json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:o}}", "name", "model_name",
                  "in", "path", "required", 1, "description",
                  "A loss: one model per loss.", "schema", "type", "string",
                  "enum", loss_names(c, losses, n)));
    if (version)
        add(c, a,
            json_pack("{s:s, s:s, s:b, s:{s:s, s:[s]}}", "name",
                      "model_version", "in", "path", "required", 1, "schema",
                      "type", "string", "enum", "1"));
    return a;
}

/* GET that answers 503 while draining (health/ready and model ready). */
static json_t *oip_ready_path(struct bld *c, const char *id)
{
    json_t *item =
        get_path(c, id, "oip", "Readiness: 200 when ready", "application/json",
                 schema_ref(c, "OipReady"), "400 401 404 405 408 500 501");
    json_t *responses =
        json_object_get(json_object_get(item, "get"), "responses");

    set(c, responses, "503",
        ok_response(c, "Draining.", "application/json",
                    schema_ref(c, "OipReady")));
    return item;
}

static json_t *oip_infer_path(struct bld *c, const char *id)
{
    json_t *item = obj(c), *responses = obj(c), *body = obj(c),
           *content = obj(c), *ok;
    json_t *op = operation(
        c, id, "oip", "Open Inference Protocol inference",
        "The loss as an Open Inference Protocol (KServe v2) model, with the "
        "binary tensor data extension: with Inference-Header-Content-Length "
        "the body is the JSON inference header followed by the inputs' "
        "little-endian bytes, and outputs asked for as binary_data follow "
        "the response's JSON header (application/octet-stream, "
        "Inference-Header-Content-Length). docs/api.md, \"Open Inference "
        "Protocol\".");

    set(c, content, "application/json",
        json_pack("{s:o}", "schema", schema_ref(c, "OipInferRequest")));
    set(c, content, "application/octet-stream",
        json_pack("{s:{s:s, s:s}}", "schema", "type", "string", "format",
                  "binary"));
    set(c, body, "required", json_true());
    set(c, body, "content", content);
    set(c, op, "requestBody", body);
    set(c, op, "parameters",
        json_pack("[{s:s, s:s, s:b, s:s, s:{s:s, s:i}}]", "name",
                  "Inference-Header-Content-Length", "in", "header", "required",
                  0, "description",
                  "Bytes of the JSON inference header at the start of the "
                  "body (the binary tensor data extension).",
                  "schema", "type", "integer", "minimum", 1));
    ok = ok_response(c, "The outputs.", "application/json",
                     schema_ref(c, "OipInferResponse"));
    set(c, json_object_get(ok, "content"), "application/octet-stream",
        json_pack("{s:{s:s, s:s}}", "schema", "type", "string", "format",
                  "binary"));
    set(c, json_object_get(ok, "headers"), "Inference-Header-Content-Length",
        json_pack("{s:s, s:{s:s}}", "description",
                  "Bytes of the JSON header before the binary outputs.",
                  "schema", "type", "integer"));
    set(c, responses, "200", ok);
    add_errors(c, responses, "400 401 404 405 408 413 415 422 500 501 503");
    set(c, op, "responses", responses);
    set(c, item, "post", op);
    return item;
}

/*
 * The protocol's routes send their problem documents as application/json
 * (KServe's clients read an error's message only from that type): in
 * item's operations, a reference to an error response becomes one to its
 * "Oip" twin (oip_response_components()), and an inline
 * application/problem+json becomes application/json (one of both schemas
 * when the response has JSON of its own too).
 */
static void oip_problem_types(struct bld *c, json_t *item)
{
    const char *method, *code;
    json_t *op, *resp;

    json_object_foreach(item, method, op)
    {
        json_object_foreach(json_object_get(op, "responses"), code, resp)
        {
            json_t *r = json_object_get(resp, "$ref");
            json_t *content = json_object_get(resp, "content");
            json_t *pj = json_object_get(content, "application/problem+json");
            json_t *js = json_object_get(content, "application/json");
            size_t plen = strlen(RESPONSES);

            if (json_is_string(r) &&
                strncmp(json_string_value(r), RESPONSES, plen) == 0)
                set(c, resp, "$ref",
                    json_sprintf("%sOip%s", RESPONSES,
                                 json_string_value(r) + plen));
            if (pj == NULL)
                continue;
            if (js == NULL) {
                set(c, content, "application/json", json_incref(pj));
            } else {
                json_t *one = obj(c), *of = arr(c);

                if (json_array_append(of, json_object_get(js, "schema")) ||
                    json_array_append(of, json_object_get(pj, "schema")))
                    c->ok = false;
                set(c, one, "schema",
                    check(c, json_pack("{s:o}", "oneOf", of)));
                set(c, content, "application/json", one);
            }
            json_object_del(content, "application/problem+json");
        }
    }
}

/* Each error response again as "Oip<name>", its problem document in
   application/json (oip_problem_types()). */
static void oip_response_components(struct bld *c, json_t *o)
{
    json_t *twins = obj(c);
    const char *name;
    json_t *resp;

    json_object_foreach(o, name, resp)
    {
        json_t *cp = json_deep_copy(resp);
        json_t *content = json_object_get(cp, "content");
        json_t *pj = json_object_get(content, "application/problem+json");
        char key[64];

        if (pj != NULL) {
            set(c, content, "application/json", json_incref(pj));
            json_object_del(content, "application/problem+json");
        }
        snprintf(key, sizeof key, "Oip%s", name);
        set(c, twins, key, cp);
    }
    if (twins == NULL || json_object_update(o, twins) != 0)
        c->ok = false;
    json_decref(twins);
}

static void oip_paths(struct bld *c, json_t *p,
                      const struct proto_loss_desc *const *losses, size_t n)
{
    static const char *const model_paths[] = {
        "/v2/models/{model_name}",
        "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/versions/{model_version}/ready",
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    };
    static const char *const ids[] = {
        "oipModel", "oipModelVersion", "oipModelReady", "oipModelVersionReady",
        "oipInfer", "oipInferVersion",
    };

    set(c, p, "/v2",
        get_path(c, "oipServer", "oip", "Server metadata", "application/json",
                 schema_ref(c, "OipServer"), "400 401 405 408 500 501"));
    set(c, p, "/v2/health/live",
        get_path(c, "oipLive", "oip", "Liveness: 200 while the process serves",
                 "application/json", schema_ref(c, "OipReady"),
                 "400 405 408 500 501"));
    set(c, p, "/v2/health/ready", oip_ready_path(c, "oipReady"));
    set(c, json_object_get(json_object_get(p, "/v2/health/live"), "get"),
        "security", arr(c));
    set(c, json_object_get(json_object_get(p, "/v2/health/ready"), "get"),
        "security", arr(c));
    set(c, p, "/v2/models",
        get_path(c, "oipModels", "oip", "Every model: one per loss",
                 "application/json", schema_ref(c, "OipModels"),
                 "400 401 405 408 500 501"));
    /* no model routes without a model (an empty enum is no schema) */
    for (size_t i = 0; n > 0 && i < sizeof(model_paths) / sizeof(*model_paths);
         i++) {
        bool version = strstr(model_paths[i], "{model_version}") != NULL;
        json_t *item;

        if (i / 2 == 0)
            item = get_path(c, ids[i], "oip",
                            "Model metadata: inputs with their datatypes, "
                            "outputs",
                            "application/json", schema_ref(c, "OipModel"),
                            "400 401 404 405 408 500 501");
        else if (i / 2 == 1)
            item = oip_ready_path(c, ids[i]);
        else
            item = oip_infer_path(c, ids[i]);
        set(c, item, "parameters", oip_path_params(c, losses, n, version));
        set(c, p, model_paths[i], item);
    }
    {
        const char *path;
        json_t *item;

        json_object_foreach(p, path, item)
        {
            if (strncmp(path, "/v2", 3) == 0)
                oip_problem_types(c, item);
        }
    }
}

static json_t *paths_object(struct bld *c,
                            const struct proto_loss_desc *const *losses,
                            size_t n)
{
    json_t *p = obj(c);

    for (size_t i = 0; i < n; i++) {
        json_t *path = json_sprintf("/v1/%s", losses[i]->name);

        if (check(c, path) != NULL)
            set(c, p, json_string_value(path), loss_path(c, losses[i]));
        json_decref(path);
    }
    set(c, p, "/v1/batch", batch_path(c));
    set(c, p, "/v1/losses",
        get_path(c, "listLosses", "meta",
                 "Catalog: every loss, its tensors, options, limits",
                 "application/json", schema_ref(c, "Catalog"),
                 "400 401 405 408 500 501"));
    set(c, p, "/openapi.json",
        get_path(c, "getOpenAPI", "meta", "This OpenAPI document",
                 "application/json", json_pack("{s:s}", "type", "object"),
                 "400 401 405 408 500 501"));
    set(c, p, "/healthz",
        get_path(c, "healthz", "health",
                 "Liveness: 200 while the process serves", "application/json",
                 schema_ref(c, "Health"), "400 405 408 500 501"));
    set(c, p, "/readyz", readyz_path(c));
    /* the probes need no token, whatever the configuration */
    set(c, json_object_get(json_object_get(p, "/healthz"), "get"), "security",
        arr(c));
    set(c, json_object_get(json_object_get(p, "/readyz"), "get"), "security",
        arr(c));
    set(c, p, "/metrics",
        get_path(c, "metrics", "meta", "Prometheus text format 0.0.4",
                 "text/plain", json_pack("{s:s}", "type", "string"),
                 "400 401 405 408 500 501"));
    oip_paths(c, p, losses, n);
    return p;
}

static json_t *schemas_object(struct bld *c,
                              const struct proto_loss_desc *const *losses,
                              size_t n, const struct proto_limits_desc *limits)
{
    json_t *s = obj(c);

    set(c, s, "Scalar", scalar_schema(c));
    set(c, s, "Shape",
        shape_schema(c, limits->max_rank > 0 ? limits->max_rank
                                             : TENSOR_MAX_RANK));
    set(c, s, "NestedArray", nested_schema(c));
    set(c, s, "FlatTensor", flat_schema(c));
    set(c, s, "Base64Tensor", base64_schema(c));
    set(c, s, "Tensor", tensor_schema(c));
    for (size_t i = 0; i < n; i++) {
        json_t *name = schema_name(losses[i]->name, "Request");

        if (check(c, name) != NULL)
            set(c, s, json_string_value(name), request_schema(c, losses[i]));
        json_decref(name);
    }
    set(c, s, "Warning", warning_schema(c));
    set(c, s, "LossResponse", response_schema(c, losses, n));
    set(c, s, "BatchItem", batch_item_schema(c, losses, n));
    set(c, s, "BatchRequest", batch_request_schema(c, limits));
    set(c, s, "BatchResponse", batch_response_schema(c));
    set(c, s, "Problem", problem_schema(c));
    set(c, s, "Limits", limits_schema(c));
    set(c, s, "Catalog", catalog_schema(c));
    set(c, s, "Health", health_schema(c));
    set(c, s, "OipServer", oip_server_schema(c));
    set(c, s, "OipReady", oip_ready_schema(c));
    set(c, s, "OipModels", oip_models_schema(c));
    set(c, s, "OipModel", oip_model_schema(c));
    set(c, s, "OipInferRequest", oip_infer_request_schema(c));
    set(c, s, "OipInferResponse", oip_infer_response_schema(c));
    return s;
}

static json_t *info_object(struct bld *c, const char *version)
{
    json_t *info = obj(c);

    set_str(c, info, "title", "lossd");
    set_str(c, info, "version", version != NULL ? version : "0");
    set_str(c, info, "description",
            "PyTorch's loss functions (torch.nn.functional) over HTTP, "
            "computed in float64, with gradients.\n\n"
            "- Every `POST /v1/{loss}` is also served at `/{loss}`.\n"
            "- Numbers read back to the same float64; non-finite values are "
            "the strings \"NaN\", \"Infinity\", \"-Infinity\".\n"
            "- Errors are RFC 9457 problem documents "
            "(application/problem+json). An unknown loss or path is 404 "
            "whatever the method; a known route with the wrong method is "
            "405 with Allow.\n"
            "- Request bodies: application/json (or application/*+json); "
            "Content-Encoding gzip, deflate or identity.\n"
            "- The limits in force are published by GET /v1/losses.");
    set(c, info, "license", json_pack("{s:s}", "name", "MIT"));
    return info;
}

void proto_openapi_write(struct proto_buf *b,
                         const struct proto_loss_desc *const *losses, size_t n,
                         const struct proto_limits_desc *limits,
                         const char *version)
{
    struct bld c = {true};
    json_t *root = obj(&c), *components = obj(&c);

    set_str(&c, root, "openapi", "3.0.3");
    set(&c, root, "info", info_object(&c, version));
    set(&c, root, "tags",
        json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, "
                  "{s:s, s:s}]",
                  "name", "losses", "description", "One loss per path", "name",
                  "batch", "description", "Many evaluations at once", "name",
                  "meta", "description", "Catalog, this document, metrics",
                  "name", "health", "description", "Liveness and readiness",
                  "name", "oip", "description",
                  "The Open Inference Protocol (KServe v2, REST) with the "
                  "binary tensor data extension: one model per loss"));
    set(&c, root, "security", bearer_security(&c));
    set(&c, root, "paths", paths_object(&c, losses, n));
    set(&c, components, "schemas", schemas_object(&c, losses, n, limits));
    set(&c, components, "responses", responses_components(&c));
    set(&c, components, "headers", headers_object(&c));
    set(&c, components, "securitySchemes", security_schemes(&c));
    set(&c, root, "components", components);
    if (c.ok)
        proto_write_json(b, root);
    else
        b->failed = true;
    json_decref(root);
}

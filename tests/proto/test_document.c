/*
 * test_document.c - proto/problem.c, response.c, catalog.c, openapi.c.
 * Every document is parsed back with jansson and checked member by member;
 * the status table is walked for every enum value (STYLE.md 4). The catalog
 * and the OpenAPI document are built from a small made-up table of losses
 * below, not from the handlers' registry, so this layer is tested alone.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "document.h"
#include "testutil.h"

static json_t *parse(struct proto_buf *b)
{
    json_error_t jerr;
    json_t *v;

    ck_assert(proto_buf_ok(b));
    v = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                   &jerr);
    ck_assert_msg(v != NULL, "invalid JSON (%s at %d): %s", jerr.text,
                  jerr.position, b->data);
    return v;
}

static const char *str_member(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_string(v), "member %s is not a string", key);
    return json_string_value(v);
}

static json_int_t int_member(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_integer(v), "member %s is not an integer", key);
    return json_integer_value(v);
}

static double real_member(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_real(v), "member %s is not a real", key);
    return json_real_value(v);
}

/* The keys of o in document order, joined with ','. */
static const char *keys_of(const json_t *o)
{
    static char out[512];
    const char *key;
    json_t *v;

    out[0] = '\0';
    json_object_foreach((json_t *)o, key, v)
    {
        if (out[0] != '\0')
            strcat(out, ",");
        strcat(out, key);
    }
    return out;
}

/* --- the status table --------------------------------------------------- */

START_TEST(test_status_table_every_status)
{
    static const struct {
        enum loss_status st;
        int http;
        const char *type;
    } expect[] = {
        {LOSS_EJSON, 400, "/problems/invalid-json"},
        {LOSS_ETENSOR, 400, "/problems/invalid-tensor"},
        {LOSS_ENOTFOUND, 404, "/problems/not-found"},
        {LOSS_EMETHOD, 405, "/problems/method-not-allowed"},
        {LOSS_ETOOLARGE, 413, "/problems/too-large"},
        {LOSS_EMEDIA, 415, "/problems/unsupported-media-type"},
        {LOSS_EUNKNOWN, 422, "/problems/unknown-field"},
        {LOSS_EMISSING, 422, "/problems/missing-field"},
        {LOSS_ESHAPE, 422, "/problems/shape-mismatch"},
        {LOSS_EOPTION, 422, "/problems/invalid-option"},
        {LOSS_EVALUE, 422, "/problems/invalid-value"},
        {LOSS_EUNAVAIL, 503, "/problems/unavailable"},
        {LOSS_ENOMEM, 503, "/problems/unavailable"},
        {LOSS_EINTERNAL, 500, "/problems/internal"},
    };
    bool seen[LOSS_STATUS_COUNT] = {false};

    ck_assert_int_eq(proto_status_http(LOSS_OK), 200);
    seen[LOSS_OK] = true;
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        enum loss_status st = expect[i].st;

        ck_assert_int_eq(proto_status_http(st), expect[i].http);
        ck_assert_str_eq(proto_status_type(st), expect[i].type);
        seen[st] = true;
    }
    /* the walk: every value has a row, and one type has one title */
    for (int s = 0; s < LOSS_STATUS_COUNT; s++) {
        enum loss_status st = (enum loss_status)s;

        ck_assert_msg(seen[s], "status %s not in this test's table",
                      loss_status_name(st));
        ck_assert_ptr_nonnull(proto_status_type(st));
        ck_assert_ptr_nonnull(proto_status_title(st));
        ck_assert_uint_gt(strlen(proto_status_title(st)), 0);
        for (int t = 0; t < LOSS_STATUS_COUNT; t++) {
            enum loss_status tt = (enum loss_status)t;

            if (strcmp(proto_status_type(st), proto_status_type(tt)) != 0)
                continue;
            ck_assert_str_eq(proto_status_title(st), proto_status_title(tt));
            ck_assert_int_eq(proto_status_http(st), proto_status_http(tt));
        }
    }
    /* a value outside the enum is a bug, answered as internal */
    ck_assert_int_eq(proto_status_http(LOSS_STATUS_COUNT), 500);
    ck_assert_int_eq(proto_status_http((enum loss_status) - 1), 500);
    ck_assert_str_eq(proto_status_type(LOSS_STATUS_COUNT),
                     "/problems/internal");
}
END_TEST

/* --- problem documents -------------------------------------------------- */

START_TEST(test_problem_every_status)
{
    for (int s = 1; s < LOSS_STATUS_COUNT; s++) {
        enum loss_status st = (enum loss_status)s;
        struct loss_error err;
        struct proto_buf b;
        json_t *j;
        char detail[64];

        loss_error_init(&err);
        loss_fail(&err, st, "/target", "detail of %s", loss_status_name(st));
        snprintf(detail, sizeof(detail), "detail of %s", loss_status_name(st));
        proto_buf_init(&b);
        proto_problem_write(&b, &err, "req-42", NULL);
        j = parse(&b);
        ck_assert_str_eq(keys_of(j),
                         "type,title,status,detail,pointer,instance,error");
        ck_assert_str_eq(str_member(j, "type"), proto_status_type(st));
        ck_assert_str_eq(str_member(j, "title"), proto_status_title(st));
        ck_assert_int_eq(int_member(j, "status"), proto_status_http(st));
        ck_assert_str_eq(str_member(j, "detail"), detail);
        ck_assert_str_eq(str_member(j, "error"), detail);
        ck_assert_str_eq(str_member(j, "pointer"), "/target");
        ck_assert_str_eq(str_member(j, "instance"), "req-42");
        json_decref(j);
        proto_buf_release(&b);
    }
}
END_TEST

START_TEST(test_problem_offset_and_root_pointer)
{
    struct loss_error err;
    struct proto_buf b;
    json_t *j;

    proto_buf_init(&b);
    loss_error_init(&err);
    loss_fail_at(&err, LOSS_EJSON, 17, "unexpected 'N': send \"NaN\"");
    proto_problem_write(&b, &err, NULL, NULL);
    j = parse(&b);
    ck_assert_str_eq(keys_of(j), "type,title,status,detail,offset,error");
    ck_assert_int_eq(int_member(j, "offset"), 17);
    ck_assert_int_eq(int_member(j, "status"), 400);
    ck_assert_str_eq(str_member(j, "detail"), "unexpected 'N': send \"NaN\"");
    json_decref(j);

    /* the root pointer "" is a pointer, not "none" */
    proto_buf_reset(&b);
    loss_fail(&err, LOSS_EVALUE, "", "the body is null");
    proto_problem_write(&b, &err, NULL, NULL);
    j = parse(&b);
    ck_assert_str_eq(str_member(j, "pointer"), "");
    ck_assert_ptr_null(json_object_get(j, "offset"));
    json_decref(j);

    /* neither: a 404 for a path */
    proto_buf_reset(&b);
    loss_fail(&err, LOSS_ENOTFOUND, NULL, "no loss named 'mse2'");
    proto_problem_write(&b, &err, "abc", NULL);
    j = parse(&b);
    ck_assert_str_eq(keys_of(j), "type,title,status,detail,instance,error");
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_problem_without_status_is_internal)
{
    struct loss_error err;
    struct proto_buf b;
    json_t *j;

    loss_error_init(&err);
    proto_buf_init(&b);
    proto_problem_write(&b, &err, NULL, NULL);
    j = parse(&b);
    ck_assert_int_eq(int_member(j, "status"), 500);
    ck_assert_str_eq(str_member(j, "type"), "/problems/internal");
    /* an empty detail falls back to the title, never "" */
    ck_assert_str_eq(str_member(j, "detail"), str_member(j, "title"));
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

/* A detail cut by loss_fail() inside a character, quotes and controls. */
START_TEST(test_problem_detail_escaped_and_cut)
{
    struct loss_error err;
    struct proto_buf b;
    char longkey[700];
    json_t *j;

    for (size_t i = 0; i + 2 < sizeof(longkey); i += 2)
        memcpy(longkey + i, "\xc3\xa9", 2);
    longkey[sizeof(longkey) - 2] = '\0';
    loss_error_init(&err);
    loss_fail(&err, LOSS_EUNKNOWN, "/x~1y", "\"%s\"\n\t%s", "q\\", longkey);
    proto_buf_init(&b);
    proto_problem_write(&b, &err, "id\"1", NULL);
    j = parse(&b);
    ck_assert_str_eq(str_member(j, "pointer"), "/x~1y");
    ck_assert_str_eq(str_member(j, "instance"), "id\"1");
    ck_assert(strncmp(str_member(j, "detail"), "\"q\\\"\n\t\xc3\xa9", 7) == 0);
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

static struct proto_tensor id_tensor;
static double id_data[4] = {1, 2, 3.5, -0.0};
static struct proto_member id_members[2];
static struct proto_value id_items[2];

/* A few decoded ids, built by hand: the decoder is not under test. */
static struct proto_value make_id(int which)
{
    struct proto_value v;

    memset(&v, 0, sizeof(v));
    switch (which) {
    case 0:
        v.type = PROTO_STRING;
        v.u.string.ptr = (char *)"item-a";
        v.u.string.len = 6;
        break;
    case 1:
        v.type = PROTO_NUMBER;
        v.u.number = 7;
        break;
    case 2:
        v.type = PROTO_NULL;
        break;
    case 3:
        memset(&id_tensor, 0, sizeof(id_tensor));
        id_tensor.t.ndim = 2;
        id_tensor.t.shape[0] = 2;
        id_tensor.t.shape[1] = 2;
        id_tensor.t.data = id_data;
        id_tensor.encoding = PROTO_ENC_NESTED;
        v.type = PROTO_TENSOR;
        v.u.tensor = &id_tensor;
        break;
    case 4:
        id_items[0].type = PROTO_BOOL;
        id_items[0].u.boolean = true;
        id_items[1].type = PROTO_NUMBER;
        id_items[1].u.number = 0.25;
        id_members[0].key = (char *)"k";
        id_members[0].key_len = 1;
        id_members[0].value.type = PROTO_ARRAY;
        id_members[0].value.u.array.items = id_items;
        id_members[0].value.u.array.len = 2;
        id_members[1].key = (char *)"s";
        id_members[1].key_len = 1;
        id_members[1].value.type = PROTO_STRING;
        id_members[1].value.u.string.ptr = (char *)"a\0b";
        id_members[1].value.u.string.len = 3;
        v.type = PROTO_OBJECT;
        v.u.object.members = id_members;
        v.u.object.len = 2;
        break;
    default:
        break;
    }
    return v;
}

static const char *const id_texts[] = {
    "\"item-a\"",
    "7",
    "null",
    "[[1,2],[3.5,-0]]",
    "{\"k\":[true,0.25],\"s\":\"a\\u0000b\"}",
};

START_TEST(test_problem_batch_id)
{
    struct proto_value id = make_id(_i);
    struct loss_error err;
    struct proto_buf b;
    const char *at;

    loss_error_init(&err);
    loss_fail(&err, LOSS_ESHAPE, "/requests/3/target", "bad");
    proto_buf_init(&b);
    proto_problem_write(&b, &err, NULL, &id);
    ck_assert(proto_buf_ok(&b));
    at = strstr(b.data, ",\"id\":");
    ck_assert_ptr_nonnull(at);
    ck_assert_uint_eq(strlen(at),
                      strlen(",\"id\":") + strlen(id_texts[_i]) + 1);
    ck_assert_mem_eq(at + 6, id_texts[_i], strlen(id_texts[_i]));
    json_decref(parse(&b));
    proto_buf_release(&b);
}
END_TEST

/* --- loss responses ----------------------------------------------------- */

START_TEST(test_response_scalar)
{
    struct proto_response r;
    struct proto_buf b;
    json_t *j;

    memset(&r, 0, sizeof(r));
    r.loss = "mse";
    r.reduction = "mean";
    r.value = 0.5;
    r.has_sum = true;
    r.sum = 2.0;
    r.count = 4;
    proto_buf_init(&b);
    proto_response_write(&b, &r);
    ck_assert_str_eq(b.data, "{\"loss\":\"mse\",\"reduction\":\"mean\","
                             "\"value\":0.5,\"shape\":[],\"sum\":2.0,"
                             "\"count\":4.0,\"warnings\":[]}");
    j = parse(&b);
    ck_assert(real_member(j, "value") == 0.5);
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

/* All targets ignored: value "NaN", as a string, never a bare token. */
START_TEST(test_response_nan_value)
{
    struct proto_response r;
    struct proto_buf b;
    json_t *j;

    memset(&r, 0, sizeof(r));
    r.loss = "cross_entropy";
    r.reduction = "mean";
    r.value = NAN;
    r.has_sum = true;
    r.sum = 0;
    r.count = 0;
    proto_buf_init(&b);
    proto_response_write(&b, &r);
    j = parse(&b);
    ck_assert_str_eq(str_member(j, "value"), "NaN");
    ck_assert(real_member(j, "count") == 0.0);
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_response_tensor_grads_warnings)
{
    static const double v[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    static const double g0[6] = {1, -1, 0.5, -0.5, 2, -2};
    static const double g1[3] = {INFINITY, -0.0, 3};
    const enum proto_format formats[] = {PROTO_FORMAT_NESTED, PROTO_FORMAT_FLAT,
                                         PROTO_FORMAT_BASE64};
    struct proto_out_tensor grads[2];
    struct proto_warning w[2];
    struct proto_response r;

    memset(&r, 0, sizeof(r));
    memset(grads, 0, sizeof(grads));
    memset(w, 0, sizeof(w));
    r.loss = "mse";
    r.reduction = "none";
    r.value_is_tensor = true;
    r.value_tensor.ndim = 2;
    r.value_tensor.shape[0] = 2;
    r.value_tensor.shape[1] = 3;
    r.value_tensor.data = v;
    r.has_sum = true;
    r.sum = 2.1;
    r.count = 6;
    grads[0].name = "input";
    grads[0].ndim = 2;
    grads[0].shape[0] = 2;
    grads[0].shape[1] = 3;
    grads[0].data = g0;
    grads[1].name = "target";
    grads[1].ndim = 1;
    grads[1].shape[0] = 3;
    grads[1].data = g1;
    r.grads = grads;
    r.ngrads = 2;
    w[0].code = "broadcast-target";
    snprintf(w[0].message, sizeof(w[0].message), "target [3] broadcast");
    snprintf(w[0].pointer, sizeof(w[0].pointer), "/target");
    w[1].code = "kl-div-mean";
    snprintf(w[1].message, sizeof(w[1].message), "\"mean\" is not KL");
    r.warnings = w;
    r.nwarnings = 2;
    for (size_t f = 0; f < 3; f++) {
        struct proto_buf b;
        json_t *j, *grad, *warn, *val;

        r.format = formats[f];
        proto_buf_init(&b);
        proto_response_write(&b, &r);
        j = parse(&b);
        ck_assert_str_eq(keys_of(j), "loss,reduction,value,shape,sum,count,"
                                     "grad,warnings");
        ck_assert_int_eq(
            json_integer_value(json_array_get(json_object_get(j, "shape"), 1)),
            3);
        grad = json_object_get(j, "grad");
        ck_assert_str_eq(keys_of(grad), "input,target");
        val = json_object_get(j, "value");
        if (formats[f] == PROTO_FORMAT_NESTED) {
            ck_assert(json_real_value(
                          json_array_get(json_array_get(val, 1), 2)) == 0.6);
            ck_assert_str_eq(json_string_value(json_array_get(
                                 json_object_get(grad, "target"), 0)),
                             "Infinity");
        } else if (formats[f] == PROTO_FORMAT_FLAT) {
            ck_assert_str_eq(keys_of(val), "shape,data");
            ck_assert_uint_eq(json_array_size(json_object_get(val, "data")), 6);
        } else {
            ck_assert_str_eq(keys_of(val), "shape,dtype,base64");
            ck_assert_str_eq(keys_of(json_object_get(grad, "input")),
                             "shape,dtype,base64");
        }
        warn = json_object_get(j, "warnings");
        ck_assert_uint_eq(json_array_size(warn), 2);
        ck_assert_str_eq(keys_of(json_array_get(warn, 0)),
                         "code,message,pointer");
        ck_assert_str_eq(str_member(json_array_get(warn, 0), "pointer"),
                         "/target");
        ck_assert_str_eq(keys_of(json_array_get(warn, 1)), "code,message");
        ck_assert_str_eq(str_member(json_array_get(warn, 1), "message"),
                         "\"mean\" is not KL");
        json_decref(j);
        proto_buf_release(&b);
    }
}
END_TEST

/* softmax: no reduction, no sum or count; a 0-d output is a bare number. */
START_TEST(test_response_softmax_and_0d)
{
    static const double v[1] = {1.0};
    struct proto_response r;
    struct proto_buf b;
    json_t *j;

    memset(&r, 0, sizeof(r));
    r.loss = "softmax";
    r.value_is_tensor = true;
    r.value_tensor.ndim = 0;
    r.value_tensor.data = v;
    proto_buf_init(&b);
    proto_response_write(&b, &r);
    ck_assert_str_eq(b.data, "{\"loss\":\"softmax\",\"value\":1.0,"
                             "\"shape\":[],\"warnings\":[]}");
    j = parse(&b);
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_response_batch_item)
{
    struct proto_value id = make_id(0);
    struct proto_response r;
    struct proto_buf b;
    json_t *j;

    memset(&r, 0, sizeof(r));
    r.id = &id;
    r.status = 200;
    r.loss = "l1";
    r.reduction = "sum";
    r.value = 3;
    r.has_sum = true;
    r.sum = 3;
    r.count = 2;
    proto_buf_init(&b);
    proto_response_write(&b, &r);
    j = parse(&b);
    ck_assert_str_eq(keys_of(j), "id,status,loss,reduction,value,shape,sum,"
                                 "count,warnings");
    ck_assert_str_eq(str_member(j, "id"), "item-a");
    ck_assert_int_eq(int_member(j, "status"), 200);
    json_decref(j);

    /* a batch item without an id still carries its status */
    r.id = NULL;
    proto_buf_reset(&b);
    proto_response_write(&b, &r);
    j = parse(&b);
    ck_assert_str_eq(keys_of(j), "status,loss,reduction,value,shape,sum,"
                                 "count,warnings");
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

/* --- catalog and OpenAPI ------------------------------------------------ */

/* A made-up registry: one of each kind of tensor, option and reduction. */
static const struct proto_tensor_desc pair_tensors[] = {
    {"input", true, true, "any shape"},
    {"target", true, true, "broadcastable to input"},
};
static const struct proto_option_desc huber_options[] = {
    {.name = "delta",
     .type = PROTO_OPT_NUMBER,
     .description = "where the loss turns linear",
     .def_number = 1.0,
     .has_default = true,
     .has_minimum = true,
     .minimum = 0,
     .exclusive_minimum = true},
};
static const struct proto_tensor_desc ce_tensors[] = {
    {"input", true, true, "(C), (N,C) or (N,C,d1..dk)"},
    {"target", true, true, "class indices or probabilities"},
    {"weight", false, false, "(C)"},
};
static const struct proto_option_desc ce_options[] = {
    {.name = "ignore_index",
     .type = PROTO_OPT_INTEGER,
     .def_number = -100,
     .has_default = true},
    {.name = "label_smoothing",
     .type = PROTO_OPT_NUMBER,
     .def_number = 0.0,
     .has_default = true,
     .has_minimum = true,
     .minimum = 0,
     .has_maximum = true,
     .maximum = 1},
};
static const struct proto_option_desc kl_options[] = {
    {.name = "log_target",
     .type = PROTO_OPT_BOOLEAN,
     .def_boolean = false,
     .has_default = true},
};
static const struct proto_tensor_desc softmax_tensors[] = {
    {"input", true, true, NULL},
};
static const struct proto_option_desc softmax_options[] = {
    {.name = "dim", .type = PROTO_OPT_INTEGER, .description = "the axis"},
};
static const char *const variants[] = {"pairs", "symmetric", "nt_xent", NULL};
static const struct proto_tensor_desc nce_tensors[] = {
    {"query", true, true, "(N,D)"},
    {"positive_key", true, true, "(N,D)"},
    {"negative_keys", false, true, "(M,D) or (N,M,D)"},
};
static const struct proto_option_desc nce_options[] = {
    {.name = "temperature",
     .type = PROTO_OPT_NUMBER,
     .def_number = 0.1,
     .has_default = true,
     .has_minimum = true,
     .minimum = 0,
     .exclusive_minimum = true},
    {.name = "normalize",
     .type = PROTO_OPT_BOOLEAN,
     .def_boolean = true,
     .has_default = true},
    {.name = "variant",
     .type = PROTO_OPT_STRING,
     .def_string = "pairs",
     .has_default = true,
     .choices = variants},
};

#define RED3 (PROTO_RED_NONE | PROTO_RED_MEAN | PROTO_RED_SUM)

static const struct proto_loss_desc test_losses[] = {
    {"mse", "Mean squared error", "(x - y)^2, averaged.",
     "torch.nn.functional.mse_loss", pair_tensors, 2, NULL, 0, RED3, true},
    {"huber", "Huber loss", NULL, "torch.nn.functional.huber_loss",
     pair_tensors, 2, huber_options, 1, RED3, true},
    {"cross_entropy", "Cross entropy", "Class indices or probabilities.",
     "torch.nn.functional.cross_entropy", ce_tensors, 3, ce_options, 2, RED3,
     true},
    {"kl_div", "KL divergence", NULL, "torch.nn.functional.kl_div",
     pair_tensors, 2, kl_options, 1, RED3 | PROTO_RED_BATCHMEAN, true},
    {"softmax", "Softmax", NULL, "torch.nn.functional.softmax", softmax_tensors,
     1, softmax_options, 1, 0, false},
    {"info_nce", "InfoNCE", NULL, NULL, nce_tensors, 3, nce_options, 3, RED3,
     true},
};
#define NLOSSES (sizeof(test_losses) / sizeof(test_losses[0]))

static const struct proto_limits_desc test_limits = {
    67108864, 16777216, 8, 64, 100000000, 256,
};

static const struct proto_loss_desc *const *loss_table(void)
{
    static const struct proto_loss_desc *table[NLOSSES];

    for (size_t i = 0; i < NLOSSES; i++)
        table[i] = &test_losses[i];
    return table;
}

static json_t *catalog_json(struct proto_buf *b)
{
    proto_buf_init(b);
    proto_catalog_write(b, loss_table(), NLOSSES, &test_limits);
    return parse(b);
}

static json_t *openapi_json(struct proto_buf *b)
{
    proto_buf_init(b);
    proto_openapi_write(b, loss_table(), NLOSSES, &test_limits, "1.2.3");
    return parse(b);
}

static const char *join_strings(const json_t *a)
{
    static char out[512];

    out[0] = '\0';
    ck_assert(json_is_array(a));
    for (size_t i = 0; i < json_array_size(a); i++) {
        if (i > 0)
            strcat(out, ",");
        ck_assert(json_is_string(json_array_get(a, i)));
        strcat(out, json_string_value(json_array_get(a, i)));
    }
    return out;
}

START_TEST(test_catalog_structure)
{
    struct proto_buf b;
    json_t *j = catalog_json(&b), *losses, *limits, *ce, *opt;

    ck_assert_str_eq(keys_of(j), "losses,limits");
    losses = json_object_get(j, "losses");
    ck_assert_uint_eq(json_array_size(losses), NLOSSES);
    for (size_t i = 0; i < NLOSSES; i++) {
        json_t *l = json_array_get(losses, i);
        char path[64];

        snprintf(path, sizeof(path), "/v1/%s", test_losses[i].name);
        ck_assert_str_eq(str_member(l, "name"), test_losses[i].name);
        ck_assert_str_eq(str_member(l, "path"), path);
        ck_assert_str_eq(str_member(l, "summary"), test_losses[i].summary);
        ck_assert_uint_eq(json_array_size(json_object_get(l, "tensors")),
                          test_losses[i].ntensors);
        ck_assert_uint_eq(json_array_size(json_object_get(l, "options")),
                          test_losses[i].noptions);
        ck_assert(json_is_boolean(json_object_get(l, "sum_and_count")));
    }
    ck_assert_str_eq(
        join_strings(json_object_get(json_array_get(losses, 0), "reductions")),
        "none,mean,sum");
    ck_assert_str_eq(
        join_strings(json_object_get(json_array_get(losses, 3), "reductions")),
        "none,mean,sum,batchmean");
    ck_assert_str_eq(
        join_strings(json_object_get(json_array_get(losses, 4), "reductions")),
        "");
    ck_assert_ptr_null(json_object_get(json_array_get(losses, 5), "torch"));

    ce = json_array_get(losses, 2);
    ck_assert_str_eq(keys_of(ce), "name,path,summary,description,torch,"
                                  "tensors,options,reductions,"
                                  "differentiable,sum_and_count");
    ck_assert_str_eq(str_member(ce, "torch"),
                     "torch.nn.functional.cross_entropy");
    ck_assert_str_eq(join_strings(json_object_get(ce, "differentiable")),
                     "input,target");
    ck_assert_str_eq(keys_of(json_array_get(json_object_get(ce, "tensors"), 2)),
                     "name,required,differentiable,description");
    ck_assert(json_is_false(json_object_get(
        json_array_get(json_object_get(ce, "tensors"), 2), "required")));
    opt = json_array_get(json_object_get(ce, "options"), 0);
    ck_assert_str_eq(str_member(opt, "type"), "integer");
    ck_assert_int_eq(int_member(opt, "default"), -100);
    opt = json_array_get(json_object_get(ce, "options"), 1);
    ck_assert_str_eq(keys_of(opt), "name,type,default,minimum,maximum");
    ck_assert(real_member(opt, "default") == 0.0);
    ck_assert(real_member(opt, "maximum") == 1.0);

    opt = json_array_get(json_object_get(json_array_get(losses, 1), "options"),
                         0);
    ck_assert(json_is_true(json_object_get(opt, "exclusive_minimum")));
    ck_assert_ptr_null(json_object_get(opt, "exclusive_maximum"));
    opt = json_array_get(json_object_get(json_array_get(losses, 5), "options"),
                         2);
    ck_assert_str_eq(join_strings(json_object_get(opt, "enum")),
                     "pairs,symmetric,nt_xent");
    ck_assert_str_eq(str_member(opt, "default"), "pairs");
    opt = json_array_get(json_object_get(json_array_get(losses, 4), "options"),
                         0);
    ck_assert_ptr_null(json_object_get(opt, "default"));

    limits = json_object_get(j, "limits");
    ck_assert_str_eq(keys_of(limits), "max_body_bytes,max_elements,max_rank,"
                                      "max_depth,max_work,max_batch_items");
    ck_assert_int_eq(int_member(limits, "max_body_bytes"), 67108864);
    ck_assert_int_eq(int_member(limits, "max_batch_items"), 256);
    /* numbers print shortest, as in responses */
    ck_assert_ptr_nonnull(strstr(b.data, "\"default\":0.1,"));
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

/* Every "$ref" in the document names a component that exists. */
static void check_refs(const json_t *root, const json_t *v, size_t *nrefs)
{
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_array(v)) {
        json_array_foreach(v, i, item) check_refs(root, item, nrefs);
        return;
    }
    if (!json_is_object(v))
        return;
    json_object_foreach((json_t *)v, key, item)
    {
        if (strcmp(key, "$ref") == 0) {
            const char *r = json_string_value(item);
            char section[32], name[128];
            const json_t *target;

            ck_assert_ptr_nonnull(r);
            ck_assert_msg(
                sscanf(r, "#/components/%31[^/]/%127s", section, name) == 2,
                "bad $ref %s", r);
            target = json_object_get(
                json_object_get(json_object_get(root, "components"), section),
                name);
            ck_assert_msg(target != NULL, "dangling $ref %s", r);
            ck_assert_uint_eq(json_object_size(v), 1);
            (*nrefs)++;
        } else {
            check_refs(root, item, nrefs);
        }
    }
}

START_TEST(test_openapi_structure)
{
    static const char *const fixed[] = {"/v1/batch",     "/v1/losses",
                                        "/openapi.json", "/healthz",
                                        "/readyz",       "/metrics"};
    static const char *const shared[] = {
        "Scalar",       "Shape",        "NestedArray",   "FlatTensor",
        "Base64Tensor", "Tensor",       "Warning",       "LossResponse",
        "BatchItem",    "BatchRequest", "BatchResponse", "Problem",
        "Limits",       "Catalog",      "Health"};
    struct proto_buf b;
    json_t *j = openapi_json(&b), *paths, *schemas, *op;
    size_t nrefs = 0;

    ck_assert_str_eq(str_member(j, "openapi"), "3.0.3");
    ck_assert_str_eq(str_member(json_object_get(j, "info"), "title"), "lossd");
    ck_assert_str_eq(str_member(json_object_get(j, "info"), "version"),
                     "1.2.3");
    paths = json_object_get(j, "paths");
    schemas = json_object_get(json_object_get(j, "components"), "schemas");
    ck_assert_uint_eq(json_object_size(paths), NLOSSES + 6);
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        ck_assert_msg(json_object_get(paths, fixed[i]) != NULL, "no %s",
                      fixed[i]);
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
        ck_assert_msg(json_object_get(schemas, shared[i]) != NULL,
                      "no schema %s", shared[i]);
    for (size_t i = 0; i < NLOSSES; i++) {
        char path[64];
        const char *ref;
        json_t *schema, *responses;

        snprintf(path, sizeof(path), "/v1/%s", test_losses[i].name);
        op = json_object_get(json_object_get(paths, path), "post");
        ck_assert_msg(op != NULL, "no POST %s", path);
        ck_assert_ptr_nonnull(strstr(str_member(op, "description"), "alias"));
        ref = str_member(
            json_object_get(
                json_object_get(
                    json_object_get(json_object_get(op, "requestBody"),
                                    "content"),
                    "application/json"),
                "schema"),
            "$ref");
        ck_assert(strncmp(ref, "#/components/schemas/", 21) == 0);
        schema = json_object_get(schemas, ref + 21);
        ck_assert_msg(schema != NULL, "%s", ref);
        ck_assert(
            json_is_false(json_object_get(schema, "additionalProperties")));
        ck_assert_uint_eq(
            json_object_size(json_object_get(schema, "properties")),
            test_losses[i].ntensors + test_losses[i].noptions +
                (test_losses[i].reductions != 0) + 3);
        responses = json_object_get(op, "responses");
        ck_assert_str_eq(keys_of(responses),
                         "200,400,404,405,413,415,422,500,503");
    }
    schemas = json_object_get(schemas, "CrossEntropyRequest");
    ck_assert_ptr_nonnull(schemas);
    ck_assert_str_eq(join_strings(json_object_get(schemas, "required")),
                     "input,target");
    ck_assert_str_eq(
        keys_of(json_object_get(schemas, "properties")),
        "input,target,weight,ignore_index,label_smoothing,reduction,grad,"
        "grad_output,output_format");
    json_decref(j);
    proto_buf_release(&b);

    j = openapi_json(&b);
    schemas = json_object_get(json_object_get(j, "components"), "schemas");
    {
        json_t *p = json_object_get(
            json_object_get(schemas, "CrossEntropyRequest"), "properties");
        json_t *grad_list = json_array_get(
            json_object_get(json_object_get(p, "grad"), "oneOf"), 1);

        ck_assert_str_eq(join_strings(json_object_get(
                             json_object_get(grad_list, "items"), "enum")),
                         "input,target");
        ck_assert_str_eq(join_strings(json_object_get(
                             json_object_get(p, "reduction"), "enum")),
                         "none,mean,sum");
        ck_assert_str_eq(str_member(json_object_get(p, "reduction"), "default"),
                         "mean");
        ck_assert_int_eq(
            int_member(json_object_get(p, "ignore_index"), "default"), -100);
        ck_assert(real_member(json_object_get(p, "label_smoothing"),
                              "maximum") == 1.0);
        ck_assert_str_eq(join_strings(json_object_get(
                             json_object_get(p, "output_format"), "enum")),
                         "nested,flat,base64");
        p = json_object_get(json_object_get(schemas, "HuberRequest"),
                            "properties");
        ck_assert(json_is_true(
            json_object_get(json_object_get(p, "delta"), "exclusiveMinimum")));
        p = json_object_get(json_object_get(schemas, "KlDivRequest"),
                            "properties");
        ck_assert_str_eq(join_strings(json_object_get(
                             json_object_get(p, "reduction"), "enum")),
                         "none,mean,sum,batchmean");
        p = json_object_get(json_object_get(schemas, "SoftmaxRequest"),
                            "properties");
        ck_assert_ptr_null(json_object_get(p, "reduction"));
        ck_assert_ptr_nonnull(json_object_get(p, "dim"));
        p = json_object_get(json_object_get(schemas, "InfoNceRequest"),
                            "properties");
        ck_assert_str_eq(join_strings(json_object_get(
                             json_object_get(p, "variant"), "enum")),
                         "pairs,symmetric,nt_xent");
    }
    op = json_object_get(
        json_object_get(json_object_get(j, "paths"), "/metrics"), "get");
    ck_assert_ptr_nonnull(json_object_get(
        json_object_get(
            json_object_get(json_object_get(op, "responses"), "200"),
            "content"),
        "text/plain"));
    op = json_object_get(
        json_object_get(json_object_get(j, "paths"), "/readyz"), "get");
    ck_assert_ptr_nonnull(
        json_object_get(json_object_get(op, "responses"), "503"));
    check_refs(j, j, &nrefs);
    ck_assert_uint_gt(nrefs, 50);
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

/* No losses at all still makes a valid document. */
START_TEST(test_openapi_and_catalog_empty)
{
    struct proto_buf b;
    json_t *j;
    size_t nrefs = 0;

    proto_buf_init(&b);
    proto_openapi_write(&b, NULL, 0, &test_limits, "0.0.0");
    j = parse(&b);
    ck_assert_uint_eq(json_object_size(json_object_get(j, "paths")), 6);
    check_refs(j, j, &nrefs);
    json_decref(j);
    proto_buf_reset(&b);
    proto_catalog_write(&b, NULL, 0, &test_limits);
    j = parse(&b);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "losses")), 0);
    json_decref(j);
    proto_buf_release(&b);
}
END_TEST

/*
 * Allocation failures inside jansson: the n-th allocation fails, for n
 * across the whole build. The buffer must either fail or hold the complete
 * document, never a truncated one; leaks show under the sanitize setup.
 * (proto_write_string() retries a failed string once, so a few failures
 * are recovered from and change nothing.)
 */
static size_t alloc_count, alloc_fail_at;

static void *failing_malloc(size_t n)
{
    if (++alloc_count == alloc_fail_at)
        return NULL;
    return malloc(n);
}

static void write_doc(struct proto_buf *b, int which)
{
    if (which == 0)
        proto_catalog_write(b, loss_table(), NLOSSES, &test_limits);
    else
        proto_openapi_write(b, loss_table(), NLOSSES, &test_limits, "1");
}

START_TEST(test_documents_alloc_failure)
{
    struct proto_buf full, b;
    size_t total, step;
    size_t failed = 0;

    proto_buf_init(&full);
    write_doc(&full, _i);
    ck_assert(proto_buf_ok(&full));
    json_set_alloc_funcs(failing_malloc, free);
    alloc_count = 0;
    alloc_fail_at = 0;
    proto_buf_init(&b);
    write_doc(&b, _i);
    proto_buf_release(&b);
    total = alloc_count;
    ck_assert_uint_gt(total, 10);
    step = total / 300 + 1;
    for (size_t n = 1; n <= total + 1; n += n < 40 ? 1 : step) {
        alloc_count = 0;
        alloc_fail_at = n;
        proto_buf_init(&b);
        write_doc(&b, _i);
        if (proto_buf_ok(&b)) {
            /* a failure that was recovered from (a retry) changes nothing */
            ck_assert_msg(strcmp(b.data, full.data) == 0,
                          "allocation %zu of %zu: a different document", n,
                          total);
        } else {
            failed++;
        }
        proto_buf_release(&b);
    }
    json_set_alloc_funcs(malloc, free);
    ck_assert_uint_gt(failed, 40);
    proto_buf_release(&full);
}
END_TEST

/*
 * LOSSD_DOCUMENT_DUMP_DIR=dir writes the test table's OpenAPI document,
 * catalog and sample responses and problems there, for the checks run with
 * Node tools outside this suite (OpenAPI validation, responses against the
 * schemas). Without it, nothing is written.
 */
static void dump(const char *dir, const char *name, struct proto_buf *b)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fwrite(b->data, 1, b->len, f);
    fclose(f);
}

START_TEST(test_dump_documents)
{
    const char *dir = getenv("LOSSD_DOCUMENT_DUMP_DIR");
    static const double v[4] = {0.5, NAN, -INFINITY, 2};
    struct proto_out_tensor grads[1];
    struct proto_warning w;
    struct proto_response r;
    struct proto_value id = make_id(4);
    struct loss_error err;
    struct proto_buf b;
    char name[64];

    if (dir == NULL || dir[0] == '\0')
        return;
    proto_buf_init(&b);
    proto_openapi_write(&b, loss_table(), NLOSSES, &test_limits, "1.2.3");
    dump(dir, "openapi.json", &b);
    proto_buf_reset(&b);
    proto_catalog_write(&b, loss_table(), NLOSSES, &test_limits);
    dump(dir, "catalog.json", &b);
    memset(&r, 0, sizeof(r));
    memset(&w, 0, sizeof(w));
    memset(grads, 0, sizeof(grads));
    r.loss = "mse";
    r.reduction = "none";
    r.value_is_tensor = true;
    r.value_tensor.ndim = 2;
    r.value_tensor.shape[0] = 2;
    r.value_tensor.shape[1] = 2;
    r.value_tensor.data = v;
    r.has_sum = true;
    r.sum = NAN;
    r.count = 4;
    grads[0].name = "input";
    grads[0].ndim = 1;
    grads[0].shape[0] = 4;
    grads[0].data = v;
    r.grads = grads;
    r.ngrads = 1;
    w.code = "broadcast-target";
    snprintf(w.message, sizeof(w.message), "broadcast");
    snprintf(w.pointer, sizeof(w.pointer), "/target");
    r.warnings = &w;
    r.nwarnings = 1;
    for (int f = 0; f < 3; f++) {
        r.format = (enum proto_format)f;
        proto_buf_reset(&b);
        proto_response_write(&b, &r);
        snprintf(name, sizeof(name), "response-%d.json", f);
        dump(dir, name, &b);
    }
    r.id = &id;
    r.status = 200;
    r.value_is_tensor = false;
    r.value = 1.5;
    r.reduction = "mean";
    proto_buf_reset(&b);
    proto_buf_puts(&b, "{\"results\":[");
    proto_response_write(&b, &r);
    proto_buf_puts(&b, ",");
    loss_error_init(&err);
    loss_fail(&err, LOSS_ESHAPE, "/requests/1/target", "bad shape");
    proto_problem_write(&b, &err, NULL, &id);
    proto_buf_puts(&b, "]}");
    dump(dir, "batch.json", &b);
    for (int s = 1; s < LOSS_STATUS_COUNT; s++) {
        loss_fail(&err, (enum loss_status)s, "/x", "detail");
        proto_buf_reset(&b);
        proto_problem_write(&b, &err, "req-1", NULL);
        snprintf(name, sizeof(name), "problem-%d.json", s);
        dump(dir, name, &b);
    }
    proto_buf_release(&b);
}
END_TEST

static Suite *document_suite(void)
{
    Suite *s = suite_create("proto_document");
    TCase *prob = tcase_create("problem");
    TCase *resp = tcase_create("response");
    TCase *cat = tcase_create("catalog");

    tcase_add_test(prob, test_status_table_every_status);
    tcase_add_test(prob, test_problem_every_status);
    tcase_add_test(prob, test_problem_offset_and_root_pointer);
    tcase_add_test(prob, test_problem_without_status_is_internal);
    tcase_add_test(prob, test_problem_detail_escaped_and_cut);
    tcase_add_loop_test(prob, test_problem_batch_id, 0,
                        (int)(sizeof(id_texts) / sizeof(id_texts[0])));
    tcase_add_test(resp, test_response_scalar);
    tcase_add_test(resp, test_response_nan_value);
    tcase_add_test(resp, test_response_tensor_grads_warnings);
    tcase_add_test(resp, test_response_softmax_and_0d);
    tcase_add_test(resp, test_response_batch_item);
    tcase_add_test(cat, test_catalog_structure);
    tcase_add_test(cat, test_openapi_structure);
    tcase_add_test(cat, test_openapi_and_catalog_empty);
    tcase_add_loop_test(cat, test_documents_alloc_failure, 0, 2);
    tcase_add_test(cat, test_dump_documents);
    suite_add_tcase(s, prob);
    suite_add_tcase(s, resp);
    suite_add_tcase(s, cat);
    return s;
}

int main(void)
{
    return test_run(document_suite());
}

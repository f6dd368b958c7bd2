/*
 * test_document.c - proto/problem.c, response.c, catalog.c, openapi.c.
 * Every document is parsed back with jansson and checked member by member;
 * the status table is walked for every enum value. The catalog and the
 * OpenAPI document are built from a small made-up table of losses below,
 * not from the handlers' registry, so this layer is tested alone; every
 * document written is also validated against the schema the OpenAPI
 * document gives it.
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
        {LOSS_EAUTH, 401, "/problems/unauthorized"},
        {LOSS_EREQUEST, 400, "/problems/bad-request"},
        {LOSS_ENOTIMPL, 501, "/problems/not-implemented"},
        {LOSS_ETIMEOUT, 408, "/problems/timeout"},
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
    static const char *const fixed[] = {"/v1/batch",
                                        "/v1/losses",
                                        "/openapi.json",
                                        "/healthz",
                                        "/readyz",
                                        "/metrics",
                                        "/v2",
                                        "/v2/health/live",
                                        "/v2/health/ready",
                                        "/v2/models",
                                        "/v2/models/{model_name}/infer"};
    static const char *const shared[] = {
        "Scalar",          "Shape",        "NestedArray",   "FlatTensor",
        "Base64Tensor",    "Tensor",       "Warning",       "LossResponse",
        "BatchItem",       "BatchRequest", "BatchResponse", "Problem",
        "Limits",          "Catalog",      "Health",        "OipServer",
        "OipReady",        "OipModels",    "OipModel",      "OipInferRequest",
        "OipInferResponse"};
    struct proto_buf b;
    json_t *j = openapi_json(&b), *paths, *schemas, *op;
    size_t nrefs = 0;

    ck_assert_str_eq(str_member(j, "openapi"), "3.0.3");
    ck_assert_str_eq(str_member(json_object_get(j, "info"), "title"), "lossd");
    ck_assert_str_eq(str_member(json_object_get(j, "info"), "version"),
                     "1.2.3");
    paths = json_object_get(j, "paths");
    schemas = json_object_get(json_object_get(j, "components"), "schemas");
    /* the /v1 routes, and the Open Inference Protocol's ten */
    ck_assert_uint_eq(json_object_size(paths), NLOSSES + 6 + 10);
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
                         "200,400,401,404,405,408,413,415,422,500,501,503");
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
    /* and /v2, its health and its models, but no model's routes */
    ck_assert_uint_eq(json_object_size(json_object_get(j, "paths")), 10);
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

/* --- the documents against the OpenAPI document's schemas -------------- */

/*
 * A validator for the part of JSON Schema that openapi.c writes (OpenAPI
 * 3.0): local $ref, allOf, oneOf, anyOf, type (integer: a number without a
 * fraction, as JSON Schema reads it), enum, required, properties,
 * additionalProperties (false or a schema), items, minItems, maxItems,
 * minimum and maximum with 3.0's boolean exclusiveMinimum and
 * exclusiveMaximum, and format "byte" (padded standard base64). The
 * annotations description, example, default and title say nothing about
 * validity; meeting any other keyword fails the test, so a rule the
 * document gains is never skipped here.
 */
struct check {
    const json_t *doc; /* the OpenAPI document, for $ref */
    int quiet;         /* inside oneOf/anyOf: a failure is not the reason */
    char why[512];     /* the first reason a value was refused */
};

static bool refuse(struct check *c, const char *at, const char *what)
{
    if (c->quiet == 0 && c->why[0] == '\0')
        snprintf(c->why, sizeof(c->why), "%.300s: %.150s", at[0] ? at : "/",
                 what);
    return false;
}

static bool has_type(const json_t *v, const char *type)
{
    if (strcmp(type, "object") == 0)
        return json_is_object(v);
    if (strcmp(type, "array") == 0)
        return json_is_array(v);
    if (strcmp(type, "string") == 0)
        return json_is_string(v);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    if (strcmp(type, "integer") == 0)
        return json_is_integer(v) ||
               (json_is_real(v) && isfinite(json_real_value(v)) &&
                json_real_value(v) == floor(json_real_value(v)));
    ck_abort_msg("a schema with type \"%s\"", type);
    return false;
}

/* Padded standard base64 (RFC 4648 section 4), checked here on its own. */
static bool is_base64(const char *s)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), pad = 0;

    if (n % 4 != 0)
        return false;
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (strchr(alphabet, s[i]) == NULL)
            return false;
    return true;
}

static const json_t *resolve(const struct check *c, const char *ref)
{
    char section[32], name[128];
    const json_t *target;

    ck_assert_msg(sscanf(ref, "#/components/%31[^/]/%127s", section, name) == 2,
                  "bad $ref %s", ref);
    target = json_object_get(
        json_object_get(json_object_get(c->doc, "components"), section), name);
    ck_assert_msg(target != NULL, "dangling $ref %s", ref);
    return target;
}

static bool conforms(struct check *c, const json_t *schema, const json_t *v,
                     const char *at);

/* How many of the schemas in array list v conforms to. */
static size_t matches(struct check *c, const json_t *list, const json_t *v,
                      const char *at)
{
    size_t n = 0, i;
    json_t *s;

    ck_assert(json_is_array(list));
    c->quiet++;
    json_array_foreach(list, i, s) n += conforms(c, s, v, at);
    c->quiet--;
    return n;
}

static bool conforms_object(struct check *c, const json_t *schema,
                            const json_t *v, const char *at)
{
    const json_t *props = json_object_get(schema, "properties");
    const json_t *extra = json_object_get(schema, "additionalProperties");
    const json_t *required = json_object_get(schema, "required");
    const char *key;
    json_t *item;
    size_t i;
    char sub[512];

    if (!json_is_object(v))
        return true; /* these keywords constrain objects only */
    json_array_foreach(required, i, item)
    {
        if (json_object_get(v, json_string_value(item)) == NULL) {
            snprintf(sub, sizeof(sub), "no member \"%s\"",
                     json_string_value(item));
            return refuse(c, at, sub);
        }
    }
    json_object_foreach((json_t *)v, key, item)
    {
        const json_t *ps = json_object_get(props, key);

        snprintf(sub, sizeof(sub), "%s/%s", at, key);
        if (ps == NULL && json_is_false(extra))
            return refuse(c, sub, "a member the schema does not allow");
        if (ps == NULL && json_is_object(extra))
            ps = extra;
        if (ps != NULL && !conforms(c, ps, item, sub))
            return false;
    }
    return true;
}

static bool conforms(struct check *c, const json_t *schema, const json_t *v,
                     const char *at)
{
    bool object_done = false;
    const char *key;
    json_t *kw;

    ck_assert(json_is_object(schema));
    json_object_foreach((json_t *)schema, key, kw)
    {
        char sub[512];

        if (strcmp(key, "$ref") == 0) {
            if (!conforms(c, resolve(c, json_string_value(kw)), v, at))
                return false;
        } else if (strcmp(key, "allOf") == 0) {
            size_t i;
            json_t *one;

            json_array_foreach(kw, i, one)
            {
                if (!conforms(c, one, v, at))
                    return false;
            }
        } else if (strcmp(key, "anyOf") == 0) {
            if (matches(c, kw, v, at) == 0)
                return refuse(c, at, "no schema of anyOf");
        } else if (strcmp(key, "oneOf") == 0) {
            if (matches(c, kw, v, at) != 1)
                return refuse(c, at, "not exactly one schema of oneOf");
        } else if (strcmp(key, "type") == 0) {
            if (!has_type(v, json_string_value(kw))) {
                snprintf(sub, sizeof(sub), "not of type %s",
                         json_string_value(kw));
                return refuse(c, at, sub);
            }
        } else if (strcmp(key, "enum") == 0) {
            size_t i, found = 0;
            json_t *e;

            json_array_foreach(kw, i, e)
            {
                if (json_equal(e, v))
                    found++;
            }
            if (found == 0)
                return refuse(c, at, "not one of the enum");
        } else if (strcmp(key, "properties") == 0 ||
                   strcmp(key, "required") == 0 ||
                   strcmp(key, "additionalProperties") == 0) {
            /* the three together, once */
            if (!object_done && !conforms_object(c, schema, v, at))
                return false;
            object_done = true;
        } else if (strcmp(key, "items") == 0) {
            size_t i;
            json_t *item;

            json_array_foreach(v, i, item)
            {
                snprintf(sub, sizeof(sub), "%s/%zu", at, i);
                if (!conforms(c, kw, item, sub))
                    return false;
            }
        } else if (strcmp(key, "minItems") == 0) {
            if (json_is_array(v) &&
                json_array_size(v) < (size_t)json_integer_value(kw))
                return refuse(c, at, "fewer items than minItems");
        } else if (strcmp(key, "maxItems") == 0) {
            if (json_is_array(v) &&
                json_array_size(v) > (size_t)json_integer_value(kw))
                return refuse(c, at, "more items than maxItems");
        } else if (strcmp(key, "minimum") == 0) {
            bool excl =
                json_is_true(json_object_get(schema, "exclusiveMinimum"));

            if (json_is_number(v) &&
                (excl ? json_number_value(v) <= json_number_value(kw)
                      : json_number_value(v) < json_number_value(kw)))
                return refuse(c, at, "below the minimum");
        } else if (strcmp(key, "maximum") == 0) {
            bool excl =
                json_is_true(json_object_get(schema, "exclusiveMaximum"));

            if (json_is_number(v) &&
                (excl ? json_number_value(v) >= json_number_value(kw)
                      : json_number_value(v) > json_number_value(kw)))
                return refuse(c, at, "above the maximum");
        } else if (strcmp(key, "format") == 0) {
            ck_assert_str_eq(json_string_value(kw), "byte");
            if (json_is_string(v) && !is_base64(json_string_value(v)))
                return refuse(c, at, "not padded standard base64");
        } else if (strcmp(key, "exclusiveMinimum") != 0 &&
                   strcmp(key, "exclusiveMaximum") != 0 &&
                   strcmp(key, "description") != 0 &&
                   strcmp(key, "example") != 0 && strcmp(key, "default") != 0 &&
                   strcmp(key, "title") != 0) {
            ck_abort_msg("a schema keyword the validator does not know: %s",
                         key);
        }
    }
    return true;
}

/* Whether v conforms to components/schemas/name of the OpenAPI document
   doc; the reason goes to why when it does not. */
static bool conforms_to(const json_t *doc, const char *name, const json_t *v,
                        char *why, size_t why_size)
{
    struct check c = {.doc = doc};
    const json_t *schema = json_object_get(
        json_object_get(json_object_get(doc, "components"), "schemas"), name);
    bool ok;

    ck_assert_msg(schema != NULL, "no schema %s", name);
    ok = conforms(&c, schema, v, "");
    snprintf(why, why_size, "%s", c.why);
    return ok;
}

/*
 * With LOSSD_DOCUMENT_DUMP_DIR=dir the documents below are also written
 * there (openapi.json, catalog.json, response-<format>.json, batch.json,
 * problem-<status>.json), to look at or to check with other tools.
 */
static void dump(const char *name, struct proto_buf *b)
{
    const char *dir = getenv("LOSSD_DOCUMENT_DUMP_DIR");
    char path[4096];
    FILE *f;

    if (dir == NULL || dir[0] == '\0')
        return;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fwrite(b->data, 1, b->len, f);
    fclose(f);
}

/* The sample documents, each with the schema it must conform to. */
struct sample {
    char name[64];
    const char *schema;
    json_t *json;
};

#define NSAMPLES (2 + 3 + 1 + (size_t)LOSS_STATUS_COUNT)

/* b holds a document: keeps it as samples[*n] (and dumps it). */
static void add_sample(struct sample *samples, size_t *n, const char *name,
                       const char *schema, struct proto_buf *b)
{
    ck_assert_uint_lt(*n, NSAMPLES);
    snprintf(samples[*n].name, sizeof(samples[*n].name), "%s", name);
    samples[*n].schema = schema;
    samples[*n].json = parse(b);
    dump(name, b);
    (*n)++;
}

/*
 * The OpenAPI document of the test table (a null schema: it is the
 * document), the catalog, a 'none' response with a gradient and a warning in
 * each output format, a batch of a response and a problem, and the problem
 * of every status. Returns how many; the OpenAPI document is samples[0].
 */
static size_t make_samples(struct sample *samples)
{
    static const double v[4] = {0.5, NAN, -INFINITY, 2};
    struct proto_out_tensor grads[1];
    struct proto_warning w;
    struct proto_response r;
    struct proto_value id = make_id(4);
    struct loss_error err;
    struct proto_buf b;
    char name[64];
    size_t n = 0;

    proto_buf_init(&b);
    proto_openapi_write(&b, loss_table(), NLOSSES, &test_limits, "1.2.3");
    add_sample(samples, &n, "openapi.json", NULL, &b);
    proto_buf_reset(&b);
    proto_catalog_write(&b, loss_table(), NLOSSES, &test_limits);
    add_sample(samples, &n, "catalog.json", "Catalog", &b);
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
        add_sample(samples, &n, name, "LossResponse", &b);
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
    add_sample(samples, &n, "batch.json", "BatchResponse", &b);
    for (int s = 1; s < LOSS_STATUS_COUNT; s++) {
        loss_fail(&err, (enum loss_status)s, "/x", "detail");
        proto_buf_reset(&b);
        proto_problem_write(&b, &err, "req-1", NULL);
        snprintf(name, sizeof(name), "problem-%d.json", s);
        add_sample(samples, &n, name, "Problem", &b);
    }
    proto_buf_release(&b);
    return n;
}

static void free_samples(struct sample *samples, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(samples[i].json);
}

/*
 * Every document lossd writes conforms to the schema the OpenAPI document
 * gives it: the same check the server's conformance test makes on live
 * responses, here on this layer alone and without Node.
 */
START_TEST(test_documents_match_schemas)
{
    struct sample samples[NSAMPLES];
    size_t n = make_samples(samples);
    char why[512];

    ck_assert_uint_eq(n, NSAMPLES - 1); /* LOSS_OK has no problem */
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(conforms_to(samples[0].json, samples[i].schema,
                                  samples[i].json, why, sizeof(why)),
                      "%s is not a %s: %s", samples[i].name, samples[i].schema,
                      why);
    free_samples(samples, n);
}
END_TEST

/* The value at path in root ("a/0/b": keys and indices); must exist. */
static json_t *at_path(json_t *root, const char *path)
{
    char copy[256], *save = NULL;
    json_t *v = root;

    snprintf(copy, sizeof(copy), "%s", path);
    for (char *t = strtok_r(copy, "/", &save); t != NULL;
         t = strtok_r(NULL, "/", &save))
        v = json_is_array(v) ? json_array_get(v, strtoul(t, NULL, 10))
                             : json_object_get(v, t);
    ck_assert_msg(v != NULL, "no %s", path);
    return v;
}

/*
 * The validator is not vacuous: each of these changes to a sample that
 * conforms makes it refused, for the stated reason.
 */
START_TEST(test_schema_check_refuses)
{
    static const struct {
        size_t sample; /* index into make_samples() */
        const char *parent, *member;
        const char *json; /* the new value; NULL deletes the member */
        const char *why;  /* in the reason */
    } cases[] = {
        {2, "", "extra", "1", "does not allow"},
        {2, "", "warnings", NULL, "no member \"warnings\""},
        {2, "", "value", "true", "oneOf"},
        {2, "", "sum", "\"nan\"", "oneOf"},
        {2, "", "shape", "[2, -1]", "below the minimum"},
        {2, "warnings/0", "severity", "\"high\"", "does not allow"},
        {2, "grad", "input", "{\"shape\": [4]}", "oneOf"},
        {3, "value", "data", "[0.5, null]", "oneOf"},
        {4, "value", "base64", "\"AAAA!AAA\"", "oneOf"},
        {4, "value", "dtype", "\"float16\"", "oneOf"},
        {4, "grad/input", "shape", "[1,2,3,4,5,6,7,8,9]", "oneOf"},
        {5, "results/0", "status", "201", "anyOf"},
        {5, "results/1", "detail", NULL, "anyOf"},
        {6, "", "status", "200", "below the minimum"},
        {6, "", "status", "400.5", "not of type integer"},
        {6, "", "type", "\"/problems/nope\"", "not one of the enum"},
        {1, "losses/0", "path", NULL, "no member \"path\""},
        {1, "limits", "max_rank", "-1", "below the minimum"},
        {1, "limits", "max_ranks", "8", "does not allow"},
    };
    struct sample samples[NSAMPLES];
    size_t n = make_samples(samples);
    char why[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *copy = json_deep_copy(samples[cases[i].sample].json);
        json_t *parent =
            cases[i].parent[0] ? at_path(copy, cases[i].parent) : copy;

        ck_assert_uint_lt(cases[i].sample, n);
        ck_assert(conforms_to(samples[0].json, samples[cases[i].sample].schema,
                              copy, why, sizeof(why)));
        if (cases[i].json == NULL) {
            ck_assert_int_eq(json_object_del(parent, cases[i].member), 0);
        } else {
            json_t *nv = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);

            ck_assert_ptr_nonnull(nv);
            ck_assert_int_eq(json_object_set_new(parent, cases[i].member, nv),
                             0);
        }
        ck_assert_msg(!conforms_to(samples[0].json,
                                   samples[cases[i].sample].schema, copy, why,
                                   sizeof(why)),
                      "case %zu accepted", i);
        ck_assert_msg(strstr(why, cases[i].why) != NULL,
                      "case %zu refused for \"%s\", not \"%s\"", i, why,
                      cases[i].why);
        json_decref(copy);
    }
    free_samples(samples, n);
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
    tcase_add_test(cat, test_documents_match_schemas);
    tcase_add_test(cat, test_schema_check_refuses);
    suite_add_tcase(s, prob);
    suite_add_tcase(s, resp);
    suite_add_tcase(s, cat);
    return s;
}

int main(void)
{
    return test_run(document_suite());
}

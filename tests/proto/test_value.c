/*
 * test_value.c - proto/value.c: reading a decoded document's values
 * (lookups, type names, tensor views and lists). The document comes from
 * the decoder; what is tested is only what value.c makes of it.
 */
#include <check.h>
#include <math.h>
#include <string.h>

#include "decode.h"
#include "testutil.h"
#include "value.h"

static const struct proto_limits big_limits = {
    .max_elements = (size_t)1 << 40,
    .max_rank = 8,
    .max_depth = 64,
};

START_TEST(test_value_helpers)
{
    const char *body = "{\"n\":2,\"x\":\"NaN\",\"s\":\"abc\",\"z\":null,"
                       "\"t\":[[1,2]],\"e\":[],\"l\":[\"a\",\"b\"],"
                       "\"b\":true,\"o\":{}}";
    struct proto_doc *doc = NULL;
    struct loss_error err;
    const struct proto_value *root;
    struct proto_tensor pt;
    double scalar;
    size_t len = 99;

    ck_assert_int_eq(proto_decode(body, strlen(body), &big_limits, &doc, &err),
                     LOSS_OK);
    root = proto_doc_root(doc);
    ck_assert_ptr_null(proto_object_get(root, "missing"));
    ck_assert_ptr_null(proto_object_get(proto_object_get(root, "n"), "n"));
    ck_assert_str_eq(proto_type_name(PROTO_TENSOR), "tensor");
    ck_assert_str_eq(proto_type_name(PROTO_OBJECT), "object");
    ck_assert_str_eq(proto_type_name(PROTO_BOOL), "boolean");

    ck_assert_int_eq(proto_value_as_tensor(proto_object_get(root, "n"), &pt,
                                           &scalar, "/n", &err),
                     LOSS_OK);
    ck_assert_uint_eq(pt.t.ndim, 0);
    ck_assert_ptr_eq(pt.t.data, &scalar);
    ck_assert_double_eq(scalar, 2);
    ck_assert(pt.integral);
    ck_assert_int_eq(proto_value_as_tensor(proto_object_get(root, "x"), &pt,
                                           &scalar, "/x", &err),
                     LOSS_OK);
    ck_assert(isnan(scalar) && !pt.integral);
    ck_assert_int_eq(proto_value_as_tensor(proto_object_get(root, "t"), &pt,
                                           &scalar, "/t", &err),
                     LOSS_OK);
    ck_assert_uint_eq(pt.t.ndim, 2);
    ck_assert_int_eq(proto_value_as_tensor(proto_object_get(root, "s"), &pt,
                                           &scalar, "/s", &err),
                     LOSS_ETENSOR);
    ck_assert_str_eq(err.pointer, "/s");
    ck_assert_int_eq(proto_value_as_tensor(proto_object_get(root, "z"), &pt,
                                           &scalar, "/z", &err),
                     LOSS_EVALUE);
    ck_assert_int_eq(proto_value_as_tensor(proto_object_get(root, "b"), &pt,
                                           &scalar, "/b", &err),
                     LOSS_ETENSOR);
    ck_assert_int_eq(proto_value_as_tensor(proto_object_get(root, "l"), &pt,
                                           &scalar, "/l", &err),
                     LOSS_ETENSOR);

    ck_assert(proto_value_is_list(proto_object_get(root, "e"), &len));
    ck_assert_uint_eq(len, 0);
    ck_assert(proto_value_is_list(proto_object_get(root, "l"), &len));
    ck_assert_uint_eq(len, 2);
    ck_assert(!proto_value_is_list(proto_object_get(root, "t"), &len));
    ck_assert(!proto_value_is_list(proto_object_get(root, "o"), &len));
    ck_assert_uint_eq(proto_doc_elements(doc), 2);
    proto_doc_free(doc);
    proto_doc_free(NULL);
    proto_decoder_free(NULL);
}
END_TEST

static Suite *value_suite(void)
{
    Suite *s = suite_create("proto_value");
    TCase *tc = tcase_create("value");

    tcase_add_test(tc, test_value_helpers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(value_suite());
}

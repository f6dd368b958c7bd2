/*
 * value.c - reading a decoded body: lookups and views of proto_value.
 *
 * The document the values live in (its arena, proto_doc_*) is doc.c's;
 * this file only reads values.
 */
#include "value.h"

#include <string.h>

const struct proto_value *proto_object_get(const struct proto_value *obj,
                                           const char *key)
{
    size_t n;

    if (obj == NULL || obj->type != PROTO_OBJECT)
        return NULL;
    n = strlen(key);
    for (size_t i = 0; i < obj->u.object.len; i++) {
        const struct proto_member *m = &obj->u.object.members[i];

        if (m->key_len == n && memcmp(m->key, key, n) == 0)
            return &m->value;
    }
    return NULL;
}

const char *proto_type_name(enum proto_type t)
{
    static const char *const names[] = {
        [PROTO_NULL] = "null",     [PROTO_BOOL] = "boolean",
        [PROTO_NUMBER] = "number", [PROTO_STRING] = "string",
        [PROTO_TENSOR] = "tensor", [PROTO_ARRAY] = "array",
        [PROTO_OBJECT] = "object", [PROTO_INVALID] = "invalid",
    };

    if ((unsigned)t >= sizeof(names) / sizeof(names[0]))
        return "unknown";
    return names[t];
}

bool proto_nonfinite(const char *s, size_t n, double *ret)
{
    if (n == 3 && memcmp(s, "NaN", 3) == 0)
        *ret = __builtin_nan("");
    else if (n == 8 && memcmp(s, "Infinity", 8) == 0)
        *ret = __builtin_inf();
    else if (n == 9 && memcmp(s, "-Infinity", 9) == 0)
        *ret = -__builtin_inf();
    else
        return false;
    return true;
}

static void scalar_view(struct proto_tensor *ret, double *scalar, double x)
{
    *scalar = x;
    memset(ret, 0, sizeof(*ret));
    ret->t.ndim = 0;
    ret->t.data = scalar;
    /* |x| < 2^52 converts to long long exactly; above, doubles are integral */
    ret->integral = (x > -0x1p52 && x < 0x1p52)
                        ? x == (double)(long long)x
                        : (x >= -1.79769313486231570815e308 &&
                           x <= 1.79769313486231570815e308);
    ret->encoding = PROTO_ENC_NESTED;
}

enum loss_status proto_value_as_tensor(const struct proto_value *v,
                                       struct proto_tensor *ret, double *scalar,
                                       const char *pointer,
                                       struct loss_error *err)
{
    double x;

    switch (v->type) {
    case PROTO_TENSOR:
        *ret = *v->u.tensor;
        return LOSS_OK;
    case PROTO_NUMBER:
        scalar_view(ret, scalar, v->u.number);
        return LOSS_OK;
    case PROTO_STRING:
        if (proto_nonfinite(v->u.string.ptr, v->u.string.len, &x)) {
            scalar_view(ret, scalar, x);
            return LOSS_OK;
        }
        return loss_fail(err, LOSS_ETENSOR, pointer,
                         "expected a tensor, found a string (non-finite "
                         "values are \"NaN\", \"Infinity\", \"-Infinity\")");
    case PROTO_NULL:
        return loss_fail(err, LOSS_EVALUE, pointer,
                         "expected a tensor, found null");
    case PROTO_INVALID:
        return proto_value_error(v, pointer, err);
    default:
        return loss_fail(
            err, LOSS_ETENSOR, pointer, "expected a tensor, found %s",
            v->type == PROTO_ARRAY    ? "an array that is not all numbers"
            : v->type == PROTO_OBJECT ? "an object without \"shape\""
                                      : "a boolean");
    }
}

enum loss_status proto_value_error(const struct proto_value *v,
                                   const char *pointer, struct loss_error *err)
{
    const struct loss_error *e;

    if (v->type != PROTO_INVALID)
        return loss_fail(err, LOSS_EINTERNAL, pointer,
                         "proto_value_error() on a valid %s",
                         proto_type_name(v->type));
    e = v->u.invalid.error;
    if (e != NULL) {
        if (err != NULL)
            *err = *e;
        return e->status;
    }
    return loss_fail(err, v->u.invalid.status, pointer,
                     "this value is invalid (%s); the body has too many "
                     "invalid values for each to be described",
                     loss_status_name(v->u.invalid.status));
}

const struct proto_value *proto_value_find_invalid(const struct proto_value *v)
{
    const struct proto_value *found = NULL;

    switch (v->type) {
    case PROTO_INVALID:
        return v;
    case PROTO_ARRAY:
        for (size_t i = 0; i < v->u.array.len && found == NULL; i++)
            found = proto_value_find_invalid(&v->u.array.items[i]);
        return found;
    case PROTO_OBJECT:
        for (size_t i = 0; i < v->u.object.len && found == NULL; i++)
            found = proto_value_find_invalid(&v->u.object.members[i].value);
        return found;
    default:
        return NULL;
    }
}

bool proto_value_is_list(const struct proto_value *v, size_t *ret_len)
{
    size_t n;

    if (v->type == PROTO_ARRAY) {
        n = v->u.array.len;
    } else if (v->type == PROTO_TENSOR &&
               v->u.tensor->encoding == PROTO_ENC_NESTED &&
               v->u.tensor->t.ndim == 1 && v->u.tensor->t.shape[0] == 0) {
        n = 0; /* [] decodes as a tensor of shape [0] */
    } else {
        return false;
    }
    if (ret_len != NULL)
        *ret_len = n;
    return true;
}

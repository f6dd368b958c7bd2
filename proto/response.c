/*
 * response.c - loss responses of document.h, and a decoded value written
 * back as JSON (a batch item's id).
 */
#include "document.h"

#include <string.h>

/* An id's tensor, echoed in the encoding it came in, numbers plain. */
static void write_value_tensor(struct proto_buf *b,
                               const struct proto_tensor *pt)
{
    static const enum proto_format formats[] = {
        [PROTO_ENC_NESTED] = PROTO_FORMAT_NESTED,
        [PROTO_ENC_FLAT] = PROTO_FORMAT_FLAT,
        [PROTO_ENC_BASE64] = PROTO_FORMAT_BASE64,
    };
    const struct tensor *t = &pt->t;

    if ((size_t)pt->encoding >= sizeof(formats) / sizeof(formats[0])) {
        b->failed = true;
        return;
    }
    proto_write_tensor_plain(b, t->shape, t->ndim, t->data,
                             formats[pt->encoding]);
}

void proto_write_value(struct proto_buf *b, const struct proto_value *v)
{
    switch (v->type) {
    case PROTO_NULL:
    case PROTO_INVALID: /* never written back by the handlers; stays JSON */
        proto_buf_puts(b, "null");
        return;
    case PROTO_BOOL:
        proto_buf_puts(b, v->u.boolean ? "true" : "false");
        return;
    case PROTO_NUMBER:
        proto_write_plain_number(b, v->u.number);
        return;
    case PROTO_STRING:
        proto_write_string(b, v->u.string.ptr, v->u.string.len);
        return;
    case PROTO_TENSOR:
        write_value_tensor(b, v->u.tensor);
        return;
    case PROTO_ARRAY:
        proto_buf_append(b, "[", 1);
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i > 0)
                proto_buf_append(b, ",", 1);
            proto_write_value(b, &v->u.array.items[i]);
        }
        proto_buf_append(b, "]", 1);
        return;
    case PROTO_OBJECT:
        proto_buf_append(b, "{", 1);
        for (size_t i = 0; i < v->u.object.len; i++) {
            const struct proto_member *m = &v->u.object.members[i];

            if (i > 0)
                proto_buf_append(b, ",", 1);
            proto_write_string(b, m->key, m->key_len);
            proto_buf_append(b, ":", 1);
            proto_write_value(b, &m->value);
        }
        proto_buf_append(b, "}", 1);
        return;
    }
    b->failed = true;
}

static void write_warning(struct proto_buf *b, const struct proto_warning *w)
{
    proto_buf_puts(b, "{\"code\":");
    proto_write_string(b, w->code, strlen(w->code));
    proto_buf_puts(b, ",\"message\":");
    proto_write_string(b, w->message, strnlen(w->message, sizeof(w->message)));
    if (w->pointer[0] != '\0') {
        proto_buf_puts(b, ",\"pointer\":");
        proto_write_string(b, w->pointer,
                           strnlen(w->pointer, sizeof(w->pointer)));
    }
    proto_buf_puts(b, "}");
}

void proto_response_write(struct proto_buf *b, const struct proto_response *r)
{
    /* The members of a batch item come first: id, then status. */
    proto_buf_puts(b, "{");
    if (r->id != NULL) {
        proto_buf_puts(b, "\"id\":");
        proto_write_value(b, r->id);
        proto_buf_puts(b, ",");
    }
    if (r->status != 0)
        proto_buf_printf(b, "\"status\":%d,", r->status);
    proto_buf_puts(b, "\"loss\":");
    proto_write_string(b, r->loss, strlen(r->loss));
    if (r->reduction != NULL) {
        proto_buf_puts(b, ",\"reduction\":");
        proto_write_string(b, r->reduction, strlen(r->reduction));
    }
    proto_buf_puts(b, ",\"value\":");
    if (r->value_is_tensor) {
        const struct proto_out_tensor *t = &r->value_tensor;

        proto_write_tensor(b, t->shape, t->ndim, t->data, r->format);
        proto_buf_puts(b, ",\"shape\":");
        proto_write_shape(b, t->shape, t->ndim);
    } else {
        proto_write_double(b, r->value);
        proto_buf_puts(b, ",\"shape\":[]");
    }
    if (r->has_sum) {
        proto_buf_puts(b, ",\"sum\":");
        proto_write_double(b, r->sum);
        proto_buf_puts(b, ",\"count\":");
        proto_write_double(b, r->count);
    }
    if (r->ngrads > 0) {
        proto_buf_puts(b, ",\"grad\":{");
        for (size_t i = 0; i < r->ngrads; i++) {
            const struct proto_out_tensor *g = &r->grads[i];

            if (i > 0)
                proto_buf_puts(b, ",");
            proto_write_string(b, g->name, strlen(g->name));
            proto_buf_puts(b, ":");
            proto_write_tensor(b, g->shape, g->ndim, g->data, r->format);
        }
        proto_buf_puts(b, "}");
    }
    proto_buf_puts(b, ",\"warnings\":[");
    for (size_t i = 0; i < r->nwarnings; i++) {
        if (i > 0)
            proto_buf_puts(b, ",");
        write_warning(b, &r->warnings[i]);
    }
    proto_buf_puts(b, "]}");
}

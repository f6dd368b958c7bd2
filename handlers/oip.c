/*
 * oip.c - the Open Inference Protocol (KServe v2, REST) and its binary tensor
 * data extension, as one more caller of the request pipeline (handler.h).
 *
 * An infer request is turned into the body /v1/{loss} would have received:
 * the inference header is decoded by the pipeline's own decoder, then
 * oip_plan() checks it (names, datatypes, shapes, binary sizes, parameters,
 * outputs) and rewrites the document's root into a v1 object whose tensors
 * are the inputs' (JSON data decoded in place; binary data widened into
 * buffers the document owns, as the bytes arrive). job_prepare() and
 * call_prepare() then validate it exactly as they validate /v1/{loss}, and
 * call_run() hands the results to oip_response_write() instead of the v1
 * writer. docs/api.md, "Open Inference Protocol", is the mapping.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tensor_bytes.h"

/* Every output a request can name: value, sum, count, grad_<tensor>. */
#define OIP_MAX_OUTPUTS (3 + HANDLER_MAX_TENSORS)
/* The inputs a request can have: the loss's tensors and grad_output. */
#define OIP_MAX_INPUTS (HANDLER_MAX_TENSORS + 1)
/* The index of grad_output among the inputs. */
#define OIP_GRAD_OUTPUT HANDLER_MAX_TENSORS

enum oip_output_kind { OUT_VALUE, OUT_SUM, OUT_COUNT, OUT_GRAD };

struct oip_output {
    enum oip_output_kind kind;
    int tensor; /* OUT_GRAD: the tensor's index */
    bool binary;
    enum proto_dtype dt; /* FP64 or FP32 */
};

struct oip_binary {
    int input; /* tensor index, or OIP_GRAD_OUTPUT */
    enum proto_dtype dt;
    size_t numel;
    size_t bytes;
    struct proto_tensor *pt; /* in the document */
};

struct handler_oip {
    const struct handler_loss *loss;
    size_t header_len; /* HANDLER_OIP_WHOLE: the whole body */
    size_t body_len;   /* HANDLER_OIP_WHOLE: unknown */
    size_t header_fed;
    /* from oip_plan() */
    struct oip_binary bin[OIP_MAX_INPUTS]; /* in the order of the header */
    size_t nbin;
    size_t bin_bytes; /* their sum */
    size_t cur;       /* the binary input being fed */
    struct proto_widener w;
    size_t bin_fed;
    const struct proto_value *id; /* borrowed from the document */
    bool binary_all;              /* binary_data_output */
    struct oip_output outs[OIP_MAX_OUTPUTS];
    size_t nouts;
    bool outs_given;
    unsigned grad_wanted; /* tensors whose grad_ output was named */
    /* tensors given as integers or booleans: never differentiable, as
       PyTorch's integer tensors cannot require gradients */
    unsigned int_inputs;
    /* from the response */
    size_t resp_header_len; /* 0: JSON only */
    bool stream;            /* binary outputs are read, not written */
    /* the binary outputs, in order, read from these buffers by
       oip_tail_read(): the run's own arrays (kept[]) or scalars[] */
    struct {
        const double *data;
        size_t numel;
        enum proto_dtype dt;
    } seg[OIP_MAX_OUTPUTS];
    size_t nseg;
    size_t tail_bytes;
    double scalars[OIP_MAX_OUTPUTS];
    double *kept[1 + HANDLER_MAX_TENSORS]; /* owned: freed with o */
    size_t
        kept_len[1 + HANDLER_MAX_TENSORS]; /* their proto_big_alloc() sizes */
    size_t nkept;
    size_t kept_bytes;
};

/* ------------------------------------------------------------------------ */
/* Datatypes and metadata: one table                                        */

/*
 * The datatypes a tensor takes and the rank its metadata shows (all -1:
 * every dimension is variable; a tensor of another rank the loss accepts is
 * accepted too). A tensor absent from this table takes the float types and
 * shows rank 1. Class indices take integers; 0/1 targets take BOOL and UINT8.
 */
static const struct {
    const char *loss;
    const char *tensor;
    unsigned types;
    int rank;
} tensor_types[] = {
    {"cross_entropy", "input", PROTO_DT_FLOATS, 2},
    {"cross_entropy", "target", PROTO_DT_FLOATS | PROTO_DT_INTS, 1},
    {"nll", "input", PROTO_DT_FLOATS, 2},
    {"nll", "target", PROTO_DT_FLOATS | PROTO_DT_INTS, 1},
    {"binary_cross_entropy", "target", PROTO_DT_FLOATS | PROTO_DT_BINARY, 1},
    {"binary_cross_entropy_with_logits", "target",
     PROTO_DT_FLOATS | PROTO_DT_BINARY, 1},
    {"log_softmax", "input", PROTO_DT_FLOATS, 2},
    {"softmax", "input", PROTO_DT_FLOATS, 2},
    {"info_nce", "query", PROTO_DT_FLOATS, 2},
    {"info_nce", "positive_key", PROTO_DT_FLOATS, 2},
    {"info_nce", "negative_keys", PROTO_DT_FLOATS, 2},
};

/* The datatypes (PROTO_DT_BIT set) and metadata rank of tensor i of loss;
   i == OIP_GRAD_OUTPUT is grad_output. */
static unsigned input_types(const struct handler_loss *loss, int i, int *rank)
{
    const char *name;

    *rank = 1;
    if (i == OIP_GRAD_OUTPUT)
        return PROTO_DT_FLOATS;
    name = loss->desc.tensors[i].name;
    for (size_t k = 0; k < sizeof(tensor_types) / sizeof(*tensor_types); k++)
        if (strcmp(tensor_types[k].loss, loss->desc.name) == 0 &&
            strcmp(tensor_types[k].tensor, name) == 0) {
            *rank = tensor_types[k].rank;
            return tensor_types[k].types;
        }
    return PROTO_DT_FLOATS;
}

/* "FP64, FP32, FP16, BF16" for messages. */
static void list_types(unsigned types, char *buf, size_t cap)
{
    static const enum proto_dtype order[] = {
        PROTO_DT_FP64,  PROTO_DT_FP32,  PROTO_DT_FP16, PROTO_DT_BF16,
        PROTO_DT_INT64, PROTO_DT_INT32, PROTO_DT_BOOL, PROTO_DT_UINT8};
    size_t n = 0;

    buf[0] = '\0';
    for (size_t k = 0; k < sizeof(order) / sizeof(*order); k++)
        if ((types & PROTO_DT_BIT(order[k])) && n < cap)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "",
                                  proto_dtype_name(order[k]));
}

/* The datatypes a tensor takes, as a parameter: "FP64,FP32,FP16,BF16"
   (parameters are strings, numbers or booleans). */
static void write_types_param(struct proto_buf *b, unsigned types)
{
    char list[96], *w = list;

    list_types(types, list, sizeof(list));
    for (const char *r = list; *r; r++)
        if (*r != ' ')
            *w++ = *r;
    *w = '\0';
    proto_write_string(b, list, strlen(list));
}

static void write_shape_minus(struct proto_buf *b, int rank)
{
    proto_buf_puts(b, "[");
    for (int k = 0; k < rank; k++)
        proto_buf_puts(b, k ? ",-1" : "-1");
    proto_buf_puts(b, "]");
}

static void write_io(struct proto_buf *b, bool first, const char *name,
                     const char *dt, int rank, unsigned types, const char *what)
{
    proto_buf_puts(b, first ? "{\"name\":" : ",{\"name\":");
    proto_write_string(b, name, strlen(name));
    proto_buf_printf(b, ",\"datatype\":\"%s\",\"shape\":", dt);
    write_shape_minus(b, rank);
    if (types) {
        proto_buf_puts(b, ",\"parameters\":{\"datatypes\":");
        write_types_param(b, types);
        proto_buf_puts(b, ",\"description\":");
        proto_write_string(b, what, strlen(what));
        proto_buf_puts(b, "}");
    }
    proto_buf_puts(b, "}");
}

void handler_oip_model_write(struct proto_buf *b, const struct handler_loss *l)
{
    const struct proto_loss_desc *d = &l->desc;
    char name[64];
    int rank;
    unsigned types;

    proto_buf_puts(b, "{\"name\":");
    proto_write_string(b, d->name, strlen(d->name));
    proto_buf_puts(b, ",\"versions\":[\"" HANDLER_OIP_VERSION "\"],"
                      "\"platform\":\"lossd\",\"inputs\":[");
    for (size_t i = 0; i < d->ntensors; i++) {
        types = input_types(l, (int)i, &rank);
        write_io(b, i == 0, d->tensors[i].name, "FP64", rank, types,
                 d->tensors[i].description);
    }
    types = input_types(l, OIP_GRAD_OUTPUT, &rank);
    write_io(b, false, "grad_output", "FP64", d->reductions ? 0 : 2, types,
             "optional upstream gradient of value (with parameter grad); "
             "also the parameter grad_output for a scalar");
    proto_buf_puts(b, "],\"outputs\":[");
    write_io(b, true, "value", "FP64", d->reductions ? 0 : 2, 0, NULL);
    if (d->has_sum) {
        write_io(b, false, "sum", "FP64", 0, 0, NULL);
        write_io(b, false, "count", "FP64", 0, 0, NULL);
    }
    for (size_t i = 0; i < d->ntensors; i++) {
        if (!d->tensors[i].differentiable)
            continue;
        input_types(l, (int)i, &rank);
        snprintf(name, sizeof(name), "grad_%s", d->tensors[i].name);
        write_io(b, false, name, "FP64", rank, 0, NULL);
    }
    proto_buf_puts(b, "]}");
}

void handler_oip_models_write(struct proto_buf *b)
{
    size_t n = handler_count();

    proto_buf_puts(b, "{\"models\":[");
    for (size_t i = 0; i < n; i++) {
        const char *name = handler_at(i)->desc.name;

        proto_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        proto_write_string(b, name, strlen(name));
        proto_buf_puts(b, ",\"versions\":[\"" HANDLER_OIP_VERSION "\"],"
                          "\"platform\":\"lossd\",\"ready\":true}");
    }
    proto_buf_puts(b, "]}");
}

size_t handler_oip_body_max(const struct handler_limits *lim)
{
    size_t bin;

    if (__builtin_mul_overflow(lim->max_elements, sizeof(double), &bin) ||
        bin > SIZE_MAX - lim->max_body_bytes)
        return SIZE_MAX;
    return lim->max_body_bytes + bin;
}

/* ------------------------------------------------------------------------ */
/* The state                                                                */

struct handler_oip *oip_new(const struct handler_loss *loss, size_t header_len,
                            size_t body_len)
{
    struct handler_oip *o = calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    o->loss = loss;
    o->header_len = header_len;
    o->body_len = body_len;
    return o;
}

void oip_free(struct handler_oip *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->nkept; i++)
        proto_big_free(o->kept[i], o->kept_len[i]);
    free(o);
}

enum loss_status oip_check_framing(const struct handler_oip *o,
                                   const struct handler_limits *lim,
                                   struct loss_error *err)
{
    if (o->header_len == HANDLER_OIP_WHOLE)
        return LOSS_OK;
    if (o->header_len == 0)
        return loss_fail(err, LOSS_EREQUEST, NULL,
                         "Inference-Header-Content-Length is 0: the "
                         "inference header is never empty");
    if (o->body_len != HANDLER_OIP_WHOLE && o->header_len > o->body_len)
        return loss_fail(err, LOSS_EREQUEST, NULL,
                         "Inference-Header-Content-Length (%zu) exceeds the "
                         "body (%zu bytes)",
                         o->header_len, o->body_len);
    if (o->header_len > lim->max_body_bytes)
        return loss_fail(err, LOSS_ETOOLARGE, NULL,
                         "the inference header of %zu bytes exceeds "
                         "max_body_bytes (%zu)",
                         o->header_len, lim->max_body_bytes);
    return LOSS_OK;
}

size_t oip_header_room(const struct handler_oip *o)
{
    if (o->header_len == HANDLER_OIP_WHOLE)
        return SIZE_MAX;
    return o->header_len - o->header_fed;
}

void oip_header_fed(struct handler_oip *o, size_t n)
{
    if (o->header_len != HANDLER_OIP_WHOLE)
        o->header_fed += n;
}

/* ------------------------------------------------------------------------ */
/* The header                                                               */

/* A builder of the v1 body in the document's arena. */
struct v1_body {
    struct proto_doc *doc;
    struct proto_member *members;
    size_t len, cap;
};

static char *doc_strdup(struct proto_doc *doc, const char *s, size_t n)
{
    char *p = proto_doc_alloc(doc, n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static enum loss_status v1_add(struct v1_body *b, const char *key,
                               const struct proto_value *v,
                               struct loss_error *err)
{
    struct proto_member *m;

    if (b->len == b->cap)
        return loss_fail(err, LOSS_EINTERNAL, NULL, "too many v1 members");
    m = &b->members[b->len];
    m->key = doc_strdup(b->doc, key, strlen(key));
    if (m->key == NULL)
        return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
    m->key_len = strlen(key);
    m->value = *v;
    b->len++;
    return LOSS_OK;
}

static bool is_reserved(const char *key)
{
    static const char *const reserved[] = {
        "sequence_id", "sequence_start", "sequence_end",
        "priority",    "timeout",        "headers",
        NULL};

    for (const char *const *k = reserved; *k; k++)
        if (strcmp(*k, key) == 0)
            return true;
    return strncmp(key, "triton_", 7) == 0;
}

/* ptr + "/" + key */
static void ptr_key(char *buf, size_t cap, const char *base, const char *key)
{
    loss_str_copy(buf, cap, base);
    loss_pointer_append(buf, cap, key, strlen(key));
}

static void ptr_index(char *buf, size_t cap, const char *base, size_t i)
{
    loss_str_copy(buf, cap, base);
    loss_pointer_append_index(buf, cap, i);
}

/* The value of a string member, or NULL when v is not a string. */
static const char *string_of(const struct proto_value *v)
{
    return v != NULL && v->type == PROTO_STRING ? v->u.string.ptr : NULL;
}

/* An input being read, between the passes. */
struct oip_input {
    int index; /* tensor index or OIP_GRAD_OUTPUT */
    enum proto_dtype dt;
    size_t ndim;
    size_t shape[TENSOR_MAX_RANK];
    size_t numel;
    const struct proto_value *data; /* NULL: binary */
    size_t bytes;                   /* binary */
    char ptr[LOSS_POINTER_MAX];     /* "/inputs/<i>" */
};

static enum loss_status read_shape(const struct proto_value *v, const char *ptr,
                                   const struct handler_limits *lim,
                                   struct oip_input *in, struct loss_error *err)
{
    const struct tensor *t;
    size_t n;

    if (v == NULL)
        return loss_fail(err, LOSS_EREQUEST, ptr, "an input needs a shape");
    if (v->type == PROTO_ARRAY ||
        (v->type == PROTO_TENSOR && v->u.tensor->t.ndim == 1 &&
         v->u.tensor->t.shape[0] == 0)) {
        if (v->type == PROTO_ARRAY && v->u.array.len > 0)
            return loss_fail(err, LOSS_EREQUEST, ptr,
                             "shape must be an array of integers");
        in->ndim = 0;
        in->numel = 1;
        return LOSS_OK;
    }
    if (v->type != PROTO_TENSOR || v->u.tensor->t.ndim != 1)
        return loss_fail(err, LOSS_EREQUEST, ptr,
                         "shape must be an array of integers");
    t = &v->u.tensor->t;
    n = t->shape[0];
    if (n > lim->max_rank || n > TENSOR_MAX_RANK)
        return loss_fail(err, LOSS_ETOOLARGE, ptr,
                         "shape has %zu dimensions, over the max_rank limit "
                         "of %zu",
                         n,
                         lim->max_rank < TENSOR_MAX_RANK ? lim->max_rank
                                                         : TENSOR_MAX_RANK);
    in->ndim = n;
    in->numel = 1;
    for (size_t k = 0; k < n; k++) {
        double x = t->data[k];

        if (!(x >= 0) || floor(x) != x || x > 9007199254740992.0)
            return loss_fail(err, LOSS_EREQUEST, ptr,
                             "shape must hold non-negative integers; "
                             "dimension %zu is %.17g",
                             k, x);
        in->shape[k] = (size_t)x;
    }
    for (size_t k = 0; k < n; k++)
        if (__builtin_mul_overflow(in->numel, in->shape[k], &in->numel))
            return loss_fail(err, LOSS_EREQUEST, ptr,
                             "the product of shape overflows");
    if (in->numel > lim->max_elements)
        return loss_fail(err, LOSS_ETOOLARGE, ptr,
                         "shape has %zu elements, over the max_elements "
                         "limit of %zu",
                         in->numel, lim->max_elements);
    return LOSS_OK;
}

static enum loss_status read_input_params(const struct proto_value *v,
                                          const char *ptr, struct oip_input *in,
                                          bool *has_size,
                                          struct loss_error *err)
{
    char mptr[LOSS_POINTER_MAX];

    if (v->type != PROTO_OBJECT)
        return loss_fail(err, LOSS_EREQUEST, ptr,
                         "parameters must be an object");
    for (size_t i = 0; i < v->u.object.len; i++) {
        const struct proto_member *m = &v->u.object.members[i];
        double x = m->value.type == PROTO_NUMBER ? m->value.u.number : -1.0;

        ptr_key(mptr, sizeof(mptr), ptr, m->key);
        if (strcmp(m->key, "binary_data_size") != 0)
            return loss_fail(err, LOSS_EREQUEST, mptr,
                             "unknown input parameter \"%.64s\" (an input "
                             "takes binary_data_size)",
                             m->key);
        if (m->value.type != PROTO_NUMBER || !(x >= 0) || floor(x) != x ||
            x >= 18446744073709551616.0)
            return loss_fail(err, LOSS_EREQUEST, mptr,
                             "binary_data_size must be a non-negative "
                             "integer");
        in->bytes = (size_t)x;
        *has_size = true;
    }
    return LOSS_OK;
}

static enum loss_status read_input(const struct handler_oip *o,
                                   const struct proto_value *item, size_t idx,
                                   const struct handler_limits *lim,
                                   struct oip_input *in, struct loss_error *err)
{
    const struct proto_loss_desc *d = &o->loss->desc;
    const struct proto_value *name = NULL, *shape = NULL, *dtype = NULL,
                             *params = NULL;
    char mptr[LOSS_POINTER_MAX], types[96];
    bool has_size = false;
    unsigned allowed;
    size_t esize;
    int rank;
    enum loss_status st;

    ptr_index(in->ptr, sizeof(in->ptr), "/inputs", idx);
    if (item->type != PROTO_OBJECT)
        return loss_fail(err, LOSS_EREQUEST, in->ptr,
                         "an input must be an object");
    in->data = NULL;
    in->bytes = 0;
    for (size_t i = 0; i < item->u.object.len; i++) {
        const struct proto_member *m = &item->u.object.members[i];

        if (strcmp(m->key, "name") == 0)
            name = &m->value;
        else if (strcmp(m->key, "shape") == 0)
            shape = &m->value;
        else if (strcmp(m->key, "datatype") == 0)
            dtype = &m->value;
        else if (strcmp(m->key, "parameters") == 0)
            params = &m->value;
        else if (strcmp(m->key, "data") == 0)
            in->data = &m->value;
        else {
            ptr_key(mptr, sizeof(mptr), in->ptr, m->key);
            return loss_fail(err, LOSS_EREQUEST, mptr,
                             "unknown member \"%.64s\" of an input (name, "
                             "shape, datatype, parameters, data)",
                             m->key);
        }
    }
    ptr_key(mptr, sizeof(mptr), in->ptr, "name");
    if (string_of(name) == NULL)
        return loss_fail(err, LOSS_EREQUEST, mptr,
                         "an input needs a name (a string)");
    in->index = call_tensor_index(&(struct handler_call){.loss = o->loss},
                                  name->u.string.ptr);
    if (in->index < 0 && strcmp(name->u.string.ptr, "grad_output") == 0)
        in->index = OIP_GRAD_OUTPUT;
    if (in->index < 0) {
        char fields[256];
        size_t n = 0;

        fields[0] = '\0';
        for (size_t i = 0; i < d->ntensors && n < sizeof(fields); i++)
            n += (size_t)snprintf(fields + n, sizeof(fields) - n, "%s, ",
                                  d->tensors[i].name);
        return loss_fail(err, LOSS_EREQUEST, mptr,
                         "unknown input \"%.64s\" for model %s, which takes: "
                         "%sgrad_output",
                         name->u.string.ptr, d->name, fields);
    }
    ptr_key(mptr, sizeof(mptr), in->ptr, "shape");
    st = read_shape(shape, mptr, lim, in, err);
    if (st != LOSS_OK)
        return st;
    ptr_key(mptr, sizeof(mptr), in->ptr, "datatype");
    if (string_of(dtype) == NULL)
        return loss_fail(err, LOSS_EREQUEST, mptr,
                         "an input needs a datatype (a string)");
    if (!proto_dtype_parse(dtype->u.string.ptr, dtype->u.string.len, &in->dt))
        return loss_fail(err, LOSS_EREQUEST, mptr,
                         "unknown or unsupported datatype \"%.32s\" (FP64, "
                         "FP32, FP16, BF16, INT64, INT32, BOOL, UINT8)",
                         dtype->u.string.ptr);
    allowed = input_types(o->loss, in->index, &rank);
    if (!(allowed & PROTO_DT_BIT(in->dt))) {
        list_types(allowed, types, sizeof(types));
        return loss_fail(err, LOSS_EREQUEST, mptr, "%s of %s takes %s, not %s",
                         name->u.string.ptr, d->name, types,
                         proto_dtype_name(in->dt));
    }
    if (params != NULL) {
        ptr_key(mptr, sizeof(mptr), in->ptr, "parameters");
        st = read_input_params(params, mptr, in, &has_size, err);
        if (st != LOSS_OK)
            return st;
    }
    if (has_size == (in->data != NULL))
        return loss_fail(err, LOSS_EREQUEST, in->ptr,
                         "input %s needs exactly one of data and "
                         "parameters.binary_data_size",
                         name->u.string.ptr);
    if (!has_size)
        return LOSS_OK;
    esize = proto_dtype_size(in->dt);
    if (in->numel > SIZE_MAX / esize || in->bytes != in->numel * esize) {
        ptr_key(mptr, sizeof(mptr), in->ptr, "parameters");
        loss_pointer_append(mptr, sizeof(mptr), "binary_data_size", 16);
        return loss_fail(err, LOSS_EREQUEST, mptr,
                         "binary_data_size is %zu but shape and %s make "
                         "%zu elements of %zu bytes",
                         in->bytes, proto_dtype_name(in->dt), in->numel, esize);
    }
    return LOSS_OK;
}

/* Counts the booleans of a (nested) array of booleans; false if any leaf
   is not a boolean. Recursion bounded by the decoder's max_depth. */
static bool count_bools(const struct proto_value *v, size_t *n)
{
    if (v->type == PROTO_BOOL) {
        (*n)++;
        return true;
    }
    if (v->type != PROTO_ARRAY)
        return false;
    for (size_t i = 0; i < v->u.array.len; i++)
        if (!count_bools(&v->u.array.items[i], n))
            return false;
    return true;
}

static void put_bools(const struct proto_value *v, double *dst, size_t *n)
{
    if (v->type == PROTO_BOOL) {
        dst[(*n)++] = v->u.boolean ? 1.0 : 0.0;
        return;
    }
    for (size_t i = 0; i < v->u.array.len; i++)
        put_bools(&v->u.array.items[i], dst, n);
}

/* A new document-owned tensor of in's shape over data (numel doubles). */
static struct proto_tensor *tensor_of(struct proto_doc *doc,
                                      const struct oip_input *in, double *data)
{
    struct proto_tensor *pt = proto_doc_alloc(doc, sizeof(*pt));

    if (pt == NULL)
        return NULL;
    memset(pt, 0, sizeof(*pt));
    pt->t.ndim = in->ndim;
    memcpy(pt->t.shape, in->shape, sizeof(in->shape));
    pt->t.data = data;
    pt->encoding = PROTO_ENC_BASE64; /* pointers name the input, no element */
    pt->integral = !(PROTO_DT_FLOATS & PROTO_DT_BIT(in->dt));
    return pt;
}

/* The tensor of a JSON input: its decoded data given the declared shape,
   checked against the datatype. */
static enum loss_status json_tensor(struct proto_doc *doc,
                                    const struct oip_input *in,
                                    struct proto_tensor **ret,
                                    struct loss_error *err)
{
    const struct proto_value *v = in->data;
    char ptr[LOSS_POINTER_MAX];
    struct proto_tensor *pt;
    size_t n = 0;

    ptr_key(ptr, sizeof(ptr), in->ptr, "data");
    if (in->dt == PROTO_DT_FP16 || in->dt == PROTO_DT_BF16)
        return loss_fail(err, LOSS_EREQUEST, ptr,
                         "%s data only as binary data (the binary tensor "
                         "data extension)",
                         proto_dtype_name(in->dt));
    if (in->dt == PROTO_DT_BOOL) {
        double *data;

        if (!count_bools(v, &n) || v->type != PROTO_ARRAY)
            return loss_fail(err, LOSS_EREQUEST, ptr,
                             "BOOL data must be an array of booleans");
        if (n != in->numel)
            return loss_fail(err, LOSS_EREQUEST, ptr,
                             "data has %zu elements but shape has %zu", n,
                             in->numel);
        data = proto_doc_alloc(doc, (n ? n : 1) * sizeof(double));
        pt = data ? tensor_of(doc, in, data) : NULL;
        if (pt == NULL)
            return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
        n = 0;
        put_bools(v, data, &n);
        *ret = pt;
        return LOSS_OK;
    }
    if (v->type == PROTO_ARRAY && v->u.array.len == 0)
        n = 0;
    else if (v->type != PROTO_TENSOR)
        return loss_fail(err, LOSS_EREQUEST, ptr,
                         "data must be an array of numbers (flat or nested, "
                         "row-major), not %s",
                         proto_type_name(v->type));
    else
        n = tensor_numel(&v->u.tensor->t);
    if (n != in->numel)
        return loss_fail(err, LOSS_EREQUEST, ptr,
                         "data has %zu elements but shape has %zu", n,
                         in->numel);
    if (v->type != PROTO_TENSOR) { /* [] */
        pt = tensor_of(doc, in, proto_doc_alloc(doc, sizeof(double)));
        if (pt == NULL || pt->t.data == NULL)
            return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
        *ret = pt;
        return LOSS_OK;
    }
    pt = v->u.tensor;
    for (size_t i = 0; i < n && in->dt != PROTO_DT_FP64; i++) {
        double x = pt->t.data[i];

        if (in->dt == PROTO_DT_FP32) {
            pt->t.data[i] = (double)(float)x; /* the value an FP32 holds */
            continue;
        }
        if (floor(x) != x || (in->dt == PROTO_DT_UINT8 && (x < 0 || x > 255)) ||
            (in->dt == PROTO_DT_INT32 &&
             (x < -2147483648.0 || x > 2147483647.0)) ||
            (in->dt == PROTO_DT_INT64 &&
             (x < -9223372036854775808.0 || x >= 9223372036854775808.0)))
            return loss_fail(err, LOSS_EREQUEST, ptr,
                             "element %zu (%.17g) is not a %s value", i, x,
                             proto_dtype_name(in->dt));
    }
    pt->t.ndim = in->ndim;
    memcpy(pt->t.shape, in->shape, sizeof(in->shape));
    pt->encoding = PROTO_ENC_BASE64;
    *ret = pt;
    return LOSS_OK;
}

/* Splits "input, target" into the tensors it names. */
static enum loss_status grad_names(const struct handler_oip *o, const char *s,
                                   const char *ptr, unsigned *mask,
                                   struct loss_error *err)
{
    while (*s) {
        size_t n;
        char name[64];
        int t;

        while (*s == ' ' || *s == ',')
            s++;
        n = strcspn(s, ", ");
        if (n == 0)
            break;
        snprintf(name, sizeof(name), "%.*s", (int)(n < 63 ? n : 63), s);
        t = call_tensor_index(&(struct handler_call){.loss = o->loss}, name);
        if (t < 0 || n >= sizeof(name))
            return loss_fail(err, LOSS_EREQUEST, ptr,
                             "grad names \"%s\", which is not a tensor of %s",
                             name, o->loss->desc.name);
        *mask |= 1u << t;
        s += n;
    }
    return LOSS_OK;
}

static enum loss_status read_params(struct handler_oip *o,
                                    const struct proto_value *params,
                                    struct v1_body *b, bool *grad_all,
                                    unsigned *grad_mask, bool *grad_output,
                                    struct loss_error *err)
{
    const struct proto_loss_desc *d = &o->loss->desc;
    char ptr[LOSS_POINTER_MAX];
    enum loss_status st;

    if (params->type != PROTO_OBJECT)
        return loss_fail(err, LOSS_EREQUEST, "/parameters",
                         "parameters must be an object");
    for (size_t i = 0; i < params->u.object.len; i++) {
        const struct proto_member *m = &params->u.object.members[i];
        const struct proto_value *v = &m->value;
        struct handler_call probe = {.loss = o->loss};

        ptr_key(ptr, sizeof(ptr), "/parameters", m->key);
        if (strcmp(m->key, "binary_data_output") == 0) {
            if (v->type != PROTO_BOOL)
                return loss_fail(err, LOSS_EREQUEST, ptr,
                                 "binary_data_output must be a boolean");
            o->binary_all = v->u.boolean;
            continue;
        }
        if (is_reserved(m->key))
            continue; /* Triton's, meaningless here: ignored */
        if (strcmp(m->key, "grad") == 0) {
            if (v->type == PROTO_BOOL) {
                *grad_all = v->u.boolean;
                continue;
            }
            if (v->type != PROTO_STRING)
                return loss_fail(err, LOSS_EREQUEST, ptr,
                                 "grad must be a boolean or a comma-separated "
                                 "string of tensor names");
            st = grad_names(o, v->u.string.ptr, ptr, grad_mask, err);
            if (st != LOSS_OK)
                return st;
            continue;
        }
        if (strcmp(m->key, "grad_output") == 0) {
            if (v->type != PROTO_NUMBER && string_of(v) == NULL)
                return loss_fail(err, LOSS_EREQUEST, ptr,
                                 "the parameter grad_output must be a "
                                 "number (a tensor is an input named "
                                 "grad_output)");
            *grad_output = true;
        } else if (!(d->reductions && strcmp(m->key, "reduction") == 0) &&
                   call_option_index(&probe, m->key) < 0) {
            char names[256];
            size_t n = 0;

            names[0] = '\0';
            if (d->reductions)
                n += (size_t)snprintf(names, sizeof(names), "reduction, ");
            for (size_t k = 0; k < d->noptions && n < sizeof(names); k++)
                n += (size_t)snprintf(names + n, sizeof(names) - n, "%s, ",
                                      d->options[k].name);
            return loss_fail(err, LOSS_EREQUEST, ptr,
                             "unknown parameter \"%.64s\" for model %s, "
                             "which takes: %sgrad, grad_output, "
                             "binary_data_output",
                             m->key, d->name, names);
        }
        st = v1_add(b, m->key, v, err);
        if (st != LOSS_OK)
            return st;
    }
    return LOSS_OK;
}

static enum loss_status read_output(struct handler_oip *o,
                                    const struct proto_value *item, size_t idx,
                                    struct loss_error *err)
{
    const struct proto_loss_desc *d = &o->loss->desc;
    struct oip_output *out = &o->outs[o->nouts];
    const struct proto_value *name = NULL, *params = NULL;
    char ptr[LOSS_POINTER_MAX], mptr[LOSS_POINTER_MAX];
    const char *s;

    ptr_index(ptr, sizeof(ptr), "/outputs", idx);
    if (item->type != PROTO_OBJECT)
        return loss_fail(err, LOSS_EREQUEST, ptr,
                         "an output must be an object");
    for (size_t i = 0; i < item->u.object.len; i++) {
        const struct proto_member *m = &item->u.object.members[i];

        if (strcmp(m->key, "name") == 0)
            name = &m->value;
        else if (strcmp(m->key, "parameters") == 0)
            params = &m->value;
        else {
            ptr_key(mptr, sizeof(mptr), ptr, m->key);
            return loss_fail(err, LOSS_EREQUEST, mptr,
                             "unknown member \"%.64s\" of an output (name, "
                             "parameters)",
                             m->key);
        }
    }
    ptr_key(mptr, sizeof(mptr), ptr, "name");
    s = string_of(name);
    if (s == NULL)
        return loss_fail(err, LOSS_EREQUEST, mptr,
                         "an output needs a name (a string)");
    out->tensor = -1;
    if (strcmp(s, "value") == 0)
        out->kind = OUT_VALUE;
    else if (d->has_sum && strcmp(s, "sum") == 0)
        out->kind = OUT_SUM;
    else if (d->has_sum && strcmp(s, "count") == 0)
        out->kind = OUT_COUNT;
    else if (strncmp(s, "grad_", 5) == 0 &&
             (out->tensor = call_tensor_index(
                  &(struct handler_call){.loss = o->loss}, s + 5)) >= 0 &&
             d->tensors[out->tensor].differentiable)
        out->kind = OUT_GRAD;
    else
        return loss_fail(err, LOSS_EREQUEST, mptr,
                         "unknown output \"%.64s\" of model %s (GET "
                         "/v2/models/%s lists them)",
                         s, d->name, d->name);
    for (size_t k = 0; k < o->nouts; k++)
        if (o->outs[k].kind == out->kind && o->outs[k].tensor == out->tensor)
            return loss_fail(err, LOSS_EREQUEST, mptr,
                             "output \"%.64s\" is requested twice", s);
    out->binary = o->binary_all;
    out->dt = PROTO_DT_FP64;
    if (params != NULL) {
        ptr_key(mptr, sizeof(mptr), ptr, "parameters");
        if (params->type != PROTO_OBJECT)
            return loss_fail(err, LOSS_EREQUEST, mptr,
                             "parameters must be an object");
        for (size_t i = 0; i < params->u.object.len; i++) {
            const struct proto_member *m = &params->u.object.members[i];
            char pptr[LOSS_POINTER_MAX];

            ptr_key(pptr, sizeof(pptr), mptr, m->key);
            if (strcmp(m->key, "binary_data") == 0 &&
                m->value.type == PROTO_BOOL) {
                out->binary = m->value.u.boolean;
            } else if (strcmp(m->key, "datatype") == 0 &&
                       string_of(&m->value) != NULL &&
                       (strcmp(m->value.u.string.ptr, "FP32") == 0 ||
                        strcmp(m->value.u.string.ptr, "FP64") == 0)) {
                out->dt = m->value.u.string.ptr[2] == '3' ? PROTO_DT_FP32
                                                          : PROTO_DT_FP64;
            } else {
                return loss_fail(err, LOSS_EREQUEST, pptr,
                                 "unknown or invalid output parameter "
                                 "\"%.64s\" (binary_data: a boolean; "
                                 "datatype: \"FP64\" or \"FP32\")",
                                 m->key);
            }
        }
    }
    if (out->kind == OUT_GRAD)
        o->grad_wanted |= 1u << out->tensor;
    o->nouts++;
    return LOSS_OK;
}

enum loss_status oip_plan(struct handler_oip *o, struct proto_doc *doc,
                          const struct handler_limits *lim, size_t *ret_bytes,
                          struct loss_error *err)
{
    const struct proto_value *root = proto_doc_root(doc);
    const struct proto_value *inputs = NULL, *outputs = NULL, *params = NULL;
    const struct proto_loss_desc *d = &o->loss->desc;
    struct oip_input in[OIP_MAX_INPUTS];
    struct v1_body b = {.doc = doc};
    struct proto_value v;
    size_t nin = 0, nout = 0, elements = proto_doc_elements(doc), bytes = 0;
    bool grad_all = false, grad_output_param = false, given[OIP_MAX_INPUTS];
    unsigned grad_mask = 0;
    enum loss_status st;

    if (proto_doc_errors(doc, NULL) > 0) {
        if (err != NULL)
            *err = *proto_doc_error(doc, 0);
        return proto_doc_error(doc, 0)->status;
    }
    if (root->type != PROTO_OBJECT)
        return loss_fail(err, LOSS_EREQUEST, "",
                         "the inference header must be a JSON object");
    for (size_t i = 0; i < root->u.object.len; i++) {
        const struct proto_member *m = &root->u.object.members[i];
        char ptr[LOSS_POINTER_MAX];

        if (strcmp(m->key, "id") == 0) {
            if (m->value.type != PROTO_STRING)
                return loss_fail(err, LOSS_EREQUEST, "/id",
                                 "id must be a string");
            o->id = &m->value;
        } else if (strcmp(m->key, "inputs") == 0) {
            inputs = &m->value;
        } else if (strcmp(m->key, "outputs") == 0) {
            outputs = &m->value;
        } else if (strcmp(m->key, "parameters") == 0) {
            params = &m->value;
        } else if (strcmp(m->key, "model_name") == 0 ||
                   strcmp(m->key, "model_version") == 0) {
            /* KServe's InferRequest repeats the path's model in the body */
            bool name = m->key[6] == 'n';
            const char *want = name ? d->name : HANDLER_OIP_VERSION;

            ptr_key(ptr, sizeof(ptr), "", m->key);
            if (m->value.type != PROTO_STRING ||
                strcmp(m->value.u.string.ptr, want) != 0 ||
                m->value.u.string.len != strlen(want))
                return loss_fail(err, LOSS_EREQUEST, ptr,
                                 "%s must be \"%s\", the model of the "
                                 "request's path, when it is given",
                                 m->key, want);
        } else {
            ptr_key(ptr, sizeof(ptr), "", m->key);
            return loss_fail(err, LOSS_EREQUEST, ptr,
                             "unknown member \"%.64s\" of an inference "
                             "request (id, model_name, model_version, "
                             "parameters, inputs, outputs)",
                             m->key);
        }
    }
    if (inputs == NULL || !proto_value_is_list(inputs, &nin) ||
        (nin > 0 && inputs->type != PROTO_ARRAY))
        return loss_fail(err, LOSS_EREQUEST, "/inputs",
                         "an inference request needs inputs, an array of "
                         "objects");
    if (nin > d->ntensors + 1)
        return loss_fail(err, LOSS_EREQUEST, "/inputs",
                         "%zu inputs, but model %s takes at most %zu", nin,
                         d->name, d->ntensors + 1);
    if (outputs != NULL && (!proto_value_is_list(outputs, &nout) ||
                            (nout > 0 && outputs->type != PROTO_ARRAY)))
        return loss_fail(err, LOSS_EREQUEST, "/outputs",
                         "outputs must be an array of objects");
    if (nout > OIP_MAX_OUTPUTS)
        return loss_fail(err, LOSS_EREQUEST, "/outputs",
                         "%zu outputs, but model %s has at most %d", nout,
                         d->name, OIP_MAX_OUTPUTS);

    /* pass 1: everything checked, nothing large allocated */
    memset(given, 0, sizeof(given));
    for (size_t i = 0; i < nin; i++) {
        st = read_input(o, &inputs->u.array.items[i], i, lim, &in[i], err);
        if (st != LOSS_OK)
            return st;
        if (given[in[i].index])
            return loss_fail(
                err, LOSS_EREQUEST, in[i].ptr, "input %s is given twice",
                in[i].index == OIP_GRAD_OUTPUT ? "grad_output"
                                               : d->tensors[in[i].index].name);
        given[in[i].index] = true;
        /* JSON booleans are no tensor to the decoder, which counted the
           other JSON data's elements already */
        if (in[i].data != NULL && in[i].dt == PROTO_DT_BOOL &&
            __builtin_add_overflow(elements, in[i].numel, &elements))
            return loss_fail(err, LOSS_ETOOLARGE, in[i].ptr,
                             "the inputs are too large");
        if (in[i].data == NULL) {
            if (__builtin_add_overflow(bytes, in[i].bytes, &bytes) ||
                __builtin_add_overflow(elements, in[i].numel, &elements))
                return loss_fail(err, LOSS_ETOOLARGE, in[i].ptr,
                                 "the binary inputs are too large");
        }
    }
    if (elements > lim->max_elements)
        return loss_fail(err, LOSS_ETOOLARGE, "/inputs",
                         "the inputs have %zu elements, over the "
                         "max_elements limit of %zu",
                         elements, lim->max_elements);
    if (o->header_len == HANDLER_OIP_WHOLE && bytes > 0)
        return loss_fail(err, LOSS_EREQUEST, "/inputs",
                         "inputs give binary_data_size but the request has "
                         "no Inference-Header-Content-Length");
    if (o->body_len != HANDLER_OIP_WHOLE &&
        o->header_len != HANDLER_OIP_WHOLE &&
        bytes != o->body_len - o->header_len)
        return loss_fail(err, LOSS_EREQUEST, "/inputs",
                         "the binary_data_size of the inputs add up to %zu "
                         "bytes but %zu follow the inference header",
                         bytes, o->body_len - o->header_len);
    b.cap = d->ntensors + d->noptions + 4;
    b.members = proto_doc_alloc(doc, b.cap * sizeof(*b.members));
    if (b.members == NULL)
        return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
    if (params != NULL) {
        st = read_params(o, params, &b, &grad_all, &grad_mask,
                         &grad_output_param, err);
        if (st != LOSS_OK)
            return st;
    }
    if (grad_output_param && given[OIP_GRAD_OUTPUT])
        return loss_fail(err, LOSS_EREQUEST, "/parameters/grad_output",
                         "grad_output is both a parameter and an input");
    o->outs_given = outputs != NULL;
    for (size_t i = 0; i < nout; i++) {
        st = read_output(o, &outputs->u.array.items[i], i, err);
        if (st != LOSS_OK)
            return st;
    }

    /* pass 2: the v1 body */
    for (size_t i = 0; i < nin; i++) {
        struct proto_tensor *pt = NULL;

        if (in[i].index != OIP_GRAD_OUTPUT &&
            !(PROTO_DT_FLOATS & PROTO_DT_BIT(in[i].dt)))
            o->int_inputs |= 1u << in[i].index;

        if (in[i].data != NULL) {
            st = json_tensor(doc, &in[i], &pt, err);
            if (st != LOSS_OK)
                return st;
        } else {
            struct oip_binary *bin = &o->bin[o->nbin++];

            bin->input = in[i].index;
            bin->dt = in[i].dt;
            bin->numel = in[i].numel;
            bin->bytes = in[i].bytes;
            pt = tensor_of(doc, &in[i], NULL);
            if (pt == NULL)
                return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
            bin->pt = pt;
        }
        v.type = PROTO_TENSOR;
        v.u.tensor = pt;
        st = v1_add(&b,
                    in[i].index == OIP_GRAD_OUTPUT
                        ? "grad_output"
                        : d->tensors[in[i].index].name,
                    &v, err);
        if (st != LOSS_OK)
            return st;
    }
    grad_mask |= o->grad_wanted;
    if (grad_all) {
        v.type = PROTO_BOOL;
        v.u.boolean = true;
        st = v1_add(&b, "grad", &v, err);
    } else if (grad_mask) {
        size_t n = 0;

        v.type = PROTO_ARRAY;
        v.u.array.items = proto_doc_alloc(doc, HANDLER_MAX_TENSORS *
                                                   sizeof(*v.u.array.items));
        if (v.u.array.items == NULL)
            return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
        for (size_t t = 0; t < d->ntensors; t++) {
            struct proto_value *s = &v.u.array.items[n];

            if (!(grad_mask & (1u << t)))
                continue;
            s->type = PROTO_STRING;
            s->u.string.len = strlen(d->tensors[t].name);
            s->u.string.ptr =
                doc_strdup(doc, d->tensors[t].name, s->u.string.len);
            if (s->u.string.ptr == NULL)
                return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
            n++;
        }
        v.u.array.len = n;
        st = v1_add(&b, "grad", &v, err);
    }
    if (st != LOSS_OK)
        return st;
    v.type = PROTO_OBJECT;
    v.u.object.members = b.members;
    v.u.object.len = b.len;
    proto_doc_set_root(doc, &v);
    o->bin_bytes = bytes;
    *ret_bytes = 0;
    for (size_t k = 0; k < o->nbin; k++)
        *ret_bytes += (o->bin[k].numel ? o->bin[k].numel : 1) * sizeof(double);
    return LOSS_OK;
}

enum loss_status oip_allocate(struct handler_oip *o, struct proto_doc *doc,
                              struct loss_error *err)
{
    for (size_t k = 0; k < o->nbin; k++) {
        struct oip_binary *bin = &o->bin[k];
        size_t size = (bin->numel ? bin->numel : 1) * sizeof(double);
        double *data = proto_big_alloc(size);

        if (data == NULL || !proto_doc_own_big(doc, data, size)) {
            proto_big_free(data, size);
            return loss_fail(err, LOSS_ENOMEM, NULL, "out of memory");
        }
        bin->pt->t.data = data;
    }
    o->cur = 0;
    if (o->nbin > 0)
        proto_widener_init(&o->w, o->bin[0].dt, o->bin[0].pt->t.data,
                           o->bin[0].numel);
    return LOSS_OK;
}

enum loss_status oip_binary_feed(struct handler_oip *o, const char *data,
                                 size_t n, struct loss_error *err)
{
    while (n > 0) {
        size_t k;

        while (o->cur < o->nbin && proto_widener_left(&o->w) == 0) {
            if (++o->cur < o->nbin)
                proto_widener_init(&o->w, o->bin[o->cur].dt,
                                   o->bin[o->cur].pt->t.data,
                                   o->bin[o->cur].numel);
        }
        if (o->cur >= o->nbin)
            return loss_fail(err, LOSS_EREQUEST, NULL,
                             "the body goes on past the binary data of the "
                             "inputs (binary_data_size adds up to %zu bytes "
                             "after the inference header)",
                             o->bin_bytes);
        k = proto_widener_feed(&o->w, data, n);
        o->bin_fed += k;
        data += k;
        n -= k;
    }
    return LOSS_OK;
}

enum loss_status oip_binary_finish(const struct handler_oip *o,
                                   struct loss_error *err)
{
    if (o->bin_fed != o->bin_bytes)
        return loss_fail(err, LOSS_EREQUEST, NULL,
                         "the body ends %zu bytes into the binary data, whose "
                         "binary_data_size add up to %zu bytes",
                         o->bin_fed, o->bin_bytes);
    return LOSS_OK;
}

enum loss_status oip_attach(struct handler_oip *o, struct handler_call *c,
                            struct loss_error *err)
{
    const struct proto_loss_desc *d = &o->loss->desc;

    if (c->grad_all) /* "grad": true: the float inputs' gradients */
        c->grad_mask &= ~o->int_inputs;
    for (size_t t = 0; t < d->ntensors; t++)
        if ((o->int_inputs & c->grad_mask & (1u << t)) != 0)
            return loss_fail(err, LOSS_EREQUEST, "/parameters/grad",
                             "%s has an integer datatype: no gradient "
                             "(send it as FP64 or FP32 for one)",
                             d->tensors[t].name);
    for (size_t t = 0; t < d->ntensors; t++)
        if ((o->grad_wanted & (1u << t)) && !(c->grad_mask & (1u << t)))
            return loss_fail(err, LOSS_EREQUEST, "/outputs",
                             "grad_%s is not available: %s is not "
                             "differentiable in this request",
                             d->tensors[t].name, d->tensors[t].name);
    if (!o->outs_given) {
        /* all that apply */
        o->outs[o->nouts++] = (struct oip_output){OUT_VALUE, -1, false, 0};
        if (d->has_sum) {
            o->outs[o->nouts++] = (struct oip_output){OUT_SUM, -1, false, 0};
            o->outs[o->nouts++] = (struct oip_output){OUT_COUNT, -1, false, 0};
        }
        for (size_t t = 0; t < d->ntensors; t++)
            if (c->grad_mask & (1u << t))
                o->outs[o->nouts++] =
                    (struct oip_output){OUT_GRAD, (int)t, false, 0};
        for (size_t k = 0; k < o->nouts; k++) {
            o->outs[k].binary = o->binary_all;
            o->outs[k].dt = PROTO_DT_FP64;
        }
    }
    c->oip = o;
    return LOSS_OK;
}

/* ------------------------------------------------------------------------ */
/* The response                                                             */

/* The data, shape and name of output k. */
static void output_data(const struct handler_oip *o, const struct oip_output *k,
                        const struct proto_response *r, const double **data,
                        double *scalar, size_t *ndim, const size_t **shape,
                        char *name, size_t cap)
{
    const struct proto_loss_desc *d = &o->loss->desc;
    static const size_t none[1] = {0};

    *ndim = 0;
    *shape = none;
    switch (k->kind) {
    case OUT_VALUE:
        snprintf(name, cap, "value");
        if (r->value_is_tensor) {
            *data = r->value_tensor.data;
            *ndim = r->value_tensor.ndim;
            *shape = r->value_tensor.shape;
        } else {
            *scalar = r->value;
            *data = scalar;
        }
        return;
    case OUT_SUM:
        snprintf(name, cap, "sum");
        *scalar = r->sum;
        *data = scalar;
        return;
    case OUT_COUNT:
        snprintf(name, cap, "count");
        *scalar = r->count;
        *data = scalar;
        return;
    case OUT_GRAD:
        snprintf(name, cap, "grad_%s", d->tensors[k->tensor].name);
        for (size_t g = 0; g < r->ngrads; g++)
            if (strcmp(r->grads[g].name, d->tensors[k->tensor].name) == 0) {
                *data = r->grads[g].data;
                *ndim = r->grads[g].ndim;
                *shape = r->grads[g].shape;
            }
        return;
    }
}

void oip_response_write(struct handler_oip *o, const struct proto_response *r,
                        struct proto_buf *out)
{
    struct {
        const double *data;
        double scalar;
        size_t numel;
    } od[OIP_MAX_OUTPUTS];
    bool any_binary = false;

    proto_buf_puts(out, "{\"model_name\":");
    proto_write_string(out, o->loss->desc.name, strlen(o->loss->desc.name));
    proto_buf_puts(out, ",\"model_version\":\"" HANDLER_OIP_VERSION "\"");
    if (o->id != NULL) {
        proto_buf_puts(out, ",\"id\":");
        proto_write_string(out, o->id->u.string.ptr, o->id->u.string.len);
    }
    if (r->nwarnings > 0) {
        /* parameters are strings, numbers or booleans: "code: message; ..." */
        struct proto_buf w;

        proto_buf_init(&w);
        for (size_t i = 0; i < r->nwarnings; i++)
            proto_buf_printf(&w, "%s%s: %s", i ? "; " : "", r->warnings[i].code,
                             r->warnings[i].message);
        if (!proto_buf_ok(&w))
            out->failed = true;
        else {
            proto_buf_puts(out, ",\"parameters\":{\"warnings\":");
            proto_write_string(out, w.data, w.len);
            proto_buf_puts(out, "}");
        }
        proto_buf_release(&w);
    }
    proto_buf_puts(out, ",\"outputs\":[");
    for (size_t k = 0; k < o->nouts; k++) {
        const struct oip_output *ok = &o->outs[k];
        const size_t *shape;
        size_t ndim, n = 1;
        char name[80];

        od[k].data = NULL;
        output_data(o, ok, r, &od[k].data, &od[k].scalar, &ndim, &shape, name,
                    sizeof(name));
        if (od[k].data == NULL) { /* oip_attach() made this impossible */
            out->failed = true;
            return;
        }
        for (size_t i = 0; i < ndim; i++)
            n *= shape[i];
        od[k].numel = n;
        proto_buf_puts(out, k ? ",{\"name\":" : "{\"name\":");
        proto_write_string(out, name, strlen(name));
        proto_buf_printf(
            out, ",\"datatype\":\"%s\",\"shape\":", proto_dtype_name(ok->dt));
        proto_write_shape(out, shape, ndim);
        if (ok->binary) {
            any_binary = true;
            proto_buf_printf(out, ",\"parameters\":{\"binary_data_size\":%zu}}",
                             n * proto_dtype_size(ok->dt));
            if (od[k].data == &od[k].scalar) { /* outlives this call */
                o->scalars[k] = od[k].scalar;
                od[k].data = &o->scalars[k];
            }
            o->seg[o->nseg].data = od[k].data;
            o->seg[o->nseg].numel = n;
            o->seg[o->nseg].dt = ok->dt;
            o->nseg++;
            o->tail_bytes += n * proto_dtype_size(ok->dt);
            continue;
        }
        proto_buf_puts(out, ",\"data\":[");
        for (size_t i = 0; i < n; i++) {
            double x = od[k].data[i];

            if (i)
                proto_buf_append(out, ",", 1);
            proto_write_double(out,
                               ok->dt == PROTO_DT_FP32 ? (double)(float)x : x);
        }
        proto_buf_puts(out, "]}");
    }
    proto_buf_puts(out, "]}");
    o->resp_header_len = any_binary ? out->len : 0;
    if (!any_binary || o->stream || !proto_buf_reserve(out, o->tail_bytes))
        return;
    out->len += oip_tail_read(o, 0, out->data + out->len, o->tail_bytes);
    if (out->len < out->cap)
        out->data[out->len] = '\0';
    o->nseg = 0;
    o->tail_bytes = 0;
}

void oip_set_stream(struct handler_oip *o)
{
    o->stream = true;
}

bool oip_keep(struct handler_oip *o, double *buf, size_t bytes)
{
    if (buf == NULL || o->nkept == sizeof(o->kept) / sizeof(o->kept[0]))
        return false;
    o->kept[o->nkept] = buf;
    o->kept_len[o->nkept++] = bytes;
    o->kept_bytes += bytes;
    return true;
}

size_t oip_kept_bytes(const struct handler_oip *o)
{
    return o->kept_bytes;
}

size_t oip_tail_bytes(const struct handler_oip *o)
{
    return o->tail_bytes;
}

size_t oip_tail_read(const struct handler_oip *o, size_t pos, char *buf,
                     size_t max)
{
    size_t done = 0, s = 0, start = 0;

    /* the segment holding pos */
    while (s < o->nseg) {
        size_t bytes = o->seg[s].numel * proto_dtype_size(o->seg[s].dt);

        if (pos < start + bytes)
            break;
        start += bytes;
        s++;
    }
    while (done < max && s < o->nseg) {
        size_t es = proto_dtype_size(o->seg[s].dt);
        size_t bytes = o->seg[s].numel * es;
        size_t off = pos + done - start, i = off / es, within = off % es;
        size_t whole = (max - done) / es;

        if (within == 0 && whole > 0) {
            /* whole elements, straight from the buffer */
            if (whole > o->seg[s].numel - i)
                whole = o->seg[s].numel - i;
            proto_narrow(o->seg[s].dt, o->seg[s].data + i, whole, buf + done);
            done += whole * es;
        } else {
            /* a piece of one element */
            unsigned char one[8];
            size_t n = es - within;

            if (n > max - done)
                n = max - done;
            proto_narrow(o->seg[s].dt, o->seg[s].data + i, 1, one);
            memcpy(buf + done, one + within, n);
            done += n;
        }
        if (pos + done - start == bytes) {
            start += bytes;
            s++;
        }
    }
    return done;
}

size_t oip_response_header_len(const struct handler_oip *o)
{
    return o->resp_header_len;
}

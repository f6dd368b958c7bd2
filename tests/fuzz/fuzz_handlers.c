/*
 * fuzz_handlers.c - fuzz target of the request pipeline (handlers/request.c)
 * for every loss of the registry and the batch route.
 *
 * Input: the route's name ("mse", "batch", ...) and a newline, then the
 * body; an input without a newline or with an unknown name is skipped.
 * Each body goes three times through one pipeline, with small limits so
 * a run stays cheap: whole; a prefix abandoned; in chunks (fuzz.h) with a
 * decoder the pipeline reset and kept.
 *
 * An Open Inference Protocol infer request is named "oip/<loss>" (the whole
 * body is the JSON header) or "oip/<loss>/<N>" (Inference-Header-Content-
 * Length N, binary data after it). It goes whole and in chunks with the
 * body's length known, which must answer the same bytes, and in chunks
 * with it unknown (chunked transfer), which must agree on success. A 200
 * with binary outputs is a JSON header of the length the request reports
 * followed by the blobs.
 *
 * Invariants: the status is 200, 4xx or 503, never 500 or another 5xx;
 * the document is JSON (jansson, which takes \u0000 in strings only when
 * told to), an object, and a problem's "status" is
 * the status returned; both complete runs write the same bytes; every
 * byte a request held is given back when it is freed; nothing leaks.
 */
#include <jansson.h>
#include <string.h>

#include "blas.h"
#include "buf.h"
#include "fuzz.h"
#include "handler.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    loss_blas_init();
    return 0;
}

/* Checks what any answer must be: a JSON object, never a 5xx but 503. */
static void check_answer(int status, const struct proto_buf *out)
{
    json_error_t jerr;
    json_t *doc, *st;

    FUZZ_CHECK(status == 200 || (status >= 400 && status < 500) ||
               status == 503);
    FUZZ_CHECK(proto_buf_ok(out));
    doc = json_loadb(out->data, out->len, JSON_ALLOW_NUL, &jerr);
    if (doc == NULL)
        fprintf(stderr, "not JSON (%s): %.*s\n", jerr.text, (int)out->len,
                out->data);
    FUZZ_CHECK(doc != NULL);
    FUZZ_CHECK(json_is_object(doc));
    if (status != 200) {
        st = json_object_get(doc, "status");
        FUZZ_CHECK(json_is_integer(st) && json_integer_value(st) == status);
    }
    json_decref(doc);
}

/* One request of body (n bytes) fed in the chunks of seed; prefix < n
   abandons it after prefix bytes (returns 0). */
static int request(struct handler_pipeline *p, const struct handler_loss *loss,
                   const char *body, size_t n, uint32_t seed, size_t prefix,
                   struct proto_buf *out)
{
    struct handler_request *r = handler_request_new(p, loss);
    struct fuzz_split split;
    size_t off = 0, end = prefix < n ? prefix : n;
    int status = 0;

    FUZZ_CHECK(r != NULL);
    fuzz_split_init(&split, seed);
    while (off < end) {
        size_t len = fuzz_split_next(&split, end - off);
        if (handler_request_feed(r, body + off, len) != LOSS_OK)
            break;
        off += len;
    }
    if (prefix >= n) {
        handler_request_finish(r);
        status = handler_request_run(r, NULL, "/fuzz", out);
        check_answer(status, out);
    }
    handler_request_free(r);
    FUZZ_CHECK(handler_pipeline_inflight(p) == 0);
    return status;
}

/* One infer request (oip.c) of body (n bytes), header_len as the request
   header says, the body's length known or not; the status. */
static int request_oip(struct handler_pipeline *p,
                       const struct handler_loss *loss, size_t header_len,
                       const char *body, size_t n, bool known, uint32_t seed,
                       struct proto_buf *out)
{
    struct handler_request *r = handler_request_new_oip(
        p, loss, header_len, known ? n : HANDLER_OIP_WHOLE);
    struct fuzz_split split;
    size_t off = 0, hl;
    int status;

    FUZZ_CHECK(r != NULL);
    fuzz_split_init(&split, seed);
    while (off < n) {
        size_t len = seed ? fuzz_split_next(&split, n - off) : n - off;
        if (handler_request_feed(r, body + off, len) != LOSS_OK)
            break;
        off += len;
    }
    handler_request_finish(r);
    status = handler_request_run(r, NULL, "/fuzz", out);
    hl = handler_request_oip_header_len(r);
    FUZZ_CHECK(hl <= out->len);
    if (hl > 0) {
        struct proto_buf head = *out;

        FUZZ_CHECK(status == 200);
        head.len = hl;
        check_answer(status, &head);
    } else {
        check_answer(status, out);
    }
    handler_request_free(r);
    FUZZ_CHECK(handler_pipeline_inflight(p) == 0);
    return status;
}

/* "<loss>" or "<loss>/<N>" after "oip/": the loss and the header length
   (HANDLER_OIP_WHOLE without one); false for anything else. */
static bool oip_route(const uint8_t *name, size_t len,
                      const struct handler_loss **ret_loss,
                      size_t *ret_header_len)
{
    const uint8_t *slash = memchr(name, '/', len);
    size_t k = slash ? (size_t)(slash - name) : len, n = 0;

    *ret_loss = handler_find((const char *)name, k);
    *ret_header_len = HANDLER_OIP_WHOLE;
    if (*ret_loss == NULL)
        return false;
    if (slash == NULL)
        return true;
    for (size_t i = k + 1; i < len; i++) {
        if (name[i] < '0' || name[i] > '9' || n > (1u << 30))
            return false;
        n = n * 10 + (size_t)(name[i] - '0');
    }
    *ret_header_len = n;
    return true;
}

static void fuzz_oip(const struct handler_limits *lim,
                     const struct handler_loss *loss, size_t header_len,
                     const uint8_t *data, size_t size, const char *body,
                     size_t n)
{
    struct handler_pipeline *p = handler_pipeline_new(lim, SIZE_MAX);
    struct proto_buf a, b, c;
    uint32_t seed = fuzz_hash(data, size) | 1;
    int sa, sb, sc;

    FUZZ_CHECK(p != NULL);
    proto_buf_init(&a);
    proto_buf_init(&b);
    proto_buf_init(&c);
    sa = request_oip(p, loss, header_len, body, n, true, 0, &a);
    sb = request_oip(p, loss, header_len, body, n, true, seed, &b);
    sc = request_oip(p, loss, header_len, body, n, false, seed, &c);
    FUZZ_CHECK(sa == sb);
    FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    FUZZ_CHECK((sa == 200) == (sc == 200));
    proto_buf_release(&a);
    proto_buf_release(&b);
    proto_buf_release(&c);
    handler_pipeline_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    const struct handler_loss *loss = NULL;
    struct handler_pipeline *p;
    struct handler_limits lim;
    struct proto_buf a, b;
    const char *body;
    size_t name_len, n;
    int sa, sb;

    if (nl == NULL)
        return 0;
    name_len = (size_t)(nl - data);
    body = (const char *)nl + 1;
    n = size - name_len - 1;
    if (name_len > 4 && memcmp(data, "oip/", 4) == 0) {
        size_t header_len;

        if (!oip_route(data + 4, name_len - 4, &loss, &header_len))
            return 0;
        handler_limits_default(&lim);
        lim.max_body_bytes = 1 << 20;
        lim.max_elements = 1 << 14;
        lim.max_depth = 32;
        lim.max_work = 1 << 16;
        fuzz_oip(&lim, loss, header_len, data, size, body, n);
        return 0;
    }
    if (name_len != strlen(HANDLER_BATCH) ||
        memcmp(data, HANDLER_BATCH, name_len) != 0) {
        loss = handler_find((const char *)data, name_len);
        if (loss == NULL)
            return 0;
    }

    /* small enough that a body of libFuzzer's size runs in milliseconds,
       large enough for every seed to be a 200 */
    handler_limits_default(&lim);
    lim.max_body_bytes = 1 << 20;
    lim.max_elements = 1 << 14;
    lim.max_depth = 32;
    lim.max_work = 1 << 16;
    lim.max_batch_items = 16;
    p = handler_pipeline_new(&lim, SIZE_MAX);
    FUZZ_CHECK(p != NULL);
    proto_buf_init(&a);
    proto_buf_init(&b);

    sa = request(p, loss, body, n, 0, SIZE_MAX, &a);
    if (n > 0)
        request(p, loss, body, n, 0, n / 2, &b);
    sb = request(p, loss, body, n, fuzz_hash(data, size) | 1, SIZE_MAX, &b);
    FUZZ_CHECK(sa == sb);
    FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);

    proto_buf_release(&a);
    proto_buf_release(&b);
    handler_pipeline_free(p);
    return 0;
}

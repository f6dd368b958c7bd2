/*
 * fuzz_inflate.c - fuzz target of gzip and deflate request bodies: the
 * streaming inflater of server/coding.c feeding a request of the pipeline,
 * as server/http.c does.
 *
 * Input: a 2-byte header, the route's name and a newline, then the
 * compressed body (gzip or zlib; the inflater detects which).
 *   [0] the bound on the inflated body: 0 is 1 MiB, else 16 times the byte
 *   [1] split seed (fuzz.h; 0: one chunk)
 * An input without a newline or with an unknown name is skipped.
 *
 * Invariants: the inflater never hands on more than its bound; what it
 * hands on is what zlib inflates from the whole body at once (a prefix of
 * it when inflating stops early), and a body it takes whole is one zlib
 * inflates whole, within the bound, with nothing after its end; the
 * request's answer is as fuzz_handlers.c requires (200, 4xx or 503, a JSON
 * object); every byte is given back; nothing leaks.
 */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <zlib.h>

#include "blas.h"
#include "buf.h"
#include "coding.h"
#include "fuzz.h"
#include "handler.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    loss_blas_init();
    return 0;
}

/* What the inflater handed on, and the request it went to. */
struct sink {
    struct handler_request *r;
    char *got;
    size_t len, cap;
    bool failed; /* the request failed: http.c stops inflating */
};

static int sink_take(void *ctx, const char *data, size_t n)
{
    struct sink *s = ctx;

    FUZZ_CHECK(n > 0 && n <= 16384);
    FUZZ_CHECK(s->len + n <= s->cap);
    memcpy(s->got + s->len, data, n);
    s->len += n;
    if (handler_request_feed(s->r, data, n) != LOSS_OK)
        s->failed = true;
    return s->failed ? 1 : 0;
}

/*
 * zlib's inflate of the whole of z (n bytes) at once into out (cap bytes):
 * Z_STREAM_END with *ret_rest the input bytes after the stream's end,
 * Z_BUF_ERROR when the output does not fit in cap (or the input ends
 * first), or zlib's error. *ret_len bytes were written.
 */
static int inflate_whole(const uint8_t *z, size_t n, char *out, size_t cap,
                         size_t *ret_len, size_t *ret_rest)
{
    z_stream s;
    int zr;

    memset(&s, 0, sizeof(s));
    FUZZ_CHECK(inflateInit2(&s, 15 + 32) == Z_OK);
    s.next_in = (Bytef *)(uintptr_t)z;
    s.avail_in = (uInt)n;
    s.next_out = (Bytef *)out;
    s.avail_out = (uInt)cap;
    zr = inflate(&s, Z_FINISH);
    *ret_len = cap - s.avail_out;
    *ret_rest = s.avail_in;
    inflateEnd(&s);
    return zr;
}

static void check_answer(int status, const struct proto_buf *out)
{
    json_error_t jerr;
    json_t *doc;

    FUZZ_CHECK(status == 200 || (status >= 400 && status < 500) ||
               status == 503);
    doc = json_loadb(out->data, out->len, JSON_ALLOW_NUL, &jerr);
    FUZZ_CHECK(doc != NULL && json_is_object(doc));
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl;
    const struct handler_loss *loss = NULL;
    struct handler_pipeline *p;
    struct handler_limits lim;
    struct server_inflater in;
    struct fuzz_split split;
    struct sink s = {0};
    struct proto_buf out;
    size_t name_len, n, off = 0, ref_len, ref_rest;
    const uint8_t *z;
    char *ref;
    int rc = 0, zr;

    if (size < 2 || (nl = memchr(data + 2, '\n', size - 2)) == NULL)
        return 0;
    name_len = (size_t)(nl - data - 2);
    if (name_len != strlen(HANDLER_BATCH) ||
        memcmp(data + 2, HANDLER_BATCH, name_len) != 0) {
        loss = handler_find((const char *)data + 2, name_len);
        if (loss == NULL)
            return 0;
    }
    z = nl + 1;
    n = size - (size_t)(z - data);

    handler_limits_default(&lim);
    lim.max_body_bytes = data[0] == 0 ? (size_t)1 << 20 : (size_t)data[0] * 16;
    lim.max_elements = 1 << 14;
    lim.max_depth = 32;
    lim.max_work = 1 << 16;
    lim.max_batch_items = 16;
    p = handler_pipeline_new(&lim, SIZE_MAX);
    FUZZ_CHECK(p != NULL);
    s.r = handler_request_new(p, loss);
    FUZZ_CHECK(s.r != NULL);
    s.cap = lim.max_body_bytes;
    s.got = malloc(s.cap + 1);
    ref = malloc(s.cap + 1);
    FUZZ_CHECK(s.got != NULL && ref != NULL);

    FUZZ_CHECK(server_inflater_init(&in, lim.max_body_bytes) == 0);
    fuzz_split_init(&split, data[1]);
    while (off < n && rc == 0) { /* http.c stops at the first failure */
        size_t len = fuzz_split_next(&split, n - off);
        rc = server_inflater_feed(&in, (const char *)z + off, len, sink_take,
                                  &s);
        off += len;
    }
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == -EBADMSG || rc == -EMSGSIZE ||
               rc == -EPROTO);
    FUZZ_CHECK((rc == 1) == s.failed);
    FUZZ_CHECK(s.len <= lim.max_body_bytes);
    if (rc != -EMSGSIZE)
        FUZZ_CHECK(in.inflated == s.len);

    /* against zlib on the whole body, with one byte of room past the bound */
    zr = inflate_whole(z, n, ref, s.cap + 1, &ref_len, &ref_rest);
    FUZZ_CHECK(s.len <= ref_len || zr != Z_STREAM_END);
    FUZZ_CHECK(memcmp(s.got, ref, s.len < ref_len ? s.len : ref_len) == 0);
    if (rc == 0 && in.ended)
        FUZZ_CHECK(zr == Z_STREAM_END && ref_rest == 0 && ref_len == s.len);
    if (zr == Z_STREAM_END && ref_rest == 0 && ref_len <= lim.max_body_bytes)
        FUZZ_CHECK(rc == 1 || (rc == 0 && in.ended && ref_len == s.len));
    server_inflater_end(&in);

    /* the answer, as http.c's final call gives it */
    proto_buf_init(&out);
    if (rc == 0 && in.ended) {
        handler_request_finish(s.r);
        check_answer(handler_request_run(s.r, NULL, "/fuzz", &out), &out);
    } else if (rc == 1) {
        check_answer(handler_request_run(s.r, NULL, "/fuzz", &out), &out);
    }
    proto_buf_release(&out);
    handler_request_free(s.r);
    FUZZ_CHECK(handler_pipeline_inflight(p) == 0);
    handler_pipeline_free(p);
    free(s.got);
    free(ref);
    return 0;
}

/*
 * fuzz_decode.c - fuzz target of the streaming decoder (proto/decode.c).
 *
 * Input: a 6-byte header, then the body.
 *   [0] bit 0: recover_values; bit 1: decode with a decoder reset after
 *       an abandoned prefix of the body; bits 4-7: max_value_errors - 1
 *   [1] max_depth - 1 (mod 64)    [2] max_rank - 1 (mod TENSOR_MAX_RANK)
 *   [3] max_elements: the byte itself below 128, else 65536
 *   [4..5] split seed (fuzz.h; 0: one chunk)
 *
 * Invariants: the body fed in chunks decodes exactly as proto_decode() of
 * the whole body (status, error, document bit for bit, value errors); the
 * first failure is sticky (later feeds and finish() return it, and no
 * document is handed out); a reset decoder decodes as a new one and keeps
 * at most PROTO_DECODER_KEEP_BYTES; nothing leaks (LeakSanitizer).
 */
#include <string.h>

#include "decode.h"
#include "doc.h"
#include "fuzz.h"
#include "status.h"
#include "value.h"

#define HEADER 6

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static bool error_equal(const struct loss_error *a, const struct loss_error *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return a->status == b->status && a->has_pointer == b->has_pointer &&
           a->offset == b->offset && strcmp(a->pointer, b->pointer) == 0 &&
           strcmp(a->detail, b->detail) == 0;
}

static bool value_equal(const struct proto_value *a,
                        const struct proto_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case PROTO_NULL:
        return true;
    case PROTO_BOOL:
        return a->u.boolean == b->u.boolean;
    case PROTO_NUMBER: /* bit for bit: -0 and NaN too */
        return memcmp(&a->u.number, &b->u.number, sizeof(double)) == 0;
    case PROTO_STRING:
        return a->u.string.len == b->u.string.len &&
               memcmp(a->u.string.ptr, b->u.string.ptr, a->u.string.len) == 0;
    case PROTO_TENSOR: {
        const struct proto_tensor *x = a->u.tensor, *y = b->u.tensor;
        size_t n;
        if (x->t.ndim != y->t.ndim || x->integral != y->integral ||
            x->encoding != y->encoding ||
            memcmp(x->t.shape, y->t.shape, x->t.ndim * sizeof(size_t)) != 0)
            return false;
        FUZZ_CHECK(tensor_shape_numel(x->t.shape, x->t.ndim, &n));
        return n == 0 || memcmp(x->t.data, y->t.data, n * sizeof(double)) == 0;
    }
    case PROTO_ARRAY:
        if (a->u.array.len != b->u.array.len)
            return false;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!value_equal(&a->u.array.items[i], &b->u.array.items[i]))
                return false;
        return true;
    case PROTO_OBJECT:
        if (a->u.object.len != b->u.object.len)
            return false;
        for (size_t i = 0; i < a->u.object.len; i++) {
            const struct proto_member *x = &a->u.object.members[i];
            const struct proto_member *y = &b->u.object.members[i];
            if (x->key_len != y->key_len ||
                memcmp(x->key, y->key, x->key_len) != 0 ||
                !value_equal(&x->value, &y->value))
                return false;
        }
        return true;
    case PROTO_INVALID:
        return a->u.invalid.status == b->u.invalid.status &&
               error_equal(a->u.invalid.error, b->u.invalid.error);
    }
    return false;
}

static bool doc_equal(const struct proto_doc *a, const struct proto_doc *b)
{
    size_t ta, tb, ka = proto_doc_errors(a, &ta), kb = proto_doc_errors(b, &tb);

    if (ka != kb || ta != tb ||
        proto_doc_elements(a) != proto_doc_elements(b) ||
        !value_equal(proto_doc_root(a), proto_doc_root(b)))
        return false;
    for (size_t i = 0; i < ka; i++)
        if (!error_equal(proto_doc_error(a, i), proto_doc_error(b, i)))
            return false;
    FUZZ_CHECK(proto_doc_error(a, ka) == NULL);
    return true;
}

/*
 * Feeds body (n bytes) to d in the chunks of seed and finishes: the status,
 * with *ret_doc and *err as finish() leaves them. Checks that the first
 * failure is sticky.
 */
static enum loss_status feed_all(struct proto_decoder *d, const char *body,
                                 size_t n, uint32_t seed,
                                 struct proto_doc **ret_doc,
                                 struct loss_error *err)
{
    struct fuzz_split split;
    enum loss_status first = LOSS_OK, st;
    struct loss_error e;
    size_t off = 0;

    fuzz_split_init(&split, seed);
    while (off < n) {
        size_t len = fuzz_split_next(&split, n - off);
        loss_error_init(&e);
        st = proto_decoder_feed(d, body + off, len, &e);
        if (first != LOSS_OK)
            FUZZ_CHECK(st == first);
        else
            first = st;
        off += len;
    }
    if (first != LOSS_OK) {
        loss_error_init(&e);
        FUZZ_CHECK(proto_decoder_feed(d, "", 0, &e) == first);
    }
    *ret_doc = NULL;
    loss_error_init(err);
    st = proto_decoder_finish(d, ret_doc, err);
    FUZZ_CHECK(first == LOSS_OK || st == first);
    FUZZ_CHECK(st == err->status);
    FUZZ_CHECK((st == LOSS_OK) == (*ret_doc != NULL));
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_limits lim;
    struct proto_doc *ref = NULL, *doc = NULL;
    struct loss_error ref_err, err;
    enum loss_status ref_st, st;
    struct proto_decoder *d;
    const char *body;
    uint32_t seed;
    size_t n;

    if (size < HEADER)
        return 0;
    lim.recover_values = data[0] & 1;
    lim.max_value_errors = 1 + (data[0] >> 4);
    lim.max_depth = 1 + data[1] % 64;
    lim.max_rank = 1 + data[2] % TENSOR_MAX_RANK;
    lim.max_elements = data[3] < 128 ? data[3] : 65536;
    seed = (uint32_t)data[4] << 8 | data[5];
    body = (const char *)data + HEADER;
    n = size - HEADER;

    loss_error_init(&ref_err);
    ref_st = proto_decode(body, n, &lim, &ref, &ref_err);
    FUZZ_CHECK(ref_st == ref_err.status);
    FUZZ_CHECK((ref_st == LOSS_OK) == (ref != NULL));

    d = proto_decoder_new(&lim);
    FUZZ_CHECK(d != NULL);
    if (data[0] & 2) {
        /* a prefix abandoned mid-way, then reset: as good as new */
        size_t fresh = proto_decoder_bytes(d), prefix = n / 2;
        struct loss_error e;
        loss_error_init(&e);
        proto_decoder_feed(d, body, prefix, &e);
        proto_decoder_reset(d);
        FUZZ_CHECK(proto_decoder_bytes(d) <= fresh + PROTO_DECODER_KEEP_BYTES);
    }
    st = feed_all(d, body, n, seed, &doc, &err);
    FUZZ_CHECK(st == ref_st);
    FUZZ_CHECK(error_equal(&err, &ref_err));
    if (st == LOSS_OK)
        FUZZ_CHECK(doc_equal(doc, ref));
    proto_doc_free(doc);

    /* the same decoder again, after a finished body: the same result */
    proto_decoder_reset(d);
    st = feed_all(d, body, n, seed ^ 0x5bd1u, &doc, &err);
    FUZZ_CHECK(st == ref_st);
    FUZZ_CHECK(error_equal(&err, &ref_err));
    if (st == LOSS_OK)
        FUZZ_CHECK(doc_equal(doc, ref));
    proto_doc_free(doc);
    proto_decoder_free(d);
    proto_doc_free(ref);
    return 0;
}

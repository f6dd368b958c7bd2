/*
 * test_decode.c - the streaming decoder of proto/decode.h: decode.c,
 * decode_value.c and decode_tensor.c, tested through decode.h.
 *
 * Tables of bodies with the document or the error each must give; every
 * body is also fed split at every byte position, byte by byte and in random
 * chunks, and must give the very same result, also from one decoder reset
 * between bodies (proto_decoder_reset()). A differential test against
 * jansson (the reference strict parser) on a corpus and on thousands of
 * generated and mutated documents checks that we accept exactly what it
 * accepts and read every number to the same double as strtod.
 *
 * Results are compared as canonical strings (dump()), so a failing case
 * prints what it got next to what it wanted. Table tests collect every
 * failing case before asserting, naming each.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "testutil.h"
#include "value.h"

/* --- a string builder ---------------------------------------------------- */

struct sb {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;

        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
sb_printf(struct sb *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void sb_reset(struct sb *b)
{
    b->len = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

static void sb_free(struct sb *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* --- canonical dumps -------------------------------------------------------
 */

static void dump_number(struct sb *b, double x)
{
    if (x == 0 && signbit(x))
        sb_puts(b, "-0");
    else if (isnan(x))
        sb_puts(b, "nan");
    else if (isinf(x))
        sb_puts(b, x > 0 ? "inf" : "-inf");
    else
        sb_printf(b, "%.17g", x);
}

static void dump_string(struct sb *b, const char *s, size_t n)
{
    sb_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            sb_printf(b, "\\x%02X", c);
        else
            sb_add(b, &s[i], 1);
    }
    sb_puts(b, "\"");
}

/*
 * null, true, 1.5, "s", [..], {"k":..}; a tensor as T<enc><i>[dims](data)
 * with enc n (nested), f (flat) or b (base64) and i when integral.
 */
static void dump(struct sb *b, const struct proto_value *v)
{
    switch (v->type) {
    case PROTO_NULL:
        sb_puts(b, "null");
        break;
    case PROTO_BOOL:
        sb_puts(b, v->u.boolean ? "true" : "false");
        break;
    case PROTO_NUMBER:
        dump_number(b, v->u.number);
        break;
    case PROTO_STRING:
        dump_string(b, v->u.string.ptr, v->u.string.len);
        break;
    case PROTO_TENSOR: {
        const struct proto_tensor *pt = v->u.tensor;
        size_t n = tensor_numel(&pt->t);

        sb_printf(b, "T%c%s[", "nfb"[pt->encoding], pt -> integral ? "i" : "");
        for (size_t i = 0; i < pt->t.ndim; i++)
            sb_printf(b, i ? ",%zu" : "%zu", pt->t.shape[i]);
        sb_puts(b, "](");
        ck_assert_ptr_nonnull(pt->t.data);
        for (size_t i = 0; i < n; i++) {
            if (i)
                sb_puts(b, ",");
            dump_number(b, pt->t.data[i]);
        }
        sb_puts(b, ")");
        break;
    }
    case PROTO_ARRAY:
        sb_puts(b, "[");
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i)
                sb_puts(b, ",");
            dump(b, &v->u.array.items[i]);
        }
        sb_puts(b, "]");
        break;
    case PROTO_OBJECT:
        sb_puts(b, "{");
        for (size_t i = 0; i < v->u.object.len; i++) {
            const struct proto_member *m = &v->u.object.members[i];

            if (i)
                sb_puts(b, ",");
            ck_assert_int_eq(m->key[m->key_len], '\0');
            dump_string(b, m->key, m->key_len);
            sb_puts(b, ":");
            dump(b, &m->value);
        }
        sb_puts(b, "}");
        break;
    case PROTO_INVALID: {
        const struct loss_error *e = v->u.invalid.error;

        /* !<status>@<pointer>, or !<status> when the error was not kept */
        sb_printf(b, "!%s", loss_status_name(v->u.invalid.status));
        if (e != NULL) {
            ck_assert_int_eq(e->status, v->u.invalid.status);
            sb_printf(b, "@%s", e->pointer);
        }
        break;
    }
    }
}

/* --- decoding in chunks ----------------------------------------------------
 */

static const struct proto_limits big_limits = {
    .max_elements = (size_t)1 << 40,
    .max_rank = 8,
    .max_depth = 64,
};

/*
 * Decodes body cut at the given increasing positions and describes the
 * outcome: "ok <dump>" or "<status> ptr=<pointer>" / "<status> off=<n>",
 * then " | <detail>" (detail only for errors). A document with value
 * errors (recover_values) adds " errors <n>/<total>:" and each kept error
 * as " <status>@<pointer> (<detail>)". d is a decoder made with lim, new or
 * reset; it is left finished or failed.
 */
static void decode_split_on(struct proto_decoder *d, const char *body,
                            size_t len, const struct proto_limits *lim,
                            const size_t *cuts, size_t ncuts, struct sb *out)
{
    struct proto_doc *doc = NULL;
    struct loss_error err;
    enum loss_status st = LOSS_OK;
    size_t at = 0;

    loss_error_init(&err);
    for (size_t i = 0; i <= ncuts && st == LOSS_OK; i++) {
        size_t to = i < ncuts ? cuts[i] : len;

        st = proto_decoder_feed(d, body + at, to - at, &err);
        at = to;
    }
    if (st == LOSS_OK)
        st = proto_decoder_finish(d, &doc, &err);
    sb_reset(out);
    if (st == LOSS_OK) {
        size_t total, kept = proto_doc_errors(doc, &total);

        sb_puts(out, "ok ");
        dump(out, proto_doc_root(doc));
        ck_assert_uint_ge(proto_doc_bytes(doc),
                          sizeof(double) * proto_doc_elements(doc));
        ck_assert_uint_le(kept, total);
        ck_assert_ptr_null(proto_doc_error(doc, kept));
        if (!lim->recover_values)
            ck_assert_uint_eq(total, 0);
        if (total > 0)
            sb_printf(out, " errors %zu/%zu:", kept, total);
        for (size_t i = 0; i < kept; i++) {
            const struct loss_error *e = proto_doc_error(doc, i);

            ck_assert(e->has_pointer);
            sb_printf(out, " %s@%s (%s)", loss_status_name(e->status),
                      e->pointer, e->detail);
        }
    } else {
        struct loss_error again;

        ck_assert_int_eq(err.status, st);
        sb_printf(out, "%s ", loss_status_name(st));
        if (err.has_pointer)
            sb_printf(out, "ptr=%s", err.pointer);
        else
            sb_printf(out, "off=%lld", err.offset);
        sb_printf(out, " | %s", err.detail);
        /* the first error is replayed */
        loss_error_init(&again);
        ck_assert_int_eq(proto_decoder_feed(d, "1", 1, &again), st);
        ck_assert_str_eq(again.detail, err.detail);
        ck_assert_int_eq(proto_decoder_finish(d, &doc, &again), st);
        ck_assert_ptr_null(doc);
    }
    proto_doc_free(doc);
}

/* decode_split_on() with a new decoder. */
static void decode_split(const char *body, size_t len,
                         const struct proto_limits *lim, const size_t *cuts,
                         size_t ncuts, struct sb *out)
{
    struct proto_decoder *d = proto_decoder_new(lim);

    ck_assert_ptr_nonnull(d);
    decode_split_on(d, body, len, lim, cuts, ncuts, out);
    proto_decoder_free(d);
}

static void decode_whole(const char *body, size_t len,
                         const struct proto_limits *lim, struct sb *out)
{
    decode_split(body, len, lim, NULL, 0, out);
}

/* --- the tables -------------------------------------------------------------
 */

struct ok_case {
    const char *json;
    const char *want; /* the dump */
};

/*
 * Valid bodies. Strings are NUL-terminated; bodies that contain a NUL byte
 * are in the error table with an explicit length.
 */
static const struct ok_case ok_cases[] = {
    /* nested tensors and shape inference */
    {"[[1,2],[3,4]]", "Tni[2,2](1,2,3,4)"},
    {"[[1.5,2],[3,-4e-3]]", "Tn[2,2](1.5,2,3,-0.0040000000000000001)"},
    {"[]", "Tni[0]()"},
    {"[[],[]]", "Tni[2,0]()"},
    {"[[[]]]", "Tni[1,1,0]()"},
    {"[ [ ] , [ ] ]", "Tni[2,0]()"},
    {"[[[1],[2]],[[3],[4]]]", "Tni[2,2,1](1,2,3,4)"},
    {"[1]", "Tni[1](1)"},
    {"[[[[[[[[1]]]]]]]]", "Tni[1,1,1,1,1,1,1,1](1)"},
    {" \t\n\r[1]\r\n ", "Tni[1](1)"},
    {"[\"NaN\",\"Infinity\",\"-Infinity\"]", "Tn[3](nan,inf,-inf)"},
    {"[[1,\"NaN\"],[\"-Infinity\",2]]", "Tn[2,2](1,nan,-inf,2)"},
    {"[0.5, 1]", "Tn[2](0.5,1)"},
    {"[1e2,1E+2,1e-2,-0.0,0e5]", "Tn[5](100,100,0.01,-0,0)"},
    {"[-0]", "Tni[1](-0)"},
    {"[1e300, 1e308]", "Tni[2](1.0000000000000001e+300,1e+308)"},
    /* bare values */
    {"-0", "-0"},
    {"0", "0"},
    {"-0.0e0", "-0"},
    {"12345678901234567890", "1.2345678901234567e+19"},
    {"-12345678901234567890123", "-1.2345678901234568e+22"},
    {"1e-400", "0"},
    {"-1e-400", "-0"},
    {"4.9406564584124654e-324", "4.9406564584124654e-324"},
    {"2.2250738585072011e-308", "2.2250738585072009e-308"},
    {"1.7976931348623157e308", "1.7976931348623157e+308"},
    {"9007199254740993", "9007199254740992"},
    {"0.1", "0.10000000000000001"},
    {"true", "true"},
    {"false", "false"},
    {"null", "null"},
    {"\"NaN\"", "\"NaN\""},
    {"\"\"", "\"\""},
    {"\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
     "\"a\\x22\\x5C/\\x08\\x0C\\x0A\\x0D\\x09\""},
    {"\"\\u00e9\\u20AC\\ud83d\\ude00\"",
     "\"\\xC3\\xA9\\xE2\\x82\\xAC\\xF0\\x9F\\x98\\x80\""},
    {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\x7f\"",
     "\"\\xC3\\xA9\\xE2\\x82\\xAC\\xF0\\x9F\\x98\\x80\\xF4\\x8F\\xBF\\xBF"
     "\\x7F\""},
    {"\"a\\u0000b\"", "\"a\\x00b\""},
    /* generic arrays: the first leaf decides */
    {"[\"a\", 1, null, [1,2]]", "[\"a\",1,null,Tni[2](1,2)]"},
    {"[\"nan\"]", "[\"nan\"]"},
    {"[true, 1]", "[true,1]"},
    {"[false]", "[false]"},
    {"[{}, [1]]", "[{},Tni[1](1)]"},
    {"[[\"a\"], [1]]", "[[\"a\"],Tni[1](1)]"},
    {"[[[\"a\"]]]", "[[[\"a\"]]]"},
    {"[[[{}]], []]", "[[[{}]],Tni[0]()]"},
    {"[\"input\", \"target\"]", "[\"input\",\"target\"]"},
    /* objects keep document order */
    {"{}", "{}"},
    {"{\"b\":1,\"a\":[2]}", "{\"b\":1,\"a\":Tni[1](2)}"},
    {"{\"a\":{\"b\":{\"c\":[[1]]}}}", "{\"a\":{\"b\":{\"c\":Tni[1,1](1)}}}"},
    {"{\"a~/b\":\"x\",\"\":0}", "{\"a~/b\":\"x\",\"\":0}"},
    {"{\"data\":[1,2]}", "{\"data\":Tni[2](1,2)}"},
    /* tensor objects, keys in any order */
    {"{\"shape\":[2,2],\"data\":[1,2,3,4.5]}", "Tf[2,2](1,2,3,4.5)"},
    {"{\"data\":[1,2],\"shape\":[2]}", "Tfi[2](1,2)"},
    {"{\"shape\":[],\"data\":[7]}", "Tfi[](7)"},
    {"{\"shape\":[0],\"data\":[]}", "Tfi[0]()"},
    {"{\"shape\":[2,0],\"data\":[]}", "Tfi[2,0]()"},
    {"{\"shape\":[3],\"data\":[\"NaN\",1,2]}", "Tf[3](nan,1,2)"},
    {"{\"x\":{\"shape\":[1],\"data\":[1]}}", "{\"x\":Tfi[1](1)}"},
    {"[{\"shape\":[1],\"data\":[1]}]", "[Tfi[1](1)]"},
    {"{\"shape\":[2],\"dtype\":\"float64\",\"base64\":"
     "\"AAAAAAAA8D8AAAAAAAAAQA==\"}",
     "Tbi[2](1,2)"},
    {"{\"base64\":\"AAAAAAAA8D8AAAAAAAAAQA==\",\"dtype\":\"float64\","
     "\"shape\":[1,2]}",
     "Tbi[1,2](1,2)"},
    {"{\"dtype\":\"float64\",\"shape\":[2],\"base64\":"
     "\"AAAAAAAA8D8AAAAAAAAAQA==\"}",
     "Tbi[2](1,2)"},
    {"{\"shape\":[1],\"dtype\":\"float32\",\"base64\":\"AADAPw==\"}",
     "Tb[1](1.5)"},
    {"{\"shape\":[2],\"dtype\":\"int32\",\"base64\":\"/////wIAAAA=\"}",
     "Tbi[2](-1,2)"},
    {"{\"shape\":[1],\"dtype\":\"int64\",\"base64\":\"AQAAAAAAIAA=\"}",
     "Tbi[1](9007199254740992)"},
    {"{\"shape\":[1],\"dtype\":\"float32\",\"base64\":\"AADAfw==\"}",
     "Tb[1](nan)"},
    {"{\"shape\":[0],\"dtype\":\"int32\",\"base64\":\"\"}", "Tbi[0]()"},
    {"{\"shape\":[2,0,3],\"dtype\":\"int32\",\"base64\":\"\"}", "Tbi[2,0,3]()"},
};

struct err_case {
    const char *json;
    size_t len; /* 0: strlen(json) */
    enum loss_status status;
    const char *pointer; /* NULL: a syntax error at offset */
    long long offset;
    const char *detail; /* a substring of the detail */
};

#define SYN(j, off, det)                                                       \
    {                                                                          \
        j, 0, LOSS_EJSON, NULL, off, det                                       \
    }
#define PTR(j, st, ptr, det)                                                   \
    {                                                                          \
        j, 0, st, ptr, -1, det                                                 \
    }

static const struct err_case err_cases[] = {
    /* syntax */
    SYN("", 0, "empty"),
    SYN("   ", 3, "end"),
    SYN("[1,2", 4, "end"),
    SYN("[1,2,", 5, "end"),
    SYN("{\"a\":", 5, "end"),
    SYN("\"abc", 4, "end"),
    SYN("\"\\u12", 5, "end"),
    SYN("[1,]", 3, "expected a value"),
    SYN("[,1]", 1, "expected a value"),
    SYN("{\"a\":1,}", 7, "key"),
    SYN("{,}", 1, "key"),
    SYN("{\"a\" 1}", 5, "':'"),
    SYN("{\"a\":1 \"b\":2}", 7, "','"),
    SYN("{1:2}", 1, "key"),
    SYN("[1 2]", 3, "','"),
    SYN("[1] [2]", 4, "trailing"),
    SYN("1 2", 2, "trailing"),
    SYN("]", 0, "expected a value"),
    SYN("}", 0, "expected a value"),
    SYN("[}", 1, "expected a value"),
    SYN("{]", 1, "key"),
    SYN("[1}", 2, "']'"),
    SYN("{\"a\":1]", 6, "'}'"),
    SYN("01", 0, "invalid number"),
    SYN("[-01]", 1, "invalid number"),
    SYN("[1.]", 1, "invalid number"),
    SYN("[1.e5]", 1, "invalid number"),
    SYN("[.5]", 1, "expected a value"),
    SYN("[1e]", 1, "invalid number"),
    SYN("[1e+]", 1, "invalid number"),
    SYN("[+1]", 1, "expected a value"),
    SYN("[--1]", 1, "invalid number"),
    SYN("[1-2]", 1, "invalid number"),
    SYN("[1.2.3]", 1, "invalid number"),
    SYN("-", 0, "invalid number"),
    SYN("[0x10]", 2, "','"),
    SYN("[1x]", 2, "','"),
    SYN("NaN", 0, "send the string \"NaN\""),
    SYN("[1, NaN]", 4, "send the string \"NaN\""),
    SYN("{\"a\":NaN}", 5, "send the string \"NaN\""),
    SYN("Infinity", 0, "send the string \"Infinity\""),
    SYN("[-Infinity]", 1, "send the string \"-Infinity\""),
    SYN("-Infinity", 0, "send the string \"-Infinity\""),
    SYN("[nan]", 2, "literal"),
    SYN("1e400", 0, "number out of range"),
    SYN("[1, -1e400]", 4, "number out of range"),
    SYN("{\"a\": 1e309}", 6, "number out of range"),
    SYN("[1.7976931348623159e308]", 1, "number out of range"),
    SYN("tru", 3, "end"),
    SYN("trUe", 2, "literal"),
    SYN("[nul]", 4, "literal"),
    SYN("[True]", 1, "expected a value"),
    SYN("truex", 4, "trailing"),
    SYN("'a'", 0, "expected a value"),
    SYN("\xef\xbb\xbf[1]", 0, "expected a value"),
    /* strings */
    SYN("\"a\x01\"", 2, "control character"),
    SYN("\"\t\"", 1, "control character"),
    SYN("\"\\x\"", 2, "escape"),
    SYN("\"\\U0041\"", 2, "escape"),
    SYN("\"\\u12G4\"", 5, "hex"),
    SYN("\"\\ud800\"", 7, "surrogate"),
    SYN("\"\\ud800x\"", 7, "surrogate"),
    SYN("\"\\ud800\\n\"", 8, "surrogate"),
    SYN("\"\\udc00\"", 6, "surrogate"),
    SYN("\"\\ud800\\u0041\"", 12, "surrogate"),
    SYN("\"\\udbff\\udbff\"", 12, "surrogate"),
    SYN("\"\xc0\x80\"", 1, "UTF-8"),
    SYN("\"\xc1\xbf\"", 1, "UTF-8"),
    SYN("\"\xe0\x80\x80\"", 2, "UTF-8"),
    SYN("\"\xe0\x9f\xbf\"", 2, "UTF-8"),
    SYN("\"\xed\xa0\x80\"", 2, "UTF-8"),
    SYN("\"\xf0\x8f\xbf\xbf\"", 2, "UTF-8"),
    SYN("\"\xf4\x90\x80\x80\"", 2, "UTF-8"),
    SYN("\"\xf5\x80\x80\x80\"", 1, "UTF-8"),
    SYN("\"\xff\"", 1, "UTF-8"),
    SYN("\"\x80\"", 1, "UTF-8"),
    SYN("\"\xc3\"", 2, "UTF-8"),
    SYN("\"\xe2\x82\"", 3, "UTF-8"),
    SYN("\"\xe2\x82", 3, "end"),
    SYN("[\xc3\xa9]", 1, "expected a value"),
    {"[1]\0", 4, LOSS_EJSON, NULL, 3, "trailing"},
    {"\"a\0\"", 4, LOSS_EJSON, NULL, 2, "control character"},
    {"\0", 1, LOSS_EJSON, NULL, 0, "expected a value"},
    /* tensors */
    PTR("[[1,2],[3]]", LOSS_ETENSOR, "/1", "ragged"),
    PTR("[[1,2],[3,4,5]]", LOSS_ETENSOR, "/1", "ragged"),
    PTR("[[1,2],[3,4],[5]]", LOSS_ETENSOR, "/2", "ragged"),
    PTR("{\"input\":[[1,2],[3,4],[5,6,7]]}", LOSS_ETENSOR, "/input/2",
        "ragged"),
    PTR("[1,[2]]", LOSS_ETENSOR, "/1", "expected a number"),
    PTR("[[1],2]", LOSS_ETENSOR, "/1", "expected an array"),
    PTR("[[[1]],[[2],[3]]]", LOSS_ETENSOR, "/1", "ragged"),
    PTR("[[], [[1]]]", LOSS_ETENSOR, "/1/0", "expected a number"),
    PTR("[[[]], []]", LOSS_ETENSOR, "/1", "ragged"),
    PTR("[[[1]], []]", LOSS_ETENSOR, "/1", "ragged"),
    PTR("[[], 1]", LOSS_ETENSOR, "/1", "expected an array"),
    PTR("[1,\"a\"]", LOSS_ETENSOR, "/1", "found a string"),
    PTR("[1,\"nan\"]", LOSS_ETENSOR, "/1", "found a string"),
    PTR("[1,true]", LOSS_ETENSOR, "/1", "found a boolean"),
    PTR("[1,{}]", LOSS_ETENSOR, "/1", "found an object"),
    PTR("[[1],[\"x\"]]", LOSS_ETENSOR, "/1/0", "found a string"),
    PTR("[\"NaN\",\"x\"]", LOSS_ETENSOR, "/1", "found a string"),
    PTR("{\"a/b\":{\"c~d\":[1,\"x\"]}}", LOSS_ETENSOR, "/a~1b/c~0d/1",
        "found a string"),
    PTR("[\"a\",[1,[2]]]", LOSS_ETENSOR, "/1/1", "expected a number"),
    PTR("[1,null]", LOSS_EVALUE, "/1", "null"),
    PTR("[null]", LOSS_EVALUE, "/0", "null"),
    PTR("[[null]]", LOSS_EVALUE, "/0/0", "null"),
    PTR("{\"a\":[[1],[null]]}", LOSS_EVALUE, "/a/1/0", "null"),
    /* tensor objects */
    PTR("{\"shape\":[2],\"data\":[1]}", LOSS_ETENSOR, "/data",
        "data has 1 numbers but shape [2] has 2"),
    PTR("{\"shape\":[2],\"data\":[[1,2]]}", LOSS_ETENSOR, "/data", "flat"),
    PTR("{\"shape\":[2],\"data\":\"12\"}", LOSS_ETENSOR, "/data", "flat"),
    PTR("{\"shape\":[2],\"data\":[\"a\",\"b\"]}", LOSS_ETENSOR, "/data",
        "flat"),
    PTR("{\"shape\":[2],\"data\":{\"shape\":[2],\"data\":[1,2]}}", LOSS_ETENSOR,
        "/data", "flat"),
    PTR("{\"shape\":[2]}", LOSS_ETENSOR, "", "needs data"),
    PTR("{\"x\":{\"shape\":[1],\"data\":[1],\"base64\":\"\"}}", LOSS_ETENSOR,
        "/x", "not both"),
    PTR("{\"shape\":[2.5],\"data\":[]}", LOSS_ETENSOR, "/shape/0",
        "non-negative integers"),
    PTR("{\"shape\":[-1],\"data\":[]}", LOSS_ETENSOR, "/shape/0",
        "non-negative integers"),
    PTR("{\"shape\":[1,\"NaN\"],\"data\":[]}", LOSS_ETENSOR, "/shape/1",
        "non-negative integers"),
    PTR("{\"shape\":[[1]],\"data\":[1]}", LOSS_ETENSOR, "/shape",
        "non-negative integers"),
    PTR("{\"shape\":[1,[1]],\"data\":[1]}", LOSS_ETENSOR, "/shape/1",
        "non-negative integers"),
    PTR("{\"shape\":\"x\",\"data\":[]}", LOSS_ETENSOR, "/shape",
        "non-negative integers"),
    PTR("{\"shape\":[\"a\"],\"data\":[]}", LOSS_ETENSOR, "/shape",
        "non-negative integers"),
    PTR("{\"shape\":{\"shape\":[1],\"data\":[1]},\"data\":[1]}", LOSS_ETENSOR,
        "/shape", "non-negative integers"),
    PTR("{\"shape\":[1],\"dtype\":\"float16\",\"base64\":\"AAA=\"}",
        LOSS_ETENSOR, "/dtype", "float32, float64, int32 or int64"),
    PTR("{\"shape\":[1],\"dtype\":1,\"base64\":\"AAA=\"}", LOSS_ETENSOR,
        "/dtype", "float32, float64, int32 or int64"),
    PTR("{\"shape\":[1],\"base64\":\"AAAAAAAAAAA=\"}", LOSS_ETENSOR, "",
        "needs a dtype"),
    PTR("{\"shape\":[1],\"dtype\":\"float64\",\"base64\":\"AAAA\"}",
        LOSS_ETENSOR, "/base64", "8 bytes"),
    PTR("{\"shape\":[1],\"dtype\":\"int32\",\"base64\":\"AA*AAA==\"}",
        LOSS_ETENSOR, "/base64", "base64"),
    PTR("{\"shape\":[1],\"dtype\":\"int32\",\"base64\":\"AAAAAA\"}",
        LOSS_ETENSOR, "/base64", "base64"),
    PTR("{\"shape\":[1],\"dtype\":\"int32\",\"base64\":\"AAA AA==\"}",
        LOSS_ETENSOR, "/base64", "base64"),
    PTR("{\"shape\":[1],\"dtype\":\"int32\",\"base64\":\"A=AAAA==\"}",
        LOSS_ETENSOR, "/base64", "base64"),
    PTR("{\"shape\":[1],\"dtype\":\"int32\",\"base64\":\"AAAAAA=A\"}",
        LOSS_ETENSOR, "/base64", "base64"),
    PTR("{\"shape\":[1],\"dtype\":\"int32\",\"base64\":5}", LOSS_ETENSOR,
        "/base64", "string"),
    PTR("{\"x\":{\"shape\":[1],\"data\":[1],\"extra\":2}}", LOSS_EUNKNOWN,
        "/x/extra", "unknown key"),
    PTR("{\"sha~pe\":1,\"shape\":[1],\"data\":[1]}", LOSS_EUNKNOWN, "/sha~0pe",
        "unknown key"),
    PTR("{\"shape\":[1],\"data\":[1],\"dtype\":\"float64\"}", LOSS_EUNKNOWN,
        "/dtype", "base64 only"),
    /* duplicate keys: the pointer names the second occurrence */
    PTR("{\"a\":1,\"a\":2}", LOSS_EUNKNOWN, "/a", "duplicate"),
    PTR("{\"x\":{\"k~/\":1,\"k~/\":2}}", LOSS_EUNKNOWN, "/x/k~0~1",
        "duplicate"),
    PTR("[{\"a\":1,\"b\":2,\"b\":3,\"a\":4}]", LOSS_EUNKNOWN, "/0/b",
        "duplicate"),
    PTR("{\"shape\":[1],\"data\":[1],\"shape\":[1]}", LOSS_EUNKNOWN, "/shape",
        "duplicate"),
    PTR("{\"a\\u0000\":1,\"a\\u0000\":2}", LOSS_EUNKNOWN, "/a", "duplicate"),
    /* limits of big_limits (depth 64) */
    PTR("[[[[[[[[[1]]]]]]]]]", LOSS_ETOOLARGE, "", "max_rank = 8"),
    PTR("{\"a\":[[[[[[[[[]]]]]]]]]}", LOSS_ETOOLARGE, "/a", "max_rank = 8"),
    PTR("{\"shape\":[1,1,1,1,1,1,1,1,1],\"data\":[1]}", LOSS_ETOOLARGE,
        "/shape/8", "max_rank = 8"),
    PTR("{\"shape\":[4294967296,4294967296,4294967296],\"data\":[]}",
        LOSS_ETOOLARGE, "/shape", "max_elements"),
};

struct limit_case {
    struct proto_limits lim;
    const char *json;
    enum loss_status status; /* LOSS_OK: must decode */
    const char *pointer;
    const char *detail;
};

static const struct limit_case limit_cases[] = {
    {{100, 8, 3, false, 0}, "[[[1]]]", LOSS_OK, NULL, NULL},
    {{100, 8, 3, false, 0},
     "[[[[1]]]]",
     LOSS_ETOOLARGE,
     "/0/0/0",
     "max_depth = 3"},
    {{100, 8, 3, false, 0},
     "[[[[\"a\"]]]]",
     LOSS_ETOOLARGE,
     "/0/0/0",
     "max_depth = 3"},
    {{100, 8, 3, false, 0}, "{\"a\":{\"b\":{\"c\":1}}}", LOSS_OK, NULL, NULL},
    {{100, 8, 3, false, 0},
     "{\"a\":{\"b\":{\"c\":{}}}}",
     LOSS_ETOOLARGE,
     "/a/b/c",
     "max_depth = 3"},
    {{100, 8, 3, false, 0},
     "[{\"a\":[[1]]}]",
     LOSS_ETOOLARGE,
     "/0/a/0",
     "max_depth = 3"},
    {{100, 8, 2, false, 0},
     "[[1],[[1]]]",
     LOSS_ETOOLARGE,
     "/1/0",
     "max_depth = 2"},
    {{100, 8, 0, false, 0}, "1", LOSS_OK, NULL, NULL},
    {{100, 8, 0, false, 0}, "[]", LOSS_ETOOLARGE, "", "max_depth = 0"},
    {{100, 2, 64, false, 0}, "[[1]]", LOSS_OK, NULL, NULL},
    {{100, 2, 64, false, 0}, "[[[1]]]", LOSS_ETOOLARGE, "", "max_rank = 2"},
    {{100, 2, 64, false, 0}, "[[[\"a\"]]]", LOSS_OK, NULL, NULL},
    {{100, 2, 64, false, 0},
     "{\"shape\":[1,1,1],\"data\":[1]}",
     LOSS_ETOOLARGE,
     "/shape/2",
     "max_rank = 2"},
    {{100, 20, 64, false, 0},
     "[[[[[[[[[1]]]]]]]]]",
     LOSS_ETOOLARGE,
     "",
     "max_rank = 8"},
    {{4, 8, 64, false, 0}, "[1,2,3,4]", LOSS_OK, NULL, NULL},
    {{4, 8, 64, false, 0},
     "[1,2,3,4,5]",
     LOSS_ETOOLARGE,
     "/4",
     "max_elements = 4"},
    {{4, 8, 64, false, 0},
     "[[1,2],[3,4],[5,6]]",
     LOSS_ETOOLARGE,
     "/2/0",
     "max_elements = 4"},
    {{4, 8, 64, false, 0},
     "{\"a\":[1,2],\"b\":[3,4,5]}",
     LOSS_ETOOLARGE,
     "/b/2",
     "max_elements = 4"},
    {{4, 8, 64, false, 0},
     "[\"NaN\",1,2,3,\"NaN\"]",
     LOSS_ETOOLARGE,
     "/4",
     "max_elements = 4"},
    {{4, 8, 64, false, 0},
     "{\"shape\":[5],\"data\":[1,2,3,4,5]}",
     LOSS_ETOOLARGE,
     "/shape",
     "max_elements = 4"},
    {{4, 8, 64, false, 0},
     "{\"data\":[1,2,3,4,5],\"shape\":[5]}",
     LOSS_ETOOLARGE,
     "/data/4",
     "max_elements = 4"},
    {{4, 8, 64, false, 0},
     "{\"data\":[1,2,3,4],\"shape\":[4]}",
     LOSS_OK,
     NULL,
     NULL},
    {{4, 8, 64, false, 0},
     "{\"shape\":[4],\"data\":[1,2,3,4]}",
     LOSS_OK,
     NULL,
     NULL},
    {{4, 8, 64, false, 0},
     "{\"shape\":[2,3],\"dtype\":\"float32\",\"base64\":\"\"}",
     LOSS_ETOOLARGE,
     "/shape",
     "max_elements = 4"},
    {{4, 8, 64, false, 0},
     "{\"base64\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"dtype\":\"int32\","
     "\"shape\":[8]}",
     LOSS_ETOOLARGE,
     "/shape",
     "max_elements = 4"},
    {{4, 8, 64, false, 0},
     "{\"a\":[1,2],\"b\":{\"dtype\":\"float32\",\"base64\":\"\","
     "\"shape\":[3]}}",
     LOSS_ETOOLARGE,
     "/b/shape",
     "max_elements = 4"},
    {{4, 8, 64, false, 0},
     "{\"a\":[1,2],\"b\":{\"shape\":[2],\"dtype\":\"int32\",\"base64\":"
     "\"AQAAAAIAAAA=\"}}",
     LOSS_OK,
     NULL,
     NULL},
    {{0, 8, 64, false, 0}, "[]", LOSS_OK, NULL, NULL},
    /* an empty tensor counts its dimensions but 0: a loss over a (10^8, 0)
       tensor has 10^8 samples */
    {{4, 8, 64, false, 0},
     "{\"shape\":[5,0],\"data\":[]}",
     LOSS_ETOOLARGE,
     "/shape",
     "spans 5 elements"},
    {{4, 8, 64, false, 0},
     "{\"shape\":[100000000,0],\"dtype\":\"float64\",\"base64\":\"\"}",
     LOSS_ETOOLARGE,
     "/shape",
     "spans 100000000 elements"},
    {{4, 8, 64, false, 0},
     "{\"a\":{\"shape\":[2,0,2],\"data\":[]},\"b\":{\"shape\":[0,0],"
     "\"data\":[]}}",
     LOSS_OK,
     NULL,
     NULL},
    {{4, 8, 64, false, 0},
     "{\"a\":[1,2],\"b\":{\"shape\":[0,3],\"data\":[]}}",
     LOSS_ETOOLARGE,
     "/b/shape",
     "spans 3 elements"},
    {{4, 8, 64, false, 0},
     "{\"a\":[1,2],\"b\":{\"shape\":[3,0],\"dtype\":\"int64\","
     "\"base64\":\"\"}}",
     LOSS_ETOOLARGE,
     "/b/shape",
     "spans 3 elements"},
    {{4, 8, 64, false, 0}, "[[],[],[],[]]", LOSS_OK, NULL, NULL},
    {{4, 8, 64, false, 0},
     "{\"a\":[[],[],[],[],[]]}",
     LOSS_ETOOLARGE,
     "/a",
     "an empty tensor spans more elements"},

    {{0, 8, 64, false, 0}, "[1]", LOSS_ETOOLARGE, "/0", "max_elements = 0"},
};

/* --- table tests ------------------------------------------------------------
 */

static size_t case_len(const struct err_case *c)
{
    return c->len ? c->len : strlen(c->json);
}

/* What an error case must print (decode_split's format) without detail. */
static void err_want(const struct err_case *c, struct sb *out)
{
    sb_reset(out);
    sb_printf(out, "%s ", loss_status_name(c->status));
    if (c->pointer != NULL)
        sb_printf(out, "ptr=%s", c->pointer);
    else
        sb_printf(out, "off=%lld", c->offset);
}

START_TEST(test_valid_bodies)
{
    struct sb got = {0}, want = {0};
    int failed = 0;

    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
        const struct ok_case *c = &ok_cases[i];

        decode_whole(c->json, strlen(c->json), &big_limits, &got);
        sb_reset(&want);
        sb_printf(&want, "ok %s", c->want);
        if (strcmp(got.p, want.p) != 0) {
            fprintf(stderr, "valid case %zu %s:\n  got  %s\n  want %s\n", i,
                    c->json, got.p, want.p);
            failed++;
        }
    }
    sb_free(&got);
    sb_free(&want);
    ck_assert_msg(failed == 0, "%d valid cases failed (see log)", failed);
}
END_TEST

START_TEST(test_error_bodies)
{
    struct sb got = {0}, want = {0};
    int failed = 0;

    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        const struct err_case *c = &err_cases[i];
        const char *bar;

        decode_whole(c->json, case_len(c), &big_limits, &got);
        err_want(c, &want);
        bar = strstr(got.p, " | ");
        if (bar == NULL || (size_t)(bar - got.p) != want.len ||
            strncmp(got.p, want.p, want.len) != 0 ||
            strstr(bar, c->detail) == NULL) {
            fprintf(stderr,
                    "error case %zu %s:\n  got  %s\n  want %s | ...%s...\n", i,
                    c->json, got.p, want.p, c->detail);
            failed++;
        }
    }
    sb_free(&got);
    sb_free(&want);
    ck_assert_msg(failed == 0, "%d error cases failed (see log)", failed);
}
END_TEST

START_TEST(test_limit_bodies)
{
    struct sb got = {0};
    int failed = 0;

    for (size_t i = 0; i < sizeof(limit_cases) / sizeof(limit_cases[0]); i++) {
        const struct limit_case *c = &limit_cases[i];
        char want[256];
        bool ok;

        decode_whole(c->json, strlen(c->json), &c->lim, &got);
        if (c->status == LOSS_OK) {
            ok = strncmp(got.p, "ok ", 3) == 0;
            snprintf(want, sizeof(want), "ok ...");
        } else {
            snprintf(want, sizeof(want), "%s ptr=%s | ",
                     loss_status_name(c->status), c->pointer);
            ok = strncmp(got.p, want, strlen(want)) == 0 &&
                 strstr(got.p, c->detail) != NULL;
        }
        if (!ok) {
            fprintf(stderr, "limit case %zu %s:\n  got  %s\n  want %s%s\n", i,
                    c->json, got.p, want, c->detail ? c->detail : "");
            failed++;
        }
    }
    sb_free(&got);
    ck_assert_msg(failed == 0, "%d limit cases failed (see log)", failed);
}
END_TEST

/* --- chunking never changes a result ----------------------------------------
 */

/*
 * Compares whole-buffer decoding of body with: every split in two, byte by
 * byte, and a few random multi-chunk splits. Returns the number of
 * mismatches (printed).
 */
static int check_splits(const char *name, const char *body, size_t len,
                        const struct proto_limits *lim, struct test_rng *rng)
{
    struct sb whole = {0}, got = {0};
    size_t *cuts = calloc(len + 1, sizeof(*cuts));
    int failed = 0;

    ck_assert_ptr_nonnull(cuts);
    decode_whole(body, len, lim, &whole);
    for (size_t at = 0; at <= len; at++) {
        decode_split(body, len, lim, &at, 1, &got);
        if (strcmp(got.p, whole.p) != 0 && failed++ < 3)
            fprintf(stderr, "%s split at %zu:\n  got   %s\n  whole %s\n", name,
                    at, got.p, whole.p);
    }
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    decode_split(body, len, lim, cuts, len > 0 ? len - 1 : 0, &got);
    if (strcmp(got.p, whole.p) != 0 && failed++ < 3)
        fprintf(stderr, "%s byte by byte:\n  got   %s\n  whole %s\n", name,
                got.p, whole.p);
    for (int r = 0; r < 4 && len > 2; r++) {
        size_t n = 0, at = 0;

        while (at < len) {
            at += 1 + (size_t)(test_rng_uniform(rng) * 7);
            if (at < len)
                cuts[n++] = at;
        }
        decode_split(body, len, lim, cuts, n, &got);
        if (strcmp(got.p, whole.p) != 0 && failed++ < 3)
            fprintf(stderr, "%s random chunks:\n  got   %s\n  whole %s\n", name,
                    got.p, whole.p);
    }
    free(cuts);
    sb_free(&whole);
    sb_free(&got);
    return failed;
}

START_TEST(test_split_everywhere)
{
    struct test_rng rng;
    int failed = 0;
    size_t n = 0;

    test_rng_seed(&rng, 7);
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++, n++)
        failed += check_splits(ok_cases[i].json, ok_cases[i].json,
                               strlen(ok_cases[i].json), &big_limits, &rng);
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++, n++)
        failed += check_splits(err_cases[i].json, err_cases[i].json,
                               case_len(&err_cases[i]), &big_limits, &rng);
    for (size_t i = 0; i < sizeof(limit_cases) / sizeof(limit_cases[0]);
         i++, n++)
        failed += check_splits(limit_cases[i].json, limit_cases[i].json,
                               strlen(limit_cases[i].json), &limit_cases[i].lim,
                               &rng);
    fprintf(stderr, "split test: %zu bodies\n", n);
    ck_assert_msg(failed == 0, "%d split mismatches (see log)", failed);
}
END_TEST

/* --- recovery from value errors ------------------------------------------
 */

static const struct proto_limits recover_limits = {
    .max_elements = (size_t)1 << 40,
    .max_rank = 8,
    .max_depth = 64,
    .recover_values = true,
    .max_value_errors = 64,
};

struct recover_case {
    const char *json;
    const char *want;   /* the dump: !<status>@<pointer> for invalid values */
    const char *errors; /* every error, "<status>@<pointer>", in order */
};

#define ET "invalid-tensor@"
#define EV "invalid-value@"
#define EU "unknown-field@"

/*
 * Every value-level error class inside a larger document: the offending
 * value (the tensor, the tensor object, the duplicate's value) is replaced
 * and decoding goes on with the values after it.
 */
static const struct recover_case recover_cases[] = {
    /* ragged tensors, at every kind of token */
    {"{\"a\":[[1,2],[3,4,5]],\"b\":[1]}", "{\"a\":!" ET "/a/1,\"b\":Tni[1](1)}",
     ET "/a/1"},
    {"{\"a\":[[1,2],[3]],\"b\":2}", "{\"a\":!" ET "/a/1,\"b\":2}", ET "/a/1"},
    {"{\"a\":[1,[2,[3]]],\"b\":true}", "{\"a\":!" ET "/a/1,\"b\":true}",
     ET "/a/1"},
    {"{\"a\":[[1],2,[3]],\"b\":1}", "{\"a\":!" ET "/a/1,\"b\":1}", ET "/a/1"},
    {"{\"a\":[[1],[[[[\"x\"]]]]],\"b\":1}", "{\"a\":!" ET "/a/1/0,\"b\":1}",
     ET "/a/1/0"},
    {"{\"a\":[[],[1]],\"b\":[]}", "{\"a\":!" ET "/a/1,\"b\":Tni[0]()}",
     ET "/a/1"},
    {"[[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8,9],[1]]", "!" ET "/1", ET "/1"},
    {"[[[1]],[[2],[3]]]", "!" ET "/1", ET "/1"},
    /* non-numbers in a tensor; what is skipped may hold anything */
    {"{\"a\":[1,\"x\",{\"k\":[1],\"k\":2}],\"b\":1}",
     "{\"a\":!" ET "/a/1,\"b\":1}", ET "/a/1"},
    {"{\"x\":[[1,true]],\"y\":[2]}", "{\"x\":!" ET "/x/0/1,\"y\":Tni[1](2)}",
     ET "/x/0/1"},
    {"{\"a\":[1,{\"shape\":[1],\"data\":[1]}],\"b\":[2]}",
     "{\"a\":!" ET "/a/1,\"b\":Tni[1](2)}", ET "/a/1"},
    {"[\"a\",[1,[2]],[3]]", "[\"a\",!" ET "/1/1,Tni[1](3)]", ET "/1/1"},
    /* null in a tensor */
    {"{\"a\":[1,null,3],\"b\":[null]}", "{\"a\":!" EV "/a/1,\"b\":!" EV "/b/0}",
     EV "/a/1 " EV "/b/0"},
    {"{\"a\":[[1],[null,\"NaN\"]],\"b\":1}", "{\"a\":!" EV "/a/1/0,\"b\":1}",
     EV "/a/1/0"},
    {"[null]", "!" EV "/0", EV "/0"},
    /* tensor objects: the object is invalid, with its member's error */
    {"{\"x\":{\"shape\":[[1]],\"data\":[1]},\"y\":1}",
     "{\"x\":!" ET "/x/shape,\"y\":1}", ET "/x/shape"},
    {"{\"x\":{\"shape\":[1.5],\"data\":[1]},\"y\":1}",
     "{\"x\":!" ET "/x/shape/0,\"y\":1}", ET "/x/shape/0"},
    {"{\"x\":{\"shape\":[1,\"a\"],\"data\":[1]}}", "{\"x\":!" ET "/x/shape/1}",
     ET "/x/shape/1"},
    {"{\"x\":{\"shape\":[1,[1]],\"data\":[1]}}", "{\"x\":!" ET "/x/shape/1}",
     ET "/x/shape/1"},
    {"{\"x\":{\"shape\":\"x\",\"data\":[1]}}", "{\"x\":!" ET "/x/shape}",
     ET "/x/shape"},
    {"{\"x\":{\"shape\":[2],\"data\":[1]},\"y\":[1]}",
     "{\"x\":!" ET "/x/data,\"y\":Tni[1](1)}", ET "/x/data"},
    {"{\"x\":{\"shape\":[2],\"data\":[[1,2]]}}", "{\"x\":!" ET "/x/data}",
     ET "/x/data"},
    {"{\"x\":{\"shape\":[2],\"data\":[1,[2]]}}", "{\"x\":!" ET "/x/data/1}",
     ET "/x/data/1"},
    {"{\"x\":{\"shape\":[2],\"data\":[1,null]}}", "{\"x\":!" EV "/x/data/1}",
     EV "/x/data/1"},
    {"{\"x\":{\"shape\":[1],\"dtype\":\"int32\",\"base64\":\"!!!!\"},\"y\":1}",
     "{\"x\":!" ET "/x/base64,\"y\":1}", ET "/x/base64"},
    {"{\"x\":{\"shape\":[1],\"dtype\":\"int8\",\"base64\":\"AA==\"},\"y\":1}",
     "{\"x\":!" ET "/x/dtype,\"y\":1}", ET "/x/dtype"},
    {"{\"x\":{\"shape\":[1],\"dtype\":\"int32\",\"base64\":5}}",
     "{\"x\":!" ET "/x/base64}", ET "/x/base64"},
    {"{\"x\":{\"shape\":[1],\"base64\":\"AAAAAA==\"}}", "{\"x\":!" ET "/x}",
     ET "/x"},
    {"{\"x\":{\"shape\":[2]},\"y\":[1]}", "{\"x\":!" ET "/x,\"y\":Tni[1](1)}",
     ET "/x"},
    {"{\"x\":{\"shape\":[1],\"data\":[1],\"base64\":\"\"}}",
     "{\"x\":!" ET "/x}", ET "/x"},
    {"{\"x\":{\"shape\":[1],\"data\":[1],\"extra\":2},\"y\":1}",
     "{\"x\":!" EU "/x/extra,\"y\":1}", EU "/x/extra"},
    {"{\"x\":{\"shape\":[1],\"data\":[1],\"dtype\":\"float64\"}}",
     "{\"x\":!" EU "/x/dtype}", EU "/x/dtype"},
    {"[{\"shape\":[2],\"data\":[1]},{\"shape\":[1],\"data\":[1]}]",
     "[!" ET "/0/data,Tfi[1](1)]", ET "/0/data"},
    /* duplicate keys: the first member is kept, the duplicate's value is
       invalid, each duplicate is an error */
    {"{\"a\":1,\"b\":[2],\"a\":3}", "{\"a\":1,\"b\":Tni[1](2),\"a\":!" EU "/a}",
     EU "/a"},
    {"{\"a\":1,\"a\":2,\"a\":3}", "{\"a\":1,\"a\":!" EU "/a,\"a\":!" EU "/a}",
     EU "/a " EU "/a"},
    {"{\"a\":1,\"a\":[null]}", "{\"a\":1,\"a\":!" EV "/a/0}",
     EV "/a/0 " EU "/a"},
    {"{\"x\":{\"k~/\":1,\"k~/\":2},\"y\":{\"b\":1,\"a\":2,\"b\":3}}",
     "{\"x\":{\"k~/\":1,\"k~/\":!" EU "/x/k~0~1},\"y\":{\"b\":1,\"a\":2,"
     "\"b\":!" EU "/y/b}}",
     EU "/x/k~0~1 " EU "/y/b"},
    {"{\"x\":{\"shape\":[1],\"data\":[1],\"shape\":[1]}}",
     "{\"x\":!" EU "/x/shape}", EU "/x/shape"},
    /* found in the order a decoder without recovery would meet them */
    {"{\"x\":{\"a\":1,\"a\":2,\"b\":[null]},\"y\":[[1],[]]}",
     "{\"x\":{\"a\":1,\"a\":!" EU "/x/a,\"b\":!" EV "/x/b/0},\"y\":!" ET
     "/y/1}",
     EV "/x/b/0 " EU "/x/a " ET "/y/1"},
    /* a batch: errors in items, the rest decoded */
    {"{\"requests\":[{\"input\":[[1],[1,2]],\"id\":1},{\"input\":[1]},"
     "{\"input\":[1],\"input\":[2]}],\"shared\":{\"target\":[1]}}",
     "{\"requests\":[{\"input\":!" ET "/requests/0/input/1,\"id\":1},"
     "{\"input\":Tni[1](1)},{\"input\":Tni[1](1),\"input\":!" EU
     "/requests/2/input}],\"shared\":{\"target\":Tni[1](1)}}",
     ET "/requests/0/input/1 " EU "/requests/2/input"},
};

/*
 * Syntax errors and limits stay fatal, also after a value error and inside
 * what recovery skips; the first value error before them changes nothing.
 */
static const struct err_case recover_fatal_cases[] = {
    SYN("{\"a\":[null],\"b\":[1,]}", 19, "expected a value"),
    SYN("{\"a\":[[1],[2,3,]]}", 15, "expected a value"),
    SYN("{\"a\":[null,\"\x01\"]}", 12, "control character"),
    SYN("{\"a\":[1,{\"k\" 1}]}", 13, "':'"),
    SYN("{\"a\":[1,{\"k\":1]}]}", 14, "'}'"),
    SYN("{\"a\":[1,[2}]}", 10, "']'"),
    SYN("{\"a\":[null,NaN]}", 11, "send the string \"NaN\""),
    SYN("{\"a\":[null,1e999]}", 11, "number out of range"),
    SYN("{\"a\":[null,\"\\ud800\"]}", 18, "surrogate"),
    SYN("{\"a\":[null,nul]}", 14, "literal"),
    SYN("{\"a\":[null]} x", 13, "trailing"),
    SYN("[[1],[2]", 8, "end"),
    SYN("{\"a\":1,\"a\":2", 12, "end"),
    SYN("{\"x\":{\"shape\":[2],\"data\":[1]},}", 30, "key"),
    PTR("{\"a\":[null],\"b\":[[[[[[[[[1]]]]]]]]]}", LOSS_ETOOLARGE, "/b",
        "max_rank = 8"),
    PTR("{\"a\":[null],\"b\":{\"shape\":[4294967296,4294967296,4294967296],"
        "\"data\":[]}}",
        LOSS_ETOOLARGE, "/b/shape", "max_elements"),
};

static const struct limit_case recover_limit_cases[] = {
    /* depth counts in skipped values */
    {{100, 8, 3, true, 8}, "{\"a\":[null,[1]]}", LOSS_OK, NULL, NULL},
    {{100, 8, 3, true, 8},
     "{\"a\":[null,[[1]]]}",
     LOSS_ETOOLARGE,
     "/a",
     "max_depth = 3"},
    {{100, 8, 3, true, 8},
     "{\"a\":[1,{\"b\":{}}]}",
     LOSS_ETOOLARGE,
     "/a",
     "max_depth = 3"},
    /* numbers of skipped tensors count as elements, a shape's never */
    {{4, 8, 64, true, 8}, "[[1,2],[3],[4]]", LOSS_OK, NULL, NULL},
    {{4, 8, 64, true, 8},
     "[[1,2],[3],[4,5,6]]",
     LOSS_ETOOLARGE,
     "",
     "max_elements = 4"},
    {{4, 8, 64, true, 8},
     "[null,1,2,3,\"NaN\",5]",
     LOSS_ETOOLARGE,
     "",
     "max_elements = 4"},
    {{2, 8, 64, true, 8},
     "{\"shape\":[1.5,1,1,1],\"data\":[1,2]}",
     LOSS_OK,
     NULL,
     NULL},
    {{4, 8, 64, true, 8},
     "{\"a\":[null],\"b\":{\"shape\":[9],\"dtype\":\"int32\",\"base64\":\"\"}}",
     LOSS_ETOOLARGE,
     "/b/shape",
     "max_elements = 4"},
    /* rank stays a limit of the tensors that are read */
    {{100, 2, 64, true, 8},
     "{\"a\":[null],\"b\":[[[1]]]}",
     LOSS_ETOOLARGE,
     "/b",
     "max_rank = 2"},
    {{100, 2, 64, true, 8}, "{\"a\":[1,[2,[[[3]]]]]}", LOSS_OK, NULL, NULL},
};

/* "ok <dump> | <status>@<pointer> ..." or "<status> ..." of decode_split */
static void recover_summary(const char *body, size_t len,
                            const struct proto_limits *lim, struct sb *out)
{
    struct proto_doc *doc = NULL;
    struct loss_error err;
    enum loss_status st;

    loss_error_init(&err);
    st = proto_decode(body, len, lim, &doc, &err);
    sb_reset(out);
    if (st != LOSS_OK) {
        sb_printf(out, "%s", loss_status_name(st));
        return;
    }
    sb_puts(out, "ok ");
    dump(out, proto_doc_root(doc));
    sb_puts(out, " |");
    for (size_t i = 0; i < proto_doc_errors(doc, NULL); i++) {
        const struct loss_error *e = proto_doc_error(doc, i);

        sb_printf(out, " %s@%s", loss_status_name(e->status), e->pointer);
    }
    proto_doc_free(doc);
}

START_TEST(test_recover_values)
{
    struct sb got = {0}, want = {0};
    struct test_rng rng;
    int failed = 0;

    test_rng_seed(&rng, 11);
    for (size_t i = 0; i < sizeof(recover_cases) / sizeof(*recover_cases);
         i++) {
        const struct recover_case *c = &recover_cases[i];

        recover_summary(c->json, strlen(c->json), &recover_limits, &got);
        sb_reset(&want);
        sb_printf(&want, "ok %s | %s", c->want, c->errors);
        if (strcmp(got.p, want.p) != 0) {
            fprintf(stderr, "recover case %zu %s:\n  got  %s\n  want %s\n", i,
                    c->json, got.p, want.p);
            failed++;
        }
        /* chunk boundaries never change a result, recovering or not */
        failed += check_splits(c->json, c->json, strlen(c->json),
                               &recover_limits, &rng);
    }
    sb_free(&got);
    sb_free(&want);
    ck_assert_msg(failed == 0, "%d recover cases failed (see log)", failed);
}
END_TEST

START_TEST(test_recover_fatal)
{
    struct sb got = {0}, want = {0};
    struct test_rng rng;
    int failed = 0;

    test_rng_seed(&rng, 12);
    for (size_t i = 0;
         i < sizeof(recover_fatal_cases) / sizeof(*recover_fatal_cases); i++) {
        const struct err_case *c = &recover_fatal_cases[i];
        const char *bar;

        decode_whole(c->json, case_len(c), &recover_limits, &got);
        err_want(c, &want);
        bar = strstr(got.p, " | ");
        if (bar == NULL || (size_t)(bar - got.p) != want.len ||
            strncmp(got.p, want.p, want.len) != 0 ||
            strstr(bar, c->detail) == NULL) {
            fprintf(stderr,
                    "fatal case %zu %s:\n  got  %s\n  want %s | ...%s...\n", i,
                    c->json, got.p, want.p, c->detail);
            failed++;
        }
        failed +=
            check_splits(c->json, c->json, case_len(c), &recover_limits, &rng);
    }
    for (size_t i = 0;
         i < sizeof(recover_limit_cases) / sizeof(*recover_limit_cases); i++) {
        const struct limit_case *c = &recover_limit_cases[i];
        char w[256];
        bool ok;

        decode_whole(c->json, strlen(c->json), &c->lim, &got);
        if (c->status == LOSS_OK) {
            ok = strncmp(got.p, "ok ", 3) == 0 && strstr(got.p, " errors ");
            snprintf(w, sizeof(w), "ok ... errors ...");
        } else {
            snprintf(w, sizeof(w), "%s ptr=%s | ", loss_status_name(c->status),
                     c->pointer);
            ok = strncmp(got.p, w, strlen(w)) == 0 &&
                 strstr(got.p, c->detail) != NULL;
        }
        if (!ok) {
            fprintf(stderr,
                    "recover limit case %zu %s:\n  got  %s\n  want %s\n", i,
                    c->json, got.p, w);
            failed++;
        }
        failed +=
            check_splits(c->json, c->json, strlen(c->json), &c->lim, &rng);
    }
    sb_free(&got);
    sb_free(&want);
    ck_assert_msg(failed == 0, "%d fatal cases failed (see log)", failed);
}
END_TEST

/*
 * With recovery, every body of the tables gives what it gave without,
 * except that a value error becomes a document whose first error is that
 * very error (status, pointer and detail), and decoding, split anywhere,
 * agrees with decoding whole.
 */
START_TEST(test_recover_matches_first_error)
{
    struct sb plain = {0}, rec = {0}, first = {0};
    struct test_rng rng;
    int failed = 0;
    size_t recovered = 0;

    test_rng_seed(&rng, 13);
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(*err_cases) +
                               sizeof(ok_cases) / sizeof(*ok_cases);
         i++) {
        bool is_ok = i >= sizeof(err_cases) / sizeof(*err_cases);
        const char *json =
            is_ok ? ok_cases[i - sizeof(err_cases) / sizeof(*err_cases)].json
                  : err_cases[i].json;
        size_t len = is_ok ? strlen(json) : case_len(&err_cases[i]);
        enum loss_status st = is_ok ? LOSS_OK : err_cases[i].status;

        decode_whole(json, len, &big_limits, &plain);
        decode_whole(json, len, &recover_limits, &rec);
        if (st == LOSS_ETENSOR || st == LOSS_EVALUE || st == LOSS_EUNKNOWN) {
            /* "<status> ptr=<p> | <detail>" becomes "... errors k/n:
               <status>@<p> (<detail>)" */
            const char *bar = strstr(plain.p, " | ");
            const char *sp = strchr(plain.p, ' ');

            const char *list;

            sb_reset(&first);
            sb_add(&first, ": ", 2);
            sb_add(&first, plain.p, (size_t)(sp - plain.p));
            sb_add(&first, "@", 1);
            sb_add(&first, sp + 5, (size_t)(bar - (sp + 5)));
            sb_printf(&first, " (%s)", bar + 3);
            list = strstr(rec.p, " errors ");
            list = list ? strchr(list, ':') : NULL;
            if (strncmp(rec.p, "ok ", 3) != 0 || list == NULL ||
                strncmp(list, first.p, first.len) != 0) {
                fprintf(stderr, "%s:\n  plain    %s\n  recovered %s\n", json,
                        plain.p, rec.p);
                failed++;
            }
            recovered++;
        } else if (strcmp(plain.p, rec.p) != 0) {
            fprintf(stderr, "%s:\n  plain    %s\n  recovered %s\n", json,
                    plain.p, rec.p);
            failed++;
        }
        failed += check_splits(json, json, len, &recover_limits, &rng);
    }
    fprintf(stderr, "recovery: %zu table bodies recovered\n", recovered);
    sb_free(&plain);
    sb_free(&rec);
    sb_free(&first);
    ck_assert_msg(failed == 0, "%d bodies differ (see log)", failed);
    ck_assert_uint_gt(recovered, 50);
}
END_TEST

/*
 * The list keeps the first max_value_errors errors in full, counts the
 * rest, and their values carry only their status; 0 keeps one.
 */
START_TEST(test_recover_bound)
{
    const char *body = "{\"a\":[null],\"b\":[[1],[]],\"c\":1,\"c\":2,"
                       "\"d\":{\"shape\":[2],\"data\":[1]},\"e\":[1,true]}";
    struct proto_limits lim = recover_limits;
    struct proto_doc *doc = NULL;
    struct loss_error err;
    const struct proto_value *root;
    struct proto_tensor pt;
    double scalar;
    size_t total = 0;
    struct sb got = {0};

    lim.max_value_errors = 3;
    loss_error_init(&err);
    ck_assert_int_eq(proto_decode(body, strlen(body), &lim, &doc, &err),
                     LOSS_OK);
    ck_assert_uint_eq(proto_doc_errors(doc, &total), 3);
    ck_assert_uint_eq(total, 5);
    ck_assert_str_eq(proto_doc_error(doc, 0)->pointer, "/a/0");
    ck_assert_str_eq(proto_doc_error(doc, 1)->pointer, "/b/1");
    /* the duplicate "c" is found when the root closes: last */
    ck_assert_str_eq(proto_doc_error(doc, 2)->pointer, "/d/data");
    ck_assert_ptr_null(proto_doc_error(doc, 3));
    dump(&got, proto_doc_root(doc));
    ck_assert_str_eq(got.p, "{\"a\":!invalid-value@/a/0,\"b\":!invalid-tensor@"
                            "/b/1,\"c\":1,\"c\":!unknown-field,\"d\":!invalid-"
                            "tensor@/d/data,\"e\":!invalid-tensor}");
    /* a value past the kept errors: its status, a generic detail, and the
       pointer the caller gives */
    root = proto_doc_root(doc);
    ck_assert_int_eq(
        proto_value_error(&root->u.object.members[5].value, "/e", &err),
        LOSS_ETENSOR);
    ck_assert_str_eq(err.pointer, "/e");
    ck_assert_ptr_nonnull(strstr(err.detail, "too many invalid values"));
    ck_assert_int_eq(proto_value_as_tensor(&root->u.object.members[0].value,
                                           &pt, &scalar, "/a", &err),
                     LOSS_EVALUE);
    ck_assert_str_eq(err.pointer, "/a/0");
    ck_assert_ptr_nonnull(strstr(err.detail, "null in a tensor"));
    ck_assert_ptr_eq(proto_value_find_invalid(root),
                     &root->u.object.members[0].value);
    ck_assert_ptr_null(
        proto_value_find_invalid(&root->u.object.members[2].value));
    ck_assert_int_eq(
        proto_value_error(&root->u.object.members[2].value, "/c", &err),
        LOSS_EINTERNAL);
    ck_assert_str_eq(proto_type_name(PROTO_INVALID), "invalid");
    proto_doc_free(doc);

    /* max_value_errors 0 keeps the first */
    lim.max_value_errors = 0;
    ck_assert_int_eq(proto_decode(body, strlen(body), &lim, &doc, &err),
                     LOSS_OK);
    ck_assert_uint_eq(proto_doc_errors(doc, &total), 1);
    ck_assert_uint_eq(total, 5);
    proto_doc_free(doc);
    sb_free(&got);
}
END_TEST

/*
 * Recovery on hostile bodies: 100k duplicate keys and 100k small invalid
 * tensors cost O(1) each and keep only max_value_errors errors, so the
 * document is no bigger than for valid values.
 */
START_TEST(test_recover_many)
{
    const size_t n = 100000;
    struct sb body = {0};
    struct proto_doc *doc = NULL;
    struct loss_error err;
    size_t total = 0, valid_bytes;

    /* "x" first: a generic array of n tensors, not one tensor */
    sb_puts(&body, "[\"x\"");
    for (size_t i = 0; i < n; i++)
        sb_puts(&body, ",[1]");
    sb_puts(&body, "]");
    ck_assert_int_eq(
        proto_decode(body.p, body.len, &recover_limits, &doc, &err), LOSS_OK);
    valid_bytes = proto_doc_bytes(doc);
    proto_doc_free(doc);
    sb_reset(&body);
    sb_puts(&body, "[\"x\"");
    for (size_t i = 0; i < n; i++)
        sb_puts(&body, ",[null]");
    sb_puts(&body, "]");
    ck_assert_int_eq(
        proto_decode(body.p, body.len, &recover_limits, &doc, &err), LOSS_OK);
    ck_assert_uint_eq(proto_doc_errors(doc, &total),
                      recover_limits.max_value_errors);
    ck_assert_uint_eq(total, n);
    ck_assert_uint_lt(proto_doc_bytes(doc), valid_bytes);
    proto_doc_free(doc);

    /* every key twice: 100k duplicates, in document order */
    sb_reset(&body);
    sb_puts(&body, "{");
    for (size_t i = 0; i < n; i++)
        sb_printf(&body, "%s\"k%zu\":%zu", i ? "," : "", (i * 7919) % n, i);
    for (size_t i = 0; i < n; i++)
        sb_printf(&body, ",\"k%zu\":0", (i * 31) % n);
    sb_puts(&body, "}");
    ck_assert_int_eq(
        proto_decode(body.p, body.len, &recover_limits, &doc, &err), LOSS_OK);
    ck_assert_uint_eq(proto_doc_errors(doc, &total), 64);
    ck_assert_uint_eq(total, n);
    ck_assert_str_eq(proto_doc_error(doc, 0)->pointer, "/k0");
    ck_assert_str_eq(proto_doc_error(doc, 1)->pointer, "/k31");
    ck_assert_int_eq(proto_doc_root(doc)->u.object.members[n].value.type,
                     PROTO_INVALID);
    ck_assert_double_eq(proto_object_get(proto_doc_root(doc), "k0")->u.number,
                        0);
    proto_doc_free(doc);
    sb_free(&body);
}
END_TEST

/* --- numbers, bit for bit against strtod
 * -------------------------------------- */

static void random_number(struct test_rng *r, struct sb *b)
{
    static const char *const special[] = {
        "9007199254740993",
        "9007199254740992",
        "9007199254740991",
        "18014398509481985",
        "2.2250738585072011e-308",
        "2.2250738585072012e-308",
        "4.9406564584124654e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "0.1",
        "0.30000000000000004",
        "123456789012345678901234567890",
        "1e23",
        "8.98846567431158e307",
        "4503599627370496.5",
        "4503599627370497.5",
        "1e22",
        "1e-22",
        "9007199254740992e22",
        "9007199254740993e-22",
        "0.000000000000000000000000000000000000000001",
        "7.038531e-26",
        "-0.0",
        "-0e-999999999999999999999",
        "1e999999999999999999999",
        "1e-999999999999999999999",
        "100000000000000000000000000000000000000e-38",
        "0.0000000000000000000000000000000000000001e40",
    };
    double u = test_rng_uniform(r);

    sb_reset(b);
    if (u < 0.1) {
        sb_puts(b, special[(size_t)(test_rng_uniform(r) *
                                    (sizeof(special) / sizeof(special[0])))]);
        return;
    }
    if (test_rng_uniform(r) < 0.3)
        sb_puts(b, "-");
    if (test_rng_uniform(r) < 0.2) {
        sb_puts(b, "0");
    } else {
        size_t nd = 1 + (size_t)(test_rng_uniform(r) *
                                 (test_rng_uniform(r) < 0.8 ? 17 : 30));

        sb_printf(b, "%c", '1' + (int)(test_rng_uniform(r) * 9));
        for (size_t i = 1; i < nd; i++)
            sb_printf(b, "%c", '0' + (int)(test_rng_uniform(r) * 10));
    }
    if (test_rng_uniform(r) < 0.6) {
        size_t nd = 1 + (size_t)(test_rng_uniform(r) * 22);

        sb_puts(b, ".");
        for (size_t i = 0; i < nd; i++)
            sb_printf(b, "%c", '0' + (int)(test_rng_uniform(r) * 10));
    }
    if (test_rng_uniform(r) < 0.5) {
        double e = test_rng_uniform(r);
        int ev = e < 0.6 ? (int)(test_rng_uniform(r) * 50) - 25
                         : (int)(test_rng_uniform(r) * 700) - 350;

        sb_printf(b, "%s%s%d", test_rng_uniform(r) < 0.5 ? "e" : "E",
                  ev >= 0 && test_rng_uniform(r) < 0.3 ? "+" : "", ev);
    }
}

/* Decodes body and returns the first number in it (tensor or scalar). */
static enum loss_status first_number(const char *body, double *ret,
                                     struct loss_error *err)
{
    struct proto_doc *doc = NULL;
    enum loss_status st =
        proto_decode(body, strlen(body), &big_limits, &doc, err);
    const struct proto_value *v;

    if (st != LOSS_OK)
        return st;
    v = proto_doc_root(doc);
    if (v->type == PROTO_OBJECT)
        v = &v->u.object.members[0].value;
    if (v->type == PROTO_TENSOR)
        *ret = v->u.tensor->t.data[0];
    else
        *ret = v->u.number;
    proto_doc_free(doc);
    return st;
}

START_TEST(test_numbers_match_strtod)
{
    const unsigned long long seed = 20240611;
    struct test_rng rng;
    struct sb tok = {0}, body = {0};
    int failed = 0, ranged = 0;
    const int n = 20000;

    fprintf(stderr, "numbers: seed %llu, %d tokens\n", seed, n);
    test_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        static const char *const wrap[][2] = {
            {"", ""}, {"[", "]"}, {"[0,", "]"}, {"{\"k\":", "}"}};
        char *end;
        double want, got = 0;
        bool overflow;

        random_number(&rng, &tok);
        errno = 0;
        want = strtod(tok.p, &end);
        ck_assert_ptr_eq(end, tok.p + tok.len);
        overflow = errno == ERANGE && (want == HUGE_VAL || want == -HUGE_VAL);
        ranged += overflow;
        for (size_t w = 0; w < 4; w++) {
            struct loss_error err;
            enum loss_status st;

            sb_reset(&body);
            sb_printf(&body, "%s%s%s", wrap[w][0], tok.p, wrap[w][1]);
            loss_error_init(&err);
            st = first_number(body.p, &got, &err);
            if (w == 2 && st == LOSS_OK) {
                /* the second element is the token */
                struct proto_doc *doc = NULL;

                ck_assert_int_eq(
                    proto_decode(body.p, body.len, &big_limits, &doc, &err),
                    LOSS_OK);
                got = proto_doc_root(doc)->u.tensor->t.data[1];
                proto_doc_free(doc);
            }
            if (overflow ? (st != LOSS_EJSON ||
                            strstr(err.detail, "out of range") == NULL)
                         : (st != LOSS_OK ||
                            memcmp(&got, &want, sizeof(got)) != 0)) {
                if (failed++ < 10)
                    fprintf(stderr, "number %s: got %a (%s) want %a\n", body.p,
                            got, loss_status_name(st), want);
            }
        }
    }
    fprintf(stderr, "numbers: %d out of range\n", ranged);

    /*
     * Doubles printed with 15 to 19 significant digits, the prints clients
     * send (and the range of the decoder's Eisel-Lemire fast path),
     * read in one tensor and compared with strtod.
     */
    {
        const size_t m = 200000;
        double *want = malloc(m * sizeof(*want));
        struct proto_doc *doc = NULL;
        struct loss_error err;
        const double *got;

        ck_assert_ptr_nonnull(want);
        sb_reset(&body);
        sb_puts(&body, "[");
        for (size_t i = 0; i < m; i++) {
            double x = test_rng_normal(&rng) *
                       pow(10, (int)(test_rng_uniform(&rng) * 60) - 30);
            char t[64];

            snprintf(t, sizeof(t), "%.*g", 15 + (int)(i % 5), x);
            want[i] = strtod(t, NULL);
            sb_printf(&body, "%s%s", i ? "," : "", t);
        }
        sb_puts(&body, "]");
        ck_assert_int_eq(
            proto_decode(body.p, body.len, &big_limits, &doc, &err), LOSS_OK);
        got = proto_doc_root(doc)->u.tensor->t.data;
        for (size_t i = 0; i < m; i++)
            if (memcmp(&got[i], &want[i], sizeof(double)) != 0 && failed++ < 10)
                fprintf(stderr, "number %zu: got %a want %a\n", i, got[i],
                        want[i]);
        proto_doc_free(doc);
        free(want);
    }
    sb_free(&tok);
    sb_free(&body);
    ck_assert_msg(failed == 0, "%d numbers differ from strtod", failed);
}
END_TEST

/*
 * A tensor of random tokens (random_number(), overflowing ones left out,
 * and %.17g and %.6g prints), separated by ',' and varied white space, fed
 * in chunks of random sizes (1 to 64 bytes, and about 16 KiB): the decoder's
 * hot loop meets tokens, separators and rows cut at every kind of place,
 * and must still store exactly strtod's doubles. A shorter body is also
 * checked split everywhere (check_splits()).
 */
START_TEST(test_numbers_in_chunks)
{
    static const char *const seps[] = {",", ", ", " ,", ",\n  ", "\t,\r\n"};
    const unsigned long long seed = 20261203;
    struct test_rng rng;
    struct sb tok = {0}, body = {0}, row = {0};
    const size_t m = 30000;
    double *want = malloc(m * sizeof(*want));
    size_t *cuts = malloc(m * 64 * sizeof(*cuts) / 4);
    int failed = 0;

    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(cuts);
    test_rng_seed(&rng, seed);
    sb_puts(&body, "{\"input\": [");
    for (size_t i = 0; i < m;) {
        double u = test_rng_uniform(&rng), x;
        char *end;

        if (u < 0.4) {
            random_number(&rng, &tok);
        } else {
            sb_reset(&tok);
            sb_printf(&tok, "%.*g", u < 0.7 ? 17 : 6,
                      (2 * test_rng_uniform(&rng) - 1) *
                          pow(10, (int)(test_rng_uniform(&rng) * 8) - 4));
        }
        errno = 0;
        x = strtod(tok.p, &end);
        if (errno == ERANGE && (x == HUGE_VAL || x == -HUGE_VAL))
            continue;
        want[i] = x;
        sb_printf(&body, "%s%s", i ? seps[i % 5] : "", tok.p);
        if (i < 120)
            sb_printf(&row, "%s%s", i ? seps[i % 5] : "", tok.p);
        i++;
    }
    sb_puts(&body, "]}");
    for (int r = 0; r < 6; r++) {
        struct proto_decoder *d = proto_decoder_new(&big_limits);
        struct proto_doc *doc = NULL;
        struct loss_error err;
        const struct proto_value *in;
        size_t n = 0, at = 0;

        ck_assert_ptr_nonnull(d);
        loss_error_init(&err);
        while (at < body.len) {
            at += r < 3 ? 1 + (size_t)(test_rng_uniform(&rng) * 64)
                        : 16000 + (size_t)(test_rng_uniform(&rng) * 800);
            if (at < body.len)
                cuts[n++] = at;
        }
        for (size_t i = 0, from = 0; i <= n; i++) {
            size_t to = i < n ? cuts[i] : body.len;

            ck_assert_int_eq(
                proto_decoder_feed(d, body.p + from, to - from, &err), LOSS_OK);
            from = to;
        }
        ck_assert_int_eq(proto_decoder_finish(d, &doc, &err), LOSS_OK);
        in = &proto_doc_root(doc)->u.object.members[0].value;
        ck_assert_int_eq(in->type, PROTO_TENSOR);
        ck_assert_uint_eq(in->u.tensor->t.shape[0], m);
        for (size_t i = 0; i < m; i++)
            if (memcmp(&in->u.tensor->t.data[i], &want[i], sizeof(double)) !=
                    0 &&
                failed++ < 10)
                fprintf(stderr, "chunks %d: number %zu: got %a want %a\n", r, i,
                        in->u.tensor->t.data[i], want[i]);
        proto_doc_free(doc);
        proto_decoder_free(d);
    }
    /* 120 of them, and two rows of them, split everywhere */
    sb_reset(&tok);
    sb_printf(&tok, "[%s]", row.p);
    failed += check_splits("numbers", tok.p, tok.len, &big_limits, &rng);
    sb_reset(&tok);
    sb_printf(&tok, "[[%s], [%s]]", row.p, row.p);
    failed += check_splits("rows", tok.p, tok.len, &big_limits, &rng);
    sb_free(&tok);
    sb_free(&body);
    sb_free(&row);
    free(want);
    free(cuts);
    ck_assert_msg(failed == 0, "%d numbers differ (see log)", failed);
}
END_TEST

/* --- base64 of every dtype ---------------------------------------------------
 */

static void b64_encode(const unsigned char *p, size_t n, struct sb *out)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        char q[4];

        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = a[v >> 18 & 63];
        q[1] = a[v >> 12 & 63];
        q[2] = i + 1 < n ? a[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? a[v & 63] : '=';
        sb_add(out, q, 4);
    }
}

static void put_le(unsigned char *p, uint64_t u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(u >> (8 * i));
}

START_TEST(test_base64_dtypes)
{
    static const double vals[] = {0.0,        -0.0,          1.5,
                                  -2.25,      3e38,          1e-30,
                                  16777217.0, -2147483648.0, 2147483647.0};
    static const int32_t i32[] = {
        0, 0, 1, -2, INT32_MAX, INT32_MIN, 16777217, -65536, 2147483647};
    static const int64_t i64[] = {0,
                                  0,
                                  1,
                                  -2,
                                  INT64_MAX,
                                  INT64_MIN,
                                  (INT64_C(1) << 53) + 1,
                                  -(INT64_C(1) << 62) - 1,
                                  2147483647};
    const size_t n = sizeof(vals) / sizeof(vals[0]);
    static const char *const dtypes[] = {"float32", "float64", "int32",
                                         "int64"};
    struct sb body = {0};
    unsigned char raw[9 * 8];

    for (size_t dt = 0; dt < 4; dt++) {
        size_t es = dt % 2 == 0 ? 4 : 8;
        double want[9];
        struct proto_doc *doc = NULL;
        struct loss_error err;
        const struct proto_tensor *pt;

        for (size_t i = 0; i < n; i++) {
            uint64_t u;

            if (dt == 0) {
                float f = (float)vals[i];
                uint32_t u32;

                memcpy(&u32, &f, 4);
                u = u32;
                want[i] = (double)f;
            } else if (dt == 1) {
                memcpy(&u, &vals[i], 8);
                want[i] = vals[i];
            } else if (dt == 2) {
                u = (uint32_t)i32[i];
                want[i] = (double)i32[i];
            } else {
                u = (uint64_t)i64[i];
                want[i] = (double)i64[i];
            }
            put_le(raw + i * es, u, es);
        }
        sb_reset(&body);
        sb_printf(&body, "{\"shape\":[3,3],\"dtype\":\"%s\",\"base64\":\"",
                  dtypes[dt]);
        b64_encode(raw, n * es, &body);
        sb_puts(&body, "\"}");
        loss_error_init(&err);
        ck_assert_msg(proto_decode(body.p, body.len, &big_limits, &doc, &err) ==
                          LOSS_OK,
                      "%s: %s", dtypes[dt], err.detail);
        pt = proto_doc_root(doc)->u.tensor;
        ck_assert_int_eq(pt->encoding, PROTO_ENC_BASE64);
        ck_assert_uint_eq(pt->t.ndim, 2);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(memcmp(&pt->t.data[i], &want[i], 8) == 0,
                          "%s element %zu: %a != %a", dtypes[dt], i,
                          pt->t.data[i], want[i]);
        ck_assert_int_eq(pt->integral, dt >= 2);
        ck_assert_uint_eq(proto_doc_elements(doc), n);
        proto_doc_free(doc);
    }
    sb_free(&body);
}
END_TEST

/* --- limits before memory
 * -------------------------------------------------------- */

/* Feeds body in 4 KiB chunks; returns the status and the peak bytes. */
static enum loss_status feed_peak(const char *body, size_t len,
                                  const struct proto_limits *lim,
                                  size_t *ret_peak, struct loss_error *err)
{
    struct proto_decoder *d = proto_decoder_new(lim);
    struct proto_doc *doc = NULL;
    enum loss_status st = LOSS_OK;
    size_t peak = proto_decoder_bytes(d);

    for (size_t at = 0; at < len && st == LOSS_OK; at += 4096) {
        st = proto_decoder_feed(d, body + at, len - at < 4096 ? len - at : 4096,
                                err);
        if (proto_decoder_bytes(d) > peak)
            peak = proto_decoder_bytes(d);
    }
    if (st == LOSS_OK)
        st = proto_decoder_finish(d, &doc, err);
    proto_doc_free(doc);
    proto_decoder_free(d);
    *ret_peak = peak;
    return st;
}

START_TEST(test_limits_before_memory)
{
    const struct proto_limits lim = {1000, 8, 64, false, 0};
    const size_t n = 4 << 20;
    char *body = malloc(n + 64);
    struct loss_error err;
    size_t peak;
    int len;

    ck_assert_ptr_nonnull(body);
    /* 4 MiB of '[': pending arrays cost nothing, depth stops at 64 */
    memset(body, '[', n);
    ck_assert_int_eq(feed_peak(body, n, &lim, &peak, &err), LOSS_ETOOLARGE);
    ck_assert_ptr_nonnull(strstr(err.detail, "max_depth = 64"));
    ck_assert_uint_lt(peak, 16384);
    /* 4 MiB of {"a": frames stop at 64 too */
    for (size_t i = 0; i + 5 <= n; i += 5)
        memcpy(body + i, "{\"a\":", 5);
    ck_assert_int_eq(feed_peak(body, n - n % 5, &lim, &peak, &err),
                     LOSS_ETOOLARGE);
    ck_assert_uint_lt(peak, 16384);
    /* 4 MiB of numbers: the buffer never outgrows max_elements */
    body[0] = '[';
    for (size_t i = 1; i + 2 <= n; i += 2)
        memcpy(body + i, "1,", 2);
    ck_assert_int_eq(feed_peak(body, n - 1, &lim, &peak, &err), LOSS_ETOOLARGE);
    ck_assert_str_eq(err.pointer, "/1000");
    ck_assert_uint_lt(peak, 1000 * sizeof(double) + 16384);
    /* a declared shape is refused before its base64 is read */
    len = snprintf(body, n,
                   "{\"shape\":[1000000,1000000],\"dtype\":\"float64\","
                   "\"base64\":\"");
    memset(body + len, 'A', n - (size_t)len);
    ck_assert_int_eq(feed_peak(body, n, &lim, &peak, &err), LOSS_ETOOLARGE);
    ck_assert_str_eq(err.pointer, "/shape");
    ck_assert_uint_lt(peak, 16384);
    /* a shape whose product overflows size_t */
    len = snprintf(body, n, "{\"shape\":[9007199254740992,4096],\"data\":[]}");
    ck_assert_int_eq(feed_peak(body, (size_t)len, &lim, &peak, &err),
                     LOSS_ETOOLARGE);
    free(body);
}
END_TEST

/* proto_doc_bytes() of the tensor [1,1,...] of n elements. */
static size_t tensor_doc_bytes(size_t n)
{
    struct sb body = {0};
    struct proto_doc *doc = NULL;
    struct loss_error err;
    size_t bytes;

    sb_puts(&body, "[");
    for (size_t i = 0; i < n; i++)
        sb_puts(&body, i ? ",1" : "1");
    sb_puts(&body, "]");
    ck_assert_int_eq(proto_decode(body.p, body.len, &big_limits, &doc, &err),
                     LOSS_OK);
    ck_assert_uint_eq(proto_doc_elements(doc), n);
    bytes = proto_doc_bytes(doc);
    proto_doc_free(doc);
    sb_free(&body);
    return bytes;
}

/*
 * A tensor of up to 32 elements is copied into the document's arena (no
 * block of its own); a larger one's buffer, doubled from 64 elements, is
 * moved, and shrunk only when 4 KiB or more of it is unused. The document
 * counts the buffer as it is.
 */
START_TEST(test_tensor_buffers)
{
    size_t one = tensor_doc_bytes(1);

    ck_assert_uint_eq(tensor_doc_bytes(0), one);
    /* copied into the arena: at most its 256 bytes more (a second arena
       chunk), never the 64-double buffer */
    ck_assert_uint_le(tensor_doc_bytes(32), one + 32 * sizeof(double) + 64);
    /* 64 doubles, 248 bytes unused */
    ck_assert_uint_ge(tensor_doc_bytes(33), one + 64 * sizeof(double));
    /* 1024 doubles, 192 bytes unused */
    ck_assert_uint_ge(tensor_doc_bytes(1000), one + 1024 * sizeof(double));
    /* 4096 doubles, 2047 unused: shrunk */
    ck_assert_uint_ge(tensor_doc_bytes(2049), one + 2049 * sizeof(double));
    /* the document's list of 16 owned blocks: a pointer and a size each */
    ck_assert_uint_lt(tensor_doc_bytes(2049),
                      one + 2050 * sizeof(double) + 32 * sizeof(void *));
}
END_TEST

/* Feeds body to d (reset first) in chunks of step bytes; the status. */
static enum loss_status feed_steps(struct proto_decoder *d, const char *body,
                                   size_t len, size_t step,
                                   struct proto_doc **ret_doc)
{
    struct loss_error err;
    enum loss_status st = LOSS_OK;

    proto_decoder_reset(d);
    for (size_t o = 0; o < len && st == LOSS_OK; o += step)
        st = proto_decoder_feed(d, body + o, len - o < step ? len - o : step,
                                &err);
    return st == LOSS_OK ? proto_decoder_finish(d, ret_doc, &err) : st;
}

/*
 * A tensor buffer of 2 MiB or more is a mapping of its own (grown with
 * mremap(), shrunk when it closes, unmapped with the document): the values
 * and the byte counts are those of a malloc() buffer; a failed or
 * abandoned one is released. 400000 doubles: mapped at 2 MiB, grown to
 * 4 MiB, shrunk to 3.2 MB.
 */
START_TEST(test_tensor_mapped)
{
    const size_t n = 400000;
    struct proto_decoder *d = proto_decoder_new(&recover_limits);
    struct sb body = {0};
    struct proto_doc *doc = NULL;
    const struct proto_value *root;
    const struct tensor *t;
    struct loss_error err;
    size_t base;

    ck_assert_ptr_nonnull(d);
    base = proto_decoder_bytes(d);
    sb_puts(&body, "[[");
    for (size_t i = 0; i < n; i++)
        sb_printf(&body, "%s%.1f",
                  i == 0       ? ""
                  : i == n / 2 ? "],["
                               : ",",
                  (double)i * 0.5 - 1000);
    sb_puts(&body, "]]");
    ck_assert_int_eq(feed_steps(d, body.p, body.len, 4093, &doc), LOSS_OK);
    root = proto_doc_root(doc);
    ck_assert_int_eq(root->type, PROTO_TENSOR);
    t = &root->u.tensor->t;
    ck_assert_uint_eq(t->ndim, 2);
    ck_assert_uint_eq(t->shape[0] * t->shape[1], n);
    for (size_t i = 0; i < n; i++)
        if (t->data[i] != (double)i * 0.5 - 1000)
            ck_abort_msg("element %zu is %.17g", i, t->data[i]);
    /* shrunk to its pages: within 64 KiB of the data */
    ck_assert_uint_ge(proto_doc_bytes(doc), n * sizeof(double));
    ck_assert_uint_lt(proto_doc_bytes(doc), n * sizeof(double) + 65536);
    proto_doc_free(doc);
    doc = NULL;

    /* failed: a ragged second row, recovered; the buffer is released */
    body.len -= 2;
    sb_puts(&body, ",1]]");
    ck_assert_int_eq(feed_steps(d, body.p, body.len, 65536, &doc), LOSS_OK);
    ck_assert_int_eq(proto_doc_root(doc)->type, PROTO_INVALID);
    ck_assert_uint_lt(proto_doc_bytes(doc), 65536);
    proto_doc_free(doc);
    doc = NULL;

    /* abandoned while open */
    proto_decoder_reset(d);
    ck_assert_int_eq(proto_decoder_feed(d, body.p, body.len - 4, &err),
                     LOSS_OK);
    ck_assert_uint_gt(proto_decoder_bytes(d), base + n * sizeof(double));
    proto_decoder_reset(d);
    ck_assert_uint_le(proto_decoder_bytes(d), base + PROTO_DECODER_KEEP_BYTES);
    sb_free(&body);
    proto_decoder_free(d);
}
END_TEST

/* --- big objects: duplicates in O(n log n)
 * ------------------------------------ */

START_TEST(test_many_keys)
{
    const size_t n = 100000;
    struct sb body = {0};
    struct proto_doc *doc = NULL;
    struct loss_error err;
    const struct proto_value *root;

    sb_puts(&body, "{");
    for (size_t i = 0; i < n; i++)
        sb_printf(&body, "%s\"k%zu\":%zu", i ? "," : "", (i * 7919) % n, i);
    sb_puts(&body, "}");
    ck_assert_int_eq(proto_decode(body.p, body.len, &big_limits, &doc, &err),
                     LOSS_OK);
    root = proto_doc_root(doc);
    ck_assert_uint_eq(root->u.object.len, n);
    ck_assert_str_eq(root->u.object.members[1].key, "k7919");
    ck_assert_double_eq(proto_object_get(root, "k7919")->u.number, 1);
    proto_doc_free(doc);
    /* every key twice: the first repeat in document order is reported */
    body.len--;
    for (size_t i = 0; i < n; i++)
        sb_printf(&body, ",\"k%zu\":0", (i * 31) % n);
    sb_puts(&body, "}");
    doc = NULL;
    ck_assert_int_eq(proto_decode(body.p, body.len, &big_limits, &doc, &err),
                     LOSS_EUNKNOWN);
    ck_assert_str_eq(err.pointer, "/k0");
    ck_assert_ptr_null(doc);

    /*
     * Work per member must not depend on the number of members or the
     * depth: 300k repeats of "shape" (each completing a shape), and a
     * million small objects and tensors 60 levels deep. A quadratic or
     * depth-times-size path would take minutes here and hit the timeout.
     */
    sb_reset(&body);
    sb_puts(&body, "{");
    for (size_t i = 0; i < 3 * n; i++)
        sb_puts(&body, "\"shape\":[1],");
    sb_puts(&body, "\"data\":[1]}");
    ck_assert_int_eq(proto_decode(body.p, body.len, &big_limits, &doc, &err),
                     LOSS_EUNKNOWN);
    ck_assert_str_eq(err.pointer, "/shape");
    sb_reset(&body);
    for (size_t i = 0; i < 59; i++)
        sb_puts(&body, "{\"a~/\":");
    sb_puts(&body, "[{}");
    for (size_t i = 0; i < 10 * n; i++)
        sb_puts(&body, i % 2 ? ",{}" : ",{\"x\":[1]}");
    sb_puts(&body, "]");
    for (size_t i = 0; i < 59; i++)
        sb_puts(&body, "}");
    ck_assert_int_eq(proto_decode(body.p, body.len, &big_limits, &doc, &err),
                     LOSS_OK);
    ck_assert_uint_eq(proto_doc_elements(doc), 5 * n);
    proto_doc_free(doc);
    sb_free(&body);
}
END_TEST

/* --- differential test against jansson -------------------------------------
 */

static const size_t jansson_flags = JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL |
                                    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;

/*
 * jansson's own depth limit is JSON_PARSER_MAX_DEPTH (2048): with the same
 * max_depth both refuse exactly the same nesting. Rank and element limits
 * are semantics jansson does not have (see classify()).
 */
static const struct proto_limits jansson_limits = {
    .max_elements = (size_t)1 << 40,
    .max_rank = 8,
    .max_depth = JSON_PARSER_MAX_DEPTH,
};

static bool same_double(double a, json_t *j)
{
    double b;

    if (json_is_string(j)) {
        const char *s = json_string_value(j);

        if (strcmp(s, "NaN") == 0)
            return isnan(a);
        if (strcmp(s, "Infinity") == 0)
            return a == HUGE_VAL;
        if (strcmp(s, "-Infinity") == 0)
            return a == -HUGE_VAL;
        return false;
    }
    if (!json_is_real(j))
        return false;
    b = json_real_value(j);
    return memcmp(&a, &b, sizeof(a)) == 0;
}

/* Compares a tensor's level (elements from *at) with jansson's nested array. */
static bool same_tensor(const struct proto_tensor *pt, size_t level, size_t *at,
                        json_t *j)
{
    if (level == pt->t.ndim)
        return same_double(pt->t.data[(*at)++], j);
    if (!json_is_array(j) || json_array_size(j) != pt->t.shape[level])
        return false;
    for (size_t i = 0; i < pt->t.shape[level]; i++)
        if (!same_tensor(pt, level + 1, at, json_array_get(j, i)))
            return false;
    return true;
}

/* Our document equals jansson's, every number bit for bit. */
static bool same_value(const struct proto_value *v, json_t *j)
{
    size_t at = 0;

    switch (v->type) {
    case PROTO_NULL:
        return json_is_null(j);
    case PROTO_BOOL:
        return json_is_boolean(j) && json_is_true(j) == v->u.boolean;
    case PROTO_NUMBER:
        return json_is_real(j) && same_double(v->u.number, j);
    case PROTO_STRING:
        return json_is_string(j) && json_string_length(j) == v->u.string.len &&
               memcmp(json_string_value(j), v->u.string.ptr, v->u.string.len) ==
                   0;
    case PROTO_TENSOR:
        return v->u.tensor->encoding == PROTO_ENC_NESTED &&
               same_tensor(v->u.tensor, 0, &at, j);
    case PROTO_ARRAY:
        if (!json_is_array(j) || json_array_size(j) != v->u.array.len)
            return false;
        for (size_t i = 0; i < v->u.array.len; i++)
            if (!same_value(&v->u.array.items[i], json_array_get(j, i)))
                return false;
        return true;
    case PROTO_OBJECT:
        if (!json_is_object(j) || json_object_size(j) != v->u.object.len)
            return false;
        for (size_t i = 0; i < v->u.object.len; i++) {
            const struct proto_member *m = &v->u.object.members[i];
            json_t *jv = json_object_getn(j, m->key, m->key_len);

            if (jv == NULL || !same_value(&m->value, jv))
                return false;
        }
        return true;
    case PROTO_INVALID:
        return false;
    }
    return false;
}

struct diff_stats {
    size_t docs, accepted, rejected, excluded_semantic, excluded_nul_key,
        excluded_nul_trailing;
    int failed;
};

/*
 * Decodes body with both parsers and checks they agree.
 *
 * Excluded (counted, not compared), because there the two parsers answer
 * different questions rather than disagree about JSON:
 *  - we fail with LOSS_ETENSOR, LOSS_EVALUE, LOSS_ETOOLARGE for rank, or
 *    LOSS_EUNKNOWN for a key of a tensor object: these are lossd semantics
 *    (ragged or mixed arrays, null in a tensor, "shape" objects) on input
 *    that may well be valid JSON, and we stop at the first such error while
 *    jansson reads on, so the verdicts on the rest of the body are not
 *    comparable;
 *  - jansson accepts a NUL byte right after a top-level number ("1\0"; its
 *    lexer takes the NUL for the end of the input), which RFC 8259 calls
 *    trailing data, as we do;
 *  - jansson refuses "\u0000" inside an object key ("NUL byte in object key
 *    not supported", a limit of its API), while such a key is valid JSON
 *    and lossd keeps it (with key_len).
 * Not excluded: duplicate keys (both refuse them) and nesting depth (both
 * stop past 2048).
 */
static void diff_one(const char *name, const char *body, size_t len,
                     struct diff_stats *s)
{
    struct proto_doc *doc = NULL;
    struct loss_error err;
    json_error_t jerr;
    json_t *j = json_loadb(body, len, jansson_flags, &jerr);
    enum loss_status st;

    loss_error_init(&err);
    st = proto_decode(body, len, &jansson_limits, &doc, &err);
    s->docs++;
    if (st == LOSS_ETENSOR || st == LOSS_EVALUE ||
        (st == LOSS_ETOOLARGE && strstr(err.detail, "max_rank") != NULL) ||
        (st == LOSS_EUNKNOWN &&
         strncmp(err.detail, "duplicate key", 13) != 0)) {
        s->excluded_semantic++;
    } else if (j == NULL && strstr(jerr.text, "NUL byte in object key")) {
        s->excluded_nul_key++;
    } else if (j != NULL && st == LOSS_EJSON && err.offset >= 0 &&
               (size_t)err.offset < len && body[err.offset] == '\0' &&
               strstr(err.detail, "trailing") != NULL) {
        s->excluded_nul_trailing++;
    } else if ((st == LOSS_OK) != (j != NULL)) {
        if (s->failed++ < 10)
            fprintf(stderr,
                    "%s: lossd %s (%s, offset %lld), jansson %s (%s, "
                    "position %d) on:\n%.*s\n",
                    name, loss_status_name(st), err.detail, err.offset,
                    j ? "accepts" : "refuses", j ? "" : jerr.text,
                    j ? -1 : jerr.position, (int)(len < 300 ? len : 300), body);
    } else if (st == LOSS_OK) {
        s->accepted++;
        if (!same_value(proto_doc_root(doc), j) && s->failed++ < 10)
            fprintf(stderr, "%s: documents differ on:\n%.*s\n", name,
                    (int)(len < 300 ? len : 300), body);
    } else {
        s->rejected++;
    }
    json_decref(j);
    proto_doc_free(doc);
}

/*
 * The same body with recovery on. Against the decoder without it: until
 * the first value error both run the same way, so a fatal error or a valid
 * document is exactly the same, and a value error becomes the first error
 * of the recovered document (or a fatal error met later). Against jansson
 * (with duplicate keys allowed, since we recover from those): both accept
 * exactly the same JSON, so what recovery skips is checked as strictly as
 * what it keeps. Exclusions as in diff_one(), and a rank limit (only the
 * tensors that are read have one).
 */
static void diff_recover(const char *name, const char *body, size_t len,
                         struct diff_stats *s)
{
    struct proto_limits lim = jansson_limits;
    struct proto_doc *plain = NULL, *doc = NULL;
    struct loss_error perr, err;
    enum loss_status pst, st;
    json_error_t jerr;
    json_t *j;
    struct sb a = {0}, b = {0};
    bool ok = true;

    lim.recover_values = true;
    loss_error_init(&perr);
    loss_error_init(&err);
    pst = proto_decode(body, len, &jansson_limits, &plain, &perr);
    st = proto_decode(body, len, &lim, &doc, &err);
    s->docs++;
    if (pst == LOSS_ETENSOR || pst == LOSS_EVALUE || pst == LOSS_EUNKNOWN) {
        const struct loss_error *first = doc ? proto_doc_error(doc, 0) : NULL;

        s->excluded_semantic++; /* here: recovered */
        if (st == LOSS_OK)
            ok = first != NULL && first->status == perr.status &&
                 strcmp(first->pointer, perr.pointer) == 0 &&
                 strcmp(first->detail, perr.detail) == 0;
        else
            ok = st == LOSS_EJSON || st == LOSS_ETOOLARGE;
    } else if (pst != st) {
        ok = false;
    } else if (st != LOSS_OK) {
        ok = strcmp(perr.detail, err.detail) == 0 &&
             perr.offset == err.offset &&
             strcmp(perr.pointer, err.pointer) == 0;
    } else {
        dump(&a, proto_doc_root(plain));
        dump(&b, proto_doc_root(doc));
        ok = strcmp(a.p, b.p) == 0 && proto_doc_errors(doc, NULL) == 0;
    }
    if (!ok && s->failed++ < 10)
        fprintf(stderr,
                "%s: without recovery %s (%s), with %s (%s) on:\n%.*s\n", name,
                loss_status_name(pst), perr.detail, loss_status_name(st),
                err.detail, (int)(len < 300 ? len : 300), body);
    j = json_loadb(body, len, jansson_flags & ~(size_t)JSON_REJECT_DUPLICATES,
                   &jerr);
    if ((st == LOSS_ETOOLARGE && strstr(err.detail, "max_rank") != NULL) ||
        (j == NULL && strstr(jerr.text, "NUL byte in object key")) ||
        (j != NULL && st == LOSS_EJSON && err.offset >= 0 &&
         (size_t)err.offset < len && body[err.offset] == '\0')) {
        /* not comparable, as in diff_one() */
    } else if ((st == LOSS_OK) != (j != NULL)) {
        if (s->failed++ < 10)
            fprintf(stderr,
                    "%s: recovering lossd %s (%s), jansson %s (%s) on:\n"
                    "%.*s\n",
                    name, loss_status_name(st), err.detail,
                    j ? "accepts" : "refuses", j ? "" : jerr.text,
                    (int)(len < 300 ? len : 300), body);
    } else if (st == LOSS_OK) {
        s->accepted++;
    } else {
        s->rejected++;
    }
    json_decref(j);
    proto_doc_free(plain);
    proto_doc_free(doc);
    sb_free(&a);
    sb_free(&b);
}

/*
 * A corpus in the spirit of JSONTestSuite: y_ must parse, n_ must not
 * (for both parsers). The tables above are compared too, except their
 * lossd-only semantics.
 */
static const char *const corpus[] = {
    "[\"\\u0060\\u012a\\u12AB\"]",
    "[\"\\uD801\\udc37\"]",
    "[\"\\ud83d\\ude39\\ud83d\\udc8d\"]",
    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
    "{\"\":0}",
    "{\"a\":[]}",
    "{\"a\":\"b\",\"a\":\"c\"}",
    "{\"a\":\"b\",\"a\":\"b\"}",
    "[1E22]",
    "[1E-2]",
    "[1e+2]",
    "[-123]",
    "[-1]",
    "[-0]",
    "[20e1]",
    "[123e65]",
    "[0e+1]",
    "[0e1]",
    "[ 4]",
    "[-0.000000000000000000000000000000000000000000000000000000000001]",
    "[1.5e+9999]",
    "[-1e+9999]",
    "[123123e100000]",
    "[1.0e-400]",
    "[100000000000000000000]",
    "[-237462374673276894279832749832423479823246327846]",
    "[\"\\u0000\"]",
    "{\"\\u0000\":1}",
    "[\"\xf4\x8f\xbf\xbf\"]",
    "[\"\xef\xbf\xbf\"]",
    "[\"\xed\x9f\xbf\"]",
    "[\"\xee\x80\x80\"]",
    "[\"\\uDFAA\"]",
    "[\"\\uD834\\uDD1e\"]",
    "[\"\\ud800\\ud800\"]",
    "[\"\\uD800\\u\"]",
    "[\"\\uD800\\u1\"]",
    "[\"\\uD800\\u1x\"]",
    "[1 true]",
    "[a\xe5]",
    "[\"\": 1]",
    "[\"\"],",
    "[,1]",
    "[1,,2]",
    "[\"x\",,]",
    "[\"x\"]]",
    "[3[4]]",
    "[\"\\x00\"]",
    "[-]",
    "[- 1]",
    "[-012]",
    "[.123]",
    "[0.3e+]",
    "[0.e1]",
    "[1.0e]",
    "[2.e+3]",
    "[0E]",
    "[1eE2]",
    "[Infinity]",
    "[-Infinity]",
    "[NaN]",
    "[-NaN]",
    "[+Inf]",
    "[0x42]",
    "[1ea]",
    "[1.2a-3]",
    "[\"\\a\"]",
    "[\"\\uqqqq\"]",
    "[\"\\\"]",
    "[\"a\x7f\"]",
    "{\"a\" b}",
    "{key: 'value'}",
    "{\"a\":\"a\" 123}",
    "{\"a\":\"b\"}#",
    "{\"a\":\"b\"}/**/",
    "{\"x\", null}",
    "{\"id\":0,,,,,}",
    "{null:null,null:null}",
    "{\"a\":1,\"b\":2,\"a\":3}",
    "[\"\\uD800\"]",
    "[\"\\uDBFF\"]",
    "[\"\\uDC00\\uD800\"]",
    "\"\xed\xbf\xbf\"",
    "\"\xe0\xa0\x80\"",
    "\"\xc2\x80\"",
    "\"\xf0\x90\x80\x80\"",
    "[\xff]",
    "[\"\xc3\x28\"]",
    "[\"\xe2\x28\xa1\"]",
    "[\"\xf0\x28\x8c\xbc\"]",
    "[\"\xf8\xa1\xa1\xa1\xa1\"]",
    "[\"\xfc\xa1\xa1\xa1\xa1\xa1\"]",
    "[\"\xc0\xaf\"]",
    "[\"\xe0\x80\xaf\"]",
    "[\"\xf0\x80\x80\xaf\"]",
    "[\"\xed\xa0\x80\xed\xb0\x80\"]",
    "[\"\xf4\x90\x80\x80\"]",
    "[true, false, null]",
    "[truth]",
    "[nulll]",
    "[fals]",
    " ",
    "\t[\n1\r]\t",
    "\f[1]",
    "[1]\v",
    "\"\\u000a\"",
    "2.",
    "-0.e1",
    "1.5E",
    "1E+",
    "0.00000000000000000000000000000000000000000001e-400",
    "1e-2147483649",
    "1e2147483648",
    "123456789012345678901234567890123456789012345678901234567890e-40",
};

START_TEST(test_jansson_corpus)
{
    struct diff_stats s = {0}, r = {0};
    struct sb deep = {0};

    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        diff_one(corpus[i], corpus[i], strlen(corpus[i]), &s);
        diff_recover(corpus[i], corpus[i], strlen(corpus[i]), &r);
    }
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++)
        if (strchr(ok_cases[i].want, 'T') == NULL ||
            (strstr(ok_cases[i].want, "Tf") == NULL &&
             strstr(ok_cases[i].want, "Tb") == NULL))
            diff_one(ok_cases[i].json, ok_cases[i].json,
                     strlen(ok_cases[i].json), &s);
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++)
        if (err_cases[i].status == LOSS_EJSON)
            diff_one(err_cases[i].json, err_cases[i].json,
                     case_len(&err_cases[i]), &s);
    /* nesting: both accept 2048 levels and refuse 2049 */
    for (size_t depth = 2046; depth <= 2050; depth++) {
        struct loss_error err;
        struct proto_doc *doc = NULL;
        json_error_t jerr;
        json_t *j;
        bool ours;

        sb_reset(&deep);
        for (size_t k = 0; k + 1 < depth; k++)
            sb_puts(&deep, k % 2 ? "{\"a\":" : "[");
        sb_puts(&deep, "{}");
        for (size_t k = depth - 1; k-- > 0;)
            sb_puts(&deep, k % 2 ? "}" : "]");
        j = json_loadb(deep.p, deep.len, jansson_flags, &jerr);
        ours = proto_decode(deep.p, deep.len, &jansson_limits, &doc, &err) ==
               LOSS_OK;
        ck_assert_msg(ours == (j != NULL), "depth %zu: lossd %d jansson %d",
                      depth, ours, j != NULL);
        ck_assert_int_eq(ours, depth <= JSON_PARSER_MAX_DEPTH);
        if (!ours)
            ck_assert_int_eq(err.status, LOSS_ETOOLARGE);
        json_decref(j);
        proto_doc_free(doc);
    }
    sb_free(&deep);
    fprintf(stderr,
            "jansson corpus: %zu docs, %zu both accept, %zu both refuse, "
            "%zu excluded (lossd semantics), %zu excluded (NUL in key), %zu "
            "excluded (NUL after a number)\n",
            s.docs, s.accepted, s.rejected, s.excluded_semantic,
            s.excluded_nul_key, s.excluded_nul_trailing);
    ck_assert_msg(s.failed == 0, "%d disagreements with jansson (see log)",
                  s.failed);
    ck_assert_msg(r.failed == 0, "%d disagreements when recovering (see log)",
                  r.failed);
}
END_TEST

/* --- random documents
 * --------------------------------------------------------- */

static size_t rnd(struct test_rng *r, size_t n)
{
    return (size_t)(test_rng_uniform(r) * (double)n);
}

static void gen_ws(struct test_rng *r, struct sb *b)
{
    static const char ws[] = " \t\n\r";

    if (rnd(r, 4) == 0)
        for (size_t n = 1 + rnd(r, 3); n > 0; n--)
            sb_add(b, &ws[rnd(r, 4)], 1);
}

/* A string that is never "NaN", "Infinity" or "-Infinity". */
static void gen_string(struct test_rng *r, struct sb *b, bool key)
{
    static const char *const pieces[] = {
        "a",
        "Z",
        "0",
        " ",
        "~",
        "/",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b",
        "\\f",
        "\\n",
        "\\r",
        "\\t",
        "\\u00e9",
        "\\u20AC",
        "\\uFFFF",
        "\\ud83d\\ude00",
        "\\u0041",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "\xf4\x8f\xbf\xbf",
        "\x7f",
        "\\u0000",
        "shape",
        "NaN",
    };
    size_t n = rnd(r, 6);

    sb_puts(b, "\"x");
    for (size_t i = 0; i < n; i++) {
        /* no NUL in keys (jansson refuses them), no "shape" keys */
        size_t k = rnd(r, sizeof(pieces) / sizeof(pieces[0]) - (key ? 3 : 0));

        sb_puts(b, pieces[k]);
    }
    sb_puts(b, "\"");
}

static void gen_number(struct test_rng *r, struct sb *b)
{
    struct sb tok = {0};

    double x;

    random_number(r, &tok);
    /* keep generated documents valid: no overflowing literals here */
    errno = 0;
    x = strtod(tok.p, NULL);
    if (errno == ERANGE && (x == HUGE_VAL || x == -HUGE_VAL))
        sb_puts(b, "1.25");
    else
        sb_puts(b, tok.p);
    sb_free(&tok);
}

static void gen_value(struct test_rng *r, struct sb *b, int depth);

/* A rectangular tensor of rank 1..3 (dimensions may be 0). */
static void gen_tensor(struct test_rng *r, struct sb *b, size_t rank,
                       const size_t *dims)
{
    sb_puts(b, "[");
    for (size_t i = 0; i < dims[0]; i++) {
        if (i)
            sb_puts(b, ",");
        gen_ws(r, b);
        if (rank > 1) {
            gen_tensor(r, b, rank - 1, dims + 1);
        } else if (rnd(r, 20) == 0) {
            static const char *const nf[] = {"\"NaN\"", "\"Infinity\"",
                                             "\"-Infinity\""};
            sb_puts(b, nf[rnd(r, 3)]);
        } else {
            gen_number(r, b);
        }
        gen_ws(r, b);
    }
    sb_puts(b, "]");
}

static void gen_value(struct test_rng *r, struct sb *b, int depth)
{
    size_t k = rnd(r, depth > 4 ? 5 : 8);

    gen_ws(r, b);
    switch (k) {
    case 0:
        sb_puts(b, rnd(r, 3) == 0 ? "null" : rnd(r, 2) ? "true" : "false");
        break;
    case 1:
    case 2:
        gen_number(r, b);
        break;
    case 3:
    case 4:
        gen_string(r, b, false);
        break;
    case 5: { /* a tensor */
        size_t dims[3], rank = 1 + rnd(r, 3);

        for (size_t i = 0; i < rank; i++)
            dims[i] = rnd(r, 5);
        gen_tensor(r, b, rank, dims);
        break;
    }
    case 6: { /* a generic array: its first element is not a tensor leaf */
        size_t n = rnd(r, 4);

        sb_puts(b, "[");
        gen_ws(r, b);
        switch (rnd(r, 3)) {
        case 0:
            sb_puts(b, "{}");
            break;
        case 1:
            sb_puts(b, rnd(r, 2) ? "true" : "false");
            break;
        default:
            gen_string(r, b, true);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            sb_puts(b, ",");
            gen_value(r, b, depth + 1);
        }
        sb_puts(b, "]");
        break;
    }
    default: { /* an object with distinct keys */
        size_t n = rnd(r, 5);

        sb_puts(b, "{");
        for (size_t i = 0; i < n; i++) {
            if (i)
                sb_puts(b, ",");
            gen_ws(r, b);
            sb_printf(b, "\"k%zu", i);
            sb_puts(b, "\"");
            gen_ws(r, b);
            sb_puts(b, ":");
            gen_value(r, b, depth + 1);
        }
        sb_puts(b, "}");
        break;
    }
    }
    gen_ws(r, b);
}

/* One to three random edits: replace, insert, delete, duplicate, truncate. */
static void mutate(struct test_rng *r, struct sb *b)
{
    static const char bytes[] = "{}[],:\"\\0123456789eE+-.tfnulNI aZ\t\n";
    static const unsigned char odd[] = {0x00, 0x1f, 0x7f, 0x80, 0xbf,
                                        0xc0, 0xc2, 0xe0, 0xed, 0xf0,
                                        0xf4, 0xf5, 0xff};

    for (size_t n = 1 + rnd(r, 3); n > 0 && b->len > 0; n--) {
        size_t at = rnd(r, b->len);
        char c = rnd(r, 4) == 0 ? (char)odd[rnd(r, sizeof(odd))]
                                : bytes[rnd(r, sizeof(bytes) - 1)];

        switch (rnd(r, 5)) {
        case 0:
            b->p[at] = c;
            break;
        case 1:
            sb_add(b, "", 1); /* room for one more byte */
            memmove(b->p + at + 1, b->p + at, b->len - 1 - at);
            b->p[at] = c;
            break;
        case 2:
            memmove(b->p + at, b->p + at + 1, b->len - at - 1);
            b->len--;
            break;
        case 3: {
            size_t len = 1 + rnd(r, 8);
            char tmp[8];

            if (at + len > b->len)
                len = b->len - at;
            memcpy(tmp, b->p + at, len);
            sb_add(b, tmp, len);
            break;
        }
        default:
            b->len = at;
            break;
        }
        b->p[b->len] = '\0';
    }
}

START_TEST(test_jansson_random)
{
    const unsigned long long seed = 0x10550dULL;
    const size_t n = 6000;
    struct test_rng rng;
    struct diff_stats valid = {0}, mutated = {0}, recovering = {0};
    struct sb b = {0};
    size_t split_checked = 0;

    fprintf(stderr, "jansson random: seed %llu, %zu documents\n", seed, n);
    test_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        char name[64];

        sb_reset(&b);
        gen_value(&rng, &b, 0);
        snprintf(name, sizeof(name), "random doc %zu", i);
        diff_one(name, b.p, b.len, &valid);
        /* a generated document is valid JSON with no lossd-only semantics */
        if (valid.accepted != valid.docs && valid.failed++ < 10)
            fprintf(stderr, "%s not accepted by both:\n%s\n", name, b.p);
        valid.accepted = valid.docs;
        mutate(&rng, &b);
        snprintf(name, sizeof(name), "mutated doc %zu", i);
        diff_one(name, b.p, b.len, &mutated);
        diff_recover(name, b.p, b.len, &recovering);
        if (i % 50 == 0 && b.len < 400) {
            ck_assert_int_eq(
                check_splits(name, b.p, b.len, &jansson_limits, &rng), 0);
            split_checked++;
        }
    }
    fprintf(stderr,
            "jansson random: %zu valid docs agree; mutated: %zu both "
            "accept, %zu both refuse, %zu excluded (lossd semantics), %zu "
            "excluded (NUL in key), %zu excluded (NUL after a number); %zu "
            "also split everywhere\n",
            valid.docs, mutated.accepted, mutated.rejected,
            mutated.excluded_semantic, mutated.excluded_nul_key,
            mutated.excluded_nul_trailing, split_checked);
    fprintf(stderr,
            "jansson random, recovering: %zu both accept, %zu both refuse, "
            "%zu recovered from a value error\n",
            recovering.accepted, recovering.rejected,
            recovering.excluded_semantic);
    sb_free(&b);
    ck_assert_msg(recovering.failed == 0,
                  "%d mutated documents disagree when recovering",
                  recovering.failed);
    ck_assert_uint_gt(recovering.excluded_semantic, 20);
    ck_assert_msg(valid.failed == 0, "%d valid documents failed", valid.failed);
    ck_assert_msg(mutated.failed == 0, "%d mutated documents disagree",
                  mutated.failed);
    /* the comparison must not be vacuous */
    ck_assert_uint_gt(mutated.accepted, n / 20);
    ck_assert_uint_gt(mutated.rejected, n / 3);
    ck_assert_uint_lt(mutated.excluded_semantic, n / 5);
}
END_TEST

/* --- one decoder, reset between bodies
 * ------------------------------------------------ */

/* proto_decoder_bytes() of a new decoder with lim. */
static size_t new_bytes(const struct proto_limits *lim)
{
    struct proto_decoder *d = proto_decoder_new(lim);
    size_t n;

    ck_assert_ptr_nonnull(d);
    n = proto_decoder_bytes(d);
    proto_decoder_free(d);
    return n;
}

/*
 * decode_split_on() after a reset of d, which is left as the previous body
 * left it (finished or failed) or, with abandon > 0, after abandoning a
 * body fed its first abandon bytes (mid-token, mid-tensor, failed or done).
 * With abandon 0, d is reset twice: a reset decoder resets too.
 */
static void decode_reused(struct proto_decoder *d, const char *body, size_t len,
                          const struct proto_limits *lim, const size_t *cuts,
                          size_t ncuts, size_t abandon, struct sb *out)
{
    struct loss_error err;

    loss_error_init(&err);
    proto_decoder_reset(d);
    if (abandon > 0)
        (void)proto_decoder_feed(d, body, abandon, &err);
    proto_decoder_reset(d);
    ck_assert_uint_le(proto_decoder_bytes(d),
                      new_bytes(lim) + PROTO_DECODER_KEEP_BYTES);
    decode_split_on(d, body, len, lim, cuts, ncuts, out);
}

/*
 * check_splits() on one decoder d made with lim, reset before every body:
 * whole, split at every position (every other one after abandoning the
 * body at that position), byte by byte and in random chunks. Each result
 * (document, errors with pointers and details, offsets) must be what a new
 * decoder gives. Returns the number of mismatches (printed).
 */
static int check_reused(const char *name, const char *body, size_t len,
                        const struct proto_limits *lim, struct proto_decoder *d,
                        struct test_rng *rng)
{
    struct sb fresh = {0}, got = {0};
    size_t *cuts = calloc(len + 1, sizeof(*cuts));
    int failed = 0;

    ck_assert_ptr_nonnull(cuts);
    decode_whole(body, len, lim, &fresh);
    decode_reused(d, body, len, lim, NULL, 0, 0, &got);
    if (strcmp(got.p, fresh.p) != 0 && failed++ < 3)
        fprintf(stderr, "%s reused whole:\n  got %s\n  new %s\n", name, got.p,
                fresh.p);
    for (size_t at = 0; at <= len; at++) {
        decode_reused(d, body, len, lim, &at, 1, at % 2 ? at : 0, &got);
        if (strcmp(got.p, fresh.p) != 0 && failed++ < 3)
            fprintf(stderr, "%s reused, split at %zu:\n  got %s\n  new %s\n",
                    name, at, got.p, fresh.p);
    }
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    decode_reused(d, body, len, lim, cuts, len > 0 ? len - 1 : 0, len / 2,
                  &got);
    if (strcmp(got.p, fresh.p) != 0 && failed++ < 3)
        fprintf(stderr, "%s reused, byte by byte:\n  got %s\n  new %s\n", name,
                got.p, fresh.p);
    for (int r = 0; r < 4 && len > 2; r++) {
        size_t n = 0, at = 0;

        while (at < len) {
            at += 1 + rnd(rng, 7);
            if (at < len)
                cuts[n++] = at;
        }
        decode_reused(d, body, len, lim, cuts, n, rnd(rng, len + 1), &got);
        if (strcmp(got.p, fresh.p) != 0 && failed++ < 3)
            fprintf(stderr, "%s reused, random chunks:\n  got %s\n  new %s\n",
                    name, got.p, fresh.p);
    }
    free(cuts);
    sb_free(&fresh);
    sb_free(&got);
    return failed;
}

/*
 * Every body of the tables, the corpus and generated documents, decoded
 * by one decoder per set of limits, reset between bodies, gives what a new
 * decoder gives: the decoder goes from each body's end state (a document
 * moved out, a failure, an abandoned body) to the next body.
 */
START_TEST(test_reset_matches_new)
{
    struct proto_decoder *big = proto_decoder_new(&big_limits);
    struct proto_decoder *rec = proto_decoder_new(&recover_limits);
    struct proto_decoder *jl = proto_decoder_new(&jansson_limits);
    struct test_rng rng;
    struct sb b = {0};
    int failed = 0;
    size_t n = 0;

    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_nonnull(rec);
    ck_assert_ptr_nonnull(jl);
    test_rng_seed(&rng, 17);
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(*ok_cases); i++, n++) {
        const char *j = ok_cases[i].json;

        failed += check_reused(j, j, strlen(j), &big_limits, big, &rng);
        failed += check_reused(j, j, strlen(j), &recover_limits, rec, &rng);
    }
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(*err_cases); i++, n++) {
        const struct err_case *c = &err_cases[i];

        failed +=
            check_reused(c->json, c->json, case_len(c), &big_limits, big, &rng);
        failed += check_reused(c->json, c->json, case_len(c), &recover_limits,
                               rec, &rng);
    }
    for (size_t i = 0; i < sizeof(recover_cases) / sizeof(*recover_cases);
         i++, n++) {
        const char *j = recover_cases[i].json;

        failed += check_reused(j, j, strlen(j), &recover_limits, rec, &rng);
    }
    for (size_t i = 0;
         i < sizeof(recover_fatal_cases) / sizeof(*recover_fatal_cases);
         i++, n++) {
        const struct err_case *c = &recover_fatal_cases[i];

        failed += check_reused(c->json, c->json, case_len(c), &recover_limits,
                               rec, &rng);
    }
    /* a decoder keeps its limits: one per case, reused for its splits */
    for (size_t i = 0;
         i < sizeof(limit_cases) / sizeof(*limit_cases) +
                 sizeof(recover_limit_cases) / sizeof(*recover_limit_cases);
         i++, n++) {
        size_t nl = sizeof(limit_cases) / sizeof(*limit_cases);
        const struct limit_case *c =
            i < nl ? &limit_cases[i] : &recover_limit_cases[i - nl];
        struct proto_decoder *d = proto_decoder_new(&c->lim);

        ck_assert_ptr_nonnull(d);
        failed +=
            check_reused(c->json, c->json, strlen(c->json), &c->lim, d, &rng);
        proto_decoder_free(d);
    }
    for (size_t i = 0; i < sizeof(corpus) / sizeof(*corpus); i++, n++)
        failed += check_reused(corpus[i], corpus[i], strlen(corpus[i]),
                               &jansson_limits, jl, &rng);
    for (size_t i = 0; i < 200; i++, n++) {
        char name[64];

        sb_reset(&b);
        gen_value(&rng, &b, 0);
        if (i % 2)
            mutate(&rng, &b);
        if (b.len >= 400)
            continue;
        snprintf(name, sizeof(name), "random doc %zu", i);
        failed += check_reused(name, b.p, b.len, &jansson_limits, jl, &rng);
    }
    fprintf(stderr, "reset test: %zu bodies\n", n);
    sb_free(&b);
    proto_decoder_free(big);
    proto_decoder_free(rec);
    proto_decoder_free(jl);
    ck_assert_msg(failed == 0, "%d reused results differ (see log)", failed);
}
END_TEST

/* Feeds body whole to d (reset first); returns the status. */
static enum loss_status feed_reset(struct proto_decoder *d, const char *body,
                                   size_t len, bool finish)
{
    struct proto_doc *doc = NULL;
    struct loss_error err;
    enum loss_status st;

    proto_decoder_reset(d);
    st = proto_decoder_feed(d, body, len, &err);
    if (st == LOSS_OK && finish)
        st = proto_decoder_finish(d, &doc, &err);
    proto_doc_free(doc);
    return st;
}

/*
 * A reset keeps what small bodies need, so the next ones hold no more; after
 * a body that grew a buffer past PROTO_DECODER_KEEP_BYTES (finished,
 * abandoned or failed), the buffers kept are back under the bound in all.
 */
START_TEST(test_reset_releases)
{
    const char *small = "{\"loss\":\"mse\",\"input\":[[1,2],[3,4]],"
                        "\"target\":[[1,2],[3,5]],\"options\":{\"x\":\"a\"}}";
    const size_t n = 100000, bound = PROTO_DECODER_KEEP_BYTES;
    struct proto_decoder *d = proto_decoder_new(&big_limits);
    struct sb body = {0}, want = {0}, got = {0};
    size_t base, kept;

    ck_assert_ptr_nonnull(d);
    base = proto_decoder_bytes(d);
    decode_whole(small, strlen(small), &big_limits, &want);
    decode_split_on(d, small, strlen(small), &big_limits, NULL, 0, &got);
    ck_assert_str_eq(got.p, want.p);
    proto_decoder_reset(d);
    kept = proto_decoder_bytes(d);
    ck_assert_uint_gt(kept, base);
    ck_assert_uint_le(kept, base + bound);
    for (int i = 0; i < 3; i++) {
        decode_split_on(d, small, strlen(small), &big_limits, NULL, 0, &got);
        ck_assert_str_eq(got.p, want.p);
        proto_decoder_reset(d);
        ck_assert_uint_eq(proto_decoder_bytes(d), kept);
    }

    /* finished: n values of a generic array on the value stack */
    sb_puts(&body, "[\"x\"");
    for (size_t i = 0; i < n; i++)
        sb_puts(&body, ",0");
    sb_puts(&body, "]");
    ck_assert_int_eq(feed_reset(d, body.p, body.len, true), LOSS_OK);
    ck_assert_uint_gt(proto_decoder_bytes(d), base + 16 * bound);
    proto_decoder_reset(d);
    ck_assert_uint_le(proto_decoder_bytes(d), base + bound);

    /* abandoned: a tensor of n numbers, still open */
    sb_reset(&body);
    sb_puts(&body, "[[1");
    for (size_t i = 1; i < n; i++)
        sb_puts(&body, ",1");
    ck_assert_int_eq(feed_reset(d, body.p, body.len, false), LOSS_OK);
    ck_assert_uint_gt(proto_decoder_bytes(d), base + 8 * bound);
    proto_decoder_reset(d);
    ck_assert_uint_le(proto_decoder_bytes(d), base + bound);

    /* failed: a string of 4n bytes, then a control character */
    sb_reset(&body);
    sb_puts(&body, "{\"a\":\"");
    for (size_t i = 0; i < n; i++)
        sb_puts(&body, "abcd");
    sb_puts(&body, "\x01\"}");
    ck_assert_int_eq(feed_reset(d, body.p, body.len, true), LOSS_EJSON);
    ck_assert_uint_gt(proto_decoder_bytes(d), base + 4 * bound);
    proto_decoder_reset(d);
    ck_assert_uint_le(proto_decoder_bytes(d), base + bound);

    /* every stack under the bound, more than it in all: 2000 members and
       3000 values */
    sb_reset(&body);
    sb_puts(&body, "{");
    for (size_t i = 0; i < 2000; i++)
        sb_printf(&body, "\"k%zu\":0,", i);
    sb_puts(&body, "\"a\":[\"x\"");
    for (size_t i = 0; i < 3000; i++)
        sb_puts(&body, ",0");
    sb_puts(&body, "]}");
    ck_assert_int_eq(feed_reset(d, body.p, body.len, true), LOSS_OK);
    ck_assert_uint_gt(proto_decoder_bytes(d), base + bound);
    proto_decoder_reset(d);
    ck_assert_uint_le(proto_decoder_bytes(d), base + bound);

    /* and the decoder still decodes as new */
    decode_split_on(d, small, strlen(small), &big_limits, NULL, 0, &got);
    ck_assert_str_eq(got.p, want.p);
    proto_decoder_free(d);
    sb_free(&body);
    sb_free(&want);
    sb_free(&got);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("proto_decode");
    TCase *tables = tcase_create("tables");
    TCase *numbers = tcase_create("numbers");
    TCase *limits = tcase_create("limits");
    TCase *diff = tcase_create("jansson");
    TCase *reset = tcase_create("reset");

    tcase_add_test(tables, test_valid_bodies);
    tcase_add_test(tables, test_error_bodies);
    tcase_add_test(tables, test_limit_bodies);
    tcase_add_test(tables, test_split_everywhere);
    tcase_add_test(tables, test_recover_values);
    tcase_add_test(tables, test_recover_fatal);
    tcase_add_test(tables, test_recover_matches_first_error);
    tcase_add_test(limits, test_recover_bound);
    tcase_add_test(limits, test_recover_many);
    tcase_add_test(numbers, test_numbers_match_strtod);
    tcase_add_test(numbers, test_numbers_in_chunks);
    tcase_add_test(numbers, test_base64_dtypes);
    tcase_add_test(limits, test_limits_before_memory);
    tcase_add_test(limits, test_many_keys);
    tcase_add_test(limits, test_tensor_buffers);
    tcase_add_test(limits, test_tensor_mapped);
    tcase_add_test(diff, test_jansson_corpus);
    tcase_add_test(diff, test_jansson_random);
    tcase_add_test(reset, test_reset_matches_new);
    tcase_add_test(reset, test_reset_releases);
    suite_add_tcase(s, tables);
    suite_add_tcase(s, numbers);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, diff);
    suite_add_tcase(s, reset);
    return test_run(s);
}

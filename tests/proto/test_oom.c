/*
 * test_oom.c - the decoder and the document writers of proto/ when memory
 * runs out: every allocation (decoder, document, its chunks and owned
 * blocks, the error list, the string, number and tensor buffers, the
 * locale, the buffer written to, jansson's) is made to fail in turn
 * (common/failmalloc.h), alone or with every later one.
 *
 * The decoder, new or reused after a reset, must give the very document
 * and errors it gives without failures, or LOSS_ENOMEM, never another
 * status; a reset then makes it decode the same body exactly as before. A
 * writer leaves either the whole document or a failed buffer
 * (proto_buf_ok() false), never a truncated one that looks complete.
 * Nothing leaks: the wrappers' count of live pointers comes back, and
 * AddressSanitizer's leak check says the same in the sanitizer build.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "document.h"
#include "failmalloc.h"
#include "testutil.h"
#include "value.h"

struct body_case {
    const char *name;
    const char *body; /* NULL: built by big_body() */
    size_t chunk;     /* feed size; 0: all at once */
    bool recover;     /* recover_values */
};

static const struct body_case bodies[] = {
    {"nested tensors",
     "{\"input\": [[0.5, -1.25e-3, 2], [3, 4.5, -6]], "
     "\"target\": [1, 2, 3], \"grad\": true}",
     5, true},
    {"flat and base64",
     "{\"a\": {\"shape\": [2, 2], \"data\": [0.1, 2, 3, -4e-3]}, \"b\": "
     "{\"dtype\": \"float32\", \"shape\": [4], \"base64\": "
     "\"AACAPwAAAAAAAIA/AAAAAA==\"}, \"c\": {\"shape\": [], \"data\": [7]}}",
     7, true},
    {"strings and keys",
     "{\"k01\": \"caf\\u00e9 \\\"quoted\\\" \\n and a string long enough to "
     "grow the buffer past its first size, twice over, for sure\", \"k02\": "
     "1, \"k03\": 2, \"k04\": 3, \"k05\": 4, \"k06\": 5, \"k07\": 6, \"k08\": "
     "7, \"k09\": 8, \"k10\": 9, \"k11\": 10, \"k12\": 11, \"k13\": 12, "
     "\"k14\": 13, \"k15\": 14, \"k16\": 15, \"k17\": 16, \"k18\": 17, "
     "\"k19\": 18, \"k20\": [true, false, null, \"NaN\", \"-Infinity\"], "
     "\"k21\": 12345678901234567890123, \"k22\": -0, \"k23\": 1e-310}",
     3, true},
    {"value errors recovered",
     "{\"requests\": [{\"input\": [[1, 2], [3]]}, {\"input\": [1, null]}, "
     "{\"x\": 1, \"x\": 2}, {\"t\": {\"shape\": [2], \"data\": [1]}}, "
     "{\"u\": {\"shape\": [1], \"dtype\": \"float64\", \"base64\": \"@@\"}}, "
     "{\"id\": [1, {\"k\": [2, 3]}], \"input\": [[[1], [2]], [[3], [4]]]}]}",
     11, true},
    {"value error, no recovery", "{\"input\": [[1, 2], [3]], \"target\": 1}", 0,
     false},
    {"invalid JSON", "{\"input\": [1, 2], \"target\": [1, 2]]", 4, true},
    {"large tensor", NULL, 1000, true},
};

#define NBODIES (sizeof(bodies) / sizeof(bodies[0]))

/* 3000 numbers in rows of 30, and 300 keys: the buffers grow many times. */
static char *big_body(void)
{
    struct proto_buf b;

    proto_buf_init(&b);
    proto_buf_puts(&b, "{\"input\": [");
    for (int i = 0; i < 100; i++) {
        proto_buf_puts(&b, i ? ", [" : "[");
        for (int j = 0; j < 30; j++)
            proto_buf_printf(&b, "%s%d.%03d", j ? ", " : "", i - 50, j * 7);
        proto_buf_puts(&b, "]");
    }
    proto_buf_puts(&b, "], \"o\": {");
    for (int i = 0; i < 300; i++)
        proto_buf_printf(&b, "%s\"key%03d\": %d", i ? ", " : "", 299 - i, i);
    proto_buf_puts(&b, "}}");
    ck_assert(proto_buf_ok(&b));
    return proto_buf_steal(&b, NULL);
}

static void limits(const struct body_case *c, struct proto_limits *lim)
{
    lim->max_elements = 1u << 20;
    lim->max_rank = 8;
    lim->max_depth = 64;
    lim->recover_values = c->recover;
    lim->max_value_errors = 3; /* fewer than the errors of one body */
}

/* The body through d in chunks; no Check assertion (Check allocates). */
static enum loss_status decode(struct proto_decoder *d, const char *body,
                               size_t chunk, struct proto_doc **ret_doc,
                               struct loss_error *err)
{
    size_t len = strlen(body), step = chunk ? chunk : len;
    enum loss_status st = LOSS_OK;

    for (size_t i = 0; i < len && st == LOSS_OK; i += step)
        st = proto_decoder_feed(d, body + i, len - i < step ? len - i : step,
                                err);
    if (st == LOSS_OK)
        st = proto_decoder_finish(d, ret_doc, err);
    return st;
}

/* A result as a string: the status and error, or the document written back
   with its errors. */
static void describe(enum loss_status st, const struct loss_error *err,
                     const struct proto_doc *doc, struct proto_buf *out)
{
    size_t total = 0, kept;

    proto_buf_reset(out);
    proto_buf_printf(out, "%d ", (int)st);
    if (st != LOSS_OK) {
        proto_problem_write(out, err, NULL, NULL);
        return;
    }
    proto_write_value(out, proto_doc_root(doc));
    kept = proto_doc_errors(doc, &total);
    proto_buf_printf(out, " errors %zu of %zu:", kept, total);
    for (size_t i = 0; i < kept; i++)
        proto_problem_write(out, proto_doc_error(doc, i), NULL, NULL);
}

/*
 * Every N of one body, with a new decoder (made under failures too) or a
 * reused one (its reset under failures). Counts the runs that ended in
 * LOSS_ENOMEM.
 */
static void fail_decoder(const struct body_case *c, const char *body,
                         bool reuse, bool sticky, size_t *ret_oom)
{
    struct proto_limits lim;
    struct proto_buf want, got;
    struct loss_error err;
    struct proto_doc *doc = NULL;
    struct proto_decoder *d;
    enum loss_status st;
    size_t k;

    limits(c, &lim);
    proto_buf_init(&want);
    proto_buf_init(&got);
    /* the failure-free run, counted as the runs below make it */
    d = reuse ? proto_decoder_new(&lim) : NULL;
    if (reuse) {
        ck_assert_ptr_nonnull(d);
        decode(d, body, c->chunk, &doc, &err);
        proto_doc_free(doc);
        doc = NULL;
    }
    failmalloc_fail_after(0, false);
    if (reuse)
        proto_decoder_reset(d);
    else
        d = proto_decoder_new(&lim);
    st = decode(d, body, c->chunk, &doc, &err);
    k = failmalloc_count();
    describe(st, &err, doc, &want);
    ck_assert(proto_buf_ok(&want));
    proto_doc_free(doc);
    proto_decoder_free(d);
    ck_assert_uint_gt(k, 0);
    /* got's first allocation before the pointers are counted */
    ck_assert(proto_buf_reserve(&got, 4096));
    for (size_t n = 1; n <= k + 1; n++) {
        long live = failmalloc_live();

        doc = NULL;
        loss_error_init(&err);
        d = reuse ? proto_decoder_new(&lim) : NULL;
        if (reuse) { /* a used one, as the pipeline's spares are */
            ck_assert_ptr_nonnull(d);
            decode(d, body, c->chunk, &doc, &err);
            proto_doc_free(doc);
            doc = NULL;
        }
        failmalloc_fail_after(n, sticky);
        if (reuse)
            proto_decoder_reset(d);
        else
            d = proto_decoder_new(&lim);
        st = d ? decode(d, body, c->chunk, &doc, &err) : LOSS_ENOMEM;
        failmalloc_off();
        ck_assert_msg(sticky ? (failmalloc_failures() > 0) == (n <= k)
                             : failmalloc_failures() == (n <= k),
                      "%s: allocation %zu of %zu: not the same allocations",
                      c->name, n, k);
        describe(st, &err, doc, &got);
        ck_assert(proto_buf_ok(&got));
        if (st == LOSS_ENOMEM) {
            ck_assert_ptr_null(doc);
            (*ret_oom)++;
        } else {
            ck_assert_msg(strcmp(got.data, want.data) == 0,
                          "%s, allocation %zu of %zu%s%s:\n got %s\nwant %s",
                          c->name, n, k, sticky ? " and later" : "",
                          reuse ? ", reused" : "", got.data, want.data);
        }
        proto_doc_free(doc);
        doc = NULL;
        if (d != NULL) { /* after a reset, the body decodes as before */
            proto_decoder_reset(d);
            st = decode(d, body, c->chunk, &doc, &err);
            describe(st, &err, doc, &got);
            ck_assert_msg(strcmp(got.data, want.data) == 0,
                          "%s, allocation %zu of %zu: after a reset:\n got "
                          "%s\nwant %s",
                          c->name, n, k, got.data, want.data);
            proto_doc_free(doc);
            proto_decoder_free(d);
        }
        ck_assert_msg(failmalloc_live() == live,
                      "%s, allocation %zu: %ld "
                      "pointers leaked",
                      c->name, n, failmalloc_live() - live);
    }
    proto_buf_release(&want);
    proto_buf_release(&got);
}

START_TEST(test_decoder)
{
    bool reuse = _i & 1, sticky = _i & 2;
    char *big = big_body();
    size_t oom = 0;

    for (size_t i = 0; i < NBODIES; i++)
        fail_decoder(&bodies[i], bodies[i].body ? bodies[i].body : big, reuse,
                     sticky, &oom);
    ck_assert_uint_gt(oom, 0);
    free(big);
}
END_TEST

/* --- the writers ---------------------------------------------------------- */

static const double values[] = {0.5, -1.25, 3.0e-300, 1e300, 0.0,  -0.0,
                                7.0, 8.5,   -9.75,    10.0,  11.0, 12.0};

static void write_response(struct proto_buf *b, const struct proto_value *id,
                           enum proto_format f)
{
    static struct proto_warning warnings[2] = {
        {"broadcast-target", "the target (3) broadcasts to (2, 3)",
         "/requests/0/target"},
        {"kl-div-mean", "reduction 'mean' is not the KL divergence", ""},
    };
    struct proto_out_tensor grads[2] = {
        {"input", 2, {2, 3}, values},
        {"target", 1, {3}, values + 6},
    };
    struct proto_response r = {
        .id = id,
        .status = id ? 200 : 0,
        .loss = "mse",
        .reduction = "none",
        .value_is_tensor = true,
        .value_tensor = {NULL, 2, {2, 3}, values + 3},
        .has_sum = true,
        .sum = 21.5,
        .count = 6.0,
        .grads = grads,
        .ngrads = 2,
        .warnings = warnings,
        .nwarnings = 2,
        .format = f,
    };

    proto_response_write(b, &r);
}

/* Written by the writer under test; no Check assertion. */
static void write_doc(struct proto_buf *b, int which,
                      const struct proto_value *id)
{
    struct loss_error err;

    switch (which) {
    case 0:
    case 1:
    case 2:
        write_response(b, which == 0 ? NULL : id, (enum proto_format)which);
        break;
    case 3:
        loss_fail(&err, LOSS_ESHAPE, "/requests/3/target",
                  "Expected input batch_size (5) to match target batch_size "
                  "(3), and a \"quoted\" \\ detail");
        proto_problem_write(b, &err, "req-1", id);
        break;
    }
}

START_TEST(test_writers)
{
    struct proto_limits lim = {1u << 20, 8, 64, false, 1};
    struct loss_error err;
    struct proto_doc *doc = NULL;
    const struct proto_value *id;
    size_t failed = 0;
    static const char id_body[] = "{\"id\": [\"item \\u00e9\", 7, 1.5, {\"t\": "
                                  "{\"shape\": [2], \"data\": "
                                  "[1, 2]}}, [[1, 2], [3, 4]], null, true]}";

    ck_assert_int_eq(
        proto_decode(id_body, sizeof(id_body) - 1, &lim, &doc, &err), LOSS_OK);
    id = proto_object_get(proto_doc_root(doc), "id");
    ck_assert_ptr_nonnull(id);
    for (int which = 0; which < 4; which++) {
        for (int sticky = 0; sticky < 2; sticky++) {
            struct proto_buf want, b;
            size_t k;

            proto_buf_init(&want);
            failmalloc_fail_after(0, false);
            write_doc(&want, which, id);
            k = failmalloc_count();
            ck_assert(proto_buf_ok(&want));
            ck_assert_uint_gt(k, 0);
            for (size_t n = 1; n <= k + 1; n++) {
                long live = failmalloc_live();

                proto_buf_init(&b);
                failmalloc_fail_after(n, sticky);
                write_doc(&b, which, id);
                failmalloc_off();
                ck_assert(sticky ? (failmalloc_failures() > 0) == (n <= k)
                                 : failmalloc_failures() == (n <= k));
                if (proto_buf_ok(&b))
                    ck_assert_msg(strcmp(b.data, want.data) == 0,
                                  "document %d, allocation %zu of %zu: %s",
                                  which, n, k, b.data);
                else
                    failed++;
                proto_buf_release(&b);
                ck_assert_int_eq(failmalloc_live(), live);
            }
            proto_buf_release(&want);
        }
    }
    ck_assert_uint_gt(failed, 0);
    proto_doc_free(doc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");

    failmalloc_install();
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, test_decoder, 0, 4);
    tcase_add_test(tc, test_writers);
    suite_add_tcase(s, tc);
    return test_run(s);
}

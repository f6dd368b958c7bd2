/*
 * test_torture.c - bad input is normal input.
 *
 * Every golden request (tests/golden/cases.json) is mangled in many ways:
 * truncated, bytes replaced with JSON's structural characters and invalid
 * UTF-8, and each top-level field replaced with values of every wrong kind
 * (null, strings, booleans, empty and ragged arrays, huge shapes, deep
 * nesting), deleted or duplicated. Each mangled body goes through
 * handler_eval(), and the answer must be a JSON document: a 200 response, or
 * a problem with a 4xx status whose "status" member agrees. Under the
 * sanitizer setup this also proves no path leaks, overflows or hits
 * undefined behaviour. The generator is seeded (printed) so a failure can be
 * replayed.
 *
 * Batches: every mangled request also goes into a batch, as the second
 * item after the intact request, and the batch body itself is truncated
 * and has bytes replaced. Besides the contract above, a batch answers each
 * item as that request alone would be answered (docs/api.md, "Batch": errors
 * belong to their item): 200 with the intact item's status unchanged and
 * the mangled item's status, type and pointer (under "/requests/1") those
 * of the request alone - unless the request alone hit a decoder limit
 * (413), which stays fatal for the whole body.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "handler.h"
#include "testutil.h"

#define SEED 20261129ULL

struct stats {
    size_t bodies;
    size_t by_status[6]; /* 200, 400, 404, 413, 422, other */
    size_t failures;
    size_t items; /* mangled requests also checked as batch items */
};

/*
 * One body through handler_eval(), checked against the contract. Returns
 * the parsed answer (NULL if it was not JSON; the caller decrefs) and its
 * status in *ret_status (may be NULL).
 */
static json_t *check_eval(const char *loss, const char *body, size_t len,
                          const struct handler_limits *lim, struct stats *st,
                          const char *what, int *ret_status)
{
    struct proto_buf out;
    json_error_t jerr;
    json_t *doc;
    int status;
    size_t slot;

    proto_buf_init(&out);
    status = handler_eval(loss, body, len, lim, NULL, NULL, &out);
    st->bodies++;
    slot = status == 200   ? 0
           : status == 400 ? 1
           : status == 404 ? 2
           : status == 413 ? 3
           : status == 422 ? 4
                           : 5;
    st->by_status[slot]++;
    doc = proto_buf_ok(&out)
              ? json_loadb(out.data, out.len, JSON_DECODE_ANY, &jerr)
              : NULL;
    if (doc == NULL || slot == 5 ||
        (status != 200 &&
         json_integer_value(json_object_get(doc, "status")) != status) ||
        (status == 200 && !json_is_object(doc))) {
        if (st->failures++ < 20)
            fprintf(stderr, "FAIL %s (%s): status %d, answer %.200s\n", what,
                    loss, status, out.data ? out.data : "(none)");
    }
    proto_buf_release(&out);
    if (ret_status != NULL)
        *ret_status = status;
    return doc;
}

static void check_one(const char *loss, const char *body, size_t len,
                      const struct handler_limits *lim, struct stats *st,
                      const char *what)
{
    json_decref(check_eval(loss, body, len, lim, st, what, NULL));
}

/* A batch item: {"loss": loss, "id": id, ...the members of request...}. */
static void put_item(struct proto_buf *b, const char *loss, int id,
                     const char *request)
{
    proto_buf_printf(b, "{\"loss\":\"%s\",\"id\":%d", loss, id);
    if (strcmp(request, "{}") != 0)
        proto_buf_printf(b, ",%s", request + 1);
    else
        proto_buf_puts(b, "}");
}

/*
 * request (a mangled body for loss, an object) alone and as item 1 of a
 * batch after the intact body (alone: intact_status): see the header.
 */
static void check_batch(const char *loss, const char *intact, int intact_status,
                        const char *request, const struct handler_limits *lim,
                        struct stats *st, const char *what)
{
    struct proto_buf b;
    json_t *alone, *batch, *r0, *r1;
    int s_alone, s_batch;
    const char *why = NULL;

    proto_buf_init(&b);
    proto_buf_puts(&b, "{\"requests\":[");
    put_item(&b, loss, 0, intact);
    proto_buf_puts(&b, ",");
    put_item(&b, loss, 1, request);
    proto_buf_puts(&b, "]}");
    ck_assert(proto_buf_ok(&b));
    alone = check_eval(loss, request, strlen(request), lim, st, what, &s_alone);
    batch = check_eval("batch", b.data, b.len, lim, st, what, &s_batch);
    r0 = json_array_get(json_object_get(batch, "results"), 0);
    r1 = json_array_get(json_object_get(batch, "results"), 1);
    if (alone == NULL || batch == NULL) {
        why = "not JSON";
    } else if (s_batch != 200) {
        if (s_alone != 413 || s_batch != 413)
            why = "the batch failed as a whole";
    } else if (json_array_size(json_object_get(batch, "results")) != 2) {
        why = "not two results";
    } else if (json_integer_value(json_object_get(r0, "status")) !=
               intact_status) {
        why = "the intact item changed";
    } else if (json_integer_value(json_object_get(r1, "status")) != s_alone ||
               json_integer_value(json_object_get(r1, "id")) != 1) {
        why = "the mangled item's status or id differs from the request's";
    } else if (s_alone != 200) {
        const char *ta = json_string_value(json_object_get(alone, "type"));
        const char *tb = json_string_value(json_object_get(r1, "type"));
        const char *pa = json_string_value(json_object_get(alone, "pointer"));
        const char *pb = json_string_value(json_object_get(r1, "pointer"));

        if (ta == NULL || tb == NULL || strcmp(ta, tb) != 0)
            why = "the mangled item's type differs from the request's";
        else if (pa != NULL &&
                 (pb == NULL || strncmp(pb, "/requests/1", 11) != 0 ||
                  strcmp(pb + 11, pa) != 0))
            why = "the mangled item's pointer is not the request's under "
                  "/requests/1";
    }
    st->items++;
    if (why != NULL && st->failures++ < 20) {
        char *a = alone ? json_dumps(alone, JSON_COMPACT) : NULL;
        char *c = batch ? json_dumps(batch, JSON_COMPACT) : NULL;

        fprintf(stderr,
                "FAIL batch %s (%s): %s\n  alone %d %.300s\n  batch "
                "%d %.600s\n",
                what, loss, why, s_alone, a ? a : "-", s_batch, c ? c : "-");
        free(a);
        free(c);
    }
    json_decref(alone);
    json_decref(batch);
    proto_buf_release(&b);
}

static const char *const replacements[] = {
    "null",
    "\"NaN\"",
    "\"x\"",
    "true",
    "[]",
    "{}",
    "[[]]",
    "[[1, 2], [3]]",
    "[1, \"a\"]",
    "[1, null]",
    "-1e308",
    "1e15",
    "-0",
    "[[[[[[[[[[1]]]]]]]]]]",
    "{\"shape\": [2], \"data\": [1]}",
    "{\"shape\": [4294967296, 4294967296], \"data\": []}",
    "{\"shape\": [2], \"dtype\": \"float64\", \"base64\": \"!!\"}",
    "{\"shape\": [1], \"dtype\": \"int8\", \"base64\": \"AA==\"}",
    "{\"shape\": [-1], \"data\": []}",
    "[\"input\", \"target\", \"weight\"]",
};

static const char flips[] = "[]{}\",:-0e\\ n\x01\xff\xc3";

START_TEST(test_torture)
{
    char *text =
        test_read_file(test_source_path("tests/golden/cases.json"), NULL);
    struct handler_limits lim;
    struct test_rng rng;
    struct stats st;
    json_error_t jerr;
    json_t *root, *cases;

    ck_assert_msg(text != NULL, "cannot read the golden cases");
    root = json_loads(text, 0, &jerr);
    free(text);
    ck_assert_ptr_nonnull(root);
    cases = json_object_get(root, "cases");
    memset(&st, 0, sizeof(st));
    handler_limits_default(&lim);
    /* Small limits too, so limit paths are mangled as well. */
    lim.max_work = 4096;
    test_rng_seed(&rng, SEED);
    fprintf(stderr, "torture seed %llu\n", SEED);

    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        const char *loss = json_string_value(json_object_get(c, "loss"));
        json_t *req = json_object_get(c, "request");
        char *body, *intact;
        size_t len;
        const char *key;
        json_t *val, *answer;
        int intact_status;
        /* its fields can go into a batch item unchanged */
        bool itemize = loss != NULL && handler_find(loss, strlen(loss)) &&
                       json_object_get(req, "loss") == NULL &&
                       json_object_get(req, "id") == NULL;

        if (loss == NULL || !json_is_object(req))
            continue;
        intact = json_dumps(req, JSON_COMPACT);
        answer = check_eval(loss, intact, strlen(intact), &lim, &st, "intact",
                            &intact_status);
        json_decref(answer);
        body = json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY);
        len = strlen(body);
        /* truncations: all of a short body, samples of a long one */
        for (size_t k = 0; k < (len < 160 ? len : 24); k++) {
            size_t cut =
                len < 160 ? k : (size_t)(test_rng_uniform(&rng) * (double)len);
            check_one(loss, body, cut, &lim, &st, "truncated");
        }
        /* byte replacements */
        for (size_t k = 0; k < 24 && len > 0; k++) {
            size_t at = (size_t)(test_rng_uniform(&rng) * (double)len);
            char keep = body[at];

            body[at] = flips[(size_t)(test_rng_uniform(&rng) *
                                      (double)(sizeof(flips) - 1))];
            check_one(loss, body, len, &lim, &st, "byte replaced");
            body[at] = keep;
        }
        free(body);
        /* every field: every wrong kind of value, deleted, duplicated */
        json_object_foreach(req, key, val)
        {
            json_t *copy = json_deep_copy(req);
            char *b;

            for (size_t r = 0; r < sizeof(replacements) / sizeof(*replacements);
                 r++) {
                json_t *v = json_loads(replacements[r], JSON_DECODE_ANY, NULL);

                ck_assert_ptr_nonnull(v);
                json_object_set_new(copy, key, v);
                b = json_dumps(copy, JSON_COMPACT);
                if (itemize)
                    check_batch(loss, intact, intact_status, b, &lim, &st,
                                replacements[r]);
                else
                    check_one(loss, b, strlen(b), &lim, &st, replacements[r]);
                free(b);
            }
            json_object_del(copy, key);
            b = json_dumps(copy, JSON_COMPACT);
            if (itemize)
                check_batch(loss, intact, intact_status, b, &lim, &st,
                            "field deleted");
            else
                check_one(loss, b, strlen(b), &lim, &st, "field deleted");
            free(b);
            json_decref(copy);
            /* a duplicate key, spliced into the text */
            b = json_dumps(req, JSON_COMPACT);
            {
                size_t bl = strlen(b);
                char *dup = malloc(bl + strlen(key) + 16);

                ck_assert_ptr_nonnull(dup);
                snprintf(dup, bl + strlen(key) + 16, "{\"%s\":1,%s", key,
                         b + 1);
                if (itemize)
                    check_batch(loss, intact, intact_status, dup, &lim, &st,
                                "duplicate");
                else
                    check_one(loss, dup, strlen(dup), &lim, &st, "duplicate");
                free(dup);
            }
            free(b);
        }
        /* the same body to every other loss and to the batch route */
        body = json_dumps(req, JSON_COMPACT);
        for (size_t l = 0; l < handler_count(); l += 5)
            check_one(handler_describe(handler_at(l))->name, body, strlen(body),
                      &lim, &st, "other loss");
        check_one("batch", body, strlen(body), &lim, &st, "as batch");
        free(body);
        /* a batch of the intact request twice, truncated and mangled */
        if (itemize) {
            struct proto_buf b;

            proto_buf_init(&b);
            proto_buf_puts(&b, "{\"requests\":[");
            put_item(&b, loss, 0, intact);
            proto_buf_puts(&b, ",");
            put_item(&b, loss, 1, intact);
            proto_buf_puts(&b, "],\"shared\":{}}");
            ck_assert(proto_buf_ok(&b));
            for (size_t k = 0; k < 12; k++)
                check_one("batch", b.data,
                          (size_t)(test_rng_uniform(&rng) * (double)b.len),
                          &lim, &st, "batch truncated");
            for (size_t k = 0; k < 24; k++) {
                size_t at = (size_t)(test_rng_uniform(&rng) * (double)b.len);
                char keep = b.data[at];

                b.data[at] = flips[(size_t)(test_rng_uniform(&rng) *
                                            (double)(sizeof(flips) - 1))];
                check_one("batch", b.data, b.len, &lim, &st,
                          "batch byte replaced");
                b.data[at] = keep;
            }
            proto_buf_release(&b);
        }
        free(intact);
    }
    fprintf(stderr,
            "torture: %zu bodies: %zu x 200, %zu x 400, %zu x 404, %zu x "
            "413, %zu x 422, %zu other; %zu requests also as batch items\n",
            st.bodies, st.by_status[0], st.by_status[1], st.by_status[2],
            st.by_status[3], st.by_status[4], st.by_status[5], st.items);
    json_decref(root);
    ck_assert_msg(st.failures == 0, "%zu mangled bodies broke the contract",
                  st.failures);
    ck_assert(st.bodies > 10000);
    ck_assert(st.items > 10000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("handlers_torture");
    TCase *tc = tcase_create("torture");

    loss_blas_init();
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_torture);
    suite_add_tcase(s, tc);
    return test_run(s);
}

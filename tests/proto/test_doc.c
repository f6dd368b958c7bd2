/*
 * test_doc.c - the decoded document (proto/doc.c) on its own, without the
 * decoder: the arena's alignment and separation, its chunk policy (a large
 * block does not take the small allocations' chunk away), owned blocks,
 * value errors kept and counted, the byte count, and a clear that makes the
 * document as new. Leaks show under the sanitize setup.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "testutil.h"
#include "value.h"

START_TEST(test_new_is_empty)
{
    struct proto_doc *doc = proto_doc_new();
    size_t total = 99;

    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(proto_doc_root(doc)->type, PROTO_NULL);
    ck_assert_uint_eq(proto_doc_elements(doc), 0);
    ck_assert_uint_eq(proto_doc_errors(doc, &total), 0);
    ck_assert_uint_eq(total, 0);
    ck_assert_uint_eq(proto_doc_errors(doc, NULL), 0);
    ck_assert_ptr_null(proto_doc_error(doc, 0));
    ck_assert_uint_gt(proto_doc_bytes(doc), 0);
    proto_doc_free(doc);
    proto_doc_free(NULL);
}
END_TEST

/*
 * Every size from 1 to 300 bytes, then a few large ones: each block is
 * 16-aligned, and blocks never overlap (each is filled with its own byte
 * and checked once all exist).
 */
START_TEST(test_alloc_aligned_and_separate)
{
    enum { N = 310 };
    struct proto_doc *doc = proto_doc_new();
    unsigned char *p[N];
    size_t size[N];

    ck_assert_ptr_nonnull(doc);
    for (size_t i = 0; i < N; i++) {
        size[i] = i < 300 ? i + 1 : (i - 299) * 20000;
        p[i] = proto_doc_alloc(doc, size[i]);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_uint_eq((uintptr_t)p[i] % 16, 0);
        memset(p[i], (int)(i & 0xff), size[i]);
    }
    for (size_t i = 0; i < N; i++) {
        size_t k = 0;

        while (k < size[i] && p[i][k] == (unsigned char)(i & 0xff))
            k++;
        ck_assert_msg(k == size[i], "block %zu byte %zu overwritten", i, k);
    }
    proto_doc_free(doc);
}
END_TEST

/* A request the arena cannot satisfy fails and leaves the document as it
   was. */
START_TEST(test_alloc_too_large)
{
    struct proto_doc *doc = proto_doc_new();
    size_t before;

    ck_assert_ptr_nonnull(doc);
    ck_assert_ptr_nonnull(proto_doc_alloc(doc, 8));
    before = proto_doc_bytes(doc);
    ck_assert_ptr_null(proto_doc_alloc(doc, SIZE_MAX / 2 + 1));
    ck_assert_ptr_null(proto_doc_alloc(doc, SIZE_MAX));
    ck_assert_uint_eq(proto_doc_bytes(doc), before);
    proto_doc_free(doc);
}
END_TEST

/*
 * The chunk policy, seen through proto_doc_bytes(): the first chunk is
 * under 1 KiB; a large block gets a chunk of its own behind the head, so
 * the small allocations that follow still fit in the head and cost no new
 * memory; chunks double up to PROTO_DOC_CHUNK_MAX and no further.
 */
START_TEST(test_alloc_chunk_policy)
{
    struct proto_doc *doc = proto_doc_new();
    size_t base, first, after_big, used = 0;

    ck_assert_ptr_nonnull(doc);
    base = proto_doc_bytes(doc);
    ck_assert_ptr_nonnull(proto_doc_alloc(doc, 16));
    first = proto_doc_bytes(doc);
    ck_assert_uint_gt(first, base);
    ck_assert_uint_lt(first - base, 1024);
    ck_assert_ptr_nonnull(proto_doc_alloc(doc, 100000));
    after_big = proto_doc_bytes(doc);
    ck_assert_uint_ge(after_big - first, 100000);
    for (int i = 0; i < 10; i++)
        ck_assert_ptr_nonnull(proto_doc_alloc(doc, 16));
    ck_assert_uint_eq(proto_doc_bytes(doc), after_big);

    /*
     * 8 MiB in 100-byte pieces (112 in the arena): at most one chunk of
     * PROTO_DOC_CHUNK_MAX is unused at any time and each chunk wastes less
     * than one piece, so what is held stays within the pieces' size plus
     * one chunk plus 1/100 for chunk headers and tails.
     */
    for (int i = 0; i < 80000; i++) {
        ck_assert_ptr_nonnull(proto_doc_alloc(doc, 100));
        used += 112;
    }
    ck_assert_uint_le(proto_doc_bytes(doc) - after_big,
                      used + PROTO_DOC_CHUNK_MAX + used / 100);
    proto_doc_free(doc);
}
END_TEST

START_TEST(test_own_blocks)
{
    struct proto_doc *doc = proto_doc_new();
    size_t before;

    ck_assert_ptr_nonnull(doc);
    before = proto_doc_bytes(doc);
    /* more than the first capacity of the list of owned blocks */
    for (size_t i = 0; i < 100; i++) {
        void *p = malloc(1000);

        ck_assert_ptr_nonnull(p);
        ck_assert(proto_doc_own(doc, p, 1000));
    }
    /* the blocks and the list that holds them */
    ck_assert_uint_ge(proto_doc_bytes(doc) - before,
                      100 * 1000 + 100 * sizeof(void *));
    proto_doc_free(doc); /* frees the blocks: no leak under ASan */
}
END_TEST

START_TEST(test_errors_kept_and_counted)
{
    struct proto_doc *doc = proto_doc_new();
    const struct loss_error *e = NULL;
    size_t total = 0, before;

    ck_assert_ptr_nonnull(doc);
    ck_assert(proto_doc_add_error(doc, 2, LOSS_ETENSOR, "/a/0", "ragged", &e));
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_eq(e, proto_doc_error(doc, 0));
    ck_assert(proto_doc_add_error(doc, 2, LOSS_EUNKNOWN, NULL, "dup", &e));
    ck_assert_ptr_eq(e, proto_doc_error(doc, 1));
    /* past max_kept: counted only, and it costs nothing */
    before = proto_doc_bytes(doc);
    for (int i = 0; i < 100; i++) {
        e = (const struct loss_error *)doc; /* must be overwritten */
        ck_assert(proto_doc_add_error(doc, 2, LOSS_EVALUE, "/z", "null", &e));
        ck_assert_ptr_null(e);
    }
    ck_assert_uint_eq(proto_doc_bytes(doc), before);
    ck_assert_uint_eq(proto_doc_errors(doc, &total), 2);
    ck_assert_uint_eq(total, 102);

    e = proto_doc_error(doc, 0);
    ck_assert_int_eq(e->status, LOSS_ETENSOR);
    ck_assert(e->has_pointer);
    ck_assert_str_eq(e->pointer, "/a/0");
    ck_assert_str_eq(e->detail, "ragged");
    e = proto_doc_error(doc, 1);
    ck_assert_int_eq(e->status, LOSS_EUNKNOWN);
    ck_assert(!e->has_pointer);
    ck_assert_str_eq(e->detail, "dup");
    ck_assert_ptr_null(proto_doc_error(doc, 2));
    ck_assert_ptr_null(proto_doc_error(doc, SIZE_MAX));
    proto_doc_free(doc);
}
END_TEST

/* More kept errors than the first capacity of the list. */
START_TEST(test_errors_many_kept)
{
    struct proto_doc *doc = proto_doc_new();
    const struct loss_error *e;
    size_t total;

    ck_assert_ptr_nonnull(doc);
    for (int i = 0; i < 1000; i++) {
        char ptr[32];

        snprintf(ptr, sizeof(ptr), "/%d", i);
        ck_assert(proto_doc_add_error(doc, 1000, LOSS_ETENSOR, ptr, "bad", &e));
    }
    ck_assert_uint_eq(proto_doc_errors(doc, &total), 1000);
    ck_assert_uint_eq(total, 1000);
    ck_assert_str_eq(proto_doc_error(doc, 0)->pointer, "/0");
    ck_assert_str_eq(proto_doc_error(doc, 999)->pointer, "/999");
    proto_doc_free(doc);
}
END_TEST

START_TEST(test_root_and_elements)
{
    struct proto_doc *doc = proto_doc_new();
    struct proto_value v;
    char *s;

    ck_assert_ptr_nonnull(doc);
    s = proto_doc_alloc(doc, 4);
    ck_assert_ptr_nonnull(s);
    memcpy(s, "abc", 4);
    v.type = PROTO_STRING;
    v.u.string.ptr = s;
    v.u.string.len = 3;
    proto_doc_set_root(doc, &v);
    memset(&v, 0, sizeof(v)); /* the root is a copy */
    ck_assert_int_eq(proto_doc_root(doc)->type, PROTO_STRING);
    ck_assert_str_eq(proto_doc_root(doc)->u.string.ptr, "abc");
    proto_doc_set_elements(doc, 12345);
    ck_assert_uint_eq(proto_doc_elements(doc), 12345);
    proto_doc_free(doc);
}
END_TEST

/*
 * A cleared document is as new: null root, nothing counted, its memory
 * back to that of a new one, and the arena starts again from a small chunk.
 */
START_TEST(test_clear_is_new)
{
    struct proto_doc *doc = proto_doc_new(), *fresh = proto_doc_new();
    const struct loss_error *e;
    struct proto_value v = {.type = PROTO_BOOL};
    size_t total = 99;

    ck_assert_ptr_nonnull(doc);
    ck_assert_ptr_nonnull(fresh);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1000; i++)
            ck_assert_ptr_nonnull(proto_doc_alloc(doc, 200));
        ck_assert(proto_doc_own(doc, malloc(64), 64));
        ck_assert(proto_doc_add_error(doc, 5, LOSS_EVALUE, "/x", "d", &e));
        proto_doc_set_root(doc, &v);
        proto_doc_set_elements(doc, 7);

        proto_doc_clear(doc);
        ck_assert_int_eq(proto_doc_root(doc)->type, PROTO_NULL);
        ck_assert_uint_eq(proto_doc_elements(doc), 0);
        ck_assert_uint_eq(proto_doc_errors(doc, &total), 0);
        ck_assert_uint_eq(total, 0);
        ck_assert_ptr_null(proto_doc_error(doc, 0));
        ck_assert_uint_eq(proto_doc_bytes(doc), proto_doc_bytes(fresh));
        ck_assert_ptr_nonnull(proto_doc_alloc(doc, 16));
        ck_assert_ptr_nonnull(proto_doc_alloc(fresh, 16));
        ck_assert_uint_eq(proto_doc_bytes(doc), proto_doc_bytes(fresh));
        proto_doc_clear(fresh);
    }
    proto_doc_free(doc);
    proto_doc_free(fresh);
}
END_TEST

static Suite *doc_suite(void)
{
    Suite *s = suite_create("proto_doc");
    TCase *arena = tcase_create("arena");
    TCase *doc = tcase_create("document");

    tcase_add_test(arena, test_new_is_empty);
    tcase_add_test(arena, test_alloc_aligned_and_separate);
    tcase_add_test(arena, test_alloc_too_large);
    tcase_add_test(arena, test_alloc_chunk_policy);
    tcase_add_test(arena, test_own_blocks);
    tcase_add_test(doc, test_errors_kept_and_counted);
    tcase_add_test(doc, test_errors_many_kept);
    tcase_add_test(doc, test_root_and_elements);
    tcase_add_test(doc, test_clear_is_new);
    suite_add_tcase(s, arena);
    suite_add_tcase(s, doc);
    return s;
}

int main(void)
{
    return test_run(doc_suite());
}

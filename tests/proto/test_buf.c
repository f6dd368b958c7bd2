/*
 * test_buf.c - proto/buf.c: growth, printf at every boundary of the room
 * left, stealing the data, and the failure flag: a buffer past its max (or
 * asked for an overflowing size) fails once, ignores later appends and is
 * usable again after a reset.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "encode.h"
#include "testutil.h"

/* The buffer's text, NUL-terminated; the buffer must not have failed. */
static const char *text(struct proto_buf *b)
{
    ck_assert(proto_buf_ok(b));
    ck_assert_ptr_nonnull(b->data);
    ck_assert_uint_eq(strlen(b->data), b->len);
    return b->data;
}

START_TEST(test_buf_growth)
{
    struct proto_buf b;
    size_t len;
    char *s;

    proto_buf_init(&b);
    ck_assert(proto_buf_ok(&b));
    for (size_t i = 0; i < 100000; i++)
        proto_buf_append(&b, "0123456789", i % 11);
    ck_assert_uint_eq(b.len,
                      100000 / 11 * 55 + (100000 % 11) * (100000 % 11 - 1) / 2);
    ck_assert_uint_eq(strlen(b.data), b.len);
    ck_assert_uint_lt(b.len, b.cap);
    proto_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    /* printf longer than what is left, and exactly filling it */
    for (int i = 0; i < 50; i++)
        proto_buf_printf(&b, "%0*d|", i * 20, i);
    ck_assert_uint_eq(strlen(text(&b)), b.len);
    ck_assert_int_eq(b.data[b.len - 1], '|');
    s = proto_buf_steal(&b, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(strlen(s), len);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_null(b.data);
    free(s);
    /* an empty buffer steals as "" */
    s = proto_buf_steal(&b, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "");
    ck_assert_uint_eq(len, 0);
    free(s);
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_buf_printf_boundaries)
{
    struct proto_buf b;
    char expect[1024];

    /* every room left from 0 to 300 bytes against a 40-byte format */
    for (size_t pre = 0; pre < 300; pre++) {
        proto_buf_init(&b);
        for (size_t i = 0; i < pre; i++)
            proto_buf_append(&b, "x", 1);
        proto_buf_printf(&b, "%s-%d", "0123456789012345678901234567890123456",
                         42);
        memset(expect, 'x', pre);
        snprintf(expect + pre, sizeof(expect) - pre, "%s-%d",
                 "0123456789012345678901234567890123456", 42);
        ck_assert_str_eq(text(&b), expect);
        proto_buf_release(&b);
    }
}
END_TEST

START_TEST(test_buf_max_fails_once)
{
    struct proto_buf b;
    const size_t shape[] = {100};
    double d[100] = {0};
    size_t len = 12345;

    proto_buf_init(&b);
    b.max = 64;
    proto_buf_append(&b, "0123456789", 10);
    ck_assert(proto_buf_ok(&b));
    proto_write_tensor(&b, shape, 1, d, PROTO_FORMAT_NESTED);
    ck_assert(!proto_buf_ok(&b));
    ck_assert_uint_le(b.len, 64);
    /* later appends are ignored, not half-written */
    len = b.len;
    proto_buf_puts(&b, "x");
    proto_buf_printf(&b, "%d", 1);
    ck_assert_uint_eq(b.len, len);
    ck_assert(!proto_buf_reserve(&b, 1));
    ck_assert_ptr_null(proto_buf_steal(&b, &len));
    ck_assert_ptr_null(b.data);
    /* reset makes the buffer usable again; exactly max bytes fit */
    proto_buf_reset(&b);
    ck_assert(proto_buf_ok(&b));
    for (int i = 0; i < 64; i++)
        proto_buf_append(&b, "y", 1);
    ck_assert(proto_buf_ok(&b));
    ck_assert_uint_eq(b.len, 64);
    proto_buf_printf(&b, "%s", "");
    ck_assert(proto_buf_ok(&b));
    proto_buf_printf(&b, "%d", 7);
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
}
END_TEST

START_TEST(test_buf_overflowing_reserve)
{
    struct proto_buf b;

    proto_buf_init(&b);
    proto_buf_append(&b, "abc", 3);
    ck_assert(!proto_buf_reserve(&b, SIZE_MAX - 1));
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
    /* the NUL's byte overflowing, and a limit refused before realloc */
    proto_buf_init(&b);
    ck_assert(!proto_buf_reserve(&b, SIZE_MAX));
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
    proto_buf_init(&b);
    b.max = 1000;
    ck_assert(proto_buf_reserve(&b, 1000));
    ck_assert(!proto_buf_reserve(&b, SIZE_MAX / 2));
    ck_assert(!proto_buf_ok(&b));
    proto_buf_release(&b);
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("proto_buf");
    TCase *buf = tcase_create("buf");

    tcase_add_test(buf, test_buf_growth);
    tcase_add_test(buf, test_buf_printf_boundaries);
    tcase_add_test(buf, test_buf_max_fails_once);
    tcase_add_test(buf, test_buf_overflowing_reserve);
    suite_add_tcase(s, buf);
    return s;
}

int main(void)
{
    return test_run(buf_suite());
}

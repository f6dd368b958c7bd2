/*
 * test_tensor_bytes.c - proto/tensor_bytes.c: the datatypes' names and
 * sizes, the exact float64 value of every binary16 pattern (against its
 * definition, computed another way) and of bfloat16's special values, and
 * widening fed in chunks of every size, so that a chunk boundary falls
 * inside every element.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tensor_bytes.h"
#include "testutil.h"

/* binary16 by its definition, independently of ldexp(): (-1)^s 2^(e-15)
   (1 + f/1024), or 2^-14 (f/1024) for e == 0. */
static double fp16_reference(uint16_t h)
{
    int e = (h >> 10) & 0x1f;
    double f = (double)(h & 0x3ff) / 1024.0, v, scale = 1.0;

    if (e == 0x1f)
        v = (h & 0x3ff) ? NAN : INFINITY;
    else {
        int p = e == 0 ? -14 : e - 15;

        for (int i = 0; i < (p < 0 ? -p : p); i++)
            scale = p < 0 ? scale / 2.0 : scale * 2.0;
        v = (e == 0 ? f : 1.0 + f) * scale;
    }
    return (h & 0x8000) ? -v : v;
}

START_TEST(test_fp16_every_pattern)
{
    for (uint32_t h = 0; h <= 0xffff; h++) {
        double a = proto_fp16_to_double((uint16_t)h);
        double b = fp16_reference((uint16_t)h);

        if (isnan(b)) {
            ck_assert_msg(isnan(a), "0x%04x", h);
            continue;
        }
        ck_assert_msg(a == b && signbit(a) == signbit(b), "0x%04x: %g vs %g", h,
                      a, b);
    }
    ck_assert(proto_fp16_to_double(0x0001) == ldexp(1.0, -24)); /* subnormal */
    ck_assert(proto_fp16_to_double(0x7bff) == 65504.0);
    ck_assert(signbit(proto_fp16_to_double(0x8000)));
}
END_TEST

START_TEST(test_bf16)
{
    ck_assert(proto_bf16_to_double(0x3f80) == 1.0);
    ck_assert(proto_bf16_to_double(0xc000) == -2.0);
    ck_assert(proto_bf16_to_double(0x0001) == ldexp(1.0, -133)); /* subnormal */
    ck_assert(proto_bf16_to_double(0x7f80) == INFINITY);
    ck_assert(proto_bf16_to_double(0xff80) == -INFINITY);
    ck_assert(isnan(proto_bf16_to_double(0x7fc0)));
    ck_assert(proto_bf16_to_double(0x7f7f) == 0x1.fep127);
}
END_TEST

START_TEST(test_dtype_names)
{
    enum proto_dtype dt;

    for (unsigned i = 0; i < PROTO_DT_COUNT; i++) {
        const char *n = proto_dtype_name((enum proto_dtype)i);

        ck_assert(proto_dtype_parse(n, strlen(n), &dt));
        ck_assert_uint_eq(dt, i);
    }
    ck_assert(!proto_dtype_parse("fp32", 4, &dt));
    ck_assert(!proto_dtype_parse("UINT16", 6, &dt));
    ck_assert(!proto_dtype_parse("BYTES", 5, &dt));
    ck_assert(!proto_dtype_parse("FP3", 3, &dt));
}
END_TEST

/* Every chunk size, so a chunk boundary falls inside every element. */
START_TEST(test_widener_chunks)
{
    static const enum proto_dtype dts[] = {
        PROTO_DT_BOOL, PROTO_DT_UINT8, PROTO_DT_INT32, PROTO_DT_INT64,
        PROTO_DT_FP16, PROTO_DT_BF16,  PROTO_DT_FP32,  PROTO_DT_FP64};
    unsigned char bytes[8 * 37];
    double whole[37], part[37];
    struct test_rng rng;

    test_rng_seed(&rng, 7);
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (unsigned char)(test_rng_uniform(&rng) * 256);
    for (size_t k = 0; k < sizeof(dts) / sizeof(*dts); k++) {
        size_t size = proto_dtype_size(dts[k]), total = 37 * size;
        struct proto_widener w;

        proto_widener_init(&w, dts[k], whole, 37);
        ck_assert_uint_eq(proto_widener_left(&w), total);
        /* more than the tensor: only its bytes are taken */
        ck_assert_uint_eq(proto_widener_feed(&w, bytes, sizeof(bytes)), total);
        ck_assert_uint_eq(proto_widener_left(&w), 0);
        for (size_t chunk = 1; chunk <= 11; chunk++) {
            size_t off = 0;

            proto_widener_init(&w, dts[k], part, 37);
            while (off < total) {
                size_t n = total - off < chunk ? total - off : chunk;

                ck_assert_uint_eq(proto_widener_feed(&w, bytes + off, n), n);
                off += n;
            }
            ck_assert_uint_eq(proto_widener_left(&w), 0);
            for (size_t i = 0; i < 37; i++)
                ck_assert_msg(memcmp(&whole[i], &part[i], 8) == 0,
                              "%s chunk %zu element %zu",
                              proto_dtype_name(dts[k]), chunk, i);
        }
    }
    /* spot values */
    {
        int32_t i32[2] = {-7, 2147483647};
        int64_t i64[2] = {-9007199254740993LL, 42};
        unsigned char b[3] = {0, 1, 200};
        double out[3];
        struct proto_widener w;

        proto_widener_init(&w, PROTO_DT_INT32, out, 2);
        proto_widener_feed(&w, i32, sizeof(i32));
        ck_assert(out[0] == -7.0 && out[1] == 2147483647.0);
        proto_widener_init(&w, PROTO_DT_INT64, out, 2);
        proto_widener_feed(&w, i64, sizeof(i64));
        ck_assert(out[0] == -9007199254740992.0 && out[1] == 42.0);
        proto_widener_init(&w, PROTO_DT_BOOL, out, 3);
        proto_widener_feed(&w, b, 3);
        ck_assert(out[0] == 0.0 && out[1] == 1.0 && out[2] == 1.0);
        proto_widener_init(&w, PROTO_DT_UINT8, out, 3);
        proto_widener_feed(&w, b, 3);
        ck_assert(out[2] == 200.0);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tensor_bytes");
    TCase *tc = tcase_create("tensor_bytes");

    tcase_add_test(tc, test_fp16_every_pattern);
    tcase_add_test(tc, test_bf16);
    tcase_add_test(tc, test_dtype_names);
    tcase_add_test(tc, test_widener_chunks);
    suite_add_tcase(s, tc);
    return test_run(s);
}

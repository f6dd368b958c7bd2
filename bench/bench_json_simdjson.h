/*
 * bench_json_simdjson.h - simdjson On-Demand behind a C interface, for
 * bench_json.c (bench_json_simdjson.cpp; built only when Meson finds
 * simdjson and a C++ compiler).
 */
#ifndef LOSSD_BENCH_JSON_SIMDJSON_H
#define LOSSD_BENCH_JSON_SIMDJSON_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bench_simdjson;

/* A parser kept across bodies (as simdjson advises); NULL on OOM. */
struct bench_simdjson *bench_simdjson_new(void);
void bench_simdjson_free(struct bench_simdjson *b);

/* The kernel simdjson chose at run time (haswell, westmere, ...). */
const char *bench_simdjson_implementation(void);

/*
 * Sums the numbers of {"input": [...]} in buf[0..len), which stays readable
 * up to cap >= len + SIMDJSON_PADDING bytes. With store, the numbers are
 * first stored into a new std::vector<double> of the right size (the work
 * lossd's decoder does for its tensor) and summed from it; without, each
 * is added as it is read. 0, or -1 on any error.
 */
int bench_simdjson_sum(struct bench_simdjson *b, const char *buf, size_t len,
                       size_t cap, bool store, double *ret_sum, size_t *ret_n);

#ifdef __cplusplus
}
#endif

#endif

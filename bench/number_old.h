/*
 * number_old.h - proto_format_double() as it was before Schubfach, and the
 * printf() formatter it was held to (bench/number_old.c). For the number
 * benchmarks only.
 */
#ifndef LOSSD_BENCH_NUMBER_OLD_H
#define LOSSD_BENCH_NUMBER_OLD_H

#include <stddef.h>

#include "number.h"

/* The Grisu3 writer of commit 6095235, byte for byte. */
size_t old_format_double(double v, char out[PROTO_DOUBLE_MAX]);

/* The shortest of %.15g, %.16g, %.17g that strtod() reads back to v, ".0"
   when integral; "NaN", "Infinity", "-Infinity" quoted. 1 to 2 us. */
size_t old_format_reference(double v, char out[PROTO_DOUBLE_MAX]);

#endif

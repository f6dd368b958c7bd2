/*
 * number.h - JSON numbers and float64, both ways.
 *
 * Reading: a JSON number token becomes exactly the double strtod() in the C
 * locale reads from it (correctly rounded; -0 keeps its sign; a 20-digit
 * integer is a number too), whatever locale the process runs in. Tokens of
 * up to 19 significant digits take Clinger's exact path or Eisel-Lemire
 * (128-bit powers of five), which settle all but the rarest (subnormal,
 * zero by underflow or overflowing results, and the rare product
 * Eisel-Lemire cannot round); longer ones, Eisel-Lemire of
 * their first 19 digits and of the next integer up when both give the same
 * double; the rest go to strtod_l() with a private C locale.
 *
 * Writing: a double becomes the JSON text that reads back (strtod) to the
 * same float64: the shortest of %.15g, %.16g, %.17g that round-trips,
 * exactly as printf() writes it, found with Schubfach (the shortest digits
 * that read back, laid out as %g would) and, for subnormals and some
 * powers of two, with those very printf() calls. Non-finite values are
 * the strings "NaN", "Infinity", "-Infinity"; -0 prints as -0.0 and
 * integral values keep a ".0", so clients read floats.
 *
 * Reading and writing are pure functions of their arguments: no
 * allocation, no state, safe from any thread (one C locale may serve many
 * threads).
 */
#ifndef LOSSD_PROTO_NUMBER_H
#define LOSSD_PROTO_NUMBER_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>

/* --- reading ------------------------------------------------------------ */

enum proto_number_result {
    PROTO_NUMBER_OK,
    PROTO_NUMBER_SYNTAX, /* not a JSON number */
    PROTO_NUMBER_RANGE,  /* a JSON number beyond float64's range */
    /* the token needs strtod_l() and a NUL-terminated copy of it, which
       only the caller can make: read it again from one (terminated) */
    PROTO_NUMBER_UNTERMINATED,
};

/*
 * A private C locale for proto_number_read(): new (the caller frees it with
 * proto_number_locale_free()), or (locale_t)0 when out of memory. A reader
 * keeps one for its life: making one costs more than many numbers.
 */
locale_t proto_number_locale_new(void);

/* Frees a locale from proto_number_locale_new(). (locale_t)0 is fine. */
void proto_number_locale_free(locale_t c_locale);

/*
 * Reads the number token s[0..n) into *ret (written only on
 * PROTO_NUMBER_OK), after checking the JSON grammar
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? on the whole token. s is
 * borrowed and need not be NUL-terminated; terminated says that s[n] is
 * '\0'. c_locale is from proto_number_locale_new().
 *
 * A number beyond float64's range is PROTO_NUMBER_RANGE (underflow is not
 * an error: it reads as strtod() reads it, 0 or a subnormal). An
 * unterminated token longer than PROTO_NUMBER_COPY_MAX bytes that no fast
 * path settles is PROTO_NUMBER_UNTERMINATED; shorter ones are copied here.
 */
enum proto_number_result proto_number_read(const char *s, size_t n,
                                           bool terminated, locale_t c_locale,
                                           double *ret);

/* The longest unterminated token proto_number_read() copies itself, in
   bytes. */
#define PROTO_NUMBER_COPY_MAX 63

/*
 * The decoder's hot path: reads the number token that starts at s and may
 * not reach end (s < end; s is borrowed, read only below end). The token
 * is the longest run of number bytes (digits, '.', 'e', 'E', '+', '-') from
 * s. Returns its length and writes *ret, exactly what proto_number_read()
 * gives for it, when the run ends before end, is a JSON number of at most
 * 19 significant digits and an exponent below 100000, and a fast path
 * settles it. Returns 0 otherwise (a syntax error, a token that may go on
 * past end, a number that needs strtod or is out of range), leaving *ret
 * alone: the caller then reads the token with proto_number_read().
 */
size_t proto_number_scan(const char *s, const char *end, double *ret);

/*
 * The decoder's hot loop: proto_number_scan() over a run of numbers
 * separated by ',' and JSON white space, from s (before end), storing at
 * most max of them in out[0..) (borrowed). It stops before a token that
 * proto_number_scan() does not settle (or that does not start like a
 * number), after max numbers (their ',' and the white space after it
 * consumed), or after a number that no ',' follows (white space consumed:
 * *ret_after_number is then true). Returns how many numbers it stored;
 * *ret_end is where it stopped. One call per run instead of one per
 * number: its loop keeps everything in registers.
 */
size_t proto_number_scan_list(const char *s, const char *end, double *out,
                              size_t max, const char **ret_end,
                              bool *ret_after_number);

/* --- writing ------------------------------------------------------------ */

/* Longest text proto_format_double() writes, with the NUL. */
#define PROTO_DOUBLE_MAX 32

/*
 * Writes v as a JSON value into out, NUL-terminated; returns its length
 * (without the NUL). Never fails. out must have PROTO_DOUBLE_MAX bytes: the
 * writer may use all of them, and those after the NUL are unspecified.
 * Subnormals and the 1032 powers of two (of each sign; none an integer
 * below 2^53) whose shortest digits number 16 are printed with snprintf()
 * and checked with strtod(), which follow LC_NUMERIC: the process must
 * leave it "C" (lossd never calls setlocale()).
 */
size_t proto_format_double(double v, char out[PROTO_DOUBLE_MAX]);

#endif

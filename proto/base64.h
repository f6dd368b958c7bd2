/*
 * base64.h - standard base64 both ways: RFC 4648 section 4, the alphabet
 * A-Z a-z 0-9 + / with '=' padding, no line breaks. Base64 tensors carry
 * their little-endian bytes in it ({"shape", "dtype", "base64"}).
 *
 * Pure functions on caller-provided buffers: no allocation, no state.
 */
#ifndef LOSSD_PROTO_BASE64_H
#define LOSSD_PROTO_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The length of the base64 text of n bytes, 4 * ceil(n / 3). The caller
 * keeps n <= SIZE_MAX / 4 * 3 so that it cannot overflow.
 */
static inline size_t proto_base64_len(size_t n)
{
    return (n / 3 + (n % 3 != 0)) * 4;
}

/*
 * Writes the padded base64 of in[0..n) to out, which has room for
 * proto_base64_len(n) bytes; returns that length. No NUL is written. Text
 * made chunk by chunk from chunks of a multiple of 3 bytes is the text of
 * the whole.
 */
size_t proto_base64_encode(const unsigned char *in, size_t n, char *out);

/*
 * Decodes padded base64 s[0..n) into out, which has room for exactly want
 * bytes. True when s is base64 of exactly want bytes. False, with out
 * partly written, for anything else: a length that is not a multiple of 4,
 * a byte outside the alphabet (white space, NUL, the URL-safe '-' and '_'),
 * '=' anywhere but in the last two places, or a decoded length other than
 * want. The unused low bits of the last character before the padding are
 * not checked ("Zh==" decodes as "Zg==" does).
 */
bool proto_base64_decode(const char *s, size_t n, unsigned char *out,
                         size_t want);

#endif

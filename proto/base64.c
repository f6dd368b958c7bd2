/*
 * base64.c - standard padded base64 of base64.h: the writer behind base64
 * response tensors and the strict reader behind base64 request tensors.
 */
#include "base64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 4 characters of in[0..n), 1 <= n <= 3, padded (in[n..3) are 0). */
static void quad(const unsigned char in[3], size_t n, char out[4])
{
    unsigned v = (unsigned)in[0] << 16 | (unsigned)in[1] << 8 | in[2];

    out[0] = alphabet[(v >> 18) & 63];
    out[1] = alphabet[(v >> 12) & 63];
    out[2] = n > 1 ? alphabet[(v >> 6) & 63] : '=';
    out[3] = n > 2 ? alphabet[v & 63] : '=';
}

size_t proto_base64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;

    for (; n - i >= 3; i += 3, o += 4)
        quad(in + i, 3, out + o);
    if (i < n) {
        unsigned char last[3] = {0, 0, 0};

        for (size_t k = 0; k < n - i; k++)
            last[k] = in[i + k];
        quad(last, n - i, out + o);
        o += 4;
    }
    return o;
}

static const signed char values[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,
    ['G'] = 7,  ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
}; /* value + 1; 0 is not base64 */

bool proto_base64_decode(const char *s, size_t n, unsigned char *out,
                         size_t want)
{
    size_t pad = 0, o = 0;

    if (n % 4 != 0)
        return false;
    if (n > 0 && s[n - 1] == '=')
        pad = n > 1 && s[n - 2] == '=' ? 2 : 1;
    if (n / 4 * 3 - pad != want)
        return false;
    for (size_t i = 0; i < n; i += 4) {
        unsigned v[4];
        size_t k = i + 4 == n ? 4 - pad : 4;

        for (size_t j = 0; j < 4; j++) {
            int b = j < k ? values[(unsigned char)s[i + j]] : 1;

            if (b == 0)
                return false;
            v[j] = (unsigned)(b - 1);
        }
        unsigned q = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];

        out[o++] = (unsigned char)(q >> 16);
        if (k > 2)
            out[o++] = (unsigned char)(q >> 8);
        if (k > 3)
            out[o++] = (unsigned char)q;
    }
    return true;
}

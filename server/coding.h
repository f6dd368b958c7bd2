/*
 * coding.h - HTTP content codings (RFC 9110 8.4): which coding a client
 * accepts for a response, compressing a response body, and inflating a
 * gzip or deflate request body as it streams in, with a bound on what it
 * inflates to (gzip bombs).
 */
#ifndef LOSSD_SERVER_CODING_H
#define LOSSD_SERVER_CODING_H

#include <stdbool.h>
#include <stddef.h>
#include <zlib.h>

enum server_coding {
    SERVER_CODING_IDENTITY,
    SERVER_CODING_GZIP,
    SERVER_CODING_DEFLATE, /* the zlib format, as HTTP's "deflate" means */
};

/*
 * Responses of at least this many bytes are compressed when the client
 * accepts gzip or deflate: below a KiB the coding's framing and a deflate
 * round cost more than the bytes they save.
 */
#define SERVER_COMPRESS_MIN ((size_t)1024)

/*
 * zlib level of per-request compression: nginx's default gzip_comp_level.
 * JSON numbers shrink about 2.5x already at level 1, and higher levels cost
 * several times the CPU for a few percent more. Documents built once at
 * start are compressed at SERVER_COMPRESS_LEVEL_STATIC.
 */
#define SERVER_COMPRESS_LEVEL        1
#define SERVER_COMPRESS_LEVEL_STATIC 9

/*
 * A response larger than this is compressed only when a sample of it, this
 * many bytes from its middle, deflates at SERVER_COMPRESS_LEVEL to at most
 * SERVER_COMPRESS_SAMPLE_NUM / SERVER_COMPRESS_SAMPLE_DEN of its size.
 * zlib's level 1 runs at 25 to 60 MB/s on one core, slower on the data that
 * shrinks least: base64 of float64 shrinks by about a quarter at 30 MB/s,
 * which pays only below about 6 MB/s (50 Mbit/s) of network and costs a
 * 107 MB answer 4 s more on a fast one; JSON numbers shrink by half at
 * 57 MB/s and keep being compressed. The sample costs 2 to 3 ms. Smaller
 * responses are compressed whenever that makes them smaller.
 */
#define SERVER_COMPRESS_SAMPLE     ((size_t)64 * 1024)
#define SERVER_COMPRESS_SAMPLE_NUM 2
#define SERVER_COMPRESS_SAMPLE_DEN 3

/*
 * The response coding a client prefers from its Accept-Encoding value ae
 * (NULL: identity). gzip and deflate each get their own q, or that of "*"
 * when not listed; q=0 refuses a coding. The higher q wins, gzip on a tie
 * (every client that takes deflate takes gzip, and some read "deflate" as
 * raw deflate). Unreadable q-values count as 0.
 */
enum server_coding server_coding_accept(const char *ae);

/* "gzip", "deflate", or NULL for identity. */
const char *server_coding_name(enum server_coding c);

/*
 * The coding of a request body from its Content-Encoding value ce (NULL:
 * none): 0 and *ret set for identity, gzip, x-gzip or deflate (any case);
 * -ENOTSUP for anything else.
 */
int server_coding_of_body(const char *ce, enum server_coding *ret);

/*
 * data (len bytes) compressed with coding c at level: *ret is new (free())
 * and *ret_len its length, only when it is no larger than data. 0 on
 * success; -EMSGSIZE when it would not be smaller (or c is identity, or
 * len is 0), -ENOMEM: nothing allocated then, send data as it is. Never
 * holds more than twice the body.
 */
int server_coding_compress(enum server_coding c, int level, const char *data,
                           size_t len, char **ret, size_t *ret_len);

/*
 * Whether data (len bytes) is worth compressing at SERVER_COMPRESS_LEVEL:
 * true up to SERVER_COMPRESS_SAMPLE bytes (server_coding_compress() still
 * refuses output that is not smaller); above, true only when the sample
 * from the middle shrinks to SERVER_COMPRESS_SAMPLE_NUM / _DEN or less.
 * Depends only on the bytes. False when zlib cannot allocate.
 */
bool server_coding_worth(const char *data, size_t len);

/* A request body being inflated. Caller-allocated; init, feed, end. */
struct server_inflater {
    z_stream z;
    size_t max;      /* bytes it may inflate to */
    size_t inflated; /* bytes inflated so far */
    bool ended;      /* the compressed stream is complete */
};

/* Starts inflating (gzip or zlib, detected) up to max bytes. 0 or
   -ENOMEM. */
int server_inflater_init(struct server_inflater *in, size_t max);

/*
 * Inflates n more bytes of the body, passing the output to sink in pieces
 * of at most 16 KiB. 0 when all was taken; the first nonzero value sink
 * returns (inflating stops there); -EBADMSG when the data is corrupt
 * (server_inflater_reason() says how); -EMSGSIZE when the output passes
 * max; -EPROTO for data after the end of the compressed stream.
 */
int server_inflater_feed(struct server_inflater *in, const char *data, size_t n,
                         int (*sink)(void *ctx, const char *data, size_t n),
                         void *ctx);

/* zlib's word on corrupt data ("zlib error" when it has none). */
const char *server_inflater_reason(const struct server_inflater *in);

/* Frees the inflater's state. */
void server_inflater_end(struct server_inflater *in);

#endif

/*
 * coding.c - content codings of request and response bodies (coding.h).
 */
#include "coding.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A q-value (RFC 9110 12.4.2), leniently: anything unreadable is 0. */
static double parse_q(const char *v, size_t n)
{
    char tmp[16];
    if (n == 0 || n >= sizeof tmp)
        return 0;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    double q = strtod(tmp, &end);
    if (*end || !(q >= 0))
        return 0;
    return q > 1 ? 1 : q;
}

enum server_coding server_coding_accept(const char *ae)
{
    double qgzip = -1, qdeflate = -1, qany = -1;
    while (ae && *ae) {
        ae += strspn(ae, " \t,");
        size_t tn = strcspn(ae, " \t,;");
        const char *tok = ae;
        double q = 1;
        ae += tn;
        /* parameters: ;name=value ... up to the next comma */
        while (*ae && *ae != ',') {
            ae += strspn(ae, " \t;");
            size_t pn = strcspn(ae, "=,;");
            if (ae[pn] != '=') {
                ae += pn;
                continue;
            }
            size_t name_end = pn;
            while (name_end > 0 &&
                   (ae[name_end - 1] == ' ' || ae[name_end - 1] == '\t'))
                name_end--;
            const char *v = ae + pn + 1;
            v += strspn(v, " \t");
            size_t vn = strcspn(v, " \t,;");
            if (name_end == 1 && (ae[0] == 'q' || ae[0] == 'Q'))
                q = parse_q(v, vn);
            ae = v + vn;
        }
        if ((tn == 4 && !strncasecmp(tok, "gzip", 4)) ||
            (tn == 6 && !strncasecmp(tok, "x-gzip", 6)))
            qgzip = q;
        else if (tn == 7 && !strncasecmp(tok, "deflate", 7))
            qdeflate = q;
        else if (tn == 1 && tok[0] == '*')
            qany = q;
    }
    if (qgzip < 0)
        qgzip = qany < 0 ? 0 : qany;
    if (qdeflate < 0)
        qdeflate = qany < 0 ? 0 : qany;
    if (qgzip <= 0 && qdeflate <= 0)
        return SERVER_CODING_IDENTITY;
    return qgzip >= qdeflate ? SERVER_CODING_GZIP : SERVER_CODING_DEFLATE;
}

const char *server_coding_name(enum server_coding c)
{
    return c == SERVER_CODING_GZIP      ? "gzip"
           : c == SERVER_CODING_DEFLATE ? "deflate"
                                        : NULL;
}

int server_coding_of_body(const char *ce, enum server_coding *ret)
{
    if (!ce || !strcasecmp(ce, "identity"))
        *ret = SERVER_CODING_IDENTITY;
    else if (!strcasecmp(ce, "gzip") || !strcasecmp(ce, "x-gzip"))
        *ret = SERVER_CODING_GZIP;
    else if (!strcasecmp(ce, "deflate"))
        *ret = SERVER_CODING_DEFLATE;
    else
        return -ENOTSUP;
    return 0;
}

int server_coding_compress(enum server_coding c, int level, const char *data,
                           size_t len, char **ret, size_t *ret_len)
{
    /* zlib counts in uInt: feed and drain in steps it can take */
    const size_t step = (size_t)1 << 30;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (c == SERVER_CODING_IDENTITY || len == 0)
        return -EMSGSIZE;
    int wbits = c == SERVER_CODING_GZIP ? 15 + 16 : 15;
    if (deflateInit2(&z, level, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return -ENOMEM;
    char *out = malloc(len);
    size_t in_off = 0, out_off = 0;
    int zr = Z_OK;
    while (out && zr == Z_OK && out_off < len) {
        if (z.avail_in == 0 && in_off < len) {
            size_t n = len - in_off < step ? len - in_off : step;
            z.next_in = (Bytef *)(uintptr_t)(data + in_off);
            z.avail_in = (uInt)n;
            in_off += n;
        }
        size_t room = len - out_off < step ? len - out_off : step;
        z.next_out = (Bytef *)(out + out_off);
        z.avail_out = (uInt)room;
        bool last = in_off == len && z.avail_in == 0;
        zr = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
        out_off += room - z.avail_out;
        if (zr == Z_BUF_ERROR) /* no progress possible: cannot happen */
            break;
    }
    deflateEnd(&z);
    if (!out)
        return -ENOMEM;
    if (zr != Z_STREAM_END) {
        free(out);
        return -EMSGSIZE;
    }
    *ret = out;
    *ret_len = out_off;
    return 0;
}

bool server_coding_worth(const char *data, size_t len)
{
    char out[16384];
    z_stream z;
    size_t zlen = 0;
    int zr;

    if (len <= SERVER_COMPRESS_SAMPLE)
        return true;
    memset(&z, 0, sizeof z);
    /* raw deflate: the framing is the same for every body */
    if (deflateInit2(&z, SERVER_COMPRESS_LEVEL, Z_DEFLATED, -15, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return false;
    z.next_in = (Bytef *)(uintptr_t)(data + (len - SERVER_COMPRESS_SAMPLE) / 2);
    z.avail_in = (uInt)SERVER_COMPRESS_SAMPLE;
    do {
        z.next_out = (Bytef *)out;
        z.avail_out = sizeof out;
        zr = deflate(&z, Z_FINISH);
        zlen += sizeof out - z.avail_out;
    } while (zr == Z_OK);
    deflateEnd(&z);
    return zr == Z_STREAM_END &&
           zlen * SERVER_COMPRESS_SAMPLE_DEN <=
               SERVER_COMPRESS_SAMPLE * SERVER_COMPRESS_SAMPLE_NUM;
}

int server_inflater_init(struct server_inflater *in, size_t max)
{
    memset(in, 0, sizeof *in);
    in->max = max;
    /* 15 + 32: zlib or gzip header, detected */
    return inflateInit2(&in->z, 15 + 32) == Z_OK ? 0 : -ENOMEM;
}

int server_inflater_feed(struct server_inflater *in, const char *data, size_t n,
                         int (*sink)(void *ctx, const char *data, size_t n),
                         void *ctx)
{
    char out[16384];
    if (in->ended)
        return n > 0 ? -EPROTO : 0;
    /* uInt: bodies arrive in pieces far below 4 GiB, but say so */
    while (n > 0) {
        uInt piece = n > UINT32_MAX ? UINT32_MAX : (uInt)n;
        in->z.next_in = (Bytef *)(uintptr_t)data;
        in->z.avail_in = piece;
        data += piece;
        n -= piece;
        do {
            in->z.next_out = (Bytef *)out;
            in->z.avail_out = sizeof out;
            int zr = inflate(&in->z, Z_NO_FLUSH);
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
                return -EBADMSG;
            size_t got = sizeof out - in->z.avail_out;
            in->inflated += got;
            if (in->inflated > in->max)
                return -EMSGSIZE;
            if (got > 0) {
                int rc = sink(ctx, out, got);
                if (rc != 0)
                    return rc;
            }
            if (zr == Z_STREAM_END) {
                in->ended = true;
                return in->z.avail_in > 0 || n > 0 ? -EPROTO : 0;
            }
            if (zr == Z_BUF_ERROR && in->z.avail_in == 0)
                break;
        } while (in->z.avail_in > 0 || in->z.avail_out == 0);
    }
    return 0;
}

const char *server_inflater_reason(const struct server_inflater *in)
{
    return in->z.msg ? in->z.msg : "zlib error";
}

void server_inflater_end(struct server_inflater *in)
{
    inflateEnd(&in->z);
}

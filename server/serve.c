/*
 * serve.c - `lossd serve`: libmicrohttpd (epoll, a pool of HTTP threads,
 * suspend/resume) in front of the handlers, with a libuv worker pool for
 * expensive jobs. A thin adapter: routes, bodies, limits, headers; the
 * handlers decide everything about the request's meaning.
 *
 * The life of a POST (SERVING.md, "POST flow"):
 *   first call    headers only: route, method, media type, Content-Length.
 *                 A failure here is answered at once when the client sent
 *                 Expect: 100-continue (it never sends the body); otherwise
 *                 it is remembered and the body discarded as it arrives.
 *   upload calls  bytes inflated if gzip/deflate and fed to the streaming
 *                 decoder; limits checked on every chunk.
 *   final call    decode finish, prepare, then either run inline or reserve
 *                 a pool slot, suspend, submit. The pool resumes the
 *                 connection and MHD calls us again: we queue the response.
 */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "blas.h"
#include "config.h"
#include "document.h"
#include "handler.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"

#ifndef LOSSD_VERSION
#define LOSSD_VERSION "unknown"
#endif

/*
 * Bytes of an over-limit or failed body read and thrown away so the client
 * can read our answer; past max-body-bytes plus this, the connection is
 * closed instead.
 */
#define DISCARD_MAX    ((size_t)4 << 20)
#define REQUEST_ID_MAX 128
#define PATH_LOG_MAX   256
#define RETRY_AFTER    "1"
/*
 * Responses of at least this many bytes are compressed when the client
 * accepts gzip or deflate: below a KiB the coding's framing and a deflate
 * round cost more than the bytes they save.
 */
#define COMPRESS_MIN ((size_t)1024)
/*
 * zlib level of per-request compression: nginx's default gzip_comp_level.
 * JSON numbers shrink about 2.5x already at level 1, and higher levels cost
 * several times the CPU for a few percent more. Static documents (catalog,
 * OpenAPI) are compressed once at start, at level 9.
 */
#define COMPRESS_LEVEL 1

enum phase {
    PHASE_SERVING,  /* ready */
    PHASE_DRAINING, /* readyz 503, everything else served */
    PHASE_CLOSING,  /* new requests 503 + Connection: close */
};

/* A content coding of a response (RFC 9110 8.4.1). */
enum coding {
    CODING_IDENTITY,
    CODING_GZIP,
    CODING_DEFLATE, /* the zlib format, as HTTP's "deflate" means */
};

enum route {
    ROUTE_LOSS,
    ROUTE_BATCH,
    ROUTE_LOSSES,
    ROUTE_OPENAPI,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_NONE,
};

/* The context of the whole server: the MHD cls and the pool jobs' owner. */
struct server {
    struct server_config cfg;
    struct proto_limits dlim;
    struct MHD_Daemon *daemon;
    struct listener *listener; /* NULL once closed */
    struct pool *pool;
    struct metrics *metrics;
    struct server_log *log;
    size_t nlosses;
    const char **loss_names;            /* nlosses, static strings */
    const struct handler_loss **losses; /* nlosses */
    char *catalog, *openapi;            /* built once at start */
    size_t catalog_len, openapi_len;
    char *catalog_gz, *openapi_gz; /* gzip of each; NULL if not smaller */
    size_t catalog_gz_len, openapi_gz_len;
    _Atomic int phase;
    _Atomic size_t active;         /* requests with state, not completed */
    _Atomic size_t inflight_bytes; /* held by all requests */
    _Atomic unsigned long long next_id;
    unsigned long long id_seed;
};

/* One request. Touched by one thread at a time: the MHD thread, then (while
   suspended) the worker, then the loop thread, then the MHD thread again. */
struct req {
    struct server *srv;
    struct MHD_Connection *conn;
    enum route route;
    const struct handler_loss *loss;
    const char *allow; /* methods of the route */
    bool is_options, is_post;
    char method[16];
    char path[PATH_LOG_MAX];
    char id[REQUEST_ID_MAX + 1];
    const char *origin; /* valid while the connection lives; NULL: no CORS */
    double t0;
    /* body */
    size_t bytes_in, inflated;
    bool has_length;       /* Content-Length given (and no chunking) */
    size_t content_length; /* then: its value */
    bool failed; /* err holds the answer; the body is being discarded */
    /* Allocated by the first failure (1 KiB that most requests never
       need: without it a request's state fits glibc's per-thread cache). */
    struct loss_error *err;
    bool accept_encoding; /* 415 for Content-Encoding */
    enum coding coding;   /* the client's preferred response coding */
    bool inflating, z_end;
    z_stream z;
    struct proto_decoder *dec;
    size_t held; /* bytes counted in srv->inflight_bytes */
    /* job */
    struct handler_job *job;
    const char *job_loss;
    size_t loss_index;
    struct pool_job pj;
    bool job_done;
    bool counted;    /* in the metrics already (count_request) */
    double duration; /* seconds to the queued response */
    double queue_wait;
    struct proto_buf out; /* the job's document, before encoding */
    int out_status;
    char *body; /* the job's response, encoded; NULL when out of memory */
    size_t body_len;
    enum coding body_coding;
    bool body_varies; /* the body was large enough to be compressed */
    /* answer */
    int status;
    size_t bytes_out;
};

static double now_mono(void)
{
    return pool_now();
}

static unsigned long long splitmix64(unsigned long long x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- in-flight memory ---------------------------------------------- */

/* Sets r's held bytes to total; false (nothing changed) if that would take
   the server past max-inflight-bytes. */
static bool req_hold(struct req *r, size_t total)
{
    struct server *s = r->srv;
    if (total <= r->held) {
        atomic_fetch_sub(&s->inflight_bytes, r->held - total);
        r->held = total;
        return true;
    }
    size_t delta = total - r->held;
    size_t before = atomic_fetch_add(&s->inflight_bytes, delta);
    if (before + delta > s->cfg.max_inflight_bytes) {
        atomic_fetch_sub(&s->inflight_bytes, delta);
        return false;
    }
    r->held = total;
    return true;
}

/* ---- failures -------------------------------------------------------- */

static void req_fail(struct req *r, enum loss_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets r->failed and returns where its error goes: r->err, or when even
   that cannot be allocated a constant "out of memory" (NULL: write
   nothing). */
static const struct loss_error req_oom = {
    .status = LOSS_ENOMEM, .offset = -1, .detail = "out of memory"};

static struct loss_error *req_failing(struct req *r)
{
    r->failed = true;
    r->err = malloc(sizeof *r->err);
    if (!r->err) {
        r->err = (struct loss_error *)(uintptr_t)&req_oom; /* never written */
        return NULL;
    }
    loss_error_init(r->err);
    return r->err;
}

static void req_fail(struct req *r, enum loss_status st, const char *fmt, ...)
{
    if (r->failed)
        return; /* the first failure is the answer */
    char msg[LOSS_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    loss_fail(req_failing(r), st, NULL, "%s", msg);
}

/* Records a failure that a lower layer already described in err. */
static void req_fail_err(struct req *r, const struct loss_error *err)
{
    if (r->failed)
        return;
    struct loss_error *e = req_failing(r);
    if (e)
        *e = *err;
}

/*
 * One spare decoder per HTTP thread, reset between bodies: a new decoder
 * per request cost a dozen allocations (its state, its stacks growing from
 * empty) for a small body. proto_decoder_reset() keeps at most 64 KiB of
 * its buffers. Bodies are decoded on the connection's MHD thread only; the
 * key's destructor frees a thread's spare when libmicrohttpd's thread ends,
 * and decoder_spare_release() a spare left on the calling thread.
 */
static pthread_key_t decoder_key;
static pthread_once_t decoder_once = PTHREAD_ONCE_INIT;

static void decoder_key_free(void *d)
{
    proto_decoder_free(d);
}

static void decoder_key_init(void)
{
    if (pthread_key_create(&decoder_key, decoder_key_free) != 0)
        abort(); /* only when out of keys, at start */
}

static struct proto_decoder *decoder_get(const struct proto_limits *lim)
{
    pthread_once(&decoder_once, decoder_key_init);
    struct proto_decoder *d = pthread_getspecific(decoder_key);
    if (d) {
        pthread_setspecific(decoder_key, NULL);
        return d;
    }
    return proto_decoder_new(lim);
}

static void decoder_put(struct proto_decoder *d)
{
    if (!d)
        return;
    if (pthread_getspecific(decoder_key) ||
        pthread_setspecific(decoder_key, d) != 0) {
        proto_decoder_free(d);
        return;
    }
    proto_decoder_reset(d);
}

static void decoder_spare_release(void)
{
    pthread_once(&decoder_once, decoder_key_init);
    proto_decoder_free(pthread_getspecific(decoder_key));
    pthread_setspecific(decoder_key, NULL);
}

/* Gives back the body's decoder and frees its inflater. */
static void req_release_body(struct req *r)
{
    if (r->inflating) {
        inflateEnd(&r->z);
        r->inflating = false;
    }
    decoder_put(r->dec);
    r->dec = NULL;
}

/*
 * A failed body: frees what it holds and gives its bytes back to the
 * in-flight budget at once, not when the request completes (its client
 * may take long to send the rest, which is discarded).
 */
static void req_drop_body(struct req *r)
{
    req_release_body(r);
    req_hold(r, 0);
}

/* ---- response compression ------------------------------------------ */

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

/*
 * The response coding the client prefers from its Accept-Encoding value ae
 * (NULL: identity). gzip and deflate each get their own q, or that of "*"
 * when not listed; q=0 refuses a coding. The higher q wins, gzip on a tie
 * (every client that takes deflate takes gzip, and some read "deflate" as
 * raw deflate).
 */
static enum coding accept_coding(const char *ae)
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
        return CODING_IDENTITY;
    return qgzip >= qdeflate ? CODING_GZIP : CODING_DEFLATE;
}

static const char *coding_name(enum coding c)
{
    return c == CODING_GZIP ? "gzip" : c == CODING_DEFLATE ? "deflate" : NULL;
}

/*
 * data (len bytes) compressed with coding c at level: a new buffer (free())
 * in *ret and its length in *ret_len, only when it is no larger than data.
 * false (nothing allocated) when it would not be smaller or on failure: the
 * caller then sends data as it is. The output is bounded by len, so this
 * never holds more than twice the body.
 */
static bool compress_body(enum coding c, int level, const char *data,
                          size_t len, char **ret, size_t *ret_len)
{
    /* zlib counts in uInt: feed and drain in steps it can take */
    const size_t step = (size_t)1 << 30;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (c == CODING_IDENTITY || len == 0)
        return false;
    int wbits = c == CODING_GZIP ? 15 + 16 : 15;
    if (deflateInit2(&z, level, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return false;
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
    if (zr != Z_STREAM_END) {
        free(out);
        return false;
    }
    *ret = out;
    *ret_len = out_off;
    return true;
}

/*
 * Compresses *body (*len bytes; owned when *owned) in the client's coding
 * when it is large enough, replacing it; returns the coding of *body. Sets
 * *ret_varies when the body was large enough, so the response carries
 * Vary: Accept-Encoding whether or not this client asked. Any thread.
 */
static enum coding encode_body(const struct req *r, char **body, size_t *len,
                               bool *owned, bool *ret_varies)
{
    char *z = NULL;
    size_t zlen = 0;
    *ret_varies = *len >= COMPRESS_MIN;
    if (!*ret_varies || r->coding == CODING_IDENTITY ||
        !compress_body(r->coding, COMPRESS_LEVEL, *body, *len, &z, &zlen))
        return CODING_IDENTITY;
    if (*owned)
        free(*body);
    *body = z;
    *len = zlen;
    *owned = true;
    return r->coding;
}

/* ---- responses ------------------------------------------------------- */

/* The CORS headers, and Vary (Origin for CORS, Accept-Encoding for a body
   that could be compressed) as one field. */
static void add_cors_vary(struct req *r, struct MHD_Response *resp, bool varies)
{
    if (r->origin) {
        bool any = !strcmp(r->srv->cfg.cors_origins, "*");
        MHD_add_response_header(resp, "Access-Control-Allow-Origin",
                                any ? "*" : r->origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "X-Request-Id, Retry-After");
    }
    if (r->origin || varies)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
                                !varies     ? "Origin"
                                : r->origin ? "Origin, Accept-Encoding"
                                            : "Accept-Encoding");
}

/*
 * Counts a request in the metrics once, when its response is queued: before
 * the client can read the answer, so a scrape that follows it sees it. A
 * request that never got a response (the client left) is counted when it
 * completes. Duration is the time to the queued response.
 */
static void count_request(struct req *r)
{
    enum metrics_route mr = METRICS_ROUTE_OTHER;

    if (r->counted)
        return;
    r->counted = true;
    r->duration = now_mono() - r->t0;
    switch (r->route) {
    case ROUTE_LOSS:
        mr = METRICS_ROUTE_LOSS;
        break;
    case ROUTE_BATCH:
        mr = METRICS_ROUTE_BATCH;
        break;
    case ROUTE_LOSSES:
        mr = METRICS_ROUTE_LOSSES;
        break;
    case ROUTE_OPENAPI:
        mr = METRICS_ROUTE_OPENAPI;
        break;
    case ROUTE_HEALTHZ:
        mr = METRICS_ROUTE_HEALTHZ;
        break;
    case ROUTE_READYZ:
        mr = METRICS_ROUTE_READYZ;
        break;
    case ROUTE_METRICS:
        mr = METRICS_ROUTE_METRICS;
        break;
    case ROUTE_NONE:
        break;
    }
    metrics_request(r->srv->metrics, mr, r->status, r->duration, r->bytes_in);
}

/*
 * Queues status with body (len bytes, already in coding; freed with free()
 * when freeit, else static) and the headers every response carries. varies:
 * the body was large enough to be compressed. On the MHD thread only.
 */
static enum MHD_Result respond_coded(struct req *r, int status,
                                     const char *ctype, char *body, size_t len,
                                     bool freeit, enum coding coding,
                                     bool varies)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(
            len, body, freeit ? free : NULL);
    if (!resp) {
        if (freeit)
            free(body);
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    if (coding != CODING_IDENTITY)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING,
                                coding_name(coding));
    add_cors_vary(r, resp, varies);
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER);
    if (status == 405 || r->is_options)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (status == 415 && r->accept_encoding)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_ENCODING,
                                "gzip, deflate, identity");
    if (atomic_load(&r->srv->phase) == PHASE_CLOSING)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = status;
    r->bytes_out = len;
    count_request(r);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* respond_coded() for a body not yet encoded: compressed here if the client
   accepts it and the body is large enough. */
static enum MHD_Result respond(struct req *r, int status, const char *ctype,
                               char *body, size_t len, bool freeit)
{
    bool varies;
    enum coding c = encode_body(r, &body, &len, &freeit, &varies);
    return respond_coded(r, status, ctype, body, len, freeit, c, varies);
}

/* A document built once at start (body), with its gzip form (gz, NULL if
   none) for clients that prefer gzip. */
static enum MHD_Result respond_static(struct req *r, const char *body,
                                      size_t len, const char *gz, size_t gz_len)
{
    if (gz && r->coding == CODING_GZIP)
        return respond_coded(r, 200, "application/json", (char *)(uintptr_t)gz,
                             gz_len, false, CODING_GZIP, true);
    return respond(r, 200, "application/json", (char *)(uintptr_t)body, len,
                   false);
}

static enum MHD_Result respond_buf(struct req *r, int status, const char *ctype,
                                   struct proto_buf *b)
{
    size_t len = 0;
    char *data = proto_buf_steal(b, &len);
    if (!data) {
        static char oom[] = "{\"type\":\"/problems/internal\",\"title\":"
                            "\"Out of memory\",\"status\":500}";
        return respond(r, 500, "application/problem+json", oom, sizeof oom - 1,
                       false);
    }
    return respond(r, status, ctype, data, len, true);
}

static enum MHD_Result respond_problem(struct req *r)
{
    struct proto_buf b;
    proto_buf_init(&b);
    proto_problem_write(&b, r->err, r->id, NULL);
    return respond_buf(r, proto_status_http(r->err->status),
                       "application/problem+json", &b);
}

/* ---- routing --------------------------------------------------------- */

#define ALLOW_GET  "GET, HEAD, OPTIONS"
#define ALLOW_POST "POST, OPTIONS"

static void route(struct req *r, const char *url)
{
    static const struct {
        const char *path;
        enum route route;
    } fixed[] = {
        {"/healthz", ROUTE_HEALTHZ},      {"/readyz", ROUTE_READYZ},
        {"/metrics", ROUTE_METRICS},      {"/v1/losses", ROUTE_LOSSES},
        {"/openapi.json", ROUTE_OPENAPI}, {"/v1/batch", ROUTE_BATCH},
    };
    r->route = ROUTE_NONE;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(url, fixed[i].path)) {
            r->route = fixed[i].route;
            r->allow = r->route == ROUTE_BATCH ? ALLOW_POST : ALLOW_GET;
            return;
        }
    /* /v2/... is the Open Inference Protocol's, not a loss (later issue) */
    if (!strcmp(url, "/v2") || !strncmp(url, "/v2/", 4))
        return;
    const char *name = NULL;
    if (!strncmp(url, "/v1/", 4))
        name = url + 4;
    else if (url[0] == '/' && strncmp(url, "/v1", 4) != 0)
        name = url + 1;
    if (!name || !*name)
        return;
    const struct handler_loss *l = handler_find(name, strlen(name));
    if (!l)
        return;
    r->route = ROUTE_LOSS;
    r->loss = l;
    r->allow = ALLOW_POST;
    for (size_t i = 0; i < r->srv->nlosses; i++)
        if (r->srv->losses[i] == l)
            r->loss_index = i;
}

/* application/json (any parameters), application/ *+json, or absent. */
static bool json_media_type(const char *ct)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n == 16 && !strncasecmp(ct, "application/json", 16))
        return true;
    return n > 17 && !strncasecmp(ct, "application/", 12) &&
           !strncasecmp(ct + n - 5, "+json", 5);
}

/* The request headers begin() reads (NULL: absent; the first of repeats,
   as MHD_lookup_connection_value() would give), valid while the request
   lives. */
struct req_headers {
    const char *request_id, *origin, *accept_encoding, *content_type,
        *content_encoding, *content_length, *transfer_encoding;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind,
                                      const char *key, size_t key_size,
                                      const char *value, size_t value_size)
{
    static const struct {
        const char *name;
        size_t len, field;
    } wanted[] = {
#define WANT(n, f) {n, sizeof n - 1, offsetof(struct req_headers, f)}
        WANT("X-Request-Id", request_id),
        WANT("Origin", origin),
        WANT("Accept-Encoding", accept_encoding),
        WANT("Content-Type", content_type),
        WANT("Content-Encoding", content_encoding),
        WANT("Content-Length", content_length),
        WANT("Transfer-Encoding", transfer_encoding),
#undef WANT
    };
    (void)kind;
    (void)value_size;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        if (key_size != wanted[i].len ||
            strncasecmp(key, wanted[i].name, key_size) != 0)
            continue;
        const char **slot =
            (const char **)(void *)((char *)cls + wanted[i].field);
        if (!*slot)
            *slot = value;
        break;
    }
    return MHD_YES;
}

static void copy_request_id(struct req *r, const char *id)
{
    size_t n = id ? strlen(id) : 0;
    bool ok = n > 0 && n <= REQUEST_ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = id[i] > 0x20 && id[i] < 0x7f;
    if (ok) {
        memcpy(r->id, id, n + 1);
        return;
    }
    unsigned long long v =
        splitmix64(r->srv->id_seed + atomic_fetch_add(&r->srv->next_id, 1));
    /* 16 hex digits, by hand: snprintf was ~2% of a small request. */
    for (int i = 15; i >= 0; i--, v >>= 4)
        r->id[i] = "0123456789abcdef"[v & 15];
    r->id[16] = '\0';
}

/* The first call: headers only. Leaves r->failed set if the answer is
   already known. */
static void begin(struct req *r, const char *url, const char *method)
{
    struct server *s = r->srv;
    struct MHD_Connection *c = r->conn;
    loss_str_copy(r->method, sizeof r->method, method);
    loss_str_copy(r->path, sizeof r->path, url);
    /* One pass over the headers: six lookups were ~1% of a small request. */
    struct req_headers h = {0};
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, collect_header, &h);
    copy_request_id(r, h.request_id);
    if (h.content_length && !h.transfer_encoding) {
        unsigned long long n = strtoull(h.content_length, NULL, 10);
        r->has_length = true;
        r->content_length = n < SIZE_MAX ? (size_t)n : SIZE_MAX;
    }
    const char *origin = h.origin;
    if (origin && s->cfg.cors_origins[0] &&
        server_config_origin_allowed(&s->cfg, origin, strlen(origin)))
        r->origin = origin;
    r->coding = accept_coding(h.accept_encoding);
    r->is_post = !strcmp(method, "POST");
    r->is_options = false;

    if (atomic_load(&s->phase) == PHASE_CLOSING) {
        req_fail(r, LOSS_EUNAVAIL, "the server is shutting down");
        return;
    }
    route(r, url);
    if (r->route == ROUTE_NONE) {
        req_fail(r, LOSS_ENOTFOUND, "no route or loss at %s", r->path);
        return;
    }
    if (!strcmp(method, "OPTIONS")) {
        r->is_options = true;
        return;
    }
    bool want_post = r->route == ROUTE_LOSS || r->route == ROUTE_BATCH;
    bool ok = want_post ? r->is_post
                        : (!strcmp(method, "GET") || !strcmp(method, "HEAD"));
    if (!ok) {
        req_fail(r, LOSS_EMETHOD, "%s is not allowed on %s (allowed: %s)",
                 r->method, r->path, r->allow);
        return;
    }
    if (!want_post)
        return;

    const char *ct = h.content_type;
    if (ct && !json_media_type(ct)) {
        req_fail(r, LOSS_EMEDIA,
                 "Content-Type '%.100s' is not JSON: send Content-Type: "
                 "application/json",
                 ct);
        return;
    }
    const char *ce = h.content_encoding;
    if (ce && (!strcasecmp(ce, "gzip") || !strcasecmp(ce, "x-gzip") ||
               !strcasecmp(ce, "deflate"))) {
        memset(&r->z, 0, sizeof r->z);
        /* 15 + 32: zlib or gzip header, detected */
        if (inflateInit2(&r->z, 15 + 32) != Z_OK) {
            req_fail(r, LOSS_ENOMEM, "out of memory");
            return;
        }
        r->inflating = true;
    } else if (ce && strcasecmp(ce, "identity") != 0) {
        r->accept_encoding = true;
        req_fail(r, LOSS_EMEDIA,
                 "Content-Encoding '%.100s' is not supported: send gzip, "
                 "deflate or identity",
                 ce);
        return;
    }
    if (r->has_length && r->content_length > s->cfg.limits.max_body_bytes) {
        req_fail(r, LOSS_ETOOLARGE,
                 "the body of %zu bytes exceeds max-body-bytes (%zu)",
                 r->content_length, s->cfg.limits.max_body_bytes);
        return;
    }
    r->dec = decoder_get(&s->dlim);
    if (!r->dec)
        req_fail(r, LOSS_ENOMEM, "out of memory");
}

/* ---- body -------------------------------------------------------------- */

static void feed(struct req *r, const char *data, size_t n)
{
    struct server *s = r->srv;
    struct loss_error err;
    loss_error_init(&err);
    if (proto_decoder_feed(r->dec, data, n, &err) != LOSS_OK) {
        req_fail_err(r, &err);
        req_drop_body(r);
        return;
    }
    if (!req_hold(r, proto_decoder_bytes(r->dec))) {
        req_fail(r, LOSS_EUNAVAIL,
                 "the server holds max-inflight-bytes (%zu) of requests; "
                 "retry later",
                 s->cfg.max_inflight_bytes);
        req_drop_body(r);
    }
}

static void inflate_feed(struct req *r, const char *data, size_t n)
{
    size_t max = r->srv->cfg.limits.max_body_bytes;
    char out[16384];
    if (r->z_end) {
        req_fail(r, LOSS_EJSON, "data after the end of the compressed body");
        req_drop_body(r);
        return;
    }
    r->z.next_in = (Bytef *)(uintptr_t)data;
    r->z.avail_in = (uInt)n;
    while (!r->failed && (r->z.avail_in > 0 || r->z.avail_out == 0)) {
        r->z.next_out = (Bytef *)out;
        r->z.avail_out = sizeof out;
        int zr = inflate(&r->z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            req_fail(r, LOSS_EJSON, "the compressed body is corrupt (%s)",
                     r->z.msg ? r->z.msg : "zlib error");
            break;
        }
        size_t got = sizeof out - r->z.avail_out;
        r->inflated += got;
        if (r->inflated > max) {
            req_fail(r, LOSS_ETOOLARGE,
                     "the decompressed body exceeds max-body-bytes (%zu)", max);
            break;
        }
        if (got > 0)
            feed(r, out, got);
        if (zr == Z_STREAM_END) {
            r->z_end = true;
            if (r->z.avail_in > 0 && !r->failed)
                req_fail(r, LOSS_EJSON,
                         "data after the end of the compressed body");
            break;
        }
        if (zr == Z_BUF_ERROR && r->z.avail_in == 0)
            break;
    }
    if (r->failed)
        req_drop_body(r);
}

/*
 * Whether the client of a body still short of its Content-Length has gone.
 * libmicrohttpd 0.9.75 in epoll mode stops reading a socket after a short
 * read, so a FIN that came with the last bytes never wakes it: without this
 * the connection (and its request, counted in flight, which a drain waits
 * for) stayed until --connection-timeout. Every byte libmicrohttpd read is
 * in this call, so an end of stream pending on the socket means the client
 * closed before sending the whole body. Not for chunked bodies, whose end
 * may sit unprocessed in libmicrohttpd's buffer.
 */
static bool client_gone(const struct req *r)
{
    if (!r->has_length || r->bytes_in >= r->content_length)
        return false;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    char c;
    ssize_t k = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 ||
           (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* An upload call: MHD_NO closes the connection (discarded too much, or the
   client is gone). */
static enum MHD_Result on_body(struct req *r, const char *data, size_t n)
{
    size_t max = r->srv->cfg.limits.max_body_bytes;
    r->bytes_in += n;
    if (!r->failed && r->bytes_in > max) {
        req_fail(r, LOSS_ETOOLARGE, "the body exceeds max-body-bytes (%zu)",
                 max);
        req_drop_body(r);
    }
    if (r->failed || !r->dec) {
        if (r->bytes_in > max + DISCARD_MAX)
            return MHD_NO;
    } else if (r->inflating) {
        inflate_feed(r, data, n);
    } else {
        feed(r, data, n);
    }
    return client_gone(r) ? MHD_NO : MHD_YES;
}

/* ---- jobs ------------------------------------------------------------- */

/* Moves r->out into r->body, encoded as the client asked (any thread). */
static void job_encode(struct req *r)
{
    bool owned = true;
    r->body = proto_buf_steal(&r->out, &r->body_len);
    r->body_coding = CODING_IDENTITY;
    if (r->body)
        r->body_coding =
            encode_body(r, &r->body, &r->body_len, &owned, &r->body_varies);
}

/*
 * Runs r's job and leaves the encoded (and, if the client asked, compressed)
 * answer in r->body: on a worker for pooled jobs, so the HTTP thread only
 * queues bytes; on the HTTP thread for inline ones.
 */
static void job_run(struct req *r)
{
    struct loss_error err;
    loss_error_init(&err);
    double t = now_mono();
    proto_buf_init(&r->out);
    enum loss_status st = handler_job_run(r->job, NULL, &r->out, &err);
    if (st == LOSS_OK && !proto_buf_ok(&r->out))
        st = loss_fail(&err, LOSS_ENOMEM, NULL, "out of memory");
    if (st != LOSS_OK) {
        proto_buf_reset(&r->out);
        proto_problem_write(&r->out, &err, r->id, NULL);
        r->out_status = proto_status_http(st);
    } else {
        r->out_status = 200;
    }
    metrics_compute(r->srv->metrics,
                    r->route == ROUTE_BATCH ? r->srv->nlosses : r->loss_index,
                    now_mono() - t);
    handler_job_free(r->job);
    r->job = NULL;
    req_hold(r, 0);
    job_encode(r);
}

/* Queues the job's answer (the MHD thread). */
static enum MHD_Result respond_job(struct req *r)
{
    char *body = r->body;
    r->body = NULL; /* respond_coded() owns it now */
    if (!body) {
        static char oom[] = "{\"type\":\"/problems/internal\",\"title\":"
                            "\"Out of memory\",\"status\":500}";
        return respond_coded(r, 500, "application/problem+json", oom,
                             sizeof oom - 1, false, CODING_IDENTITY, false);
    }
    return respond_coded(
        r, r->out_status,
        r->out_status == 200 ? "application/json" : "application/problem+json",
        body, r->body_len, true, r->body_coding, r->body_varies);
}

static void pool_work(struct pool_job *pj)
{
    struct req *r = (struct req *)((char *)pj - offsetof(struct req, pj));
    job_run(r);
}

/* On the loop thread: the job ran, or was cancelled before it started. */
static void pool_done(struct pool_job *pj, bool cancelled)
{
    struct req *r = (struct req *)((char *)pj - offsetof(struct req, pj));
    if (cancelled) {
        struct loss_error err;
        loss_fail(&err, LOSS_EUNAVAIL, NULL,
                  "the server stopped before the job could run; retry");
        proto_buf_init(&r->out);
        proto_problem_write(&r->out, &err, r->id, NULL);
        r->out_status = 503;
        handler_job_free(r->job);
        r->job = NULL;
        req_hold(r, 0);
        job_encode(r);
    } else {
        r->queue_wait = pj->started - pj->submitted;
        metrics_queue_wait(r->srv->metrics, r->queue_wait);
    }
    r->job_done = true;
    MHD_resume_connection(r->conn); /* last act: MHD owns r again */
}

/* The final call of a POST to a loss or the batch. */
static enum MHD_Result finish_post(struct req *r)
{
    struct server *s = r->srv;
    struct loss_error err;
    loss_error_init(&err);
    if (r->inflating && !r->z_end) {
        req_fail(r, LOSS_EJSON, "the compressed body is truncated");
        req_drop_body(r);
        return respond_problem(r);
    }
    struct proto_doc *doc = NULL;
    size_t doc_bytes = proto_decoder_bytes(r->dec);
    if (proto_decoder_finish(r->dec, &doc, &err) != LOSS_OK) {
        req_fail_err(r, &err);
        req_drop_body(r);
        return respond_problem(r);
    }
    req_release_body(r);
    if (handler_prepare(r->route == ROUTE_LOSS ? r->loss : NULL, doc,
                        &s->cfg.limits, &r->job, &err) != LOSS_OK) {
        req_fail_err(r, &err);
        req_hold(r, 0);
        return respond_problem(r);
    }
    if (!req_hold(r, doc_bytes + handler_job_bytes(r->job))) {
        req_fail(r, LOSS_EUNAVAIL,
                 "the server holds max-inflight-bytes (%zu) of requests; "
                 "retry later",
                 s->cfg.max_inflight_bytes);
        handler_job_free(r->job);
        r->job = NULL;
        req_hold(r, 0);
        return respond_problem(r);
    }
    r->job_loss = handler_job_loss(r->job);
    if (handler_job_cost(r->job) <= s->cfg.inline_max_cost) {
        job_run(r);
        return respond_job(r);
    }
    int rc = pool_reserve(s->pool);
    if (rc < 0) {
        req_fail(r, LOSS_EUNAVAIL,
                 rc == -EBUSY ? "the work queue is full (queue-limit %zu); "
                                "retry later"
                              : "the server is shutting down (queue-limit "
                                "%zu)",
                 s->cfg.queue_limit);
        return respond_problem(r);
    }
    r->pj.work = pool_work;
    r->pj.done = pool_done;
    MHD_suspend_connection(r->conn);
    pool_submit(s->pool, &r->pj);
    return MHD_YES; /* never MHD_NO after suspending */
}

/* ---- the final call ------------------------------------------------------ */

static enum MHD_Result respond_text(struct req *r, int status,
                                    const char *ctype, const char *text)
{
    return respond(r, status, ctype, (char *)(uintptr_t)text, strlen(text),
                   false);
}

static enum MHD_Result finish(struct req *r)
{
    struct server *s = r->srv;
    if (r->job_done)
        return respond_job(r);
    if (r->failed)
        return respond_problem(r);
    if (r->route == ROUTE_NONE) {
        req_fail(r, LOSS_ENOTFOUND, "no route or loss at %s", r->path);
        return respond_problem(r);
    }
    if (r->is_options) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer_with_free_callback(0, NULL, NULL);
        if (!resp)
            return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
        MHD_add_response_header(resp, "X-Request-Id", r->id);
        if (r->origin &&
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                        "Access-Control-Request-Method")) {
            add_cors_vary(r, resp, false);
            MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                                    r->allow);
            MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                    "Content-Type, Content-Encoding, "
                                    "X-Request-Id");
            MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        } else {
            add_cors_vary(r, resp, false);
        }
        r->status = 204;
        count_request(r);
        enum MHD_Result ret = MHD_queue_response(r->conn, 204, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    struct proto_buf b;
    switch (r->route) {
    case ROUTE_HEALTHZ:
        return respond_text(r, 200, "application/json", "{\"live\":true}");
    case ROUTE_READYZ:
        if (atomic_load(&s->phase) == PHASE_SERVING)
            return respond_text(r, 200, "application/json", "{\"ready\":true}");
        return respond_text(r, 503, "application/json", "{\"ready\":false}");
    case ROUTE_METRICS:
        proto_buf_init(&b);
        metrics_write(s->metrics, &b,
                      &(struct metrics_state){
                          .pool_jobs = pool_pending(s->pool),
                          .queue_limit = s->cfg.queue_limit,
                          .inflight_bytes = atomic_load(&s->inflight_bytes),
                          .max_inflight_bytes = s->cfg.max_inflight_bytes,
                      },
                      LOSSD_VERSION, loss_blas_core());
        return respond_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8",
                           &b);
    case ROUTE_LOSSES:
        return respond_static(r, s->catalog, s->catalog_len, s->catalog_gz,
                              s->catalog_gz_len);
    case ROUTE_OPENAPI:
        return respond_static(r, s->openapi, s->openapi_len, s->openapi_gz,
                              s->openapi_gz_len);
    case ROUTE_LOSS:
    case ROUTE_BATCH:
        return finish_post(r);
    case ROUTE_NONE:
        break;
    }
    return MHD_NO;
}

static bool expects_continue(struct MHD_Connection *c)
{
    const char *e = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
    return e && !strcasecmp(e, "100-continue");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    (void)version;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = c;
        r->t0 = now_mono();
        r->queue_wait = -1;
        *con_cls = r;
        atomic_fetch_add(&s->active, 1);
        metrics_inflight_add(s->metrics, 1);
        begin(r, url, method);
        /* Expect: 100-continue and the answer is known: the client waits
           for us and never sends the body. */
        if (r->failed && expects_continue(c))
            return respond_problem(r);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return on_body(r, upload_data, n);
    }
    return finish(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    (void)c;
    (void)toe;
    if (!r)
        return;
    *con_cls = NULL;
    count_request(r);
    double dur = r->duration;
    struct server_access a = {
        .request_id = r->id,
        .method = r->method,
        .path = r->path,
        .status = r->status,
        .bytes_in = r->bytes_in,
        .bytes_out = r->bytes_out,
        .duration = dur,
        .queue_wait = r->queue_wait,
        .loss = r->job_loss,
    };
    server_log_access(s->log, &a);
    req_release_body(r);
    handler_job_free(r->job);
    proto_buf_release(&r->out);
    free(r->body);
    req_hold(r, 0);
    if (r->err != &req_oom)
        free(r->err);
    free(r);
    metrics_inflight_add(s->metrics, -1);
    atomic_fetch_sub(&s->active, 1);
}

/* ---- start and stop ------------------------------------------------------ */

/*
 * libmicrohttpd's own messages (a client's header block over the connection
 * memory, a failed bind, ...) as warn lines of our log, not raw text in the
 * middle of the JSON lines on stderr.
 */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    struct server *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    server_log_event(s->log, SERVER_LOG_WARN, "http", "%s", msg);
}

static int server_init(struct server *s)
{
    s->nlosses = handler_count();
    s->losses = calloc(s->nlosses + 1, sizeof *s->losses);
    s->loss_names = calloc(s->nlosses + 1, sizeof *s->loss_names);
    const struct proto_loss_desc **descs =
        calloc(s->nlosses + 1, sizeof *descs);
    if (!s->losses || !s->loss_names || !descs) {
        free(descs);
        return -1;
    }
    for (size_t i = 0; i < s->nlosses; i++) {
        s->losses[i] = handler_at(i);
        descs[i] = handler_describe(s->losses[i]);
        s->loss_names[i] = descs[i]->name;
    }
    struct proto_limits_desc ld;
    handler_limits_describe(&s->cfg.limits, &ld);
    struct proto_buf b;
    proto_buf_init(&b);
    proto_catalog_write(&b, descs, s->nlosses, &ld);
    s->catalog = proto_buf_steal(&b, &s->catalog_len);
    proto_buf_init(&b);
    proto_openapi_write(&b, descs, s->nlosses, &ld, LOSSD_VERSION);
    s->openapi = proto_buf_steal(&b, &s->openapi_len);
    free(descs);
    handler_decoder_limits(&s->cfg.limits, &s->dlim);
    s->metrics = metrics_new(s->nlosses, s->loss_names);
    if (!s->catalog || !s->openapi || !s->metrics)
        return -1;
    /* failure leaves NULL: those clients get the identity form */
    compress_body(CODING_GZIP, 9, s->catalog, s->catalog_len, &s->catalog_gz,
                  &s->catalog_gz_len);
    compress_body(CODING_GZIP, 9, s->openapi, s->openapi_len, &s->openapi_gz,
                  &s->openapi_gz_len);
    unsigned long long seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
        seed = (unsigned long long)time(NULL) ^
               ((unsigned long long)getpid() << 32);
    s->id_seed = seed;
    return 0;
}

static void server_release(struct server *s)
{
    metrics_free(s->metrics);
    free(s->catalog);
    free(s->openapi);
    free(s->catalog_gz);
    free(s->openapi_gz);
    free(s->losses);
    free(s->loss_names);
    server_log_free(s->log);
}

/*
 * The thread that waits for SIGTERM and SIGINT with sigtimedwait(). A
 * signal handler can reach nothing else, hence a global, written once
 * before the handler is installed.
 */
static pthread_t signal_thread;

/*
 * Threads started before main() do not block SIGTERM and SIGINT (OpenBLAS
 * starts its pool in a library constructor). The kernel gives a
 * process-directed signal to any thread that does not block it whenever
 * the main thread is not inside sigtimedwait(): with the default action
 * that killed the process in the middle of requests instead of draining.
 * This handler runs only in such threads and hands the signal to the main
 * thread, where it stays pending until sigtimedwait() takes it.
 */
static void forward_signal(int sig)
{
    int saved = errno;
    pthread_kill(signal_thread, sig);
    errno = saved;
}

/* Waits up to seconds for a signal in set; true if one came. */
static bool wait_signal(const sigset_t *set, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    struct timespec ts = {
        .tv_sec = (time_t)seconds,
        .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return true;
        if (errno != EINTR)
            return false;
    }
}

/* Sleeps up to seconds, flushing the log every 100 ms; a second signal
   ends the process at once. */
static void wait_tick(struct server *s, const sigset_t *set, double seconds)
{
    double step = seconds < 0.1 ? seconds : 0.1;
    if (wait_signal(set, step)) {
        server_log_event(s->log, SERVER_LOG_WARN, "exit",
                         "second signal: exiting at once");
        server_log_flush(s->log);
        _exit(1);
    }
    server_log_flush(s->log);
}

static int resolve(const char *host, unsigned port,
                   struct sockaddr_storage *ret, socklen_t *ret_len,
                   char *numeric, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ret, res->ai_addr, res->ai_addrlen);
    *ret_len = res->ai_addrlen;
    getnameinfo(res->ai_addr, res->ai_addrlen, numeric, (socklen_t)cap, NULL, 0,
                NI_NUMERICHOST);
    freeaddrinfo(res);
    return 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* After the first signal: API.md "Draining". Returns the exit code. */
static int drain(struct server *s, const sigset_t *set)
{
    atomic_store(&s->phase, PHASE_DRAINING);
    server_log_event(s->log, SERVER_LOG_INFO, "draining",
                     "readiness 503; serving for %g s", s->cfg.drain_seconds);
    double end = now_mono() + s->cfg.drain_seconds;
    while (now_mono() < end)
        wait_tick(s, set, end - now_mono());

    atomic_store(&s->phase, PHASE_CLOSING);
    /* not MHD_quiesce_daemon(): listen.h says why */
    listener_close(s->listener);
    s->listener = NULL;
    server_log_event(s->log, SERVER_LOG_INFO, "closing",
                     "not accepting; %zu requests in flight",
                     atomic_load(&s->active));
    end = now_mono() + s->cfg.exit_timeout;
    while (atomic_load(&s->active) > 0 && now_mono() < end)
        wait_tick(s, set, end - now_mono());
    if (atomic_load(&s->active) == 0)
        return 0;
    /* Exit timeout: queued jobs resume with 503; running ones get 1 s. */
    pool_close_submissions(s->pool);
    pool_cancel_queued(s->pool);
    end = now_mono() + 1.0;
    while (pool_pending(s->pool) > 0 && now_mono() < end)
        wait_tick(s, set, end - now_mono());
    if (pool_pending(s->pool) > 0) {
        server_log_event(s->log, SERVER_LOG_WARN, "exit",
                         "exit timeout: %zu jobs still running; leaving",
                         pool_pending(s->pool));
        server_log_flush(s->log);
        _exit(0);
    }
    /* resumed connections answer; give them a moment to write */
    end = now_mono() + 1.0;
    while (atomic_load(&s->active) > 0 && now_mono() < end)
        wait_tick(s, set, end - now_mono());
    return 0;
}

int server_serve_main(int argc, char **argv)
{
    struct server *s = calloc(1, sizeof *s);
    char reason[512];
    int code = 1;
    if (!s) {
        fprintf(stderr, "lossd serve: out of memory\n");
        return 1;
    }
    int rc =
        server_config_load(&s->cfg, argc, argv, stdout, reason, sizeof reason);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "lossd serve: %s\n", reason);
        free(s);
        return rc > 0 ? 0 : 2;
    }
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    char numeric[NI_MAXHOST] = "";
    if (resolve(s->cfg.host, s->cfg.port, &addr, &addr_len, numeric,
                sizeof numeric) < 0) {
        fprintf(stderr, "lossd serve: --host: cannot resolve '%s'\n",
                s->cfg.host);
        free(s);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    /* Every thread started from here inherits this mask: only
       sigtimedwait() below sees the signals (older threads forward them). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    signal_thread = pthread_self();
    struct sigaction sa = {.sa_handler = forward_signal,
                           .sa_flags = SA_RESTART};
    sigfillset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    raise_fd_limit();

    s->log = server_log_new(STDERR_FILENO, s->cfg.log_format, s->cfg.log_level);
    if (!s->log || server_init(s) < 0) {
        fprintf(stderr, "lossd serve: out of memory\n");
        goto out;
    }
    int prc = pool_start(s->cfg.workers, s->cfg.queue_limit, &s->pool);
    if (prc < 0) {
        server_log_event(s->log, SERVER_LOG_ERROR, "start", "worker pool: %s",
                         uv_strerror(prc));
        goto out;
    }
    s->listener = listener_open((struct sockaddr *)&addr, addr_len, 1024,
                                reason, sizeof reason);
    if (!s->listener) {
        server_log_event(s->log, SERVER_LOG_ERROR, "start",
                         "cannot listen on %s port %u: %s", s->cfg.host,
                         s->cfg.port, reason);
        pool_stop(s->pool);
        s->pool = NULL;
        goto out;
    }
    /* lossd listens itself and adds the connections (listen.h) */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    /*
     * Connection memory (--connection-memory, 8 KiB): libmicrohttpd 0.9.75
     * clears the whole pool (twice) for every request on a keep-alive
     * connection: at 128 KiB that was ~23% of the CPU of a small request,
     * at 32 KiB ~8% (perf, bench/http_bench.sh). Bodies stream to the
     * decoder in whatever chunks arrive, so uploads hardly notice
     * (docs/operations.md); the pool bounds the request line and headers
     * (431 beyond).
     */
    struct rlimit rl;
    unsigned conn_limit = 10000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 10100)
        conn_limit = rl.rlim_cur > 164 ? (unsigned)rl.rlim_cur - 100 : 64;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_logger, s, /* first, as it asks */
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.threads,
        MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.connection_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->cfg.connection_memory,
        MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_END);
    int lrc = s->daemon ? listener_start(s->listener, s->daemon, s->log) : 0;
    if (!s->daemon || lrc != 0) {
        server_log_event(s->log, SERVER_LOG_ERROR, "start",
                         "cannot start the HTTP daemon on %s port %u%s%s",
                         s->cfg.host, s->cfg.port, lrc ? ": " : "",
                         lrc ? strerror(lrc) : "");
        listener_close(s->listener);
        s->listener = NULL;
        if (s->daemon)
            MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
        pool_stop(s->pool);
        s->pool = NULL;
        goto out;
    }
    unsigned port = listener_port(s->listener);
    printf("{\"event\":\"listening\",\"host\":\"%s\",\"port\":%u}\n", numeric,
           port);
    fflush(stdout);
    server_log_event(s->log, SERVER_LOG_INFO, "listening",
                     "%s port %u, %zu HTTP threads, %zu workers, lossd %s, "
                     "OpenBLAS %s",
                     numeric, port, s->cfg.threads, s->cfg.workers,
                     LOSSD_VERSION, loss_blas_core());

    while (!wait_signal(&set, 0.1))
        server_log_flush(s->log);
    code = drain(s, &set);
    MHD_stop_daemon(s->daemon);
    decoder_spare_release();
    pool_stop(s->pool);
    server_log_event(s->log, SERVER_LOG_INFO, "stopped", "exit %d", code);
out:
    server_release(s);
    free(s);
    return code;
}

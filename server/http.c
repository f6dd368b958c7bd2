/*
 * http.c - libmicrohttpd's callbacks and the state of one request (http.h).
 * A thin adapter: routes, headers, content codings and limits on the wire;
 * the handlers' pipeline decides everything about a body's meaning.
 */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "auth.h"
#include "blas.h"
#include "coding.h"
#include "conns.h"
#include "document.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "route.h"
#include "server.h"

#ifndef LOSSD_VERSION
#define LOSSD_VERSION "unknown"
#endif

#define REQUEST_ID_MAX 128
#define PATH_LOG_MAX   256

/* One request. Touched by one thread at a time: the MHD thread, then (while
   suspended) the worker, then the loop thread, then the MHD thread again. */
struct req {
    struct server *srv;
    struct MHD_Connection *conn;
    struct conn *cn;                  /* its deadlines (conns.h); NULL: none */
    const struct server_route *route; /* NULL: none */
    const struct handler_loss *loss;  /* the loss route's */
    bool is_options;
    char method[16];
    char path[PATH_LOG_MAX];
    char id[REQUEST_ID_MAX + 1];
    const char *origin; /* valid while the connection lives; NULL: no CORS */
    double t0;
    /* body */
    size_t bytes_in;
    bool has_length;       /* Content-Length given (and no chunking) */
    size_t content_length; /* then: its value */
    bool inflating;
    struct server_inflater inflater;
    struct handler_request *hr; /* the pipeline's request, while it lives */
    /* a failure: its problem document, answered in the final call while
       the rest of the body is discarded (for as long as conns.h allows) */
    bool failed;
    bool want_accept_encoding; /* the failure is a 415 for the coding */
    bool bad_token;            /* the failure is a 401 for a wrong token */
    bool framing;              /* the failure is the framing's: answered in
                                  the first call, connection closed */
    /* job */
    const char *job_loss;
    struct pool_job pj;
    bool job_done;
    double queue_wait;
    /* the answer, before it is queued: a job's or a failure's document */
    int out_status;
    char *body; /* encoded; NULL with body_len 0: out of memory */
    size_t body_len;
    enum server_coding body_coding;
    bool body_varies;          /* large enough to be compressed */
    enum server_coding coding; /* the client's preferred response coding */
    /* an infer response with binary outputs: its JSON header's length */
    size_t infer_header_len;
    /* the request whose binary outputs follow body (streamed from its
       buffers by stream_read()), or NULL */
    struct handler_request *tail;
    /* what was answered */
    bool counted; /* in the metrics already (count_request) */
    double duration;
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

/* ---- documents ---------------------------------------------------------- */

/*
 * Compresses *body (*len bytes; owned when *owned) in the client's coding
 * when it is large enough and worth it (server_coding_worth(): a large body
 * that shrinks little, such as base64 of floats, costs more time to
 * compress than it saves), replacing it; returns the coding of *body. Sets
 * *ret_varies when the body was large enough, so the response carries
 * Vary: Accept-Encoding whether or not this client asked. Any thread.
 */
static enum server_coding encode(const struct req *r, char **body, size_t *len,
                                 bool *owned, bool *ret_varies)
{
    char *z = NULL;
    size_t zlen = 0;
    *ret_varies = *len >= SERVER_COMPRESS_MIN;
    if (!*ret_varies || r->coding == SERVER_CODING_IDENTITY ||
        !server_coding_worth(*body, *len) ||
        server_coding_compress(r->coding, SERVER_COMPRESS_LEVEL, *body, *len,
                               &z, &zlen) < 0)
        return SERVER_CODING_IDENTITY;
    if (*owned)
        free(*body);
    *body = z;
    *len = zlen;
    *owned = true;
    return r->coding;
}

/*
 * Moves a written document into r's answer (status), encoded for the
 * client: on a worker for pooled jobs, so the HTTP thread only queues
 * bytes. A failed buffer (out of memory) leaves no body: respond_answer()
 * then sends the out-of-memory problem.
 */
static void set_answer(struct req *r, int status, struct proto_buf *b)
{
    bool owned = true;
    free(r->body);
    r->out_status = status;
    r->body = proto_buf_steal(b, &r->body_len);
    r->body_coding = SERVER_CODING_IDENTITY;
    r->body_varies = false;
    if (r->body && !r->tail) /* binary outputs are sent as they are */
        r->body_coding =
            encode(r, &r->body, &r->body_len, &owned, &r->body_varies);
}

/* ---- failures ----------------------------------------------------------- */

/*
 * The request's answer is the problem document of err: written now, so the
 * request keeps no error while the rest of its body is discarded. Drops the
 * pipeline's request and everything it held. The first failure wins.
 */
static void fail_with(struct req *r, const struct loss_error *err)
{
    struct proto_buf b;

    if (r->failed)
        return;
    r->failed = true;
    proto_buf_init(&b);
    proto_problem_write(&b, err, r->id, NULL);
    set_answer(r, proto_status_http(err->status), &b);
    handler_request_free(r->hr);
    r->hr = NULL;
}

static void req_fail(struct req *r, enum loss_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void req_fail(struct req *r, enum loss_status st, const char *fmt, ...)
{
    struct loss_error err;
    char msg[LOSS_DETAIL_MAX];
    va_list ap;

    if (r->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    loss_fail(&err, st, NULL, "%s", msg);
    fail_with(r, &err);
}

/* The pipeline's request failed: its problem is the answer. */
static void req_fail_pipeline(struct req *r)
{
    struct proto_buf b;
    int status;

    if (r->failed)
        return;
    r->failed = true;
    proto_buf_init(&b);
    status = handler_request_problem(r->hr, r->id, &b);
    set_answer(r, status, &b);
    handler_request_free(r->hr);
    r->hr = NULL;
}

/* ---- responses ---------------------------------------------------------- */

/* The CORS headers, and Vary (Origin for CORS, Accept-Encoding for a body
   that could be compressed) as one field. */
static void add_cors_vary(struct req *r, struct MHD_Response *resp, bool varies)
{
    if (r->origin) {
        bool any = !strcmp(r->srv->cfg.cors_origins, "*");
        MHD_add_response_header(resp, "Access-Control-Allow-Origin",
                                any ? "*" : r->origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "X-Request-Id, Retry-After, "
                                "WWW-Authenticate, "
                                "Inference-Header-Content-Length");
    }
    if (r->origin || varies)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
                                !varies     ? "Origin"
                                : r->origin ? "Origin, Accept-Encoding"
                                            : "Accept-Encoding");
}

/*
 * Connection: close when the connection must not carry another request:
 * its framing was refused (whatever followed the headers is unread and
 * cannot be trusted to be a request), or the server is closing.
 * libmicrohttpd closes the connection after a response with this header.
 */
static void add_close(const struct req *r, struct MHD_Response *resp)
{
    if (r->framing || atomic_load(&r->srv->phase) == SERVER_CLOSING)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

/*
 * Counts a request in the metrics once, when its response is queued: before
 * the client can read the answer, so a scrape that follows it sees it. A
 * request that never got a response (the client left) is counted when it
 * completes. Duration is the time to the queued response.
 */
static void count_request(struct req *r)
{
    if (r->counted)
        return;
    r->counted = true;
    r->duration = now_mono() - r->t0;
    metrics_request(r->srv->metrics,
                    r->route ? server_route_index(r->route)
                             : server_route_count(),
                    r->status, r->duration, r->bytes_in);
}

/*
 * Queues status with body (len bytes, already in coding; freed with free()
 * when freeit, else static) and the headers every response carries. varies:
 * the body was large enough to be compressed. On the MHD thread only.
 */
static enum MHD_Result queue_response(struct req *r, int status,
                                      const char *ctype,
                                      struct MHD_Response *resp, size_t len,
                                      enum server_coding coding, bool varies);
static enum MHD_Result respond_answer(struct req *r);

static enum MHD_Result respond_coded(struct req *r, int status,
                                     const char *ctype, char *body, size_t len,
                                     bool freeit, enum server_coding coding,
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
    return queue_response(r, status, ctype, resp, len, coding, varies);
}

/*
 * An infer answer whose binary outputs are read from the request's own
 * buffers as libmicrohttpd sends them (handler_request_tail_read()): the
 * JSON header first, then the tail. The response owns both.
 */
struct stream {
    char *head;
    size_t head_len;
    struct handler_request *tail;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    size_t n = 0;

    if (pos < st->head_len) {
        n = st->head_len - (size_t)pos;
        if (n > max)
            n = max;
        memcpy(buf, st->head + pos, n);
        return (ssize_t)n;
    }
    n = handler_request_tail_read(st->tail, (size_t)pos - st->head_len, buf,
                                  max);
    return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct stream *st = cls;

    free(st->head);
    handler_request_free(st->tail);
    free(st);
}

/* Block size of a streamed answer's reads: large copies, few calls. */
#define STREAM_BLOCK ((size_t)256 * 1024)

static enum MHD_Result respond_stream(struct req *r, const char *ctype)
{
    struct stream *st = malloc(sizeof(*st));
    struct MHD_Response *resp = NULL;
    size_t total;

    if (st == NULL) {
        free(r->body);
        r->body = NULL;
        handler_request_free(r->tail);
        r->tail = NULL;
        return respond_answer(r); /* the out-of-memory problem */
    }
    st->head = r->body;
    st->head_len = r->body_len;
    st->tail = r->tail;
    r->body = NULL;
    r->tail = NULL;
    total = st->head_len + handler_request_tail_bytes(st->tail);
    resp = MHD_create_response_from_callback(total, STREAM_BLOCK, stream_read,
                                             st, stream_free);
    if (resp == NULL) {
        stream_free(st);
        return MHD_NO;
    }
    return queue_response(r, r->out_status, ctype, resp, total,
                          SERVER_CODING_IDENTITY, false);
}

/* Adds the headers every response carries to resp (len bytes) and queues
   it with status. */
static enum MHD_Result queue_response(struct req *r, int status,
                                      const char *ctype,
                                      struct MHD_Response *resp, size_t len,
                                      enum server_coding coding, bool varies)
{
    /* KServe's clients show an error's message only from application/json:
       the protocol's routes send their problem documents as that */
    if (ctype && r->route && r->route->kind >= SERVER_KIND_OIP_SERVER &&
        strcmp(ctype, "application/problem+json") == 0)
        ctype = "application/json";
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    if (coding != SERVER_CODING_IDENTITY)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING,
                                server_coding_name(coding));
    add_cors_vary(r, resp, varies);
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
                                SERVER_RETRY_AFTER);
    if (r->route && (status == 405 || r->is_options))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->route->allow);
    if (status == 415 && r->want_accept_encoding)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_ENCODING,
                                "gzip, deflate, identity");
    if (status == 200 && r->infer_header_len > 0) {
        char n[32];
        snprintf(n, sizeof n, "%zu", r->infer_header_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", n);
    }
    if (status == 401) /* RFC 6750, section 3 */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                r->bad_token ? "Bearer realm=\"lossd\", "
                                               "error=\"invalid_token\""
                                             : "Bearer realm=\"lossd\"");
    add_close(r, resp);
    r->status = status;
    r->bytes_out = len;
    count_request(r);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/*
 * Queues r's answer (set_answer()): a 200 is application/json, anything
 * else a problem document. Without a body (out of memory when it was
 * written) the out-of-memory problem built at start goes instead.
 */
static enum MHD_Result respond_answer(struct req *r)
{
    char *body = r->body;
    r->body = NULL; /* respond_coded() owns it now */
    if (!body) {
        struct server *s = r->srv;
        return respond_coded(r, proto_status_http(LOSS_ENOMEM),
                             "application/problem+json", s->oom_problem,
                             s->oom_problem_len, false, SERVER_CODING_IDENTITY,
                             false);
    }
    const char *ctype = r->out_status != 200      ? "application/problem+json"
                        : r->infer_header_len > 0 ? "application/octet-stream"
                                                  : "application/json";
    if (r->tail) {
        r->body = body;
        return respond_stream(r, ctype);
    }
    return respond_coded(r, r->out_status, ctype, body, r->body_len, true,
                         r->body_coding, r->body_varies);
}

/* respond_coded() for a body not yet encoded (freed with free() when
   freeit, else static). */
static enum MHD_Result respond(struct req *r, int status, const char *ctype,
                               char *body, size_t len, bool freeit)
{
    bool varies;
    enum server_coding c = encode(r, &body, &len, &freeit, &varies);
    return respond_coded(r, status, ctype, body, len, freeit, c, varies);
}

/* A written document: status with b's bytes as ctype. */
static enum MHD_Result respond_buf(struct req *r, int status, const char *ctype,
                                   struct proto_buf *b)
{
    size_t len = 0;
    char *data = proto_buf_steal(b, &len);
    if (!data)
        return respond_answer(r); /* no body: the out-of-memory problem */
    return respond(r, status, ctype, data, len, true);
}

static enum MHD_Result respond_text(struct req *r, int status,
                                    const char *ctype, const char *text)
{
    return respond(r, status, ctype, (char *)(uintptr_t)text, strlen(text),
                   false);
}

/* A document built once at start, gzipped for clients that prefer it. */
static enum MHD_Result respond_static(struct req *r, const struct server_doc *d)
{
    if (d->gz && r->coding == SERVER_CODING_GZIP)
        return respond_coded(r, 200, "application/json", d->gz, d->gz_len,
                             false, SERVER_CODING_GZIP, true);
    return respond(r, 200, "application/json", d->body, d->len, false);
}

/* ---- headers: the first call -------------------------------------------- */

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

/* application/octet-stream, with or without parameters. */
static bool octet_media_type(const char *ct)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    return n == 24 && !strncasecmp(ct, "application/octet-stream", 24);
}

/*
 * Every Content-Length and Transfer-Encoding field of a request, repeats
 * included (libmicrohttpd 0.9.75 reads only the first of each), noted in
 * the same pass over the headers as the rest (collect_header()).
 */
struct req_framing {
    size_t lengths;            /* Content-Length fields */
    bool lengths_differ;       /* one is not a number, or not the first's */
    unsigned long long length; /* the first's value */
    size_t codings;            /* Transfer-Encoding fields */
    bool chunked;              /* the first is exactly "chunked" */
    char coding_list[128];     /* their values joined by ", ", cut */
};

/* A Content-Length value: digits between optional spaces and tabs. */
static bool parse_length(const char *v, size_t n, unsigned long long *ret)
{
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0)
        return false;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9' || __builtin_mul_overflow(x, 10, &x) ||
            __builtin_add_overflow(x, (unsigned)(v[i] - '0'), &x))
            return false;
    }
    *ret = x;
    return true;
}

/* Notes a Content-Length (is_length) or Transfer-Encoding field in f. */
static void framing_note(struct req_framing *f, bool is_length,
                         const char *value, size_t value_size)
{
    if (is_length) {
        unsigned long long n = 0;
        if (!parse_length(value, value_size, &n) ||
            (f->lengths > 0 && n != f->length))
            f->lengths_differ = true;
        if (f->lengths++ == 0)
            f->length = n;
        return;
    }
    /* libmicrohttpd 0.9.75 decodes chunked only when the first field is
       "chunked" (any case) with nothing after it: trailing whitespace,
       tolerated by RFC 9110, leaves the body undecoded */
    if (f->codings++ == 0)
        f->chunked = value_size == 7 && !strncasecmp(value, "chunked", 7);
    size_t len = strlen(f->coding_list);
    snprintf(f->coding_list + len, sizeof f->coding_list - len, "%s%.*s",
             len ? ", " : "", (int)(value_size < 100 ? value_size : 100),
             value);
}

/* The request headers begin() reads (NULL: absent; the first of repeats,
   as MHD_lookup_connection_value() would give), valid while the request
   lives. */
struct req_headers {
    const char *request_id, *origin, *accept_encoding, *content_type,
        *content_encoding, *authorization, *infer_header;
    struct req_framing framing; /* Content-Length, Transfer-Encoding */
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
        WANT("Authorization", authorization),
        WANT("Inference-Header-Content-Length", infer_header),
#undef WANT
    };
    struct req_framing *f = &((struct req_headers *)cls)->framing;
    (void)kind;
    if (key_size == 14 && !strncasecmp(key, "Content-Length", 14)) {
        framing_note(f, true, value, value_size);
        return MHD_YES;
    }
    if (key_size == 17 && !strncasecmp(key, "Transfer-Encoding", 17)) {
        framing_note(f, false, value, value_size);
        return MHD_YES;
    }
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

/*
 * Refuses a request whose body's length cannot be known for sure (RFC 9112,
 * section 6): Content-Length with Transfer-Encoding (request smuggling),
 * Content-Lengths that differ (identical repeats are one value, RFC 9110,
 * section 8.6), a Transfer-Encoding other than chunked alone (501). The
 * answer goes in the first call and closes the connection: whatever follows
 * the headers is never read as a body or as the next request.
 */
static bool framing_refused(struct req *r, const struct req_framing *f)
{
    r->framing = true;
    if (f->lengths > 0 && f->codings > 0)
        req_fail(r, LOSS_EREQUEST,
                 "Content-Length and Transfer-Encoding together: send one "
                 "(RFC 9112, section 6.1)");
    else if (f->lengths_differ)
        req_fail(r, LOSS_EREQUEST,
                 "Content-Length is given %zu times with different values",
                 f->lengths);
    else if (f->codings > 0 && !(f->codings == 1 && f->chunked))
        req_fail(r, LOSS_ENOTIMPL,
                 "Transfer-Encoding '%s' is not implemented: send chunked "
                 "alone (nothing after it), or Content-Length",
                 f->coding_list);
    else
        r->framing = false;
    return r->framing;
}

/*
 * The path of a request target: an absolute-form target
 * (http://host/path, RFC 9112, section 3.2.2) without its scheme and
 * authority, "/" when it has no path; any other target as it is.
 * libmicrohttpd has already cut the query.
 */
static const char *target_path(const char *url)
{
    const char *p = NULL;
    if (!strncasecmp(url, "http://", 7))
        p = url + 7;
    else if (!strncasecmp(url, "https://", 8))
        p = url + 8;
    if (!p)
        return url;
    p = strchr(p, '/');
    return p ? p : "/";
}

/* Whether a decoded path holds a control byte: a %00 reads as DEL
   (server_http_unescape()). */
static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

size_t server_http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    size_t n = MHD_http_unescape(s);
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0')
            s[i] = 0x7f;
    return n;
}

/* The client's X-Request-Id when it is printable ASCII of a sane length,
   else a new random one. */
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
    for (int i = 15; i >= 0; i--, v >>= 4)
        r->id[i] = "0123456789abcdef"[v & 15];
    r->id[16] = '\0';
}

/*
 * Whether a request needs a token when authentication is on: everything
 * but the probes, which the kubelet sends without one, and CORS preflights,
 * which browsers send without credentials. Before routing, so a client
 * without a token learns nothing, not even which paths exist (401, not
 * 404). /metrics needs one too: it has no port of its own to be left to
 * the network (docs/security.md).
 */
static bool needs_token(const struct server_route *route, const char *method)
{
    if (!strcmp(method, "OPTIONS"))
        return false;
    return !route || (route->kind != SERVER_KIND_LIVE &&
                      route->kind != SERVER_KIND_READY &&
                      route->kind != SERVER_KIND_OIP_LIVE &&
                      route->kind != SERVER_KIND_OIP_READY);
}

/* The most body bytes r's route takes (before any inflation). */
static size_t body_max(const struct req *r)
{
    const struct handler_limits *lim = &r->srv->cfg.limits;
    if (r->route && r->route->kind == SERVER_KIND_OIP_INFER)
        return handler_oip_body_max(lim);
    return lim->max_body_bytes;
}

/* The first call: headers only. Leaves r->failed set if the answer is
   already known. */
static void begin(struct req *r, const char *url, const char *method)
{
    struct server *s = r->srv;
    struct MHD_Connection *c = r->conn;
    const char *path = target_path(url);
    loss_str_copy(r->method, sizeof r->method, method);
    loss_str_copy(r->path, sizeof r->path, path);
    struct req_headers h = {0};
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, collect_header, &h);
    copy_request_id(r, h.request_id);
    if (h.framing.lengths > 0 && h.framing.codings == 0) {
        unsigned long long n = h.framing.length;
        r->has_length = true;
        r->content_length = n < SIZE_MAX ? (size_t)n : SIZE_MAX;
    }
    const char *origin = h.origin;
    if (origin && s->cfg.cors_origins[0] &&
        server_config_origin_allowed(&s->cfg, origin, strlen(origin)))
        r->origin = origin;
    r->coding = server_coding_accept(h.accept_encoding);

    if (framing_refused(r, &h.framing))
        return;
    if (has_control(path)) {
        req_fail(r, LOSS_EREQUEST,
                 "the decoded path holds a control byte (%%00 to %%1F, "
                 "%%7F): no route has one");
        return;
    }
    r->route = server_route_find(path, &r->loss);
    if (s->auth && needs_token(r->route, method)) {
        enum server_auth_result a = server_auth_check(s->auth, h.authorization);
        if (a != SERVER_AUTH_OK) {
            r->bad_token = a == SERVER_AUTH_INVALID;
            req_fail(r, LOSS_EAUTH,
                     a == SERVER_AUTH_MISSING
                         ? "send Authorization: Bearer <token>"
                         : "the bearer token is not accepted");
            return;
        }
    }
    if (!r->route) {
        req_fail(r, LOSS_ENOTFOUND, "no route or loss at %s", r->path);
        return;
    }
    if (!strcmp(method, "OPTIONS")) {
        r->is_options = true;
        return;
    }
    if (!server_route_allows(r->route, method)) {
        req_fail(r, LOSS_EMETHOD, "%s is not allowed on %s (allowed: %s)",
                 r->method, r->path, r->route->allow);
        return;
    }
    if (!r->route->post)
        return;

    bool infer = r->route->kind == SERVER_KIND_OIP_INFER;
    size_t max = body_max(r);
    size_t header_len = HANDLER_OIP_WHOLE;
    if (infer && h.infer_header) {
        unsigned long long n = 0;
        if (!parse_length(h.infer_header, strlen(h.infer_header), &n)) {
            req_fail(r, LOSS_EREQUEST,
                     "Inference-Header-Content-Length '%.40s' is not a "
                     "number of bytes",
                     h.infer_header);
            return;
        }
        header_len = n < SIZE_MAX ? (size_t)n : SIZE_MAX - 1;
    }
    const char *ct = h.content_type;
    if (ct && infer && octet_media_type(ct)) {
        /* the binary tensor data extension's body */
    } else if (ct && !json_media_type(ct)) {
        req_fail(r, LOSS_EMEDIA,
                 "Content-Type '%.100s' is not JSON: send Content-Type: "
                 "application/json",
                 ct);
        return;
    }
    enum server_coding body_coding;
    if (server_coding_of_body(h.content_encoding, &body_coding) < 0) {
        r->want_accept_encoding = true;
        req_fail(r, LOSS_EMEDIA,
                 "Content-Encoding '%.100s' is not supported: send gzip, "
                 "deflate or identity",
                 h.content_encoding);
        return;
    }
    if (body_coding != SERVER_CODING_IDENTITY) {
        if (server_inflater_init(&r->inflater, max) < 0) {
            server_inflater_end(&r->inflater);
            req_fail(r, LOSS_ENOMEM, "out of memory");
            return;
        }
        r->inflating = true;
    }
    if (r->has_length && r->content_length > max) {
        req_fail(r, LOSS_ETOOLARGE,
                 infer ? "the body of %zu bytes exceeds what an inference "
                         "request can hold (%zu: max-body-bytes of header "
                         "and max-elements of 8 bytes)"
                       : "the body of %zu bytes exceeds max-body-bytes (%zu)",
                 r->content_length, max);
        return;
    }
    if (infer)
        r->hr = handler_request_new_oip(s->pipeline, r->loss, header_len,
                                        r->has_length && !r->inflating
                                            ? r->content_length
                                            : HANDLER_OIP_WHOLE);
    else
        r->hr = handler_request_new(
            s->pipeline, r->route->kind == SERVER_KIND_LOSS ? r->loss : NULL);
    if (!r->hr)
        req_fail(r, LOSS_ENOMEM, "out of memory");
}

/* ---- body: the upload calls --------------------------------------------- */

static void feed(struct req *r, const char *data, size_t n)
{
    if (handler_request_feed(r->hr, data, n) != LOSS_OK)
        req_fail_pipeline(r);
}

static int inflate_sink(void *ctx, const char *data, size_t n)
{
    struct req *r = ctx;
    feed(r, data, n);
    return r->failed ? 1 : 0;
}

static void inflate_feed(struct req *r, const char *data, size_t n)
{
    switch (server_inflater_feed(&r->inflater, data, n, inflate_sink, r)) {
    case -EBADMSG:
        req_fail(r, LOSS_EJSON, "the compressed body is corrupt (%s)",
                 server_inflater_reason(&r->inflater));
        break;
    case -EMSGSIZE:
        req_fail(r, LOSS_ETOOLARGE,
                 "the decompressed body exceeds its limit (%zu bytes)",
                 body_max(r));
        break;
    case -EPROTO:
        req_fail(r, LOSS_EJSON, "data after the end of the compressed body");
        break;
    default: /* 0, or the pipeline failed (already the answer) */
        break;
    }
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

/*
 * An upload call: MHD_NO closes the connection (the client is gone). A
 * failed request's body is thrown away as it comes, however long, so a
 * client that sends it all before reading reads the answer; conns.h bounds
 * how long (--discard-timeout, --discard-idle-timeout).
 */
static enum MHD_Result on_body(struct req *r, const char *data, size_t n)
{
    size_t max = body_max(r);
    double now = now_mono();
    r->bytes_in += n;
    conn_body(r->cn, n, now);
    if (!r->failed && r->bytes_in > max)
        req_fail(r, LOSS_ETOOLARGE, "the body exceeds its limit (%zu bytes)",
                 max);
    if (r->failed || !r->hr) {
        conn_discard(r->cn, now);
    } else if (r->inflating) {
        inflate_feed(r, data, n);
    } else {
        feed(r, data, n);
    }
    return client_gone(r) ? MHD_NO : MHD_YES;
}

/* ---- jobs ---------------------------------------------------------------- */

/* The compute histogram's index of r's loss (handler_count(): batch). */
static size_t loss_label(const struct req *r)
{
    size_t n = handler_count();
    for (size_t i = 0; r->loss && i < n; i++)
        if (handler_at(i) == r->loss)
            return i;
    return n;
}

/*
 * Runs r's request and leaves the encoded (and, if the client asked,
 * compressed) answer in r: on a worker for pooled jobs, so the HTTP thread
 * only queues bytes; on the HTTP thread for inline ones. ex: the pool's
 * executor for pooled jobs (their blocks run on every idle worker,
 * pool_exec.h), NULL (serial) inline.
 */
static void job_run(struct req *r, const struct loss_exec *ex)
{
    struct proto_buf out;
    double t = now_mono();
    proto_buf_init(&out);
    handler_request_stream_binary(r->hr);
    int status = handler_request_run(r->hr, ex, r->id, &out);
    r->infer_header_len =
        status == 200 ? handler_request_oip_header_len(r->hr) : 0;
    metrics_compute(r->srv->metrics, loss_label(r), now_mono() - t);
    if (status == 200 && handler_request_tail_bytes(r->hr) > 0)
        r->tail = r->hr; /* the response reads and frees it */
    else
        handler_request_free(r->hr);
    r->hr = NULL;
    set_answer(r, status, &out);
}

static struct req *req_of_job(struct pool_job *pj)
{
    return (struct req *)(void *)((char *)pj - offsetof(struct req, pj));
}

static void pool_work(struct pool_job *pj)
{
    struct req *r = req_of_job(pj);
    job_run(r, &r->srv->exec.ex);
}

/* On the loop thread: the job ran, or was cancelled before it started. */
static void pool_done(struct pool_job *pj, bool cancelled)
{
    struct req *r = req_of_job(pj);
    if (cancelled) {
        req_fail(r, LOSS_EUNAVAIL,
                 "the server stopped before the job could run; retry");
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
    if (r->inflating && !r->inflater.ended) {
        req_fail(r, LOSS_EJSON, "the compressed body is truncated");
        return respond_answer(r);
    }
    if (handler_request_finish(r->hr) != LOSS_OK) {
        req_fail_pipeline(r);
        return respond_answer(r);
    }
    r->job_loss = handler_request_loss(r->hr);
    if (handler_request_cost(r->hr) <= s->cfg.inline_max_cost) {
        job_run(r, NULL);
        return respond_answer(r);
    }
    int rc = pool_reserve(s->pool);
    if (rc < 0) {
        req_fail(r, LOSS_EUNAVAIL,
                 rc == -EBUSY ? "the work queue is full (queue-limit %zu); "
                                "retry later"
                              : "the server is shutting down (queue-limit "
                                "%zu)",
                 s->cfg.queue_limit);
        return respond_answer(r);
    }
    r->pj.work = pool_work;
    r->pj.done = pool_done;
    MHD_suspend_connection(r->conn);
    pool_submit(s->pool, &r->pj);
    return MHD_YES; /* never MHD_NO after suspending */
}

/* ---- the final call ----------------------------------------------------- */

static enum MHD_Result respond_options(struct req *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(0, NULL, NULL);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->route->allow);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    add_cors_vary(r, resp, false);
    add_close(r, resp);
    if (r->origin &&
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                    "Access-Control-Request-Method")) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                                r->route->allow);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, "
                                "Content-Encoding, X-Request-Id, "
                                "Inference-Header-Content-Length");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
    r->status = 204;
    count_request(r);
    enum MHD_Result ret = MHD_queue_response(r->conn, 204, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result respond_metrics(struct req *r)
{
    struct server *s = r->srv;
    struct proto_buf b;
    struct metrics_state st = {
        .pool_jobs = pool_pending(s->pool),
        .queue_limit = s->cfg.queue_limit,
        .inflight_bytes = handler_pipeline_inflight(s->pipeline),
        .max_inflight_bytes = s->cfg.max_inflight_bytes,
        .connections = conns_count(s->conns),
        .max_connections = s->cfg.conns.max,
    };
    conns_closed(s->conns, st.conns_closed);
    proto_buf_init(&b);
    metrics_write(s->metrics, &b, &st, LOSSD_VERSION, loss_blas_core());
    return respond_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/* GET /v2/health/ready and /v2/models/{model}/ready: ready while
   serving, 503 while draining, as /readyz. */
static enum MHD_Result respond_oip_ready(struct req *r)
{
    bool ready = atomic_load(&r->srv->phase) == SERVER_SERVING;
    struct proto_buf b;
    proto_buf_init(&b);
    proto_buf_puts(&b, "{");
    if (r->loss) {
        const char *name = handler_describe(r->loss)->name;
        proto_buf_puts(&b, "\"name\":");
        proto_write_string(&b, name, strlen(name));
        proto_buf_puts(&b, ",");
    }
    proto_buf_puts(&b, ready ? "\"ready\":true}" : "\"ready\":false}");
    return respond_buf(r, ready ? 200 : 503, "application/json", &b);
}

/* GET /v2/models and /v2/models/{model}. */
static enum MHD_Result respond_oip_model(struct req *r)
{
    struct proto_buf b;
    proto_buf_init(&b);
    if (r->loss)
        handler_oip_model_write(&b, r->loss);
    else
        handler_oip_models_write(&b);
    return respond_buf(r, 200, "application/json", &b);
}

static enum MHD_Result finish(struct req *r)
{
    struct server *s = r->srv;
    conn_busy(r->cn);
    if (r->job_done || r->failed)
        return respond_answer(r);
    if (r->is_options)
        return respond_options(r);
    switch (r->route->kind) {
    case SERVER_KIND_LIVE:
        return respond_text(r, 200, "application/json", "{\"live\":true}");
    case SERVER_KIND_READY:
        if (atomic_load(&s->phase) == SERVER_SERVING)
            return respond_text(r, 200, "application/json", "{\"ready\":true}");
        return respond_text(r, 503, "application/json", "{\"ready\":false}");
    case SERVER_KIND_METRICS:
        return respond_metrics(r);
    case SERVER_KIND_CATALOG:
        return respond_static(r, &s->catalog);
    case SERVER_KIND_OPENAPI:
        return respond_static(r, &s->openapi);
    case SERVER_KIND_LOSS:
    case SERVER_KIND_BATCH:
    case SERVER_KIND_OIP_INFER:
        return finish_post(r);
    case SERVER_KIND_OIP_SERVER:
        return respond_text(r, 200, "application/json", s->oip_server);
    case SERVER_KIND_OIP_LIVE:
        return respond_text(r, 200, "application/json", "{\"live\":true}");
    case SERVER_KIND_OIP_READY:
    case SERVER_KIND_OIP_MODEL_READY:
        return respond_oip_ready(r);
    case SERVER_KIND_OIP_MODELS:
    case SERVER_KIND_OIP_MODEL:
        return respond_oip_model(r);
    }
    return MHD_NO;
}

static bool expects_continue(struct MHD_Connection *c)
{
    const char *e = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
    return e && !strcasecmp(e, "100-continue");
}

/*
 * No memory for a request's state: the out-of-memory problem written at
 * start, counted under no route, and the connection closed (its body, if
 * any, is not read). MHD_NO, which closes without an answer, only when
 * even the response cannot be made.
 */
static enum MHD_Result respond_no_memory(struct server *s,
                                         struct MHD_Connection *c)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        s->oom_problem_len, s->oom_problem, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/problem+json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
                            SERVER_RETRY_AFTER);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    unsigned status = (unsigned)proto_status_http(LOSS_ENOMEM);
    metrics_request(s->metrics, server_route_count(), (int)status, 0, 0);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result server_http_request(void *cls, struct MHD_Connection *c,
                                    const char *url, const char *method,
                                    const char *version,
                                    const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    (void)version;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return respond_no_memory(s, c);
        r->srv = s;
        r->conn = c;
        r->cn = conns_of(c);
        r->t0 = now_mono();
        conn_begin(r->cn, r->t0);
        r->queue_wait = -1;
        *con_cls = r;
        atomic_fetch_add(&s->active, 1);
        metrics_inflight_add(s->metrics, 1);
        begin(r, url, method);
        /* Expect: 100-continue and the answer is known: the client waits
           for us and never sends the body. Refused framing: the body is
           never read. */
        if (r->failed && (r->framing || expects_continue(c)))
            return respond_answer(r);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return on_body(r, upload_data, n);
    }
    return finish(r);
}

void server_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    (void)toe;
    conn_end(r ? r->cn : conns_of(c), now_mono());
    if (!r)
        return;
    *con_cls = NULL;
    if (r->status == 0) {
        /* not answered by us: libmicrohttpd's own error response, if any
           (framing it refused after the first call: a bad chunk line) */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        if (ci && ci->http_status >= 100 && ci->http_status <= 599)
            r->status = (int)ci->http_status;
    }
    /* a failure closed before its answer (a refused body past the discard
       bounds): what it would have been answered */
    if (r->status == 0 && r->failed)
        r->status = r->out_status;
    count_request(r);
    struct server_access a = {
        .request_id = r->id,
        .method = r->method,
        .path = r->path,
        .status = r->status,
        .bytes_in = r->bytes_in,
        .bytes_out = r->bytes_out,
        .duration = r->duration,
        .queue_wait = r->queue_wait,
        .loss = r->job_loss,
    };
    server_log_access(s->log, &a);
    if (r->inflating)
        server_inflater_end(&r->inflater);
    handler_request_free(r->hr);
    handler_request_free(r->tail);
    free(r->body);
    free(r);
    metrics_inflight_add(s->metrics, -1);
    atomic_fetch_sub(&s->active, 1);
}

void server_http_logger(void *cls, const char *fmt, va_list ap)
{
    struct server *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    server_log_event(s->log, SERVER_LOG_WARN, "http", "%s", msg);
}

/*
 * http.h - the libmicrohttpd side of `lossd serve`: the callbacks that take
 * a request from its headers through its body to the response, with its
 * state, and hand POST bodies to the handlers' pipeline (inline, or on the
 * worker pool with the connection suspended).
 *
 * The life of a POST:
 *   first call    headers only: framing (Content-Length, Transfer-Encoding),
 *                 path, route, method, media type. Refused framing is
 *                 answered at once and closes the connection (the body is
 *                 never read); so is any failure here when the client sent
 *                 Expect: 100-continue (it never sends the body); otherwise
 *                 a failure is remembered and the body discarded as it
 *                 arrives.
 *   upload calls  bytes inflated if gzip/deflate and fed to the request's
 *                 pipeline; limits checked on every chunk.
 *   final call    the pipeline's finish, then either the run inline or a
 *                 pool slot, suspend and submit. The pool resumes the
 *                 connection and libmicrohttpd calls again: the response is
 *                 queued on the connection's own thread.
 */
#ifndef LOSSD_SERVER_HTTP_H
#define LOSSD_SERVER_HTTP_H

#include <microhttpd.h>
#include <stdarg.h>

/* The access handler (MHD_AccessHandlerCallback); cls is the server. */
enum MHD_Result server_http_request(void *cls, struct MHD_Connection *c,
                                    const char *url, const char *method,
                                    const char *version,
                                    const char *upload_data,
                                    size_t *upload_data_size, void **con_cls);

/*
 * MHD_OPTION_UNESCAPE_CALLBACK (cls unused): libmicrohttpd's own
 * percent-decoding of s in place, returning the new length, except that a
 * decoded NUL becomes DEL (0x7f) instead of ending the string early, so a
 * path such as /v1/mse%00junk is refused (400) rather than routed as
 * /v1/mse. The request's arguments are decoded by it too.
 */
size_t server_http_unescape(void *cls, struct MHD_Connection *c, char *s);

/*
 * MHD_OPTION_NOTIFY_COMPLETED: logs, counts and frees the request. A
 * request libmicrohttpd answered itself (a malformed chunk, say) is logged
 * and counted with the status it sent.
 */
void server_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe);

/* MHD_OPTION_EXTERNAL_LOGGER: libmicrohttpd's messages as warn lines. */
void server_http_logger(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif

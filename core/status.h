/*
 * status.h - the one status type of lossd, and the detail that goes with it.
 *
 * Every fallible function in every layer returns an enum loss_status and, on
 * failure, fills a caller-owned struct loss_error with a human message and,
 * when the failure concerns a part of the request body, a JSON pointer to it
 * (or a byte offset, for JSON syntax errors). A failure is one line:
 *
 *     return loss_fail(err, LOSS_ESHAPE, "/target",
 *                      "target has %zu rows but input has %zu", m, n);
 *
 * Exactly one table (proto/problem.c) maps a status to an HTTP code and a
 * problem type; core knows nothing of HTTP.
 */
#ifndef LOSSD_CORE_STATUS_H
#define LOSSD_CORE_STATUS_H

#include <stddef.h>

enum loss_status {
    LOSS_OK = 0,
    LOSS_EJSON,     /* not JSON, trailing data, bad UTF-8, number range */
    LOSS_ETENSOR,   /* ragged array, non-number in a tensor, bad base64 */
    LOSS_ENOTFOUND, /* unknown route or loss */
    LOSS_EMETHOD,   /* known route, wrong method */
    LOSS_ETOOLARGE, /* body, elements, rank, depth, work or items limit */
    LOSS_EMEDIA,    /* Content-Type or Content-Encoding */
    LOSS_EUNKNOWN,  /* a field the loss does not take, or a duplicate key */
    LOSS_EMISSING,  /* a required tensor is absent */
    LOSS_ESHAPE,    /* shapes that do not fit together */
    LOSS_EOPTION,   /* option of the wrong type, out of range, combination */
    LOSS_EVALUE,    /* a value outside its domain (class index, null, ...) */
    LOSS_EUNAVAIL,  /* draining, or the work queue is full */
    LOSS_ENOMEM,    /* an allocation failed */
    LOSS_EINTERNAL, /* a bug: never expected on any input */
    LOSS_EAUTH,     /* no or wrong credentials (--auth-token-file) */
    LOSS_EREQUEST,  /* malformed HTTP framing or request target */
    LOSS_ENOTIMPL,  /* a transfer coding the server does not implement */
    LOSS_ETIMEOUT,  /* a request's header block or body came too slowly */
    LOSS_STATUS_COUNT
};

#define LOSS_DETAIL_MAX  512
#define LOSS_POINTER_MAX 512

/*
 * The detail of a failure. Owned by the caller; written by loss_fail().
 * has_pointer distinguishes "no pointer" from the root pointer "".
 * offset is the byte offset of a JSON syntax error, or -1.
 */
struct loss_error {
    enum loss_status status;
    int has_pointer;
    long long offset;
    char pointer[LOSS_POINTER_MAX];
    char detail[LOSS_DETAIL_MAX];
};

/* Resets err to "no error": status LOSS_OK, no pointer, no offset. */
void loss_error_init(struct loss_error *err);

/*
 * Records a failure in err (which may be NULL) and returns st. pointer is a
 * JSON pointer (already escaped) or NULL for none. The message is truncated to
 * LOSS_DETAIL_MAX - 1 bytes, the pointer to LOSS_POINTER_MAX - 1.
 */
enum loss_status loss_fail(struct loss_error *err, enum loss_status st,
                           const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like loss_fail() for a JSON syntax error at byte offset, with no pointer. */
enum loss_status loss_fail_at(struct loss_error *err, enum loss_status st,
                              long long offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Prepends prefix (an escaped JSON pointer such as "/requests/3") to the
 * pointer of err, if it has one. Used by batches, whose items report
 * pointers relative to the item.
 */
void loss_error_prefix(struct loss_error *err, const char *prefix);

/*
 * Appends the JSON-pointer escaping of one reference token (key) of length
 * len to buf (of size cap, holding a NUL-terminated pointer): '/' then the
 * token with '~' as "~0" and '/' as "~1". Truncates silently at cap.
 */
void loss_pointer_append(char *buf, size_t cap, const char *key, size_t len);

/* Appends "/<index>" to the pointer in buf. */
void loss_pointer_append_index(char *buf, size_t cap, size_t index);

/*
 * Copies the string src into buf (of size cap > 0), truncated to cap - 1
 * bytes, and returns the length copied: snprintf(buf, cap, "%s", src)
 * without the format parsing, whose cost showed on the path of a small
 * request.
 */
size_t loss_str_copy(char *buf, size_t cap, const char *src);

/* A stable lower-case name for a status, for logs and tests. */
const char *loss_status_name(enum loss_status st);

#endif

/*
 * problem.c - problem details (RFC 9457) of document.h: the one table from a
 * status to HTTP and the problem documents written from it.
 */
#include "document.h"

#include <string.h>

/*
 * The one map from a status to HTTP (docs/api.md, "Errors"). Every
 * enum value has a row; tests/proto/test_document.c walks them all. A type
 * keeps one title, so LOSS_ENOMEM shares "unavailable" with LOSS_EUNAVAIL:
 * to a client both mean "try again later".
 */
static const struct {
    int http;
    const char *type;
    const char *title;
} status_table[LOSS_STATUS_COUNT] = {
    [LOSS_OK] = {200, "about:blank", "OK"},
    [LOSS_EJSON] = {400, "/problems/invalid-json", "Invalid JSON"},
    [LOSS_ETENSOR] = {400, "/problems/invalid-tensor", "Invalid tensor"},
    [LOSS_ENOTFOUND] = {404, "/problems/not-found", "Not found"},
    [LOSS_EMETHOD] = {405, "/problems/method-not-allowed",
                      "Method not allowed"},
    [LOSS_ETOOLARGE] = {413, "/problems/too-large", "Too large"},
    [LOSS_EMEDIA] = {415, "/problems/unsupported-media-type",
                     "Unsupported media type"},
    [LOSS_EUNKNOWN] = {422, "/problems/unknown-field", "Unknown field"},
    [LOSS_EMISSING] = {422, "/problems/missing-field", "Missing field"},
    [LOSS_ESHAPE] = {422, "/problems/shape-mismatch", "Shape mismatch"},
    [LOSS_EOPTION] = {422, "/problems/invalid-option", "Invalid option"},
    [LOSS_EVALUE] = {422, "/problems/invalid-value", "Invalid value"},
    [LOSS_EUNAVAIL] = {503, "/problems/unavailable", "Service unavailable"},
    [LOSS_ENOMEM] = {503, "/problems/unavailable", "Service unavailable"},
    [LOSS_EINTERNAL] = {500, "/problems/internal", "Internal error"},
    [LOSS_EAUTH] = {401, "/problems/unauthorized", "Unauthorized"},
    [LOSS_EREQUEST] = {400, "/problems/bad-request", "Bad request"},
    [LOSS_ENOTIMPL] = {501, "/problems/not-implemented", "Not implemented"},
    [LOSS_ETIMEOUT] = {408, "/problems/timeout", "Request timeout"},
};

/* Out-of-range values are a caller's bug: answered as internal errors. */
static enum loss_status known(enum loss_status st)
{
    return (unsigned)st < LOSS_STATUS_COUNT ? st : LOSS_EINTERNAL;
}

int proto_status_http(enum loss_status st)
{
    return status_table[known(st)].http;
}

const char *proto_status_type(enum loss_status st)
{
    return status_table[known(st)].type;
}

const char *proto_status_title(enum loss_status st)
{
    return status_table[known(st)].title;
}

static void write_member_string(struct proto_buf *b, const char *key,
                                const char *s)
{
    proto_buf_puts(b, key);
    proto_write_string(b, s, strlen(s));
}

void proto_problem_write(struct proto_buf *b, const struct loss_error *err,
                         const char *instance, const struct proto_value *id)
{
    enum loss_status st = known(err->status);
    const char *detail;

    /* A problem for "no error" is a bug upstream; never a 200 problem. */
    if (st == LOSS_OK)
        st = LOSS_EINTERNAL;
    detail = err->detail[0] != '\0' ? err->detail : proto_status_title(st);
    write_member_string(b, "{\"type\":", proto_status_type(st));
    write_member_string(b, ",\"title\":", proto_status_title(st));
    proto_buf_printf(b, ",\"status\":%d", proto_status_http(st));
    write_member_string(b, ",\"detail\":", detail);
    if (err->has_pointer)
        write_member_string(b, ",\"pointer\":", err->pointer);
    else if (err->offset >= 0)
        proto_buf_printf(b, ",\"offset\":%lld", err->offset);
    if (instance != NULL)
        write_member_string(b, ",\"instance\":", instance);
    write_member_string(b, ",\"error\":", detail);
    if (id != NULL) {
        proto_buf_puts(b, ",\"id\":");
        proto_write_value(b, id);
    }
    proto_buf_puts(b, "}");
}

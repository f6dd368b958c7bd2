/*
 * route.h - the one table of lossd's HTTP routes: for each, its path, the
 * methods it allows, what handles it and its label in the metrics. The
 * loss routes are one entry ("/v1/{loss}"), resolved through the handlers'
 * registry.
 */
#ifndef LOSSD_SERVER_ROUTE_H
#define LOSSD_SERVER_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "handler.h"

/* What answers a route. */
enum server_kind {
    SERVER_KIND_LOSS,    /* POST: one loss through the pipeline */
    SERVER_KIND_BATCH,   /* POST: the batch through the pipeline */
    SERVER_KIND_CATALOG, /* GET: the catalog, built at start */
    SERVER_KIND_OPENAPI, /* GET: the OpenAPI document, built at start */
    SERVER_KIND_LIVE,    /* GET: liveness */
    SERVER_KIND_READY,   /* GET: readiness (503 while draining) */
    SERVER_KIND_METRICS, /* GET: Prometheus text */
    /* the Open Inference Protocol (docs/api.md) */
    SERVER_KIND_OIP_SERVER,      /* GET /v2: server metadata */
    SERVER_KIND_OIP_LIVE,        /* GET: liveness */
    SERVER_KIND_OIP_READY,       /* GET: readiness (503 while draining) */
    SERVER_KIND_OIP_MODELS,      /* GET: every model */
    SERVER_KIND_OIP_MODEL,       /* GET: one model's metadata */
    SERVER_KIND_OIP_MODEL_READY, /* GET: one model's readiness */
    SERVER_KIND_OIP_INFER,       /* POST: one loss through the pipeline */
};

struct server_route {
    const char *path;  /* the path, or its template for the losses */
    const char *label; /* the metrics' route label */
    const char *allow; /* the Allow header: its methods and OPTIONS */
    enum server_kind kind;
    bool post; /* takes a body (POST); else GET and HEAD */
};

/* The routes, in a fixed order; their indices are the metrics' labels. */
size_t server_route_count(void);
const struct server_route *server_route_at(size_t i);
size_t server_route_index(const struct server_route *rt);

/*
 * The route of a request target url (a NUL-terminated path, no query), or
 * NULL for none. For the loss route *ret_loss is the loss, named after
 * "/v1/" or, for compatibility, right after "/" (so "/mse" is "/v1/mse");
 * never under "/v2", the Open Inference Protocol's. For the protocol's
 * model routes, "/v2/models/{loss}" with an optional
 * "/versions/" HANDLER_OIP_VERSION and then nothing, "/ready" or "/infer",
 * *ret_loss is the loss; an unknown loss or version is no route.
 */
const struct server_route *
server_route_find(const char *url, const struct handler_loss **ret_loss);

/* Whether method (not OPTIONS) is allowed on rt. */
bool server_route_allows(const struct server_route *rt, const char *method);

#endif

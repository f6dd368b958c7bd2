/*
 * route.c - the route table (route.h).
 */
#include "route.h"

#include <string.h>

#define ALLOW_GET  "GET, HEAD, OPTIONS"
#define ALLOW_POST "POST, OPTIONS"

/* The losses' entry is first: server_route_find() treats it apart. */
static const struct server_route routes[] = {
    {"/v1/{loss}", "/v1/{loss}", ALLOW_POST, SERVER_KIND_LOSS, true},
    {"/v1/batch", "/v1/batch", ALLOW_POST, SERVER_KIND_BATCH, true},
    {"/v1/losses", "/v1/losses", ALLOW_GET, SERVER_KIND_CATALOG, false},
    {"/openapi.json", "/openapi.json", ALLOW_GET, SERVER_KIND_OPENAPI, false},
    {"/healthz", "/healthz", ALLOW_GET, SERVER_KIND_LIVE, false},
    {"/readyz", "/readyz", ALLOW_GET, SERVER_KIND_READY, false},
    {"/metrics", "/metrics", ALLOW_GET, SERVER_KIND_METRICS, false},
    {"/v2", "/v2", ALLOW_GET, SERVER_KIND_OIP_SERVER, false},
    {"/v2/health/live", "/v2/health/live", ALLOW_GET, SERVER_KIND_OIP_LIVE,
     false},
    {"/v2/health/ready", "/v2/health/ready", ALLOW_GET, SERVER_KIND_OIP_READY,
     false},
    {"/v2/models", "/v2/models", ALLOW_GET, SERVER_KIND_OIP_MODELS, false},
    /* templates: found by oip_model_route(), never by their path */
    {"/v2/models/{model}", "/v2/models/{model}", ALLOW_GET,
     SERVER_KIND_OIP_MODEL, false},
    {"/v2/models/{model}/ready", "/v2/models/{model}/ready", ALLOW_GET,
     SERVER_KIND_OIP_MODEL_READY, false},
    {"/v2/models/{model}/infer", "/v2/models/{model}/infer", ALLOW_POST,
     SERVER_KIND_OIP_INFER, true},
};
#define NROUTES (sizeof routes / sizeof routes[0])

size_t server_route_count(void)
{
    return NROUTES;
}

const struct server_route *server_route_at(size_t i)
{
    return i < NROUTES ? &routes[i] : NULL;
}

size_t server_route_index(const struct server_route *rt)
{
    return (size_t)(rt - routes);
}

static const struct server_route *route_of_kind(enum server_kind kind)
{
    for (size_t i = 0; i < NROUTES; i++)
        if (routes[i].kind == kind)
            return &routes[i];
    return NULL;
}

/*
 * "/v2/models/{loss}[/versions/1][/ready|/infer]": rest is what follows
 * "/v2/models/".
 */
static const struct server_route *
oip_model_route(const char *rest, const struct handler_loss **ret_loss)
{
    static const char versions[] = "/versions/" HANDLER_OIP_VERSION;
    size_t n = strcspn(rest, "/");
    const struct handler_loss *loss = handler_find(rest, n);
    enum server_kind kind = SERVER_KIND_OIP_MODEL;

    if (!loss || n == 0)
        return NULL;
    rest += n;
    if (!strncmp(rest, versions, sizeof versions - 1) &&
        (rest[sizeof versions - 1] == '\0' || rest[sizeof versions - 1] == '/'))
        rest += sizeof versions - 1;
    if (!strcmp(rest, "/ready"))
        kind = SERVER_KIND_OIP_MODEL_READY;
    else if (!strcmp(rest, "/infer"))
        kind = SERVER_KIND_OIP_INFER;
    else if (*rest)
        return NULL;
    *ret_loss = loss;
    return route_of_kind(kind);
}

const struct server_route *
server_route_find(const char *url, const struct handler_loss **ret_loss)
{
    *ret_loss = NULL;
    for (size_t i = 1; i < NROUTES; i++)
        if (!strchr(routes[i].path, '{') && !strcmp(url, routes[i].path))
            return &routes[i];
    if (!strncmp(url, "/v2/models/", 11))
        return oip_model_route(url + 11, ret_loss);
    /* /v2/... is the Open Inference Protocol's, never a loss */
    if (!strcmp(url, "/v2") || !strncmp(url, "/v2/", 4))
        return NULL;
    const char *name = NULL;
    if (!strncmp(url, "/v1/", 4))
        name = url + 4;
    else if (url[0] == '/' && strncmp(url, "/v1", 4) != 0)
        name = url + 1;
    if (!name || !*name)
        return NULL;
    *ret_loss = handler_find(name, strlen(name));
    return *ret_loss ? &routes[0] : NULL;
}

bool server_route_allows(const struct server_route *rt, const char *method)
{
    if (rt->post)
        return !strcmp(method, "POST");
    return !strcmp(method, "GET") || !strcmp(method, "HEAD");
}

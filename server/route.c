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

const struct server_route *
server_route_find(const char *url, const struct handler_loss **ret_loss)
{
    *ret_loss = NULL;
    for (size_t i = 1; i < NROUTES; i++)
        if (!strcmp(url, routes[i].path))
            return &routes[i];
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

/*
 * test_route.c - server/route.c: the route table's shape (indices, labels,
 * methods), every fixed path, every loss of the registry under "/v1/" and
 * "/" and as an Open Inference Protocol model, and the targets that must
 * not resolve (/v1, /v2's unknown paths and models, unknown names, near
 * misses).
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "handler.h"
#include "route.h"
#include "testutil.h"

/* Any non-NULL value: server_route_find() must overwrite it. */
static char sentinel;
#define SENTINEL ((const struct handler_loss *)(void *)&sentinel)

/* The table as route.h promises it: the loss route at 0, then fixed paths. */
START_TEST(test_table)
{
    size_t n = server_route_count();
    size_t nloss = 0;

    /* losses, batch, catalog, openapi, healthz, readyz, metrics; /v2,
       its health, models, and the three model templates */
    ck_assert_uint_eq(n, 14);
    ck_assert_ptr_null(server_route_at(n));
    ck_assert_ptr_null(server_route_at((size_t)-1));
    for (size_t i = 0; i < n; i++) {
        const struct server_route *rt = server_route_at(i);

        ck_assert_ptr_nonnull(rt);
        ck_assert_ptr_nonnull(rt->path);
        ck_assert_ptr_nonnull(rt->label);
        ck_assert_ptr_nonnull(rt->allow);
        /* the metrics' label is the index */
        ck_assert_uint_eq(server_route_index(rt), i);
        /* a label is a route, never the label of unmatched requests */
        ck_assert_str_ne(rt->label, "other"); /* metrics.h: no route */
        ck_assert_int_eq(rt->path[0], '/');
        for (size_t j = 0; j < i; j++) {
            ck_assert_str_ne(server_route_at(j)->label, rt->label);
            ck_assert_str_ne(server_route_at(j)->path, rt->path);
        }
        /* what takes a body is exactly what runs the pipeline */
        ck_assert(rt->post == (rt->kind == SERVER_KIND_LOSS ||
                               rt->kind == SERVER_KIND_BATCH ||
                               rt->kind == SERVER_KIND_OIP_INFER));
        nloss += rt->kind == SERVER_KIND_LOSS;
    }
    ck_assert_uint_eq(nloss, 1);
    ck_assert(server_route_at(0)->kind == SERVER_KIND_LOSS);
    ck_assert_str_eq(server_route_at(0)->label, "/v1/{loss}");
}
END_TEST

/* Every fixed path resolves to its own entry, with no loss. */
START_TEST(test_fixed_paths)
{
    static const struct {
        const char *path;
        enum server_kind kind;
    } fixed[] = {
        {"/v1/batch", SERVER_KIND_BATCH},
        {"/v1/losses", SERVER_KIND_CATALOG},
        {"/openapi.json", SERVER_KIND_OPENAPI},
        {"/healthz", SERVER_KIND_LIVE},
        {"/readyz", SERVER_KIND_READY},
        {"/metrics", SERVER_KIND_METRICS},
        {"/v2", SERVER_KIND_OIP_SERVER},
        {"/v2/health/live", SERVER_KIND_OIP_LIVE},
        {"/v2/health/ready", SERVER_KIND_OIP_READY},
        {"/v2/models", SERVER_KIND_OIP_MODELS},
    };

    /* all but the losses' template and the three model templates */
    ck_assert_uint_eq(sizeof fixed / sizeof fixed[0], server_route_count() - 4);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        const struct handler_loss *loss = SENTINEL;
        const struct server_route *rt = server_route_find(fixed[i].path, &loss);

        ck_assert_msg(rt != NULL, "%s: no route", fixed[i].path);
        ck_assert_ptr_null(loss);
        ck_assert_str_eq(rt->path, fixed[i].path);
        ck_assert_str_eq(rt->label, fixed[i].path);
        ck_assert(rt->kind == fixed[i].kind);
        ck_assert_ptr_eq(rt, server_route_at(server_route_index(rt)));
    }
}
END_TEST

/* Every loss of the registry, as "/v1/<name>" and as "/<name>". */
START_TEST(test_every_loss)
{
    ck_assert_uint_gt(handler_count(), 0);
    for (size_t i = 0; i < handler_count(); i++) {
        const struct handler_loss *want = handler_at(i);
        const char *name = handler_describe(want)->name;
        char url[256];

        for (int compat = 0; compat < 2; compat++) {
            const struct handler_loss *loss = SENTINEL;
            const struct server_route *rt;

            snprintf(url, sizeof url, "%s%s", compat ? "/" : "/v1/", name);
            rt = server_route_find(url, &loss);
            ck_assert_msg(rt != NULL, "%s: no route", url);
            ck_assert_ptr_eq(rt, server_route_at(0));
            ck_assert(rt->kind == SERVER_KIND_LOSS);
            ck_assert_msg(loss == want, "%s: another loss", url);
        }
    }
}
END_TEST

/* Every loss as a model, with and without the version segment. */
START_TEST(test_oip_models)
{
    static const struct {
        const char *suffix;
        enum server_kind kind;
    } kinds[] = {
        {"", SERVER_KIND_OIP_MODEL},
        {"/versions/1", SERVER_KIND_OIP_MODEL},
        {"/ready", SERVER_KIND_OIP_MODEL_READY},
        {"/versions/1/ready", SERVER_KIND_OIP_MODEL_READY},
        {"/infer", SERVER_KIND_OIP_INFER},
        {"/versions/1/infer", SERVER_KIND_OIP_INFER},
    };

    for (size_t i = 0; i < handler_count(); i++) {
        const struct handler_loss *want = handler_at(i);
        const char *name = handler_describe(want)->name;

        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            const struct handler_loss *loss = SENTINEL;
            char url[256];

            snprintf(url, sizeof url, "/v2/models/%s%s", name, kinds[k].suffix);
            const struct server_route *rt = server_route_find(url, &loss);
            ck_assert_msg(rt != NULL, "%s: no route", url);
            ck_assert(rt->kind == kinds[k].kind);
            ck_assert_msg(loss == want, "%s: another loss", url);
        }
    }
}
END_TEST

/* Targets that are no route: NULL, and the loss cleared. */
START_TEST(test_not_routes)
{
    static const char *const urls[] = {
        "",
        "/",
        "//",
        /* /v1 itself and its root are no loss (a loss named "v1" would be
           reachable as "/v1" only through the compatibility rule) */
        "/v1",
        "/v1/",
        /* the Open Inference Protocol's tree is never a v1 loss; its
           unknown paths, models and versions are no route */
        "/v2/",
        "/v2/mse",
        "/v2/models/",
        "/v2/models/nope",
        "/v2/models/nope/infer",
        "/v2/models/mse/",
        "/v2/models/mse/versions/2",
        "/v2/models/mse/versions/1/",
        "/v2/models/mse/versions/",
        "/v2/models/mse/infer/",
        "/v2/models/mse/bogus",
        "/v2/models//infer",
        "/v2/models/{model}",
        "/v2/models/{model}/infer",
        "/v2/health",
        "/v2/health/ready/",
        /* unknown names */
        "/v1/nope",
        "/nope",
        "/v1/batchx",
        "/v1/mse_loss",
        "/v1/MSE",
        "/MSE",
        /* "batch" and "losses" are routes under /v1 only */
        "/batch",
        "/losses",
        /* the template itself is not a path */
        "/v1/{loss}",
        "/{loss}",
        /* near misses: exact paths only */
        "/v1/mse/",
        "/v1//mse",
        "//mse",
        "/v1/v1/mse",
        "/v1mse",
        "/v2mse",
        "/v1/mse ",
        " /v1/mse",
        "v1/mse",
        "mse",
        "/v1/batch/",
        "/v1/losses/",
        "/healthz/",
        "/HEALTHZ",
        "/metrics/",
        "/openapi",
        "/openapi.json/",
        "/readyz/x",
        "/v1/healthz",
        "/v1/metrics",
        /* a query is the caller's to strip: with it, no match */
        "/v1/mse?x=1",
        "/healthz?x",
    };

    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        const struct handler_loss *loss = SENTINEL;
        const struct server_route *rt = server_route_find(urls[i], &loss);

        ck_assert_msg(rt == NULL, "'%s' resolved to %s", urls[i],
                      rt ? rt->path : "");
        ck_assert_msg(loss == NULL, "'%s': loss not cleared", urls[i]);
    }
}
END_TEST

/*
 * Methods: POST only where a body is taken, GET and HEAD elsewhere; method
 * names are case-sensitive (RFC 9110 9.1), and OPTIONS is answered apart
 * (server_route_allows() says so for "not OPTIONS"). The Allow header lists
 * exactly the allowed methods plus OPTIONS.
 */
START_TEST(test_methods)
{
    static const char *const methods[] = {
        "GET",   "HEAD",    "POST", "PUT",  "DELETE", "PATCH",
        "TRACE", "CONNECT", "get",  "post", "Get",    "",
    };

    for (size_t i = 0; i < server_route_count(); i++) {
        const struct server_route *rt = server_route_at(i);
        char allow[64];
        size_t listed = 0;

        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            bool want = rt->post ? !strcmp(methods[m], "POST")
                                 : (!strcmp(methods[m], "GET") ||
                                    !strcmp(methods[m], "HEAD"));

            ck_assert_msg(server_route_allows(rt, methods[m]) == want, "%s %s",
                          methods[m], rt->path);
        }
        /* every method the Allow header lists but OPTIONS is allowed */
        ck_assert_uint_lt(strlen(rt->allow), sizeof allow);
        snprintf(allow, sizeof allow, "%s", rt->allow);
        for (char *save = NULL, *tok = strtok_r(allow, ", ", &save); tok;
             tok = strtok_r(NULL, ", ", &save)) {
            if (strcmp(tok, "OPTIONS") != 0)
                ck_assert_msg(server_route_allows(rt, tok), "%s lists %s",
                              rt->path, tok);
            listed++;
        }
        /* and nothing else: POST + OPTIONS, or GET + HEAD + OPTIONS */
        ck_assert_uint_eq(listed, rt->post ? 2 : 3);
        ck_assert_ptr_nonnull(strstr(rt->allow, "OPTIONS"));
    }
}
END_TEST

static Suite *route_suite(void)
{
    Suite *s = suite_create("server_route");
    TCase *tc = tcase_create("route");

    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_fixed_paths);
    tcase_add_test(tc, test_every_loss);
    tcase_add_test(tc, test_oip_models);
    tcase_add_test(tc, test_not_routes);
    tcase_add_test(tc, test_methods);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(route_suite());
}

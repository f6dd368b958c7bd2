/*
 * test_config.c - server/config.c: the defaults, every option from a flag
 * (both spellings) and from its LOSSD_* variable, flags over variables, the
 * values each option refuses and the reason it gives, --help, the CORS
 * origin list, and the CPU count.
 *
 * The environment is process-wide: every test starts with the options'
 * variables unset and gets back the values they had (a fixture), so the
 * tests hold with and without Check's fork mode.
 */
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testutil.h"

/* Every option: its flag (without "--") and variable, as config.c has
   them and docs/configuration.md documents them. */
static const struct {
    const char *flag;
    const char *env;
} options[] = {
    {"host", "LOSSD_HOST"},
    {"port", "LOSSD_PORT"},
    {"threads", "LOSSD_THREADS"},
    {"workers", "LOSSD_WORKERS"},
    {"max-body-bytes", "LOSSD_MAX_BODY_BYTES"},
    {"max-elements", "LOSSD_MAX_ELEMENTS"},
    {"max-work", "LOSSD_MAX_WORK"},
    {"max-batch-items", "LOSSD_MAX_BATCH_ITEMS"},
    {"max-inflight-bytes", "LOSSD_MAX_INFLIGHT_BYTES"},
    {"queue-limit", "LOSSD_QUEUE_LIMIT"},
    {"inline-max-cost", "LOSSD_INLINE_MAX_COST"},
    {"drain-seconds", "LOSSD_DRAIN_SECONDS"},
    {"exit-timeout", "LOSSD_EXIT_TIMEOUT"},
    {"connection-timeout", "LOSSD_CONNECTION_TIMEOUT"},
    {"max-connections", "LOSSD_MAX_CONNECTIONS"},
    {"header-timeout", "LOSSD_HEADER_TIMEOUT"},
    {"body-timeout", "LOSSD_BODY_TIMEOUT"},
    {"body-min-rate", "LOSSD_BODY_MIN_RATE"},
    {"discard-timeout", "LOSSD_DISCARD_TIMEOUT"},
    {"discard-idle-timeout", "LOSSD_DISCARD_IDLE_TIMEOUT"},
    {"connection-memory", "LOSSD_CONNECTION_MEMORY"},
    {"cors-origins", "LOSSD_CORS_ORIGINS"},
    {"log-format", "LOSSD_LOG_FORMAT"},
    {"log-level", "LOSSD_LOG_LEVEL"},
    {"auth-token-file", "LOSSD_AUTH_TOKEN_FILE"},
    {"tls-cert", "LOSSD_TLS_CERT"},
    {"tls-key", "LOSSD_TLS_KEY"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static char serve[] = "serve";

/* --- the environment fixture -------------------------------------------- */

static char *saved_env[NOPTIONS];

static void env_clear(void)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *v = getenv(options[i].env);

        saved_env[i] = v ? strdup(v) : NULL;
        unsetenv(options[i].env);
    }
}

static void env_restore(void)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (saved_env[i])
            setenv(options[i].env, saved_env[i], 1);
        else
            unsetenv(options[i].env);
        free(saved_env[i]);
        saved_env[i] = NULL;
    }
}

/* --- helpers ------------------------------------------------------------ */

#define REASON_CAP 512

/*
 * server_config_load() on "serve" followed by the NULL-terminated args
 * (NULL: none), which do not ask for help.
 */
static int load_argv(struct server_config *c, char *reason,
                     const char *const *args)
{
    char *argv[32] = {serve};
    int argc = 1;
    FILE *out = fopen("/dev/null", "w");
    bool help = false;
    int rc;

    ck_assert_ptr_nonnull(out);
    for (; args && args[argc - 1]; argc++) {
        ck_assert_int_lt(argc, 32);
        argv[argc] = (char *)(uintptr_t)args[argc - 1];
    }
    reason[0] = '\0';
    rc = server_config_load(c, argc, argv, out, &help, reason, REASON_CAP);
    fclose(out);
    ck_assert(!help);
    return rc;
}

#define LOAD(c, reason, ...)                                                   \
    load_argv((c), (reason), (const char *const[]){__VA_ARGS__, NULL})

/* Loads with the args, which must succeed. */
#define LOAD_OK(c, ...)                                                        \
    do {                                                                       \
        char r_[REASON_CAP];                                                   \
        int rc_ = LOAD((c), r_, __VA_ARGS__);                                  \
        ck_assert_msg(rc_ == 0, "%s: %s", #__VA_ARGS__, r_);                   \
    } while (0)

/* --- defaults ----------------------------------------------------------- */

/* The defaults of docs/configuration.md, and nothing set means them. */
START_TEST(test_defaults)
{
    struct server_config d, c;
    struct handler_limits lim;
    char reason[REASON_CAP];
    size_t cpus = server_cpus_available();

    server_config_default(&d);
    ck_assert_str_eq(d.host, "0.0.0.0");
    ck_assert_uint_eq(d.port, 8080);
    /* at least 2 HTTP threads: one epoll thread of libmicrohttpd stalls */
    ck_assert_uint_eq(d.threads, cpus < 2 ? 2 : cpus);
    ck_assert_uint_eq(d.workers, cpus);
    handler_limits_default(&lim);
    ck_assert_mem_eq(&d.limits, &lim, sizeof lim);
    ck_assert_uint_eq(d.max_inflight_bytes, (size_t)1 << 30);
    ck_assert_uint_eq(d.queue_limit, 256);
    ck_assert(d.inline_max_cost == 1e5);
    ck_assert(d.drain_seconds == 5);
    ck_assert(d.exit_timeout == 20);
    /* drain plus exit timeout inside Kubernetes' default 30 s grace */
    ck_assert(d.drain_seconds + d.exit_timeout < 30);
    ck_assert_uint_eq(d.connection_timeout, 60);
    ck_assert_uint_eq(d.connection_memory, 8192);
    ck_assert_str_eq(d.cors_origins, "");
    ck_assert_str_eq(d.auth_token_file, "");
    ck_assert_str_eq(d.tls_cert, "");
    ck_assert_str_eq(d.tls_key, "");
    ck_assert(d.log_format == SERVER_LOG_JSON);
    ck_assert(d.log_level == SERVER_LOG_INFO);

    /* no flags, no variables: the defaults, to the byte (both start from
       memset 0, so even padding agrees) */
    ck_assert_int_eq(load_argv(&c, reason, NULL), 0);
    ck_assert_mem_eq(&c, &d, sizeof c);
    /* argv[0] is the subcommand, never read as an option */
    {
        char port[] = "--port=1";
        char *argv[] = {port, NULL};
        bool help = true;

        ck_assert_int_eq(server_config_load(&c, 1, argv, stdout, &help, reason,
                                            sizeof reason),
                         0);
        ck_assert(!help);
        ck_assert_uint_eq(c.port, 8080);
    }
}
END_TEST

/* --- every option, good values ------------------------------------------ */

/*
 * One good value of an option and what its field must then hold: each case
 * runs as "--flag value", "--flag=value" and as the variable.
 */
enum field_kind { F_STR, F_UNSIGNED, F_SIZE, F_DOUBLE, F_FORMAT, F_LEVEL };

struct good_case {
    const char *flag;
    const char *value;
    enum field_kind kind;
    size_t offset;           /* of the field in struct server_config */
    unsigned long long want; /* F_UNSIGNED, F_SIZE, F_FORMAT, F_LEVEL */
    double dwant;            /* F_DOUBLE; F_STR wants value itself */
    const char *why;
};

#define OFF(field) offsetof(struct server_config, field)
#define STR(flag, value, field, why)                                           \
    {                                                                          \
        flag, value, F_STR, OFF(field), 0, 0, why                              \
    }
#define UNS(flag, value, field, want, why)                                     \
    {                                                                          \
        flag, value, F_UNSIGNED, OFF(field), want, 0, why                      \
    }
#define SIZE(flag, value, field, want, why)                                    \
    {                                                                          \
        flag, value, F_SIZE, OFF(field), want, 0, why                          \
    }
#define DBL(flag, value, field, want, why)                                     \
    {                                                                          \
        flag, value, F_DOUBLE, OFF(field), 0, want, why                        \
    }

static const struct good_case good_cases[] = {
    STR("host", "127.0.0.1", host, "an IPv4 address"),
    STR("host", "::1", host, "an IPv6 address"),
    STR("host", "localhost", host, "a name, resolved when listening"),
    UNS("port", "0", port, 0, "0 picks a free port"),
    UNS("port", "1", port, 1, "the smallest real port"),
    UNS("port", "65535", port, 65535, "the largest port"),
    UNS("port", "00080", port, 80, "leading zeros are decimal, not octal"),
    SIZE("threads", "2", threads, 2, "the fewest HTTP threads"),
    SIZE("threads", "4096", threads, 4096, "the most"),
    SIZE("workers", "1", workers, 1, "one worker is fine"),
    SIZE("workers", "4096", workers, 4096, "the most"),
    SIZE("max-body-bytes", "123", limits.max_body_bytes, 123, "bytes"),
    SIZE("max-body-bytes", "1K", limits.max_body_bytes, 1024, "K is 1024"),
    SIZE("max-body-bytes", "1k", limits.max_body_bytes, 1024, "k too"),
    SIZE("max-body-bytes", "3KiB", limits.max_body_bytes, 3072, "KiB"),
    SIZE("max-body-bytes", "3KB", limits.max_body_bytes, 3072,
         "KB is binary too"),
    SIZE("max-body-bytes", "256M", limits.max_body_bytes, 256ull << 20, "M"),
    SIZE("max-body-bytes", "2MiB", limits.max_body_bytes, 2ull << 20, "MiB"),
    SIZE("max-body-bytes", "1G", limits.max_body_bytes, 1ull << 30, "G"),
    SIZE("max-body-bytes", "4GiB", limits.max_body_bytes, 4ull << 30,
         "past 32 bits"),
    SIZE("max-elements", "1", limits.max_elements, 1, "the least"),
    SIZE("max-elements", "16M", limits.max_elements, 16ull << 20, "M"),
    SIZE("max-work", "64M", limits.max_work, 64ull << 20, "M"),
    SIZE("max-batch-items", "7", limits.max_batch_items, 7, "a count"),
    SIZE("max-inflight-bytes", "2G", max_inflight_bytes, 2ull << 30, "G"),
    SIZE("queue-limit", "1", queue_limit, 1, "the least"),
    SIZE("queue-limit", "4096", queue_limit, 4096, "the most"),
    DBL("inline-max-cost", "0", inline_max_cost, 0, "every job to the pool"),
    DBL("inline-max-cost", "2.5e3", inline_max_cost, 2500, "an exponent"),
    DBL("inline-max-cost", "1e15", inline_max_cost, 1e15, "the most"),
    DBL("drain-seconds", "0", drain_seconds, 0, "no drain"),
    DBL("drain-seconds", "0.25", drain_seconds, 0.25, "a fraction"),
    DBL("exit-timeout", "0", exit_timeout, 0, "no wait"),
    DBL("exit-timeout", "7.5", exit_timeout, 7.5, "a fraction"),
    UNS("connection-timeout", "0", connection_timeout, 0, "0: never"),
    UNS("connection-timeout", "86400", connection_timeout, 86400,
        "a day, the most"),
    SIZE("connection-memory", "4096", connection_memory, 4096, "the least"),
    SIZE("connection-memory", "4K", connection_memory, 4096, "a suffix"),
    SIZE("connection-memory", "1M", connection_memory, 1048576, "the most"),
    STR("cors-origins", "*", cors_origins, "any origin"),
    STR("cors-origins", "https://a.example,https://b.example:8443",
        cors_origins, "a list, kept as given"),
    STR("cors-origins", "", cors_origins, "none, explicitly"),
    {"log-format", "text", F_FORMAT, OFF(log_format), SERVER_LOG_TEXT, 0, ""},
    {"log-format", "json", F_FORMAT, OFF(log_format), SERVER_LOG_JSON, 0, ""},
    {"log-level", "debug", F_LEVEL, OFF(log_level), SERVER_LOG_DEBUG, 0, ""},
    {"log-level", "info", F_LEVEL, OFF(log_level), SERVER_LOG_INFO, 0, ""},
    {"log-level", "warn", F_LEVEL, OFF(log_level), SERVER_LOG_WARN, 0, ""},
    {"log-level", "error", F_LEVEL, OFF(log_level), SERVER_LOG_ERROR, 0, ""},
    STR("auth-token-file", "/run/secrets/lossd/tokens", auth_token_file,
        "a file name, read when serving starts"),
    STR("auth-token-file", "", auth_token_file, "none, explicitly"),
    STR("tls-cert", "", tls_cert, "none, explicitly (alone: no TLS)"),
    STR("tls-key", "", tls_key, "none, explicitly"),
};

/* Whether c's field holds what g wants. */
static bool holds(const struct server_config *c, const struct good_case *g)
{
    const char *f = (const char *)c + g->offset;

    switch (g->kind) {
    case F_STR:
        return !strcmp(f, g->value);
    case F_UNSIGNED:
        return *(const unsigned *)(const void *)f == g->want;
    case F_SIZE:
        return *(const size_t *)(const void *)f == g->want;
    case F_DOUBLE:
        return *(const double *)(const void *)f == g->dwant;
    case F_FORMAT:
        return *(const enum server_log_format *)(const void *)f == g->want;
    case F_LEVEL:
        return *(const enum server_log_level *)(const void *)f == g->want;
    }
    return false;
}

static const char *env_of(const char *flag)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (!strcmp(options[i].flag, flag))
            return options[i].env;
    ck_abort_msg("no option %s", flag);
    return NULL;
}

START_TEST(test_good_values)
{
    const struct good_case *g = &good_cases[_i];
    char flag[64], eq[4096], reason[REASON_CAP];
    struct server_config c;

    snprintf(flag, sizeof flag, "--%s", g->flag);
    snprintf(eq, sizeof eq, "--%s=%s", g->flag, g->value);

    ck_assert_msg(LOAD(&c, reason, flag, g->value) == 0, "%s %s: %s", flag,
                  g->value, reason);
    ck_assert_msg(holds(&c, g), "%s %s (%s)", flag, g->value, g->why);

    ck_assert_msg(LOAD(&c, reason, eq) == 0, "%s: %s", eq, reason);
    ck_assert_msg(holds(&c, g), "%s (%s)", eq, g->why);

    ck_assert_int_eq(setenv(env_of(g->flag), g->value, 1), 0);
    ck_assert_msg(load_argv(&c, reason, NULL) == 0, "%s=%s: %s",
                  env_of(g->flag), g->value, reason);
    ck_assert_msg(holds(&c, g), "%s=%s (%s)", env_of(g->flag), g->value,
                  g->why);
}
END_TEST

/* A flag wins over its variable, wherever it stands; variables and flags
   of different options combine. */
START_TEST(test_flags_win)
{
    struct server_config c;

    setenv("LOSSD_PORT", "1234", 1);
    setenv("LOSSD_LOG_FORMAT", "text", 1);
    setenv("LOSSD_MAX_BODY_BYTES", "1K", 1);
    LOAD_OK(&c, "--port", "99", "--max-body-bytes=2K");
    ck_assert_uint_eq(c.port, 99);
    ck_assert_uint_eq(c.limits.max_body_bytes, 2048);
    /* not overridden: the variable's */
    ck_assert(c.log_format == SERVER_LOG_TEXT);

    /* the last of a repeated flag wins */
    LOAD_OK(&c, "--port=1", "--port", "2", "--port=3");
    ck_assert_uint_eq(c.port, 3);

    /* a value is taken as is, even one that looks like a flag */
    LOAD_OK(&c, "--cors-origins", "--port=5");
    ck_assert_str_eq(c.cors_origins, "--port=5");
    ck_assert_uint_eq(c.port, 1234);
}
END_TEST

/* --- bad values --------------------------------------------------------- */

struct bad_case {
    const char *flag;
    const char *value;
    const char *what; /* the reason's text after "<source>: " */
};

#define E_HOST   "expected a host address"
#define E_PORT   "expected a port in [0, 65535]"
#define E_COUNT  "expected a count in [1, 4096]"
#define E_SIZE   "expected a positive size (suffix K, M or G allowed)"
#define E_DOUBLE "expected a finite number >= 0"
#define E_SECS   "expected seconds in [0, 86400]"
#define E_FORMAT "expected json or text"
#define E_LEVEL  "expected debug, info, warn or error"

static const struct bad_case bad_cases[] = {
    {"host", "", E_HOST},
    {"port", "65536", E_PORT},
    {"port", "-1", E_PORT},
    {"port", "+80", E_PORT},
    {"port", " 80", E_PORT},
    {"port", "80x", E_PORT},
    {"port", "8.0", E_PORT},
    {"port", "", E_PORT},
    {"port", "1K", E_PORT}, /* no suffixes on ports */
    {"port", "99999999999999999999999", E_PORT},
    {"threads", "0", E_COUNT},
    {"threads", "4097", E_COUNT},
    {"threads", "-2", E_COUNT},
    {"threads", "2K", E_COUNT},
    {"workers", "0", E_COUNT},
    {"workers", "4097", E_COUNT},
    {"workers", "1.5", E_COUNT},
    {"queue-limit", "0", E_COUNT},
    {"queue-limit", "4097", E_COUNT},
    {"max-body-bytes", "0", E_SIZE},
    {"max-body-bytes", "0K", E_SIZE},
    {"max-body-bytes", "-1", E_SIZE},
    {"max-body-bytes", "1T", E_SIZE},
    {"max-body-bytes", "1Ki", E_SIZE},
    {"max-body-bytes", "1KiBs", E_SIZE},
    {"max-body-bytes", "1m", E_SIZE}, /* only k goes lowercase (kB) */
    {"max-body-bytes", "1.5K", E_SIZE},
    {"max-body-bytes", "1 K", E_SIZE},
    {"max-body-bytes", "K", E_SIZE},
    {"max-body-bytes", "", E_SIZE},
    /* past 2^64: strtoull's range, then the suffix's product */
    {"max-body-bytes", "18446744073709551616", E_SIZE},
    {"max-body-bytes", "17179869184G", E_SIZE},
    {"max-elements", "0", E_SIZE},
    {"max-work", "x", E_SIZE},
    {"max-batch-items", "0", E_SIZE},
    {"max-inflight-bytes", "0", E_SIZE},
    {"inline-max-cost", "-1", E_DOUBLE},
    {"inline-max-cost", "nan", E_DOUBLE},
    {"inline-max-cost", "inf", E_DOUBLE},
    {"inline-max-cost", "1e16", E_DOUBLE},
    {"inline-max-cost", "1e999", E_DOUBLE},
    {"inline-max-cost", "", E_DOUBLE},
    {"drain-seconds", "5s", E_DOUBLE},
    {"drain-seconds", "-0.5", E_DOUBLE},
    {"exit-timeout", "x", E_DOUBLE},
    {"connection-timeout", "86401", E_SECS},
    {"connection-timeout", "-1", E_SECS},
    {"connection-timeout", "1.5", E_SECS},
    {"connection-timeout", "1K", E_SECS},
    {"connection-memory", "0", E_SIZE},
    {"log-format", "JSON", E_FORMAT},
    {"log-format", "yaml", E_FORMAT},
    {"log-format", "", E_FORMAT},
    {"log-level", "INFO", E_LEVEL},
    {"log-level", "warning", E_LEVEL},
    {"log-level", "trace", E_LEVEL},
    {"log-level", "", E_LEVEL},
};

/*
 * Each bad value, as "--flag value", "--flag=value" and as the variable:
 * -EINVAL and the reason "<source>: <what> (got '<value>')", on one line.
 */
START_TEST(test_bad_values)
{
    const struct bad_case *b = &bad_cases[_i];
    char flag[64], eq[128], want[REASON_CAP], reason[REASON_CAP];
    const char *env = env_of(b->flag);
    struct server_config c;

    snprintf(flag, sizeof flag, "--%s", b->flag);
    snprintf(eq, sizeof eq, "--%s=%s", b->flag, b->value);
    snprintf(want, sizeof want, "--%s: %s (got '%s')", b->flag, b->what,
             b->value);
    ck_assert_int_eq(LOAD(&c, reason, flag, b->value), -EINVAL);
    ck_assert_str_eq(reason, want);
    ck_assert_int_eq(LOAD(&c, reason, eq), -EINVAL);
    ck_assert_str_eq(reason, want);

    snprintf(want, sizeof want, "%s: %s (got '%s')", env, b->what, b->value);
    ck_assert_int_eq(setenv(env, b->value, 1), 0);
    ck_assert_int_eq(load_argv(&c, reason, NULL), -EINVAL);
    ck_assert_str_eq(reason, want);
    ck_assert_ptr_null(strchr(reason, '\n'));
}
END_TEST

/* Checks across options, and lengths at their buffers' edges. */
START_TEST(test_bad_combined)
{
    struct server_config c;
    char reason[REASON_CAP];
    static char big[SERVER_PATH_MAX + 16];

    /* threads in [1, 4096] as a count, but at least 2 in the end */
    ck_assert_int_eq(LOAD(&c, reason, "--threads=1"), -EINVAL);
    ck_assert_str_eq(reason, "--threads: at least 2 (one epoll thread stalls)");
    setenv("LOSSD_THREADS", "1", 1);
    ck_assert_int_eq(load_argv(&c, reason, NULL), -EINVAL);
    ck_assert_str_eq(reason, "--threads: at least 2 (one epoll thread stalls)");
    /* ... which a flag can repair */
    LOAD_OK(&c, "--threads=3");
    ck_assert_uint_eq(c.threads, 3);
    unsetenv("LOSSD_THREADS");

    /* connection memory: a positive size, then [4096, 1048576] */
    static const char *const cmem[] = {"4095", "1048577", "2M", "1"};
    for (size_t i = 0; i < sizeof cmem / sizeof cmem[0]; i++) {
        ck_assert_int_eq(LOAD(&c, reason, "--connection-memory", cmem[i]),
                         -EINVAL);
        ck_assert_str_eq(reason,
                         "--connection-memory: from 4096 to 1048576 bytes");
    }

    /* a bad variable is bad configuration even if a flag would replace it:
       the operator learns of it at once */
    setenv("LOSSD_PORT", "x", 1);
    ck_assert_int_eq(LOAD(&c, reason, "--port=80"), -EINVAL);
    ck_assert_str_eq(reason,
                     "LOSSD_PORT: expected a port in [0, 65535] (got 'x')");
    unsetenv("LOSSD_PORT");

    /* host: up to SERVER_HOST_MAX - 1 bytes */
    memset(big, 'h', SERVER_HOST_MAX - 1);
    big[SERVER_HOST_MAX - 1] = '\0';
    LOAD_OK(&c, "--host", big);
    ck_assert_str_eq(c.host, big);
    big[SERVER_HOST_MAX - 1] = 'h';
    big[SERVER_HOST_MAX] = '\0';
    ck_assert_int_eq(LOAD(&c, reason, "--host", big), -EINVAL);
    ck_assert_ptr_nonnull(strstr(reason, "--host: " E_HOST));

    /* origins: up to SERVER_ORIGINS_MAX - 1 bytes */
    memset(big, 'o', SERVER_ORIGINS_MAX - 1);
    big[SERVER_ORIGINS_MAX - 1] = '\0';
    LOAD_OK(&c, "--cors-origins", big);
    ck_assert_str_eq(c.cors_origins, big);
    big[SERVER_ORIGINS_MAX - 1] = 'o';
    big[SERVER_ORIGINS_MAX] = '\0';
    ck_assert_int_eq(LOAD(&c, reason, "--cors-origins", big), -EINVAL);
    ck_assert_ptr_nonnull(
        strstr(reason, "--cors-origins: origin list too long"));

    /* file names: up to SERVER_PATH_MAX - 1 bytes */
    memset(big, 'f', SERVER_PATH_MAX - 1);
    big[SERVER_PATH_MAX - 1] = '\0';
    LOAD_OK(&c, "--auth-token-file", big);
    ck_assert_str_eq(c.auth_token_file, big);
    big[SERVER_PATH_MAX - 1] = 'f';
    big[SERVER_PATH_MAX] = '\0';
    ck_assert_int_eq(LOAD(&c, reason, "--auth-token-file", big), -EINVAL);
    ck_assert_ptr_nonnull(
        strstr(reason, "--auth-token-file: file name too long"));

    /* TLS: a certificate and its key, or neither */
    LOAD_OK(&c, "--tls-cert", "/tls/tls.crt", "--tls-key=/tls/tls.key");
    ck_assert_str_eq(c.tls_cert, "/tls/tls.crt");
    ck_assert_str_eq(c.tls_key, "/tls/tls.key");
    ck_assert_int_eq(LOAD(&c, reason, "--tls-cert", "/tls/tls.crt"), -EINVAL);
    ck_assert_str_eq(reason, "--tls-cert and --tls-key: give both or neither");
    setenv("LOSSD_TLS_KEY", "/tls/tls.key", 1);
    ck_assert_int_eq(load_argv(&c, reason, NULL), -EINVAL);
    ck_assert_str_eq(reason, "--tls-cert and --tls-key: give both or neither");
    LOAD_OK(&c, "--tls-cert", "/tls/tls.crt");
    ck_assert_str_eq(c.tls_key, "/tls/tls.key");
    unsetenv("LOSSD_TLS_KEY");
}
END_TEST

/* What is no option at all. */
START_TEST(test_bad_arguments)
{
    struct server_config c;
    char reason[REASON_CAP];

    ck_assert_int_eq(LOAD(&c, reason, "--nope"), -EINVAL);
    ck_assert_str_eq(reason, "unknown option '--nope' (see --help)");
    /* no abbreviations */
    ck_assert_int_eq(LOAD(&c, reason, "--por=1"), -EINVAL);
    ck_assert_str_eq(reason, "unknown option '--por=1' (see --help)");
    ck_assert_int_eq(LOAD(&c, reason, "--port-x=1"), -EINVAL);
    ck_assert_str_eq(reason, "unknown option '--port-x=1' (see --help)");
    ck_assert_int_eq(LOAD(&c, reason, "--PORT=1"), -EINVAL);
    ck_assert_int_eq(LOAD(&c, reason, "--"), -EINVAL);
    ck_assert_str_eq(reason, "unknown option '--' (see --help)");
    ck_assert_int_eq(LOAD(&c, reason, "--=1"), -EINVAL);
    /* positional arguments and short options other than -h */
    ck_assert_int_eq(LOAD(&c, reason, "8080"), -EINVAL);
    ck_assert_str_eq(reason, "unexpected argument '8080'");
    ck_assert_int_eq(LOAD(&c, reason, "-p"), -EINVAL);
    ck_assert_str_eq(reason, "unexpected argument '-p'");
    ck_assert_int_eq(LOAD(&c, reason, "-"), -EINVAL);
    /* a value missing at the end */
    ck_assert_int_eq(LOAD(&c, reason, "--port"), -EINVAL);
    ck_assert_str_eq(reason, "--port needs a value");
    ck_assert_int_eq(LOAD(&c, reason, "--host=::1", "--log-level"), -EINVAL);
    ck_assert_str_eq(reason, "--log-level needs a value");
    /* arguments are read in order: the first bad one is the reason */
    ck_assert_int_eq(LOAD(&c, reason, "--port=x", "--nope"), -EINVAL);
    ck_assert_str_eq(reason, "--port: " E_PORT " (got 'x')");
}
END_TEST

/* The reason is cut to its buffer, NUL-terminated, nothing written past. */
START_TEST(test_reason_cap)
{
    struct server_config c;
    char reason[32];
    char port[] = "--port=123456789";
    char *argv[] = {serve, port};
    bool help;

    memset(reason, 'Z', sizeof reason);
    ck_assert_int_eq(server_config_load(&c, 2, argv, stdout, &help, reason, 16),
                     -EINVAL);
    ck_assert_uint_eq(strlen(reason), 15);
    ck_assert(!strncmp(reason, "--port: expecte", 15));
    for (size_t i = 16; i < sizeof reason; i++)
        ck_assert_int_eq(reason[i], 'Z');
}
END_TEST

/* --- --help ------------------------------------------------------------- */

/* --help's text (new, caller frees) and what load returned. */
static char *help_text(const char *const *args, int *ret_rc, bool *ret_help)
{
    char *argv[8] = {serve};
    int argc = 1;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    struct server_config c;
    char reason[REASON_CAP];

    ck_assert_ptr_nonnull(out);
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)(uintptr_t)args[argc - 1];
    *ret_rc = server_config_load(&c, argc, argv, out, ret_help, reason,
                                 sizeof reason);
    fclose(out);
    return text;
}

START_TEST(test_help)
{
    static const char *const spellings[][4] = {
        {"--help", NULL},
        {"-h", NULL},
        /* good options before it do not matter */
        {"--port=1", "--help", NULL},
        /* nor do bad ones, before or after it */
        {"--help", "--nope", NULL},
        {"--port=x", "--nope", "-h", NULL},
    };

    for (size_t s = 0; s < sizeof spellings / sizeof spellings[0]; s++) {
        int rc;
        bool help = false;
        char *text = help_text(spellings[s], &rc, &help);
        char want[128];

        ck_assert_int_eq(rc, 0);
        ck_assert(help);
        ck_assert_ptr_nonnull(text);
        ck_assert(!strncmp(text, "usage: lossd serve [OPTIONS]\n", 29));
        /* every option with its variable, and --help itself */
        for (size_t i = 0; i < NOPTIONS; i++) {
            snprintf(want, sizeof want, "\n  --%s (%s), default ",
                     options[i].flag, options[i].env);
            ck_assert_msg(strstr(text, want) != NULL, "help lacks %s", want);
        }
        ck_assert_ptr_nonnull(strstr(text, "\n  --help, -h\n"));
        /* the defaults as described: not what flags or variables set */
        ck_assert_ptr_nonnull(strstr(text, "(LOSSD_PORT), default 8080\n"));
        ck_assert_ptr_nonnull(
            strstr(text, "(LOSSD_MAX_BODY_BYTES), default 64M (67108864)\n"));
        ck_assert_ptr_nonnull(
            strstr(text, "(LOSSD_LOG_LEVEL), default info\n"));
        free(text);
    }

    /* nor a bad variable in the environment (the fixture restores it) */
    {
        static const char *const args[] = {"--help", NULL};
        int rc;
        bool help = false;
        ck_assert_int_eq(setenv("LOSSD_PORT", "x", 1), 0);
        char *text = help_text(args, &rc, &help);
        ck_assert_int_eq(rc, 0);
        ck_assert(help);
        ck_assert_ptr_nonnull(strstr(text, "(LOSSD_PORT), default 8080\n"));
        free(text);
    }

    /* as many option lines as options: a new option needs a row above */
    {
        static const char *const args[] = {"--help", NULL};
        int rc;
        bool help;
        char *text = help_text(args, &rc, &help);
        size_t n = 0;

        for (const char *p = text; (p = strstr(p, "\n  --")) != NULL; p++)
            n++;
        ck_assert_uint_eq(n, NOPTIONS + 1); /* + --help */
        free(text);
    }
}
END_TEST

/* docs/configuration.md's table names the same flags and variables. */
START_TEST(test_docs_table)
{
    size_t len;
    char *doc = test_read_file(test_source_path("docs/configuration.md"), &len);
    size_t rows = 0;

    ck_assert_ptr_nonnull(doc);
    for (size_t i = 0; i < NOPTIONS; i++) {
        char want[128];

        snprintf(want, sizeof want, "| `--%s` | `%s` |", options[i].flag,
                 options[i].env);
        ck_assert_msg(strstr(doc, want) != NULL, "docs lack %s", want);
    }
    for (const char *p = doc; (p = strstr(p, "\n| `--")) != NULL; p++)
        rows++;
    ck_assert_uint_eq(rows, NOPTIONS);
    free(doc);
}
END_TEST

/* --- CORS origins ------------------------------------------------------- */

static bool allowed(const char *list, const char *origin)
{
    struct server_config c;

    server_config_default(&c);
    snprintf(c.cors_origins, sizeof c.cors_origins, "%s", list);
    return server_config_origin_allowed(&c, origin, strlen(origin));
}

START_TEST(test_origins)
{
    const char *two = "https://a.example,https://b.example:8443";
    struct server_config c;

    /* none by default: not even an empty origin */
    ck_assert(!allowed("", "https://a.example"));
    ck_assert(!allowed("", ""));
    /* * is any */
    ck_assert(allowed("*", "https://a.example"));
    ck_assert(allowed("*", "null"));
    ck_assert(allowed("https://a.example,*", "http://evil.example"));
    ck_assert(allowed("*, https://a.example", "http://evil.example"));
    /* a list matches exactly: scheme, host and port, case included */
    ck_assert(allowed(two, "https://a.example"));
    ck_assert(allowed(two, "https://b.example:8443"));
    ck_assert(!allowed(two, "https://b.example"));
    ck_assert(!allowed(two, "https://a.example:443"));
    ck_assert(!allowed(two, "http://a.example"));
    ck_assert(!allowed(two, "HTTPS://A.EXAMPLE"));
    ck_assert(!allowed(two, "https://a.exampl"));       /* a prefix */
    ck_assert(!allowed(two, "https://a.example.evil")); /* an extension */
    ck_assert(!allowed(two, "https://a.example,https://b.example:8443"));
    ck_assert(!allowed(two, ""));
    /* spaces after commas and empty elements are separators */
    ck_assert(
        allowed("https://a.example, https://b.example", "https://b.example"));
    ck_assert(allowed(",, https://a.example ,,", "https://a.example"));
    /* "*" inside a name is no wildcard */
    ck_assert(!allowed("https://*.example", "https://x.example"));
    ck_assert(!allowed("*.example", "https://x.example"));
    ck_assert(!allowed("**", "https://x.example"));
    ck_assert(allowed("https://*.example", "https://*.example"));

    /* only len bytes of origin count: it need not be NUL-terminated */
    server_config_default(&c);
    snprintf(c.cors_origins, sizeof c.cors_origins, "%s", two);
    ck_assert(server_config_origin_allowed(&c, "https://a.exampleZZ", 17));
    ck_assert(!server_config_origin_allowed(&c, "https://a.example", 16));
}
END_TEST

/* --- CPUs --------------------------------------------------------------- */

/*
 * At least 1, and never more than the affinity mask allows (a cgroup quota
 * only lowers it). Narrowing this thread's affinity to one CPU makes it 1
 * (and the defaults 2 threads, 1 worker); the mask is restored after.
 */
START_TEST(test_cpus)
{
    cpu_set_t set, one;
    size_t first = 0;
    struct server_config d;

    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    ck_assert_uint_ge(server_cpus_available(), 1);
    ck_assert_uint_le(server_cpus_available(), (size_t)CPU_COUNT(&set));

    while (!CPU_ISSET(first, &set))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    ck_assert_uint_eq(server_cpus_available(), 1);
    server_config_default(&d);
    ck_assert_uint_eq(d.threads, 2);
    ck_assert_uint_eq(d.workers, 1);
    ck_assert_int_eq(sched_setaffinity(0, sizeof set, &set), 0);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("server_config");
    TCase *tc = tcase_create("load");

    tcase_add_checked_fixture(tc, env_clear, env_restore);
    tcase_add_test(tc, test_defaults);
    tcase_add_loop_test(tc, test_good_values, 0,
                        (int)(sizeof good_cases / sizeof good_cases[0]));
    tcase_add_test(tc, test_flags_win);
    tcase_add_loop_test(tc, test_bad_values, 0,
                        (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_bad_combined);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_reason_cap);
    tcase_add_test(tc, test_help);
    tcase_add_test(tc, test_docs_table);
    suite_add_tcase(s, tc);

    tc = tcase_create("origins");
    tcase_add_test(tc, test_origins);
    suite_add_tcase(s, tc);

    tc = tcase_create("cpus");
    tcase_add_test(tc, test_cpus);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(config_suite());
}

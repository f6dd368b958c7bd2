/*
 * test_auth.c - server/auth.c: the token file (comments, blanks, limits,
 * what refuses to load), the Authorization header (scheme, blanks, tokens
 * of every length near a real one), a reload that succeeds and one that
 * keeps the tokens in force, and checks racing reloads on other threads.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "testutil.h"

#define REASON_CAP 512

/* A file of its own per test: written, then removed by the test. */
static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    ck_assert_int_eq(fclose(f), 0);
}

static void temp_path(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/lossd-test-auth-XXXXXX");
    int fd = mkstemp(buf);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static struct server_auth *load_text(const char *text, char *path, size_t cap)
{
    char reason[REASON_CAP];
    struct server_auth *a = NULL;
    temp_path(path, cap);
    write_file(path, text);
    int rc = server_auth_new(path, &a, reason, sizeof reason);
    ck_assert_msg(rc == 0, "%s", reason);
    return a;
}

START_TEST(test_file_format)
{
    char path[64];
    struct server_auth *a =
        load_text("# the tokens of lossd\n\n   \n  tok-a  \r\n\t# indented "
                  "comment\ntok-b\ntok/c+d=\n~last-without-newline",
                  path, sizeof path);
    ck_assert_uint_eq(server_auth_count(a), 4);
    ck_assert_str_eq(server_auth_path(a), path);
    ck_assert_int_eq(server_auth_check(a, "Bearer tok-a"), SERVER_AUTH_OK);
    ck_assert_int_eq(server_auth_check(a, "Bearer tok-b"), SERVER_AUTH_OK);
    ck_assert_int_eq(server_auth_check(a, "Bearer tok/c+d="), SERVER_AUTH_OK);
    ck_assert_int_eq(server_auth_check(a, "Bearer ~last-without-newline"),
                     SERVER_AUTH_OK);
    /* comments are not tokens, nor are their words */
    ck_assert_int_eq(server_auth_check(a, "Bearer #"), SERVER_AUTH_INVALID);
    ck_assert_int_eq(server_auth_check(a, "Bearer comment"),
                     SERVER_AUTH_INVALID);
    server_auth_free(a);
    unlink(path);
}
END_TEST

START_TEST(test_header)
{
    char path[64];
    struct server_auth *a = load_text("s3cret\n", path, sizeof path);
    ck_assert_int_eq(server_auth_check(a, NULL), SERVER_AUTH_MISSING);
    /* the scheme in any case, blanks around the token */
    ck_assert_int_eq(server_auth_check(a, "Bearer s3cret"), SERVER_AUTH_OK);
    ck_assert_int_eq(server_auth_check(a, "bearer s3cret"), SERVER_AUTH_OK);
    ck_assert_int_eq(server_auth_check(a, "BEARER   s3cret  "), SERVER_AUTH_OK);
    ck_assert_int_eq(server_auth_check(a, "Bearer\ts3cret"), SERVER_AUTH_OK);
    /* anything else is invalid, never a prefix or an extension */
    static const char *const bad[] = {
        "",
        "Bearer",
        "Bearer ",
        "Bearers3cret",
        "s3cret",
        "Basic s3cret",
        "Bearer s3cre",
        "Bearer s3cret2",
        "Bearer S3CRET",
        "Bearer s3cret x",
        "Token s3cret",
        "Bearer  ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(server_auth_check(a, bad[i]) == SERVER_AUTH_INVALID,
                      "'%s' was accepted", bad[i]);
    /* longer than any token can be: invalid, not a crash */
    static char longer[4 * SERVER_AUTH_TOKEN_MAX];
    memcpy(longer, "Bearer ", 7);
    memset(longer + 7, 'x', sizeof longer - 8);
    ck_assert_int_eq(server_auth_check(a, longer), SERVER_AUTH_INVALID);
    server_auth_free(a);
    unlink(path);
}
END_TEST

/* The longest token is accepted, and one byte more or less is not it. */
START_TEST(test_token_lengths)
{
    static char text[SERVER_AUTH_TOKEN_MAX + 2];
    static char hdr[SERVER_AUTH_TOKEN_MAX + 16];
    char path[64];
    memset(text, 'k', SERVER_AUTH_TOKEN_MAX);
    text[SERVER_AUTH_TOKEN_MAX] = '\n';
    struct server_auth *a = load_text(text, path, sizeof path);
    snprintf(hdr, sizeof hdr, "Bearer %.*s", SERVER_AUTH_TOKEN_MAX, text);
    ck_assert_int_eq(server_auth_check(a, hdr), SERVER_AUTH_OK);
    hdr[strlen(hdr) - 1] = '\0';
    ck_assert_int_eq(server_auth_check(a, hdr), SERVER_AUTH_INVALID);
    snprintf(hdr, sizeof hdr, "Bearer %.*sk", SERVER_AUTH_TOKEN_MAX, text);
    ck_assert_int_eq(server_auth_check(a, hdr), SERVER_AUTH_INVALID);
    server_auth_free(a);
    unlink(path);
}
END_TEST

/* What refuses to load, with the reason, which never quotes a token. */
START_TEST(test_bad_files)
{
    static const struct {
        const char *text;
        int rc;
        const char *reason;
    } cases[] = {
        {"", -ENODATA, "holds no token"},
        {"# only\n\n  \n", -ENODATA, "holds no token"},
        {"good\nsec ret\n", -EINVAL, "line 2: a token is visible ASCII"},
        {"caf\xc3\xa9\n", -EINVAL, "line 1: a token is visible ASCII"},
        {"a\x01z\n", -EINVAL, "line 1: a token is visible ASCII"},
    };
    char path[64], reason[REASON_CAP];
    struct server_auth *a = NULL;
    temp_path(path, sizeof path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].text);
        ck_assert_int_eq(server_auth_new(path, &a, reason, sizeof reason),
                         cases[i].rc);
        ck_assert_msg(strstr(reason, cases[i].reason), "%zu: %s", i, reason);
        ck_assert_ptr_nonnull(strstr(reason, path));
        ck_assert_ptr_null(strstr(reason, "sec "));
        ck_assert_ptr_null(a);
    }
    /* too long a token, too many tokens */
    static char text[SERVER_AUTH_TOKEN_MAX + 2];
    memset(text, 'k', SERVER_AUTH_TOKEN_MAX + 1);
    write_file(path, text);
    ck_assert_int_eq(server_auth_new(path, &a, reason, sizeof reason), -EINVAL);
    ck_assert_ptr_nonnull(strstr(reason, "line 1: a token is at most 256"));
    char many[(SERVER_AUTH_TOKENS_MAX + 1) * 8] = "";
    for (int i = 0; i <= SERVER_AUTH_TOKENS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "t%d\n", i);
    write_file(path, many);
    ck_assert_int_eq(server_auth_new(path, &a, reason, sizeof reason), -EINVAL);
    ck_assert_ptr_nonnull(strstr(reason, "more than 64 tokens"));
    /* a file that is not there, or not readable as one */
    unlink(path);
    ck_assert_int_eq(server_auth_new(path, &a, reason, sizeof reason), -ENOENT);
    ck_assert_ptr_nonnull(strstr(reason, "cannot open"));
    ck_assert_int_eq(server_auth_new("/", &a, reason, sizeof reason), -EISDIR);
    ck_assert_ptr_null(a);
}
END_TEST

START_TEST(test_reload)
{
    char path[64], reason[REASON_CAP];
    size_t n = 0;
    struct server_auth *a = load_text("old-1\nold-2\n", path, sizeof path);
    write_file(path, "# rotated\nnew-1\n");
    ck_assert_int_eq(server_auth_reload(a, &n, reason, sizeof reason), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(server_auth_count(a), 1);
    ck_assert_int_eq(server_auth_check(a, "Bearer old-1"), SERVER_AUTH_INVALID);
    ck_assert_int_eq(server_auth_check(a, "Bearer new-1"), SERVER_AUTH_OK);
    /* a failed reload keeps the tokens in force and says why */
    write_file(path, "\n# emptied by mistake\n");
    n = 99;
    ck_assert_int_eq(server_auth_reload(a, &n, reason, sizeof reason),
                     -ENODATA);
    ck_assert_uint_eq(n, 99);
    ck_assert_int_eq(server_auth_check(a, "Bearer new-1"), SERVER_AUTH_OK);
    unlink(path);
    ck_assert_int_eq(server_auth_reload(a, &n, reason, sizeof reason), -ENOENT);
    ck_assert_int_eq(server_auth_check(a, "Bearer new-1"), SERVER_AUTH_OK);
    ck_assert_uint_eq(server_auth_count(a), 1);
    server_auth_free(a);
    server_auth_free(NULL);
}
END_TEST

/* Checks on several threads while the main thread reloads between two
   files: every check sees one set or the other (the sanitizer build
   catches a set freed under a reader). */
struct racer {
    struct server_auth *a;
    atomic_bool *stop;
    size_t wrong;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(r->stop)) {
        /* "both" is in both files; "one" or "two" in one of them */
        if (server_auth_check(r->a, "Bearer both") != SERVER_AUTH_OK)
            r->wrong++;
        enum server_auth_result x = server_auth_check(r->a, "Bearer one");
        enum server_auth_result y = server_auth_check(r->a, "Bearer nope");
        if ((x != SERVER_AUTH_OK && x != SERVER_AUTH_INVALID) ||
            y != SERVER_AUTH_INVALID)
            r->wrong++;
    }
    return NULL;
}

START_TEST(test_reload_races_checks)
{
    char path[64], reason[REASON_CAP];
    atomic_bool stop = false;
    struct server_auth *a = load_text("both\none\n", path, sizeof path);
    struct racer rs[4];
    pthread_t th[4];
    for (size_t i = 0; i < 4; i++) {
        rs[i] = (struct racer){.a = a, .stop = &stop};
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    for (int i = 0; i < 300; i++) {
        size_t n;
        write_file(path, i % 2 ? "both\none\n" : "two\nboth\n");
        ck_assert_int_eq(server_auth_reload(a, &n, reason, sizeof reason), 0);
        ck_assert_uint_eq(n, 2);
    }
    atomic_store(&stop, true);
    for (size_t i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_uint_eq(rs[i].wrong, 0);
    }
    server_auth_free(a);
    unlink(path);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, test_file_format);
    tcase_add_test(tc, test_header);
    tcase_add_test(tc, test_token_lengths);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_reload);
    tcase_add_test(tc, test_reload_races_checks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(suite());
}

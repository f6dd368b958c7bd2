/*
 * auth.c - bearer tokens from a file, swapped on reload (auth.h).
 *
 * Swapping. HTTP threads read the token set for the few microseconds of a
 * comparison while the main thread may replace it on SIGHUP. The set is an
 * immutable block behind a pointer guarded by a reader-writer lock: a
 * check holds the read lock for its comparison, a reload builds the new
 * set outside the lock, takes the write lock only to swap the pointer, and
 * frees the old set once it holds that lock, when no check can still be
 * reading it. Readers never wait on each other; the lock prefers the
 * writer so that a steady stream of requests cannot starve a reload. A
 * reference count or a grace period over the request counter would avoid
 * the lock's shared cache line, but a reload is rare, the comparison is
 * cheap, and this is the version that is obviously right.
 *
 * Comparing. Each token is kept zero-padded to SERVER_AUTH_TOKEN_MAX bytes;
 * the presented token is padded the same way and compared with every token
 * over the full width, the lengths folded into the difference, without a
 * branch on the data: the time depends only on the number of tokens, not
 * on how much of a token an attacker has guessed.
 */
#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct token {
    size_t len;
    unsigned char b[SERVER_AUTH_TOKEN_MAX];
};

/* Immutable once published. */
struct token_set {
    size_t n;
    struct token t[];
};

struct server_auth {
    char *path;
    pthread_rwlock_t lock; /* guards set (the pointer) */
    struct token_set *set; /* never NULL once created */
};

/* The file's bytes, NUL-terminated, in *ret_text (new). */
static int read_file(const char *path, char **ret_text, size_t *ret_len,
                     char *reason, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(reason, cap, "cannot open '%s': %s", path, strerror(e));
        return -e;
    }
    char *buf = malloc(SERVER_AUTH_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        snprintf(reason, cap, "out of memory");
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, SERVER_AUTH_FILE_MAX + 1, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        snprintf(reason, cap, "cannot read '%s': %s", path, strerror(err));
        return -err;
    }
    if (n > SERVER_AUTH_FILE_MAX) {
        free(buf);
        snprintf(reason, cap, "'%s' is larger than %zu bytes", path,
                 SERVER_AUTH_FILE_MAX);
        return -EFBIG;
    }
    buf[n] = '\0';
    *ret_text = buf;
    *ret_len = n;
    return 0;
}

static bool blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* The tokens of text (len bytes) in a new *ret. Reasons name lines, never
   a token's bytes. */
static int parse(const char *path, const char *text, size_t len,
                 struct token_set **ret, char *reason, size_t cap)
{
    struct token_set *s =
        calloc(1, sizeof *s + SERVER_AUTH_TOKENS_MAX * sizeof s->t[0]);
    if (!s) {
        snprintf(reason, cap, "out of memory");
        return -ENOMEM;
    }
    size_t line = 0;
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && text[end] != '\n')
            end++;
        size_t a = i, b = end;
        i = end + 1;
        line++;
        while (a < b && blank(text[a]))
            a++;
        while (b > a && blank(text[b - 1]))
            b--;
        if (a == b || text[a] == '#')
            continue;
        for (size_t k = a; k < b; k++) {
            unsigned char ch = (unsigned char)text[k];
            if (ch <= 0x20 || ch >= 0x7f) {
                snprintf(reason, cap,
                         "'%s' line %zu: a token is visible ASCII without "
                         "spaces",
                         path, line);
                free(s);
                return -EINVAL;
            }
        }
        if (b - a > SERVER_AUTH_TOKEN_MAX) {
            snprintf(reason, cap,
                     "'%s' line %zu: a token is at most %d characters", path,
                     line, SERVER_AUTH_TOKEN_MAX);
            free(s);
            return -EINVAL;
        }
        if (s->n == SERVER_AUTH_TOKENS_MAX) {
            snprintf(reason, cap, "'%s': more than %d tokens", path,
                     SERVER_AUTH_TOKENS_MAX);
            free(s);
            return -EINVAL;
        }
        s->t[s->n].len = b - a;
        memcpy(s->t[s->n].b, text + a, b - a);
        s->n++;
    }
    if (s->n == 0) {
        snprintf(reason, cap,
                 "'%s' holds no token (blank lines and # comments only)", path);
        free(s);
        return -ENODATA;
    }
    *ret = s;
    return 0;
}

static int load(const char *path, struct token_set **ret, char *reason,
                size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, reason, cap);
    if (rc < 0)
        return rc;
    rc = parse(path, text, len, ret, reason, cap);
    /* the file's bytes are secrets: leave none in freed memory */
    explicit_bzero(text, len);
    free(text);
    return rc;
}

static void set_free(struct token_set *s)
{
    if (!s)
        return;
    explicit_bzero(s->t, s->n * sizeof s->t[0]);
    free(s);
}

int server_auth_new(const char *path, struct server_auth **ret,
                    char *ret_reason, size_t cap)
{
    struct server_auth *a = calloc(1, sizeof *a);
    char *p = strdup(path);
    struct token_set *s = NULL;
    int rc = -ENOMEM;
    pthread_rwlockattr_t attr;

    if (!a || !p) {
        snprintf(ret_reason, cap, "out of memory");
        goto out;
    }
    rc = load(path, &s, ret_reason, cap);
    if (rc < 0)
        goto out;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rc = -pthread_rwlock_init(&a->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc < 0) {
        snprintf(ret_reason, cap, "cannot create a lock: %s", strerror(-rc));
        goto out;
    }
    a->path = p;
    a->set = s;
    *ret = a;
    return 0;
out:
    set_free(s);
    free(p);
    free(a);
    return rc;
}

int server_auth_reload(struct server_auth *a, size_t *ret_count,
                       char *ret_reason, size_t cap)
{
    struct token_set *s = NULL;
    int rc = load(a->path, &s, ret_reason, cap);
    if (rc < 0)
        return rc;
    pthread_rwlock_wrlock(&a->lock);
    struct token_set *old = a->set;
    a->set = s;
    pthread_rwlock_unlock(&a->lock);
    /* no reader can hold old: each took the read lock to see it and
       released it before the write lock above was granted */
    set_free(old);
    *ret_count = s->n;
    return 0;
}

size_t server_auth_count(struct server_auth *a)
{
    pthread_rwlock_rdlock(&a->lock);
    size_t n = a->set->n;
    pthread_rwlock_unlock(&a->lock);
    return n;
}

const char *server_auth_path(const struct server_auth *a)
{
    return a->path;
}

/* Whether the zero-padded token p (plen bytes) is in s, in a time that
   depends on s->n only. */
static bool set_has(const struct token_set *s, const unsigned char *p,
                    size_t plen)
{
    unsigned found = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct token *t = &s->t[i];
        size_t d = t->len ^ plen;
        for (size_t k = 0; k < SERVER_AUTH_TOKEN_MAX; k++)
            d |= (size_t)(t->b[k] ^ p[k]);
        found |= (unsigned)(d == 0);
    }
    return found != 0;
}

enum server_auth_result server_auth_check(struct server_auth *a,
                                          const char *authorization)
{
    if (!authorization)
        return SERVER_AUTH_MISSING;
    const char *v = authorization;
    while (blank(*v))
        v++;
    if (strncasecmp(v, "Bearer", 6) != 0 || !blank(v[6]))
        return SERVER_AUTH_INVALID;
    v += 6;
    while (blank(*v))
        v++;
    size_t n = strlen(v);
    while (n > 0 && blank(v[n - 1]))
        n--;
    /* a length no token has says nothing about the tokens */
    if (n == 0 || n > SERVER_AUTH_TOKEN_MAX)
        return SERVER_AUTH_INVALID;
    unsigned char p[SERVER_AUTH_TOKEN_MAX] = {0};
    memcpy(p, v, n);
    pthread_rwlock_rdlock(&a->lock);
    bool ok = set_has(a->set, p, n);
    pthread_rwlock_unlock(&a->lock);
    explicit_bzero(p, sizeof p);
    return ok ? SERVER_AUTH_OK : SERVER_AUTH_INVALID;
}

void server_auth_free(struct server_auth *a)
{
    if (!a)
        return;
    pthread_rwlock_destroy(&a->lock);
    set_free(a->set);
    free(a->path);
    free(a);
}

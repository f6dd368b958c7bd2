/*
 * auth.h - the optional bearer-token authentication of `lossd serve`
 * (docs/security.md): the tokens of --auth-token-file, read at start and
 * again on SIGHUP, and the check of a request's Authorization header.
 *
 * The file holds one token per line; blank lines and lines whose first
 * non-blank character is '#' are ignored, as are blanks around a token. A
 * token is 1 to SERVER_AUTH_TOKEN_MAX visible ASCII characters without
 * spaces (RFC 6750's b64token and more). A file without any token is an
 * error: an operator who asked for authentication and got none would
 * otherwise serve everybody, or nobody, by mistake.
 *
 * Threads: server_auth_check() runs on any HTTP thread while the main
 * thread may replace the token set with server_auth_reload(); the set is
 * swapped under a lock (auth.c says why it is that simple).
 */
#ifndef LOSSD_SERVER_AUTH_H
#define LOSSD_SERVER_AUTH_H

#include <stddef.h>

#define SERVER_AUTH_TOKEN_MAX  256
#define SERVER_AUTH_TOKENS_MAX 64
#define SERVER_AUTH_FILE_MAX   ((size_t)1 << 20)

struct server_auth;

enum server_auth_result {
    SERVER_AUTH_OK,
    SERVER_AUTH_MISSING, /* no Authorization header */
    SERVER_AUTH_INVALID, /* another scheme, or a token not in the set */
};

/*
 * Reads the tokens of the file at path (copied) into a new *ret (free with
 * server_auth_free()). 0, or a negative errno with a one-line reason in
 * ret_reason (of size cap) that never quotes a token: -ENOENT, -EACCES, ...
 * when the file cannot be read, -EFBIG past SERVER_AUTH_FILE_MAX bytes,
 * -EINVAL for a bad line or too many tokens, -ENODATA when it holds none,
 * -ENOMEM.
 */
int server_auth_new(const char *path, struct server_auth **ret,
                    char *ret_reason, size_t cap);

/*
 * Reads the file again and, when it is good, replaces the token set and
 * writes its size to *ret_count; on failure the set in force stays and the
 * return and reason are server_auth_new()'s. One caller at a time (the
 * main thread); requests being checked meanwhile see the old set or the
 * new one, never a mix.
 */
int server_auth_reload(struct server_auth *a, size_t *ret_count,
                       char *ret_reason, size_t cap);

/* The number of tokens in force. */
size_t server_auth_count(struct server_auth *a);

/* The file's path, as given. */
const char *server_auth_path(const struct server_auth *a);

/*
 * Checks the value of an Authorization header (NULL: absent) against the
 * tokens in force: "Bearer" (any case), blanks, the token. The comparison
 * takes the same time whatever the token and wherever it differs. Any
 * thread.
 */
enum server_auth_result server_auth_check(struct server_auth *a,
                                          const char *authorization);

/* Frees a (NULL is fine). No check may be running. */
void server_auth_free(struct server_auth *a);

#endif

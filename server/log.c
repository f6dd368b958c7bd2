/*
 * log.c - per-thread log buffers flushed with one write each.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TBUF_CAP   65536
#define TBUF_FLUSH 16384 /* write as soon as this much is buffered */

/* One thread's buffer. mu guards len and data (the owner and flushers). */
struct tbuf {
    pthread_mutex_t mu;
    size_t len;
    char data[TBUF_CAP];
    struct tbuf *next; /* immutable once linked */
};

struct server_log {
    int fd;
    enum server_log_format format;
    enum server_log_level level;
    pthread_mutex_t list_mu; /* guards head; also serialises write(2) */
    struct tbuf *head;
    pthread_key_t key; /* the calling thread's tbuf */
};

struct server_log *server_log_new(int fd, enum server_log_format format,
                                  enum server_log_level level)
{
    struct server_log *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    if (pthread_key_create(&l->key, NULL) != 0) {
        free(l);
        return NULL;
    }
    l->fd = fd;
    l->format = format;
    l->level = level;
    pthread_mutex_init(&l->list_mu, NULL);
    return l;
}

/* Writes all of buf; gives up on errors other than EINTR. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Writes t's lines. Caller holds t->mu. */
static void tbuf_flush_locked(struct server_log *l, struct tbuf *t)
{
    if (t->len == 0)
        return;
    pthread_mutex_lock(&l->list_mu);
    write_all(l->fd, t->data, t->len);
    pthread_mutex_unlock(&l->list_mu);
    t->len = 0;
}

void server_log_flush(struct server_log *l)
{
    pthread_mutex_lock(&l->list_mu);
    struct tbuf *t = l->head;
    pthread_mutex_unlock(&l->list_mu);
    for (; t; t = t->next) {
        pthread_mutex_lock(&t->mu);
        tbuf_flush_locked(l, t);
        pthread_mutex_unlock(&t->mu);
    }
}

void server_log_free(struct server_log *l)
{
    if (!l)
        return;
    server_log_flush(l);
    struct tbuf *t = l->head;
    while (t) {
        struct tbuf *next = t->next;
        pthread_mutex_destroy(&t->mu);
        free(t);
        t = next;
    }
    pthread_key_delete(l->key);
    pthread_mutex_destroy(&l->list_mu);
    free(l);
}

/* The calling thread's buffer, created on first use; NULL if no memory. */
static struct tbuf *tbuf_get(struct server_log *l)
{
    struct tbuf *t = pthread_getspecific(l->key);
    if (t)
        return t;
    t = malloc(sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->len = 0;
    pthread_mutex_lock(&l->list_mu);
    t->next = l->head;
    l->head = t;
    pthread_mutex_unlock(&l->list_mu);
    pthread_setspecific(l->key, t);
    return t;
}

/* A line being built: fixed capacity, truncated (never overflowing). */
struct line {
    char s[4096];
    size_t len;
};

static void line_put(struct line *ln, const char *s, size_t n)
{
    if (n > sizeof ln->s - 2 - ln->len)
        n = sizeof ln->s - 2 - ln->len;
    memcpy(ln->s + ln->len, s, n);
    ln->len += n;
}

static void line_printf(struct line *ln, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void line_printf(struct line *ln, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    line_put(ln, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* s as a JSON string (quotes included); bytes >= 0x80 escaped as \u00XX
   so a line is valid JSON whatever the client sent. */
static void line_json_str(struct line *ln, const char *s)
{
    line_put(ln, "\"", 1);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            line_put(ln, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            line_printf(ln, "\\u%04x", c);
        } else {
            line_put(ln, (const char *)&c, 1);
        }
    }
    line_put(ln, "\"", 1);
}

/* A text value: printable ASCII, others as \xNN, spaces as %20. */
static void line_text_str(struct line *ln, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == '\\')
            line_printf(ln, "\\x%02x", c);
        else
            line_put(ln, (const char *)&c, 1);
    }
}

static void line_time(struct line *ln)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char b[64];
    size_t n = strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(b + n, sizeof b - n, ".%03ldZ", ts.tv_nsec / 1000000);
    line_put(ln, b, strlen(b));
}

static const char *const level_str[] = {"debug", "info", "warn", "error"};

static void emit(struct server_log *l, struct line *ln)
{
    ln->s[ln->len++] = '\n';
    struct tbuf *t = tbuf_get(l);
    if (!t) {
        pthread_mutex_lock(&l->list_mu);
        write_all(l->fd, ln->s, ln->len);
        pthread_mutex_unlock(&l->list_mu);
        return;
    }
    pthread_mutex_lock(&t->mu);
    if (t->len + ln->len > TBUF_CAP)
        tbuf_flush_locked(l, t);
    memcpy(t->data + t->len, ln->s, ln->len);
    t->len += ln->len;
    if (t->len >= TBUF_FLUSH)
        tbuf_flush_locked(l, t);
    pthread_mutex_unlock(&t->mu);
}

void server_log_access(struct server_log *l, const struct server_access *a)
{
    if (l->level > SERVER_LOG_INFO)
        return;
    struct line ln = {.len = 0};
    if (l->format == SERVER_LOG_JSON) {
        line_put(&ln, "{\"time\":\"", 9);
        line_time(&ln);
        line_printf(&ln, "\",\"level\":\"info\",\"event\":\"access\","
                         "\"request_id\":");
        line_json_str(&ln, a->request_id);
        line_put(&ln, ",\"method\":", 10);
        line_json_str(&ln, a->method);
        line_put(&ln, ",\"path\":", 8);
        line_json_str(&ln, a->path);
        line_printf(&ln,
                    ",\"status\":%d,\"bytes_in\":%zu,\"bytes_out\":%zu,"
                    "\"duration\":%.6f",
                    a->status, a->bytes_in, a->bytes_out, a->duration);
        if (a->queue_wait >= 0)
            line_printf(&ln, ",\"queue_wait\":%.6f", a->queue_wait);
        if (a->loss) {
            line_put(&ln, ",\"loss\":", 8);
            line_json_str(&ln, a->loss);
        }
        line_put(&ln, "}", 1);
    } else {
        line_time(&ln);
        line_printf(&ln, " info access request_id=");
        line_text_str(&ln, a->request_id);
        line_put(&ln, " method=", 8);
        line_text_str(&ln, a->method);
        line_put(&ln, " path=", 6);
        line_text_str(&ln, a->path);
        line_printf(&ln, " status=%d bytes_in=%zu bytes_out=%zu duration=%.6f",
                    a->status, a->bytes_in, a->bytes_out, a->duration);
        if (a->queue_wait >= 0)
            line_printf(&ln, " queue_wait=%.6f", a->queue_wait);
        if (a->loss) {
            line_put(&ln, " loss=", 6);
            line_text_str(&ln, a->loss);
        }
    }
    emit(l, &ln);
}

void server_log_event(struct server_log *l, enum server_log_level level,
                      const char *event, const char *fmt, ...)
{
    if (level < l->level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct line ln = {.len = 0};
    if (l->format == SERVER_LOG_JSON) {
        line_put(&ln, "{\"time\":\"", 9);
        line_time(&ln);
        line_printf(&ln, "\",\"level\":\"%s\",\"event\":", level_str[level]);
        line_json_str(&ln, event);
        line_put(&ln, ",\"msg\":", 7);
        line_json_str(&ln, msg);
        line_put(&ln, "}", 1);
    } else {
        line_time(&ln);
        line_printf(&ln, " %s %s %s", level_str[level], event, msg);
    }
    emit(l, &ln);
    /* events are rare and matter (startup, shutdown): write at once */
    struct tbuf *t = pthread_getspecific(l->key);
    if (t) {
        pthread_mutex_lock(&t->mu);
        tbuf_flush_locked(l, t);
        pthread_mutex_unlock(&t->mu);
    }
}

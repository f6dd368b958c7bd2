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
    while (s && *s) {
        /* printable ASCII but '"' and '\\' is copied as it is, at once */
        size_t run = 0;
        while ((unsigned char)(s[run] - 0x20) < 0x5f && s[run] != '"' &&
               s[run] != '\\')
            run++;
        line_put(ln, s, run);
        s += run;
        if (!*s)
            break;
        unsigned char c = (unsigned char)*s++;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            line_put(ln, e, 2);
        } else {
            line_printf(ln, "\\u%04x", c);
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

#define LINE_LIT(ln, lit) line_put((ln), (lit), sizeof(lit) - 1)

/* Appends v in decimal (a status, a byte count: no printf per request). */
static void line_uint(struct line *ln, unsigned long long v)
{
    char b[24];
    size_t k = sizeof b;

    do
        b[--k] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    line_put(ln, b + k, sizeof b - k);
}

/* Appends v as exactly `width` decimal digits (zero-padded). */
static void line_digits(struct line *ln, unsigned long long v, int width)
{
    char b[24];

    for (int i = width; i-- > 0; v /= 10)
        b[i] = (char)('0' + v % 10);
    line_put(ln, b, (size_t)width);
}

/*
 * "2026-11-29T12:56:44.307Z". Written digit by digit, and the part up to the
 * seconds only when the second changes (per thread): strftime, snprintf and
 * gmtime_r per line were a measurable part of a small request's CPU
 * (bench/README.md, "Where a small request's CPU goes").
 */
static void line_time(struct line *ln)
{
    static _Thread_local time_t last_sec = -1;
    static _Thread_local char last[19]; /* "2026-11-29T12:56:44" */
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != last_sec) {
        struct line tmp;
        struct tm tm;

        gmtime_r(&ts.tv_sec, &tm);
        tmp.len = 0;
        line_digits(&tmp, (unsigned long long)tm.tm_year + 1900, 4);
        line_put(&tmp, "-", 1);
        line_digits(&tmp, (unsigned long long)tm.tm_mon + 1, 2);
        line_put(&tmp, "-", 1);
        line_digits(&tmp, (unsigned long long)tm.tm_mday, 2);
        line_put(&tmp, "T", 1);
        line_digits(&tmp, (unsigned long long)tm.tm_hour, 2);
        line_put(&tmp, ":", 1);
        line_digits(&tmp, (unsigned long long)tm.tm_min, 2);
        line_put(&tmp, ":", 1);
        line_digits(&tmp, (unsigned long long)tm.tm_sec, 2);
        memcpy(last, tmp.s, sizeof last);
        last_sec = ts.tv_sec;
    }
    line_put(ln, last, sizeof last);
    line_put(ln, ".", 1);
    line_digits(ln, (unsigned long long)(ts.tv_nsec / 1000000), 3);
    line_put(ln, "Z", 1);
}

/* Seconds with microsecond resolution ("0.000102"), as %.6f writes them. */
static void line_seconds(struct line *ln, double sec)
{
    unsigned long long us;
    char b[24];
    int n = 0;

    if (!(sec >= 0.0) || sec > 1e12) { /* NaN or absurd: leave it to printf */
        line_printf(ln, "%.6f", sec);
        return;
    }
    us = (unsigned long long)(sec * 1e6 + 0.5);
    for (unsigned long long whole = us / 1000000; n == 0 || whole; whole /= 10)
        b[n++] = (char)('0' + whole % 10);
    for (int i = 0; i < n / 2; i++) {
        char t = b[i];

        b[i] = b[n - 1 - i];
        b[n - 1 - i] = t;
    }
    line_put(ln, b, (size_t)n);
    line_put(ln, ".", 1);
    line_digits(ln, us % 1000000, 6);
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
    struct line ln;

    ln.len = 0; /* not = {0}: that clears 4 KiB per line */
    if (l->format == SERVER_LOG_JSON) {
        line_put(&ln, "{\"time\":\"", 9);
        line_time(&ln);
        LINE_LIT(&ln, "\",\"level\":\"info\",\"event\":\"access\","
                      "\"request_id\":");
        line_json_str(&ln, a->request_id);
        line_put(&ln, ",\"method\":", 10);
        line_json_str(&ln, a->method);
        line_put(&ln, ",\"path\":", 8);
        line_json_str(&ln, a->path);
        LINE_LIT(&ln, ",\"status\":");
        line_uint(&ln, (unsigned)a->status);
        LINE_LIT(&ln, ",\"bytes_in\":");
        line_uint(&ln, a->bytes_in);
        LINE_LIT(&ln, ",\"bytes_out\":");
        line_uint(&ln, a->bytes_out);
        LINE_LIT(&ln, ",\"duration\":");
        line_seconds(&ln, a->duration);
        if (a->queue_wait >= 0) {
            line_put(&ln, ",\"queue_wait\":", 14);
            line_seconds(&ln, a->queue_wait);
        }
        if (a->loss) {
            line_put(&ln, ",\"loss\":", 8);
            line_json_str(&ln, a->loss);
        }
        line_put(&ln, "}", 1);
    } else {
        line_time(&ln);
        LINE_LIT(&ln, " info access request_id=");
        line_text_str(&ln, a->request_id);
        line_put(&ln, " method=", 8);
        line_text_str(&ln, a->method);
        line_put(&ln, " path=", 6);
        line_text_str(&ln, a->path);
        LINE_LIT(&ln, " status=");
        line_uint(&ln, (unsigned)a->status);
        LINE_LIT(&ln, " bytes_in=");
        line_uint(&ln, a->bytes_in);
        LINE_LIT(&ln, " bytes_out=");
        line_uint(&ln, a->bytes_out);
        LINE_LIT(&ln, " duration=");
        line_seconds(&ln, a->duration);
        if (a->queue_wait >= 0) {
            LINE_LIT(&ln, " queue_wait=");
            line_seconds(&ln, a->queue_wait);
        }
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
    struct line ln;

    ln.len = 0; /* not = {0}: that clears 4 KiB per line */
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

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

#include "encode.h"
#include "number.h"

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

/*
 * A line being built: fixed capacity, the newline included. Strings from
 * the client are cut to a room of their own (their JSON text, quotes
 * included), with PROTO_STRING_CUT at the end, so that every line is whole
 * and valid JSON whatever was sent; the rooms and the rest of a line fit in
 * LINE_CAP, which the static assertion below holds.
 */
#define LINE_CAP 4096

enum {
    /* http.c keeps 128 visible ASCII characters of an id, 15 bytes of a
       method, 255 of a path (1532 escaped at worst): none is cut, but
       these rooms hold any string */
    ID_ROOM = 300,
    METHOD_ROOM = 300,
    LOSS_ROOM = 300, /* names from the registry */
    PATH_ROOM = 2688,
    EVENT_ROOM = 300,
    MSG_ROOM = 3072,
    /* the rest of an access line: names, time, level, three integers of
       at most 20 digits, two seconds of at most 32 bytes, the newline
       (about 300 bytes) */
    FIXED_ROOM = 400,
};

_Static_assert(FIXED_ROOM + ID_ROOM + METHOD_ROOM + PATH_ROOM + LOSS_ROOM <=
                   LINE_CAP - 2,
               "an access line fits");
_Static_assert(FIXED_ROOM + EVENT_ROOM + MSG_ROOM <= LINE_CAP - 2,
               "an event line fits");

struct line {
    char s[LINE_CAP];
    size_t len;
};

/* Room left, keeping one byte for the newline and one spare. */
static size_t line_room(const struct line *ln)
{
    return sizeof ln->s - 2 - ln->len;
}

static void line_put(struct line *ln, const char *s, size_t n)
{
    if (n > line_room(ln))
        n = line_room(ln);
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

/* s (NULL: empty) as a JSON string in at most room bytes: proto's writer,
   the one of the documents (encode.h), cut with its marker. */
static void line_json_str(struct line *ln, const char *s, size_t room)
{
    if (room > line_room(ln))
        room = line_room(ln);
    ln->len += proto_write_string_bounded(ln->s + ln->len, room, s ? s : "",
                                          s ? strlen(s) : 0);
}

/* Whether a text line writes c as \xNN: controls, DEL, non-ASCII and the
   backslash always; the space too in a value (so a value is one word), not
   in a message. */
static bool text_escaped(unsigned char c, bool spaces)
{
    return c < 0x20 || c >= 0x7f || c == '\\' || (c == ' ' && !spaces);
}

/*
 * A text value (spaces escaped) or message (spaces kept) in at most room
 * bytes: printable ASCII as it is, other bytes as \xNN, so a line is one
 * line; cut at a whole byte's text with PROTO_STRING_CUT.
 */
static void line_text_str(struct line *ln, const char *s, size_t room,
                          bool spaces)
{
    const size_t cut = sizeof(PROTO_STRING_CUT) - 1;
    size_t need = 0, n = s ? strlen(s) : 0;

    for (size_t i = 0; i < n; i++)
        need += text_escaped((unsigned char)s[i], spaces) ? 4 : 1;
    if (room > line_room(ln))
        room = line_room(ln);
    bool shorten = need > room;
    size_t limit = !shorten ? room : room > cut ? room - cut : 0;

    for (size_t i = 0, used = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool esc = text_escaped(c, spaces);

        if (used + (esc ? 4 : 1) > limit)
            break;
        if (esc)
            line_printf(ln, "\\x%02x", c);
        else
            line_put(ln, (const char *)&c, 1);
        used += esc ? 4 : 1;
    }
    if (shorten && room >= cut)
        line_put(ln, PROTO_STRING_CUT, cut);
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

    if (!(sec >= 0.0) || sec > 1e12) {
        /* negative, NaN or absurd: as the documents write a double, which
           is valid JSON ("NaN" a string) and at most 32 bytes */
        char tmp[PROTO_DOUBLE_MAX];

        line_put(ln, tmp, proto_format_double(sec, tmp));
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
        line_json_str(&ln, a->request_id, ID_ROOM);
        line_put(&ln, ",\"method\":", 10);
        line_json_str(&ln, a->method, METHOD_ROOM);
        line_put(&ln, ",\"path\":", 8);
        line_json_str(&ln, a->path, PATH_ROOM);
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
            line_json_str(&ln, a->loss, LOSS_ROOM);
        }
        line_put(&ln, "}", 1);
    } else {
        line_time(&ln);
        LINE_LIT(&ln, " info access request_id=");
        line_text_str(&ln, a->request_id, ID_ROOM, false);
        line_put(&ln, " method=", 8);
        line_text_str(&ln, a->method, METHOD_ROOM, false);
        line_put(&ln, " path=", 6);
        line_text_str(&ln, a->path, PATH_ROOM, false);
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
            line_text_str(&ln, a->loss, LOSS_ROOM, false);
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
        line_json_str(&ln, event, EVENT_ROOM);
        line_put(&ln, ",\"msg\":", 7);
        line_json_str(&ln, msg, MSG_ROOM);
        line_put(&ln, "}", 1);
    } else {
        line_time(&ln);
        line_printf(&ln, " %s ", level_str[level]);
        line_text_str(&ln, event, EVENT_ROOM, false);
        line_put(&ln, " ", 1);
        line_text_str(&ln, msg, MSG_ROOM, true);
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

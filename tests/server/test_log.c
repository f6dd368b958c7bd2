/*
 * test_log.c - server/log.c: access and event lines in both formats,
 * written to a pipe or a temporary file and read back. JSON lines are
 * parsed by jansson (which refuses raw control characters in strings), so
 * "valid JSON" is checked by a real parser. Also: the level filter, when
 * buffered lines reach the descriptor, and whole lines from many threads
 * at once.
 *
 * Every byte value, random bytes and fields far longer than a line go
 * through every logged string: each line stays one valid JSON object of at
 * most 4 KiB, valid UTF-8 comes back unchanged, a byte that starts no
 * UTF-8 character comes back as U+FFFD, and a field cut for room ends in
 * PROTO_STRING_CUT.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "encode.h"
#include "log.h"
#include "testutil.h"

/* The longest line log.c writes, newline included. */
#define LINE_MAX_BYTES 4096

/* --- helpers ------------------------------------------------------------ */

/* A temporary file's descriptor (unlinked: gone when closed). */
static int temp_fd(void)
{
    FILE *f = tmpfile();
    int fd;

    ck_assert_ptr_nonnull(f);
    fd = dup(fileno(f));
    fclose(f);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* Everything in the file of fd (new, NUL-terminated, caller frees). */
static char *file_text(int fd, size_t *ret_len)
{
    struct stat st;
    char *s;
    size_t got = 0;

    ck_assert_int_eq(fstat(fd, &st), 0);
    s = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(s);
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, s + got, (size_t)st.st_size - got, (off_t)got);

        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    s[got] = '\0';
    if (ret_len)
        *ret_len = got;
    return s;
}

/* What a non-blocking pipe holds now (0 when empty), appended to buf. */
static size_t pipe_drain(int fd, char *buf, size_t cap)
{
    size_t got = 0;

    for (;;) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);

        if (n < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            break;
        }
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
        ck_assert_uint_lt(got, cap - 1);
    }
    buf[got] = '\0';
    return got;
}

static void nonblocking_pipe(int fds[2])
{
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Cuts text into its lines (newlines become NULs); how many. */
static size_t split_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;

    for (char *p = text; *p; n++) {
        char *nl = strchr(p, '\n');

        ck_assert_ptr_nonnull(nl);
        ck_assert_uint_lt(n, max);
        lines[n] = p;
        *nl = '\0';
        p = nl + 1;
    }
    return n;
}

/* The one JSON object of a line (len bytes, no newline); fails the test
   if it is not exactly one. */
static json_t *parse_line(const char *line, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(line, len, 0, &err);

    /* at most 300 bytes of the line: Check's messages are bounded */
    ck_assert_msg(j != NULL, "not JSON (%s): %.*s", err.text,
                  (int)(len < 300 ? len : 300), line);
    ck_assert(json_is_object(j));
    return j;
}

/*
 * "YYYY-MM-DDTHH:MM:SS.mmmZ", UTC, within a minute of now (a loaded
 * machine may take that long between the write and the check).
 */
static void check_time(const char *t)
{
    struct tm tm;
    int ms = -1;
    char z = 0;
    time_t now = time(NULL), when;

    ck_assert_uint_eq(strlen(t), 24);
    ck_assert_int_eq(sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &tm.tm_year,
                            &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                            &tm.tm_sec, &ms, &z),
                     8);
    ck_assert_int_eq(z, 'Z');
    ck_assert(ms >= 0 && ms <= 999);
    ck_assert(t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' &&
              t[16] == ':' && t[19] == '.');
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = 0;
    when = timegm(&tm);
    ck_assert_msg(when >= now - 60 && when <= now + 1, "time %s", t);
}

static const char *str_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

static json_int_t int_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

static double real_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_number(v), "%s is not a number", key);
    return json_number_value(v);
}

/* --- JSON --------------------------------------------------------------- */

/* An access line carries every field, typed; optional ones only when set. */
START_TEST(test_access_json)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_INFO);
    const struct server_access full = {
        .request_id = "req-1",
        .method = "POST",
        .path = "/v1/mse",
        .status = 200,
        .bytes_in = 123,
        .bytes_out = (size_t)1 << 40, /* past 32 bits */
        .duration = 0.000102,
        .queue_wait = 0.25,
        .loss = "mse",
    };
    const struct server_access bare = {
        .request_id = "req-2",
        .method = "GET",
        .path = "/nope",
        .status = 404,
        .duration = 1.5,
        .queue_wait = -1, /* never queued: no field */
        .loss = NULL,     /* no loss: no field */
    };
    char *text, *nl;
    json_t *j;

    ck_assert_ptr_nonnull(l);
    server_log_access(l, &full);
    server_log_access(l, &bare);
    server_log_free(l); /* flushes */
    text = file_text(fd, NULL);
    ck_assert_uint_eq(count_lines(text), 2);

    nl = strchr(text, '\n');
    j = parse_line(text, (size_t)(nl - text));
    ck_assert_uint_eq(json_object_size(j), 12);
    check_time(str_of(j, "time"));
    ck_assert_str_eq(str_of(j, "level"), "info");
    ck_assert_str_eq(str_of(j, "event"), "access");
    ck_assert_str_eq(str_of(j, "request_id"), "req-1");
    ck_assert_str_eq(str_of(j, "method"), "POST");
    ck_assert_str_eq(str_of(j, "path"), "/v1/mse");
    ck_assert_int_eq(int_of(j, "status"), 200);
    ck_assert_int_eq(int_of(j, "bytes_in"), 123);
    ck_assert_int_eq(int_of(j, "bytes_out"), (json_int_t)1 << 40);
    /* seconds to the microsecond */
    ck_assert(real_of(j, "duration") == 0.000102);
    ck_assert(real_of(j, "queue_wait") == 0.25);
    ck_assert_str_eq(str_of(j, "loss"), "mse");
    /* the order of the fields is fixed: time first, for people and sort */
    ck_assert(!strncmp(text, "{\"time\":\"", 9));
    ck_assert_ptr_nonnull(strstr(text, "\"duration\":0.000102,"));
    json_decref(j);

    j = parse_line(nl + 1, strlen(nl + 1) - 1);
    ck_assert_uint_eq(json_object_size(j), 10);
    ck_assert_int_eq(int_of(j, "status"), 404);
    ck_assert_int_eq(int_of(j, "bytes_in"), 0);
    ck_assert(real_of(j, "duration") == 1.5);
    ck_assert_ptr_null(json_object_get(j, "queue_wait"));
    ck_assert_ptr_null(json_object_get(j, "loss"));
    json_decref(j);
    free(text);
    close(fd);
}
END_TEST

/* An event line: time, level, event and the formatted message. */
START_TEST(test_event_json)
{
    int fd = temp_fd();
    struct server_log *l =
        server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_DEBUG);
    static const char *const names[] = {"debug", "info", "warn", "error"};
    static const char *const events[] = {"tick", "start", "abandoned", "bind"};
    static const char *const msgs[] = {"n=1", "listening on 127.0.0.1:8080",
                                       "3 jobs", "address in use"};
    char *text;
    const char *p;
    size_t i = 0;

    server_log_event(l, SERVER_LOG_DEBUG, "tick", "n=%d", 1);
    server_log_event(l, SERVER_LOG_INFO, "start", "listening on %s:%u",
                     "127.0.0.1", 8080u);
    server_log_event(l, SERVER_LOG_WARN, "abandoned", "%zu jobs", (size_t)3);
    server_log_event(l, SERVER_LOG_ERROR, "bind", "%s", "address in use");
    server_log_free(l);
    text = file_text(fd, NULL);
    ck_assert_uint_eq(count_lines(text), 4);
    for (p = text; *p; i++) {
        const char *nl = strchr(p, '\n');
        json_t *j = parse_line(p, (size_t)(nl - p));

        ck_assert_uint_eq(json_object_size(j), 4);
        check_time(str_of(j, "time"));
        ck_assert_str_eq(str_of(j, "level"), names[i]);
        ck_assert_str_eq(str_of(j, "event"), events[i]);
        ck_assert_str_eq(str_of(j, "msg"), msgs[i]);
        json_decref(j);
        p = nl + 1;
    }
    free(text);
    close(fd);
}
END_TEST

/*
 * Every ASCII byte (1 to 127) in the path, request id, method, event name
 * and message: each line is valid JSON and decodes to the very bytes given
 * (quotes and backslashes escaped, control characters as \u00XX, DEL as
 * is or escaped: both are valid JSON).
 */
START_TEST(test_json_escaping)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_INFO);
    char all[128];
    static const char *const tricky[] = {
        "\"",         "\\",           "\\\"",    "\"}\n{\"x\":1",
        "a\nb\rc\td", "\x01\x1f\x7f", "\\u0041", "/v1/mse\" \"status\":500",
        "",
    };
    struct server_access a = {
        .request_id = "r", .method = "GET", .status = 200, .queue_wait = -1};
    char *text;
    const char *p;
    size_t line = 0;

    for (int c = 1; c < 128; c++)
        all[c - 1] = (char)c;
    all[127] = '\0';
    a.path = all;
    a.request_id = all;
    a.method = all;
    a.loss = all;
    server_log_access(l, &a);
    server_log_event(l, SERVER_LOG_INFO, all, "%s", all);
    for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
        a.path = a.request_id = a.method = a.loss = tricky[i];
        server_log_access(l, &a);
        server_log_event(l, SERVER_LOG_WARN, tricky[i], "%s", tricky[i]);
    }
    server_log_free(l);
    text = file_text(fd, NULL);
    ck_assert_uint_eq(count_lines(text),
                      2 + 2 * (sizeof tricky / sizeof *tricky));
    for (p = text; *p; line++) {
        const char *nl = strchr(p, '\n');
        const char *want = line < 2 ? all : tricky[(line - 2) / 2];
        json_t *j = parse_line(p, (size_t)(nl - p));

        if (line % 2 == 0) {
            ck_assert_str_eq(str_of(j, "path"), want);
            ck_assert_str_eq(str_of(j, "request_id"), want);
            ck_assert_str_eq(str_of(j, "method"), want);
            ck_assert_str_eq(str_of(j, "loss"), want);
            /* an injected "status" in the path stays in the path */
            ck_assert_int_eq(int_of(j, "status"), 200);
        } else {
            ck_assert_str_eq(str_of(j, "event"), want);
            ck_assert_str_eq(str_of(j, "msg"), want);
        }
        json_decref(j);
        p = nl + 1;
    }
    free(text);
    close(fd);
}
END_TEST

/* A missing request id or method is an empty string, not a crash. */
START_TEST(test_json_null_strings)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_INFO);
    const struct server_access a = {.status = 400, .queue_wait = -1};
    char *text;
    size_t len;
    json_t *j;

    server_log_access(l, &a);
    server_log_free(l);
    text = file_text(fd, &len);
    j = parse_line(text, len - 1);
    ck_assert_str_eq(str_of(j, "request_id"), "");
    ck_assert_str_eq(str_of(j, "method"), "");
    ck_assert_str_eq(str_of(j, "path"), "");
    json_decref(j);
    free(text);
    close(fd);
}
END_TEST

/*
 * Seconds in "%.6f"'s form (digits, a point, six digits), rounded to the
 * microsecond: fixed values at rounding edges and seeded random ones over
 * the ranges a request takes. log.c rounds by hand (sec * 1e6 + 0.5), so
 * where the double lies within rounding error of a half microsecond it may
 * round the other way from printf (0.0009995 is 0.00099949999... in binary:
 * printf writes 0.000999, log.c 0.001000); the value is then still within
 * half a microsecond, which is all the test asks.
 */
START_TEST(test_seconds)
{
    static const double fixed[] = {
        0,        1e-7,      4.9e-7,    5.1e-7,
        0.000102, 0.0009995, 0.00123,   0.5,
        1,        1.5,       59.999999, 59.9999996,
        3600.25,  86400.5,   1e6,       1e9 + 0.123456,
    };
    enum { NRANDOM = 600 };
    double values[sizeof fixed / sizeof fixed[0] + NRANDOM];
    size_t n = 0;
    struct test_rng rng;
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_INFO);
    char *text;
    const char *p;

    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        values[n++] = fixed[i];
    test_rng_seed(&rng, 20240601);
    for (int i = 0; i < NRANDOM; i++)
        values[n++] = test_rng_uniform(&rng) * (i % 3 == 0   ? 1e-3
                                                : i % 3 == 1 ? 1
                                                             : 1000);
    for (size_t i = 0; i < n; i++) {
        const struct server_access a = {.request_id = "r",
                                        .method = "GET",
                                        .path = "/",
                                        .status = 200,
                                        .duration = values[i],
                                        .queue_wait = values[i]};

        server_log_access(l, &a);
    }
    server_log_free(l);
    text = file_text(fd, NULL);
    p = text;
    for (size_t i = 0; i < n; i++) {
        const char *d = strstr(p, "\"duration\":");
        size_t whole, frac;
        double got;

        ck_assert_ptr_nonnull(d);
        d += strlen("\"duration\":");
        whole = strspn(d, "0123456789");
        frac = strspn(d + whole + 1, "0123456789");
        ck_assert_msg(whole > 0 && d[whole] == '.' && frac == 6 &&
                          d[whole + 1 + frac] == ',',
                      "%.17g: %.40s", values[i], d);
        ck_assert_msg(whole == 1 || d[0] != '0', "leading zero: %.40s", d);
        got = strtod(d, NULL);
        /* half a microsecond, and a little for the double's own rounding
           (its ulp is 1.2e-7 at 1e9) */
        ck_assert_msg(fabs(got - values[i]) <= 0.6e-6, "%.17g: %.40s",
                      values[i], d);
        /* queue_wait the same way */
        ck_assert(!strncmp(d + whole + 1 + frac, ",\"queue_wait\":", 14));
        ck_assert(!strncmp(d + whole + 1 + frac + 14, d, whole + 1 + frac));
        p = strchr(d, '\n') + 1;
    }
    free(text);
    close(fd);
}
END_TEST

/* --- text --------------------------------------------------------------- */

START_TEST(test_text)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_TEXT, SERVER_LOG_INFO);
    const struct server_access a = {
        .request_id = "req-1",
        .method = "POST",
        .path = "/v1/mse",
        .status = 200,
        .bytes_in = 10,
        .bytes_out = 20,
        .duration = 0.000102,
        .queue_wait = 0.000003,
        .loss = "mse",
    };
    /* spaces, controls, backslashes and DEL never come out raw (as \xNN):
       a value is one word, and a line one line */
    const struct server_access odd = {
        .request_id = "a b",
        .method = "G\tET",
        .path = "/x\ny\\z\x7f\"q\"",
        .status = 404,
        .duration = 1,
        .queue_wait = -1,
    };
    static const char *const want[] = {
        " info access request_id=req-1 method=POST path=/v1/mse status=200 "
        "bytes_in=10 bytes_out=20 duration=0.000102 queue_wait=0.000003 "
        "loss=mse",
        " info access request_id=a\\x20b method=G\\x09ET "
        "path=/x\\x0ay\\x5cz\\x7f\"q\" status=404 bytes_in=0 bytes_out=0 "
        "duration=1.000000",
        " warn drain in 5 s",
    };
    char *text, *lines[4];

    server_log_access(l, &a);
    server_log_access(l, &odd);
    server_log_event(l, SERVER_LOG_WARN, "drain", "in %d s", 5);
    server_log_free(l);
    text = file_text(fd, NULL);
    ck_assert_uint_eq(split_lines(text, lines, 4), 3);
    for (size_t i = 0; i < 3; i++) {
        /* "TIME LEVEL EVENT ...": the time, then the rest */
        ck_assert_uint_gt(strlen(lines[i]), 24);
        ck_assert_str_eq(lines[i] + 24, want[i]);
        lines[i][24] = '\0';
        check_time(lines[i]);
    }
    free(text);
    close(fd);
}
END_TEST

/* --- levels ------------------------------------------------------------- */

/*
 * At level L, events of level >= L are written; access lines are level
 * info, so they go from debug and info and not from warn or error.
 */
START_TEST(test_levels)
{
    const enum server_log_level level = (enum server_log_level)_i;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    const struct server_access a = {.request_id = "r",
                                    .method = "GET",
                                    .path = "/",
                                    .status = 200,
                                    .queue_wait = -1};

    for (int json = 0; json < 2; json++) {
        int fd = temp_fd();
        struct server_log *l =
            server_log_new(fd, json ? SERVER_LOG_JSON : SERVER_LOG_TEXT, level);
        char *text;
        size_t want = 0;

        server_log_access(l, &a);
        want += level <= SERVER_LOG_INFO;
        for (int e = SERVER_LOG_DEBUG; e <= SERVER_LOG_ERROR; e++) {
            server_log_event(l, (enum server_log_level)e, "ev", "at %s",
                             names[e]);
            want += e >= (int)level;
        }
        server_log_free(l);
        text = file_text(fd, NULL);
        ck_assert_msg(count_lines(text) == want, "level %s: %zu lines",
                      names[level], count_lines(text));
        for (int e = SERVER_LOG_DEBUG; e <= SERVER_LOG_ERROR; e++) {
            char msg[32];

            snprintf(msg, sizeof msg, "at %s", names[e]);
            ck_assert((strstr(text, msg) != NULL) == (e >= (int)level));
        }
        ck_assert((strstr(text, "access") != NULL) ==
                  (level <= SERVER_LOG_INFO));
        free(text);
        close(fd);
    }
}
END_TEST

/* --- when lines are written ---------------------------------------------- */

/*
 * Access lines wait in the thread's buffer until server_log_flush(); an
 * event is written at once, after what its thread had buffered (the order
 * of a thread's lines is kept); free flushes.
 */
START_TEST(test_flush)
{
    int fds[2];
    static char buf[1 << 17];
    struct server_log *l;
    const struct server_access a = {.request_id = "r",
                                    .method = "GET",
                                    .path = "/first",
                                    .status = 200,
                                    .queue_wait = -1};
    struct server_access b = a;

    nonblocking_pipe(fds);
    l = server_log_new(fds[1], SERVER_LOG_JSON, SERVER_LOG_INFO);
    server_log_access(l, &a);
    ck_assert_uint_eq(pipe_drain(fds[0], buf, sizeof buf), 0);
    server_log_flush(l);
    ck_assert_uint_gt(pipe_drain(fds[0], buf, sizeof buf), 0);
    ck_assert_uint_eq(count_lines(buf), 1);
    ck_assert_ptr_nonnull(strstr(buf, "\"/first\""));
    /* a second flush has nothing to write */
    server_log_flush(l);
    ck_assert_uint_eq(pipe_drain(fds[0], buf, sizeof buf), 0);

    /* an event brings the buffered access line out before it */
    b.path = "/second";
    server_log_access(l, &b);
    server_log_event(l, SERVER_LOG_INFO, "drain", "now");
    ck_assert_uint_gt(pipe_drain(fds[0], buf, sizeof buf), 0);
    ck_assert_uint_eq(count_lines(buf), 2);
    ck_assert_ptr_nonnull(strstr(buf, "\"/second\""));
    ck_assert(strstr(buf, "\"/second\"") < strstr(buf, "\"drain\""));

    /*
     * buffering is bounded: without any flush, lines come out in one write
     * of whole lines once a thread has buffered 16 KiB (log.c's threshold;
     * this holds it to twice that)
     */
    {
        size_t written = 0, got = 0;

        b.path = "/bulk";
        while (got == 0 && written < 65536) {
            server_log_access(l, &b);
            written += 100; /* less than a line: the loop ends past 64 KiB */
            got = pipe_drain(fds[0], buf, sizeof buf);
        }
        ck_assert_uint_gt(got, 0);
        ck_assert_uint_ge(got, 16384);
        ck_assert_uint_le(got, 32768);
        ck_assert_int_eq(buf[got - 1], '\n');
        ck_assert_uint_gt(count_lines(buf), 1);
    }

    /* free writes what is left */
    b.path = "/last";
    server_log_access(l, &b);
    ck_assert_uint_eq(pipe_drain(fds[0], buf, sizeof buf), 0);
    server_log_free(l);
    ck_assert_uint_gt(pipe_drain(fds[0], buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "\"/last\""));
    close(fds[0]);
    close(fds[1]);
}
END_TEST

struct writer {
    struct server_log *l;
    int id;
    int lines;
    bool events;
};

/* Writes w->lines access lines with path "/t<id>/<seq>" of varied length,
   with an event every 97 lines when asked. */
static void *write_lines(void *arg)
{
    struct writer *w = arg;
    char path[600];

    for (int i = 0; i < w->lines; i++) {
        int pad = (i * 37 + w->id * 11) % 500;
        struct server_access a = {.request_id = "r",
                                  .method = "POST",
                                  .path = path,
                                  .status = 200,
                                  .bytes_in = (size_t)i,
                                  .queue_wait = -1};

        snprintf(path, sizeof path, "/t%d/%d/%.*s", w->id, i, pad,
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        server_log_access(w->l, &a);
        if (w->events && i % 97 == 0)
            server_log_event(w->l, SERVER_LOG_INFO, "tick", "t%d %d", w->id, i);
    }
    return NULL;
}

/* The main thread flushes while the writers write, as serve.c does. */
struct flusher {
    struct server_log *l;
    _Atomic int stop;
};

static void *flush_loop(void *arg)
{
    struct flusher *f = arg;

    while (!f->stop) {
        server_log_flush(f->l);
        usleep(200);
    }
    return NULL;
}

/*
 * Threads writing at once (and a flusher, and events that write at once)
 * produce whole JSON lines only, every line of every thread, each thread's
 * in its order. Also a thread that exits without flushing: its lines come
 * out with the next flush.
 */
#define NWRITERS 8
#define NLINES   3000

START_TEST(test_threads)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_INFO);
    pthread_t t[NWRITERS], ft;
    struct writer w[NWRITERS];
    struct flusher f = {.l = l};
    int next[NWRITERS] = {0}, events[NWRITERS] = {0};
    char *text, *p;

    ck_assert_int_eq(pthread_create(&ft, NULL, flush_loop, &f), 0);
    for (int i = 0; i < NWRITERS; i++) {
        w[i] = (struct writer){l, i, NLINES, i % 2 == 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, write_lines, &w[i]), 0);
    }
    for (int i = 0; i < NWRITERS; i++)
        pthread_join(t[i], NULL);
    f.stop = 1;
    pthread_join(ft, NULL);
    server_log_free(l); /* the writers are gone; this flushes the rest */
    text = file_text(fd, NULL);

    for (p = text; *p;) {
        char *nl = strchr(p, '\n');
        json_t *j = parse_line(p, (size_t)(nl - p));
        int id, seq;

        if (!strcmp(str_of(j, "event"), "tick")) {
            ck_assert_int_eq(sscanf(str_of(j, "msg"), "t%d %d", &id, &seq), 2);
            ck_assert(id >= 0 && id < NWRITERS);
            /* an event follows its thread's access line of the same i */
            ck_assert_int_eq(seq, next[id] - 1);
            events[id]++;
        } else {
            ck_assert_int_eq(sscanf(str_of(j, "path"), "/t%d/%d/", &id, &seq),
                             2);
            ck_assert(id >= 0 && id < NWRITERS);
            ck_assert_msg(seq == next[id], "thread %d: line %d, want %d", id,
                          seq, next[id]);
            ck_assert_int_eq(int_of(j, "bytes_in"), seq);
            next[id]++;
        }
        json_decref(j);
        p = nl + 1;
    }
    for (int i = 0; i < NWRITERS; i++) {
        ck_assert_int_eq(next[i], NLINES);
        ck_assert_int_eq(events[i], i % 2 == 0 ? (NLINES + 96) / 97 : 0);
    }
    free(text);
    close(fd);
}
END_TEST

/* A thread that writes one line and exits: the next flush writes it. */
START_TEST(test_exited_thread)
{
    int fds[2];
    static char buf[8192];
    struct server_log *l;
    struct writer w;
    pthread_t t;

    nonblocking_pipe(fds);
    l = server_log_new(fds[1], SERVER_LOG_JSON, SERVER_LOG_INFO);
    w = (struct writer){l, 5, 1, false};
    ck_assert_int_eq(pthread_create(&t, NULL, write_lines, &w), 0);
    pthread_join(t, NULL);
    ck_assert_uint_eq(pipe_drain(fds[0], buf, sizeof buf), 0);
    server_log_flush(l);
    ck_assert_uint_gt(pipe_drain(fds[0], buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "\"/t5/0/"));
    server_log_free(l);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

/* --- every byte ---------------------------------------------------------- */

#define U_FFFD "\xEF\xBF\xBD"

/* The fields of a, and the event name and message, set to s. */
static void log_all_fields(struct server_log *l, const char *s)
{
    const struct server_access a = {.request_id = s,
                                    .method = s,
                                    .path = s,
                                    .status = 200,
                                    .bytes_in = 1,
                                    .bytes_out = 2,
                                    .duration = 0.5,
                                    .queue_wait = 0.25,
                                    .loss = s};

    server_log_access(l, &a);
    server_log_event(l, SERVER_LOG_WARN, s, "%s", s);
}

/* The next line of *p as a JSON object (fails the test otherwise), at most
   LINE_MAX_BYTES with its newline; *p moves past it. */
static json_t *next_line(const char **p)
{
    const char *nl = strchr(*p, '\n');
    json_t *j;

    ck_assert_ptr_nonnull(nl);
    ck_assert_uint_le((size_t)(nl - *p) + 1, LINE_MAX_BYTES);
    j = parse_line(*p, (size_t)(nl - *p));
    *p = nl + 1;
    return j;
}

/* Whether field (decoded) is a prefix of want cut with the marker. */
static void check_cut(const char *field, const char *want)
{
    size_t n = strlen(field), cut = strlen(PROTO_STRING_CUT);

    ck_assert_uint_gt(n, cut);
    ck_assert_str_eq(field + n - cut, PROTO_STRING_CUT);
    ck_assert_msg(!strncmp(field, want, n - cut), "not a prefix: %.60s", field);
}

/* field is want, or want cut for room (when may_cut). */
static void check_field(const char *field, const char *want, bool may_cut)
{
    if (may_cut && strcmp(field, want) != 0)
        check_cut(field, want);
    else
        ck_assert_str_eq(field, want);
}

/*
 * Checks the access line and then the event line of log_all_fields(s):
 * each field decodes to want. The path (2.6 KiB of room) and the message
 * are whole; the others have 300 bytes of room, and may be cut when
 * may_cut.
 */
static void check_all_fields(const char **p, const char *want, bool may_cut)
{
    json_t *j = next_line(p);

    check_field(str_of(j, "request_id"), want, may_cut);
    check_field(str_of(j, "method"), want, may_cut);
    ck_assert_str_eq(str_of(j, "path"), want);
    check_field(str_of(j, "loss"), want, may_cut);
    ck_assert_int_eq(int_of(j, "status"), 200);
    ck_assert_uint_eq(json_object_size(j), 12);
    json_decref(j);
    j = next_line(p);
    check_field(str_of(j, "event"), want, may_cut);
    ck_assert_str_eq(str_of(j, "msg"), want);
    json_decref(j);
}

/*
 * Each byte value 1-255 (a C string has no NUL) in the request id, method,
 * path, loss, event and message, alone and inside text: ASCII as it is,
 * each byte >= 0x80 alone U+FFFD; then all of them in one string; then
 * valid UTF-8 of every length, unchanged (it was \u00XX per byte once,
 * which decodes to other characters).
 */
START_TEST(test_json_all_bytes)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_INFO);
    static const char *const utf8[] = {
        "/v1/caf\xc3\xa9",
        "/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/\xf0\x9f\x98\x80",
        ("r\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80"
         "\xf4\x8f\xbf\xbf"),
        "\xe2\x80\xa8\xe2\x80\xa9", /* U+2028, U+2029: valid JSON as is */
    };
    char all[256], s[8], want[16];
    char *text;
    const char *p;

    for (int c = 1; c < 256; c++) {
        snprintf(s, sizeof s, "/a%cb", c);
        log_all_fields(l, s);
        all[c - 1] = (char)c;
    }
    all[255] = '\0';
    log_all_fields(l, all);
    for (size_t i = 0; i < sizeof utf8 / sizeof utf8[0]; i++)
        log_all_fields(l, utf8[i]);
    server_log_free(l);

    text = file_text(fd, NULL);
    p = text;
    for (int c = 1; c < 256; c++) {
        if (c < 0x80)
            snprintf(want, sizeof want, "/a%cb", c);
        else
            snprintf(want, sizeof want, "/a" U_FFFD "b");
        check_all_fields(&p, want, false);
    }
    {
        char wall[128 + 128 * 3];

        memcpy(wall, all, 127);
        for (int i = 0; i < 128; i++)
            memcpy(wall + 127 + 3 * i, U_FFFD, 3);
        wall[127 + 3 * 128] = '\0';
        check_all_fields(&p, wall, true);
    }
    for (size_t i = 0; i < sizeof utf8 / sizeof utf8[0]; i++)
        check_all_fields(&p, utf8[i], false);
    ck_assert_int_eq(*p, '\0');
    free(text);
    close(fd);
}
END_TEST

/*
 * Seeded random strings in every field: raw bytes 1-255, and valid UTF-8
 * (random code points, controls and quotes included), of 1 to 600 bytes:
 * every line valid JSON within its room, valid UTF-8 back unchanged.
 */
START_TEST(test_json_random)
{
    enum { N = 400 };
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_INFO);
    static char strs[N][604];
    struct test_rng rng;
    char *text;
    const char *p;

    test_rng_seed(&rng, 777);
    for (int i = 0; i < N; i++) {
        size_t n = 1 + (size_t)(test_rng_uniform(&rng) * 600), k = 0;

        while (k < n) {
            if (i % 2 == 0) {
                strs[i][k++] = (char)(1 + (int)(test_rng_uniform(&rng) * 255));
                continue;
            }
            /* U+0001..U+07FF or a CJK or emoji character */
            unsigned cp = 1 + (unsigned)(test_rng_uniform(&rng) * 0x7FF);
            double r = test_rng_uniform(&rng);

            if (r < 0.1)
                cp = 0x4E00 + (unsigned)(test_rng_uniform(&rng) * 0x5000);
            else if (r < 0.2)
                cp = 0x1F300 + (unsigned)(test_rng_uniform(&rng) * 0x300);
            if (cp < 0x80) {
                strs[i][k++] = (char)cp;
            } else if (cp < 0x800) {
                strs[i][k++] = (char)(0xC0 | cp >> 6);
                strs[i][k++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                strs[i][k++] = (char)(0xE0 | cp >> 12);
                strs[i][k++] = (char)(0x80 | (cp >> 6 & 0x3F));
                strs[i][k++] = (char)(0x80 | (cp & 0x3F));
            } else {
                strs[i][k++] = (char)(0xF0 | cp >> 18);
                strs[i][k++] = (char)(0x80 | (cp >> 12 & 0x3F));
                strs[i][k++] = (char)(0x80 | (cp >> 6 & 0x3F));
                strs[i][k++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        strs[i][k] = '\0';
        log_all_fields(l, strs[i]);
    }
    server_log_free(l);

    text = file_text(fd, NULL);
    p = text;
    for (int i = 0; i < N; i++) {
        json_t *a = next_line(&p), *e = next_line(&p);
        json_t *valid = json_string(strs[i]); /* NULL: not UTF-8 */

        /* the message passed a 1 KiB vsnprintf: compared when it fits */
        if (valid && strlen(strs[i]) < 200) {
            ck_assert_str_eq(str_of(a, "path"), strs[i]);
            ck_assert_str_eq(str_of(a, "request_id"), strs[i]);
            ck_assert_str_eq(str_of(a, "method"), strs[i]);
            ck_assert_str_eq(str_of(a, "loss"), strs[i]);
            ck_assert_str_eq(str_of(e, "event"), strs[i]);
            ck_assert_str_eq(str_of(e, "msg"), strs[i]);
        } else if (valid) {
            ck_assert_str_eq(str_of(a, "path"), strs[i]); /* 2.6 KiB room */
        }
        json_decref(valid);
        json_decref(a);
        json_decref(e);
    }
    ck_assert_int_eq(*p, '\0');
    free(text);
    close(fd);
}
END_TEST

/*
 * Fields far longer than a line, of every kind (ASCII, control bytes that
 * take 6 bytes each, 4-byte characters, bytes that become U+FFFD), in every
 * field at once with the longest numbers: each line at most 4 KiB, valid,
 * each long field cut at a character with the marker, the rest of the line
 * (status, sizes, durations) intact.
 */
START_TEST(test_json_long_fields)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_INFO);
    static char kinds[4][20001];
    char *text;
    const char *p;

    memset(kinds[0], 'a', 20000);
    memset(kinds[1], '\x01', 20000);
    for (int i = 0; i < 5000; i++)
        memcpy(kinds[2] + 4 * i, "\xf0\x9f\x98\x80", 4);
    memset(kinds[3], '\xff', 20000);
    for (int k = 0; k < 4; k++) {
        struct server_access a = {.request_id = kinds[k],
                                  .method = kinds[k],
                                  .path = kinds[k],
                                  .status = -2147483647 - 1,
                                  /* jansson reads up to INT64_MAX */
                                  .bytes_in = (size_t)INT64_MAX,
                                  .bytes_out = (size_t)INT64_MAX,
                                  .duration = 1e300,
                                  .queue_wait = 1e300,
                                  .loss = kinds[k]};

        kinds[k][20000] = '\0';
        server_log_access(l, &a);
        a.duration = NAN;
        a.queue_wait = INFINITY;
        server_log_access(l, &a);
        server_log_event(l, SERVER_LOG_ERROR, kinds[k], "%s", kinds[k]);
    }
    server_log_free(l);

    text = file_text(fd, NULL);
    p = text;
    for (int k = 0; k < 4; k++) {
        static char want[60001];
        size_t wn = 0;

        for (size_t i = 0; i < 20000; i++) {
            if (k == 3) { /* 0xff: U+FFFD each */
                memcpy(want + wn, U_FFFD, 3);
                wn += 3;
            } else {
                want[wn++] = kinds[k][i];
            }
        }
        want[wn] = '\0';
        for (int line = 0; line < 2; line++) {
            json_t *j = next_line(&p);

            check_cut(str_of(j, "path"), want);
            check_cut(str_of(j, "request_id"), want);
            check_cut(str_of(j, "method"), want);
            check_cut(str_of(j, "loss"), want);
            ck_assert_uint_eq(json_object_size(j), 12);
            ck_assert(int_of(j, "status") == 2147483648LL);
            ck_assert(int_of(j, "bytes_in") == INT64_MAX);
            ck_assert(int_of(j, "bytes_out") == INT64_MAX);
            if (line == 0) {
                ck_assert(real_of(j, "duration") == 1e300);
                ck_assert(real_of(j, "queue_wait") == 1e300);
            } else { /* non-finite: strings, as in the documents */
                ck_assert_str_eq(str_of(j, "duration"), "NaN");
                ck_assert_str_eq(str_of(j, "queue_wait"), "Infinity");
            }
            json_decref(j);
        }
        {
            json_t *j = next_line(&p);

            check_cut(str_of(j, "event"), want);
            /* the message went through a 1 KiB vsnprintf first */
            ck_assert_uint_gt(strlen(str_of(j, "msg")), 0);
            json_decref(j);
        }
    }
    ck_assert_int_eq(*p, '\0');
    free(text);
    close(fd);
}
END_TEST

/* A text event stays one line: controls in its message (a newline from
   libmicrohttpd) and its name come out as \xNN, spaces of the message as
   they are. */
START_TEST(test_text_event_one_line)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_TEXT, SERVER_LOG_INFO);
    char *text, *lines[4];

    server_log_event(l, SERVER_LOG_WARN, "ht tp", "bad\nline \\ \x7f\xc3\xa9");
    server_log_event(l, SERVER_LOG_WARN, "drain", "in %d s", 5);
    server_log_free(l);
    text = file_text(fd, NULL);
    ck_assert_uint_eq(split_lines(text, lines, 4), 2);
    ck_assert_str_eq(lines[0] + 24,
                     " warn ht\\x20tp bad\\x0aline \\x5c \\x7f\\xc3\\xa9");
    ck_assert_str_eq(lines[1] + 24, " warn drain in 5 s");
    free(text);
    close(fd);
}
END_TEST

/* Text lines: a long field is cut at a whole \xNN with the marker, and
   the line stays one line within the room. */
START_TEST(test_text_long_fields)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_TEXT, SERVER_LOG_INFO);
    static char path[20001];
    struct server_access a = {.request_id = "r",
                              .method = "GET",
                              .path = path,
                              .status = 414,
                              .queue_wait = -1};
    char *text, *lines[4];

    memset(path, '\x01', 20000);
    server_log_access(l, &a);
    memset(path, 'a', 20000);
    server_log_access(l, &a);
    server_log_free(l);
    text = file_text(fd, NULL);
    ck_assert_uint_eq(split_lines(text, lines, 4), 2);
    for (int i = 0; i < 2; i++) {
        const char *pv = strstr(lines[i], " path=");
        const char *end;

        ck_assert_uint_le(strlen(lines[i]) + 1, LINE_MAX_BYTES);
        ck_assert_ptr_nonnull(pv);
        end = strstr(pv, PROTO_STRING_CUT " status=414 ");
        ck_assert_ptr_nonnull(end);
        /* whole \x01 escapes before the marker */
        if (i == 0)
            ck_assert_uint_eq((size_t)(end - (pv + 6)) % 4, 0);
    }
    free(text);
    close(fd);
}
END_TEST

/*
 * A line has a fixed room: a path far longer than it cuts the line, never
 * the memory after it, and the next line is whole again.
 */
START_TEST(test_long_path)
{
    int fd = temp_fd();
    struct server_log *l = server_log_new(fd, SERVER_LOG_JSON, SERVER_LOG_INFO);
    static char path[20000];
    struct server_access a = {.request_id = "r",
                              .method = "GET",
                              .path = path,
                              .status = 414,
                              .queue_wait = -1};
    char *text, *nl;
    json_t *j;

    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    server_log_access(l, &a);
    a.path = "/after";
    server_log_access(l, &a);
    server_log_free(l);
    text = file_text(fd, NULL);
    ck_assert_uint_eq(count_lines(text), 2);
    nl = strchr(text, '\n');
    ck_assert_uint_le((size_t)(nl - text) + 1, LINE_MAX_BYTES);
    /* the cut line is whole JSON too, its path cut with the marker */
    j = parse_line(text, (size_t)(nl - text));
    check_cut(str_of(j, "path"), path);
    ck_assert_int_eq(int_of(j, "status"), 414);
    json_decref(j);
    j = parse_line(nl + 1, strlen(nl + 1) - 1);
    ck_assert_str_eq(str_of(j, "path"), "/after");
    json_decref(j);
    free(text);
    close(fd);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("server_log");
    TCase *tc = tcase_create("json");

    tcase_add_test(tc, test_access_json);
    tcase_add_test(tc, test_event_json);
    tcase_add_test(tc, test_json_escaping);
    tcase_add_test(tc, test_json_null_strings);
    tcase_add_test(tc, test_seconds);
    tcase_add_test(tc, test_json_all_bytes);
    tcase_add_test(tc, test_json_random);
    tcase_add_test(tc, test_json_long_fields);
    suite_add_tcase(s, tc);

    tc = tcase_create("text");
    tcase_add_test(tc, test_text);
    tcase_add_test(tc, test_text_long_fields);
    tcase_add_test(tc, test_text_event_one_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("levels");
    tcase_add_loop_test(tc, test_levels, SERVER_LOG_DEBUG,
                        SERVER_LOG_ERROR + 1);
    suite_add_tcase(s, tc);

    tc = tcase_create("writes");
    tcase_add_test(tc, test_flush);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_exited_thread);
    tcase_add_test(tc, test_long_path);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(log_suite());
}

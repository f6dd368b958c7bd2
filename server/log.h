/*
 * log.h - the access log and event lines of `lossd serve`, on stderr.
 *
 * Lines are appended to a buffer of the calling thread (no lock shared with
 * other request threads) and written with one write(2) each time a buffer
 * passes a threshold, and by server_log_flush() which the main thread calls
 * every 100 ms: a blocking write per request to a pipe costs a quarter of
 * the throughput.
 *
 * A line is at most 4096 bytes with its newline, and a JSON line is one
 * valid JSON object whatever its strings hold: they are written by proto's
 * string writer (encode.h), the documents' own (valid UTF-8 as it is, each
 * byte that starts no UTF-8 character as U+FFFD, controls escaped), each in
 * a room of its own (the path 2688 bytes of JSON text, the message 3072,
 * other strings 300) and cut at a character with PROTO_STRING_CUT
 * ("...[truncated]") past it. Text lines write bytes other than printable
 * ASCII as \xNN (spaces too, but in an event's message), so a line is one
 * line, and cut the same way.
 */
#ifndef LOSSD_SERVER_LOG_H
#define LOSSD_SERVER_LOG_H

#include <stddef.h>

#include "config.h"

struct server_log;

/* A new log writing to fd (borrowed), or NULL when out of memory. */
struct server_log *server_log_new(int fd, enum server_log_format format,
                                  enum server_log_level level);
/* Flushes every thread's buffer and frees the log (threads must be gone). */
void server_log_free(struct server_log *l);

/* Writes every thread's buffered lines. Any thread. */
void server_log_flush(struct server_log *l);

struct server_access {
    const char *request_id;
    const char *method;
    const char *path; /* raw from the client: escaped here */
    int status;
    size_t bytes_in;
    size_t bytes_out;
    double duration;   /* seconds */
    double queue_wait; /* seconds; < 0 when the job never queued */
    const char *loss;  /* NULL when none */
};

/* One access-log line (level info). */
void server_log_access(struct server_log *l, const struct server_access *a);

/*
 * One event line: {"time","level","event", msg, ...}. fmt is printf text
 * appended as "msg" (json) or after the event name (text).
 */
void server_log_event(struct server_log *l, enum server_log_level level,
                      const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

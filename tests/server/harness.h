/*
 * harness.h - start the real lossd binary for an integration test and talk
 * to it over HTTP on 127.0.0.1.
 *
 * lossd_start() runs `$LOSSD_EXE serve --host 127.0.0.1 --port 0 ARGS...`
 * with PR_SET_PDEATHSIG (it dies with the test), stderr captured in a file,
 * and reads the port from its first stdout line. lossd_stop() signals it and
 * waits; lossd_stderr_clean() tells whether its stderr holds a sanitizer
 * report.
 *
 * lossd_start_test() runs lossd-test instead ($LOSSD_TEST_EXE: lossd plus
 * test_block, a loss of test builds only; blocking_loss.c), with a gate
 * that lets the test hold each test_block job on the pool for as long as it
 * wants: a job says when it has started (lossd_gate_wait_started()) and
 * finishes only once the test releases it (lossd_gate_release()). Tests
 * wait on those events, never on an amount of work.
 */
#ifndef LOSSD_TESTS_SERVER_HARNESS_H
#define LOSSD_TESTS_SERVER_HARNESS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct lossd_proc {
    pid_t pid;
    unsigned port;
    char stderr_path[256];
    char url[64];    /* "http://127.0.0.1:PORT" */
    bool test_build; /* lossd-test: its responses are not logged */
    /* the gate of lossd_start_test(..., true): a directory with the FIFOs
       started and release, both held open O_RDWR here (so neither end
       ever waits to open); "" and -1 otherwise */
    char gate_dir[200];
    int gate_started;
    int gate_release;
};

/* Starts lossd with extra arguments (NULL-terminated, may be NULL); 0 or -1. */
int lossd_start(struct lossd_proc *p, const char *const *args);

/*
 * Starts lossd-test ($LOSSD_TEST_EXE) like lossd_start(). With gated, a new
 * gate directory is created and named to it in LOSSD_TEST_GATE; without,
 * the variable is unset and every test_block job fails at once. 0 or -1
 * (also when LOSSD_TEST_EXE is unset, with a message on stderr).
 */
int lossd_start_test(struct lossd_proc *p, const char *const *args, bool gated);

/*
 * Waits until n more test_block jobs have started (read n bytes of the
 * started FIFO); fails the test (ck_assert) when they have not after 60 s,
 * a bound that only turns a hang into a failure.
 */
void lossd_gate_wait_started(struct lossd_proc *p, size_t n);

/* Jobs that have started and were not waited for yet (bytes unread). */
size_t lossd_gate_started_unread(const struct lossd_proc *p);

/*
 * Lets n test_block jobs finish: those waiting now, and then those that
 * start later (each consumes one byte). ck_assert on failure.
 */
void lossd_gate_release(struct lossd_proc *p, size_t n);

/*
 * Sends sig (0: none) and waits up to timeout seconds for the process;
 * returns its wait status, or -1 if it had to be killed. Once the process
 * is gone, its gate (if any) is closed and removed.
 */
int lossd_stop(struct lossd_proc *p, int sig, double timeout);

/* Whether the captured stderr is free of sanitizer reports. */
bool lossd_stderr_clean(const struct lossd_proc *p);

/* Whether the captured stderr contains s. */
bool lossd_stderr_contains(const struct lossd_proc *p, const char *s);

/* The captured stderr so far: new (free() it), NULL when unreadable. */
char *lossd_stderr_read(const struct lossd_proc *p);

/* Stops with SIGTERM (10 s), checks exit 0 and a clean stderr (ck_assert). */
void lossd_finish(struct lossd_proc *p);

struct http_resp {
    long status;
    char *body; /* NUL-terminated */
    size_t len;
    char *headers; /* raw header block, NUL-terminated */
    size_t hlen;
};

/*
 * One request with libcurl on a new connection. headers: NULL-terminated
 * "Name: value" lines (may be NULL). body NULL for no body. 0 or -1 (curl
 * failure, status then 0). Logs the response (harness_log_response()) unless
 * p is lossd-test, whose document has a loss the shipped one lacks.
 */
int http_do(const struct lossd_proc *p, const char *method, const char *path,
            const char *const *headers, const char *body, size_t len,
            struct http_resp *ret);

/* The value of header name in r (case-insensitive), copied to buf; NULL. */
const char *http_header(const struct http_resp *r, const char *name, char *buf,
                        size_t cap);

/* The "type" member of a JSON body, copied to buf; "" if none. */
const char *http_json_str(const struct http_resp *r, const char *key, char *buf,
                          size_t cap);

void http_resp_release(struct http_resp *r);

/*
 * When LOSSD_RESPONSE_LOG names a file, appends one JSON line describing r
 * (the answer to method path) to it: {"method", "path", "status",
 * "content_type", "content_encoding", "headers", "body"} ("body_base64"
 * instead of "body" for a compressed body, "body_invalid_utf8": true when it
 * is not UTF-8). http_do() logs every response it
 * gets; tests that run their own libcurl transfers call this with what they
 * received, so tests/server/openapi/validate.mjs checks it against the served
 * OpenAPI document. Each line is one O_APPEND write, so forked test cases can
 * share the file. Does nothing when the variable is unset or r->status is 0;
 * logging failures are reported on stderr, never fatal.
 */
void harness_log_response(const char *method, const char *path,
                          const struct http_resp *r);

/*
 * A raw TCP connection to p on 127.0.0.1, for tests that must send bytes
 * libcurl would not; sends and receives give up after 60 s (ck_assert on
 * failure).
 */
int raw_connect(const struct lossd_proc *p);

/* Sends all of s on fd (ck_assert on failure; never SIGPIPE). */
void send_str(int fd, const char *s);

/*
 * The value of the series whose line starts with series (name and labels,
 * exactly as written) in p's /metrics, or -1 when there is none.
 * ck_assert when the scrape fails.
 */
double lossd_metric(const struct lossd_proc *p, const char *series);

/* Monotonic seconds. */
double harness_now(void);

/*
 * Appends n bytes to the growing, NUL-terminated buffer *buf of *len bytes.
 * Returns n, or 0 when out of memory (libcurl's write-callback convention).
 */
size_t harness_append(char **buf, size_t *len, const char *ptr, size_t n);

/* A libcurl body or header sink: CURLOPT_WRITEDATA is a harness_sink. */
struct harness_sink {
    char *data;
    size_t len;
};
size_t harness_sink_write(char *ptr, size_t size, size_t nmemb, void *ud);

/*
 * Runs every test of s with libcurl initialised around the run; the exit
 * status for main().
 */
int harness_run(Suite *s);

#endif

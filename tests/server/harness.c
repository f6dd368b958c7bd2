/*
 * harness.c - the real binary behind a pipe, a file and libcurl.
 */
#include "harness.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double harness_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * The environment of a child: this process's, without LOSSD_TEST_GATE,
 * plus gate_var when not NULL. New array (free() it; the strings are
 * borrowed), or NULL.
 */
static char **child_environ(const char *gate_var)
{
    static const char name[] = "LOSSD_TEST_GATE=";
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], name, sizeof name - 1) != 0)
            env[k++] = environ[i];
    if (gate_var)
        env[k++] = (char *)(uintptr_t)gate_var;
    env[k] = NULL;
    return env;
}

/* Closes and removes p's gate, if it has one. */
static void gate_remove(struct lossd_proc *p)
{
    static const char *const fifos[] = {"started", "release"};
    char path[sizeof p->gate_dir + 16];
    if (p->gate_started >= 0)
        close(p->gate_started);
    if (p->gate_release >= 0)
        close(p->gate_release);
    p->gate_started = p->gate_release = -1;
    if (!p->gate_dir[0])
        return;
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", p->gate_dir, fifos[i]);
        unlink(path);
    }
    rmdir(p->gate_dir);
    p->gate_dir[0] = '\0';
}

/*
 * A new gate for p: a private directory with the FIFOs started and
 * release, each opened O_RDWR (Linux: the open never waits, and a FIFO with
 * a writer never reads as ended). 0 or -1.
 */
static int gate_create(struct lossd_proc *p)
{
    char path[sizeof p->gate_dir + 16];
    snprintf(p->gate_dir, sizeof p->gate_dir, "%s/lossd-gate-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(p->gate_dir)) {
        p->gate_dir[0] = '\0';
        return -1;
    }
    snprintf(path, sizeof path, "%s/started", p->gate_dir);
    if (mkfifo(path, 0600) < 0 ||
        (p->gate_started = open(path, O_RDWR | O_CLOEXEC)) < 0)
        goto err;
    snprintf(path, sizeof path, "%s/release", p->gate_dir);
    if (mkfifo(path, 0600) < 0 ||
        (p->gate_release = open(path, O_RDWR | O_CLOEXEC)) < 0)
        goto err;
    return 0;
err:
    fprintf(stderr, "cannot create the gate %s: %s\n", path, strerror(errno));
    gate_remove(p);
    return -1;
}

/* Runs exe serve with args, in env; see lossd_start(). */
static int start_exe(struct lossd_proc *p, const char *exe, char **env,
                     const char *const *args)
{
    static unsigned seq;
    snprintf(
        p->stderr_path, sizeof p->stderr_path, "%s/lossd-test-%d-%u.stderr",
        getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(), seq++);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    /*
     * No drain delay unless a test asks for one (a later flag wins): every
     * test stops its server with SIGTERM, and the default 5 s drain would
     * dominate the suite's time.
     */
    const char *argv[64] = {exe,      "serve", "--host",          "127.0.0.1",
                            "--port", "0",     "--drain-seconds", "0"};
    size_t n = 8;
    for (size_t i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int efd = open(p->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (efd < 0)
            _exit(127);
        dup2(pfd[1], STDOUT_FILENO);
        dup2(efd, STDERR_FILENO);
        execve(exe, (char *const *)(void *)argv, env);
        _exit(127);
    }
    close(pfd[1]);
    p->pid = pid;
    /* the first line: {"event":"listening",...,"port":N} */
    char line[512];
    size_t len = 0;
    double deadline = harness_now() + 60;
    while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        int ms = (int)((deadline - harness_now()) * 1000);
        if (ms <= 0 || poll(&pf, 1, ms) <= 0)
            break;
        ssize_t r = read(pfd[0], line + len, sizeof line - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(pfd[0]);
    line[len] = '\0';
    const char *pp = strstr(line, "\"port\":");
    if (!pp || !strstr(line, "\"event\":\"listening\"")) {
        fprintf(stderr, "%s did not start; first line '%s'\n", exe, line);
        lossd_stop(p, SIGKILL, 5);
        return -1;
    }
    p->port = (unsigned)atoi(pp + 7);
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%u", p->port);
    return 0;
}

/* p cleared: no process, no gate. */
static void proc_init(struct lossd_proc *p)
{
    memset(p, 0, sizeof *p);
    p->gate_started = p->gate_release = -1;
}

int lossd_start(struct lossd_proc *p, const char *const *args)
{
    proc_init(p);
    const char *exe = getenv("LOSSD_EXE");
    if (!exe)
        return -1;
    return start_exe(p, exe, environ, args);
}

int lossd_start_test(struct lossd_proc *p, const char *const *args, bool gated)
{
    proc_init(p);
    p->test_build = true;
    const char *exe = getenv("LOSSD_TEST_EXE");
    if (!exe) {
        fprintf(stderr, "LOSSD_TEST_EXE is not set: it names lossd-test "
                        "(tests/server/meson.build sets it)\n");
        return -1;
    }
    char var[sizeof p->gate_dir + 32] = "";
    if (gated) {
        if (gate_create(p) < 0)
            return -1;
        snprintf(var, sizeof var, "LOSSD_TEST_GATE=%s", p->gate_dir);
    }
    char **env = child_environ(gated ? var : NULL);
    int rc = env ? start_exe(p, exe, env, args) : -1;
    free(env);
    if (rc < 0)
        gate_remove(p);
    return rc;
}

void lossd_gate_wait_started(struct lossd_proc *p, size_t n)
{
    ck_assert_msg(p->gate_started >= 0, "lossd has no gate");
    double deadline = harness_now() + 60;
    char buf[64];
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {.fd = p->gate_started, .events = POLLIN};
        int ms = (int)((deadline - harness_now()) * 1000);
        ck_assert_msg(ms > 0 && poll(&pf, 1, ms) > 0,
                      "%zu of %zu test_block jobs started in 60 s", got, n);
        size_t want = n - got < sizeof buf ? n - got : sizeof buf;
        ssize_t r = read(p->gate_started, buf, want);
        ck_assert_msg(r > 0 || errno == EINTR, "reading the gate: %s",
                      strerror(errno));
        if (r > 0)
            got += (size_t)r;
    }
}

size_t lossd_gate_started_unread(const struct lossd_proc *p)
{
    int n = 0;
    ck_assert_msg(p->gate_started >= 0, "lossd has no gate");
    ck_assert_int_eq(ioctl(p->gate_started, FIONREAD, &n), 0);
    return (size_t)n;
}

void lossd_gate_release(struct lossd_proc *p, size_t n)
{
    ck_assert_msg(p->gate_release >= 0, "lossd has no gate");
    char buf[64];
    memset(buf, 'r', sizeof buf);
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        ssize_t w = write(p->gate_release, buf, k);
        ck_assert_msg(w > 0 || errno == EINTR, "releasing: %s",
                      strerror(errno));
        if (w > 0)
            n -= (size_t)w;
    }
}

int lossd_stop(struct lossd_proc *p, int sig, double timeout)
{
    if (p->pid <= 0)
        return -1;
    if (sig)
        kill(p->pid, sig);
    double end = harness_now() + timeout;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            gate_remove(p);
            return status;
        }
        if (harness_now() > end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            p->pid = 0;
            gate_remove(p);
            return -1;
        }
        usleep(10000);
    }
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *t = realloc(s, cap * 2);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    fclose(f);
    if (s)
        s[len] = '\0';
    return s;
}

char *lossd_stderr_read(const struct lossd_proc *p)
{
    return read_file(p->stderr_path);
}

bool lossd_stderr_contains(const struct lossd_proc *p, const char *needle)
{
    char *s = read_file(p->stderr_path);
    bool found = s && strstr(s, needle);
    free(s);
    return found;
}

bool lossd_stderr_clean(const struct lossd_proc *p)
{
    static const char *const reports[] = {"ERROR: AddressSanitizer",
                                          "runtime error:", "LeakSanitizer",
                                          "ThreadSanitizer"};
    char *s = read_file(p->stderr_path);
    bool clean = true;
    for (size_t i = 0; s && i < sizeof reports / sizeof reports[0]; i++)
        if (strstr(s, reports[i])) {
            fprintf(stderr, "sanitizer report in lossd's stderr:\n%s\n", s);
            clean = false;
            break;
        }
    free(s);
    return clean;
}

void lossd_finish(struct lossd_proc *p)
{
    int st = lossd_stop(p, SIGTERM, 20);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        /* The reason (a sanitizer report, an abort message) is here. */
        char *s = read_file(p->stderr_path);

        fprintf(stderr, "lossd's stderr (%s):\n%s\n", p->stderr_path,
                s ? s : "(unreadable)");
        free(s);
    }
    ck_assert_msg(st >= 0, "lossd did not exit after SIGTERM");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "lossd exit status %d",
                  st);
    ck_assert(lossd_stderr_clean(p));
    unlink(p->stderr_path);
}

size_t harness_append(char **buf, size_t *len, const char *ptr, size_t n)
{
    char *t = realloc(*buf, *len + n + 1);
    if (!t)
        return 0;
    memcpy(t + *len, ptr, n);
    *len += n;
    t[*len] = '\0';
    *buf = t;
    return n;
}

size_t harness_sink_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct harness_sink *s = ud;
    return harness_append(&s->data, &s->len, ptr, size * nmemb);
}

int http_do(const struct lossd_proc *p, const char *method, const char *path,
            const char *const *headers, const char *body, size_t len,
            struct http_resp *ret)
{
    memset(ret, 0, sizeof *ret);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char url[512];
    snprintf(url, sizeof url, "%s%s", p->url, path);
    struct harness_sink b = {0}, h = {0};
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, harness_sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, harness_sink_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ret->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    ret->body = b.data ? b.data : strdup("");
    ret->len = b.len;
    ret->headers = h.data ? h.data : strdup("");
    ret->hlen = h.len;
    if (rc == CURLE_OK && !p->test_build)
        harness_log_response(method, path, ret);
    return rc == CURLE_OK ? 0 : -1;
}

const char *http_header(const struct http_resp *r, const char *name, char *buf,
                        size_t cap)
{
    size_t nl = strlen(name);
    for (const char *l = r->headers; l && *l;) {
        const char *e = strstr(l, "\r\n");
        size_t ll = e ? (size_t)(e - l) : strlen(l);
        if (ll > nl && l[nl] == ':' && !strncasecmp(l, name, nl)) {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = ll - (size_t)(v - l);
            if (vl >= cap)
                vl = cap - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        l += ll + (e ? 2 : 0);
    }
    return NULL;
}

const char *http_json_str(const struct http_resp *r, const char *key, char *buf,
                          size_t cap)
{
    buf[0] = '\0';
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    if (j) {
        const char *s = json_string_value(json_object_get(j, key));
        if (s)
            snprintf(buf, cap, "%s", s);
        json_decref(j);
    }
    return buf;
}

/*
 * The header block of the final response: after a 100 Continue (or any 1xx)
 * libcurl hands over every block in turn, and only the last one describes
 * the body.
 */
static struct http_resp last_header_block(const struct http_resp *r)
{
    struct http_resp last = *r;
    for (const char *l = r->headers; l && *l;) {
        const char *e = strstr(l, "\r\n");
        if (!strncmp(l, "HTTP/", 5))
            last.headers = (char *)(uintptr_t)l;
        if (!e)
            break;
        l = e + 2;
    }
    return last;
}

/* {"name": "value"} of the header lines of one block (the last one wins). */
static json_t *header_object(const struct http_resp *block)
{
    json_t *o = json_object();
    const char *l = block->headers;
    if (l && !strncmp(l, "HTTP/", 5))
        l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL;
    while (l && *l && strncmp(l, "\r\n", 2) != 0) {
        const char *e = strstr(l, "\r\n");
        size_t ll = e ? (size_t)(e - l) : strlen(l);
        const char *colon = memchr(l, ':', ll);
        if (colon) {
            const char *v = colon + 1;
            while (*v == ' ' && v < l + ll)
                v++;
            char name[128];
            size_t nl = (size_t)(colon - l);
            if (nl < sizeof name) {
                memcpy(name, l, nl);
                name[nl] = '\0';
                json_t *value = json_stringn(v, (size_t)(l + ll - v));
                if (value)
                    json_object_set_new(o, name, value);
            }
        }
        l = e ? e + 2 : NULL;
    }
    return o;
}

/* Standard base64 of len bytes, as a new JSON string. */
static json_t *base64_string(const char *data, size_t len)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *in = (const unsigned char *)data;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    json_t *s = json_stringn(out, o);
    free(out);
    return s;
}

void harness_log_response(const char *method, const char *path,
                          const struct http_resp *r)
{
    const char *log = getenv("LOSSD_RESPONSE_LOG");
    if (!log || !*log || r->status == 0)
        return;
    struct http_resp last = last_header_block(r);
    char ct[256], ce[64];
    json_t *j = json_object();
    json_object_set_new(j, "method", json_string(method));
    json_object_set_new(j, "path", json_string(path));
    json_object_set_new(j, "status", json_integer(r->status));
    if (http_header(&last, "Content-Type", ct, sizeof ct))
        json_object_set_new(j, "content_type", json_string(ct));
    if (http_header(&last, "Content-Encoding", ce, sizeof ce))
        json_object_set_new(j, "content_encoding", json_string(ce));
    json_object_set_new(j, "headers", header_object(&last));
    json_t *body = NULL;
    if (http_header(&last, "Content-Encoding", ce, sizeof ce) &&
        strcasecmp(ce, "identity") != 0) {
        body = base64_string(r->body, r->len);
        json_object_set_new(j, "body_base64", body);
    } else {
        body = json_stringn(r->body ? r->body : "", r->len);
        if (body)
            json_object_set_new(j, "body", body);
        else
            json_object_set_new(j, "body_invalid_utf8", json_true());
    }
    char *line = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    size_t n = line ? strlen(line) : 0;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (line && fd >= 0) {
        line[n] = '\n'; /* the NUL becomes the newline */
        if (write(fd, line, n + 1) != (ssize_t)(n + 1))
            fprintf(stderr, "harness: cannot append to %s\n", log);
    } else {
        fprintf(stderr, "harness: cannot log a response to %s\n", log);
    }
    if (fd >= 0)
        close(fd);
    free(line);
}

void http_resp_release(struct http_resp *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

int harness_run(Suite *s)
{
    curl_global_init(CURL_GLOBAL_ALL);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int raw_connect(const struct lossd_proc *p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)p->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

void send_str(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t w = send(fd, s, len, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        s += w;
        len -= (size_t)w;
    }
}

double lossd_metric(const struct lossd_proc *p, const char *series)
{
    struct http_resp r;
    ck_assert_int_eq(http_do(p, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    size_t n = strlen(series);
    double v = -1;
    for (const char *l = r.body; l && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, series, n) && l[n] == ' ') {
            v = atof(l + n + 1);
            break;
        }
    http_resp_release(&r);
    return v;
}

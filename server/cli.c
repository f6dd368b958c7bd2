/*
 * cli.c - `lossd eval` (cli.h): one body from a file or standard input
 * through the request pipeline, the answer on standard output.
 */
#include "cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "handler.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: lossd eval LOSS [FILE|-]\n"
            "       lossd eval batch [FILE|-]\n"
            "\n"
            "Reads one JSON request body (docs/api.md) from FILE or standard "
            "input,\n"
            "evaluates it with the same handlers as `lossd serve` and prints\n"
            "the response document. Exit 0 on success, 1 with the problem\n"
            "document when the request is refused, 2 on usage errors.\n");
}

/* Writes the whole buffer to stdout with a final newline. */
static int emit(const struct proto_buf *b)
{
    if (fwrite(b->data, 1, b->len, stdout) != b->len ||
        fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "lossd eval: writing the response: %s\n",
                strerror(errno));
        return 2;
    }
    return 0;
}

/*
 * Streams f through a request in 64 KiB chunks (as the server feeds it
 * from the socket), then runs it. Returns the HTTP status the server would
 * send and leaves the response or problem document in out; 0 with errno in
 * *ret_io_error when f cannot be read, and -ENOMEM when out of memory.
 */
static int eval_stream(const struct handler_loss *loss, FILE *f,
                       const struct handler_limits *lim, struct proto_buf *out,
                       int *ret_io_error)
{
    static char chunk[65536];
    struct handler_pipeline *p = handler_pipeline_new(lim, SIZE_MAX);
    struct handler_request *r = p ? handler_request_new(p, loss) : NULL;
    size_t n;
    int status = 0;

    if (r == NULL) {
        status = -ENOMEM;
        goto out;
    }
    /* after a failure the request ignores the rest: stop reading */
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (handler_request_feed(r, chunk, n) != LOSS_OK)
            break;
    if (ferror(f)) {
        *ret_io_error = errno ? errno : EIO;
        goto out;
    }
    handler_request_finish(r);
    status = handler_request_run(r, NULL, NULL, out); /* or its problem */
out:
    handler_request_free(r);
    handler_pipeline_free(p);
    return status;
}

int cli_eval_main(int argc, char **argv)
{
    struct handler_limits lim;
    const struct handler_loss *loss = NULL;
    struct proto_buf out;
    const char *name, *path = "-";
    FILE *f;
    int status, io_error = 0, rc;

    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        eval_usage(stdout);
        return 0;
    }
    if (argc < 2 || argc > 3) {
        eval_usage(stderr);
        return 2;
    }
    name = argv[1];
    if (argc == 3)
        path = argv[2];
    if (strcmp(name, HANDLER_BATCH) != 0) {
        loss = handler_find(name, strlen(name));
        if (loss == NULL) {
            fprintf(stderr,
                    "lossd eval: unknown loss '%s' (GET /v1/losses or "
                    "`lossd eval --help`)\n",
                    name);
            return 2;
        }
    }
    f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "lossd eval: %s: %s\n", path, strerror(errno));
        return 2;
    }
    handler_limits_default(&lim);
    proto_buf_init(&out);
    status = eval_stream(loss, f, &lim, &out, &io_error);
    if (f != stdin)
        fclose(f);
    if (status == -ENOMEM) {
        fprintf(stderr, "lossd eval: out of memory\n");
        proto_buf_release(&out);
        return 2;
    }
    if (io_error) {
        fprintf(stderr, "lossd eval: reading %s: %s\n", path,
                strerror(io_error));
        proto_buf_release(&out);
        return 2;
    }
    if (!proto_buf_ok(&out)) {
        fprintf(stderr, "lossd eval: out of memory writing the response\n");
        proto_buf_release(&out);
        return 2;
    }
    rc = emit(&out);
    proto_buf_release(&out);
    if (rc != 0)
        return rc;
    return status == 200 ? 0 : 1;
}

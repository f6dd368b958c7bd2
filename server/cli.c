#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "decode.h"
#include "document.h"
#include "handler.h"

static void eval_usage(FILE *f)
{
    fprintf(
        f, "usage: lossd eval LOSS [FILE|-]\n"
           "       lossd eval batch [FILE|-]\n"
           "\n"
           "Reads one JSON request body (API.md) from FILE or standard input,\n"
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
 * Streams f through the decoder in 64 KiB chunks (as the server does with
 * the socket), enforcing the body limit, then prepares and runs the job.
 * Returns the HTTP status the server would send and leaves the body in out.
 */
static int eval_stream(const struct handler_loss *loss, FILE *f,
                       const struct handler_limits *lim, struct proto_buf *out,
                       int *ret_io_error)
{
    struct proto_limits plim;
    struct proto_decoder *dec;
    struct proto_doc *doc = NULL;
    struct handler_job *job = NULL;
    struct loss_error err;
    static char chunk[65536];
    size_t total = 0, n;
    enum loss_status st = LOSS_OK;

    loss_error_init(&err);
    handler_decoder_limits(lim, &plim);
    dec = proto_decoder_new(&plim);
    if (dec == NULL) {
        st = loss_fail(&err, LOSS_ENOMEM, NULL, "out of memory");
        goto out;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        total += n;
        if (total > lim->max_body_bytes) {
            st = loss_fail(&err, LOSS_ETOOLARGE, NULL,
                           "request body exceeds max_body_bytes (%zu bytes)",
                           lim->max_body_bytes);
            goto out;
        }
        st = proto_decoder_feed(dec, chunk, n, &err);
        if (st != LOSS_OK)
            goto out;
    }
    if (ferror(f)) {
        *ret_io_error = errno ? errno : EIO;
        goto out;
    }
    st = proto_decoder_finish(dec, &doc, &err);
    if (st != LOSS_OK)
        goto out;
    st = handler_prepare(loss, doc, lim, &job, &err);
    doc = NULL; /* owned by the job, or freed on failure */
    if (st != LOSS_OK)
        goto out;
    st = handler_job_run(job, NULL, out, &err);
out:
    handler_job_free(job);
    proto_decoder_free(dec);
    if (st != LOSS_OK) {
        proto_buf_reset(out);
        proto_problem_write(out, &err, NULL, NULL);
        return proto_status_http(st);
    }
    return 200;
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

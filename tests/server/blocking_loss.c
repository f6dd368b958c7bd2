/*
 * blocking_loss.c - test_block, the loss that only lossd-test serves: lossd
 * plus this file (tests/server/meson.build). It lets an integration test
 * hold a job on the worker pool for exactly as long as it wants, so tests
 * wait on events and never on an amount of work.
 *
 * The loss takes one tensor, input (any shape), and answers it unchanged as
 * its value. Its cost is far above any --inline-max-cost, so it always runs
 * on the pool. Its forward pass goes through a gate: a directory, named by
 * the environment variable LOSSD_TEST_GATE, that holds two FIFOs the test
 * created and keeps open for reading and writing (harness.h):
 *
 *   started  the job writes one byte when its forward pass begins;
 *   release  the job then waits until it has read one byte: each byte lets
 *            exactly one job finish.
 *
 * Without the variable, or when the FIFOs are missing or nobody holds them
 * open, the job fails at once with a 500 problem document: it never waits
 * on a gate that no test can open.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define GATE_ENV "LOSSD_TEST_GATE"

/* Far above any --inline-max-cost, finite for the sums of a batch. */
#define BLOCK_COST 1e15

static enum loss_status block_prepare(struct handler_call *c,
                                      struct loss_error *err)
{
    const struct tensor *x = &c->tensors[0].pt.t;

    (void)err;
    c->out_ndim = x->ndim;
    memcpy(c->out_shape, x->shape, sizeof(c->out_shape));
    c->out_numel = tensor_numel(x);
    c->diff_mask = 0;
    c->cost = BLOCK_COST;
    c->bytes = c->out_numel * sizeof(double);
    return LOSS_OK;
}

/* dir/name in buf, or -1 when it does not fit. */
static int gate_path(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/*
 * Opens the read end of dir/release without waiting for a writer, then
 * makes reads block: a read waits for a byte while a writer holds the FIFO,
 * and sees the end of file when none does. The descriptor, or -1.
 */
static int open_release(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int flags;

    if (fd < 0)
        return -1;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Says "started" and waits for one byte of release; fails without a gate. */
static enum loss_status gate_pass(struct loss_error *err)
{
    const char *dir = getenv(GATE_ENV);
    char started[PATH_MAX], release[PATH_MAX];
    enum loss_status st = LOSS_OK;
    int rfd = -1, sfd = -1;
    char byte = 's';
    ssize_t n;

    if (dir == NULL || *dir == '\0')
        return loss_fail(err, LOSS_EINTERNAL, NULL,
                         "test_block needs " GATE_ENV
                         " (a directory with the FIFOs started and release)");
    if (gate_path(started, sizeof started, dir, "started") < 0 ||
        gate_path(release, sizeof release, dir, "release") < 0)
        return loss_fail(err, LOSS_EINTERNAL, NULL, GATE_ENV " is too long");
    /* the release end first: when the test sees "started", this job is
       already a reader of release */
    rfd = open_release(release);
    if (rfd < 0) {
        st = loss_fail(err, LOSS_EINTERNAL, NULL, "test_block: %s: %s", release,
                       strerror(errno));
        goto out;
    }
    /* O_NONBLOCK: fails (ENXIO) instead of waiting when no test reads */
    sfd = open(started, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (sfd < 0 || write(sfd, &byte, 1) != 1) {
        st = loss_fail(err, LOSS_EINTERNAL, NULL, "test_block: %s: %s", started,
                       strerror(errno));
        goto out;
    }
    do
        n = read(rfd, &byte, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        st = loss_fail(err, LOSS_EINTERNAL, NULL, "test_block: %s: %s", release,
                       n == 0 ? "no test holds it open" : strerror(errno));
out:
    if (sfd >= 0)
        close(sfd);
    if (rfd >= 0)
        close(rfd);
    return st;
}

static enum loss_status block_forward(struct handler_call *c,
                                      const struct loss_exec *ex,
                                      struct handler_output *o,
                                      struct loss_error *err)
{
    const struct tensor *x = &c->tensors[0].pt.t;
    enum loss_status st;

    (void)ex;
    st = gate_pass(err);
    if (st != LOSS_OK)
        return st;
    if (c->out_numel > 0)
        memcpy(o->out, x->data, c->out_numel * sizeof(double));
    o->count = (double)c->out_numel;
    return LOSS_OK;
}

/* Never called: input is not differentiable, so call.c refuses "grad". */
static enum loss_status block_backward(struct handler_call *c,
                                       const struct loss_exec *ex,
                                       struct handler_output *o,
                                       const double *g, size_t gstride,
                                       struct loss_error *err)
{
    (void)c;
    (void)ex;
    (void)o;
    (void)g;
    (void)gstride;
    return loss_fail(err, LOSS_EINTERNAL, NULL, "test_block has no gradient");
}

static const struct handler_family block_family = {
    block_prepare,
    block_forward,
    block_backward,
};

static const struct proto_tensor_desc block_tensors[] = {
    {"input", true, false, "any shape; answered unchanged"},
};

static const struct handler_loss block_loss = {
    {.name = "test_block",
     .summary = "test builds only: the input, once the test releases the job",
     .torch = "none",
     .tensors = block_tensors,
     .ntensors = sizeof block_tensors / sizeof block_tensors[0]},
    &block_family,
    0,
};

/* The strong definition of registry.c's weak reference. */
extern const struct handler_loss *const handler_test_losses[];
const struct handler_loss *const handler_test_losses[] = {&block_loss, NULL};

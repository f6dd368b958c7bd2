/*
 * exec.c - running a kernel's blocks serially or through a caller's
 * executor (exec.h).
 */
#include "exec.h"

void loss_exec_run(const struct loss_exec *ex, size_t nblocks, loss_block_fn fn,
                   void *arg)
{
    if (nblocks == 0)
        return;
    if (ex == NULL || ex->parallel_for == NULL) {
        for (size_t b = 0; b < nblocks; b++)
            fn(arg, b, 0);
        return;
    }
    ex->parallel_for(ex->ctx, nblocks, fn, arg);
}

size_t loss_exec_slots(const struct loss_exec *ex)
{
    if (ex == NULL || ex->parallel_for == NULL || ex->slots == 0)
        return 1;
    return ex->slots;
}

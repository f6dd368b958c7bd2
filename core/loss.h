/*
 * loss.h - conventions shared by every loss kernel.
 *
 * A kernel's forward pass writes the per-sample losses (the tensor PyTorch
 * returns for reduction 'none'); the handler then derives sum (loss_sum() of
 * those values), count (the divisor of PyTorch's mean) and value, as
 * docs/semantics.md section 2 describes. Kernels therefore know nothing of
 * reductions.
 *
 * A backward pass takes the upstream gradient of each per-sample loss as
 * g[i * gstride]: for 'none' that is grad_output (gstride 1); for 'sum' a
 * single value (gstride 0); for 'mean' grad_output / count (gstride 0). This
 * is exactly the vector-Jacobian product PyTorch's autograd computes.
 *
 * Kernels are pure: const inputs, caller-provided outputs, no allocation, no
 * I/O, no threads of their own (see exec.h). Inputs were validated by the
 * handlers; kernels only assert() programmer errors.
 */
#ifndef LOSSD_CORE_LOSS_H
#define LOSSD_CORE_LOSS_H

#include <stddef.h>

enum loss_reduction {
    LOSS_REDUCTION_NONE,
    LOSS_REDUCTION_MEAN,
    LOSS_REDUCTION_SUM,
    LOSS_REDUCTION_BATCHMEAN, /* kl_div only */
};

/* Facts a kernel found in the data, reported as warnings by the handlers. */
enum loss_warning {
    LOSS_WARN_BCE_LOG_CLAMP = 1u << 0, /* a log was clamped at -100 */
    LOSS_WARN_NORMALIZE_EPS = 1u << 1, /* a vector's norm was <= 1e-12 */
};

#endif

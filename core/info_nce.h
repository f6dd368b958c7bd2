/*
 * info_nce.h - InfoNCE in the variants of docs/api.md: pairs, symmetric
 * (CLIP), nt_xent (SimCLR, optionally without the self mask), and explicit
 * negatives (unpaired (M, D) or paired (N, M, D)), with or without L2
 * normalization (x / max(|x|, 1e-12)), forward and backward through the
 * normalization. Their semantics: docs/semantics.md section 7.
 *
 * Similarity matrices are products computed with cblas_dgemm in fixed blocks
 * of rows (or columns), a multiple of LOSS_BLOCK_ROWS (64 to 512) chosen
 * from the shapes alone, so memory stays O(block x N) per slot, never
 * O(N^2); the inner dimension of a product is never split, and every
 * cross-block combination happens in block order, so results do not depend
 * on the executor.
 */
#ifndef LOSSD_CORE_INFO_NCE_H
#define LOSSD_CORE_INFO_NCE_H

#include <stdbool.h>
#include <stddef.h>

#include "exec.h"

enum loss_nce_variant {
    LOSS_NCE_PAIRS,
    LOSS_NCE_SYMMETRIC,
    LOSS_NCE_NT_XENT,
};

struct loss_nce_args {
    size_t n;            /* rows of query and positive_key */
    size_t d;            /* feature dimension */
    size_t m;            /* negatives per query, 0 without negative_keys */
    const double *query; /* n x d */
    const double *positive_key;  /* n x d */
    const double *negative_keys; /* m x d (unpaired), n x m x d (paired) */
    bool paired;
    bool normalize;
    bool mask_self;                /* nt_xent only */
    enum loss_nce_variant variant; /* PAIRS when negative_keys are given */
    double temperature;            /* finite, > 0 */
};

/* Number of per-sample losses: 2n for nt_xent, n otherwise. */
size_t loss_nce_samples(const struct loss_nce_args *a);

/*
 * Doubles of workspace loss_nce_run() needs for an executor with `slots`
 * slots, with or without the backward pass. Returns false if that count
 * overflows size_t.
 */
bool loss_nce_workspace(const struct loss_nce_args *a, size_t slots,
                        bool backward, size_t *ret);

/*
 * Forward (and backward when g != NULL). out: loss_nce_samples() per-sample
 * losses. Upstream gradient g[i*gstride] per sample. Gradients for query,
 * positive_key and negative_keys (shaped like them) are written to the
 * non-NULL grad_* pointers. work holds loss_nce_workspace() doubles.
 * Returns a mask of enum loss_warning (LOSS_WARN_NORMALIZE_EPS when a vector
 * norm was at or below eps).
 */
unsigned loss_nce_run(const struct loss_nce_args *a, double *out,
                      const double *g, size_t gstride, double *grad_query,
                      double *grad_positive, double *grad_negative,
                      double *work, const struct loss_exec *ex);

#endif

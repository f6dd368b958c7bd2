/*
 * blas.h - the core's use of OpenBLAS, and what must happen before it.
 *
 * Similarity matrices are matrix products (cblas_dgemm). For reproducible
 * results and to keep OpenBLAS's own threads from oversubscribing the worker
 * pool, loss_blas_init() must be called once, before any other thread starts,
 * in every program that links the core (lossd and each test binary).
 */
#ifndef LOSSD_CORE_BLAS_H
#define LOSSD_CORE_BLAS_H

/* Pins OpenBLAS to one thread. Idempotent; call before starting threads. */
void loss_blas_init(void);

/* The OpenBLAS CPU kernel in use ("Haswell", ...); a static string. */
const char *loss_blas_core(void);

/* The OpenBLAS build configuration string; a static string. */
const char *loss_blas_config(void);

#endif

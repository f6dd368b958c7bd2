/*
 * blas.c - OpenBLAS set up for the core: one thread, and the core it picked
 * (blas.h).
 */
#include "blas.h"

#include <cblas.h>

void loss_blas_init(void)
{
    openblas_set_num_threads(1);
}

const char *loss_blas_core(void)
{
    return openblas_get_corename();
}

const char *loss_blas_config(void)
{
    return openblas_get_config();
}

/*
 * main.c - the lossd executable: `lossd [serve]`, `lossd eval`, --help,
 * --version.
 */
#include <stdio.h>
#include <string.h>

#include "blas.h"
#include "cli.h"
#include "serve.h"

#ifndef LOSSD_VERSION
#define LOSSD_VERSION "unknown"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: lossd [serve] [OPTIONS]    run the HTTP service "
               "(`lossd serve --help`)\n"
               "       lossd eval LOSS [FILE|-]  evaluate one request body\n"
               "       lossd eval batch [FILE|-] evaluate a batch body\n"
               "       lossd --version           version and OpenBLAS core\n"
               "       lossd --help\n"
               "\n"
               "PyTorch's loss functions, values and gradients in float64, "
               "over HTTP.\n");
}

int main(int argc, char **argv)
{
    /* Before any thread exists: OpenBLAS must not start its own. */
    loss_blas_init();

    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
                      !strcmp(argv[1], "help"))) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("lossd %s\nopenblas %s (%s)\n", LOSSD_VERSION, loss_blas_core(),
               loss_blas_config());
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "eval"))
        return cli_eval_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "serve"))
        return server_serve_main(argc - 1, argv + 1);
    if (argc >= 2 && argv[1][0] != '-') {
        fprintf(stderr, "lossd: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    /* No subcommand (or only options): serve. */
    argv[0] = "serve";
    return server_serve_main(argc, argv);
}

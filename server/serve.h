/*
 * serve.h - `lossd serve`: the HTTP service (libmicrohttpd + a libuv pool).
 */
#ifndef LOSSD_SERVER_SERVE_H
#define LOSSD_SERVER_SERVE_H

/*
 * Runs the server until it is stopped; returns the process exit code (0
 * after a graceful drain, 2 for bad configuration). argv[0] is "serve".
 * loss_blas_init() must have run before.
 */
int server_serve_main(int argc, char **argv);

#endif

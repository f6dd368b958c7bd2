/*
 * cli.h - `lossd eval`: one request body through exactly the handlers the
 * server uses, from a file or stdin, the response on stdout.
 */
#ifndef LOSSD_SERVER_CLI_H
#define LOSSD_SERVER_CLI_H

/*
 * argv[0] is "eval". Exit codes: 0 success (for "batch": the envelope was
 * accepted), 1 the request was refused (problem document on stdout), 2 usage
 * or I/O errors (message on stderr).
 */
int cli_eval_main(int argc, char **argv);

#endif

/*
 * test_cli.c - the lossd executable's command line: `lossd eval` exit codes
 * and documents, streaming a large body from stdin, --version and --help.
 * Runs the real binary (LOSSD_EXE).
 */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct run {
    int code;  /* exit code, or -signal */
    char *out; /* stdout, NUL-terminated */
    size_t len;
};

/*
 * Runs LOSSD_EXE with args; stdin from the file `input` (or /dev/null),
 * stdout captured, stderr to the test's stderr.
 */
static struct run run_lossd(const char *const *args, const char *input)
{
    const char *exe = getenv("LOSSD_EXE");
    struct run r = {0};
    int out[2];
    pid_t pid;
    size_t cap = 4096;
    ssize_t n;
    int status;

    ck_assert_msg(exe != NULL, "LOSSD_EXE is not set");
    ck_assert_int_eq(pipe(out), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        const char *argv[16] = {exe};
        int in = open(input ? input : "/dev/null", O_RDONLY);
        size_t i = 0;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (; args[i] != NULL && i < 14; i++)
            argv[i + 1] = args[i];
        dup2(in, 0);
        dup2(out[1], 1);
        close(out[0]);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    r.out = malloc(cap);
    ck_assert_ptr_nonnull(r.out);
    while ((n = read(out[0], r.out + r.len, cap - r.len - 1)) > 0) {
        r.len += (size_t)n;
        if (cap - r.len < 2) {
            cap *= 2;
            r.out = realloc(r.out, cap);
            ck_assert_ptr_nonnull(r.out);
        }
    }
    r.out[r.len] = '\0';
    close(out[0]);
    waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return r;
}

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *temp_file(const char *text)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/lossd-cli-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(test_eval_file_ok)
{
    const char *path = temp_file("{\"input\": [[1, 2], [3, 4]], \"target\": "
                                 "[1, 0], \"grad\": true}");
    const char *args[] = {"eval", "cross_entropy", path, NULL};
    struct run r = run_lossd(args, NULL);
    json_t *doc = json_loads(r.out, 0, NULL);

    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "loss")),
                     "cross_entropy");
    ck_assert_ptr_nonnull(
        json_object_get(json_object_get(doc, "grad"), "input"));
    json_decref(doc);
    free(r.out);
    unlink(path);
}
END_TEST

START_TEST(test_eval_stdin_refused)
{
    const char *path = temp_file("{\"input\": [[1, 2]], \"target\": [7]}");
    const char *args[] = {"eval", "cross_entropy", "-", NULL};
    struct run r = run_lossd(args, path);
    json_t *doc = json_loads(r.out, 0, NULL);

    ck_assert_int_eq(r.code, 1);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "status")), 422);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "pointer")),
                     "/target/0");
    json_decref(doc);
    free(r.out);
    unlink(path);
}
END_TEST

START_TEST(test_eval_syntax_error)
{
    const char *path = temp_file("{\"input\": [1, 2,]}");
    const char *args[] = {"eval", "mse", path, NULL};
    struct run r = run_lossd(args, NULL);
    json_t *doc = json_loads(r.out, 0, NULL);

    ck_assert_int_eq(r.code, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "status")), 400);
    ck_assert(json_is_integer(json_object_get(doc, "offset")));
    json_decref(doc);
    free(r.out);
    unlink(path);
}
END_TEST

START_TEST(test_eval_batch)
{
    const char *path = temp_file(
        "{\"shared\": {\"input\": [0.2, 0.8], \"target\": [0, 1]}, "
        "\"requests\": [{\"loss\": \"mse\", \"id\": 1}, {\"loss\": "
        "\"binary_cross_entropy\", \"id\": 2}, {\"loss\": \"nope\"}]}");
    const char *args[] = {"eval", "batch", path, NULL};
    struct run r = run_lossd(args, NULL);
    json_t *doc = json_loads(r.out, 0, NULL);
    json_t *res = json_object_get(doc, "results");

    /* The envelope was accepted, even though one item was refused. */
    ck_assert_int_eq(r.code, 0);
    ck_assert_uint_eq(json_array_size(res), 3);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(res, 2), "status")),
        404);
    json_decref(doc);
    free(r.out);
    unlink(path);
}
END_TEST

START_TEST(test_usage_errors)
{
    const char *unknown[] = {"eval", "no_such_loss", NULL};
    const char *missing[] = {"eval", "mse", "/nonexistent/body.json", NULL};
    const char *none[] = {"eval", NULL};
    const char *bad[] = {"frobnicate", NULL};
    struct run r;

    r = run_lossd(unknown, NULL);
    ck_assert_int_eq(r.code, 2);
    free(r.out);
    r = run_lossd(missing, NULL);
    ck_assert_int_eq(r.code, 2);
    free(r.out);
    r = run_lossd(none, NULL);
    ck_assert_int_eq(r.code, 2);
    free(r.out);
    r = run_lossd(bad, NULL);
    ck_assert_int_eq(r.code, 2);
    free(r.out);
}
END_TEST

START_TEST(test_version_and_help)
{
    const char *version[] = {"--version", NULL};
    const char *help[] = {"--help", NULL};
    const char *eval_help[] = {"eval", "--help", NULL};
    struct run r;

    r = run_lossd(version, NULL);
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "lossd "));
    ck_assert_ptr_nonnull(strstr(r.out, "openblas "));
    free(r.out);
    r = run_lossd(help, NULL);
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "eval"));
    free(r.out);
    r = run_lossd(eval_help, NULL);
    ck_assert_int_eq(r.code, 0);
    free(r.out);
}
END_TEST

/* A 24 MB body streamed from stdin: read in chunks, answered correctly. */
START_TEST(test_eval_large_stdin)
{
    char path[] = "/tmp/lossd-cli-large-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    const size_t n = 1000000;
    const char *args[] = {"eval", "mse", "-", NULL};
    struct run r;
    json_t *doc;

    ck_assert_ptr_nonnull(f);
    fputs("{\"reduction\": \"sum\", \"input\": [", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s0.125000000001", i ? "," : "");
    fputs("], \"target\": [", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s0.625000000001", i ? "," : "");
    fputs("]}", f);
    fclose(f);
    r = run_lossd(args, path);
    doc = json_loads(r.out, 0, NULL);
    ck_assert_int_eq(r.code, 0);
    /* (0.125 - 0.625)^2 = 0.25 per element, summed over 1e6 */
    ck_assert(json_real_value(json_object_get(doc, "value")) > 249999.9 &&
              json_real_value(json_object_get(doc, "value")) < 250000.1);
    json_decref(doc);
    free(r.out);
    unlink(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_eval_file_ok);
    tcase_add_test(tc, test_eval_stdin_refused);
    tcase_add_test(tc, test_eval_syntax_error);
    tcase_add_test(tc, test_eval_batch);
    tcase_add_test(tc, test_usage_errors);
    tcase_add_test(tc, test_version_and_help);
    tcase_add_test(tc, test_eval_large_stdin);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

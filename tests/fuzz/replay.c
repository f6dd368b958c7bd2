/*
 * replay.c - the fuzz targets' regression test in builds without libFuzzer:
 * a main() that runs LLVMFuzzerTestOneInput() once on every file named on
 * the command line or found in a directory named there (sorted, dot files
 * skipped), and reports one TAP line per file. A broken invariant aborts
 * the process, so the file that broke it is the last one logged.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

struct names {
    char **v;
    size_t n, cap;
};

static void add(struct names *l, const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);

    if (path == NULL)
        abort();
    snprintf(path, len, "%s%s%s", dir, *dir ? "/" : "", name);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        if (l->v == NULL)
            abort();
    }
    l->v[l->n++] = path;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dots(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Adds path, or the files of the directory path; -1 when it cannot. */
static int collect(struct names *l, const char *path)
{
    struct dirent **ents;
    struct stat st;
    int n;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        add(l, "", path);
        return 0;
    }
    n = scandir(path, &ents, skip_dots, by_name);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        add(l, path, ents[i]->d_name);
        free(ents[i]);
    }
    free(ents);
    return 0;
}

/* The whole file at path (new, caller frees) in *ret, its size in *ret_n;
   an empty file gives a 1-byte allocation. */
static int slurp(const char *path, uint8_t **ret, size_t *ret_n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;

    if (f == NULL)
        return -1;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? 2 * cap : 8192;
            uint8_t *b = realloc(buf, cap);
            if (b == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *ret = buf;
    *ret_n = n;
    return 0;
}

int main(int argc, char **argv)
{
    struct names l = {0};
    int failed = 0;

    for (int i = 1; i < argc; i++)
        if (collect(&l, argv[i]) < 0)
            return 1;
    if (l.n == 0) {
        fprintf(stderr, "replay: no input files\n");
        return 1;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    printf("1..%zu\n", l.n);
    fflush(stdout);
    for (size_t i = 0; i < l.n; i++) {
        uint8_t *data;
        size_t n;

        if (slurp(l.v[i], &data, &n) < 0) {
            printf("not ok %zu - %s: %s\n", i + 1, l.v[i], strerror(errno));
            failed = 1;
        } else {
            /* named first, so an abort names the file that caused it */
            fprintf(stderr, "replay: %s (%zu bytes)\n", l.v[i], n);
            LLVMFuzzerTestOneInput(data, n);
            free(data);
            printf("ok %zu - %s\n", i + 1, l.v[i]);
        }
        fflush(stdout);
        free(l.v[i]);
    }
    free(l.v);
    return failed;
}

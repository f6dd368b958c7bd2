/*
 * failmalloc.c - the allocation wrappers of failmalloc.h. The executables
 * are linked with --wrap=<function>, so the code linked into them calls
 * __wrap_<function>, and __real_<function> is the C library's (or ASan's).
 */
#include "failmalloc.h"

#include <jansson.h>
#include <locale.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
locale_t __real_newlocale(int mask, const char *name, locale_t base);
void __real_freelocale(locale_t loc);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
locale_t __wrap_newlocale(int mask, const char *name, locale_t base);
void __wrap_freelocale(locale_t loc);

static _Atomic size_t fail_at;   /* 0: never */
static _Atomic bool fail_sticky; /* and every one after fail_at */
static _Atomic size_t attempts;  /* since failmalloc_fail_after() */
static _Atomic size_t failures;  /* injected since then */
static _Atomic long live;        /* handed out and not yet freed */

void failmalloc_injected(size_t k)
{
    __asm__ volatile("" : : "r"(k) : "memory"); /* not optimised away */
}

/* Counts one allocation; false when it is to fail. */
static bool may_allocate(void)
{
    size_t k = atomic_fetch_add(&attempts, 1) + 1;
    size_t at = atomic_load(&fail_at);

    if (at != 0 && (k == at || (k > at && atomic_load(&fail_sticky)))) {
        atomic_fetch_add(&failures, 1);
        failmalloc_injected(k);
        return false;
    }
    return true;
}

static void *counted(void *p)
{
    if (p != NULL)
        atomic_fetch_add(&live, 1);
    return p;
}

void *__wrap_malloc(size_t n)
{
    return may_allocate() ? counted(__real_malloc(n)) : NULL;
}

void *__wrap_calloc(size_t n, size_t size)
{
    return may_allocate() ? counted(__real_calloc(n, size)) : NULL;
}

void *__wrap_realloc(void *p, size_t n)
{
    void *q;

    if (p != NULL && n == 0) { /* glibc frees it */
        __wrap_free(p);
        return NULL;
    }
    if (!may_allocate())
        return NULL; /* p is left as it was */
    q = __real_realloc(p, n);
    return p == NULL ? counted(q) : q;
}

void __wrap_free(void *p)
{
    if (p != NULL)
        atomic_fetch_sub(&live, 1);
    __real_free(p);
}

char *__wrap_strdup(const char *s)
{
    return may_allocate() ? counted(__real_strdup(s)) : NULL;
}

char *__wrap_strndup(const char *s, size_t n)
{
    return may_allocate() ? counted(__real_strndup(s, n)) : NULL;
}

locale_t __wrap_newlocale(int mask, const char *name, locale_t base)
{
    locale_t loc;

    if (!may_allocate())
        return (locale_t)0;
    loc = __real_newlocale(mask, name, base);
    if (loc != (locale_t)0 && base == (locale_t)0)
        atomic_fetch_add(&live, 1);
    return loc;
}

void __wrap_freelocale(locale_t loc)
{
    if (loc != (locale_t)0)
        atomic_fetch_sub(&live, 1);
    __real_freelocale(loc);
}

/* jansson's allocator type is a function of size_t, as malloc. */
static void *json_malloc(size_t n)
{
    return __wrap_malloc(n);
}

static void json_free(void *p)
{
    __wrap_free(p);
}

void failmalloc_install(void)
{
    json_set_alloc_funcs(json_malloc, json_free);
}

void failmalloc_fail_after(size_t n, bool sticky)
{
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_at, n);
    atomic_store(&attempts, 0);
    atomic_store(&failures, 0);
}

void failmalloc_off(void)
{
    atomic_store(&fail_at, 0);
}

size_t failmalloc_count(void)
{
    return atomic_load(&attempts);
}

size_t failmalloc_failures(void)
{
    return atomic_load(&failures);
}

long failmalloc_live(void)
{
    return atomic_load(&live);
}

/*
 * failmalloc.h - allocation failure injection for the tests that fail the
 * Nth allocation (test_oom.c in tests/proto and tests/handlers).
 *
 * The executables that use it are linked with the linker's --wrap for
 * malloc, calloc, realloc, free, strdup, strndup, newlocale and freelocale
 * (failmalloc_link_args in tests/meson.build): every such call made by code
 * linked into the executable (core, proto, handlers, the test) goes through
 * the wrappers here, which count it and then call the real function. Under
 * AddressSanitizer the real function is ASan's, so its leak check still
 * sees every pointer. failmalloc_install() sends jansson's allocations
 * through the same wrappers (json_set_alloc_funcs()), so the documents
 * written with jansson are counted too.
 *
 * Not thread-safe in what it injects: the counters are atomic, but which
 * allocation is "the Nth" is only meaningful on one thread.
 */
#ifndef LOSSD_TESTS_FAILMALLOC_H
#define LOSSD_TESTS_FAILMALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* Routes jansson's allocations through the wrappers. Once, before any
   json_t is made. */
void failmalloc_install(void);

/*
 * Makes the nth allocation from now (1: the next one) return NULL; with
 * sticky, every later one too, until failmalloc_off(). n = 0 turns failures
 * off. Also restarts the count of failmalloc_count().
 */
void failmalloc_fail_after(size_t n, bool sticky);
void failmalloc_off(void);

/* Allocations attempted since the last failmalloc_fail_after() (failed
   ones included). */
size_t failmalloc_count(void);

/* Allocations that were made to fail since failmalloc_fail_after(). */
size_t failmalloc_failures(void);

/*
 * Pointers handed out by the wrappers and not yet freed through them (a
 * new locale counts as one). A balanced piece of code leaves it unchanged.
 */
long failmalloc_live(void);

/* Called with the allocation's number at each failure it injects: where
   a debugger stops to show who allocated (break failmalloc_injected). */
void failmalloc_injected(size_t k);

#endif

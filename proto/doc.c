/*
 * doc.c - the decoded document of doc.h: its arena, its owned blocks, its
 * list of value errors, and the accessors.
 *
 * The arena is a list of chunks; the head serves small allocations. A
 * request that does not fit in a quarter of the next chunk size gets a
 * chunk of its own, linked behind the head so the head keeps serving small
 * ones. Every byte taken from malloc() is counted in bytes, so
 * proto_doc_bytes() is what the document holds.
 */
#include "doc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "value.h"

struct chunk {
    struct chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

/* A block the document frees: from malloc() (map_len 0) or a mapping of
   map_len bytes (proto_doc_own_mapping()). */
struct owned {
    void *p;
    size_t map_len;
};

struct proto_doc {
    struct proto_value root;
    struct chunk *chunks; /* arena; the head serves small allocations */
    struct owned *owned;  /* large blocks: tensor data, long strings */
    size_t nowned;
    size_t owned_cap;
    size_t elements;
    size_t bytes;      /* heap bytes of everything above */
    size_t chunk_next; /* size of the next arena chunk */
    /* recover_values: the first errors in full (each in the arena) */
    const struct loss_error **errors;
    size_t nkept;
    size_t errors_cap;
    size_t nerrors; /* all value errors found, kept or not */
};

const struct proto_value *proto_doc_root(const struct proto_doc *doc)
{
    return &doc->root;
}

size_t proto_doc_elements(const struct proto_doc *doc)
{
    return doc->elements;
}

size_t proto_doc_bytes(const struct proto_doc *doc)
{
    return sizeof(*doc) + doc->bytes;
}

size_t proto_doc_errors(const struct proto_doc *doc, size_t *ret_total)
{
    if (ret_total != NULL)
        *ret_total = doc->nerrors;
    return doc->nkept;
}

const struct loss_error *proto_doc_error(const struct proto_doc *doc, size_t i)
{
    return i < doc->nkept ? doc->errors[i] : NULL;
}

struct proto_doc *proto_doc_new(void)
{
    struct proto_doc *doc = calloc(1, sizeof(*doc));

    if (doc != NULL)
        doc->root.type = PROTO_NULL;
    return doc;
}

void proto_doc_clear(struct proto_doc *doc)
{
    struct chunk *c, *next;

    for (c = doc->chunks; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    for (size_t i = 0; i < doc->nowned; i++) {
        if (doc->owned[i].map_len > 0)
            munmap(doc->owned[i].p, doc->owned[i].map_len);
        else
            free(doc->owned[i].p);
    }
    free(doc->owned);
    free(doc->errors);
    memset(doc, 0, sizeof(*doc));
    doc->root.type = PROTO_NULL;
}

void proto_doc_free(struct proto_doc *doc)
{
    if (doc == NULL)
        return;
    proto_doc_clear(doc);
    free(doc);
}

void *proto_doc_alloc(struct proto_doc *doc, size_t n)
{
    struct chunk *c = doc->chunks;
    size_t a;
    void *p;

    if (n > SIZE_MAX / 2)
        return NULL;
    a = (n + 15) & ~(size_t)15;
    if (c == NULL || c->size - c->used < a) {
        /* Chunks grow from under 1 KiB, so a small body stays small and
           its first chunk is served from malloc's per-thread cache (from
           1 KiB up, each malloc also consolidated the fast bins). */
        size_t grow =
            doc->chunk_next ? doc->chunk_next : 1024 - sizeof(*c) - 32;
        size_t size = a > grow / 4 ? a : grow;

        c = malloc(sizeof(*c) + size);
        if (c == NULL)
            return NULL;
        doc->bytes += sizeof(*c) + size;
        c->size = size;
        c->used = 0;
        if (size == grow && grow < PROTO_DOC_CHUNK_MAX)
            doc->chunk_next =
                grow * 2 < PROTO_DOC_CHUNK_MAX ? grow * 2 : PROTO_DOC_CHUNK_MAX;
        if (size == a && doc->chunks != NULL) {
            /* a dedicated chunk: keep the head serving small ones */
            c->next = doc->chunks->next;
            doc->chunks->next = c;
        } else {
            c->next = doc->chunks;
            doc->chunks = c;
        }
    }
    p = (char *)c->data + c->used;
    c->used += a;
    return p;
}

static bool own(struct proto_doc *doc, void *p, size_t map_len, size_t size)
{
    if (doc->nowned == doc->owned_cap) {
        size_t ncap = doc->owned_cap ? doc->owned_cap * 2 : 16;
        struct owned *n;

        if (ncap > SIZE_MAX / sizeof(*n))
            return false;
        n = realloc(doc->owned, ncap * sizeof(*n));
        if (n == NULL)
            return false;
        doc->bytes += (ncap - doc->owned_cap) * sizeof(*n);
        doc->owned = n;
        doc->owned_cap = ncap;
    }
    doc->owned[doc->nowned].p = p;
    doc->owned[doc->nowned].map_len = map_len;
    doc->nowned++;
    doc->bytes += size;
    return true;
}

bool proto_doc_own(struct proto_doc *doc, void *p, size_t size)
{
    return own(doc, p, 0, size);
}

bool proto_doc_own_mapping(struct proto_doc *doc, void *p, size_t len)
{
    return own(doc, p, len, len);
}

size_t proto_big_len(size_t bytes)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);

    return bytes > SIZE_MAX - pg ? 0 : (bytes + pg - 1) / pg * pg;
}

void *proto_big_alloc(size_t bytes)
{
    size_t len = proto_big_len(bytes);
    void *p;

    if (bytes < PROTO_BIG_MIN)
        return malloc(bytes ? bytes : 1);
    if (len == 0)
        return NULL;
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
             0);
    if (p == MAP_FAILED)
        return NULL;
    (void)madvise(p, len, MADV_HUGEPAGE); /* EINVAL without THP */
    return p;
}

void proto_big_free(void *p, size_t bytes)
{
    if (p == NULL)
        return;
    if (bytes < PROTO_BIG_MIN)
        free(p);
    else
        munmap(p, proto_big_len(bytes));
}

bool proto_doc_own_big(struct proto_doc *doc, void *p, size_t bytes)
{
    return bytes < PROTO_BIG_MIN
               ? proto_doc_own(doc, p, bytes ? bytes : 1)
               : proto_doc_own_mapping(doc, p, proto_big_len(bytes));
}

void proto_doc_set_root(struct proto_doc *doc, const struct proto_value *v)
{
    doc->root = *v;
}

void proto_doc_set_elements(struct proto_doc *doc, size_t elements)
{
    doc->elements = elements;
}

bool proto_doc_add_error(struct proto_doc *doc, size_t max_kept,
                         enum loss_status st, const char *pointer,
                         const char *detail,
                         const struct loss_error **ret_error)
{
    struct loss_error *e = NULL;

    if (doc->nkept < max_kept) {
        if (doc->nkept == doc->errors_cap) {
            size_t ncap = doc->errors_cap ? doc->errors_cap * 2 : 8;
            const struct loss_error **n;

            if (ncap > SIZE_MAX / sizeof(*n))
                return false;
            n = realloc(doc->errors, ncap * sizeof(*n));
            if (n == NULL)
                return false;
            doc->bytes += (ncap - doc->errors_cap) * sizeof(*n);
            doc->errors = n;
            doc->errors_cap = ncap;
        }
        e = proto_doc_alloc(doc, sizeof(*e));
        if (e == NULL)
            return false;
        loss_error_init(e);
        loss_fail(e, st, pointer, "%s", detail);
        doc->errors[doc->nkept++] = e;
    }
    doc->nerrors++;
    *ret_error = e;
    return true;
}

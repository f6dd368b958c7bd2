/*
 * doc.h - the decoded document: the tree of a request body and the memory
 * it lives in.
 *
 * A struct proto_doc owns everything of one decoded body: an arena of chunks
 * for the small things (nodes, keys, short strings, small tensors, errors),
 * a list of large blocks handed over whole (tensor data, long strings), and
 * the value errors a decoder with recover_values found. Freeing it frees
 * all of that at once and walks no tree. Values (value.h) borrow from it.
 *
 * The first part below is for everyone who holds a decoded document; the
 * second is the decoder's (decode.h), which builds one.
 */
#ifndef LOSSD_PROTO_DOC_H
#define LOSSD_PROTO_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

struct proto_value;
struct proto_doc;

/* --- reading a document -------------------------------------------------- */

/* The root value; borrowed from doc. */
const struct proto_value *proto_doc_root(const struct proto_doc *doc);

/* Total tensor elements in the document (what max_elements counted): an
   empty tensor counts the product of its dimensions but 0 (none: 0). */
size_t proto_doc_elements(const struct proto_doc *doc);

/* Bytes the document holds on the heap, for in-flight memory accounting. */
size_t proto_doc_bytes(const struct proto_doc *doc);

/*
 * The value errors of a document decoded with recover_values, in the order
 * the decoder found them (the first is the error a decoder without
 * recovery stops at; inside one invalid value only its first error is
 * found, and a duplicate key is found when its object closes). The first
 * max_value_errors are kept in full; proto_doc_errors() returns how
 * many were kept and, in *ret_total (may be NULL), how many were found.
 * proto_doc_error() returns kept error i (borrowed from doc), or NULL when
 * i >= the kept count. Both are 0 / NULL for a document without errors.
 */
size_t proto_doc_errors(const struct proto_doc *doc, size_t *ret_total);
const struct loss_error *proto_doc_error(const struct proto_doc *doc, size_t i);

/* Frees the document and everything in it. NULL is fine. */
void proto_doc_free(struct proto_doc *doc);

/* --- building a document (the decoder's) --------------------------------- */

/*
 * The largest arena chunk. Chunks grow from under 1 KiB up to this size; a
 * block this large or larger is better handed over with proto_doc_own()
 * than copied into the arena.
 */
#define PROTO_DOC_CHUNK_MAX ((size_t)64 * 1024)

/*
 * A new empty document (a null root, no elements, no errors), or NULL when
 * out of memory. The caller frees it with proto_doc_free().
 */
struct proto_doc *proto_doc_new(void);

/*
 * Frees everything doc holds and leaves it as proto_doc_new() makes it, so
 * one document can serve body after body. Every pointer it handed out
 * (proto_doc_alloc(), owned blocks, errors, values) dangles afterwards.
 */
void proto_doc_clear(struct proto_doc *doc);

/*
 * n bytes aligned to 16 that live as long as the document (the arena: freed
 * only with it). NULL when out of memory or when n > SIZE_MAX / 2; the
 * document is unchanged then. Counted in proto_doc_bytes().
 */
void *proto_doc_alloc(struct proto_doc *doc, size_t n);

/*
 * Hands block p (from malloc(), size bytes, counted in proto_doc_bytes())
 * to the document, which frees it with itself. False when out of memory:
 * then p was not taken and stays the caller's.
 */
bool proto_doc_own(struct proto_doc *doc, void *p, size_t size);

/*
 * proto_doc_own() for an anonymous mapping of len bytes at p (from mmap()
 * or mremap()): the document unmaps it with itself. False when out of
 * memory: then the mapping stays the caller's.
 */
bool proto_doc_own_mapping(struct proto_doc *doc, void *p, size_t len);

/*
 * Large arrays (tensors read from binary data, gradients): from
 * PROTO_BIG_MIN bytes an anonymous mapping of their own that asks for
 * transparent huge pages (MADV_HUGEPAGE, a hint), so 80 MB costs some 40
 * page faults instead of 20000 and goes back to the system when freed;
 * smaller ones from malloc(). Zeroed either way is not promised. NULL when
 * out of memory. Free with proto_big_free() and the same size, or hand to
 * a document with proto_doc_own_big().
 */
#define PROTO_BIG_MIN ((size_t)2 << 20)
void *proto_big_alloc(size_t bytes);
/* The length of the mapping proto_big_alloc() makes for bytes (whole
   pages; 0 on overflow), for mremap() and munmap(). */
size_t proto_big_len(size_t bytes);
void proto_big_free(void *p, size_t bytes);
bool proto_doc_own_big(struct proto_doc *doc, void *p, size_t bytes);

/* Sets the root value (copied; what it points to must be doc's). */
void proto_doc_set_root(struct proto_doc *doc, const struct proto_value *v);

/* Sets what proto_doc_elements() returns. */
void proto_doc_set_elements(struct proto_doc *doc, size_t elements);

/*
 * Records a value error: st, pointer (may be NULL) and detail, as
 * loss_fail() writes them. While fewer than max_kept errors are kept it is
 * kept in full, in the arena, and *ret_error (borrowed from doc) points to
 * it; past that it is only counted and *ret_error is NULL. False when out
 * of memory: then nothing is recorded and *ret_error is not written.
 */
bool proto_doc_add_error(struct proto_doc *doc, size_t max_kept,
                         enum loss_status st, const char *pointer,
                         const char *detail,
                         const struct loss_error **ret_error);

#endif

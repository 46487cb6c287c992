/* LVM2's text metadata (the grammar of lvm2's config files): sections `name { ... }`, entries
 * `key = value` where a value is an integer, a "string" (backslash escapes the next byte) or a
 * list `[ v, v ]` of those, and `#` comments to the end of the line. The text comes from the
 * image, so it is parsed strictly and within bounds: nesting depth, the number of entries and
 * integer ranges are limited, and a duplicate key is an error rather than a guess. */
#ifndef KITE_GUESTFS_LVMTEXT_H
#define KITE_GUESTFS_LVMTEXT_H

#include <stddef.h>
#include <stdint.h>

#define LVT_MAX_DEPTH	16 /* lvm2 writes at most 5 levels */
#define LVT_MAX_ENTRIES (1 << 20)

enum lvt_type { LVT_SECTION, LVT_INT, LVT_STRING, LVT_LIST };

struct lvt_node {
	const char *key; /* NULL for a list's items */
	enum lvt_type type;
	int64_t num;		/* LVT_INT */
	const char *str;	/* LVT_STRING, without its quotes and escapes */
	struct lvt_node *child; /* a section's entries or a list's items, in text order */
	struct lvt_node *next;
	size_t count; /* entries or items */
	unsigned line;
};

struct lvt_chunk;

struct lvt {
	struct lvt_node root; /* the top-level entries, as a section without a key */
	struct lvt_chunk *mem;
	size_t entries;
};

/* Parses `len` bytes of `text` (a NUL ends it early). Errors are reported as
 * "<what>, line N: <why>"; returns -1 and leaves nothing to free. */
int lvt_parse(struct lvt *t, const char *text, size_t len, const char *what);
void lvt_free(struct lvt *t);

/* The entry `key` directly inside `section`, or NULL. */
const struct lvt_node *lvt_get(const struct lvt_node *section, const char *key);

#endif

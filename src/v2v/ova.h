/* An OVA: a tar archive (read with libarchive) holding an OVF descriptor, its optional
 * manifest and the disk files the OVF names, side by side. Nothing in it is trusted: every
 * entry must be a regular file with a plain name (no directory part, no "..", not absolute,
 * no name twice), and entries are only ever read into memory or into a file descriptor the
 * caller opened: an entry's name never becomes a host path. */
#ifndef KITE_V2V_OVA_H
#define KITE_V2V_OVA_H

#include <stddef.h>
#include <stdint.h>

struct ova_entry {
	char *name; /* as stored, less a leading "./" */
	uint64_t size;
};

struct ova {
	char *path;
	struct ova_entry *e;
	size_t n;
};

/* Lists the archive, refusing it (with the entry named) when an entry is not a regular file
 * with a plain name. Returns 0 or -1 (reported). Free with ova_close. */
int ova_open(struct ova *o, const char *path);
void ova_close(struct ova *o);

/* The entry named `name`, or NULL. */
const struct ova_entry *ova_find(const struct ova *o, const char *name);
/* The only entry whose name ends in `suffix` (".ovf"); NULL with *count the number found. */
const struct ova_entry *ova_find_suffix(const struct ova *o, const char *suffix, int *count);

/* Streams entry `name` to `sink` (which returns 0 or -1), at most its listed size. Returns 0
 * or -1 (reported, the archive named). */
typedef int (*ova_sink)(void *ctx, const void *buf, size_t len);
int ova_read(const struct ova *o, const char *name, ova_sink sink, void *ctx);
/* An entry of at most `max` bytes into memory (NUL-terminated; the caller frees *data). */
int ova_read_all(const struct ova *o, const char *name, size_t max, char **data, size_t *len);

#endif

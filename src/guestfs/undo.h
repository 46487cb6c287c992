/* A struct gdev over another that keeps the old content of what it overwrites, so that a change
 * which fails part way can be taken back whole: kite guest's write verbs change an image
 * completely or not at all. Ranges the owner says hold nothing worth keeping (blocks that were
 * free when the filesystem was opened) go straight through without a copy, so copying a large
 * file in keeps only the metadata it changes in memory. */
#ifndef KITE_GUESTFS_UNDO_H
#define KITE_GUESTFS_UNDO_H

#include "guestfs/dev.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUNDO_UNIT 1024u /* bytes kept per entry: ext2's smallest block */

struct gundo_entry;

struct gundo {
	const struct gdev *lower;
	/* Does [off, off + len) hold nothing that must survive an undo? NULL: everything does. */
	bool (*unused)(void *opaque, uint64_t off, size_t len);
	/* Called once, before the first write reaches the lower device (kite marks the
	 * filesystem as being changed there); a failure fails that write. */
	int (*begin)(void *opaque);
	void *opaque;
	uint64_t last; /* the offset whose unit an undo restores last, after a flush */
	bool keep;     /* false: writes go through and nothing can be undone */
	bool begun;
	/* A read, write or flush failed, even one its caller went on after (libext2fs ignores
	 * some): the change must not be kept. */
	bool failed;
	struct gundo_entry *tab;
	size_t cap, count;
};

/* `out` reads and writes `lower` through `u`; nothing is kept until u->keep is set. */
void gundo_init(struct gdev *out, struct gundo *u, const struct gdev *lower);
/* The changes stay: forgets what was kept. */
void gundo_commit(struct gundo *u);
/* Writes back everything kept, flushes, then the unit holding u->last, and flushes again.
 * Returns -1 (reported) if the lower device failed; the unit holding u->last is then left
 * as the change wrote it. Forgets what was kept either way. */
int gundo_rollback(struct gundo *u);
/* The number of units kept (for tests). */
size_t gundo_kept(const struct gundo *u);

#endif

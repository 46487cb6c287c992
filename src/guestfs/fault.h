/* A test-only seam for fault injection: every read, write and flush of an image that kite guest
 * opens, and every block or inode it allocates, first asks gfs_fault() whether to fail.
 *
 * No object of kite defines gfs_fault: it is a weak, hidden symbol, so in the kite binary the
 * reference resolves to NULL when it is linked (hidden: a preloaded library cannot supply it
 * either), and no option, environment variable or file turns faults on. A unit test that
 * defines the function (tests/unit/test_guestfs_faults.c) gets every such step in turn. */
#ifndef KITE_GUESTFS_FAULT_H
#define KITE_GUESTFS_FAULT_H

#include <stdbool.h>

enum gfs_fault_kind {
	GFS_FAULT_READ,
	GFS_FAULT_WRITE,
	GFS_FAULT_FLUSH,
	GFS_FAULT_ALLOC, /* a block or an inode */
	GFS_FAULT_KINDS,
};

/* Returns true to make this step fail. */
bool gfs_fault(enum gfs_fault_kind kind) __attribute__((weak, visibility("hidden")));

static inline bool gfs_fault_now(enum gfs_fault_kind kind)
{
	return gfs_fault && gfs_fault(kind);
}

#endif

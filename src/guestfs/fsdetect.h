/* Recognises what a partition (or a whole disk) holds from its on-disk signatures. ext2/3/4 are
 * read fully (label, UUID, size); vfat and swap are recognised with their label and UUID; LVM,
 * LUKS, XFS, btrfs, NTFS, ISO 9660 and squashfs are named but reported as unsupported. */
#ifndef KITE_GUESTFS_FSDETECT_H
#define KITE_GUESTFS_FSDETECT_H

#include "guestfs/dev.h"

#include <stdbool.h>
#include <stdint.h>

struct fsinfo {
	char type[16];	/* "ext2", "ext3", "ext4", "vfat", "swap", "LVM2_member", ..., "unknown" */
	bool supported; /* kite guest can read its files (ext2/3/4) */
	char label[49];
	char uuid[37];
	uint64_t size; /* bytes the filesystem says it spans, 0 if unknown */
};

/* Returns 0 (filling `info`; type "unknown" when nothing matched) or -1 on I/O error. */
int fs_detect(const struct gdev *dev, struct fsinfo *info);

#endif

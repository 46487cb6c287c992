/* An ext2/3/4 filesystem inside an image, opened with libext2fs through kite_io_manager, and
 * safe path resolution inside it: `..` never leaves the filesystem root and symlinks are
 * resolved inside the filesystem (absolute targets from its root), never on the host. */
#ifndef KITE_GUESTFS_FS_H
#define KITE_GUESTFS_FS_H

#include "guestfs/dev.h"
#include "guestfs/image.h"
#include "guestfs/undo.h"
#include "guestfs/volume.h"

#include <ext2fs/ext2fs.h>
#include <stdbool.h>
#include <time.h>

struct gfs {
	struct gimage im;
	struct gdev part; /* the filesystem's partition, logical volume or whole disk */
	struct vol_dev vd;
	char volname[300]; /* the volume opened: "/dev/sda", "/dev/sda3", "/dev/VG/LV" */
	struct gdev udev;  /* `part` through `undo`: what libext2fs writes to */
	struct gundo undo;
	ext2fs_block_bitmap used_at_open; /* when writing: the blocks in use when opened */
	char ioname[32];
	ext2_filsys fs;
	bool rw;
};

struct gfs_opts {
	const char *format; /* image format or NULL to probe */
	/* "-a" argument: "1", "sda1", "/dev/sda1", "/dev/VG/LV", "/dev/mapper/VG-LV"; NULL to
	 * choose the filesystem holding /etc/os-release, else the largest ext2/3/4 one */
	const char *partition;
	bool write;
	/* Writes that go to the image as they come (kite guest mount): gfs_abort cannot take
	 * them back, and the session ends with gfs_close whatever happened. */
	bool session;
	/* Read-only with force-share: the image of a running VM (gimage_open_shared). */
	bool share;
	/* Which of several disks this is (0: /dev/sda, 1: /dev/sdb, ...): names its volumes. */
	int disk_index;
};

/* Opens the image and the filesystem. Writing refuses a filesystem with errors or needing
 * journal recovery. Returns -1 with an error.
 *
 * While a change is being written the filesystem's state on the image says "not cleanly
 * unmounted" (marked before the first write reaches the image, made durable with a flush),
 * as the kernel does while it has the filesystem mounted: if kite dies part way, the next
 * write refuses the filesystem and e2fsck checks it. */
int gfs_open(struct gfs *g, const char *image, const struct gfs_opts *o);
/* Ends a change that succeeded: writes back the bitmaps and group descriptors, flushes, then
 * the superblock in its clean state, and flushes (libext2fs's order). If any of it fails the
 * change is taken back as gfs_abort does. Returns -1 if the change did not reach the image. */
int gfs_close(struct gfs *g);
/* Ends a change that failed: drops libext2fs's unwritten state and writes back the old content
 * of everything the change wrote, so that the image is as it was before gfs_open. Returns -1
 * (reported) if the image could not be put back; it then stays marked as not clean. */
int gfs_abort(struct gfs *g);
/* For a session: writes back the metadata so that the image is complete and clean as it
 * stands; the next write marks it as being changed again. */
int gfs_sync(struct gfs *g);

/* Several disks of one machine, guestfish's /dev/sda, /dev/sdb, ... in their order (disks.c). */
struct gfs_disk {
	const char *path;
	const char *format; /* NULL: probed */
};
/* Which disk holds the filesystem a verb works on, and the -a argument for that disk alone
 * (`part`, "" for the default choice). `arg` is the -a argument given for all of them:
 * "/dev/sdb3" or "sdb3" (disk 2, partition 3), "/dev/sdb" (disk 2, unpartitioned), a bare
 * "3" (the first disk's), or an LV (/dev/VG/LV...: the disk whose volume groups have it).
 * Without one, the choice of gfs_open over all the disks together: the first filesystem
 * holding /etc/os-release when there are several ext2/3/4 ones, else the largest. Returns
 * the disk's index, or -1 (reported). */
int gfs_disks_pick(const struct gfs_disk *disks, int n, const char *arg, bool share, char *part,
		   size_t partsz);

/* Opens the filesystem of volume `v` of `l` (read-only), found on `disk`, an image already
 * open: for verbs that look at every filesystem. Close with gfs_close_volume. */
int gfs_open_volume(struct gfs *g, const struct vol_list *l, const struct volume *v,
		    const struct gdev *disk);
void gfs_close_volume(struct gfs *g);

/* Opens the filesystem in `dev` (a partition of an image already open). */
int gfs_open_dev(struct gfs *g, bool write);
void gfs_close_dev(struct gfs *g);

/* Prints "kite: error: <what>: <libext2fs message>"; returns -1. */
int gfs_err(errcode_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resolves an absolute or relative (to the root) path. `follow` says whether a final symlink
 * is followed. Errors: ENOENT, ENOTDIR, ELOOP, EXDEV (escapes the root); sets *err to the
 * errno and prints nothing when `quiet`, otherwise prints. */
int gfs_lookup(struct gfs *g, const char *path, bool follow, ext2_ino_t *ino);
int gfs_lookup_q(struct gfs *g, const char *path, bool follow, ext2_ino_t *ino, int *err);
/* Splits `path` into its parent directory (resolved, must exist) and the last name, for
 * creating or removing it. `name` receives at most EXT2_NAME_LEN bytes plus NUL. */
int gfs_lookup_parent(struct gfs *g, const char *path, ext2_ino_t *dir, char *name);

int gfs_read_inode(struct gfs *g, ext2_ino_t ino, struct ext2_inode_large *in);
int gfs_write_inode(struct gfs *g, ext2_ino_t ino, struct ext2_inode_large *in);
/* Reads a symlink's target (NUL-terminated, at most `size` - 1 bytes). */
int gfs_readlink(struct gfs *g, ext2_ino_t ino, char *buf, size_t size);

uint32_t gfs_uid(const struct ext2_inode_large *in);
uint32_t gfs_gid(const struct ext2_inode_large *in);
void gfs_set_owner(struct ext2_inode_large *in, uint32_t uid, uint32_t gid);
uint64_t gfs_size(const struct ext2_inode_large *in);
enum gfs_time { GFS_ATIME, GFS_MTIME, GFS_CTIME };
struct timespec gfs_time(const struct gfs *g, const struct ext2_inode_large *in, enum gfs_time t);
void gfs_set_time(const struct gfs *g, struct ext2_inode_large *in, enum gfs_time t,
		  struct timespec ts);

#endif

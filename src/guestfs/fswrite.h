/* Changing a filesystem opened for writing with gfs_open: creating, writing, linking and
 * removing files. Every function leaves the filesystem consistent (e2fsck -fn clean) on
 * success and reports failures with kite_error. */
#ifndef KITE_GUESTFS_FSWRITE_H
#define KITE_GUESTFS_FSWRITE_H

#include "guestfs/fs.h"

#include <sys/types.h>

/* Refuses writes the library would get wrong (quota accounting). Called by gfs_open. */
int gfs_check_writable(struct gfs *g);

/* Every function orders its steps so that a failure part way, if the change cannot be taken
 * back (gfs_abort), leaves at worst what e2fsck -p corrects without asking (blocks or an
 * inode counted in use but not used, an empty unattached inode, a link count too high), never
 * an entry naming a freed inode; the one-write windows where an unattached inode with
 * content could be left are noted where they are. */

/* Creates an empty regular file `name` in `dir`. Fails with EEXIST message if it exists. */
int gfs_create(struct gfs *g, ext2_ino_t dir, const char *name, uint16_t mode, uint32_t uid,
	       uint32_t gid, ext2_ino_t *ino);
/* A regular file in no directory yet, written as deleted (`dir` only chooses where the inode
 * goes): fill it with gfs_pwrite, then gfs_link_new makes it live and names it. Until then
 * the image's free-space accounting does not see it, so a failure leaves nothing behind. */
int gfs_new_file(struct gfs *g, ext2_ino_t dir, uint16_t mode, uint32_t uid, uint32_t gid,
		 ext2_ino_t *ino);
int gfs_link_new(struct gfs *g, ext2_ino_t dir, const char *name, ext2_ino_t ino);
int gfs_mkdir(struct gfs *g, ext2_ino_t dir, const char *name, uint16_t mode, uint32_t uid,
	      uint32_t gid, ext2_ino_t *ino);
int gfs_symlink(struct gfs *g, ext2_ino_t dir, const char *name, const char *target, uint32_t uid,
		uint32_t gid, ext2_ino_t *ino);
/* A special file: mode carries the type (LINUX_S_IFCHR, ...); `rdev` major/minor. */
int gfs_mknod(struct gfs *g, ext2_ino_t dir, const char *name, uint16_t mode, uint64_t rdev,
	      uint32_t uid, uint32_t gid, ext2_ino_t *ino);
/* A hard link to the non-directory `ino`. */
int gfs_hardlink(struct gfs *g, ext2_ino_t dir, const char *name, ext2_ino_t ino);

/* Writes `len` bytes at `off` of regular file `ino` (growing it as needed). */
int gfs_pwrite(struct gfs *g, ext2_ino_t ino, const void *buf, size_t len, uint64_t off);
/* Sets the size, freeing blocks past it or leaving a hole. */
int gfs_truncate(struct gfs *g, ext2_ino_t ino, uint64_t size);
/* Replaces the whole content of regular file `ino`. */
int gfs_replace(struct gfs *g, ext2_ino_t ino, const void *buf, size_t len);

/* Removes `name` from `dir`. Directories must be empty unless `recursive`. */
int gfs_remove(struct gfs *g, ext2_ino_t dir, const char *name, bool recursive);
/* Renames within the filesystem (used by FUSE). Replaces a non-directory target. */
int gfs_rename(struct gfs *g, ext2_ino_t from_dir, const char *from, ext2_ino_t to_dir,
	       const char *to);

/* Sets ctime (and mtime when `mtime` is set) to now. */
void gfs_touch(struct gfs *g, struct ext2_inode_large *in, bool mtime);

#endif

/* Reading inside a filesystem opened with gfs_open: directory listings and file contents. */
#ifndef KITE_GUESTFS_FSREAD_H
#define KITE_GUESTFS_FSREAD_H

#include "guestfs/fs.h"

struct gfs_dirent {
	char *name;
	ext2_ino_t ino;
};

/* The entries of directory `dir`, sorted by name, without "." and "..". Names that no real
 * filesystem can hold (containing '/') are skipped with a warning. Free with
 * gfs_dirents_free. */
int gfs_list_dir(struct gfs *g, ext2_ino_t dir, struct gfs_dirent **out, size_t *n);
void gfs_dirents_free(struct gfs_dirent *d, size_t n);

/* Calls `cb` with the file's data in order; ranges that are holes (or unwritten extents) are
 * not passed, so a caller writing at `off` keeps the file sparse. The last chunk ends at the
 * file size. */
typedef int (*gfs_data_cb)(void *ctx, const void *buf, size_t len, uint64_t off);
int gfs_read_data(struct gfs *g, ext2_ino_t ino, gfs_data_cb cb, void *ctx);

/* The whole file in a malloc'd, NUL-terminated buffer; fails if larger than `max`. */
int gfs_read_file(struct gfs *g, ext2_ino_t ino, char **buf, size_t *len, size_t max);

#endif

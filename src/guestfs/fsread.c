#include "guestfs/fsread.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define RUN_MAX (4u << 20) /* bytes read from the image at once */

struct list_ctx {
	struct gfs_dirent *d;
	size_t n, cap;
	int err;
	ext2_ino_t dir;
};

static int list_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset, int blocksize,
		   char *buf, void *priv)
{
	struct list_ctx *c = priv;
	int len = ext2fs_dirent_name_len(de);
	if (!de->inode || (len == 1 && de->name[0] == '.') ||
	    (len == 2 && de->name[0] == '.' && de->name[1] == '.'))
		return 0;
	if (len == 0 || memchr(de->name, '/', (size_t)len) || memchr(de->name, 0, (size_t)len)) {
		kite_warn("directory inode %u has an entry with an invalid name; skipped", c->dir);
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct gfs_dirent *n = realloc(c->d, cap * sizeof(*n));
		if (!n) {
			c->err = kite_error("out of memory");
			return DIRENT_ABORT;
		}
		c->d = n;
		c->cap = cap;
	}
	char *name = strndup(de->name, (size_t)len);
	if (!name) {
		c->err = kite_error("out of memory");
		return DIRENT_ABORT;
	}
	c->d[c->n].name = name;
	c->d[c->n].ino = de->inode;
	c->n++;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct gfs_dirent *)a)->name, ((const struct gfs_dirent *)b)->name);
}

void gfs_dirents_free(struct gfs_dirent *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i].name);
	free(d);
}

int gfs_list_dir(struct gfs *g, ext2_ino_t dir, struct gfs_dirent **out, size_t *n)
{
	struct list_ctx c = {.dir = dir};
	struct ext2_inode_large in;
	if (gfs_read_inode(g, dir, &in) < 0)
		return -1;
	if (!LINUX_S_ISDIR(in.i_mode))
		return kite_error("inode %u is not a directory", dir);
	errcode_t e = ext2fs_dir_iterate2(g->fs, dir, 0, NULL, list_cb, &c);
	if (e || c.err) {
		gfs_dirents_free(c.d, c.n);
		return e ? gfs_err(e, "cannot read directory inode %u", dir) : -1;
	}
	if (c.n)
		qsort(c.d, c.n, sizeof(*c.d), by_name);
	*out = c.d;
	*n = c.n;
	return 0;
}

static int read_inline(struct gfs *g, ext2_ino_t ino, struct ext2_inode_large *in, uint64_t size,
		       gfs_data_cb cb, void *ctx)
{
	size_t cap = EXT2_INODE_SIZE(g->fs->super) + g->fs->blocksize; /* inline data max */
	if (size > cap)
		return kite_error("inode %u: inline data larger than an inode can hold", ino);
	char *buf = calloc(1, cap);
	if (!buf)
		return kite_error("out of memory");
	size_t got = 0;
	errcode_t e = ext2fs_inline_data_get(g->fs, ino, (struct ext2_inode *)in, buf, &got);
	int r = e ? gfs_err(e, "cannot read inline data of inode %u", ino) : 0;
	if (!r && size)
		r = cb(ctx, buf, (size_t)size, 0); /* bytes past `got` are zeros (calloc) */
	free(buf);
	return r;
}

int gfs_read_data(struct gfs *g, ext2_ino_t ino, gfs_data_cb cb, void *ctx)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	uint64_t size = gfs_size(&in);
	if (LINUX_S_ISDIR(in.i_mode))
		return kite_error("inode %u is a directory", ino);
	if (in.i_flags & EXT4_INLINE_DATA_FL)
		return read_inline(g, ino, &in, size, cb, ctx);
	if (LINUX_S_ISLNK(in.i_mode) && ext2fs_is_fast_symlink((struct ext2_inode *)&in))
		return size < sizeof(in.i_block) ? cb(ctx, in.i_block, (size_t)size, 0)
						 : kite_error("inode %u is corrupt", ino);
	if (in.i_flags & EXT4_ENCRYPT_FL)
		return kite_error("inode %u is encrypted", ino);
	uint64_t bs = g->fs->blocksize;
	uint64_t nblocks = (size + bs - 1) / bs, fs_blocks = ext2fs_blocks_count(g->fs->super);
	/* small files get a small buffer: copy-out of many files would otherwise map and
	 * fault in a fresh RUN_MAX buffer for each */
	uint64_t cap = nblocks * bs < RUN_MAX ? nblocks * bs : RUN_MAX;
	size_t run_max = (size_t)(cap / bs);
	if (!nblocks)
		return 0;
	char *buf = malloc((size_t)cap);
	if (!buf)
		return kite_error("out of memory");
	int ret = 0;
	for (uint64_t l = 0; l < nblocks && !ret;) {
		blk64_t p = 0, next;
		int flags = 0;
		errcode_t e =
		    ext2fs_bmap2(g->fs, ino, (struct ext2_inode *)&in, NULL, 0, l, &flags, &p);
		if (e) {
			ret = gfs_err(e, "inode %u: cannot map block %llu", ino,
				      (unsigned long long)l);
			break;
		}
		if (!p || (flags & BMAP_RET_UNINIT)) {
			l++;
			continue;
		}
		size_t run = 1;
		while (run < run_max && l + run < nblocks) {
			flags = 0;
			e = ext2fs_bmap2(g->fs, ino, (struct ext2_inode *)&in, NULL, 0, l + run,
					 &flags, &next);
			if (e || next != p + run || (flags & BMAP_RET_UNINIT))
				break;
			run++;
		}
		if (p >= fs_blocks || run > fs_blocks - p) {
			ret =
			    kite_error("inode %u: block %llu lies outside the filesystem (corrupt "
				       "inode)",
				       ino, (unsigned long long)p);
			break;
		}
		uint64_t off = l * bs;
		size_t len = (size_t)(off + run * bs > size ? size - off : run * bs);
		if (gdev_read(&g->part, buf, len, p * bs) < 0 || cb(ctx, buf, len, off) < 0)
			ret = -1;
		l += run;
	}
	free(buf);
	return ret;
}

struct mem_ctx {
	char *buf;
	size_t size;
};

static int mem_cb(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct mem_ctx *m = ctx;
	memcpy(m->buf + off, buf, len); /* off + len <= size: gfs_read_data stops at the size */
	return 0;
}

int gfs_read_file(struct gfs *g, ext2_ino_t ino, char **out, size_t *len, size_t max)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	uint64_t size = gfs_size(&in);
	if (size > max)
		return kite_error("inode %u is too large (%llu bytes)", ino,
				  (unsigned long long)size);
	struct mem_ctx m = {.buf = calloc(1, (size_t)size + 1), .size = (size_t)size};
	if (!m.buf)
		return kite_error("out of memory");
	if (gfs_read_data(g, ino, mem_cb, &m) < 0) {
		free(m.buf);
		return -1;
	}
	*out = m.buf;
	*len = m.size;
	return 0;
}

#include "guestfs/fs.h"
#include "guestfs/ext2io.h"
#include "guestfs/fault.h"
#include "guestfs/fsdetect.h"
#include "guestfs/fswrite.h"
#include "guestfs/partition.h"
#include "util/err.h"

#include <errno.h>
#include <et/com_err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SYMLINKS 40	  /* as Linux's ELOOP limit */
#define MAX_DEPTH    2048 /* path components kept for `..` */

int gfs_err(errcode_t e, const char *fmt, ...)
{
	static bool tables;
	if (!tables) {
		initialize_ext2_error_table();
		tables = true;
	}
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* libext2fs's "Could not allocate block in ext2 filesystem" means the disk is full */
	bool full = e == EXT2_ET_BLOCK_ALLOC_FAIL || e == EXT2_ET_INODE_ALLOC_FAIL;
	return kite_error("%s: %s", what, full ? strerror(ENOSPC) : error_message(e));
}

/* Blocks that were free when the filesystem was opened: what the undo need not keep. */
static bool unused_at_open(void *opaque, uint64_t off, size_t len)
{
	struct gfs *g = opaque;
	if (!g->used_at_open || !len)
		return false;
	uint64_t bs = g->fs->blocksize, first = off / bs, last = (off + len - 1) / bs;
	if (first < g->fs->super->s_first_data_block || last >= ext2fs_blocks_count(g->fs->super))
		return false;
	return ext2fs_test_block_bitmap_range2(g->used_at_open, first,
					       (unsigned)(last - first + 1));
}

/* The first block in [b, end] free now and when the filesystem was opened. */
static int find_fresh(struct gfs *g, blk64_t b, blk64_t end, blk64_t *out)
{
	while (b <= end) {
		blk64_t c;
		if (ext2fs_find_first_zero_block_bitmap2(g->fs->block_map, b, end, &b) ||
		    ext2fs_find_first_zero_block_bitmap2(g->used_at_open, b, end, &c))
			return -1;
		if (c == b) {
			*out = b;
			return 0;
		}
		b = c;
	}
	return -1;
}

/* libext2fs's block allocator, preferring blocks that were free when the filesystem was
 * opened: the undo keeps no copy of those, and a block this change freed (the image still
 * refers to it until the change is complete) is not overwritten while there is another. */
static errcode_t alloc_block(ext2_filsys fs, blk64_t goal, blk64_t *ret)
{
	struct gfs *g = fs->priv_data;
	if (gfs_fault_now(GFS_FAULT_ALLOC))
		return EXT2_ET_BLOCK_ALLOC_FAIL;
	blk64_t first = fs->super->s_first_data_block, end = ext2fs_blocks_count(fs->super) - 1, b;
	if (goal < first || goal > end)
		goal = first;
	if (!find_fresh(g, goal, end, &b) || (goal > first && !find_fresh(g, first, goal - 1, &b)))
		goal = b;
	return ext2fs_new_block2(fs, goal, fs->block_map, ret);
}

/* Before the first write of a change reaches the image: the superblock's state says "not
 * clean" until gfs_close writes it back clean, last. */
static int mark_changing(void *opaque)
{
	struct gfs *g = opaque;
	struct ext2_super_block sb;
	if (!g->fs)
		return 0;
	memcpy(&sb, g->fs->orig_super, sizeof(sb));
	sb.s_state &= (uint16_t)~EXT2_VALID_FS;
	errcode_t e = ext2fs_superblock_csum_set(g->fs, &sb);
	if (e)
		return gfs_err(e, "cannot mark the filesystem as being changed");
	if (gdev_write(&g->udev, &sb, sizeof(sb), SUPERBLOCK_OFFSET) < 0 ||
	    g->udev.flush(g->udev.opaque) < 0)
		return -1;
	/* libext2fs writes only the superblock's fields that differ from what it read */
	memcpy(g->fs->orig_super, &sb, sizeof(sb));
	return 0;
}

static int prepare_writes(struct gfs *g)
{
	errcode_t e = ext2fs_read_bitmaps(g->fs);
	if (e)
		return gfs_err(e, "cannot read the allocation bitmaps");
	if (gfs_check_writable(g) < 0)
		return -1;
	e = ext2fs_copy_bitmap(g->fs->block_map, &g->used_at_open);
	if (e)
		return gfs_err(e, "cannot copy the block bitmap");
	g->fs->priv_data = g;
	ext2fs_set_alloc_block_callback(g->fs, alloc_block, NULL);
	g->undo.unused = unused_at_open;
	g->undo.begin = mark_changing;
	g->undo.opaque = g;
	g->undo.last = SUPERBLOCK_OFFSET;
	g->undo.keep = true;
	return 0;
}

int gfs_open_dev(struct gfs *g, bool write)
{
	const struct gdev *dev = &g->part;
	if (write) {
		gundo_init(&g->udev, &g->undo, &g->part);
		dev = &g->udev;
	}
	if (ext2io_register(dev, g->ioname, sizeof(g->ioname)) < 0)
		return -1;
	int flags = EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP;
	if (write)
		flags |= EXT2_FLAG_RW;
	errcode_t e = ext2fs_open2(g->ioname, NULL, flags, 0, 0, kite_io_manager, &g->fs);
	if (e) {
		g->fs = NULL;
		ext2io_unregister(g->ioname);
		return gfs_err(e, "cannot open the ext2/3/4 filesystem");
	}
	g->rw = write;
	struct ext2_super_block *sb = g->fs->super;
	const char *bad = NULL;
	if (sb->s_state & EXT2_ERROR_FS)
		bad = "the filesystem has errors";
	else if (ext2fs_has_feature_journal_needs_recovery(sb))
		bad =
		    "the filesystem's journal needs recovery (was it not cleanly unmounted, or is "
		    "it in use?)";
	else if (!(sb->s_state & EXT2_VALID_FS))
		bad = "the filesystem was not cleanly unmounted";
	if (bad && write) {
		kite_error("%s: refusing to write; repair it first with e2fsck -f (on a raw "
			   "image or partition)",
			   bad);
		gfs_close_dev(g);
		return -1;
	}
	if (bad)
		kite_warn("%s; what is read may be inconsistent", bad);
	if (write && prepare_writes(g) < 0) {
		gfs_close_dev(g);
		return -1;
	}
	return 0;
}

void gfs_close_dev(struct gfs *g)
{
	if (g->fs) {
		ext2fs_free(g->fs);
		g->fs = NULL;
	}
	if (g->used_at_open) {
		ext2fs_free_block_bitmap(g->used_at_open);
		g->used_at_open = NULL;
	}
	ext2io_unregister(g->ioname);
}

/* Is there an /etc/os-release in the filesystem on `dev`? */
static bool has_os_release(struct gfs *g)
{
	ext2_ino_t ino;
	int err;
	if (gfs_open_dev(g, false) < 0)
		return false;
	bool yes = gfs_lookup_q(g, "/etc/os-release", false, &ino, &err) == 0 ||
		   gfs_lookup_q(g, "/usr/lib/os-release", false, &ino, &err) == 0;
	gfs_close_dev(g);
	return yes;
}

static const char *what(const struct fsinfo *fi)
{
	return strcmp(fi->type, "unknown") ? fi->type : "no filesystem kite recognises";
}

/* Opens the volume -a names as g->part. */
static int open_named(struct gfs *g, const struct vol_list *l, const struct gfs_opts *o)
{
	const struct volume *v = vol_find(l, o->partition);
	struct fsinfo fi;
	if (!v || vol_open(l, v, &g->im.dev, o->write, &g->part, &g->vd) < 0)
		return -1;
	snprintf(g->volname, sizeof(g->volname), "%s", v->name);
	if (fs_detect(&g->part, &fi) < 0)
		return -1;
	if (!strcmp(fi.type, "LVM2_member"))
		return kite_error("%s holds LVM2_member, an LVM2 physical volume: name one of its "
				  "logical volumes instead (see 'kite guest filesystems')",
				  v->label);
	if (!fi.supported)
		return kite_error("%s holds %s, which kite guest cannot read (it reads ext2, ext3 "
				  "and ext4)",
				  v->label, what(&fi));
	return 0;
}

/* Can `v` be read, and does it hold an ext2/3/4 filesystem? */
static int holds_ext(struct gfs *g, const struct vol_list *l, const struct volume *v, bool *ext)
{
	char why[200];
	struct fsinfo fi;
	*ext = false;
	if (v->kind == VOL_LV && lvm_lv_unreadable(&l->lvm, v->vg, v->lv, why, sizeof(why)))
		return 0;
	if (vol_open(l, v, &g->im.dev, false, &g->part, &g->vd) < 0)
		return 0; /* reported; a broken entry does not hide the others */
	int r = fs_detect(&g->part, &fi);
	*ext = r == 0 && fi.supported;
	vol_close(&g->vd);
	return r;
}

static bool os_release_on(struct gfs *g, const struct vol_list *l, const struct volume *v)
{
	if (vol_open(l, v, &g->im.dev, false, &g->part, &g->vd) < 0)
		return false;
	bool yes = has_os_release(g);
	vol_close(&g->vd);
	return yes;
}

static int none_readable(struct gfs *g, const struct vol_list *l)
{
	if (l->count == 1 && l->v[0].kind == VOL_DISK) {
		struct fsinfo fi;
		if (vol_open(l, &l->v[0], &g->im.dev, false, &g->part, &g->vd) < 0 ||
		    fs_detect(&g->part, &fi) < 0)
			return -1;
		return kite_error("the disk has no partition table and holds %s, not an ext2/3/4 "
				  "filesystem",
				  what(&fi));
	}
	return kite_error("no partition or logical volume holds an ext2/3/4 filesystem (see "
			  "'kite guest filesystems')");
}

/* The volume holding /etc/os-release, else the largest ext2/3/4 one; when there is only
 * one, it is opened once, for the verb. */
static int choose(struct gfs *g, const struct vol_list *l, const struct gfs_opts *o)
{
	if (o->partition)
		return open_named(g, l, o);
	if (l->lvm.failed)
		return kite_error("the disk's LVM2 metadata cannot be read (see above): name the "
				  "filesystem with -a");
	bool *ext = calloc(l->count ? l->count : 1, sizeof(*ext));
	if (!ext)
		return kite_error("out of memory");
	const struct volume *best = NULL, *pick = NULL;
	size_t found = 0;
	for (size_t i = 0; i < l->count; i++) {
		if (holds_ext(g, l, &l->v[i], &ext[i]) < 0) {
			free(ext);
			return -1;
		}
		if (ext[i] && (!best || l->v[i].size > best->size))
			best = &l->v[i];
		found += ext[i];
	}
	for (size_t i = 0; i < l->count && found > 1 && !pick; i++)
		if (ext[i] && os_release_on(g, l, &l->v[i]))
			pick = &l->v[i];
	free(ext);
	if (!pick)
		pick = best;
	if (!pick)
		return none_readable(g, l);
	snprintf(g->volname, sizeof(g->volname), "%s", pick->name);
	return vol_open(l, pick, &g->im.dev, o->write, &g->part, &g->vd);
}

int gfs_open(struct gfs *g, const char *image, const struct gfs_opts *o)
{
	memset(g, 0, sizeof(*g));
	if (o->share && o->write)
		return kite_error("an image opened with force-share cannot be written");
	if ((o->share ? gimage_open_shared(&g->im, image, o->format)
		      : gimage_open(&g->im, image, o->format, o->write)) < 0)
		return -1;
	/* volume groups are read only when they may be what is asked for */
	bool lvm = !o->partition || vol_arg_is_lv(o->partition);
	struct vol_list l;
	if (vol_scan_disk(&l, &g->im.dev, lvm, o->disk_index) < 0)
		goto fail;
	int r = choose(g, &l, o);
	vol_list_free(&l);
	if (r < 0 || gfs_open_dev(g, o->write) < 0)
		goto fail;
	if (o->write && o->session)
		g->undo.keep = false;
	return 0;
fail:
	vol_close(&g->vd);
	gimage_close(&g->im);
	return -1;
}

int gfs_open_volume(struct gfs *g, const struct vol_list *l, const struct volume *v,
		    const struct gdev *disk)
{
	memset(g, 0, sizeof(*g));
	if (vol_open(l, v, disk, false, &g->part, &g->vd) < 0)
		return -1;
	if (gfs_open_dev(g, false) < 0) {
		vol_close(&g->vd);
		return -1;
	}
	return 0;
}

void gfs_close_volume(struct gfs *g)
{
	gfs_close_dev(g);
	vol_close(&g->vd);
}

/* The filesystem is closed or dropped: keeps or takes back what the change wrote. */
static int finish(struct gfs *g, bool keep)
{
	int ret = 0;
	gfs_close_dev(g);
	if (g->rw && g->undo.begun) {
		if (keep) {
			gundo_commit(&g->undo);
		} else if (gundo_rollback(&g->undo) < 0) {
			ret =
			    kite_error("the image could not be put back as it was: its filesystem "
				       "stays marked as not cleanly unmounted; check it with "
				       "e2fsck -f");
		}
	}
	vol_close(&g->vd);
	if (gimage_close(&g->im) < 0)
		ret = -1;
	return ret;
}

int gfs_close(struct gfs *g)
{
	if (g->rw && g->undo.failed && g->undo.keep) {
		/* a step libext2fs went on after; what it wrote may rest on what it lost */
		kite_error("a read or write of the image failed during the change: it is not kept");
		finish(g, false);
		return -1;
	}
	if (g->fs) {
		/* the superblock must be written back clean even if nothing else changed */
		if (g->rw && g->undo.begun && !(g->fs->flags & EXT2_FLAG_DIRTY))
			g->fs->flags |= EXT2_FLAG_DIRTY | EXT2_FLAG_SUPER_ONLY;
		errcode_t e = ext2fs_close2(g->fs, 0);
		if (e) {
			gfs_err(e, "cannot write the filesystem's metadata back");
			finish(g, false); /* frees g->fs */
			return -1;
		}
		g->fs = NULL;
	}
	return finish(g, true);
}

int gfs_abort(struct gfs *g)
{
	return finish(g, false);
}

int gfs_sync(struct gfs *g)
{
	if (!g->rw)
		return 0;
	errcode_t e = ext2fs_flush(g->fs);
	if (e)
		return gfs_err(e, "cannot write the filesystem's metadata back");
	g->undo.begun = false; /* the next write marks the filesystem as being changed again */
	gundo_commit(&g->undo);
	return 0;
}

int gfs_read_inode(struct gfs *g, ext2_ino_t ino, struct ext2_inode_large *in)
{
	memset(in, 0, sizeof(*in));
	errcode_t e = ext2fs_read_inode_full(g->fs, ino, (struct ext2_inode *)in, sizeof(*in));
	if (e)
		return gfs_err(e, "cannot read inode %u", ino);
	return 0;
}

int gfs_write_inode(struct gfs *g, ext2_ino_t ino, struct ext2_inode_large *in)
{
	errcode_t e = ext2fs_write_inode_full(g->fs, ino, (struct ext2_inode *)in, sizeof(*in));
	if (e)
		return gfs_err(e, "cannot write inode %u", ino);
	return 0;
}

int gfs_readlink(struct gfs *g, ext2_ino_t ino, char *buf, size_t size)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	uint64_t len = gfs_size(&in);
	if (!LINUX_S_ISLNK(in.i_mode))
		return kite_error("inode %u is not a symbolic link", ino);
	if (len >= size || len >= g->fs->blocksize)
		return kite_error("symbolic link (inode %u) is too long (%llu bytes)", ino,
				  (unsigned long long)len);
	if (ext2fs_is_fast_symlink((struct ext2_inode *)&in)) {
		if (len >= sizeof(in.i_block))
			return kite_error("symbolic link (inode %u) is corrupt", ino);
		memcpy(buf, in.i_block, len);
		buf[len] = 0;
		return 0;
	}
	ext2_file_t f;
	errcode_t e = ext2fs_file_open2(g->fs, ino, (struct ext2_inode *)&in, 0, &f);
	if (e)
		return gfs_err(e, "cannot open symbolic link (inode %u)", ino);
	unsigned int got = 0;
	e = ext2fs_file_read(f, buf, (unsigned)len, &got);
	ext2fs_file_close(f);
	if (e || got != len)
		return e ? gfs_err(e, "cannot read symbolic link (inode %u)", ino)
			 : kite_error("symbolic link (inode %u) is truncated", ino);
	buf[len] = 0;
	if (strlen(buf) != len)
		return kite_error("symbolic link (inode %u) holds a NUL byte", ino);
	return 0;
}

static int fail(bool quiet, int *err, int e, const char *path, const char *why)
{
	if (err)
		*err = e;
	if (!quiet)
		kite_error("%s: %s", path, why ? why : strerror(e));
	return -1;
}

static int resolve(struct gfs *g, const char *path, bool follow, ext2_ino_t *out, int *err,
		   bool quiet)
{
	ext2_ino_t *stack = malloc(MAX_DEPTH * sizeof(*stack));
	char *work = strdup(path);
	int depth = 0, links = 0, ret = -1;
	size_t pos = 0;
	if (!stack || !work) {
		ret = fail(quiet, err, ENOMEM, path, NULL);
		goto out;
	}
	stack[0] = EXT2_ROOT_INO;
	for (;;) {
		while (work[pos] == '/')
			pos++;
		if (!work[pos])
			break;
		size_t end = pos;
		while (work[end] && work[end] != '/')
			end++;
		const char *comp = work + pos;
		size_t len = end - pos;
		pos = end;
		if (len == 1 && comp[0] == '.')
			continue;
		if (len == 2 && comp[0] == '.' && comp[1] == '.') {
			if (depth == 0) {
				ret = fail(quiet, err, EXDEV, path,
					   "the path leads outside the filesystem's root");
				goto out;
			}
			depth--;
			continue;
		}
		if (len > EXT2_NAME_LEN) {
			ret = fail(quiet, err, ENAMETOOLONG, path, NULL);
			goto out;
		}
		struct ext2_inode_large in;
		if (gfs_read_inode(g, stack[depth], &in) < 0) {
			ret = fail(true, err, EIO, path, NULL);
			goto out;
		}
		if (!LINUX_S_ISDIR(in.i_mode)) {
			ret = fail(quiet, err, ENOTDIR, path, NULL);
			goto out;
		}
		ext2_ino_t child;
		errcode_t e = ext2fs_lookup(g->fs, stack[depth], comp, (int)len, NULL, &child);
		if (e == EXT2_ET_FILE_NOT_FOUND) {
			ret = fail(quiet, err, ENOENT, path, NULL);
			goto out;
		}
		if (e) {
			if (!quiet)
				gfs_err(e, "%s", path);
			ret = fail(true, err, EIO, path, NULL);
			goto out;
		}
		if (gfs_read_inode(g, child, &in) < 0) {
			ret = fail(true, err, EIO, path, NULL);
			goto out;
		}
		bool more = false;
		for (size_t i = pos; work[i]; i++)
			more |= work[i] != '/';
		if (LINUX_S_ISLNK(in.i_mode) && (more || follow)) {
			if (++links > MAX_SYMLINKS) {
				ret = fail(quiet, err, ELOOP, path, NULL);
				goto out;
			}
			char *target = malloc(g->fs->blocksize + 1);
			if (!target || gfs_readlink(g, child, target, g->fs->blocksize + 1) < 0) {
				free(target);
				ret = fail(true, err, EIO, path, NULL);
				goto out;
			}
			size_t tl = strlen(target), rl = strlen(work + pos);
			char *nw = malloc(tl + rl + 2);
			if (!nw) {
				free(target);
				ret = fail(quiet, err, ENOMEM, path, NULL);
				goto out;
			}
			memcpy(nw, target, tl);
			nw[tl] = '/';
			memcpy(nw + tl + 1, work + pos, rl + 1);
			if (target[0] == '/')
				depth = 0; /* absolute targets start at the filesystem's root */
			free(target);
			free(work);
			work = nw;
			pos = 0;
			continue;
		}
		if (depth + 1 >= MAX_DEPTH) {
			ret = fail(quiet, err, ENAMETOOLONG, path, NULL);
			goto out;
		}
		stack[++depth] = child;
	}
	*out = stack[depth];
	ret = 0;
out:
	free(stack);
	free(work);
	return ret;
}

int gfs_lookup(struct gfs *g, const char *path, bool follow, ext2_ino_t *ino)
{
	return resolve(g, path, follow, ino, NULL, false);
}

int gfs_lookup_q(struct gfs *g, const char *path, bool follow, ext2_ino_t *ino, int *err)
{
	return resolve(g, path, follow, ino, err, true);
}

int gfs_lookup_parent(struct gfs *g, const char *path, ext2_ino_t *dir, char *name)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	size_t slash = len;
	while (slash > 0 && path[slash - 1] != '/')
		slash--;
	size_t nl = len - slash;
	if (nl == 0 || (nl == 1 && path[slash] == '.') ||
	    (nl == 2 && path[slash] == '.' && path[slash + 1] == '.'))
		return kite_error("%s: not a name that can be created or removed", path);
	if (nl > EXT2_NAME_LEN)
		return kite_error("%s: %s", path, strerror(ENAMETOOLONG));
	memcpy(name, path + slash, nl);
	name[nl] = 0;
	char *parent = strndup(path, slash);
	if (!parent)
		return kite_error("out of memory");
	int r = gfs_lookup(g, parent[0] ? parent : "/", true, dir);
	free(parent);
	if (r < 0)
		return -1;
	struct ext2_inode_large in;
	if (gfs_read_inode(g, *dir, &in) < 0)
		return -1;
	if (!LINUX_S_ISDIR(in.i_mode))
		return kite_error("%s: %s", path, strerror(ENOTDIR));
	return 0;
}

uint32_t gfs_uid(const struct ext2_inode_large *in)
{
	return in->i_uid | (uint32_t)in->osd2.linux2.l_i_uid_high << 16;
}

uint32_t gfs_gid(const struct ext2_inode_large *in)
{
	return in->i_gid | (uint32_t)in->osd2.linux2.l_i_gid_high << 16;
}

void gfs_set_owner(struct ext2_inode_large *in, uint32_t uid, uint32_t gid)
{
	in->i_uid = (uint16_t)uid;
	in->osd2.linux2.l_i_uid_high = (uint16_t)(uid >> 16);
	in->i_gid = (uint16_t)gid;
	in->osd2.linux2.l_i_gid_high = (uint16_t)(gid >> 16);
}

uint64_t gfs_size(const struct ext2_inode_large *in)
{
	return in->i_size | (uint64_t)in->i_size_high << 32;
}

/* Seconds are signed 32-bit plus two epoch bits in the _extra field, which also holds
 * nanoseconds, when the inode is large enough to have it. */
static bool has_extra(const struct gfs *g, const struct ext2_inode_large *in, size_t field_end)
{
	return EXT2_INODE_SIZE(g->fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
	       (size_t)EXT2_GOOD_OLD_INODE_SIZE + in->i_extra_isize >= field_end;
}

#define XTIME_END(f) (offsetof(struct ext2_inode_large, f) + sizeof(uint32_t))

static void time_fields(struct ext2_inode_large *in, enum gfs_time t, uint32_t **sec,
			uint32_t **extra, size_t *end)
{
	switch (t) {
	case GFS_ATIME:
		*sec = &in->i_atime;
		*extra = &in->i_atime_extra;
		*end = XTIME_END(i_atime_extra);
		break;
	case GFS_MTIME:
		*sec = &in->i_mtime;
		*extra = &in->i_mtime_extra;
		*end = XTIME_END(i_mtime_extra);
		break;
	default:
		*sec = &in->i_ctime;
		*extra = &in->i_ctime_extra;
		*end = XTIME_END(i_ctime_extra);
		break;
	}
}

struct timespec gfs_time(const struct gfs *g, const struct ext2_inode_large *in, enum gfs_time t)
{
	uint32_t *sec, *extra;
	size_t end;
	time_fields((struct ext2_inode_large *)in, t, &sec, &extra, &end);
	struct timespec ts = {.tv_sec = (int32_t)*sec, .tv_nsec = 0};
	if (has_extra(g, in, end)) {
		ts.tv_sec += (int64_t)(*extra & EXT4_EPOCH_MASK) << 32;
		ts.tv_nsec = (*extra >> EXT4_EPOCH_BITS) % 1000000000;
	}
	return ts;
}

void gfs_set_time(const struct gfs *g, struct ext2_inode_large *in, enum gfs_time t,
		  struct timespec ts)
{
	uint32_t *sec, *extra;
	size_t end;
	time_fields(in, t, &sec, &extra, &end);
	*sec = (uint32_t)ts.tv_sec;
	if (has_extra(g, in, end)) {
		int64_t epoch = (ts.tv_sec - (int32_t)*sec) >> 32;
		*extra = (uint32_t)(epoch & EXT4_EPOCH_MASK) | (uint32_t)ts.tv_nsec
								   << EXT4_EPOCH_BITS;
	}
}

#include "guestfs/fswrite.h"
#include "guestfs/fault.h"
#include "guestfs/fsread.h"
#include "util/err.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define MAX_REMOVE_DEPTH 4096

int gfs_check_writable(struct gfs *g)
{
	if (ext2fs_has_feature_quota(g->fs->super))
		return kite_error("the filesystem has the quota feature: kite guest cannot keep "
				  "quota usage exact, so it does not write to it");
	return 0;
}

static int file_type(uint16_t mode)
{
	switch (mode & LINUX_S_IFMT) {
	case LINUX_S_IFREG:
		return EXT2_FT_REG_FILE;
	case LINUX_S_IFDIR:
		return EXT2_FT_DIR;
	case LINUX_S_IFLNK:
		return EXT2_FT_SYMLINK;
	case LINUX_S_IFCHR:
		return EXT2_FT_CHRDEV;
	case LINUX_S_IFBLK:
		return EXT2_FT_BLKDEV;
	case LINUX_S_IFIFO:
		return EXT2_FT_FIFO;
	case LINUX_S_IFSOCK:
		return EXT2_FT_SOCK;
	default:
		return EXT2_FT_UNKNOWN;
	}
}

static struct timespec now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		ts.tv_sec = time(NULL), ts.tv_nsec = 0;
	return ts;
}

void gfs_touch(struct gfs *g, struct ext2_inode_large *in, bool mtime)
{
	struct timespec t = now();
	gfs_set_time(g, in, GFS_CTIME, t);
	if (mtime)
		gfs_set_time(g, in, GFS_MTIME, t);
}

static int touch_dir(struct gfs *g, ext2_ino_t dir)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(g, dir, &in) < 0)
		return -1;
	gfs_touch(g, &in, true);
	return gfs_write_inode(g, dir, &in);
}

static int not_exists(struct gfs *g, ext2_ino_t dir, const char *name)
{
	ext2_ino_t ino;
	errcode_t e = ext2fs_lookup(g->fs, dir, name, (int)strlen(name), NULL, &ino);
	if (e == EXT2_ET_FILE_NOT_FOUND)
		return 0;
	if (e)
		return gfs_err(e, "%s", name);
	return kite_error("%s: %s", name, strerror(EEXIST));
}

/* Adds the entry, growing the directory when it is full. Nothing else is allocated before
 * this succeeds, so a failure leaves the filesystem as it was. */
static int add_entry(struct gfs *g, ext2_ino_t dir, const char *name, ext2_ino_t ino, int ftype)
{
	for (int tries = 0;; tries++) {
		errcode_t e = ext2fs_link(g->fs, dir, name, ino, ftype);
		if (e == EXT2_ET_DIR_NO_SPACE && tries < 2) {
			e = ext2fs_expand_dir(g->fs, dir);
			if (e)
				return gfs_err(e, "%s: cannot grow the directory", name);
			continue;
		}
		if (e)
			return gfs_err(e, "%s: cannot add the directory entry", name);
		return touch_dir(g, dir);
	}
}

static int new_ino(struct gfs *g, ext2_ino_t dir, uint16_t mode, ext2_ino_t *ino)
{
	errcode_t e = gfs_fault_now(GFS_FAULT_ALLOC)
			  ? EXT2_ET_INODE_ALLOC_FAIL
			  : ext2fs_new_inode(g->fs, dir, mode, NULL, ino);
	if (e)
		return gfs_err(e, "cannot allocate an inode");
	return 0;
}

/* Sets mode bits, owner and all timestamps to now on a freshly created inode. */
static int finish_inode(struct gfs *g, ext2_ino_t ino, uint16_t perm, uint32_t uid, uint32_t gid)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	in.i_mode = (uint16_t)((in.i_mode & LINUX_S_IFMT) | (perm & 07777));
	gfs_set_owner(&in, uid, gid);
	struct timespec t = now();
	gfs_set_time(g, &in, GFS_ATIME, t);
	gfs_set_time(g, &in, GFS_MTIME, t);
	gfs_set_time(g, &in, GFS_CTIME, t);
	return gfs_write_inode(g, ino, &in);
}

/* A new inode of any non-directory type without data blocks. With `name` it is linked into
 * `dir` last: a failure before that leaves an inode no entry names (an empty regular file,
 * which e2fsck -p clears without asking; a device or fifo, which it asks about), never an
 * entry naming an inode that is not there. Without `name` it is written as deleted (no
 * links, a deletion time), so that until gfs_link_new makes it live e2fsck sees neither it
 * nor the blocks written to it. */
static int create_inode(struct gfs *g, ext2_ino_t dir, const char *name, uint16_t mode,
			uint64_t rdev, uint32_t uid, uint32_t gid, ext2_ino_t *out)
{
	ext2_ino_t ino;
	if ((name && not_exists(g, dir, name) < 0) || new_ino(g, dir, mode, &ino) < 0)
		return -1;
	struct ext2_inode in;
	memset(&in, 0, sizeof(in));
	in.i_mode = mode;
	in.i_links_count = name ? 1 : 0;
	in.i_dtime = name ? 0 : (uint32_t)time(NULL);
	if (LINUX_S_ISREG(mode) && ext2fs_has_feature_extents(g->fs->super)) {
		ext2_extent_handle_t h;
		errcode_t e = ext2fs_extent_open2(g->fs, ino, &in, &h); /* fills in the header */
		if (e)
			return gfs_err(e, "cannot initialise the extent tree of inode %u", ino);
		ext2fs_extent_free(h);
	}
	if (LINUX_S_ISCHR(mode) || LINUX_S_ISBLK(mode)) {
		uint32_t major = (uint32_t)(rdev >> 32), minor = (uint32_t)rdev;
		if (major < 256 && minor < 256) {
			in.i_block[0] = major << 8 | minor;
		} else {
			in.i_block[1] = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
		}
	}
	errcode_t e = ext2fs_write_new_inode(g->fs, ino, &in);
	if (e)
		return gfs_err(e, "cannot write the new inode %u", ino);
	ext2fs_inode_alloc_stats2(g->fs, ino, +1, 0);
	if (finish_inode(g, ino, mode, uid, gid) < 0 ||
	    (name && add_entry(g, dir, name, ino, file_type(mode)) < 0))
		return -1;
	if (out)
		*out = ino;
	return 0;
}

int gfs_create(struct gfs *g, ext2_ino_t dir, const char *name, uint16_t mode, uint32_t uid,
	       uint32_t gid, ext2_ino_t *ino)
{
	return create_inode(g, dir, name, LINUX_S_IFREG | (mode & 07777), 0, uid, gid, ino);
}

int gfs_new_file(struct gfs *g, ext2_ino_t dir, uint16_t mode, uint32_t uid, uint32_t gid,
		 ext2_ino_t *ino)
{
	return create_inode(g, dir, NULL, LINUX_S_IFREG | (mode & 07777), 0, uid, gid, ino);
}

int gfs_link_new(struct gfs *g, ext2_ino_t dir, const char *name, ext2_ino_t ino)
{
	struct ext2_inode_large in;
	if (not_exists(g, dir, name) < 0 || gfs_read_inode(g, ino, &in) < 0)
		return -1;
	in.i_links_count = 1;
	in.i_dtime = 0;
	gfs_touch(g, &in, false);
	if (gfs_write_inode(g, ino, &in) < 0)
		return -1;
	return add_entry(g, dir, name, ino, file_type(in.i_mode));
}

int gfs_mknod(struct gfs *g, ext2_ino_t dir, const char *name, uint16_t mode, uint64_t rdev,
	      uint32_t uid, uint32_t gid, ext2_ino_t *ino)
{
	return create_inode(g, dir, name, mode, rdev, uid, gid, ino);
}

/* Directories and symlinks are built whole (ext2fs_mkdir also counts the parent's new link),
 * then linked: a failure in between leaves an unattached inode, not a dangling entry. */
int gfs_mkdir(struct gfs *g, ext2_ino_t dir, const char *name, uint16_t mode, uint32_t uid,
	      uint32_t gid, ext2_ino_t *out)
{
	ext2_ino_t ino;
	if (not_exists(g, dir, name) < 0 || new_ino(g, dir, LINUX_S_IFDIR | 0755, &ino) < 0)
		return -1;
	errcode_t e = ext2fs_mkdir(g->fs, dir, ino, NULL);
	if (e)
		return gfs_err(e, "%s: cannot create the directory", name);
	if (finish_inode(g, ino, mode, uid, gid) < 0 ||
	    add_entry(g, dir, name, ino, EXT2_FT_DIR) < 0)
		return -1;
	if (out)
		*out = ino;
	return 0;
}

int gfs_symlink(struct gfs *g, ext2_ino_t dir, const char *name, const char *target, uint32_t uid,
		uint32_t gid, ext2_ino_t *out)
{
	ext2_ino_t ino;
	size_t tl = strlen(target);
	if (!tl || tl >= g->fs->blocksize)
		return kite_error("%s: the symlink target must be 1 to %u bytes long", name,
				  g->fs->blocksize - 1);
	if (not_exists(g, dir, name) < 0 || new_ino(g, dir, LINUX_S_IFLNK | 0777, &ino) < 0)
		return -1;
	errcode_t e = ext2fs_symlink(g->fs, dir, ino, NULL, target);
	if (e)
		return gfs_err(e, "%s: cannot create the symbolic link", name);
	if (finish_inode(g, ino, 0777, uid, gid) < 0 ||
	    add_entry(g, dir, name, ino, EXT2_FT_SYMLINK) < 0)
		return -1;
	if (out)
		*out = ino;
	return 0;
}

/* The link count goes up before the entry is added: a failure in between leaves a count one
 * too high, which e2fsck -p lowers without asking. */
int gfs_hardlink(struct gfs *g, ext2_ino_t dir, const char *name, ext2_ino_t ino)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	if (LINUX_S_ISDIR(in.i_mode))
		return kite_error("%s: cannot hard-link a directory", name);
	if (in.i_links_count >= EXT2_LINK_MAX)
		return kite_error("%s: too many links", name);
	if (not_exists(g, dir, name) < 0)
		return -1;
	in.i_links_count++;
	gfs_touch(g, &in, false);
	if (gfs_write_inode(g, ino, &in) < 0)
		return -1;
	return add_entry(g, dir, name, ino, file_type(in.i_mode));
}

/* Exported by libext2fs but declared only in its private header. */
errcode_t ext2fs_inline_data_expand(ext2_filsys fs, ext2_ino_t ino);

/* libext2fs 1.47.0 miscomputes sizes when writing into inline data: move the data to a
 * block first (the kernel does the same when an inline file grows). */
static int uninline(struct gfs *g, ext2_ino_t ino)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	if (!(in.i_flags & EXT4_INLINE_DATA_FL))
		return 0;
	errcode_t e = ext2fs_inline_data_expand(g->fs, ino);
	if (e)
		return gfs_err(e, "cannot move the inline data of inode %u to a block", ino);
	return 0;
}

int gfs_pwrite(struct gfs *g, ext2_ino_t ino, const void *buf, size_t len, uint64_t off)
{
	ext2_file_t f;
	if (uninline(g, ino) < 0)
		return -1;
	errcode_t e = ext2fs_file_open(g->fs, ino, EXT2_FILE_WRITE, &f);
	if (e)
		return gfs_err(e, "cannot open inode %u for writing", ino);
	e = ext2fs_file_llseek(f, off, EXT2_SEEK_SET, NULL);
	const char *p = buf;
	while (!e && len) {
		unsigned chunk = len > (1u << 30) ? 1u << 30 : (unsigned)len, got = 0;
		e = ext2fs_file_write(f, p, chunk, &got);
		if (!e && !got)
			e = EXT2_ET_SHORT_WRITE;
		p += got;
		len -= got;
	}
	errcode_t ec = ext2fs_file_close(f);
	if (e || ec)
		return gfs_err(e ? e : ec, "cannot write inode %u", ino);
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	gfs_touch(g, &in, true);
	return gfs_write_inode(g, ino, &in);
}

struct release {
	blk64_t cluster;
	bool any;
};

static int release_block(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref,
			 int ref_offset, void *priv)
{
	struct release *r = priv;
	blk64_t cluster = EXT2FS_B2C(fs, *blocknr);
	if (r->any && cluster == r->cluster)
		return 0; /* bigalloc: blocks of one cluster come in a row */
	r->any = true;
	r->cluster = cluster;
	ext2fs_block_alloc_stats2(fs, *blocknr, -1);
	return 0;
}

/* Frees every block of the inode (data, extent tree or indirect blocks) in the allocation
 * bitmaps, which reach the image only when the change is complete: nothing is written. */
static int release_blocks(struct gfs *g, ext2_ino_t ino, struct ext2_inode_large *in)
{
	if (!ext2fs_inode_has_valid_blocks2(g->fs, (struct ext2_inode *)in))
		return 0;
	struct release r = {0};
	errcode_t e =
	    ext2fs_block_iterate3(g->fs, ino, BLOCK_FLAG_READ_ONLY, NULL, release_block, &r);
	if (e)
		return gfs_err(e, "cannot free the blocks of inode %u", ino);
	return 0;
}

/* Makes a regular file empty: its blocks are released and one inode write leaves it with
 * none. Unlike ext2fs_punch this writes no extent block, so a failure after it leaves at
 * worst blocks the bitmaps still count, which e2fsck -p frees without asking; and the
 * ext2fs_punch of libext2fs 1.47 fails with "Illegal block number" on an extent that ends at
 * the filesystem's last block, as the last file of a full disk does. */
static int empty_file(struct gfs *g, ext2_ino_t ino, struct ext2_inode_large *in)
{
	/* ext2fs_punch leaves inline data half removed (libext2fs 1.47): move it to a block */
	if ((in->i_flags & EXT4_INLINE_DATA_FL) &&
	    (uninline(g, ino) < 0 || gfs_read_inode(g, ino, in) < 0))
		return -1;
	if (release_blocks(g, ino, in) < 0)
		return -1;
	memset(in->i_block, 0, sizeof(in->i_block));
	if (in->i_flags & EXT4_EXTENTS_FL) {
		ext2_extent_handle_t h;
		errcode_t e = ext2fs_extent_open2(g->fs, ino, (struct ext2_inode *)in, &h);
		if (e)
			return gfs_err(e, "cannot initialise the extent tree of inode %u", ino);
		ext2fs_extent_free(h);
	}
	bool acl = ext2fs_file_acl_block(g->fs, (struct ext2_inode *)in) != 0;
	errcode_t e = ext2fs_iblk_set(g->fs, (struct ext2_inode *)in, acl ? 1 : 0);
	if (e)
		return gfs_err(e, "cannot empty inode %u", ino);
	in->i_size = in->i_size_high = 0;
	return gfs_write_inode(g, ino, in);
}

int gfs_truncate(struct gfs *g, ext2_ino_t ino, uint64_t size)
{
	struct ext2_inode_large in;
	if (size == 0) {
		if (gfs_read_inode(g, ino, &in) < 0 || empty_file(g, ino, &in) < 0)
			return -1;
	} else {
		ext2_file_t f;
		if (uninline(g, ino) < 0)
			return -1;
		errcode_t e = ext2fs_file_open(g->fs, ino, EXT2_FILE_WRITE, &f);
		if (e)
			return gfs_err(e, "cannot open inode %u for writing", ino);
		e = ext2fs_file_set_size2(f, size);
		errcode_t ec = ext2fs_file_close(f);
		if (e || ec)
			return gfs_err(e ? e : ec, "cannot truncate inode %u", ino);
	}
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	gfs_touch(g, &in, true);
	return gfs_write_inode(g, ino, &in);
}

int gfs_replace(struct gfs *g, ext2_ino_t ino, const void *buf, size_t len)
{
	if (gfs_truncate(g, ino, 0) < 0)
		return -1;
	if (len && gfs_pwrite(g, ino, buf, len, 0) < 0)
		return -1;
	return 0;
}

/* Drops one link of `ino`, whose entry is gone; frees it when none is left. `is_dir`: a
 * directory (which then had 2 links: its entry and its own "."). The inode is written dead
 * (no links, a deletion time) before its blocks and its number are freed in the bitmaps: a
 * failure in between leaves only counts that e2fsck -p corrects without asking. */
static int drop_inode(struct gfs *g, ext2_ino_t ino, bool is_dir)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	if (!is_dir && in.i_links_count > 1) {
		in.i_links_count--;
		gfs_touch(g, &in, false);
		return gfs_write_inode(g, ino, &in);
	}
	in.i_links_count = 0;
	in.i_dtime = (uint32_t)time(NULL);
	if (gfs_write_inode(g, ino, &in) < 0 || release_blocks(g, ino, &in) < 0)
		return -1;
	if (ext2fs_file_acl_block(g->fs, (struct ext2_inode *)&in)) {
		errcode_t e = ext2fs_free_ext_attr(g->fs, ino, &in);
		if (e)
			return gfs_err(e, "cannot free the extended attributes of inode %u", ino);
	}
	ext2fs_inode_alloc_stats2(g->fs, ino, -1, is_dir);
	return 0;
}

static int remove_entry(struct gfs *g, ext2_ino_t dir, const char *name, bool recursive, int depth);

static int empty_dir(struct gfs *g, ext2_ino_t ino, const char *name, bool recursive, int depth)
{
	struct gfs_dirent *d;
	size_t n;
	if (gfs_list_dir(g, ino, &d, &n) < 0)
		return -1;
	int ret = 0;
	if (n && !recursive)
		ret = kite_error("%s: %s (use -r)", name, strerror(ENOTEMPTY));
	for (size_t i = 0; i < n && !ret; i++)
		ret = remove_entry(g, ino, d[i].name, true, depth + 1);
	gfs_dirents_free(d, n);
	return ret;
}

static int remove_entry(struct gfs *g, ext2_ino_t dir, const char *name, bool recursive, int depth)
{
	ext2_ino_t ino;
	if (depth > MAX_REMOVE_DEPTH)
		return kite_error("%s: directories nested too deep (a loop?)", name);
	errcode_t e = ext2fs_lookup(g->fs, dir, name, (int)strlen(name), NULL, &ino);
	if (e)
		return gfs_err(e, "%s", name);
	if (ino == EXT2_ROOT_INO || ino == dir)
		return kite_error("%s: refusing to remove the root or a directory's own entry",
				  name);
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	bool is_dir = LINUX_S_ISDIR(in.i_mode);
	if (is_dir && empty_dir(g, ino, name, recursive, depth) < 0)
		return -1;
	/* A regular file's last link: emptied while its entry still names it, so that a failure
	 * once the entry is gone leaves an empty unattached inode, which e2fsck -p clears
	 * without asking (inline data has no blocks: e2fsck counts it empty already). Then the
	 * entry, then the inode (drop_inode). */
	if (!is_dir && LINUX_S_ISREG(in.i_mode) && in.i_links_count <= 1 &&
	    !(in.i_flags & EXT4_INLINE_DATA_FL) && empty_file(g, ino, &in) < 0)
		return -1;
	e = ext2fs_unlink(g->fs, dir, name, ino, 0);
	if (e)
		return gfs_err(e, "%s: cannot remove the directory entry", name);
	if (is_dir) {
		struct ext2_inode_large pin;
		if (gfs_read_inode(g, dir, &pin) < 0)
			return -1;
		if (pin.i_links_count > 2) /* the child's ".." no longer counts */
			pin.i_links_count--;
		if (gfs_write_inode(g, dir, &pin) < 0)
			return -1;
	}
	if (touch_dir(g, dir) < 0)
		return -1;
	return drop_inode(g, ino, is_dir);
}

int gfs_remove(struct gfs *g, ext2_ino_t dir, const char *name, bool recursive)
{
	return remove_entry(g, dir, name, recursive, 0);
}

struct dotdot_ctx {
	ext2_ino_t parent;
	bool done;
};

/* Points a directory's ".." entry (kept in place: e2fsck wants it second) at a new parent. */
static int set_dotdot(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset,
		      int blocksize, char *buf, void *priv)
{
	struct dotdot_ctx *c = priv;
	if (entry != DIRENT_DOT_DOT_FILE)
		return 0;
	de->inode = c->parent;
	c->done = true;
	return DIRENT_CHANGED | DIRENT_ABORT;
}

int gfs_rename(struct gfs *g, ext2_ino_t from_dir, const char *from, ext2_ino_t to_dir,
	       const char *to)
{
	ext2_ino_t ino, old;
	errcode_t e = ext2fs_lookup(g->fs, from_dir, from, (int)strlen(from), NULL, &ino);
	if (e)
		return gfs_err(e, "%s", from);
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	bool is_dir = LINUX_S_ISDIR(in.i_mode);
	e = ext2fs_lookup(g->fs, to_dir, to, (int)strlen(to), NULL, &old);
	if (!e) {
		if (old == ino)
			return 0;
		struct ext2_inode_large oin;
		if (gfs_read_inode(g, old, &oin) < 0)
			return -1;
		if (LINUX_S_ISDIR(oin.i_mode) != is_dir)
			return kite_error("%s: %s", to, strerror(is_dir ? ENOTDIR : EISDIR));
		if (gfs_remove(g, to_dir, to, false) < 0)
			return -1;
	} else if (e != EXT2_ET_FILE_NOT_FOUND) {
		return gfs_err(e, "%s", to);
	}
	if (is_dir) {
		/* refuse moving a directory into itself: walk up from to_dir */
		ext2_ino_t cur = to_dir;
		for (int i = 0; cur != EXT2_ROOT_INO && i < MAX_REMOVE_DEPTH; i++) {
			if (cur == ino)
				return kite_error("%s: cannot move a directory into itself", from);
			if (ext2fs_lookup(g->fs, cur, "..", 2, NULL, &cur))
				break;
		}
	}
	if (add_entry(g, to_dir, to, ino, file_type(in.i_mode)) < 0)
		return -1;
	e = ext2fs_unlink(g->fs, from_dir, from, ino, 0);
	if (e)
		return gfs_err(e, "%s: cannot remove the old entry", from);
	if (touch_dir(g, from_dir) < 0)
		return -1;
	if (is_dir && from_dir != to_dir) {
		/* repoint ".." and move the link it counts */
		struct ext2_inode_large p;
		if (gfs_read_inode(g, from_dir, &p) < 0)
			return -1;
		if (p.i_links_count > 2)
			p.i_links_count--;
		if (gfs_write_inode(g, from_dir, &p) < 0 || gfs_read_inode(g, to_dir, &p) < 0)
			return -1;
		p.i_links_count++;
		if (gfs_write_inode(g, to_dir, &p) < 0)
			return -1;
		struct dotdot_ctx dd = {.parent = to_dir};
		e = ext2fs_dir_iterate2(g->fs, ino, 0, NULL, set_dotdot, &dd);
		if (e || !dd.done)
			return e ? gfs_err(e, "%s: cannot update '..'", to)
				 : kite_error("%s: the directory has no '..' entry", to);
	}
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	gfs_touch(g, &in, false);
	return gfs_write_inode(g, ino, &in);
}

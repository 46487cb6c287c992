/* kite guest mount IMAGE MOUNTPOINT [-m DEVICE] [--ro] [-f]: the filesystem inside the image
 * as a FUSE mount (what guestmount does; -m /dev/VG/LV as guestmount's, or -a). The loop is
 * single-threaded, so libext2fs is never entered twice at once. Unmounting (fusermount3 -u) ends
 * the loop, and the filesystem's metadata is written back and the image flushed before the process
 * exits. */
#define FUSE_USE_VERSION 31
#include "cli/cmd_guest.h"
#include "guestfs/fsread.h"
#include "guestfs/fswrite.h"
#include "util/err.h"

#include <errno.h>
#include <fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static struct gfs *G(void)
{
	return fuse_get_context()->private_data;
}

static int lookup(const char *path, bool follow, ext2_ino_t *ino)
{
	int err = EIO;
	if (gfs_lookup_q(G(), path, follow, ino, &err) < 0)
		return -(err == EXDEV ? EACCES : err);
	return 0;
}

/* Splits the path and checks that the last name is free (-EEXIST) or present (want_exist). */
static int parent_of(const char *path, ext2_ino_t *dir, char *name, bool want_exist)
{
	ext2_ino_t ino;
	int r = lookup(path, false, &ino);
	if (want_exist && r)
		return r;
	if (!want_exist && r == 0)
		return -EEXIST;
	if (!want_exist && r != -ENOENT)
		return r;
	if (gfs_lookup_parent(G(), path, dir, name) < 0)
		return -ENOENT;
	return 0;
}

static void fill_stat(struct gfs *g, ext2_ino_t ino, const struct ext2_inode_large *in,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = in->i_mode;
	st->st_nlink = in->i_links_count;
	st->st_uid = gfs_uid(in);
	st->st_gid = gfs_gid(in);
	st->st_size = (off_t)gfs_size(in);
	st->st_blksize = (blksize_t)g->fs->blocksize;
	st->st_blocks = (blkcnt_t)ext2fs_get_stat_i_blocks(g->fs, (struct ext2_inode *)in);
	st->st_atim = gfs_time(g, in, GFS_ATIME);
	st->st_mtim = gfs_time(g, in, GFS_MTIME);
	st->st_ctim = gfs_time(g, in, GFS_CTIME);
	if (LINUX_S_ISCHR(in->i_mode) || LINUX_S_ISBLK(in->i_mode)) {
		uint32_t b0 = in->i_block[0], b1 = in->i_block[1];
		st->st_rdev =
		    b0 ? makedev((b0 >> 8) & 0xff, b0 & 0xff)
		       : makedev((b1 & 0xfff00) >> 8, (b1 & 0xff) | ((b1 >> 12) & 0xfff00));
	}
}

static int k_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	ext2_ino_t ino;
	struct ext2_inode_large in;
	int r = fi && fi->fh ? 0 : lookup(path, false, &ino);
	if (r)
		return r;
	if (fi && fi->fh)
		ino = (ext2_ino_t)fi->fh;
	if (gfs_read_inode(G(), ino, &in) < 0)
		return -EIO;
	fill_stat(G(), ino, &in, st);
	return 0;
}

static int k_readlink(const char *path, char *buf, size_t size)
{
	ext2_ino_t ino;
	int r = lookup(path, false, &ino);
	if (r)
		return r;
	char *t = malloc(G()->fs->blocksize + 1);
	if (!t)
		return -ENOMEM;
	if (gfs_readlink(G(), ino, t, G()->fs->blocksize + 1) < 0) {
		free(t);
		return -EINVAL;
	}
	snprintf(buf, size, "%s", t);
	free(t);
	return 0;
}

static int k_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		     struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	ext2_ino_t ino;
	struct gfs_dirent *d;
	size_t n;
	int r = lookup(path, true, &ino);
	if (r)
		return r;
	if (gfs_list_dir(G(), ino, &d, &n) < 0)
		return -EIO;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	for (size_t i = 0; i < n; i++)
		if (filler(buf, d[i].name, NULL, 0, 0))
			break;
	gfs_dirents_free(d, n);
	return 0;
}

static int k_open(const char *path, struct fuse_file_info *fi)
{
	ext2_ino_t ino;
	struct ext2_inode_large in;
	int r = lookup(path, true, &ino);
	if (r)
		return r;
	if ((fi->flags & O_ACCMODE) != O_RDONLY && !G()->rw)
		return -EROFS;
	if (gfs_read_inode(G(), ino, &in) < 0)
		return -EIO;
	if (LINUX_S_ISDIR(in.i_mode))
		return -EISDIR;
	if ((fi->flags & O_TRUNC) && gfs_truncate(G(), ino, 0) < 0)
		return -EIO;
	fi->fh = ino;
	return 0;
}

static int k_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ext2_file_t f;
	ext2_ino_t ino = (ext2_ino_t)fi->fh;
	if (ext2fs_file_open(G()->fs, ino, 0, &f))
		return -EIO;
	unsigned got = 0;
	errcode_t e = ext2fs_file_llseek(f, (uint64_t)off, EXT2_SEEK_SET, NULL);
	if (!e)
		e = ext2fs_file_read(f, buf, (unsigned)size, &got);
	ext2fs_file_close(f);
	return e ? -EIO : (int)got;
}

static int k_write(const char *path, const char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	if (gfs_pwrite(G(), (ext2_ino_t)fi->fh, buf, size, (uint64_t)off) < 0)
		return -EIO;
	return (int)size;
}

static int k_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	ext2_ino_t dir, ino;
	char name[EXT2_NAME_LEN + 1];
	if (!S_ISREG(mode))
		return -EINVAL;
	int r = parent_of(path, &dir, name, false);
	if (r)
		return r;
	struct fuse_context *c = fuse_get_context();
	if (gfs_create(G(), dir, name, mode & 07777, c->uid, c->gid, &ino) < 0)
		return -EIO;
	fi->fh = ino;
	return 0;
}

static int k_mknod(const char *path, mode_t mode, dev_t rdev)
{
	ext2_ino_t dir;
	char name[EXT2_NAME_LEN + 1];
	int r = parent_of(path, &dir, name, false);
	if (r)
		return r;
	struct fuse_context *c = fuse_get_context();
	uint64_t dev = (uint64_t)major(rdev) << 32 | minor(rdev);
	int ok = S_ISREG(mode)
		     ? gfs_create(G(), dir, name, mode & 07777, c->uid, c->gid, NULL)
		     : gfs_mknod(G(), dir, name, (uint16_t)mode, dev, c->uid, c->gid, NULL);
	return ok < 0 ? -EIO : 0;
}

static int k_mkdir(const char *path, mode_t mode)
{
	ext2_ino_t dir;
	char name[EXT2_NAME_LEN + 1];
	int r = parent_of(path, &dir, name, false);
	if (r)
		return r;
	struct fuse_context *c = fuse_get_context();
	return gfs_mkdir(G(), dir, name, mode & 07777, c->uid, c->gid, NULL) < 0 ? -EIO : 0;
}

static int remove_checked(const char *path, bool want_dir)
{
	ext2_ino_t dir, ino;
	char name[EXT2_NAME_LEN + 1];
	struct ext2_inode_large in;
	int r = parent_of(path, &dir, name, true);
	if (r)
		return r;
	if (lookup(path, false, &ino) || gfs_read_inode(G(), ino, &in) < 0)
		return -EIO;
	if (LINUX_S_ISDIR(in.i_mode) != want_dir)
		return want_dir ? -ENOTDIR : -EISDIR;
	if (want_dir) {
		struct gfs_dirent *d;
		size_t n;
		if (gfs_list_dir(G(), ino, &d, &n) < 0)
			return -EIO;
		gfs_dirents_free(d, n);
		if (n)
			return -ENOTEMPTY;
	}
	return gfs_remove(G(), dir, name, false) < 0 ? -EIO : 0;
}

static int k_unlink(const char *path)
{
	return remove_checked(path, false);
}

static int k_rmdir(const char *path)
{
	return remove_checked(path, true);
}

static int k_symlink(const char *target, const char *path)
{
	ext2_ino_t dir;
	char name[EXT2_NAME_LEN + 1];
	int r = parent_of(path, &dir, name, false);
	if (r)
		return r;
	struct fuse_context *c = fuse_get_context();
	return gfs_symlink(G(), dir, name, target, c->uid, c->gid, NULL) < 0 ? -EIO : 0;
}

static int k_link(const char *from, const char *to)
{
	ext2_ino_t dir, ino;
	char name[EXT2_NAME_LEN + 1];
	int r = lookup(from, false, &ino);
	if (!r)
		r = parent_of(to, &dir, name, false);
	if (r)
		return r;
	return gfs_hardlink(G(), dir, name, ino) < 0 ? -EIO : 0;
}

static int k_rename(const char *from, const char *to, unsigned int flags)
{
	ext2_ino_t fdir, tdir, ino;
	char fname[EXT2_NAME_LEN + 1], tname[EXT2_NAME_LEN + 1];
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL;
	int r = parent_of(from, &fdir, fname, true);
	if (r)
		return r;
	if (lookup(to, false, &ino) == 0 && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (gfs_lookup_parent(G(), to, &tdir, tname) < 0)
		return -ENOENT;
	return gfs_rename(G(), fdir, fname, tdir, tname) < 0 ? -EIO : 0;
}

static int change_inode(const char *path, struct fuse_file_info *fi,
			void (*fn)(struct ext2_inode_large *, const void *), const void *arg)
{
	ext2_ino_t ino;
	struct ext2_inode_large in;
	int r = fi && fi->fh ? 0 : lookup(path, false, &ino);
	if (r)
		return r;
	if (fi && fi->fh)
		ino = (ext2_ino_t)fi->fh;
	if (gfs_read_inode(G(), ino, &in) < 0)
		return -EIO;
	fn(&in, arg);
	gfs_touch(G(), &in, false);
	return gfs_write_inode(G(), ino, &in) < 0 ? -EIO : 0;
}

static void set_mode(struct ext2_inode_large *in, const void *arg)
{
	in->i_mode = (uint16_t)((in->i_mode & LINUX_S_IFMT) | (*(const mode_t *)arg & 07777));
}

static int k_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return change_inode(path, fi, set_mode, &mode);
}

static void set_owner(struct ext2_inode_large *in, const void *arg)
{
	const uint32_t *ids = arg;
	gfs_set_owner(in, ids[0] == (uint32_t)-1 ? gfs_uid(in) : ids[0],
		      ids[1] == (uint32_t)-1 ? gfs_gid(in) : ids[1]);
}

static int k_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	uint32_t ids[2] = {uid, gid};
	return change_inode(path, fi, set_owner, ids);
}

struct times_arg {
	const struct timespec *tv;
};

static void set_times(struct ext2_inode_large *in, const void *arg)
{
	const struct timespec *tv = ((const struct times_arg *)arg)->tv;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	for (int i = 0; i < 2; i++) {
		if (tv && tv[i].tv_nsec == UTIME_OMIT)
			continue;
		struct timespec t = !tv || tv[i].tv_nsec == UTIME_NOW ? now : tv[i];
		gfs_set_time(G(), in, i ? GFS_MTIME : GFS_ATIME, t);
	}
}

static int k_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct times_arg a = {tv};
	return change_inode(path, fi, set_times, &a);
}

static int k_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	ext2_ino_t ino;
	int r = fi && fi->fh ? 0 : lookup(path, true, &ino);
	if (r)
		return r;
	if (fi && fi->fh)
		ino = (ext2_ino_t)fi->fh;
	return gfs_truncate(G(), ino, (uint64_t)size) < 0 ? -EIO : 0;
}

static int k_statfs(const char *path, struct statvfs *st)
{
	struct ext2_super_block *sb = G()->fs->super;
	uint64_t freeb = ext2fs_free_blocks_count(sb), resv = ext2fs_r_blocks_count(sb);
	memset(st, 0, sizeof(*st));
	st->f_bsize = st->f_frsize = G()->fs->blocksize;
	st->f_blocks = ext2fs_blocks_count(sb);
	st->f_bfree = freeb;
	st->f_bavail = freeb > resv ? freeb - resv : 0;
	st->f_files = sb->s_inodes_count;
	st->f_ffree = st->f_favail = sb->s_free_inodes_count;
	st->f_namemax = EXT2_NAME_LEN;
	return 0;
}

static int k_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	if (!G()->rw)
		return 0;
	return gfs_sync(G()) < 0 ? -EIO : 0;
}

static void *k_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	cfg->kernel_cache = 0;
	return fuse_get_context()->private_data;
}

static const struct fuse_operations ops = {
    .init = k_init,
    .getattr = k_getattr,
    .readlink = k_readlink,
    .readdir = k_readdir,
    .open = k_open,
    .read = k_read,
    .write = k_write,
    .create = k_create,
    .mknod = k_mknod,
    .mkdir = k_mkdir,
    .unlink = k_unlink,
    .rmdir = k_rmdir,
    .symlink = k_symlink,
    .link = k_link,
    .rename = k_rename,
    .chmod = k_chmod,
    .chown = k_chown,
    .utimens = k_utimens,
    .truncate = k_truncate,
    .statfs = k_statfs,
    .fsync = k_fsync,
};

/* guestmount's -m DEV[:MOUNTPOINT]: one filesystem, mounted at the root of the mount. */
static int parse_m(struct guest_common *c, char *arg)
{
	char *colon = strchr(arg, ':');
	if (colon && strcmp(colon, ":/"))
		return kite_error("-m %s: kite guest mount mounts one filesystem, at the mount "
				  "point: use -m DEVICE or -m DEVICE:/",
				  arg);
	if (colon)
		*colon = 0;
	if (c->partition && strcmp(c->partition, arg))
		return kite_error("-a %s and -m %s name different filesystems", c->partition, arg);
	c->partition = arg;
	return 0;
}

int guest_mount(int argc, char **argv)
{
	static const char use[] = "IMAGE MOUNTPOINT [-m DEVICE] [--ro] [-f]";
	static const struct option longopts[] = {
	    GUEST_COMMON_LONG,
	    {"foreground", no_argument, NULL, 'f'},
	    {"mount", required_argument, NULL, 'm'},
	    {NULL, 0, NULL, 0},
	};
	struct guest_common c = {0};
	bool fg = false;
	int opt;
	while ((opt = getopt_long(argc, argv, GUEST_COMMON_SHORT "rfm:", longopts, NULL)) != -1) {
		if (opt == 'a' && c.partition && strcmp(c.partition, optarg)) {
			kite_error("-m %s and -a %s name different filesystems", c.partition,
				   optarg);
			return 1;
		}
		if (guest_common_opt(&c, opt, optarg))
			continue;
		if (opt == 'm' && parse_m(&c, optarg) < 0)
			return 1;
		if (opt == 'm')
			continue;
		if (opt == 'r')
			c.ro = true;
		else if (opt == 'f')
			fg = true;
		else
			return guest_usage_error("mount", use);
	}
	if (guest_take_image(&c, argc, argv) < 0 || argc - optind != 1)
		return guest_usage_error("mount", use);
	const char *mnt = argv[optind];
	struct stat st;
	if (stat(mnt, &st) < 0 || !S_ISDIR(st.st_mode)) {
		kite_error("%s: the mount point must be an existing directory", mnt);
		return 1;
	}
	struct gfs g;
	if (guest_open_session(&g, &c, !c.ro) < 0)
		return 1;
	char *fargv[] = {argv[0], "-o",
			 c.ro ? "ro,default_permissions,fsname=kite,subtype=kite"
			      : "default_permissions,fsname=kite,subtype=kite"};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	int rc = 1;
	struct fuse *f = fuse_new(&args, &ops, sizeof(ops), &g);
	if (!f) {
		kite_error("cannot set up FUSE");
		goto out;
	}
	if (fuse_mount(f, mnt) != 0) {
		kite_error("%s: cannot mount (is /dev/fuse available?)", mnt);
		fuse_destroy(f);
		goto out;
	}
	if (fuse_daemonize(fg) != 0) {
		kite_error("cannot go to the background");
	} else {
		struct fuse_session *se = fuse_get_session(f);
		if (fuse_set_signal_handlers(se) == 0) {
			rc = fuse_loop(f) != 0;
			fuse_remove_signal_handlers(se);
		}
	}
	fuse_unmount(f);
	fuse_destroy(f);
out:
	fuse_opt_free_args(&args);
	/* what the session wrote was acknowledged to its callers: it stays */
	return gfs_close(&g) < 0 ? 1 : rc;
}

/* kite guest copy-out IMAGE PATH... HOSTDIR: copies files and trees out of the image keeping
 * ownership, modes, timestamps, symlinks, hard links and holes. Everything is created relative
 * to directory descriptors that this code created itself, with O_NOFOLLOW/O_EXCL, so names
 * and symlinks from the image never lead a write outside HOSTDIR. */
#include "cli/cmd_guest.h"
#include "guestfs/fsread.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct link_rec {
	ext2_ino_t ino;
	char *rel; /* path relative to HOSTDIR of the first copy */
};

struct out_ctx {
	struct gfs *g;
	int rootfd;
	struct link_rec *links;
	size_t nlinks, caplinks;
	ext2_ino_t *dirs; /* directories entered: a second visit is a loop */
	size_t ndirs, capdirs;
	bool root;
};

static int owner_times(struct out_ctx *c, int dirfd, const char *name, int fd,
		       struct ext2_inode_large *in, bool symlink)
{
	struct timespec ts[2] = {gfs_time(c->g, in, GFS_ATIME), gfs_time(c->g, in, GFS_MTIME)};
	uid_t uid = gfs_uid(in);
	gid_t gid = gfs_gid(in);
	int r;
	if (fd >= 0)
		r = fchown(fd, uid, gid);
	else
		r = fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
	if (r < 0 && (c->root || errno != EPERM))
		return kite_error_errno(errno, "%s: cannot set the owner", name);
	/* chmod after chown: chown clears the set-id bits */
	if (!symlink && fchmod(fd, in->i_mode & 07777) < 0)
		return kite_error_errno(errno, "%s: cannot set the mode", name);
	if (fd >= 0)
		r = futimens(fd, ts);
	else
		r = utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return kite_error_errno(errno, "%s: cannot set the timestamps", name);
	return 0;
}

struct file_out {
	int fd;
	const char *name;
};

static int pwrite_cb(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct file_out *f = ctx;
	const char *p = buf;
	while (len) {
		ssize_t n = pwrite(f->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kite_error_errno(errno, "%s: write", f->name);
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Creates `name` in `dirfd` with `make`, replacing a non-directory already there. */
static int create_replacing(int dirfd, const char *name, int (*make)(int, const char *, void *),
			    void *arg)
{
	int r = make(dirfd, name, arg);
	if (r < 0 && errno == EEXIST) {
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
		    unlinkat(dirfd, name, 0) == 0)
			r = make(dirfd, name, arg);
		else
			errno = EEXIST;
	}
	return r;
}

static int make_file(int dirfd, const char *name, void *arg)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0)
		*(int *)arg = fd;
	return fd < 0 ? -1 : 0;
}

static int make_symlink(int dirfd, const char *name, void *arg)
{
	return symlinkat(arg, dirfd, name);
}

static int make_link(int dirfd, const char *name, void *arg)
{
	struct out_ctx *c = ((void **)arg)[0];
	return linkat(c->rootfd, ((void **)arg)[1], dirfd, name, 0);
}

struct node_arg {
	mode_t mode;
	dev_t dev;
};

static int make_node(int dirfd, const char *name, void *arg)
{
	struct node_arg *n = arg;
	return mknodat(dirfd, name, n->mode, n->dev);
}

static dev_t inode_dev(const struct ext2_inode_large *in)
{
	if (in->i_block[0])
		return makedev((in->i_block[0] >> 8) & 0xff, in->i_block[0] & 0xff);
	uint32_t b = in->i_block[1];
	return makedev((b & 0xfff00) >> 8, (b & 0xff) | ((b >> 12) & 0xfff00));
}

static int copy_node(struct out_ctx *c, ext2_ino_t ino, int dirfd, const char *name,
		     const char *rel);

static int copy_dir_contents(struct out_ctx *c, ext2_ino_t ino, int fd, const char *rel)
{
	for (size_t i = 0; i < c->ndirs; i++)
		if (c->dirs[i] == ino)
			return kite_error("%s: directory loop (inode %u is reached twice): the "
					  "filesystem is corrupt; run e2fsck",
					  rel, ino);
	if (c->ndirs == c->capdirs) {
		size_t cap = c->capdirs ? c->capdirs * 2 : 64;
		ext2_ino_t *n = realloc(c->dirs, cap * sizeof(*n));
		if (!n)
			return kite_error("out of memory");
		c->dirs = n;
		c->capdirs = cap;
	}
	c->dirs[c->ndirs++] = ino;
	struct gfs_dirent *d;
	size_t n;
	if (gfs_list_dir(c->g, ino, &d, &n) < 0)
		return -1;
	int ret = 0;
	for (size_t i = 0; i < n && !ret; i++) {
		char *crel;
		if (asprintf(&crel, "%s%s%s", rel, rel[0] ? "/" : "", d[i].name) < 0) {
			ret = kite_error("out of memory");
			break;
		}
		ret = copy_node(c, d[i].ino, fd, d[i].name, crel);
		free(crel);
	}
	gfs_dirents_free(d, n);
	return ret;
}

static int copy_node(struct out_ctx *c, ext2_ino_t ino, int dirfd, const char *name,
		     const char *rel)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(c->g, ino, &in) < 0)
		return -1;
	uint16_t type = in.i_mode & LINUX_S_IFMT;
	if (type == LINUX_S_IFDIR) {
		if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
			return kite_error_errno(errno, "%s: mkdir", rel);
		int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return kite_error_errno(errno, "%s", rel);
		int r = copy_dir_contents(c, ino, fd, rel);
		if (!r)
			r = owner_times(c, dirfd, name, fd, &in, false);
		close(fd);
		return r;
	}
	if (type == LINUX_S_IFREG && in.i_links_count > 1) {
		for (size_t i = 0; i < c->nlinks; i++) {
			if (c->links[i].ino == ino) {
				void *arg[2] = {c, c->links[i].rel};
				if (create_replacing(dirfd, name, make_link, arg) < 0)
					return kite_error_errno(errno, "%s: link", rel);
				return 0;
			}
		}
	}
	if (type == LINUX_S_IFREG) {
		int fd = -1;
		if (create_replacing(dirfd, name, make_file, &fd) < 0)
			return kite_error_errno(errno, "%s", rel);
		struct file_out fo = {.fd = fd, .name = rel};
		int r = gfs_read_data(c->g, ino, pwrite_cb, &fo);
		if (!r && ftruncate(fd, (off_t)gfs_size(&in)) < 0)
			r = kite_error_errno(errno, "%s: truncate", rel);
		if (!r)
			r = owner_times(c, dirfd, name, fd, &in, false);
		if (close(fd) < 0 && !r)
			r = kite_error_errno(errno, "%s: close", rel);
		if (!r && in.i_links_count > 1) {
			if (c->nlinks == c->caplinks) {
				size_t cap = c->caplinks ? c->caplinks * 2 : 16;
				struct link_rec *n = realloc(c->links, cap * sizeof(*n));
				if (!n)
					return kite_error("out of memory");
				c->links = n;
				c->caplinks = cap;
			}
			c->links[c->nlinks].ino = ino;
			c->links[c->nlinks].rel = strdup(rel);
			if (!c->links[c->nlinks].rel)
				return kite_error("out of memory");
			c->nlinks++;
		}
		return r;
	}
	if (type == LINUX_S_IFLNK) {
		char *target = malloc(c->g->fs->blocksize + 1);
		if (!target)
			return kite_error("out of memory");
		int r = gfs_readlink(c->g, ino, target, c->g->fs->blocksize + 1);
		if (!r && create_replacing(dirfd, name, make_symlink, target) < 0)
			r = kite_error_errno(errno, "%s: symlink", rel);
		free(target);
		if (!r)
			r = owner_times(c, dirfd, name, -1, &in, true);
		return r;
	}
	struct node_arg na = {.mode = 0600, .dev = 0};
	switch (type) {
	case LINUX_S_IFCHR:
		na.mode |= S_IFCHR;
		na.dev = inode_dev(&in);
		break;
	case LINUX_S_IFBLK:
		na.mode |= S_IFBLK;
		na.dev = inode_dev(&in);
		break;
	case LINUX_S_IFIFO:
		na.mode |= S_IFIFO;
		break;
	case LINUX_S_IFSOCK:
		na.mode |= S_IFSOCK;
		break;
	default:
		return kite_error("%s: inode %u has an unknown file type (mode %o)", rel, ino,
				  in.i_mode);
	}
	if (create_replacing(dirfd, name, make_node, &na) < 0) {
		kite_warn("%s: cannot create the special file: %s; skipped", rel, strerror(errno));
		return 0;
	}
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kite_error_errno(errno, "%s", rel);
	close(fd);
	struct timespec ts[2] = {gfs_time(c->g, &in, GFS_ATIME), gfs_time(c->g, &in, GFS_MTIME)};
	if (fchownat(dirfd, name, gfs_uid(&in), gfs_gid(&in), AT_SYMLINK_NOFOLLOW) < 0 &&
	    (c->root || errno != EPERM))
		return kite_error_errno(errno, "%s: cannot set the owner", rel);
	if (fchmodat(dirfd, name, in.i_mode & 07777, 0) < 0 ||
	    utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return kite_error_errno(errno, "%s: cannot set mode or timestamps", rel);
	return 0;
}

int guest_copy_out(int argc, char **argv)
{
	static const char use[] = "IMAGE PATH... HOSTDIR";
	static const struct option longopts[] = {GUEST_COMMON_LONG, {NULL, 0, NULL, 0}};
	struct guest_common gc = {0};
	int opt;
	while ((opt = getopt_long(argc, argv, GUEST_COMMON_SHORT, longopts, NULL)) != -1) {
		if (!guest_common_opt(&gc, opt, optarg))
			return guest_usage_error("copy-out", use);
	}
	if (guest_take_image(&gc, argc, argv) < 0 || argc - optind < 2)
		return guest_usage_error("copy-out", use);
	const char *hostdir = argv[argc - 1];
	int rootfd = open(hostdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		kite_error_errno(errno, "%s", hostdir);
		return 1;
	}
	struct gfs g;
	if (guest_open(&g, &gc, false) < 0) {
		close(rootfd);
		return 1;
	}
	struct out_ctx c = {.g = &g, .rootfd = rootfd, .root = geteuid() == 0};
	int rc = 0;
	for (int i = optind; i < argc - 1 && !rc; i++) {
		const char *path = argv[i];
		ext2_ino_t ino;
		if (gfs_lookup(&g, path, false, &ino) < 0) {
			rc = 1;
			break;
		}
		/* the last name of the path, or the tree's contents when it is the root */
		size_t len = strlen(path);
		while (len > 0 && path[len - 1] == '/')
			len--;
		size_t s = len;
		while (s > 0 && path[s - 1] != '/')
			s--;
		char *base = strndup(path + s, len - s);
		if (!base) {
			kite_error("out of memory");
			rc = 1;
			break;
		}
		struct ext2_inode_large in;
		if (ino == EXT2_ROOT_INO || !base[0] || !strcmp(base, ".") || !strcmp(base, "..")) {
			if (gfs_read_inode(&g, ino, &in) < 0 ||
			    copy_dir_contents(&c, ino, rootfd, "") < 0)
				rc = 1;
		} else if (copy_node(&c, ino, rootfd, base, base) < 0) {
			rc = 1;
		}
		free(base);
	}
	for (size_t i = 0; i < c.nlinks; i++)
		free(c.links[i].rel);
	free(c.links);
	free(c.dirs);
	close(rootfd);
	return guest_finish(&g, rc);
}

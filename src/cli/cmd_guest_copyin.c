/* kite guest copy-in IMAGE HOSTPATH... DIR: copies host files and trees into the image keeping
 * ownership, modes, timestamps (with nanoseconds), symlinks, hard links, special files and
 * holes (only the data ranges SEEK_DATA reports are written). */
#include "cli/cmd_guest.h"
#include "guestfs/fswrite.h"
#include "util/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define CHUNK (1u << 20)

struct hl {
	dev_t dev;
	ino_t ino;
	ext2_ino_t to;
};

struct in_ctx {
	struct gfs *g;
	struct hl *links;
	size_t nlinks, cap;
	char *buf;
};

static int set_times(struct gfs *g, ext2_ino_t ino, const struct stat *st)
{
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	gfs_set_time(g, &in, GFS_ATIME, st->st_atim);
	gfs_set_time(g, &in, GFS_MTIME, st->st_mtim);
	return gfs_write_inode(g, ino, &in);
}

static int copy_data(struct in_ctx *c, int fd, ext2_ino_t ino, const struct stat *st,
		     const char *path)
{
	off_t pos = 0, end = st->st_size;
	while (pos < end) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (data < 0)
			data = pos; /* no SEEK_DATA here: copy everything */
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = end;
		for (off_t off = data; off < hole;) {
			size_t want = (size_t)(hole - off < CHUNK ? hole - off : CHUNK);
			ssize_t n = pread(fd, c->buf, want, off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return kite_error_errno(errno, "%s: read", path);
			if (n == 0)
				break; /* the file shrank under us */
			if (gfs_pwrite(c->g, ino, c->buf, (size_t)n, (uint64_t)off) < 0)
				return -1;
			off += n;
		}
		pos = hole;
	}
	return gfs_truncate(c->g, ino, (uint64_t)end); /* a trailing hole */
}

static int copy_in(struct in_ctx *c, int dirfd, const char *hname, const char *path, ext2_ino_t dir,
		   const char *name);

static int copy_dir(struct in_ctx *c, int fd, const char *path, ext2_ino_t ino)
{
	int dfd = dup(fd);
	if (dfd < 0)
		return kite_error_errno(errno, "%s", path);
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return kite_error_errno(errno, "%s", path);
	}
	/* sorted, so that the image's layout does not depend on the host's directory order */
	char **names = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (!nn) {
				ret = kite_error("out of memory");
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			ret = kite_error("out of memory");
			break;
		}
		n++;
		errno = 0;
	}
	if (!ret && errno)
		ret = kite_error_errno(errno, "%s: readdir", path);
	for (size_t i = 0; i < n && !ret; i++) {
		for (size_t j = i + 1; j < n; j++) {
			if (strcmp(names[j], names[i]) < 0) {
				char *t = names[i];
				names[i] = names[j];
				names[j] = t;
			}
		}
	}
	for (size_t i = 0; i < n && !ret; i++) {
		char *sub;
		if (asprintf(&sub, "%s/%s", path, names[i]) < 0) {
			ret = kite_error("out of memory");
			break;
		}
		ret = copy_in(c, fd, names[i], sub, ino, names[i]);
		free(sub);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
}

static uint16_t ext_type(mode_t m)
{
	if (S_ISCHR(m))
		return LINUX_S_IFCHR;
	if (S_ISBLK(m))
		return LINUX_S_IFBLK;
	if (S_ISFIFO(m))
		return LINUX_S_IFIFO;
	return LINUX_S_IFSOCK;
}

static int copy_in(struct in_ctx *c, int dirfd, const char *hname, const char *path, ext2_ino_t dir,
		   const char *name)
{
	struct stat st;
	if (fstatat(dirfd, hname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return kite_error_errno(errno, "%s", path);
	if (strlen(name) > EXT2_NAME_LEN)
		return kite_error("%s: name too long for ext2/3/4", path);
	ext2_ino_t ino = 0;
	errcode_t e = ext2fs_lookup(c->g->fs, dir, name, (int)strlen(name), NULL, &ino);
	if (e && e != EXT2_ET_FILE_NOT_FOUND)
		return gfs_err(e, "%s", name);
	if (!e) {
		struct ext2_inode_large in;
		if (gfs_read_inode(c->g, ino, &in) < 0)
			return -1;
		if (!(S_ISDIR(st.st_mode) && LINUX_S_ISDIR(in.i_mode))) {
			if (LINUX_S_ISDIR(in.i_mode))
				return kite_error(
				    "%s: a directory of that name exists in the image", path);
			if (gfs_remove(c->g, dir, name, false) < 0) /* replaced, as tar does */
				return -1;
			ino = 0;
		}
	}
	uint16_t perm = st.st_mode & 07777;
	if (S_ISDIR(st.st_mode)) {
		if (!ino && gfs_mkdir(c->g, dir, name, perm, st.st_uid, st.st_gid, &ino) < 0)
			return -1;
		int fd = openat(dirfd, hname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return kite_error_errno(errno, "%s", path);
		int r = copy_dir(c, fd, path, ino);
		close(fd);
		return r < 0 ? -1 : set_times(c->g, ino, &st);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[4097];
		ssize_t n = readlinkat(dirfd, hname, target, sizeof(target) - 1);
		if (n < 0)
			return kite_error_errno(errno, "%s", path);
		target[n] = 0;
		if (gfs_symlink(c->g, dir, name, target, st.st_uid, st.st_gid, &ino) < 0)
			return -1;
		return set_times(c->g, ino, &st);
	}
	if (st.st_nlink > 1) {
		for (size_t i = 0; i < c->nlinks; i++)
			if (c->links[i].dev == st.st_dev && c->links[i].ino == st.st_ino)
				return gfs_hardlink(c->g, dir, name, c->links[i].to);
	}
	if (S_ISREG(st.st_mode)) {
		int fd = openat(dirfd, hname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return kite_error_errno(errno, "%s", path);
		/* written whole, then named: a failure leaves no partial file */
		int r = gfs_new_file(c->g, dir, perm, st.st_uid, st.st_gid, &ino);
		if (!r)
			r = copy_data(c, fd, ino, &st, path);
		if (!r)
			r = gfs_link_new(c->g, dir, name, ino);
		close(fd);
		if (r < 0)
			return -1;
	} else {
		uint64_t rdev = (uint64_t)major(st.st_rdev) << 32 | minor(st.st_rdev);
		if (gfs_mknod(c->g, dir, name, ext_type(st.st_mode) | perm, rdev, st.st_uid,
			      st.st_gid, &ino) < 0)
			return -1;
	}
	if (st.st_nlink > 1) {
		if (c->nlinks == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 16;
			struct hl *n = realloc(c->links, cap * sizeof(*n));
			if (!n)
				return kite_error("out of memory");
			c->links = n;
			c->cap = cap;
		}
		c->links[c->nlinks++] = (struct hl){st.st_dev, st.st_ino, ino};
	}
	return set_times(c->g, ino, &st);
}

int guest_copy_in(int argc, char **argv)
{
	static const char use[] = "IMAGE HOSTPATH... DIR";
	static const struct option longopts[] = {GUEST_COMMON_LONG, {NULL, 0, NULL, 0}};
	struct guest_common gc = {0};
	int opt;
	while ((opt = getopt_long(argc, argv, GUEST_COMMON_SHORT, longopts, NULL)) != -1) {
		if (!guest_common_opt(&gc, opt, optarg))
			return guest_usage_error("copy-in", use);
	}
	if (guest_take_image(&gc, argc, argv) < 0 || argc - optind < 2)
		return guest_usage_error("copy-in", use);
	struct gfs g;
	if (guest_open(&g, &gc, true) < 0)
		return 1;
	struct in_ctx c = {.g = &g, .buf = malloc(CHUNK)};
	ext2_ino_t dir;
	struct ext2_inode_large in;
	int rc = 1;
	if (!c.buf) {
		kite_error("out of memory");
		goto out;
	}
	if (gfs_lookup(&g, argv[argc - 1], true, &dir) < 0 || gfs_read_inode(&g, dir, &in) < 0)
		goto out;
	if (!LINUX_S_ISDIR(in.i_mode)) {
		kite_error("%s: not a directory in the image", argv[argc - 1]);
		goto out;
	}
	rc = 0;
	for (int i = optind; i < argc - 1 && !rc; i++) {
		const char *path = argv[i];
		size_t len = strlen(path);
		while (len > 1 && path[len - 1] == '/')
			len--;
		size_t s = len;
		while (s > 0 && path[s - 1] != '/')
			s--;
		char *base = strndup(path + s, len - s);
		if (!base || !base[0] || !strcmp(base, ".") || !strcmp(base, "..") ||
		    !strcmp(base, "/")) {
			kite_error("%s: name a file or directory to copy", path);
			free(base);
			rc = 1;
			break;
		}
		rc = copy_in(&c, AT_FDCWD, path, path, dir, base) < 0;
		free(base);
	}
out:
	free(c.buf);
	free(c.links);
	return guest_finish(&g, rc);
}

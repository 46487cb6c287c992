/* kite guest ls / cat: reading a filesystem inside an image. */
#include "cli/cmd_guest.h"
#include "guestfs/fsread.h"
#include "util/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void mode_string(uint16_t mode, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";
	char t = '?';
	switch (mode & LINUX_S_IFMT) {
	case LINUX_S_IFREG:
		t = '-';
		break;
	case LINUX_S_IFDIR:
		t = 'd';
		break;
	case LINUX_S_IFLNK:
		t = 'l';
		break;
	case LINUX_S_IFCHR:
		t = 'c';
		break;
	case LINUX_S_IFBLK:
		t = 'b';
		break;
	case LINUX_S_IFIFO:
		t = 'p';
		break;
	case LINUX_S_IFSOCK:
		t = 's';
		break;
	}
	out[0] = t;
	for (int i = 0; i < 9; i++)
		out[1 + i] = (mode & (0400 >> i)) ? rwx[i] : '-';
	if (mode & 04000)
		out[3] = (mode & 0100) ? 's' : 'S';
	if (mode & 02000)
		out[6] = (mode & 010) ? 's' : 'S';
	if (mode & 01000)
		out[9] = (mode & 01) ? 't' : 'T';
	out[10] = 0;
}

/* Writes `name` with control characters escaped so that hostile names cannot drive the
 * terminal. */
static void put_name(const char *name)
{
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			printf("\\%03o", *p);
		else
			putchar(*p);
	}
}

static int print_entry(struct gfs *g, const char *display, ext2_ino_t ino, bool longfmt)
{
	if (longfmt) {
		struct ext2_inode_large in;
		char mode[11], when[32];
		if (gfs_read_inode(g, ino, &in) < 0)
			return -1;
		mode_string(in.i_mode, mode);
		time_t t = gfs_time(g, &in, GFS_MTIME).tv_sec;
		struct tm tm;
		if (!gmtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm))
			strcpy(when, "?");
		printf("%s %4u %5" PRIu32 " %5" PRIu32 " %12" PRIu64 " %s ", mode, in.i_links_count,
		       gfs_uid(&in), gfs_gid(&in), gfs_size(&in), when);
		put_name(display);
		if (LINUX_S_ISLNK(in.i_mode)) {
			char target[4097];
			if (gfs_readlink(g, ino, target, sizeof(target)) == 0) {
				printf(" -> ");
				put_name(target);
			}
		}
		putchar('\n');
	} else {
		put_name(display);
		putchar('\n');
	}
	return 0;
}

/* Directories already entered (inode numbers): a directory reached twice is a loop in a
 * corrupt filesystem. */
struct seen {
	ext2_ino_t *ino;
	size_t n, cap;
};

static int seen_add(struct seen *s, ext2_ino_t ino)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ino[i] == ino)
			return 1;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		ext2_ino_t *n = realloc(s->ino, cap * sizeof(*n));
		if (!n)
			return kite_error("out of memory");
		s->ino = n;
		s->cap = cap;
	}
	s->ino[s->n++] = ino;
	return 0;
}

static int ls_dir(struct gfs *g, const char *path, ext2_ino_t dir, bool longfmt, bool recurse,
		  struct seen *seen, int depth)
{
	struct gfs_dirent *d;
	size_t n;
	if (gfs_list_dir(g, dir, &d, &n) < 0)
		return -1;
	int ret = 0;
	for (size_t i = 0; i < n && !ret; i++) {
		char *full = NULL;
		if (recurse) {
			size_t pl = strlen(path);
			if (asprintf(&full, "%s%s%s", path, pl && path[pl - 1] == '/' ? "" : "/",
				     d[i].name) < 0) {
				ret = kite_error("out of memory");
				break;
			}
		}
		if (print_entry(g, recurse ? full : d[i].name, d[i].ino, longfmt) < 0)
			ret = -1;
		struct ext2_inode_large in;
		if (!ret && recurse && gfs_read_inode(g, d[i].ino, &in) == 0 &&
		    LINUX_S_ISDIR(in.i_mode)) {
			int s = seen_add(seen, d[i].ino);
			if (s > 0 || depth > 4096)
				ret = kite_error("%s: directory loop (inode %u is reached twice): "
						 "the filesystem is corrupt; run e2fsck",
						 full, d[i].ino);
			else if (s < 0)
				ret = -1;
			else
				ret = ls_dir(g, full, d[i].ino, longfmt, recurse, seen, depth + 1);
		}
		free(full);
	}
	gfs_dirents_free(d, n);
	return ret;
}

int guest_ls(int argc, char **argv)
{
	static const struct option longopts[] = {GUEST_COMMON_LONG, {NULL, 0, NULL, 0}};
	struct guest_common c = {0};
	bool longfmt = false, recurse = false;
	int opt;
	while ((opt = getopt_long(argc, argv, GUEST_COMMON_SHORT "lR", longopts, NULL)) != -1) {
		if (guest_common_opt(&c, opt, optarg))
			continue;
		if (opt == 'l')
			longfmt = true;
		else if (opt == 'R')
			recurse = true;
		else
			return guest_usage_error("ls", "IMAGE PATH [-l] [-R]");
	}
	if (guest_take_image(&c, argc, argv) < 0 || argc - optind != 1)
		return guest_usage_error("ls", "IMAGE PATH [-l] [-R]");
	const char *path = argv[optind];
	struct gfs g;
	if (guest_open(&g, &c, false) < 0)
		return 1;
	ext2_ino_t ino;
	int rc = 1;
	struct ext2_inode_large in;
	if (gfs_lookup(&g, path, true, &ino) == 0 && gfs_read_inode(&g, ino, &in) == 0) {
		if (!LINUX_S_ISDIR(in.i_mode)) {
			rc = print_entry(&g, path, ino, longfmt) < 0;
		} else {
			struct seen seen = {0};
			rc = seen_add(&seen, ino) < 0 ||
			     ls_dir(&g, path, ino, longfmt, recurse, &seen, 0) < 0;
			free(seen.ino);
		}
	}
	if (fflush(stdout) != 0) {
		kite_error_errno(errno, "writing the listing");
		rc = 1;
	}
	return guest_finish(&g, rc);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct cat_ctx {
	uint64_t pos; /* bytes written so far: holes are written as zeros */
	char *zeros;
};

static int cat_zeros(struct cat_ctx *c, uint64_t upto)
{
	while (c->pos < upto) {
		size_t n = upto - c->pos > 65536 ? 65536 : (size_t)(upto - c->pos);
		if (write_all(STDOUT_FILENO, c->zeros, n) < 0)
			return kite_error_errno(errno, "writing to standard output");
		c->pos += n;
	}
	return 0;
}

static int cat_cb(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct cat_ctx *c = ctx;
	if (cat_zeros(c, off) < 0)
		return -1;
	if (write_all(STDOUT_FILENO, buf, len) < 0)
		return kite_error_errno(errno, "writing to standard output");
	c->pos += len;
	return 0;
}

int guest_cat(int argc, char **argv)
{
	static const struct option longopts[] = {GUEST_COMMON_LONG, {NULL, 0, NULL, 0}};
	struct guest_common c = {0};
	int opt;
	while ((opt = getopt_long(argc, argv, GUEST_COMMON_SHORT, longopts, NULL)) != -1) {
		if (!guest_common_opt(&c, opt, optarg))
			return guest_usage_error("cat", "IMAGE PATH");
	}
	if (guest_take_image(&c, argc, argv) < 0 || argc - optind != 1)
		return guest_usage_error("cat", "IMAGE PATH");
	const char *path = argv[optind];
	struct gfs g;
	if (guest_open(&g, &c, false) < 0)
		return 1;
	ext2_ino_t ino;
	struct ext2_inode_large in;
	int rc = 1;
	if (gfs_lookup(&g, path, true, &ino) == 0 && gfs_read_inode(&g, ino, &in) == 0) {
		if (!LINUX_S_ISREG(in.i_mode)) {
			kite_error("%s: not a regular file", path);
		} else {
			struct cat_ctx cc = {.zeros = calloc(1, 65536)};
			if (!cc.zeros)
				kite_error("out of memory");
			else if (gfs_read_data(&g, ino, cat_cb, &cc) == 0 &&
				 cat_zeros(&cc, gfs_size(&in)) == 0)
				rc = 0;
			free(cc.zeros);
		}
	}
	return guest_finish(&g, rc);
}

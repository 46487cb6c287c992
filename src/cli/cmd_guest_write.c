/* kite guest write / mkdir / rm / chmod / chown / ln: small changes to a filesystem. */
#include "cli/cmd_guest.h"
#include "guestfs/fsread.h"
#include "guestfs/fswrite.h"
#include "guestfs/textedit.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses the common options and leaves optind at the first operand; `extra` takes the verb's
 * own single-letter switches. Returns -1 on a usage error. */
static int parse(int argc, char **argv, const char *shortopts, struct guest_common *c,
		 int (*extra)(int opt, void *arg), void *arg)
{
	static const struct option longopts[] = {GUEST_COMMON_LONG, {NULL, 0, NULL, 0}};
	char so[32];
	snprintf(so, sizeof(so), "%s%s", GUEST_COMMON_SHORT, shortopts);
	int opt;
	while ((opt = getopt_long(argc, argv, so, longopts, NULL)) != -1) {
		if (guest_common_opt(c, opt, optarg))
			continue;
		if (!extra || extra(opt, arg) < 0)
			return -1;
	}
	return guest_take_image(c, argc, argv);
}

int guest_write(int argc, char **argv)
{
	static const char use[] = "IMAGE PATH < DATA";
	struct guest_common c = {0};
	if (parse(argc, argv, "", &c, NULL, NULL) < 0 || argc - optind != 1)
		return guest_usage_error("write", use);
	const char *path = argv[optind];
	struct gfs g;
	if (guest_open(&g, &c, true) < 0)
		return 1;
	ext2_ino_t ino, dir;
	int err = 0, rc = 1;
	bool fresh = false;
	char name[EXT2_NAME_LEN + 1];
	struct ext2_inode_large in;
	if (gfs_lookup_q(&g, path, true, &ino, &err) == 0) {
		if (gfs_read_inode(&g, ino, &in) < 0)
			goto out;
		if (!LINUX_S_ISREG(in.i_mode)) {
			kite_error("%s: not a regular file", path);
			goto out;
		}
		if (gfs_truncate(&g, ino, 0) < 0)
			goto out;
	} else if (err == ENOENT) {
		/* a new file is written whole, then named (below) */
		if (gfs_lookup_parent(&g, path, &dir, name) < 0 ||
		    gfs_new_file(&g, dir, 0644, 0, 0, &ino) < 0)
			goto out;
		fresh = true;
	} else {
		gfs_lookup(&g, path, true, &ino); /* prints the error */
		goto out;
	}
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	if (!buf) {
		kite_error("out of memory");
		goto out;
	}
	uint64_t off = 0;
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kite_error_errno(errno, "reading standard input");
			break;
		}
		if (n == 0) {
			rc = fresh && gfs_link_new(&g, dir, name, ino) < 0;
			break;
		}
		if (gfs_pwrite(&g, ino, buf, (size_t)n, off) < 0)
			break;
		off += (uint64_t)n;
	}
	free(buf);
out:
	return guest_finish(&g, rc);
}

static int flag_p(int opt, void *arg)
{
	if (opt != 'p')
		return -1;
	*(bool *)arg = true;
	return 0;
}

static int mkdir_p(struct gfs *g, const char *path)
{
	char *p = strdup(path);
	if (!p)
		return kite_error("out of memory");
	int ret = 0;
	for (char *s = p;; s++) {
		if (*s != '/' && *s)
			continue;
		char saved = *s;
		*s = 0;
		ext2_ino_t ino, dir;
		int err;
		char name[EXT2_NAME_LEN + 1];
		if (p[0] && gfs_lookup_q(g, p, true, &ino, &err) < 0) {
			if (err != ENOENT || gfs_lookup_parent(g, p, &dir, name) < 0 ||
			    gfs_mkdir(g, dir, name, 0755, 0, 0, NULL) < 0) {
				if (err != ENOENT)
					gfs_lookup(g, p, true, &ino);
				ret = -1;
				break;
			}
		}
		*s = saved;
		if (!saved)
			break;
	}
	free(p);
	return ret;
}

int guest_mkdir(int argc, char **argv)
{
	static const char use[] = "IMAGE [-p] PATH...";
	struct guest_common c = {0};
	bool parents = false;
	if (parse(argc, argv, "p", &c, flag_p, &parents) < 0 || argc - optind < 1)
		return guest_usage_error("mkdir", use);
	struct gfs g;
	if (guest_open(&g, &c, true) < 0)
		return 1;
	int rc = 0;
	for (int i = optind; i < argc && !rc; i++) {
		ext2_ino_t dir;
		char name[EXT2_NAME_LEN + 1];
		if (parents)
			rc = mkdir_p(&g, argv[i]) < 0;
		else
			rc = gfs_lookup_parent(&g, argv[i], &dir, name) < 0 ||
			     gfs_mkdir(&g, dir, name, 0755, 0, 0, NULL) < 0;
	}
	return guest_finish(&g, rc);
}

struct rm_flags {
	bool recursive, force;
};

static int rm_flag(int opt, void *arg)
{
	struct rm_flags *f = arg;
	if (opt == 'r' || opt == 'R')
		f->recursive = true;
	else if (opt == 'f')
		f->force = true;
	else
		return -1;
	return 0;
}

int guest_rm(int argc, char **argv)
{
	static const char use[] = "IMAGE [-r] [-f] PATH...";
	struct guest_common c = {0};
	struct rm_flags f = {0};
	if (parse(argc, argv, "rRf", &c, rm_flag, &f) < 0 || argc - optind < 1)
		return guest_usage_error("rm", use);
	struct gfs g;
	if (guest_open(&g, &c, true) < 0)
		return 1;
	int rc = 0;
	for (int i = optind; i < argc && !rc; i++) {
		ext2_ino_t dir, ino;
		int err;
		char name[EXT2_NAME_LEN + 1];
		if (gfs_lookup_q(&g, argv[i], false, &ino, &err) < 0) {
			if (err == ENOENT && f.force)
				continue;
			gfs_lookup(&g, argv[i], false, &ino);
			rc = 1;
			break;
		}
		rc = gfs_lookup_parent(&g, argv[i], &dir, name) < 0 ||
		     gfs_remove(&g, dir, name, f.recursive) < 0;
	}
	return guest_finish(&g, rc);
}

static int parse_mode(const char *s, uint16_t *mode)
{
	char *end;
	errno = 0;
	unsigned long m = strtoul(s, &end, 8);
	if (!*s || *end || errno || m > 07777)
		return kite_error("bad mode '%s' (expected octal, such as 0644)", s);
	*mode = (uint16_t)m;
	return 0;
}

int guest_chmod(int argc, char **argv)
{
	static const char use[] = "IMAGE MODE PATH...";
	struct guest_common c = {0};
	uint16_t mode = 0;
	if (parse(argc, argv, "", &c, NULL, NULL) < 0 || argc - optind < 2)
		return guest_usage_error("chmod", use);
	if (parse_mode(argv[optind], &mode) < 0)
		return 1;
	struct gfs g;
	if (guest_open(&g, &c, true) < 0)
		return 1;
	int rc = 0;
	for (int i = optind + 1; i < argc && !rc; i++) {
		ext2_ino_t ino;
		struct ext2_inode_large in;
		rc = 1;
		if (gfs_lookup(&g, argv[i], true, &ino) < 0 || gfs_read_inode(&g, ino, &in) < 0)
			break;
		in.i_mode = (uint16_t)((in.i_mode & LINUX_S_IFMT) | mode);
		gfs_touch(&g, &in, false);
		rc = gfs_write_inode(&g, ino, &in) < 0;
	}
	return guest_finish(&g, rc);
}

static int parse_id(const char *s, size_t len, uint32_t *out)
{
	char buf[16];
	if (!len || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = 0;
	char *end;
	errno = 0;
	unsigned long v = strtoul(buf, &end, 10);
	if (*end || errno || v >= 0xffffffffUL || buf[0] == '-')
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* A user or group name looked up in the image's own /etc/passwd or /etc/group (not the
 * host's), or a number. */
static int resolve_id(struct gfs *g, const char *s, size_t len, const char *db, uint32_t *out)
{
	if (parse_id(s, len, out) == 0)
		return 0;
	char name[64], *text;
	size_t tl;
	ext2_ino_t ino;
	if (len >= sizeof(name))
		return kite_error("bad owner name '%.*s'", (int)len, s);
	memcpy(name, s, len);
	name[len] = 0;
	int err;
	if (gfs_lookup_q(g, db, true, &ino, &err) < 0)
		return kite_error("'%s' is not a number and the image has no readable %s", name,
				  db);
	if (gfs_read_file(g, ino, &text, &tl, 16u << 20) < 0)
		return -1;
	bool found = db_find(text, name, out, NULL) && *out != UINT32_MAX;
	free(text);
	if (!found)
		return kite_error("'%s' is not in the image's %s", name, db);
	return 0;
}

int guest_chown(int argc, char **argv)
{
	static const char use[] = "IMAGE OWNER[:GROUP] PATH...";
	struct guest_common c = {0};
	if (parse(argc, argv, "", &c, NULL, NULL) < 0 || argc - optind < 2)
		return guest_usage_error("chown", use);
	const char *spec = argv[optind], *colon = strchr(spec, ':');
	size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
	if (!ulen) {
		kite_error("bad owner '%s' (expected USER, UID, USER:GROUP or UID:GID)", spec);
		return 1;
	}
	struct gfs g;
	if (guest_open(&g, &c, true) < 0)
		return 1;
	uint32_t uid = 0, gid = 0;
	bool set_gid = colon && colon[1];
	if (resolve_id(&g, spec, ulen, "/etc/passwd", &uid) < 0 ||
	    (set_gid && resolve_id(&g, colon + 1, strlen(colon + 1), "/etc/group", &gid) < 0))
		return guest_finish(&g, 1);
	int rc = 0;
	for (int i = optind + 1; i < argc && !rc; i++) {
		ext2_ino_t ino;
		struct ext2_inode_large in;
		rc = 1;
		if (gfs_lookup(&g, argv[i], false, &ino) < 0 || gfs_read_inode(&g, ino, &in) < 0)
			break;
		gfs_set_owner(&in, uid, set_gid ? gid : gfs_gid(&in));
		gfs_touch(&g, &in, false);
		rc = gfs_write_inode(&g, ino, &in) < 0;
	}
	return guest_finish(&g, rc);
}

static int flag_s(int opt, void *arg)
{
	if (opt != 's')
		return -1;
	*(bool *)arg = true;
	return 0;
}

int guest_ln(int argc, char **argv)
{
	static const char use[] = "IMAGE [-s] TARGET LINKPATH";
	struct guest_common c = {0};
	bool sym = false;
	if (parse(argc, argv, "s", &c, flag_s, &sym) < 0 || argc - optind != 2)
		return guest_usage_error("ln", use);
	const char *target = argv[optind], *linkpath = argv[optind + 1];
	struct gfs g;
	if (guest_open(&g, &c, true) < 0)
		return 1;
	ext2_ino_t dir, ino;
	char name[EXT2_NAME_LEN + 1];
	int rc = gfs_lookup_parent(&g, linkpath, &dir, name) < 0;
	if (!rc && sym)
		rc = gfs_symlink(&g, dir, name, target, 0, 0, NULL) < 0;
	else if (!rc)
		rc =
		    gfs_lookup(&g, target, false, &ino) < 0 || gfs_hardlink(&g, dir, name, ino) < 0;
	return guest_finish(&g, rc);
}

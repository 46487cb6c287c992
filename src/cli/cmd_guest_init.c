/* kite guest init IMAGE [options]: the SSH set-up of a new machine done offline (what the seed
 * does on first boot): sshd port and login policy, a user with a group, sudo without password,
 * authorized keys, host name, a locked root password. Running it twice changes nothing the
 * second time: a file is only written when its content would differ. */
#include "cli/cmd_guest.h"
#include "guestfs/fsread.h"
#include "guestfs/fswrite.h"
#include "guestfs/textedit.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_TEXT (16u << 20)
#define MAX_KEYS 32

struct init_opts {
	const char *ssh_port, *user, *hostname;
	const char *groups[16];
	int ngroups;
	const char *sudo_group;
	const char *key_files[MAX_KEYS];
	int nkeys;
	bool no_password_login, no_root_login, root_lock;
};

struct text {
	char *s;
	bool exists;
	ext2_ino_t ino;
};

/* A quiet lookup failed for a reason other than ENOENT: reports it and fails. Looking again
 * prints libext2fs's reason, unless the second try works (a passing I/O error). */
static int lookup_failed(struct gfs *g, const char *path, int err)
{
	ext2_ino_t ino;
	if (gfs_lookup(g, path, true, &ino) == 0)
		kite_error("%s: %s", path, strerror(err));
	return -1;
}

/* Does `path` exist in the image? -1 (reported) if that cannot be told. */
static int file_exists(struct gfs *g, const char *path, bool *yes)
{
	ext2_ino_t ino;
	int err;
	*yes = gfs_lookup_q(g, path, true, &ino, &err) == 0;
	return *yes || err == ENOENT ? 0 : lookup_failed(g, path, err);
}

/* Reads a text file of the image; a missing file is empty with exists = false. */
static int get_text(struct gfs *g, const char *path, struct text *t)
{
	int err;
	size_t len;
	t->s = NULL;
	t->exists = false;
	if (gfs_lookup_q(g, path, true, &t->ino, &err) < 0) {
		if (err != ENOENT)
			return lookup_failed(g, path, err);
		t->s = strdup("");
		return t->s ? 0 : kite_error("out of memory");
	}
	struct ext2_inode_large in;
	if (gfs_read_inode(g, t->ino, &in) < 0)
		return -1;
	if (!LINUX_S_ISREG(in.i_mode))
		return kite_error("%s: not a regular file in the image", path);
	if (gfs_read_file(g, t->ino, &t->s, &len, MAX_TEXT) < 0)
		return -1;
	if (strlen(t->s) != len) {
		free(t->s);
		return kite_error("%s: holds NUL bytes; not a text file", path);
	}
	t->exists = true;
	return 0;
}

/* Writes `content` to `path` if it differs; a new file gets mode/uid/gid, an existing one
 * keeps its own. */
static int put_text(struct gfs *g, const char *path, const struct text *old, const char *content,
		    uint16_t mode, uint32_t uid, uint32_t gid)
{
	if (old && old->exists && !strcmp(old->s, content))
		return 0;
	ext2_ino_t ino, dir;
	int err;
	if (gfs_lookup_q(g, path, true, &ino, &err) == 0)
		return gfs_replace(g, ino, content, strlen(content));
	if (err != ENOENT)
		return lookup_failed(g, path, err);
	/* a new file is written whole, then named */
	char name[EXT2_NAME_LEN + 1];
	size_t len = strlen(content);
	if (gfs_lookup_parent(g, path, &dir, name) < 0 ||
	    gfs_new_file(g, dir, mode, uid, gid, &ino) < 0 ||
	    (len && gfs_pwrite(g, ino, content, len, 0) < 0))
		return -1;
	return gfs_link_new(g, dir, name, ino);
}

/* Creates a directory if missing, and gives it this mode and owner. */
static int ensure_dir(struct gfs *g, const char *path, uint16_t mode, uint32_t uid, uint32_t gid,
		      bool force_owner)
{
	ext2_ino_t ino, dir;
	int err;
	char name[EXT2_NAME_LEN + 1];
	if (gfs_lookup_q(g, path, true, &ino, &err) < 0) {
		if (err != ENOENT)
			return lookup_failed(g, path, err);
		return gfs_lookup_parent(g, path, &dir, name) < 0 ||
			       gfs_mkdir(g, dir, name, mode, uid, gid, NULL) < 0
			   ? -1
			   : 0;
	}
	struct ext2_inode_large in;
	if (gfs_read_inode(g, ino, &in) < 0)
		return -1;
	if (!LINUX_S_ISDIR(in.i_mode))
		return kite_error("%s: exists in the image but is not a directory", path);
	if (force_owner &&
	    ((in.i_mode & 07777) != mode || gfs_uid(&in) != uid || gfs_gid(&in) != gid)) {
		in.i_mode = (uint16_t)(LINUX_S_IFDIR | mode);
		gfs_set_owner(&in, uid, gid);
		gfs_touch(g, &in, false);
		return gfs_write_inode(g, ino, &in);
	}
	return 0;
}

/* Gives an existing file exactly this mode and owner (authorized_keys, sudoers files). */
static int ensure_attrs(struct gfs *g, const char *path, uint16_t mode, uint32_t uid, uint32_t gid)
{
	ext2_ino_t ino;
	struct ext2_inode_large in;
	if (gfs_lookup(g, path, false, &ino) < 0 || gfs_read_inode(g, ino, &in) < 0)
		return -1;
	if ((in.i_mode & 07777) == mode && gfs_uid(&in) == uid && gfs_gid(&in) == gid)
		return 0;
	in.i_mode = (uint16_t)((in.i_mode & LINUX_S_IFMT) | mode);
	gfs_set_owner(&in, uid, gid);
	gfs_touch(g, &in, false);
	return gfs_write_inode(g, ino, &in);
}

static int edit(struct gfs *g, const char *path, char *(*fn)(const char *, const void *),
		const void *arg, uint16_t mode, uint32_t gid)
{
	struct text t;
	if (get_text(g, path, &t) < 0)
		return -1;
	char *n = fn(t.s, arg);
	int r = n ? put_text(g, path, &t, n, mode, 0, gid) : kite_error("out of memory");
	free(n);
	free(t.s);
	return r;
}

static char *set_hostname_fn(const char *old, const void *arg)
{
	return hosts_set_hostname(old, arg);
}

static int do_hostname(struct gfs *g, const char *host)
{
	char line[300];
	snprintf(line, sizeof(line), "%s\n", host);
	struct text t;
	if (get_text(g, "/etc/hostname", &t) < 0)
		return -1;
	int r = put_text(g, "/etc/hostname", &t, line, 0644, 0, 0);
	free(t.s);
	if (r < 0)
		return -1;
	return edit(g, "/etc/hosts", set_hostname_fn, host, 0644, 0);
}

static int do_sshd(struct gfs *g, const struct init_opts *o)
{
	const char *keys[4], *vals[4];
	size_t n = 0;
	if (o->ssh_port)
		keys[n] = "Port", vals[n++] = o->ssh_port;
	if (o->no_root_login)
		keys[n] = "PermitRootLogin", vals[n++] = "no";
	if (o->no_password_login) {
		keys[n] = "PasswordAuthentication", vals[n++] = "no";
		keys[n] = "KbdInteractiveAuthentication", vals[n++] = "no";
	}
	if (!n)
		return 0;
	struct text cur, orig;
	if (ensure_dir(g, "/etc/ssh", 0755, 0, 0, false) < 0 ||
	    get_text(g, "/etc/ssh/sshd_config", &cur) < 0)
		return -1;
	int r = 0;
	if (cur.exists) {
		/* keep the distribution's file once, as the seed does */
		if (get_text(g, "/etc/ssh/sshd_config.origin", &orig) < 0) {
			free(cur.s);
			return -1;
		}
		if (!orig.exists) {
			struct ext2_inode_large in;
			r = gfs_read_inode(g, cur.ino, &in);
			if (!r)
				r = put_text(g, "/etc/ssh/sshd_config.origin", NULL, cur.s,
					     in.i_mode & 07777, gfs_uid(&in), gfs_gid(&in));
		}
		free(orig.s);
	}
	char *next = r ? NULL : sshd_apply(cur.s, keys, vals, n);
	if (!r && !next)
		r = kite_error("out of memory");
	if (!r)
		r = put_text(g, "/etc/ssh/sshd_config", &cur, next, 0644, 0, 0);
	free(next);
	free(cur.s);
	return r;
}

/* Looks up a group's gid in /etc/group; creates the group (gid from `lo`..`hi`) if missing. */
static int ensure_group(struct gfs *g, const char *name, uint32_t want, uint32_t lo, uint32_t hi,
			bool down, uint32_t *gid)
{
	struct text grp, gsh;
	if (get_text(g, "/etc/group", &grp) < 0)
		return -1;
	int r = 0;
	if (db_find(grp.s, name, gid, NULL)) {
		free(grp.s);
		return *gid == UINT32_MAX ? kite_error("/etc/group: bad entry for %s", name) : 0;
	}
	/* the wanted id (a user's private group matches the uid) if free, else the range */
	*gid = want == UINT32_MAX ? UINT32_MAX : db_free_id(grp.s, want, want, false);
	if (*gid == UINT32_MAX)
		*gid = db_free_id(grp.s, lo, hi, down);
	if (*gid == UINT32_MAX) {
		free(grp.s);
		return kite_error("no free group id for %s", name);
	}
	char line[128];
	snprintf(line, sizeof(line), "%s:x:%u:", name, *gid);
	char *n = db_append(grp.s, line);
	r = n ? put_text(g, "/etc/group", &grp, n, 0644, 0, 0) : kite_error("out of memory");
	free(n);
	free(grp.s);
	if (r < 0 || get_text(g, "/etc/gshadow", &gsh) < 0)
		return -1;
	if (gsh.exists && !db_find(gsh.s, name, NULL, NULL)) {
		snprintf(line, sizeof(line), "%s:!::", name);
		n = db_append(gsh.s, line);
		r = n ? put_text(g, "/etc/gshadow", &gsh, n, 0640, 0, 0)
		      : kite_error("out of memory");
		free(n);
	}
	free(gsh.s);
	return r;
}

static char *add_member_fn(const char *old, const void *arg)
{
	const char *const *a = arg;
	return group_add_member(old, a[0], a[1]);
}

static int do_user(struct gfs *g, const struct init_opts *o, uint32_t *uid_out, uint32_t *gid_out)
{
	struct text pw, sh;
	if (get_text(g, "/etc/passwd", &pw) < 0)
		return -1;
	if (!pw.exists) {
		free(pw.s);
		return kite_error("the filesystem has no /etc/passwd: is it a root filesystem? "
				  "(choose one with -a)");
	}
	uint32_t uid, gid;
	int r = 0;
	if (db_find(pw.s, o->user, &uid, &gid)) {
		if (uid == UINT32_MAX || gid == UINT32_MAX)
			r = kite_error("/etc/passwd: bad entry for %s", o->user);
	} else {
		uid = db_free_id(pw.s, 1000, 59999, false);
		r = ensure_group(g, o->user, uid, 1000, 59999, false, &gid);
		bool bash = false;
		if (!r)
			r = file_exists(g, "/bin/bash", &bash);
		if (!r) {
			char line[512];
			const char *shell = bash ? "/bin/bash" : "/bin/sh";
			snprintf(line, sizeof(line), "%s:x:%u:%u::/home/%s:%s", o->user, uid, gid,
				 o->user, shell);
			char *n = db_append(pw.s, line);
			r = n ? put_text(g, "/etc/passwd", &pw, n, 0644, 0, 0)
			      : kite_error("out of memory");
			free(n);
		}
	}
	free(pw.s);
	if (r < 0 || get_text(g, "/etc/shadow", &sh) < 0)
		return -1;
	if (sh.exists && !db_find(sh.s, o->user, NULL, NULL)) {
		char line[256];
		/* password locked: logins go through SSH keys */
		snprintf(line, sizeof(line), "%s:!:%ld:0:99999:7:::", o->user,
			 (long)(time(NULL) / 86400));
		char *n = db_append(sh.s, line);
		r = n ? put_text(g, "/etc/shadow", &sh, n, 0640, 0, 0)
		      : kite_error("out of memory");
		free(n);
	}
	free(sh.s);
	for (int i = 0; i < o->ngroups && !r; i++) {
		uint32_t sgid;
		const char *args[2] = {o->groups[i], o->user};
		r = ensure_group(g, o->groups[i], UINT32_MAX, 100, 999, true, &sgid);
		bool gshadow = false;
		if (!r)
			r = edit(g, "/etc/group", add_member_fn, args, 0644, 0);
		if (!r)
			r = file_exists(g, "/etc/gshadow", &gshadow);
		if (!r && gshadow)
			r = edit(g, "/etc/gshadow", add_member_fn, args, 0640, 0);
	}
	if (r < 0)
		return -1;
	char home[300];
	snprintf(home, sizeof(home), "/home/%s", o->user);
	if (ensure_dir(g, "/home", 0755, 0, 0, false) < 0 ||
	    ensure_dir(g, home, 0700, uid, gid, false) < 0)
		return -1;
	*uid_out = uid;
	*gid_out = gid;
	return 0;
}

static int read_host_file(const char *path, char **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kite_error_errno(errno, "%s", path);
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (!buf) {
			close(fd);
			return kite_error("out of memory");
		}
		if (len + 1 == cap) {
			if (cap > (1u << 20)) {
				free(buf);
				close(fd);
				return kite_error("%s: too large for a key file", path);
			}
			char *n = realloc(buf, cap *= 2);
			if (!n)
				free(buf);
			buf = n;
			continue;
		}
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			close(fd);
			return kite_error_errno(errno, "%s", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	*out = buf;
	return 0;
}

static int do_keys(struct gfs *g, const struct init_opts *o, const char *home, uint32_t uid,
		   uint32_t gid)
{
	char ssh[320], ak[340];
	snprintf(ssh, sizeof(ssh), "%s/.ssh", home);
	snprintf(ak, sizeof(ak), "%s/authorized_keys", ssh);
	if (ensure_dir(g, home, 0700, uid, gid, false) < 0 ||
	    ensure_dir(g, ssh, 0700, uid, gid, true) < 0)
		return -1;
	struct text t;
	if (get_text(g, ak, &t) < 0)
		return -1;
	char *cur = strdup(t.s);
	int r = cur ? 0 : kite_error("out of memory");
	for (int i = 0; i < o->nkeys && !r; i++) {
		char *keys;
		if (read_host_file(o->key_files[i], &keys) < 0) {
			r = -1;
			break;
		}
		if (!keys_valid(keys)) {
			r = kite_error(
			    "%s: not an OpenSSH public key file (one 'ssh-ed25519 AAAA...' "
			    "per line)",
			    o->key_files[i]);
		} else {
			char *n = keys_merge(cur, keys);
			free(cur);
			cur = n;
			if (!cur)
				r = kite_error("out of memory");
		}
		free(keys);
	}
	if (!r)
		r = put_text(g, ak, &t, cur, 0600, uid, gid);
	if (!r)
		r = ensure_attrs(g, ak, 0600, uid, gid);
	free(cur);
	free(t.s);
	return r;
}

static int do_sudo(struct gfs *g, const char *group)
{
	char path[128], line[160];
	snprintf(path, sizeof(path), "/etc/sudoers.d/kite-%s", group);
	snprintf(line, sizeof(line), "%%%s ALL=(ALL:ALL) NOPASSWD: ALL\n", group);
	struct text t;
	if (ensure_dir(g, "/etc/sudoers.d", 0755, 0, 0, false) < 0 || get_text(g, path, &t) < 0)
		return -1;
	int r = put_text(g, path, &t, line, 0440, 0, 0);
	if (!r)
		r = ensure_attrs(g, path, 0440, 0, 0);
	free(t.s);
	return r;
}

static char *lock_fn(const char *old, const void *arg)
{
	return shadow_lock(old, arg);
}

static int do_root_lock(struct gfs *g)
{
	struct text t;
	if (get_text(g, "/etc/shadow", &t) < 0)
		return -1;
	bool found = t.exists && db_find(t.s, "root", NULL, NULL);
	free(t.s);
	if (!found)
		return kite_error("/etc/shadow has no root entry to lock");
	return edit(g, "/etc/shadow", lock_fn, "root", 0640, 0);
}

enum {
	O_SSH_PORT = 2000,
	O_USER,
	O_GROUP,
	O_SUDO,
	O_KEY,
	O_NO_PASSWORD,
	O_NO_ROOT,
	O_HOSTNAME,
	O_ROOT_LOCK,
};

static int parse(int argc, char **argv, struct guest_common *c, struct init_opts *o)
{
	static const struct option longopts[] = {
	    GUEST_COMMON_LONG,
	    {"ssh-port", required_argument, NULL, O_SSH_PORT},
	    {"user", required_argument, NULL, O_USER},
	    {"group", required_argument, NULL, O_GROUP},
	    {"sudo-nopasswd", required_argument, NULL, O_SUDO},
	    {"authorized-key", required_argument, NULL, O_KEY},
	    {"no-password-login", no_argument, NULL, O_NO_PASSWORD},
	    {"no-root-login", no_argument, NULL, O_NO_ROOT},
	    {"hostname", required_argument, NULL, O_HOSTNAME},
	    {"root-password-lock", no_argument, NULL, O_ROOT_LOCK},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, GUEST_COMMON_SHORT, longopts, NULL)) != -1) {
		if (guest_common_opt(c, opt, optarg))
			continue;
		switch (opt) {
		case O_SSH_PORT: {
			char *end;
			long p = strtol(optarg, &end, 10);
			if (*end || end == optarg || p < 1 || p > 65535)
				return kite_error(
				    "--ssh-port takes a port number (1-65535), not '%s'", optarg);
			o->ssh_port = optarg;
			break;
		}
		case O_USER:
			if (!valid_user_name(optarg))
				return kite_error("bad user name '%s'", optarg);
			o->user = optarg;
			break;
		case O_GROUP:
			if (!valid_user_name(optarg))
				return kite_error("bad group name '%s'", optarg);
			if (o->ngroups == 16)
				return kite_error("too many --group options");
			o->groups[o->ngroups++] = optarg;
			break;
		case O_SUDO:
			if (!valid_user_name(optarg))
				return kite_error("bad group name '%s'", optarg);
			o->sudo_group = optarg;
			break;
		case O_KEY:
			if (o->nkeys == MAX_KEYS)
				return kite_error("too many --authorized-key options");
			o->key_files[o->nkeys++] = optarg;
			break;
		case O_NO_PASSWORD:
			o->no_password_login = true;
			break;
		case O_NO_ROOT:
			o->no_root_login = true;
			break;
		case O_HOSTNAME:
			if (!valid_hostname(optarg))
				return kite_error("bad host name '%s'", optarg);
			o->hostname = optarg;
			break;
		case O_ROOT_LOCK:
			o->root_lock = true;
			break;
		default:
			return -1;
		}
	}
	if (guest_take_image(c, argc, argv) < 0 || argc - optind != 0)
		return -1;
	if (o->ngroups && !o->user)
		return kite_error("--group needs --user");
	return 0;
}

int guest_init(int argc, char **argv)
{
	static const char use[] =
	    "IMAGE [--ssh-port N] [--user NAME [--group G]...] [--sudo-nopasswd GROUP] "
	    "[--authorized-key FILE]... [--no-password-login] [--no-root-login] "
	    "[--hostname NAME] [--root-password-lock]";
	struct guest_common c = {0};
	struct init_opts o = {0};
	if (parse(argc, argv, &c, &o) < 0)
		return guest_usage_error("init", use);
	/* read the key files before touching the image: a typo changes nothing */
	for (int i = 0; i < o.nkeys; i++) {
		char *k;
		if (read_host_file(o.key_files[i], &k) < 0)
			return 1;
		bool valid = keys_valid(k);
		free(k);
		if (!valid) {
			kite_error("%s: not an OpenSSH public key file", o.key_files[i]);
			return 1;
		}
	}
	struct gfs g;
	if (guest_open(&g, &c, true) < 0)
		return 1;
	int rc = 0;
	uint32_t uid = 0, gid = 0;
	if (o.hostname)
		rc = do_hostname(&g, o.hostname) < 0;
	if (!rc && o.user)
		rc = do_user(&g, &o, &uid, &gid) < 0;
	if (!rc && o.nkeys) {
		char home[300] = "/root";
		if (o.user)
			snprintf(home, sizeof(home), "/home/%s", o.user);
		rc = do_keys(&g, &o, home, uid, gid) < 0;
	}
	if (!rc && o.sudo_group)
		rc = do_sudo(&g, o.sudo_group) < 0;
	if (!rc)
		rc = do_sshd(&g, &o) < 0;
	if (!rc && o.root_lock)
		rc = do_root_lock(&g) < 0;
	return guest_finish(&g, rc);
}

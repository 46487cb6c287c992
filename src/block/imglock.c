#include "block/imglock.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define PERM_BASE   100
#define SHARED_BASE 200
#define NPERMS	    4

static const char *const perm_names[NPERMS] = {"consistent read", "write", "write unchanged",
					       "resize"};

/* One per file this process has locked: one open file description carries all its locks,
 * each byte held while any holder needs it. */
struct lockfile {
	dev_t dev;
	ino_t ino;
	int fd;
	unsigned use_count[NPERMS], unshare_count[NPERMS];
	unsigned sole_writers; /* 0 or 1 */
	struct lockfile *next;
};

struct imglock {
	struct lockfile *file;
	unsigned use, unshare;
	bool sole_writer;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lockfile *files;

static int set_byte(int fd, int byte, short type)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
	return fcntl(fd, F_OFD_SETLK, &fl);
}

/* 1 if another open file description holds a lock on `byte`, 0 if not, -1 on error. */
static int byte_taken(int fd, int byte)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -1;
	return fl.l_type != F_UNLCK;
}

/* A description of its own, so that the locks outlive the caller's descriptor. */
static struct lockfile *lockfile_get(int fd, const char *path)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		kite_error_errno(errno, "%s: stat", path);
		return NULL;
	}
	for (struct lockfile *f = files; f; f = f->next)
		if (f->dev == st.st_dev && f->ino == st.st_ino)
			return f;
	struct lockfile *f = calloc(1, sizeof(*f));
	if (!f) {
		kite_error("out of memory");
		return NULL;
	}
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	f->fd = open(self, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		kite_error_errno(errno, "%s: cannot open the image to lock it", path);
		free(f);
		return NULL;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->next = files;
	files = f;
	return f;
}

static void lockfile_put_if_unused(struct lockfile *f)
{
	for (int p = 0; p < NPERMS; p++)
		if (f->use_count[p] || f->unshare_count[p])
			return;
	if (f->sole_writers)
		return;
	for (struct lockfile **pp = &files; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	close(f->fd); /* drops whatever this description still locks */
	free(f);
}

/* Adds (delta 1) or removes (-1) one holder's bytes; a byte is locked on its first holder
 * and unlocked after its last. */
static int adjust(struct lockfile *f, unsigned use, unsigned unshare, int delta)
{
	int r = 0;
	for (int p = 0; p < NPERMS; p++) {
		for (int shared = 0; shared < 2; shared++) {
			unsigned bits = shared ? unshare : use;
			unsigned *count = shared ? &f->unshare_count[p] : &f->use_count[p];
			int byte = (shared ? SHARED_BASE : PERM_BASE) + p;
			if (!(bits & (1u << p)))
				continue;
			if (delta > 0 && (*count)++ == 0 && set_byte(f->fd, byte, F_RDLCK) < 0)
				r = -1;
			if (delta < 0 && --(*count) == 0)
				set_byte(f->fd, byte, F_UNLCK);
		}
	}
	return r;
}

static int conflict(const char *what, bool shared, int perm, const char *path)
{
	return kite_error("%s: Failed to get %s\"%s\" lock\n"
			  "Is another process using the image [%s]?",
			  what, shared ? "shared " : "", perm_names[perm], path);
}

/* The first conflict with another process, as QEMU words it; 0 if none, -1 if one. */
static int check_conflicts(struct lockfile *f, unsigned use, unsigned unshare, const char *path,
			   const char *what)
{
	for (int shared = 0; shared < 2; shared++) {
		unsigned bits = shared ? unshare : use;
		for (int p = 0; p < NPERMS; p++) {
			if (!(bits & (1u << p)))
				continue;
			/* what we use must not be unshared; what we unshare must not be used */
			int t = byte_taken(f->fd, (shared ? PERM_BASE : SHARED_BASE) + p);
			if (t < 0)
				return kite_error_errno(errno, "%s: cannot lock the image", path);
			if (t)
				return conflict(what, shared, p, path);
		}
	}
	return 0;
}

struct imglock *imglock_take(int fd, const char *path, unsigned use, unsigned unshare,
			     const char *what, bool sole_writer)
{
	struct imglock *l = calloc(1, sizeof(*l));
	if (!l) {
		kite_error("out of memory");
		return NULL;
	}
	pthread_mutex_lock(&table_lock);
	struct lockfile *f = lockfile_get(fd, path);
	if (!f)
		goto fail;
	if (sole_writer && f->sole_writers) {
		conflict(what, false, 1, path);
		lockfile_put_if_unused(f);
		goto fail;
	}
	if (adjust(f, use, unshare, 1) < 0) {
		kite_error_errno(errno, "%s: cannot lock the image", path);
		goto undo;
	}
	if (check_conflicts(f, use, unshare, path, what) < 0)
		goto undo;
	f->sole_writers += sole_writer;
	pthread_mutex_unlock(&table_lock);
	*l =
	    (struct imglock){.file = f, .use = use, .unshare = unshare, .sole_writer = sole_writer};
	return l;
undo:
	adjust(f, use, unshare, -1);
	lockfile_put_if_unused(f);
fail:
	pthread_mutex_unlock(&table_lock);
	free(l);
	return NULL;
}

void imglock_drop(struct imglock *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&table_lock);
	adjust(l->file, l->use, l->unshare, -1);
	l->file->sole_writers -= l->sole_writer;
	lockfile_put_if_unused(l->file);
	pthread_mutex_unlock(&table_lock);
	free(l);
}

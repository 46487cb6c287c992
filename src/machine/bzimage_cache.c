#include "machine/bzimage_cache.h"
#include "util/err.h"

#include <stdbool.h>

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cache_dir(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n;
	if (xdg && xdg[0] == '/') /* the XDG spec: relative values are ignored */
		n = snprintf(buf, size, "%s/kite", xdg);
	else if (home && home[0])
		n = snprintf(buf, size, "%s/.cache/kite", home);
	else
		return -1;
	return n > 0 && (size_t)n < size ? 0 : -1;
}

int bzcache_path(const struct stat *st, char *buf, size_t size)
{
	char dir[4096];
	if (cache_dir(dir, sizeof(dir)) < 0)
		return -1;
	int n = snprintf(buf, size, "%s/vmlinux-%llx-%llx.%lx-%llx-%llx", dir,
			 (unsigned long long)st->st_size, (unsigned long long)st->st_mtim.tv_sec,
			 (long)st->st_mtim.tv_nsec, (unsigned long long)st->st_dev,
			 (unsigned long long)st->st_ino);
	return n > 0 && (size_t)n < size ? 0 : -1;
}

int bzcache_lookup(const struct stat *st, size_t expect_len, struct boot_file *out)
{
	char path[4200];
	if (bzcache_path(st, path, sizeof(path)) < 0 || access(path, R_OK) != 0)
		return -1;
	/* Mapped, not read: the page cache serves it and nothing is copied twice. */
	if (boot_file_map(path, out) < 0) {
		kite_warn("cannot read the kernel cache %s: decompressing again", path);
		return -1;
	}
	if (out->len != expect_len) {
		boot_file_unmap(out);
		return -1;
	}
	/* Mark it used, so that pruning keeps it (best effort: a read-only cache is fine). */
	(void)utimensat(AT_FDCWD, path, NULL, 0);
	return 0;
}

static int mkdirs(const char *dir)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
		return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = write(fd, buf + done, len - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

struct cached {
	char name[256];
	struct timespec mtime;
};

static int newest_first(const void *a, const void *b)
{
	const struct timespec *x = &((const struct cached *)a)->mtime;
	const struct timespec *y = &((const struct cached *)b)->mtime;
	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? 1 : -1;
	return x->tv_nsec < y->tv_nsec ? 1 : x->tv_nsec > y->tv_nsec ? -1 : 0;
}

#define STALE_TMP_SECONDS 3600

static void prune(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct cached *list = NULL;
	size_t n = 0, cap = 0;
	time_t now = time(NULL);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		bool is_kernel = strncmp(e->d_name, "vmlinux-", 8) == 0;
		bool is_tmp = strncmp(e->d_name, ".tmp-", 5) == 0;
		struct stat st;
		if ((!is_kernel && !is_tmp) || strlen(e->d_name) >= sizeof(list->name) ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (is_tmp) {
			if (now - st.st_mtim.tv_sec > STALE_TMP_SECONDS)
				(void)unlinkat(dirfd(d), e->d_name, 0);
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct cached *nl = realloc(list, ncap * sizeof(*list));
			if (!nl)
				break;
			list = nl;
			cap = ncap;
		}
		snprintf(list[n].name, sizeof(list[n].name), "%s", e->d_name);
		list[n++].mtime = st.st_mtim;
	}
	if (n > BZCACHE_KEEP) {
		qsort(list, n, sizeof(*list), newest_first);
		for (size_t i = BZCACHE_KEEP; i < n; i++)
			if (unlinkat(dirfd(d), list[i].name, 0) < 0 && errno != ENOENT)
				kite_warn("cannot remove %s/%s: %s", dir, list[i].name,
					  strerror(errno));
	}
	free(list);
	closedir(d);
}

void bzcache_store(const struct stat *st, const uint8_t *data, size_t len)
{
	char dir[4096], path[4200], tmp[4300];
	if (cache_dir(dir, sizeof(dir)) < 0 || bzcache_path(st, path, sizeof(path)) < 0) {
		kite_warn("no cache directory (set XDG_CACHE_HOME or HOME): the kernel will be "
			  "decompressed again next time");
		return;
	}
	if (mkdirs(dir) < 0) {
		kite_warn("cannot create the cache directory %s: %s", dir, strerror(errno));
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s/.tmp-XXXXXX", dir);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		kite_warn("cannot create a file in %s: %s", dir, strerror(errno));
		return;
	}
	int err = 0;
	if (write_all(fd, data, len) < 0)
		err = errno;
	if (close(fd) < 0 && !err)
		err = errno;
	if (!err && rename(tmp, path) < 0)
		err = errno;
	if (err) {
		kite_warn("cannot write the kernel cache %s: %s", path, strerror(err));
		if (unlink(tmp) < 0 && errno != ENOENT)
			kite_warn("cannot remove %s: %s", tmp, strerror(errno));
		return;
	}
	prune(dir);
}

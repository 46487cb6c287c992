#include "guestfs/imglock.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define PERM_BASE   100
#define SHARED_BASE 200
#define P_READ	    0 /* BLK_PERM_CONSISTENT_READ */
#define P_WRITE	    1
#define P_RESIZE    3

static int lock_byte(int fd, int byte)
{
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
		return -1;
	return 0;
}

/* 1 if another open file description holds a lock on `byte`, 0 if not, -1 on error. */
static int byte_taken(int fd, int byte)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -1;
	return fl.l_type != F_UNLCK;
}

int imglock_acquire(const char *path, bool write)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kite_error_errno(errno, "%s", path);
	/* what we use, and what we do not let others use while we have it */
	int use[] = {P_READ, P_WRITE}, nuse = write ? 2 : 1;
	int unshare[] = {P_WRITE, P_RESIZE}, nunshare = write ? 2 : 1;
	for (int i = 0; i < nuse; i++) {
		if (lock_byte(fd, PERM_BASE + use[i]) < 0)
			goto err;
	}
	for (int i = 0; i < nunshare; i++) {
		if (lock_byte(fd, SHARED_BASE + unshare[i]) < 0)
			goto err;
	}
	for (int i = 0; i < nuse; i++) {
		int t = byte_taken(fd, SHARED_BASE + use[i]);
		if (t < 0)
			goto err;
		if (t)
			goto busy;
	}
	for (int i = 0; i < nunshare; i++) {
		int t = byte_taken(fd, PERM_BASE + unshare[i]);
		if (t < 0)
			goto err;
		if (t)
			goto busy;
	}
	return fd;
busy:
	kite_error("%s: the image is in use by another process (a running VM?): cannot get "
		   "the %s lock",
		   path, write ? "write" : "shared \"write\"");
	close(fd);
	return -1;
err:
	kite_error_errno(errno, "%s: cannot lock the image", path);
	close(fd);
	return -1;
}

void imglock_release(int fd)
{
	if (fd >= 0)
		close(fd); /* closing the last descriptor of the description drops its OFD locks */
}

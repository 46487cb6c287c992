/* Full-length file I/O: pread/pwrite loops that survive EINTR and short transfers. */
#include "block/block_int.h"
#include "util/err.h"

#include <errno.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int blk_file_pread(int fd, void *buf, size_t len, uint64_t off, const char *what)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kite_error_errno(errno, "%s: read of %zu bytes at %llu", what, len,
						(unsigned long long)off);
		}
		if (n == 0) { /* EOF: the rest reads as zeros */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int blk_file_pwrite(int fd, const void *buf, size_t len, uint64_t off, const char *what)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kite_error_errno(errno, "%s: write of %zu bytes at %llu", what, len,
						(unsigned long long)off);
		}
		if (n == 0)
			return kite_error("%s: write at %llu made no progress", what,
					  (unsigned long long)off);
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int blk_file_size(int fd, uint64_t *size, const char *what)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kite_error_errno(errno, "%s: stat", what);
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return kite_error_errno(errno, "%s: BLKGETSIZE64", what);
		return 0;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

int blk_sync(struct blk *b)
{
	if (b->flags & BLK_O_UNSAFE)
		return 0;
	if (fdatasync(b->fd) < 0)
		return kite_error_errno(errno, "%s: flush", b->filename);
	return 0;
}

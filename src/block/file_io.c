/* Full-length file I/O: pread/pwrite loops that survive EINTR and short transfers. */
#include "block/block_int.h"
#include "util/err.h"
#include "util/fullio.h"

#include <errno.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int blk_file_pread(int fd, void *buf, size_t len, uint64_t off, const char *what)
{
	ssize_t n = full_pread(fd, buf, len, off);
	if (n < 0)
		return kite_error_errno((int)-n, "%s: read of %zu bytes at %llu", what, len,
					(unsigned long long)off);
	/* Past the end of the file an image reads as zeros. */
	memset((uint8_t *)buf + n, 0, len - (size_t)n);
	return 0;
}

int blk_file_pwrite(int fd, const void *buf, size_t len, uint64_t off, const char *what)
{
	int rc = full_pwrite(fd, buf, len, off);
	if (rc == -EIO)
		return kite_error("%s: write at %llu made no progress", what,
				  (unsigned long long)off);
	if (rc < 0)
		return kite_error_errno(-rc, "%s: write of %zu bytes at %llu", what, len,
					(unsigned long long)off);
	return 0;
}

/* Copies iov[0..iovcnt) into v (checked against BLK_IOV_MAX) and skips leading empty
 * buffers (a vectored call returns 0 for nothing to move). Returns the count left. */
static int iov_start(struct iovec *v, const struct iovec *iov, int iovcnt, struct iovec **p)
{
	memcpy(v, iov, sizeof(*iov) * (size_t)iovcnt);
	*p = v;
	while (iovcnt && !(*p)->iov_len) {
		(*p)++;
		iovcnt--;
	}
	return iovcnt;
}

/* Steps past `done` bytes of the buffers at *p; returns the count left. */
static int iov_advance(struct iovec **p, int left, size_t done)
{
	while (left && done >= (*p)->iov_len) {
		done -= (*p)->iov_len;
		(*p)++;
		left--;
	}
	if (left) {
		(*p)->iov_base = (uint8_t *)(*p)->iov_base + done;
		(*p)->iov_len -= done;
	}
	return left;
}

int blk_file_preadv(int fd, const struct iovec *iov, int iovcnt, uint64_t off, const char *what)
{
	struct iovec v[BLK_IOV_MAX], *p;
	if (iovcnt < 0 || iovcnt > BLK_IOV_MAX)
		return kite_error("%s: read of %d buffers at once (at most %d)", what, iovcnt,
				  BLK_IOV_MAX);
	int left = iov_start(v, iov, iovcnt, &p);
	while (left) {
		ssize_t n = preadv(fd, p, left, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kite_error_errno(errno, "%s: read of %d buffers at %llu", what, left,
						(unsigned long long)off);
		}
		if (n == 0) { /* EOF: the rest reads as zeros */
			for (; left; p++, left--)
				memset(p->iov_base, 0, p->iov_len);
			return 0;
		}
		off += (uint64_t)n;
		left = iov_advance(&p, left, (size_t)n);
	}
	return 0;
}

int blk_file_pwritev(int fd, const struct iovec *iov, int iovcnt, uint64_t off, const char *what)
{
	struct iovec v[BLK_IOV_MAX], *p;
	if (iovcnt < 0 || iovcnt > BLK_IOV_MAX)
		return kite_error("%s: write of %d buffers at once (at most %d)", what, iovcnt,
				  BLK_IOV_MAX);
	int left = iov_start(v, iov, iovcnt, &p);
	while (left) {
		ssize_t n = pwritev(fd, p, left, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kite_error_errno(errno, "%s: write of %d buffers at %llu", what,
						left, (unsigned long long)off);
		}
		if (n == 0)
			return kite_error("%s: write at %llu made no progress", what,
					  (unsigned long long)off);
		off += (uint64_t)n;
		left = iov_advance(&p, left, (size_t)n);
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

int blk_file_status(int fd, uint64_t off, uint64_t len, uint64_t *pnum, bool *zero,
		    const char *what)
{
	uint64_t fsize;
	if (blk_file_size(fd, &fsize, what) < 0)
		return -1;
	*zero = true;
	*pnum = len;
	if (off >= fsize) /* past the end of a short file: reads as zeros */
		return 0;
	off_t data = lseek(fd, (off_t)off, SEEK_DATA);
	if (data < 0 && errno == ENXIO) {
		data = (off_t)fsize; /* only a hole until EOF */
	} else if (data < 0) {	     /* no SEEK_DATA support: everything is data */
		*zero = false;
		return 0;
	}
	if ((uint64_t)data > off) { /* in a hole */
		uint64_t n = (uint64_t)data - off;
		*pnum = n < len ? n : len;
		return 0;
	}
	off_t hole = lseek(fd, (off_t)off, SEEK_HOLE);
	if (hole < 0)
		return kite_error_errno(errno, "%s: SEEK_HOLE", what);
	uint64_t n = (uint64_t)hole - off;
	*pnum = n < len ? n : len;
	if (*pnum == 0)
		*pnum = len < 512 ? len : 512; /* defensive: never report an empty run */
	*zero = false;
	return 0;
}

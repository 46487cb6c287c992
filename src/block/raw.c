/* raw: the image file is the disk. Sparse aware (SEEK_DATA/SEEK_HOLE for block status,
 * fallocate for discard and zeroing). Reads and writes are plain pread/pwrite and run in
 * parallel from several threads; only cache=none's unaligned read-modify-write is locked. */
#include "block/block_int.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* O_DIRECT transfers must be aligned to the logical block size; 4096 is safe everywhere. */
#define DIRECT_ALIGN 4096u

struct raw_state {
	pthread_mutex_t rmw_lock; /* serializes unaligned O_DIRECT read-modify-write */
};

static int raw_probe(const uint8_t *buf, size_t len, const char *filename)
{
	return 1; /* anything is a raw image; every other format scores higher */
}

static int raw_open(struct blk *b, struct blk_open_ctx *ctx)
{
	struct raw_state *s = calloc(1, sizeof(*s));
	if (!s)
		return kite_error("out of memory");
	pthread_mutex_init(&s->rmw_lock, NULL);
	b->opaque = s;
	if (blk_file_size(b->fd, &b->size, b->filename) < 0) {
		pthread_mutex_destroy(&s->rmw_lock);
		free(s);
		b->opaque = NULL;
		return -1;
	}
	/* A disk is made of sectors: as QEMU does, a file's partial last sector counts whole
	 * (the part past EOF reads as zeros). */
	b->size = (b->size + 511) / 512 * 512;
	return 0;
}

static void raw_close(struct blk *b)
{
	struct raw_state *s = b->opaque;
	if (s) {
		pthread_mutex_destroy(&s->rmw_lock);
		free(s);
	}
}

static bool aligned(const void *buf, size_t len, uint64_t off)
{
	return ((uintptr_t)buf | len | off) % DIRECT_ALIGN == 0;
}

/* cache=none with an unaligned request: go through an aligned bounce buffer. */
static int direct_bounce(struct blk *b, void *rbuf, const void *wbuf, size_t len, uint64_t off)
{
	struct raw_state *s = b->opaque;
	uint64_t start = off / DIRECT_ALIGN * DIRECT_ALIGN;
	uint64_t end = (off + len + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
	size_t blen = (size_t)(end - start);
	void *bounce;
	if (posix_memalign(&bounce, DIRECT_ALIGN, blen))
		return kite_error("out of memory");
	int r;
	pthread_mutex_lock(&s->rmw_lock);
	r = blk_file_pread(b->fd, bounce, blen, start, b->filename);
	if (r == 0 && rbuf) {
		memcpy(rbuf, (uint8_t *)bounce + (off - start), len);
	} else if (r == 0) {
		memcpy((uint8_t *)bounce + (off - start), wbuf, len);
		/* Never extend the file past its size with the bounce's tail padding. */
		uint64_t fsize;
		r = blk_file_size(b->fd, &fsize, b->filename);
		if (r == 0 && end > fsize && fsize >= off + len)
			blen = (size_t)(((fsize - start) + DIRECT_ALIGN - 1) / DIRECT_ALIGN *
					DIRECT_ALIGN);
		if (r == 0)
			r = blk_file_pwrite(b->fd, bounce, blen, start, b->filename);
		if (r == 0 && start + blen > fsize && fsize >= off + len &&
		    ftruncate(b->fd, (off_t)fsize) < 0)
			r = kite_error_errno(errno, "%s: truncate", b->filename);
	}
	pthread_mutex_unlock(&s->rmw_lock);
	free(bounce);
	return r;
}

static int raw_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	if ((b->flags & BLK_O_NOCACHE) && !aligned(buf, len, off))
		return direct_bounce(b, buf, NULL, len, off);
	return blk_file_pread(b->fd, buf, len, off, b->filename);
}

static int raw_write(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	if ((b->flags & BLK_O_NOCACHE) && !aligned(buf, len, off))
		return direct_bounce(b, NULL, buf, len, off);
	return blk_file_pwrite(b->fd, buf, len, off, b->filename);
}

static int raw_readv(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t off)
{
	if (b->flags & BLK_O_NOCACHE) { /* each buffer aligned or bounced, as raw_read does */
		for (int i = 0; i < iovcnt; i++) {
			if (raw_read(b, iov[i].iov_base, iov[i].iov_len, off) < 0)
				return -1;
			off += iov[i].iov_len;
		}
		return 0;
	}
	return blk_file_preadv(b->fd, iov, iovcnt, off, b->filename);
}

static int raw_writev(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t off)
{
	if (b->flags & BLK_O_NOCACHE) { /* each buffer aligned or bounced, as raw_write does */
		for (int i = 0; i < iovcnt; i++) {
			if (raw_write(b, iov[i].iov_base, iov[i].iov_len, off) < 0)
				return -1;
			off += iov[i].iov_len;
		}
		return 0;
	}
	return blk_file_pwritev(b->fd, iov, iovcnt, off, b->filename);
}

static int raw_flush(struct blk *b)
{
	if (b->flags & BLK_O_UNSAFE)
		return 0;
	if (fdatasync(b->fd) < 0 && errno != EINVAL)
		return kite_error_errno(errno, "%s: flush", b->filename);
	return 0;
}

static bool unsupported(int err)
{
	return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL || err == ENODEV;
}

static int raw_discard(struct blk *b, uint64_t off, uint64_t len)
{
	if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) <
		0 &&
	    !unsupported(errno))
		return kite_error_errno(errno, "%s: discard", b->filename);
	return 0; /* discard is a hint: unsupported is fine */
}

static int write_zero_buffer(struct blk *b, uint64_t off, uint64_t len)
{
	size_t chunk = len < (1u << 20) ? (size_t)len : (1u << 20);
	void *z;
	if (posix_memalign(&z, DIRECT_ALIGN, chunk))
		return kite_error("out of memory");
	memset(z, 0, chunk);
	int r = 0;
	while (r == 0 && len) {
		size_t n = len < chunk ? (size_t)len : chunk;
		r = raw_write(b, z, n, off);
		off += n;
		len -= n;
	}
	free(z);
	return r;
}

static int raw_zero(struct blk *b, uint64_t off, uint64_t len, unsigned flags)
{
	/* Punching keeps reads zero and frees space; ZERO_RANGE keeps it allocated. */
	int mode = (flags & BLK_ZERO_MAY_UNMAP) ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
						: FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	if (fallocate(b->fd, mode, (off_t)off, (off_t)len) == 0)
		return 0;
	if (!unsupported(errno))
		return kite_error_errno(errno, "%s: write zeroes", b->filename);
	return write_zero_buffer(b, off, len);
}

static int raw_block_status(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum,
			    unsigned *flags, uint64_t *host_off)
{
	*host_off = off;
	bool zero;
	if (blk_file_status(b->fd, off, len, pnum, &zero, b->filename) < 0)
		return -1;
	*flags = BLK_STATUS_ALLOCATED | BLK_STATUS_OFFSET_VALID |
		 (zero ? BLK_STATUS_ZERO : BLK_STATUS_DATA);
	return 0;
}

static int raw_resize(struct blk *b, uint64_t size, bool shrink)
{
	struct stat st;
	if (fstat(b->fd, &st) < 0)
		return kite_error_errno(errno, "%s: stat", b->filename);
	if (S_ISBLK(st.st_mode)) {
		if (size > b->size)
			return kite_error("%s: cannot grow a block device", b->filename);
		b->size = size;
		return 0;
	}
	if (ftruncate(b->fd, (off_t)size) < 0)
		return kite_error_errno(errno, "%s: resize to %llu bytes", b->filename,
					(unsigned long long)size);
	b->size = size;
	return 0;
}

/* Fills [from, to) of fd with zeros, written (prealloc full) or reserved (falloc). */
int raw_preallocate(int fd, uint64_t from, uint64_t to, enum blk_prealloc mode, const char *path)
{
	if (to <= from || mode == BLK_PREALLOC_OFF || mode == BLK_PREALLOC_METADATA)
		return 0;
	if (mode == BLK_PREALLOC_FALLOC) {
		int e = posix_fallocate(fd, (off_t)from, (off_t)(to - from));
		if (e)
			return kite_error_errno(e, "%s: preallocation", path);
		return 0;
	}
	size_t chunk = 1u << 20;
	void *z = calloc(1, chunk);
	if (!z)
		return kite_error("out of memory");
	int r = 0;
	for (uint64_t o = from; r == 0 && o < to; o += chunk) {
		size_t n = to - o < chunk ? (size_t)(to - o) : chunk;
		r = blk_file_pwrite(fd, z, n, o, path);
	}
	free(z);
	return r;
}

static int raw_create(const char *path, const struct blk_create_opts *o)
{
	if (o->backing_file)
		return kite_error("%s: the raw format does not support backing files", path);
	if (o->prealloc == BLK_PREALLOC_METADATA)
		return kite_error("%s: unsupported preallocation mode 'metadata' for raw", path);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return kite_error_errno(errno, "could not create '%s'", path);
	int r = 0;
	if (ftruncate(fd, 0) < 0)
		r = kite_error_errno(errno, "%s: truncate", path);
	if (r == 0)
		r = raw_preallocate(fd, 0, o->size, o->prealloc, path);
	if (r == 0 && ftruncate(fd, (off_t)o->size) < 0)
		r = kite_error_errno(errno, "%s: set size", path);
	if (close(fd) < 0 && r == 0)
		r = kite_error_errno(errno, "%s: close", path);
	return r;
}

static int raw_preallocate_grown(struct blk *b, uint64_t from, uint64_t to, enum blk_prealloc mode)
{
	if (mode == BLK_PREALLOC_METADATA)
		return kite_error("Unsupported preallocation mode: metadata");
	return raw_preallocate(b->fd, from, to, mode, b->filename);
}

/* qemu-img measure: a raw file's size is its virtual size */
static int raw_measure(const struct blk_create_opts *c, struct blk *src, uint64_t size,
		       struct blk_measure *m)
{
	m->required = m->fully_allocated = size;
	return 0;
}

static const struct blk_driver raw_driver = {
    .name = "raw",
    .thread_safe = true,
    .probe = raw_probe,
    .open = raw_open,
    .create = raw_create,
    .create_desc = &blk_raw_create_desc,
    .read = raw_read,
    .write = raw_write,
    .readv = raw_readv,
    .writev = raw_writev,
    .flush = raw_flush,
    .discard = raw_discard,
    .zero = raw_zero,
    .block_status = raw_block_status,
    .resize = raw_resize,
    .preallocate = raw_preallocate_grown,
    .close = raw_close,
    .measure = raw_measure,
};

BLK_DRIVER(raw_driver)

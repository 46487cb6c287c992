/* Generic block layer: driver registry, format probing, opening backing chains, and the
 * public entry points that check ranges and serialize calls before reaching a driver. */
#include "block/block_int.h"
#include "block/image_spec.h"
#include "block/imglock.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DRIVERS	8
#define MAX_CHAIN_DEPTH 64
#define PROBE_BYTES	2048

static const struct blk_driver *drivers[MAX_DRIVERS];
static int nb_drivers;

void blk_register_driver(const struct blk_driver *drv)
{
	if (nb_drivers < MAX_DRIVERS)
		drivers[nb_drivers++] = drv;
}

const struct blk_driver *blk_find_driver(const char *name)
{
	for (int i = 0; i < nb_drivers; i++)
		if (!strcmp(drivers[i]->name, name))
			return drivers[i];
	return NULL;
}

/* The files of the chain opened so far, to refuse a backing file that is already in it. */
struct blk_open_ctx {
	const char *top; /* the image blk_open was asked for, named in lock conflicts */
	int depth;
	bool reported;	/* a failure deeper in the chain has been explained already */
	bool data_file; /* opening a data file: missing, it is named as the image is */
	dev_t dev[MAX_CHAIN_DEPTH];
	ino_t ino[MAX_CHAIN_DEPTH];
};

static const struct blk_driver *probe_buf(const uint8_t *buf, size_t n, const char *path)
{
	const struct blk_driver *best = NULL;
	int best_score = 0;
	for (int i = 0; i < nb_drivers; i++) {
		if (!drivers[i]->probe)
			continue;
		int s = drivers[i]->probe(buf, n, path);
		if (s > best_score) {
			best_score = s;
			best = drivers[i];
		}
	}
	return best;
}

static const struct blk_driver *probe_format(int fd, const char *path)
{
	uint8_t buf[PROBE_BYTES];
	memset(buf, 0, sizeof(buf));
	ssize_t n;
	do
		n = pread(fd, buf, sizeof(buf), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		kite_error_errno(errno, "%s: cannot read", path);
		return NULL;
	}
	const struct blk_driver *best = probe_buf(buf, (size_t)n, path);
	if (!best)
		kite_error("%s: could not determine the image format", path);
	return best;
}

/* Locks as QEMU does: a reader needs nobody writing; a writer also lets nobody else write
 * or resize; -U (BLK_O_SHARE) lets others do anything. Backing files are read. */
static struct imglock *lock_image(int fd, const char *path, unsigned flags,
				  struct blk_open_ctx *ctx)
{
	unsigned use = IMGLOCK_READ, unshare = IMGLOCK_WRITE;
	if (flags & BLK_O_RDWR) {
		use |= IMGLOCK_WRITE | IMGLOCK_RESIZE;
		unshare |= IMGLOCK_RESIZE;
	}
	if (flags & BLK_O_SHARE)
		unshare = 0;
	char *what = NULL;
	if (asprintf(&what, "Could not open '%s'", ctx->top) < 0) {
		kite_error("out of memory");
		return NULL;
	}
	struct imglock *lk = imglock_take(fd, path, use, unshare, what, flags & BLK_O_RDWR);
	free(what);
	if (!lk)
		ctx->reported = true;
	return lk;
}

/* The encryption options of an image name (json:, --image-opts) for its driver. */
static int take_crypto_opts(struct blk *b, const struct blk_spec *spec)
{
	if (!spec)
		return 0;
	if (spec->key_secret && !(b->key_secret = strdup(spec->key_secret)))
		return kite_error("out of memory");
	if (spec->encrypt_format && !(b->encrypt_format = strdup(spec->encrypt_format)))
		return kite_error("out of memory");
	return 0;
}

static struct blk *open_in_chain(const char *path, const char *fmt, unsigned flags,
				 struct blk_open_ctx *ctx, const struct blk_spec *spec)
{
	const struct blk_driver *drv = NULL;
	if (fmt) {
		drv = blk_find_driver(fmt);
		if (!drv) {
			kite_error("unknown image format '%s'", fmt);
			return NULL;
		}
	}
	int oflags = O_CLOEXEC | ((flags & BLK_O_RDWR) ? O_RDWR : O_RDONLY);
	if (flags & BLK_O_NOCACHE)
		oflags |= O_DIRECT;
	int fd = open(path, oflags);
	if (fd < 0 && errno == EINVAL && (flags & BLK_O_NOCACHE)) {
		kite_error("%s: the file system does not support cache=none (O_DIRECT)", path);
		return NULL;
	}
	if (fd < 0) { /* qemu-img's words, naming the image asked for and the file missing */
		int e = errno;
		if (ctx->depth == 0 || ctx->data_file)
			kite_error("Could not open '%s': Could not open '%s': %s", ctx->top, path,
				   strerror(e));
		else
			kite_error("Could not open '%s': Could not open backing file: Could not "
				   "open '%s': %s",
				   ctx->top, path, strerror(e));
		ctx->reported = true;
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		kite_error_errno(errno, "%s: stat", path);
		close(fd);
		return NULL;
	}
	for (int i = 0; i < ctx->depth; i++) {
		if (ctx->dev[i] == st.st_dev && ctx->ino[i] == st.st_ino) {
			kite_error("%s: backing file loop: the image is already in its own chain",
				   path);
			close(fd);
			return NULL;
		}
	}
	if (ctx->depth >= MAX_CHAIN_DEPTH) {
		kite_error("%s: backing chain deeper than %d images", path, MAX_CHAIN_DEPTH);
		close(fd);
		return NULL;
	}
	ctx->dev[ctx->depth] = st.st_dev;
	ctx->ino[ctx->depth] = st.st_ino;
	ctx->depth++;
	struct imglock *lk = lock_image(fd, path, flags, ctx);
	if (!lk) {
		close(fd);
		return NULL;
	}

	bool probed = false;
	if (!drv) {
		drv = probe_format(fd, path);
		if (!drv) {
			imglock_drop(lk);
			close(fd);
			return NULL;
		}
		probed = true;
	}
	struct blk *b = calloc(1, sizeof(*b));
	if (!b) {
		kite_error("out of memory");
		imglock_drop(lk);
		close(fd);
		return NULL;
	}
	b->drv = drv;
	b->fd = fd;
	b->lock_held = lk;
	b->flags = flags;
	b->filename = strdup(path);
	b->probed_raw = probed && !strcmp(drv->name, "raw");
	b->open_name = ctx->depth > 1 ? path : ctx->top;
	pthread_mutex_init(&b->lock, NULL);
	if (!b->filename || take_crypto_opts(b, spec) < 0 || drv->open(b, ctx) < 0) {
		if (!b->filename)
			kite_error("out of memory");
		b->drv = NULL; /* open failed: the driver cleaned up after itself */
		blk_close(b);
		return NULL;
	}
	b->open_name = NULL;
	if (b->probed_raw && !(flags & BLK_O_NO_PROBE_WARN))
		kite_warn(
		    "Image format was not specified for '%s' and probing guessed raw.\n"
		    "         Automatically detecting the format is dangerous for raw images, "
		    "write operations on block 0 will be restricted.\n"
		    "         Specify the 'raw' format explicitly to remove the restrictions.",
		    path);
	return b;
}

struct blk *blk_open(const char *path, const char *fmt, unsigned flags)
{
	return blk_open_keyed(path, fmt, flags, NULL);
}

struct blk *blk_open_keyed(const char *path, const char *fmt, unsigned flags,
			   const char *key_secret)
{
	if ((flags & BLK_O_SHARE) && (flags & BLK_O_RDWR)) {
		kite_error("Could not open '%s': force-share=on can only be used with read-only "
			   "images",
			   path);
		return NULL;
	}
	struct blk_open_ctx ctx = {.top = path};
	if (!(flags & BLK_O_IMAGE_OPTS) && !blk_spec_is_special(path)) {
		struct blk_spec keyed = {.key_secret = (char *)key_secret};
		return open_in_chain(path, fmt, flags, &ctx, &keyed);
	}
	if ((flags & BLK_O_IMAGE_OPTS) && fmt) {
		kite_error("--image-opts and --format are mutually exclusive");
		return NULL;
	}
	struct blk_spec spec;
	if (blk_spec_parse(path, flags & BLK_O_IMAGE_OPTS, &spec) < 0)
		return NULL;
	if (!spec.key_secret && key_secret && !(spec.key_secret = strdup(key_secret))) {
		blk_spec_free(&spec);
		kite_error("out of memory");
		return NULL;
	}
	if (fmt && spec.fmt && strcmp(fmt, spec.fmt)) {
		kite_error("Could not open '%s': the name asks for format '%s', not '%s'", path,
			   spec.fmt, fmt);
		blk_spec_free(&spec);
		return NULL;
	}
	struct blk *b = open_in_chain(spec.path, spec.fmt ? spec.fmt : fmt, flags, &ctx, &spec);
	blk_spec_free(&spec);
	return b;
}

char *blk_resolve_relative(const char *image_path, const char *name)
{
	char *out;
	const char *slash = strrchr(image_path, '/');
	if (name[0] == '/' || !slash) {
		out = strdup(name);
	} else {
		int dirlen = (int)(slash - image_path);
		if (asprintf(&out, "%.*s/%s", dirlen, image_path, name) < 0)
			out = NULL;
	}
	if (!out)
		kite_error("out of memory");
	return out;
}

int blk_open_backing(struct blk *b, struct blk_open_ctx *ctx, const char *name, const char *fmt)
{
	if (b->flags & BLK_O_NO_BACKING)
		return 0;
	/* json: names hold their file name as it is (as QEMU takes them); file: and plain names
	 * are relative to the image */
	struct blk_spec spec = {0};
	if (blk_spec_is_special(name)) {
		if (blk_spec_parse(name, false, &spec) < 0)
			return -1;
		if (spec.fmt && !(fmt && fmt[0]))
			fmt = spec.fmt;
	}
	char *path = strncmp(name, "json:", 5)
			 ? blk_resolve_relative(b->filename, spec.path ? spec.path : name)
			 : strdup(spec.path);
	if (!path) {
		blk_spec_free(&spec);
		return kite_error("out of memory");
	}
	unsigned flags = (b->flags & (BLK_O_NOCACHE | BLK_O_NO_IO)) | BLK_O_NO_PROBE_WARN;
	if (b->flags & (BLK_O_SHARE | BLK_O_SHARE_BACKING))
		flags |= BLK_O_SHARE;
	b->backing = open_in_chain(path, (fmt && fmt[0]) ? fmt : NULL, flags, ctx, &spec);
	if (!b->backing && !ctx->reported)
		kite_error("%s: could not open backing file '%s'", b->filename, path);
	ctx->reported = ctx->reported || !b->backing;
	free(path);
	blk_spec_free(&spec);
	return b->backing ? 0 : -1;
}

int blk_open_data_file(struct blk *b, struct blk_open_ctx *ctx, const char *name)
{
	/* qemu-img 7.2 opens the name as it is: a relative one from the current directory
	 * (unlike a backing file's), the directory where create made the file */
	char *path = strdup(name);
	if (!path)
		return kite_error("out of memory");
	unsigned flags = (b->flags & (BLK_O_RDWR | BLK_O_NOCACHE | BLK_O_UNSAFE | BLK_O_SHARE)) |
			 BLK_O_NO_PROBE_WARN;
	ctx->data_file = true;
	b->data_file = open_in_chain(path, "raw", flags, ctx, NULL);
	ctx->data_file = false;
	if (!b->data_file && !ctx->reported)
		kite_error("Could not open '%s': could not open data file '%s'", ctx->top, path);
	ctx->reported = ctx->reported || !b->data_file;
	free(path);
	return b->data_file ? 0 : -1;
}

int blk_find_backing(struct blk *top, const char *name)
{
	int depth = 1;
	for (struct blk *l = top; l->backing; l = l->backing, depth++) {
		char *path = blk_resolve_relative(l->filename, name);
		if (!path)
			return -1;
		struct stat want, have;
		bool same = stat(path, &want) == 0 && fstat(l->backing->fd, &have) == 0 &&
			    want.st_dev == have.st_dev && want.st_ino == have.st_ino;
		free(path);
		if (same)
			return depth;
	}
	return kite_error("Did not find '%s' in the backing chain of '%s'", name, top->filename);
}

int blk_read_backing(struct blk *b, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	if (b->backing && off < b->backing->size) {
		uint64_t avail = b->backing->size - off;
		done = len < avail ? len : (size_t)avail;
		if (blk_pread(b->backing, buf, done, off) < 0)
			return -1;
	}
	memset((uint8_t *)buf + done, 0, len - done);
	return 0;
}

void blk_close(struct blk *b)
{
	if (!b)
		return;
	if (b->drv) {
		if ((b->flags & BLK_O_RDWR) && b->drv->flush)
			b->drv->flush(b);
		if (b->drv->close)
			b->drv->close(b);
	}
	blk_close(b->backing);
	blk_close(b->data_file);
	imglock_drop(b->lock_held);
	if (b->fd >= 0)
		close(b->fd);
	pthread_mutex_destroy(&b->lock);
	free(b->filename);
	free(b->key_secret);
	free(b->encrypt_format);
	free(b);
}

uint64_t blk_size(const struct blk *b)
{
	return b->size;
}

const char *blk_format_name(const struct blk *b)
{
	return b->drv->name;
}

const char *blk_filename(const struct blk *b)
{
	return b->filename;
}

bool blk_probed_raw(const struct blk *b)
{
	return b->probed_raw;
}

bool blk_is_writable(const struct blk *b)
{
	return (b->flags & BLK_O_RDWR) != 0;
}

struct blk *blk_backing(const struct blk *b)
{
	return b->backing;
}

uint32_t blk_cluster_size(const struct blk *b)
{
	return b->drv->cluster_size ? b->drv->cluster_size(b) : 0;
}

bool blk_can_compress(const struct blk *b)
{
	return b->drv->write_compressed != NULL;
}

static int check_range(const struct blk *b, uint64_t off, uint64_t len, const char *op)
{
	if (b->flags & BLK_O_NO_IO)
		return kite_error("%s: %s refused: the image is open for its metadata only",
				  b->filename, op);
	if (b->flags & BLK_O_CHECK)
		return kite_error("%s: %s refused: the image is open for a check only", b->filename,
				  op);
	if (off > b->size || len > b->size - off)
		return kite_error("%s: %s of %llu bytes at offset %llu is beyond the end of the "
				  "image (%llu bytes)",
				  b->filename, op, (unsigned long long)len, (unsigned long long)off,
				  (unsigned long long)b->size);
	return 0;
}

static int check_writable(const struct blk *b, const char *op)
{
	if (b->flags & BLK_O_NO_IO)
		return kite_error("%s: %s refused: the image is open for its metadata only",
				  b->filename, op);
	if (b->flags & BLK_O_CHECK)
		return kite_error("%s: %s refused: the image is open for a check only", b->filename,
				  op);
	if (!(b->flags & BLK_O_RDWR))
		return kite_error("%s: %s: the image is open read-only", b->filename, op);
	return 0;
}

static void lock(struct blk *b)
{
	pthread_mutex_lock(&b->lock);
}

static void unlock(struct blk *b)
{
	pthread_mutex_unlock(&b->lock);
}

int blk_pread(struct blk *b, void *buf, size_t len, uint64_t off)
{
	if (check_range(b, off, len, "read") < 0)
		return -1;
	if (!len)
		return 0;
	if (b->drv->thread_safe)
		return b->drv->read(b, buf, len, off);
	lock(b);
	int r = b->drv->read(b, buf, len, off);
	unlock(b);
	return r;
}

/* Sums a vector's length; -1 (with an error) for a count beyond BLK_IOV_MAX. */
static int64_t iov_bytes(const struct blk *b, const struct iovec *iov, int iovcnt, const char *what)
{
	if (iovcnt < 0 || iovcnt > BLK_IOV_MAX)
		return kite_error("%s: %s of %d buffers at once (at most %d)", b->filename, what,
				  iovcnt, BLK_IOV_MAX);
	uint64_t len = 0;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return (int64_t)len;
}

int blk_preadv(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t off)
{
	int64_t len = iov_bytes(b, iov, iovcnt, "read");
	if (len < 0 || check_range(b, off, (uint64_t)len, "read") < 0)
		return -1;
	if (b->drv->readv && b->drv->thread_safe)
		return b->drv->readv(b, iov, iovcnt, off);
	for (int i = 0; i < iovcnt; i++) {
		if (blk_pread(b, iov[i].iov_base, iov[i].iov_len, off) < 0)
			return -1;
		off += iov[i].iov_len;
	}
	return 0;
}

/* An image whose format was probed as raw: a write to its first bytes must not make it
 * probe as another format next time (a guest could otherwise plant a qcow2 header naming
 * any host file as its backing file). As QEMU, such writes are refused. */
static int probed_raw_head_ok(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	uint8_t head[PROBE_BYTES];
	memset(head, 0, sizeof(head));
	ssize_t n;
	do
		n = pread(b->fd, head, sizeof(head), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return kite_error_errno(errno, "%s: cannot read", b->filename);
	size_t end = off + len < PROBE_BYTES ? (size_t)(off + len) : PROBE_BYTES;
	memcpy(head + off, buf, end - (size_t)off);
	if ((size_t)n < end)
		n = (ssize_t)end;
	const struct blk_driver *d = probe_buf(head, (size_t)n, b->filename);
	if (d && strcmp(d->name, "raw"))
		return kite_error("%s: write to the start of the image refused: the format was "
				  "probed as raw and the data would make it probe as %s (specify "
				  "format=raw to lift the restriction)",
				  b->filename, d->name);
	return 0;
}

int blk_pwrite(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	if (check_writable(b, "write") < 0 || check_range(b, off, len, "write") < 0)
		return -1;
	if (!len)
		return 0;
	if (b->probed_raw && off < PROBE_BYTES && probed_raw_head_ok(b, buf, len, off) < 0)
		return -1;
	if (b->drv->thread_safe)
		return b->drv->write(b, buf, len, off);
	lock(b);
	int r = b->drv->write(b, buf, len, off);
	unlock(b);
	return r;
}

int blk_pwritev(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t off)
{
	int64_t len = iov_bytes(b, iov, iovcnt, "write");
	if (len < 0 || check_writable(b, "write") < 0 ||
	    check_range(b, off, (uint64_t)len, "write") < 0)
		return -1;
	/* A probed raw image checks what lands on its first bytes buffer by buffer. */
	if (b->drv->writev && b->drv->thread_safe && !(b->probed_raw && off < PROBE_BYTES))
		return b->drv->writev(b, iov, iovcnt, off);
	for (int i = 0; i < iovcnt; i++) {
		if (blk_pwrite(b, iov[i].iov_base, iov[i].iov_len, off) < 0)
			return -1;
		off += iov[i].iov_len;
	}
	return 0;
}

int blk_pwrite_compressed(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	if (!b->drv->write_compressed)
		return kite_error("%s: the %s format does not support compression", b->filename,
				  b->drv->name);
	if (check_writable(b, "write") < 0 || check_range(b, off, len, "write") < 0)
		return -1;
	lock(b);
	int r = b->drv->write_compressed(b, buf, len, off);
	unlock(b);
	return r;
}

int blk_compress_cluster(const struct blk *b, const void *raw, size_t len, void *out,
			 size_t *outlen)
{
	if (!b->drv->compress)
		return kite_error("%s: the %s format does not support compression", b->filename,
				  b->drv->name);
	return b->drv->compress(b, raw, len, out, outlen);
}

int blk_pwrite_precompressed(struct blk *b, const void *cdata, size_t clen, const void *raw,
			     size_t len, uint64_t off)
{
	if (!clen)
		return blk_pwrite(b, raw, len, off);
	if (!b->drv->write_precompressed)
		return kite_error("%s: the %s format does not support compression", b->filename,
				  b->drv->name);
	if (check_writable(b, "write") < 0 || check_range(b, off, len, "write") < 0)
		return -1;
	lock(b);
	int r = b->drv->write_precompressed(b, cdata, clen, off);
	unlock(b);
	return r;
}

int blk_flush(struct blk *b)
{
	if (!(b->flags & BLK_O_RDWR) || !b->drv->flush)
		return 0;
	lock(b);
	int r = b->drv->flush(b);
	unlock(b);
	return r;
}

int blk_discard(struct blk *b, uint64_t off, uint64_t len)
{
	if (check_writable(b, "discard") < 0 || check_range(b, off, len, "discard") < 0)
		return -1;
	if (!len || !b->drv->discard)
		return 0; /* discard is advisory */
	lock(b);
	int r = b->drv->discard(b, off, len);
	unlock(b);
	return r;
}

int blk_write_zeroes(struct blk *b, uint64_t off, uint64_t len, unsigned flags)
{
	if (check_writable(b, "write zeroes") < 0 || check_range(b, off, len, "write zeroes") < 0)
		return -1;
	if (!len)
		return 0;
	int r = 0;
	lock(b);
	if (b->drv->zero) {
		r = b->drv->zero(b, off, len, flags);
	} else {
		/* No native zeroing: write a zero buffer in chunks. */
		size_t chunk = len < (1u << 20) ? (size_t)len : (1u << 20);
		void *z = calloc(1, chunk);
		if (!z)
			r = kite_error("out of memory");
		while (z && r == 0 && len) {
			size_t n = len < chunk ? (size_t)len : chunk;
			r = b->drv->write(b, z, n, off);
			off += n;
			len -= n;
		}
		free(z);
	}
	unlock(b);
	return r;
}

int blk_resize(struct blk *b, uint64_t size, bool shrink)
{
	if (check_writable(b, "resize") < 0)
		return -1;
	if (size < b->size && !shrink)
		return kite_error("%s: shrinking needs --shrink (it discards the data beyond the "
				  "new size)",
				  b->filename);
	if (!b->drv->resize)
		return kite_error("%s: the %s format cannot be resized", b->filename, b->drv->name);
	lock(b);
	int r = b->drv->resize(b, size, shrink);
	unlock(b);
	return r;
}

int blk_load_snapshot(struct blk *b, const char *id, const char *name)
{
	if (!b->drv->load_snapshot)
		return kite_error(
		    "Failed to load snapshot: Block format '%s' used by device '' does "
		    "not support temporarily loading internal snapshots",
		    b->drv->name);
	lock(b);
	/* the same word as id and name: an id if one has it, else a name */
	bool either = id && id == name;
	int r = b->drv->load_snapshot(b, id, either ? NULL : name);
	if (r == 1 && either)
		r = b->drv->load_snapshot(b, NULL, name);
	unlock(b);
	if (r == 1)
		return kite_error("Failed to load snapshot: Can't find snapshot");
	return r;
}

int blk_preallocate(struct blk *b, uint64_t from, uint64_t to, enum blk_prealloc mode)
{
	if (mode == BLK_PREALLOC_OFF)
		return 0;
	if (from > to)
		to = from;
	if (check_writable(b, "preallocate") < 0 || check_range(b, from, to - from, "preallocate"))
		return -1;
	if (!b->drv->preallocate)
		return kite_error("%s: the %s format cannot preallocate", b->filename,
				  b->drv->name);
	lock(b);
	int r = b->drv->preallocate(b, from, to, mode);
	unlock(b);
	return r;
}

int blk_block_status(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum, unsigned *flags,
		     uint64_t *host_off)
{
	uint64_t dummy;
	if (!host_off)
		host_off = &dummy;
	*host_off = 0;
	if (check_range(b, off, len, "block status") < 0)
		return -1;
	if (!len)
		return kite_error("%s: block status of an empty range", b->filename);
	if (!b->drv->block_status) {
		*pnum = len;
		*flags = BLK_STATUS_DATA | BLK_STATUS_ALLOCATED;
		return 0;
	}
	lock(b);
	int r = b->drv->block_status(b, off, len, pnum, flags, host_off);
	unlock(b);
	if (r == 0 && (*pnum == 0 || *pnum > len))
		return kite_error("%s: driver returned a bad block status length", b->filename);
	return r;
}

int blk_map_status(struct blk *b, uint64_t off, uint64_t len, struct blk_map *m)
{
	memset(m, 0, sizeof(*m));
	struct blk *layer = b;
	int depth = 0;
	uint64_t want = len;
	for (;;) {
		uint64_t pnum, host;
		unsigned fl;
		if (blk_block_status(layer, off, want, &pnum, &fl, &host) < 0)
			return -1;
		if ((fl & BLK_STATUS_ALLOCATED) || !layer->backing || off >= layer->backing->size) {
			m->pnum = pnum;
			m->flags = fl;
			m->host_off = host;
			m->layer = layer;
			m->file = layer->data_file && (fl & BLK_STATUS_OFFSET_VALID)
				      ? layer->data_file->filename
				      : layer->filename;
			/* Unallocated everywhere: QEMU reports the chain length as depth, and a
			 * range past a shorter backing file reads as zeros. */
			m->depth =
			    (fl & BLK_STATUS_ALLOCATED) ? depth : depth + (layer->backing ? 1 : 0);
			if (!(fl & BLK_STATUS_ALLOCATED) && layer->backing)
				m->flags |= BLK_STATUS_ZERO;
			return 0;
		}
		/* Unallocated here: ask the next layer about this run only. */
		want = pnum;
		if (off + want > layer->backing->size)
			want = layer->backing->size - off;
		layer = layer->backing;
		depth++;
	}
}

int blk_parse_prealloc(const char *s, enum blk_prealloc *out)
{
	static const char *const names[] = {"off", "metadata", "falloc", "full"};
	for (int i = 0; i < 4; i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum blk_prealloc)i;
			return 0;
		}
	}
	return -1;
}

/* The file system's extent size hint, set on the (empty) file before the driver writes it,
 * as QEMU's file layer does; file systems without one (ext4, tmpfs) ignore it. */
static int set_extent_size_hint(const char *path, uint64_t hint)
{
	if (hint > UINT32_MAX)
		return kite_error("%s: Extent size hint is too large", path);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return kite_error_errno(errno, "could not create '%s'", path);
	struct fsxattr attr;
	if (ioctl(fd, FS_IOC_FSGETXATTR, &attr) == 0) {
		attr.fsx_xflags |= FS_XFLAG_EXTSIZE;
		attr.fsx_extsize = (uint32_t)hint;
		(void)ioctl(fd, FS_IOC_FSSETXATTR, &attr); /* a hint: refused is fine */
	}
	close(fd);
	return 0;
}

bool blk_has_zero_init(const struct blk *b)
{
	return !b->drv->no_zero_init;
}

bool blk_format_known(const char *fmt)
{
	return blk_find_driver(fmt) != NULL;
}

static bool driver_can(const struct blk_driver *d, enum blk_cap cap)
{
	switch (cap) {
	case BLK_CAP_CREATE:
		return d->create != NULL;
	case BLK_CAP_BACKING:
		return d->has_backing;
	case BLK_CAP_MAKE_EMPTY:
		return d->make_empty != NULL;
	case BLK_CAP_SNAPSHOTS:
		return d->snapshot_list != NULL;
	case BLK_CAP_CHECK:
		return d->check != NULL;
	case BLK_CAP_MEASURE:
		return d->measure != NULL;
	case BLK_CAP_AMEND:
		return d->amend != NULL;
	}
	return false;
}

bool blk_format_can(const char *fmt, enum blk_cap cap)
{
	const struct blk_driver *d = blk_find_driver(fmt);
	return d && driver_can(d, cap);
}

bool blk_can(const struct blk *b, enum blk_cap cap)
{
	return driver_can(b->drv, cap);
}

/* The drivers with `cap`, by list_rank then name. */
static int drivers_with(enum blk_cap cap, const struct blk_driver **out)
{
	int n = 0;
	for (int i = 0; i < nb_drivers; i++) {
		const struct blk_driver *d = drivers[i];
		if (!driver_can(d, cap))
			continue;
		int j = n++;
		for (; j > 0 && (out[j - 1]->list_rank > d->list_rank ||
				 (out[j - 1]->list_rank == d->list_rank &&
				  strcmp(out[j - 1]->name, d->name) > 0));
		     j--)
			out[j] = out[j - 1];
		out[j] = d;
	}
	return n;
}

const char *blk_formats_with(enum blk_cap cap, char *buf, size_t len)
{
	const struct blk_driver *list[MAX_DRIVERS];
	int n = drivers_with(cap, list);
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && used < len; i++) {
		const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
		int w = snprintf(buf + used, len - used, "%s%s", sep, list[i]->name);
		used += w > 0 ? (size_t)w : 0;
	}
	return buf;
}

uint32_t blk_format_size_align(const char *fmt)
{
	const struct blk_driver *d = blk_find_driver(fmt);
	return d && d->size_align ? d->size_align : 1;
}

uint32_t blk_size_align(const struct blk *b)
{
	return b->drv->size_align ? b->drv->size_align : 1;
}

uint64_t blk_format_round_size(const char *fmt, uint64_t size)
{
	uint64_t a = blk_format_size_align(fmt);
	return (size + a - 1) / a * a;
}

int blk_make_empty(const char *path, const struct blk_info *in)
{
	const struct blk_driver *d = blk_find_driver(in->format);
	if (!d || !d->make_empty)
		return kite_error("%s: the %s format cannot be emptied", path, in->format);
	return d->make_empty(path, in);
}

int blk_create(const char *path, const char *fmt, const struct blk_create_opts *opts)
{
	const struct blk_driver *drv = blk_find_driver(fmt);
	if (!drv)
		return kite_error("unknown image format '%s'", fmt);
	if (!drv->create)
		return kite_error("the %s format does not support creating images", fmt);
	struct blk_create_opts o = *opts;
	if (!o.size_set) {
		if (!o.backing_file)
			return kite_error("%s: no size given and no backing file to take it from",
					  path);
		char *bpath = blk_resolve_relative(path, o.backing_file);
		if (!bpath)
			return -1;
		struct blk *bb = blk_open(bpath, o.backing_fmt, BLK_O_NO_PROBE_WARN);
		free(bpath);
		if (!bb)
			return kite_error("%s: could not open backing file '%s' to take its size",
					  path, o.backing_file);
		o.size = bb->size;
		o.size_set = true;
		blk_close(bb);
	}
	/* An existing file is truncated by the driver: not while another process uses it. */
	struct imglock *lk = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		lk = imglock_take(fd, path, IMGLOCK_READ | IMGLOCK_WRITE | IMGLOCK_RESIZE,
				  IMGLOCK_WRITE | IMGLOCK_RESIZE, path, false);
		close(fd);
		if (!lk)
			return -1;
	}
	int r = o.extent_size_hint_set ? set_extent_size_hint(path, o.extent_size_hint) : 0;
	if (r == 0)
		r = drv->create(path, &o);
	imglock_drop(lk);
	return r;
}

int blk_get_info(struct blk *b, struct blk_info *info)
{
	memset(info, 0, sizeof(*info));
	info->format = b->drv->name;
	info->virtual_size = b->size;
	info->cluster_size = blk_cluster_size(b);
	if (!b->drv->info)
		return 0;
	lock(b);
	int r = b->drv->info(b, info);
	unlock(b);
	if (r == 0 && info->backing_file[0] && !info->backing_full[0]) {
		char *full = blk_resolve_relative(b->filename, info->backing_file);
		if (!full)
			return -1;
		snprintf(info->backing_full, sizeof(info->backing_full), "%s", full);
		free(full);
	}
	return r;
}

int blk_change_backing(struct blk *b, const char *file, const char *fmt)
{
	if (check_writable(b, "change backing file") < 0)
		return -1;
	if (!b->drv->change_backing)
		return kite_error("%s: the %s format has no backing file", b->filename,
				  b->drv->name);
	lock(b);
	int r = b->drv->change_backing(b, file, fmt);
	unlock(b);
	return r;
}

/* Snapshot calls, like the other image-wide operations (check, amend), are not made
 * concurrently with I/O: the driver runs without the blk lock, free to call blk_*. */
static int no_snapshots(const struct blk *b)
{
	return kite_error("snapshots are not supported by format '%s'", b->drv->name);
}

int blk_snapshot_list(struct blk *b, struct blk_snapshot **list, int *count)
{
	*list = NULL;
	*count = 0;
	return b->drv->snapshot_list ? b->drv->snapshot_list(b, list, count) : no_snapshots(b);
}

int blk_snapshot_create(struct blk *b, const char *name)
{
	return b->drv->snapshot_create ? b->drv->snapshot_create(b, name) : no_snapshots(b);
}

int blk_snapshot_apply(struct blk *b, const char *name_or_id)
{
	return b->drv->snapshot_apply ? b->drv->snapshot_apply(b, name_or_id) : no_snapshots(b);
}

int blk_snapshot_delete(struct blk *b, const char *name_or_id)
{
	return b->drv->snapshot_delete ? b->drv->snapshot_delete(b, name_or_id) : no_snapshots(b);
}

int blk_snapshot_create_vmstate(struct blk *b, const char *name, int fd, uint64_t size,
				uint64_t vm_clock_nsec)
{
	if (!b->drv->snapshot_create_vmstate)
		return kite_error("%s: format '%s' cannot hold a VM state in a snapshot",
				  b->filename, b->drv->name);
	return b->drv->snapshot_create_vmstate(b, name, fd, size, vm_clock_nsec);
}

int blk_snapshot_read_vmstate(struct blk *b, const char *name_or_id, int fd, uint64_t *size)
{
	if (!b->drv->snapshot_read_vmstate)
		return kite_error("%s: format '%s' cannot hold a VM state in a snapshot",
				  b->filename, b->drv->name);
	return b->drv->snapshot_read_vmstate(b, name_or_id, fd, size);
}

bool blk_can_vmstate(const struct blk *b)
{
	return b->drv->snapshot_create_vmstate != NULL;
}

int blk_check(struct blk *b, unsigned fix, struct blk_check_result *r)
{
	memset(r, 0, sizeof(*r));
	if (!b->drv->check)
		return kite_error("This image format does not support checks");
	return b->drv->check(b, fix, r);
}

int blk_measure(const char *fmt, const struct blk_create_opts *c, struct blk *src, uint64_t size,
		struct blk_measure *m)
{
	memset(m, 0, sizeof(*m));
	const struct blk_driver *d = blk_find_driver(fmt);
	if (!d || !d->measure)
		return kite_error("measure: unsupported output format '%s'", fmt);
	return d->measure(c, src, (size + 511) / 512 * 512, m);
}

const struct blk_opt_desc *blk_amend_options(const char *fmt, size_t *n)
{
	const struct blk_driver *d = blk_find_driver(fmt);
	*n = 0;
	if (!d || !d->amend || !d->amend_opts)
		return NULL;
	while (d->amend_opts[*n].name)
		(*n)++;
	return d->amend_opts;
}

int blk_amend(struct blk *b, const struct blk_amend_opt *opts, size_t n, blk_progress_fn cb,
	      void *ctx)
{
	if (!b->drv->amend)
		return kite_error("Format driver '%s' does not support option amendment",
				  b->drv->name);
	return b->drv->amend(b, opts, n, cb, ctx);
}

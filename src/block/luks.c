/* luks: a LUKS1 volume in a file, as QEMU's luks driver reads and writes it: the header and
 * key material first, then the payload, each 512-byte sector encrypted with its number
 * (counted from the payload's start) as IV. Requests need no alignment: partial sectors
 * are read, decrypted, patched and encrypted again. */
#include "block/block_int.h"
#include "block/crypto.h"
#include "block/crypto_luks.h"
#include "block/secret.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LUKS_MAGIC_LEN 6
#define BOUNCE	       (1u << 20) /* bytes en/decrypted per step */

struct luks_state {
	struct luks *l;
	uint64_t payload; /* bytes */
	uint8_t *bounce;  /* BOUNCE bytes */
};

static int drv_luks_probe(const uint8_t *buf, size_t len, const char *filename)
{
	static const uint8_t magic[LUKS_MAGIC_LEN] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
	if (len >= 8 && !memcmp(buf, magic, sizeof(magic)) && buf[6] == 0 && buf[7] == 1)
		return 100;
	return 0;
}

static int read_header(void *opaque, uint64_t off, void *buf, size_t len)
{
	struct blk *b = opaque;
	return blk_file_pread(b->fd, buf, len, off, b->filename);
}

static void drv_luks_close(struct blk *b)
{
	struct luks_state *s = b->opaque;
	if (!s)
		return;
	luks_close(s->l);
	crypto_free_secret(s->bounce, BOUNCE);
	free(s);
	b->opaque = NULL;
}

static int drv_luks_open(struct blk *b, struct blk_open_ctx *ctx)
{
	struct luks_state *s = calloc(1, sizeof(*s));
	if (!s)
		return kite_error("out of memory");
	b->opaque = s;
	uint64_t fsize;
	blk_crypto_errors_begin(b);
	s->l = blk_luks_open(b, "", read_header, b);
	blk_crypto_errors_end();
	int r = s->l ? blk_file_size(b->fd, &fsize, b->filename) : -1;
	if (r == 0) {
		s->payload = luks_payload_offset(s->l);
		s->bounce = malloc(BOUNCE);
		if (!s->bounce)
			r = kite_error("out of memory");
	}
	if (r == 0 && fsize < s->payload)
		r = kite_error("Could not open '%s': the LUKS payload offset %llu lies beyond the "
			       "end of the file",
			       b->filename, (unsigned long long)s->payload);
	if (r < 0) {
		drv_luks_close(b);
		return -1;
	}
	/* as QEMU: the file's partial last sector counts whole */
	b->size = (fsize - s->payload + CRYPTO_SECTOR - 1) / CRYPTO_SECTOR * CRYPTO_SECTOR;
	return 0;
}

/* Reads and decrypts whole sectors [sec, sec + n/512) into buf. */
static int read_sectors(struct blk *b, uint8_t *buf, size_t n, uint64_t sec)
{
	struct luks_state *s = b->opaque;
	if (blk_file_pread(b->fd, buf, n, s->payload + sec * CRYPTO_SECTOR, b->filename) < 0)
		return -1;
	luks_decrypt(s->l, sec, buf, n);
	return 0;
}

/* The sector-aligned span of the bounce buffer around [off, off+len) (len clipped). */
static void span(uint64_t off, size_t *len, uint64_t *start, size_t *n)
{
	*start = off / CRYPTO_SECTOR * CRYPTO_SECTOR;
	uint64_t head = off - *start;
	if (*len > BOUNCE - CRYPTO_SECTOR - head)
		*len = BOUNCE - CRYPTO_SECTOR - (size_t)head;
	*n = (size_t)((head + *len + CRYPTO_SECTOR - 1) / CRYPTO_SECTOR * CRYPTO_SECTOR);
}

static int drv_luks_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	struct luks_state *s = b->opaque;
	uint8_t *p = buf;
	while (len) {
		size_t take = len, n;
		uint64_t start;
		span(off, &take, &start, &n);
		if (read_sectors(b, s->bounce, n, start / CRYPTO_SECTOR) < 0)
			return -1;
		memcpy(p, s->bounce + (off - start), take);
		p += take;
		off += take;
		len -= take;
	}
	return 0;
}

static int drv_luks_write(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	struct luks_state *s = b->opaque;
	const uint8_t *p = buf;
	while (len) {
		size_t take = len, n;
		uint64_t start;
		span(off, &take, &start, &n);
		uint64_t sec = start / CRYPTO_SECTOR;
		bool partial = off != start || take != n;
		if (partial && read_sectors(b, s->bounce, n, sec) < 0)
			return -1;
		memcpy(s->bounce + (off - start), p, take);
		luks_encrypt(s->l, sec, s->bounce, n);
		if (blk_file_pwrite(b->fd, s->bounce, n, s->payload + start, b->filename) < 0)
			return -1;
		p += take;
		off += take;
		len -= take;
	}
	return 0;
}

static int drv_luks_flush(struct blk *b)
{
	if (b->flags & BLK_O_UNSAFE)
		return 0;
	if (fdatasync(b->fd) < 0 && errno != EINVAL)
		return kite_error_errno(errno, "%s: flush", b->filename);
	return 0;
}

static int drv_luks_resize(struct blk *b, uint64_t size, bool shrink)
{
	struct luks_state *s = b->opaque;
	if (size > INT64_MAX - s->payload)
		return kite_error("%s: size too large", b->filename);
	if (ftruncate(b->fd, (off_t)(s->payload + size)) < 0)
		return kite_error_errno(errno, "%s: resize", b->filename);
	b->size = size;
	return 0;
}

static int drv_luks_info(struct blk *b, struct blk_info *info)
{
	struct luks_state *s = b->opaque;
	info->encrypted = true;
	luks_info(s->l, &info->crypto);
	return 0;
}

/* ---- creation: the file holds the header, then the payload's size of (sparse) data ---- */
struct create_io {
	int fd;
	const char *path;
	uint64_t size;
	enum blk_prealloc prealloc;
};

static int create_init(void *opaque, uint64_t hdrlen)
{
	struct create_io *io = opaque;
	if (ftruncate(io->fd, (off_t)(hdrlen + io->size)) < 0)
		return kite_error_errno(errno, "%s: set size", io->path);
	return raw_preallocate(io->fd, hdrlen, hdrlen + io->size, io->prealloc, io->path);
}

static int create_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	struct create_io *io = opaque;
	return blk_file_pwrite(io->fd, buf, len, off, io->path);
}

static int drv_luks_create_image(const char *path, const struct blk_create_opts *o)
{
	if (o->backing_file)
		return kite_error("%s: the luks format does not support backing files", path);
	if (o->prealloc == BLK_PREALLOC_METADATA)
		return kite_error("%s: unsupported preallocation mode 'metadata' for luks", path);
	char prefix[4096 + 8];
	snprintf(prefix, sizeof(prefix), "%s: ", path);
	crypto_set_error_prefix(prefix);
	uint64_t hdr;
	char *pw = NULL;
	int r = luks_header_size(&o->encrypt, &hdr);
	if (r == 0 && !o->encrypt.key_secret)
		r = crypto_error("Parameter 'key-secret' is required for cipher");
	if (r == 0 && !(pw = blk_secret_passphrase(o->encrypt.key_secret)))
		r = -1;
	int fd = -1;
	if (r == 0 && (fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		r = kite_error_errno(errno, "could not create '%s'", path);
	struct create_io io = {fd, path, o->size, o->prealloc};
	if (r == 0)
		r = luks_create(&o->encrypt, pw, create_init, create_write, &io);
	crypto_set_error_prefix(NULL);
	blk_secret_free(pw);
	if (fd >= 0 && fsync(fd) < 0 && r == 0)
		r = kite_error_errno(errno, "%s: flush", path);
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = kite_error_errno(errno, "%s: close", path);
	if (r < 0 && fd >= 0)
		unlink(path); /* as qemu-img: a failed create leaves no file */
	return r;
}

/* Its -o options: the encryption's, by their own names. */
static const char *const luks_keys[] = {"size", "preallocation", "extent_size_hint", NULL};
static const char *const luks_help[] = {
    "cipher-alg=<str>       - Name of encryption cipher algorithm",
    "cipher-mode=<str>      - Name of encryption cipher mode",
    "hash-alg=<str>         - Name of encryption hash algorithm",
    "iter-time=<num>        - Time to spend in PBKDF in milliseconds",
    "ivgen-alg=<str>        - Name of IV generator algorithm",
    "ivgen-hash-alg=<str>   - Name of IV generator hash algorithm",
    "key-secret=<str>       - ID of the secret that provides the keyslot passphrase",
    "size=<size>            - Virtual disk size",
    NULL};

static void luks_print_create(FILE *f, const struct blk_create_opts *c, bool prealloc_given)
{
	fprintf(f, " size=%llu", (unsigned long long)c->size);
	blk_print_encrypt(f, &c->encrypt, "", false);
	if (prealloc_given)
		fprintf(f, " preallocation=%s", blk_prealloc_name(c->prealloc));
}

static const struct blk_create_desc luks_create_desc = {
    .keys = luks_keys,
    .help = luks_help,
    .encrypt_prefix = "",
    .print = luks_print_create,
};

/* qemu-img info: the luks driver's own data is its QCryptoBlockInfo, without a format key */
static json_t *drv_luks_info_json(struct blk *b, const struct blk_info *in)
{
	return in->crypto.format ? blk_crypto_info_json(&in->crypto, false) : NULL;
}

static const struct blk_driver luks_driver = {
    .name = "luks",
    .list_rank = 2,
    .no_zero_init = true,
    .probe = drv_luks_probe,
    .open = drv_luks_open,
    .create = drv_luks_create_image,
    .create_desc = &luks_create_desc,
    .read = drv_luks_read,
    .write = drv_luks_write,
    .flush = drv_luks_flush,
    .resize = drv_luks_resize,
    .close = drv_luks_close,
    .info = drv_luks_info,
    .info_json = drv_luks_info_json,
};

BLK_DRIVER(luks_driver)

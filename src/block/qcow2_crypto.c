/* qcow2 encryption, as QEMU reads and writes it (docs/interop/qcow2.txt):
 * - LUKS (crypt_method 2): a LUKS1 header in clusters the crypto header extension points
 *   to; each 512-byte sector of a data cluster is encrypted with its host sector number
 *   (offset in the image file / 512) as IV.
 * - AES (crypt_method 1, qcow's legacy scheme): AES-128-CBC keyed with the passphrase's
 *   first 16 bytes, the guest sector number as plain64 IV.
 * Compressed clusters are never encrypted (QEMU writes none in an encrypted image and
 * reads them as they are). */
#include "block/crypto.h"
#include "block/crypto_luks.h"
#include "block/qcow2_int.h"
#include "block/secret.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QCOW2_CRYPT_AES	 1u
#define QCOW2_CRYPT_LUKS 2u

struct qcow2_crypto {
	struct luks *luks;	    /* LUKS */
	struct crypto_sectors *aes; /* legacy AES */
};

/* The name as the user gave it, as QEMU's messages name it. */
static const char *shown(const struct blk *b)
{
	return b->open_name ? b->open_name : b->filename;
}

int qcow2_crypto_method(struct blk *b, uint32_t method)
{
	Q(b)->crypt_method = method;
	if (method > QCOW2_CRYPT_LUKS)
		return kite_error("Could not open '%s': Unsupported encryption method %u", shown(b),
				  method);
	return 0;
}

int qcow2_crypto_ext(struct blk *b, const uint8_t *data, uint32_t len)
{
	struct qcow2 *q = Q(b);
	if (q->crypt_method != QCOW2_CRYPT_LUKS)
		return kite_error("Could not open '%s': CRYPTO header extension only expected "
				  "with LUKS encryption method",
				  shown(b));
	if (len != 16)
		return kite_error("Could not open '%s': CRYPTO header extension size %u, but "
				  "expected size 16",
				  shown(b), len);
	q->crypto_hdr_off = get_be64(data);
	q->crypto_hdr_len = get_be64(data + 8);
	if (q->crypto_hdr_off % q->cluster_size)
		return kite_error("Could not open '%s': Encryption header offset '%llu' is not a "
				  "multiple of cluster size '%llu'",
				  shown(b), (unsigned long long)q->crypto_hdr_off,
				  (unsigned long long)q->cluster_size);
	return 0;
}

static int read_luks_header(void *opaque, uint64_t off, void *buf, size_t len)
{
	struct blk *b = opaque;
	struct qcow2 *q = Q(b);
	if (off > q->crypto_hdr_len || len > q->crypto_hdr_len - off)
		return crypto_error("Request for data outside of extension header");
	return blk_file_pread(b->fd, buf, len, q->crypto_hdr_off + off, b->filename);
}

/* The legacy key: the passphrase's first 16 bytes, zero padded (QEMU's qcow crypto). */
static int open_aes(struct blk *b, struct qcow2_crypto *c)
{
	char *pw = blk_crypto_passphrase(b, "encrypt.");
	if (!pw)
		return -1;
	uint8_t key[16] = {0};
	size_t n = strlen(pw);
	memcpy(key, pw, n < sizeof(key) ? n : sizeof(key));
	blk_secret_free(pw);
	struct crypto_spec spec = {CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC, CRYPTO_IVGEN_PLAIN64,
				   -1};
	c->aes = crypto_sectors_new(&spec, key, sizeof(key));
	explicit_bzero(key, sizeof(key));
	return c->aes ? 0 : -1;
}

static int open_method(struct blk *b, struct qcow2_crypto *c)
{
	struct qcow2 *q = Q(b);
	const char *want = b->encrypt_format;
	const char *have = q->crypt_method == QCOW2_CRYPT_AES ? "aes" : "luks";
	if (want && strcmp(want, have))
		return crypto_error("Header reported '%s' encryption format but options specify "
				    "'%s'",
				    have, want);
	if (q->crypt_method == QCOW2_CRYPT_AES)
		return (b->flags & BLK_O_NO_IO) ? 0 : open_aes(b, c);
	if (!q->crypto_hdr_off) {
		if (b->flags & BLK_O_NO_IO)
			return 0;
		return crypto_error("Missing CRYPTO header for crypt method %u", q->crypt_method);
	}
	c->luks = blk_luks_open(b, "encrypt.", read_luks_header, b);
	return c->luks ? 0 : -1;
}

int qcow2_crypto_open(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (!q->crypt_method) {
		if (b->encrypt_format)
			return kite_error("Could not open '%s': No encryption in image header, but "
					  "options specified format '%s'",
					  shown(b), b->encrypt_format);
		return 0;
	}
	struct qcow2_crypto *c = calloc(1, sizeof(*c));
	if (!c)
		return kite_error("out of memory");
	q->crypto = c;
	blk_crypto_errors_begin(b);
	int r = open_method(b, c);
	blk_crypto_errors_end();
	return r;
}

void qcow2_crypto_close(struct qcow2 *q)
{
	if (!q->crypto)
		return;
	luks_close(q->crypto->luks);
	crypto_sectors_free(q->crypto->aes);
	free(q->crypto);
	q->crypto = NULL;
}

bool qcow2_encrypted(const struct qcow2 *q)
{
	return q->crypt_method != 0;
}

/* Whether data goes through a cipher (an image opened BLK_O_NO_IO has none). */
static bool ciphered(const struct qcow2 *q)
{
	return q->crypto && (q->crypto->luks || q->crypto->aes);
}

static void crypt(const struct qcow2 *q, uint8_t *buf, size_t len, uint64_t host, uint64_t guest,
		  bool enc)
{
	const struct qcow2_crypto *c = q->crypto;
	if (c->luks) {
		(enc ? luks_encrypt : luks_decrypt)(c->luks, host / CRYPTO_SECTOR, buf, len);
		return;
	}
	(enc ? crypto_sectors_encrypt : crypto_sectors_decrypt)(c->aes, guest / CRYPTO_SECTOR, buf,
								len);
}

int qcow2_data_pread(struct blk *b, void *buf, size_t len, uint64_t host, uint64_t guest)
{
	struct qcow2 *q = Q(b);
	if (blk_file_pread(qcow2_data_fd(b), buf, len, host, qcow2_data_name(b)) < 0)
		return -1;
	if (ciphered(q))
		crypt(q, buf, len, host, guest, false);
	return 0;
}

int qcow2_data_pwrite(struct blk *b, const void *buf, size_t len, uint64_t host, uint64_t guest)
{
	struct qcow2 *q = Q(b);
	if (!ciphered(q))
		return blk_file_pwrite(qcow2_data_fd(b), buf, len, host, qcow2_data_name(b));
	uint8_t *tmp = malloc(len);
	if (!tmp)
		return kite_error("out of memory");
	memcpy(tmp, buf, len);
	crypt(q, tmp, len, host, guest, true);
	int r = blk_file_pwrite(qcow2_data_fd(b), tmp, len, host, qcow2_data_name(b));
	free(tmp);
	return r;
}

bool qcow2_crypto_unaligned(const struct qcow2 *q, uint64_t off, size_t len)
{
	return ciphered(q) && ((off | len) % CRYPTO_SECTOR);
}

/* The whole sectors around [off, off+len): [*start, *start + *n). */
static int sector_span(uint64_t off, size_t len, uint64_t *start, size_t *n, uint8_t **buf)
{
	*start = off / CRYPTO_SECTOR * CRYPTO_SECTOR;
	*n = (size_t)((off + len - *start + CRYPTO_SECTOR - 1) / CRYPTO_SECTOR * CRYPTO_SECTOR);
	*buf = malloc(*n);
	return *buf ? 0 : kite_error("out of memory");
}

int qcow2_crypto_read_unaligned(struct blk *b, void *buf, size_t len, uint64_t off)
{
	uint64_t start;
	size_t n;
	uint8_t *tmp;
	if (sector_span(off, len, &start, &n, &tmp) < 0)
		return -1;
	int r = qcow2_read(b, tmp, n, start);
	if (r == 0)
		memcpy(buf, tmp + (off - start), len);
	free(tmp);
	return r;
}

int qcow2_crypto_write_unaligned(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	uint64_t start;
	size_t n;
	uint8_t *tmp;
	if (sector_span(off, len, &start, &n, &tmp) < 0)
		return -1;
	int r = qcow2_read(b, tmp, n, start);
	if (r == 0) {
		memcpy(tmp + (off - start), buf, len);
		r = qcow2_write(b, tmp, n, start);
	}
	free(tmp);
	return r;
}

void qcow2_crypto_info(struct blk *b, struct blk_info *info)
{
	struct qcow2 *q = Q(b);
	info->encrypted = qcow2_encrypted(q);
	if (q->crypt_method == QCOW2_CRYPT_AES)
		info->crypto.format = "aes";
	else if (q->crypto && q->crypto->luks)
		luks_info(q->crypto->luks, &info->crypto);
}

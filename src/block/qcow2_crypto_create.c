/* A new qcow2 image's encryption, in QEMU's order: the plain image is made (and
 * preallocated) first, then the LUKS header goes into newly allocated clusters, zeroed
 * first, the crypto header extension points to them and the header names the method. */
#include "block/crypto.h"
#include "block/crypto_luks.h"
#include "block/qcow2_int.h"
#include "block/secret.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *passphrase(const struct blk_encrypt_opts *e)
{
	if (!e->key_secret) {
		crypto_error("Parameter 'encrypt.key-secret' is required for cipher");
		return NULL;
	}
	return blk_secret_passphrase(e->key_secret);
}

static void set_prefix(char *buf, size_t len, const char *path)
{
	if (!path) { /* measure: no file named */
		crypto_set_error_prefix(NULL);
		return;
	}
	snprintf(buf, len, "%s: ", path);
	crypto_set_error_prefix(buf);
}

bool qcow2_crypto_requested(const struct blk_encrypt_opts *e)
{
	return e->format || e->key_secret || e->cipher_alg || e->cipher_mode || e->ivgen_alg ||
	       e->ivgen_hash_alg || e->hash_alg || e->iter_time_set;
}

int qcow2_crypto_create_check(const char *path, const struct blk_encrypt_opts *e)
{
	char prefix[4096 + 8];
	set_prefix(prefix, sizeof(prefix), path);
	uint64_t size;
	char *pw = NULL;
	int r = 0;
	if (!e->format)
		r = crypto_error("Parameter 'encrypt.format' is missing");
	else if (strcmp(e->format, "luks") && strcmp(e->format, "aes"))
		r = crypto_error("Parameter 'format' does not accept value '%s'", e->format);
	else if (!strcmp(e->format, "luks"))
		r = luks_header_size(e, &size);
	if (r == 0 && !(pw = passphrase(e)))
		r = -1;
	blk_secret_free(pw);
	crypto_set_error_prefix(NULL);
	return r;
}

static int hdr_init(void *opaque, uint64_t len)
{
	struct blk *b = opaque;
	struct qcow2 *q = Q(b);
	uint64_t n = (len + q->cluster_size - 1) / q->cluster_size;
	int64_t off = qcow2_alloc_clusters(b, n);
	if (off < 0)
		return crypto_error("Cannot allocate cluster for LUKS header size %llu",
				    (unsigned long long)len);
	q->crypto_hdr_off = (uint64_t)off;
	q->crypto_hdr_len = len;
	return raw_preallocate(b->fd, (uint64_t)off, (uint64_t)off + n * q->cluster_size,
			       BLK_PREALLOC_FULL, b->filename);
}

static int hdr_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	struct blk *b = opaque;
	struct qcow2 *q = Q(b);
	if (off > q->crypto_hdr_len || len > q->crypto_hdr_len - off)
		return crypto_error("Request for data outside of extension header");
	return blk_file_pwrite(b->fd, buf, len, q->crypto_hdr_off + off, b->filename);
}

/* The crypto header extension, first of the kept ones (where QEMU writes it). */
static int add_extension(struct qcow2 *q)
{
	struct qcow2_ext *n = realloc(q->exts, sizeof(*q->exts) * (size_t)(q->nb_exts + 1));
	if (!n)
		return kite_error("out of memory");
	q->exts = n;
	uint8_t *data = malloc(16);
	if (!data)
		return kite_error("out of memory");
	put_be64(data, q->crypto_hdr_off);
	put_be64(data + 8, q->crypto_hdr_len);
	memmove(&q->exts[1], &q->exts[0], sizeof(*q->exts) * (size_t)q->nb_exts);
	q->exts[0] = (struct qcow2_ext){QCOW2_EXT_CRYPTO, 16, data};
	q->nb_exts++;
	return 0;
}

static int set_up(struct blk *b, const struct blk_encrypt_opts *e, const char *pw)
{
	struct qcow2 *q = Q(b);
	bool luks = !strcmp(e->format, "luks");
	if (luks && (luks_create(e, pw, hdr_init, hdr_write, b) < 0 || add_extension(q) < 0))
		return -1;
	q->crypt_method = luks ? 2 : 1;
	if (qcow2_flush_all(b) < 0 || qcow2_write_header(b) < 0)
		return -1;
	return blk_sync(b);
}

int qcow2_crypto_create(const char *path, const struct blk_encrypt_opts *e)
{
	char prefix[4096 + 8];
	struct blk *b = blk_open(path, "qcow2", BLK_O_RDWR | BLK_O_NO_BACKING);
	if (!b)
		return -1;
	set_prefix(prefix, sizeof(prefix), path);
	char *pw = passphrase(e);
	int r = pw ? set_up(b, e, pw) : -1;
	blk_secret_free(pw);
	crypto_set_error_prefix(NULL);
	blk_close(b);
	return r;
}

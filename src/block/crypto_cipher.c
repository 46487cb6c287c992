/* Block ciphers (nettle) in ECB, CBC, XTS and CTR modes, keyed for 512-byte sectors with
 * dm-crypt's IV generators: plain (32-bit sector number), plain64, essiv (the sector number
 * encrypted with the hash of the key). */
#include "block/crypto.h"
#include "util/err.h"

#include <nettle/cbc.h>
#include <nettle/ctr.h>
#include <nettle/nettle-meta.h>
#include <nettle/xts.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	const struct nettle_cipher *nc;
	const char *family;
} ciphers[CRYPTO_CIPHER__MAX] = {
    [CRYPTO_CIPHER_AES_128] = {"aes-128", &nettle_aes128, "AES"},
    [CRYPTO_CIPHER_AES_192] = {"aes-192", &nettle_aes192, "AES"},
    [CRYPTO_CIPHER_AES_256] = {"aes-256", &nettle_aes256, "AES"},
    [CRYPTO_CIPHER_CAST5_128] = {"cast5-128", &nettle_cast128, NULL},
    [CRYPTO_CIPHER_SERPENT_128] = {"serpent-128", &nettle_serpent128, "Serpent"},
    [CRYPTO_CIPHER_SERPENT_192] = {"serpent-192", &nettle_serpent192, "Serpent"},
    [CRYPTO_CIPHER_SERPENT_256] = {"serpent-256", &nettle_serpent256, "Serpent"},
    [CRYPTO_CIPHER_TWOFISH_128] = {"twofish-128", &nettle_twofish128, "Twofish"},
    [CRYPTO_CIPHER_TWOFISH_192] = {"twofish-192", &nettle_twofish192, "Twofish"},
    [CRYPTO_CIPHER_TWOFISH_256] = {"twofish-256", &nettle_twofish256, "Twofish"},
};
static const char *const modes[] = {"ecb", "cbc", "xts", "ctr"};
static const char *const ivgens[] = {"plain", "plain64", "essiv"};

static int lookup(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

int crypto_cipher_lookup(const char *name)
{
	for (int i = 0; i < CRYPTO_CIPHER__MAX; i++)
		if (!strcmp(ciphers[i].name, name))
			return i;
	return -1;
}

const char *crypto_cipher_name(int alg)
{
	return ciphers[alg].name;
}

size_t crypto_cipher_key_len(int alg)
{
	return ciphers[alg].nc->key_size;
}

size_t crypto_cipher_block_len(int alg)
{
	return ciphers[alg].nc->block_size;
}

int crypto_mode_lookup(const char *name)
{
	return lookup(modes, 4, name);
}

const char *crypto_mode_name(int mode)
{
	return modes[mode];
}

int crypto_ivgen_lookup(const char *name)
{
	return lookup(ivgens, 3, name);
}

const char *crypto_ivgen_name(int ivgen)
{
	return ivgens[ivgen];
}

int crypto_essiv_cipher(int cipher, int hash)
{
	size_t digest = crypto_hash_len(hash);
	if (digest == crypto_cipher_key_len(cipher))
		return cipher;
	const char *family = ciphers[cipher].family;
	if (!family)
		return crypto_error("Cipher %s not supported with essiv", ciphers[cipher].name);
	for (int i = 0; i < CRYPTO_CIPHER__MAX; i++)
		if (ciphers[i].family == family && crypto_cipher_key_len(i) == digest)
			return i;
	return crypto_error("No %s cipher with key size %zu available", family, digest);
}

struct crypto_sectors {
	const struct nettle_cipher *nc;
	int mode, ivgen;
	size_t niv; /* IV bytes: 0 for ECB, else the block size */
	const struct nettle_cipher *essiv_nc;
	uint8_t *enc, *dec, *tweak, *essiv; /* contexts, in `mem` */
	uint8_t *mem;
	size_t memlen;
};

size_t crypto_spec_key_len(const struct crypto_spec *spec)
{
	size_t k = crypto_cipher_key_len(spec->cipher);
	return spec->mode == CRYPTO_MODE_XTS ? 2 * k : k;
}

static int set_essiv(struct crypto_sectors *c, const struct crypto_spec *spec, const uint8_t *key,
		     size_t keylen)
{
	if (spec->ivgen_hash < 0)
		return crypto_error("Missing IV generator hash specification");
	int alg = crypto_essiv_cipher(spec->cipher, spec->ivgen_hash);
	if (alg < 0)
		return -1;
	uint8_t salt[64];
	crypto_hash2(spec->ivgen_hash, key, keylen, NULL, 0, salt);
	c->essiv_nc = ciphers[alg].nc;
	c->essiv_nc->set_encrypt_key(c->essiv, salt);
	explicit_bzero(salt, sizeof(salt));
	return 0;
}

struct crypto_sectors *crypto_sectors_new(const struct crypto_spec *spec, const uint8_t *key,
					  size_t keylen)
{
	const struct nettle_cipher *nc = ciphers[spec->cipher].nc;
	if (keylen != crypto_spec_key_len(spec)) {
		crypto_error("Cipher key length %zu should be %zu", keylen,
			     crypto_spec_key_len(spec));
		return NULL;
	}
	if (spec->mode == CRYPTO_MODE_XTS && nc->block_size != 16) {
		crypto_error("Unsupported cipher mode %s", modes[spec->mode]);
		return NULL;
	}
	struct crypto_sectors *c = calloc(1, sizeof(*c));
	size_t cs = (nc->context_size + 15) & ~(size_t)15;
	size_t most = 0; /* ESSIV's cipher may be another one of the family */
	for (int i = 0; i < CRYPTO_CIPHER__MAX; i++)
		if (ciphers[i].nc->context_size > most)
			most = ciphers[i].nc->context_size;
	size_t memlen = 3 * cs + most; /* enc, dec, tweak, ESSIV's */
	uint8_t *mem = calloc(1, memlen);
	if (!c || !mem) {
		free(c);
		free(mem);
		crypto_error("out of memory");
		return NULL;
	}
	*c = (struct crypto_sectors){.nc = nc,
				     .mode = spec->mode,
				     .ivgen = spec->ivgen,
				     .niv = spec->mode == CRYPTO_MODE_ECB ? 0 : nc->block_size,
				     .enc = mem,
				     .dec = mem + cs,
				     .tweak = mem + 2 * cs,
				     .essiv = mem + 3 * cs,
				     .mem = mem,
				     .memlen = memlen};
	nc->set_encrypt_key(c->enc, key);
	nc->set_decrypt_key(c->dec, key);
	if (spec->mode == CRYPTO_MODE_XTS)
		nc->set_encrypt_key(c->tweak, key + nc->key_size);
	if (spec->ivgen == CRYPTO_IVGEN_ESSIV && set_essiv(c, spec, key, keylen) < 0) {
		crypto_sectors_free(c);
		return NULL;
	}
	return c;
}

void crypto_sectors_free(struct crypto_sectors *c)
{
	if (!c)
		return;
	crypto_free_secret(c->mem, c->memlen);
	free(c);
}

static void make_iv(const struct crypto_sectors *c, uint64_t sector, uint8_t *iv)
{
	memset(iv, 0, c->niv);
	unsigned bytes = c->ivgen == CRYPTO_IVGEN_PLAIN ? 4 : 8;
	for (unsigned i = 0; i < bytes && i < c->niv; i++)
		iv[i] = (uint8_t)(sector >> (8 * i)); /* little endian */
	if (c->ivgen == CRYPTO_IVGEN_ESSIV && c->niv)
		c->essiv_nc->encrypt(c->essiv, c->niv, iv, iv);
}

static void crypt_sector(const struct crypto_sectors *c, uint64_t sector, uint8_t *p, bool enc)
{
	uint8_t iv[16];
	make_iv(c, sector, iv);
	const struct nettle_cipher *nc = c->nc;
	size_t n = CRYPTO_SECTOR, bs = nc->block_size;
	switch (c->mode) {
	case CRYPTO_MODE_ECB:
		(enc ? nc->encrypt : nc->decrypt)(enc ? c->enc : c->dec, n, p, p);
		break;
	case CRYPTO_MODE_CBC:
		if (enc)
			cbc_encrypt(c->enc, nc->encrypt, bs, iv, n, p, p);
		else
			cbc_decrypt(c->dec, nc->decrypt, bs, iv, n, p, p);
		break;
	case CRYPTO_MODE_XTS:
		if (enc)
			xts_encrypt_message(c->enc, c->tweak, nc->encrypt, iv, n, p, p);
		else
			xts_decrypt_message(c->dec, c->tweak, nc->decrypt, nc->encrypt, iv, n, p,
					    p);
		break;
	case CRYPTO_MODE_CTR:
		ctr_crypt(c->enc, nc->encrypt, bs, iv, n, p, p);
		break;
	}
	explicit_bzero(iv, sizeof(iv));
}

void crypto_sectors_encrypt(const struct crypto_sectors *c, uint64_t sector, uint8_t *buf,
			    size_t len)
{
	for (size_t off = 0; off < len; off += CRYPTO_SECTOR)
		crypt_sector(c, sector++, buf + off, true);
}

void crypto_sectors_decrypt(const struct crypto_sectors *c, uint64_t sector, uint8_t *buf,
			    size_t len)
{
	for (size_t off = 0; off < len; off += CRYPTO_SECTOR)
		crypt_sector(c, sector++, buf + off, false);
}

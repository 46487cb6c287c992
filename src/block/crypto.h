/* Disk encryption primitives for LUKS and qcow2 encryption, over Debian's nettle (the
 * library Debian's QEMU links for the same work): hashes, PBKDF2, block ciphers in the
 * modes and with the IV generators dm-crypt names ("aes-256" "xts-plain64"), and LUKS's
 * anti-forensic splitter. Names are QEMU's (QCryptoCipherAlgorithm and friends).
 *
 * Every buffer holding key material is wiped (explicit_bzero) before it is freed. */
#ifndef KITE_BLOCK_CRYPTO_H
#define KITE_BLOCK_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum crypto_hash_alg {
	CRYPTO_HASH_MD5,
	CRYPTO_HASH_SHA1,
	CRYPTO_HASH_SHA224,
	CRYPTO_HASH_SHA256,
	CRYPTO_HASH_SHA384,
	CRYPTO_HASH_SHA512,
	CRYPTO_HASH_RIPEMD160,
	CRYPTO_HASH__MAX
};

enum crypto_cipher_alg {
	CRYPTO_CIPHER_AES_128,
	CRYPTO_CIPHER_AES_192,
	CRYPTO_CIPHER_AES_256,
	CRYPTO_CIPHER_CAST5_128,
	CRYPTO_CIPHER_SERPENT_128,
	CRYPTO_CIPHER_SERPENT_192,
	CRYPTO_CIPHER_SERPENT_256,
	CRYPTO_CIPHER_TWOFISH_128,
	CRYPTO_CIPHER_TWOFISH_192,
	CRYPTO_CIPHER_TWOFISH_256,
	CRYPTO_CIPHER__MAX
};

enum crypto_mode { CRYPTO_MODE_ECB, CRYPTO_MODE_CBC, CRYPTO_MODE_XTS, CRYPTO_MODE_CTR };
enum crypto_ivgen { CRYPTO_IVGEN_PLAIN, CRYPTO_IVGEN_PLAIN64, CRYPTO_IVGEN_ESSIV };

/* Name <-> value, in QEMU's spelling ("sha256", "aes-256", "xts", "plain64"); lookups
 * return -1 for an unknown name. */
int crypto_hash_lookup(const char *name);
const char *crypto_hash_name(int alg);
size_t crypto_hash_len(int alg);
int crypto_cipher_lookup(const char *name);
const char *crypto_cipher_name(int alg);
size_t crypto_cipher_key_len(int alg);
size_t crypto_cipher_block_len(int alg);
int crypto_mode_lookup(const char *name);
const char *crypto_mode_name(int mode);
int crypto_ivgen_lookup(const char *name);
const char *crypto_ivgen_name(int ivgen);

/* hash(a || b) into out (crypto_hash_len bytes) */
void crypto_hash2(int alg, const void *a, size_t alen, const void *b, size_t blen, uint8_t *out);
/* PBKDF2-HMAC-<alg> of the password; 0, or -1 with an error */
int crypto_pbkdf2(int alg, const uint8_t *pw, size_t pwlen, const uint8_t *salt, size_t saltlen,
		  uint32_t iters, uint8_t *out, size_t outlen);
/* QEMU's measure of how many PBKDF2 iterations (producing outlen bytes) take one second of
 * this thread's CPU time; 0 with an error on failure. */
uint64_t crypto_pbkdf2_count_iters(int alg, const uint8_t *pw, size_t pwlen, const uint8_t *salt,
				   size_t saltlen, size_t outlen);
/* Random bytes from the kernel (getrandom); -1 with an error. */
int crypto_random(void *buf, size_t len);

/* A cipher, its mode and IV generator keyed for 512-byte sectors numbered from 0. */
struct crypto_spec {
	int cipher;	/* enum crypto_cipher_alg (the size of one key; XTS takes two) */
	int mode;	/* enum crypto_mode */
	int ivgen;	/* enum crypto_ivgen */
	int ivgen_hash; /* ESSIV's hash; -1: none */
};
#define CRYPTO_SECTOR 512u

struct crypto_sectors;
/* key: crypto_spec_key_len(spec) bytes. NULL with an error (an unusable combination, such
 * as ESSIV with a hash no key size of the cipher matches). */
struct crypto_sectors *crypto_sectors_new(const struct crypto_spec *spec, const uint8_t *key,
					  size_t keylen);
size_t crypto_spec_key_len(const struct crypto_spec *spec);
/* Encrypts / decrypts `len` bytes (a multiple of 512) in place, the first sector being
 * number `sector`. Thread-safe for a shared struct. */
void crypto_sectors_encrypt(const struct crypto_sectors *c, uint64_t sector, uint8_t *buf,
			    size_t len);
void crypto_sectors_decrypt(const struct crypto_sectors *c, uint64_t sector, uint8_t *buf,
			    size_t len);
void crypto_sectors_free(struct crypto_sectors *c);

/* The ESSIV cipher dm-crypt uses for `cipher` with `hash` (a key as long as the digest);
 * -1 with QEMU's error when there is none. */
int crypto_essiv_cipher(int cipher, int hash);

/* LUKS's anti-forensic splitter: `key` (keylen bytes) spread over `stripes` blocks
 * (out: keylen * stripes bytes) and merged back. */
int crypto_afsplit_encode(int hash, size_t keylen, uint32_t stripes, const uint8_t *key,
			  uint8_t *out);
int crypto_afsplit_decode(int hash, size_t keylen, uint32_t stripes, const uint8_t *in,
			  uint8_t *key);

/* Errors of the crypto layer (LUKS, ciphers, secrets) read as QEMU's, which names the image
 * first ("Could not open 'x.qcow2': Invalid password, ..."): the caller sets that prefix
 * for the current thread around its crypto calls (NULL: none). crypto_error() prints
 * "kite: error: <prefix><message>" and returns -1. */
void crypto_set_error_prefix(const char *prefix);
int crypto_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Frees a buffer of `len` bytes after wiping it; NULL is fine. */
void crypto_free_secret(void *p, size_t len);

#endif

/* LUKS1's anti-forensic information splitter (the LUKS on-disk format specification,
 * "AF-Splitter"): a key becomes `stripes` blocks, all of which are needed to recover it.
 * Every stripe but the last is random; the last is the key xor the diffusion of the
 * others. */
#include "block/crypto.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* The spec's diffuse function H: each digest-sized piece of the block is replaced by the
 * hash of its index (32-bit big endian) and itself, the last piece possibly shorter. */
static void diffuse(int hash, size_t len, uint8_t *block)
{
	size_t dlen = crypto_hash_len(hash);
	uint8_t digest[64];
	for (size_t off = 0, i = 0; off < len; off += dlen, i++) {
		size_t n = len - off < dlen ? len - off : dlen;
		uint8_t idx[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
				  (uint8_t)i};
		crypto_hash2(hash, idx, 4, block + off, n, digest);
		memcpy(block + off, digest, n);
	}
	explicit_bzero(digest, sizeof(digest));
}

static void xor_into(uint8_t *dst, const uint8_t *a, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] ^= a[i];
}

/* The diffusion of stripes 0..stripes-2 into d (keylen bytes). */
static void fold(int hash, size_t keylen, uint32_t stripes, const uint8_t *split, uint8_t *d)
{
	memset(d, 0, keylen);
	for (uint32_t i = 0; i + 1 < stripes; i++) {
		xor_into(d, split + (size_t)i * keylen, keylen);
		diffuse(hash, keylen, d);
	}
}

int crypto_afsplit_encode(int hash, size_t keylen, uint32_t stripes, const uint8_t *key,
			  uint8_t *out)
{
	uint8_t *d = malloc(keylen);
	if (!d)
		return crypto_error("out of memory");
	int r = crypto_random(out, keylen * (stripes - 1));
	if (r == 0) {
		fold(hash, keylen, stripes, out, d);
		uint8_t *last = out + keylen * (stripes - 1);
		memcpy(last, key, keylen);
		xor_into(last, d, keylen);
	}
	crypto_free_secret(d, keylen);
	return r;
}

int crypto_afsplit_decode(int hash, size_t keylen, uint32_t stripes, const uint8_t *in,
			  uint8_t *key)
{
	if (!stripes)
		return crypto_error("the key material has no stripes");
	fold(hash, keylen, stripes, in, key);
	xor_into(key, in + keylen * (stripes - 1), keylen);
	return 0;
}

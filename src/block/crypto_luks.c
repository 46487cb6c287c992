/* LUKS1: reading and checking a header, unlocking the master key from a key slot, the
 * payload's encryption, and the facts qemu-img info prints. Every check QEMU 7.2 makes is
 * made with its message, before anything is allocated from a header's numbers; on top of
 * them kite bounds the PBKDF2 iterations it will run. */
#include "block/crypto_luks_int.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t luks_magic[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A name field: whether it holds a NUL (else QEMU refuses the header). */
static bool copy_name(char *dst, const uint8_t *src)
{
	memcpy(dst, src, LUKS_NAME_LEN);
	dst[LUKS_NAME_LEN] = '\0';
	return memchr(src, '\0', LUKS_NAME_LEN) != NULL;
}

static int decode(const uint8_t *b, struct luks_header *h)
{
	if (memcmp(b, luks_magic, sizeof(luks_magic)))
		return crypto_error("Volume is not in LUKS format");
	h->version = (uint16_t)(b[6] << 8 | b[7]);
	if (h->version != 1)
		return crypto_error("LUKS version %u is not supported", h->version);
	if (!copy_name(h->cipher_name, b + 8))
		return crypto_error("LUKS header cipher name is not NUL terminated");
	if (!copy_name(h->cipher_mode, b + 40))
		return crypto_error("LUKS header cipher mode is not NUL terminated");
	if (!copy_name(h->hash_spec, b + 72))
		return crypto_error("LUKS header hash spec is not NUL terminated");
	h->payload_offset = be32(b + 104);
	h->key_bytes = be32(b + 108);
	memcpy(h->mk_digest, b + 112, LUKS_DIGEST_LEN);
	memcpy(h->mk_salt, b + 132, LUKS_SALT_LEN);
	h->mk_iters = be32(b + 164);
	memcpy(h->uuid, b + 168, LUKS_UUID_LEN);
	h->uuid[LUKS_UUID_LEN] = '\0';
	for (int i = 0; i < BLK_LUKS_SLOTS; i++) {
		const uint8_t *s = b + 208 + 48 * i;
		struct luks_slot *sl = &h->slots[i];
		sl->active = be32(s);
		sl->iters = be32(s + 4);
		memcpy(sl->salt, s + 8, LUKS_SALT_LEN);
		sl->key_offset = be32(s + 40);
		sl->stripes = be32(s + 44);
	}
	return 0;
}

void luks_header_encode(const struct luks_header *h, uint8_t *b)
{
	memset(b, 0, LUKS_HEADER_BYTES);
	memcpy(b, luks_magic, sizeof(luks_magic));
	b[6] = (uint8_t)(h->version >> 8);
	b[7] = (uint8_t)h->version;
	memcpy(b + 8, h->cipher_name, strnlen(h->cipher_name, LUKS_NAME_LEN));
	memcpy(b + 40, h->cipher_mode, strnlen(h->cipher_mode, LUKS_NAME_LEN));
	memcpy(b + 72, h->hash_spec, strnlen(h->hash_spec, LUKS_NAME_LEN));
	put32(b + 104, h->payload_offset);
	put32(b + 108, h->key_bytes);
	memcpy(b + 112, h->mk_digest, LUKS_DIGEST_LEN);
	memcpy(b + 132, h->mk_salt, LUKS_SALT_LEN);
	put32(b + 164, h->mk_iters);
	memcpy(b + 168, h->uuid, strnlen(h->uuid, LUKS_UUID_LEN));
	for (int i = 0; i < BLK_LUKS_SLOTS; i++) {
		uint8_t *s = b + 208 + 48 * i;
		const struct luks_slot *sl = &h->slots[i];
		put32(s, sl->active);
		put32(s + 4, sl->iters);
		memcpy(s + 8, sl->salt, LUKS_SALT_LEN);
		put32(s + 40, sl->key_offset);
		put32(s + 44, sl->stripes);
	}
}

uint64_t luks_split_sectors(uint32_t key_bytes, uint32_t stripes)
{
	uint64_t sectors = ((uint64_t)key_bytes * stripes + CRYPTO_SECTOR - 1) / CRYPTO_SECTOR;
	return (sectors + LUKS_HEADER_SECTORS - 1) / LUKS_HEADER_SECTORS * LUKS_HEADER_SECTORS;
}

static int check_slot(const struct luks_header *h, int i)
{
	const struct luks_slot *s = &h->slots[i];
	if (s->stripes != LUKS_STRIPES)
		return crypto_error("Keyslot %d is corrupted (stripes %d != %d)", i,
				    (int)s->stripes, LUKS_STRIPES);
	if (s->active != LUKS_SLOT_DISABLED && s->active != LUKS_SLOT_ENABLED)
		return crypto_error("Keyslot %d state (active/disable) is corrupted", i);
	if (s->active == LUKS_SLOT_ENABLED && s->iters == 0)
		return crypto_error("Keyslot %d iteration count is zero", i);
	if (s->key_offset < LUKS_HEADER_SECTORS)
		return crypto_error("Keyslot %d is overlapping with the LUKS header", i);
	uint64_t len = luks_split_sectors(h->key_bytes, s->stripes);
	if (s->key_offset + len > h->payload_offset)
		return crypto_error("Keyslot %d is overlapping with the encrypted payload", i);
	for (int j = i + 1; j < BLK_LUKS_SLOTS; j++) {
		const struct luks_slot *t = &h->slots[j];
		uint64_t tlen = luks_split_sectors(h->key_bytes, t->stripes);
		if (s->key_offset + len > t->key_offset && t->key_offset + tlen > s->key_offset)
			return crypto_error("Keyslots %d and %d are overlapping in the header", i,
					    j);
	}
	return 0;
}

static int check_header(const struct luks_header *h)
{
	if (h->payload_offset < LUKS_HEADER_SECTORS)
		return crypto_error("LUKS payload is overlapping with the header");
	if (h->mk_iters == 0)
		return crypto_error("LUKS key iteration count is zero");
	for (int i = 0; i < BLK_LUKS_SLOTS; i++)
		if (check_slot(h, i) < 0)
			return -1;
	return 0;
}

static int lookup_or_fail(int v, const char *what, const char *name)
{
	if (v < 0)
		return crypto_error("%s '%s' not supported", what, name);
	return v;
}

/* The LUKS cipher name ("aes") and key size to QEMU's algorithm ("aes-256"). */
static int cipher_by_luks_name(const char *name, int mode, uint32_t key_bytes)
{
	if (mode == CRYPTO_MODE_XTS)
		key_bytes /= 2;
	char full[48];
	snprintf(full, sizeof(full), "%s-%u", name, key_bytes * 8);
	int alg = crypto_cipher_lookup(full);
	if (alg < 0)
		return crypto_error("Algorithm '%s' with key size %d bytes not supported", name,
				    (int)key_bytes);
	return alg;
}

/* "xts-plain64", "cbc-essiv:sha256": mode, IV generator, its hash; as QEMU's
 * qcrypto_block_luks_parse_header, in its order of checks. */
static int parse_names(struct luks *l)
{
	char mode[LUKS_NAME_LEN + 1];
	memcpy(mode, l->h.cipher_mode, sizeof(mode));
	char *ivgen = strchr(mode, '-');
	if (!ivgen)
		return crypto_error("Unexpected cipher mode string format '%s'", l->h.cipher_mode);
	*ivgen++ = '\0';
	char *ivhash = strchr(ivgen, ':');
	l->spec.ivgen_hash = -1;
	if (ivhash) {
		*ivhash++ = '\0';
		l->spec.ivgen_hash = crypto_hash_lookup(ivhash);
		if (lookup_or_fail(l->spec.ivgen_hash, "Hash algorithm", ivhash) < 0)
			return -1;
	}
	if ((l->spec.mode = lookup_or_fail(crypto_mode_lookup(mode), "Cipher mode", mode)) < 0)
		return -1;
	l->spec.cipher = cipher_by_luks_name(l->h.cipher_name, l->spec.mode, l->h.key_bytes);
	if (l->spec.cipher < 0)
		return -1;
	l->hash =
	    lookup_or_fail(crypto_hash_lookup(l->h.hash_spec), "Hash algorithm", l->h.hash_spec);
	if (l->hash < 0)
		return -1;
	l->spec.ivgen = lookup_or_fail(crypto_ivgen_lookup(ivgen), "IV generator", ivgen);
	if (l->spec.ivgen < 0)
		return -1;
	if (l->spec.ivgen == CRYPTO_IVGEN_ESSIV) {
		if (!ivhash)
			return crypto_error("Missing IV generator hash specification");
		if (crypto_essiv_cipher(l->spec.cipher, l->spec.ivgen_hash) < 0)
			return -1;
	} else {
		l->spec.ivgen_hash = -1; /* ignored, as dm-crypt ignores it */
	}
	return 0;
}

static int check_iters(uint32_t iters, const char *what)
{
	if (iters > LUKS_MAX_ITERS)
		return crypto_error("%s has %u PBKDF2 iterations: more than the %u kite will run "
				    "(a damaged or hostile header?)",
				    what, iters, LUKS_MAX_ITERS);
	return 0;
}

/* 1: the slot's key unlocked `mk`; 0: not this slot; -1: error. */
static int try_slot(struct luks *l, int i, const char *pw, luks_read_fn rd, void *opaque,
		    uint8_t *mk)
{
	const struct luks_slot *s = &l->h.slots[i];
	if (s->active != LUKS_SLOT_ENABLED)
		return 0;
	char what[32];
	snprintf(what, sizeof(what), "Keyslot %d", i);
	if (check_iters(s->iters, what) < 0)
		return -1;
	size_t kb = l->h.key_bytes, splitlen = kb * s->stripes;
	uint8_t *key = malloc(kb), *split = malloc(splitlen);
	uint8_t digest[LUKS_DIGEST_LEN];
	int r = key && split ? 0 : crypto_error("out of memory");
	if (r == 0)
		r = crypto_pbkdf2(l->hash, (const uint8_t *)pw, strlen(pw), s->salt, LUKS_SALT_LEN,
				  s->iters, key, kb);
	if (r == 0)
		r = rd(opaque, (uint64_t)s->key_offset * CRYPTO_SECTOR, split, splitlen);
	struct crypto_sectors *c = r == 0 ? crypto_sectors_new(&l->spec, key, kb) : NULL;
	if (r == 0 && !c)
		r = -1;
	if (r == 0) {
		crypto_sectors_decrypt(c, 0, split, splitlen);
		r = crypto_afsplit_decode(l->hash, kb, s->stripes, split, mk);
	}
	if (r == 0)
		r = crypto_pbkdf2(l->hash, mk, kb, l->h.mk_salt, LUKS_SALT_LEN, l->h.mk_iters,
				  digest, LUKS_DIGEST_LEN);
	if (r == 0)
		r = memcmp(digest, l->h.mk_digest, LUKS_DIGEST_LEN) == 0;
	crypto_sectors_free(c);
	crypto_free_secret(key, kb);
	crypto_free_secret(split, splitlen);
	explicit_bzero(digest, sizeof(digest));
	return r;
}

static int unlock(struct luks *l, const char *pw, luks_read_fn rd, void *opaque)
{
	if (check_iters(l->h.mk_iters, "The master key digest") < 0)
		return -1;
	size_t kb = l->h.key_bytes;
	uint8_t *mk = malloc(kb);
	if (!mk)
		return crypto_error("out of memory");
	int r = 0;
	for (int i = 0; i < BLK_LUKS_SLOTS && r == 0; i++)
		r = try_slot(l, i, pw, rd, opaque, mk);
	if (r == 0)
		r = crypto_error("Invalid password, cannot unlock any keyslot");
	if (r > 0) {
		l->data = crypto_sectors_new(&l->spec, mk, kb);
		r = l->data ? 0 : -1;
	}
	crypto_free_secret(mk, kb);
	return r;
}

struct luks *luks_open(luks_read_fn rd, void *opaque, const char *passphrase)
{
	uint8_t raw[LUKS_HEADER_BYTES];
	struct luks *l = calloc(1, sizeof(*l));
	if (!l) {
		crypto_error("out of memory");
		return NULL;
	}
	if (rd(opaque, 0, raw, sizeof(raw)) < 0 || decode(raw, &l->h) < 0 ||
	    check_header(&l->h) < 0 || parse_names(l) < 0 ||
	    (passphrase && unlock(l, passphrase, rd, opaque) < 0)) {
		luks_close(l);
		return NULL;
	}
	return l;
}

void luks_close(struct luks *l)
{
	if (!l)
		return;
	crypto_sectors_free(l->data);
	explicit_bzero(l, sizeof(*l));
	free(l);
}

uint64_t luks_payload_offset(const struct luks *l)
{
	return (uint64_t)l->h.payload_offset * CRYPTO_SECTOR;
}

void luks_encrypt(const struct luks *l, uint64_t sector, uint8_t *buf, size_t len)
{
	crypto_sectors_encrypt(l->data, sector, buf, len);
}

void luks_decrypt(const struct luks *l, uint64_t sector, uint8_t *buf, size_t len)
{
	crypto_sectors_decrypt(l->data, sector, buf, len);
}

void luks_info(const struct luks *l, struct blk_crypto_info *in)
{
	in->format = "luks";
	snprintf(in->cipher_alg, sizeof(in->cipher_alg), "%s", crypto_cipher_name(l->spec.cipher));
	snprintf(in->cipher_mode, sizeof(in->cipher_mode), "%s", crypto_mode_name(l->spec.mode));
	snprintf(in->ivgen_alg, sizeof(in->ivgen_alg), "%s", crypto_ivgen_name(l->spec.ivgen));
	snprintf(in->ivgen_hash_alg, sizeof(in->ivgen_hash_alg), "%s",
		 l->spec.ivgen == CRYPTO_IVGEN_ESSIV ? crypto_hash_name(l->spec.ivgen_hash) : "");
	snprintf(in->hash_alg, sizeof(in->hash_alg), "%s", crypto_hash_name(l->hash));
	snprintf(in->uuid, sizeof(in->uuid), "%s", l->h.uuid);
	in->payload_offset = luks_payload_offset(l);
	in->master_key_iters = l->h.mk_iters;
	for (int i = 0; i < BLK_LUKS_SLOTS; i++) {
		const struct luks_slot *s = &l->h.slots[i];
		in->slots[i].active = s->active == LUKS_SLOT_ENABLED;
		in->slots[i].key_offset = (uint64_t)s->key_offset * CRYPTO_SECTOR;
		in->slots[i].iters = s->iters;
		in->slots[i].stripes = s->stripes;
	}
}

/* LUKS1 creation as QEMU's qcrypto_block_luks_create does it: a random master key and
 * UUID, PBKDF2 iteration counts measured for the requested time, key slot 0 holding the
 * passphrase (its key material anti-forensically split and encrypted), slots 1-7 laid out
 * but disabled. */
#include "block/crypto_luks_int.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct plan {
	struct crypto_spec spec;
	int hash;
	char mode_spec[LUKS_NAME_LEN + 1];
	uint32_t key_bytes;
	uint64_t split_sectors;
	uint64_t iter_time;
};

static int name_of(const char *given, const char *dflt, int (*lookup)(const char *),
		   const char *what)
{
	const char *name = given ? given : dflt;
	int v = lookup(name);
	if (v < 0)
		return crypto_error("Parameter '%s' does not accept value '%s'", what, name);
	return v;
}

/* QEMU's defaults and checks, in its order. */
static int make_plan(const struct blk_encrypt_opts *o, struct plan *p)
{
	memset(p, 0, sizeof(*p));
	p->iter_time = o->iter_time_set ? o->iter_time : 2000;
	if ((p->spec.cipher =
		 name_of(o->cipher_alg, "aes-256", crypto_cipher_lookup, "cipher-alg")) < 0 ||
	    (p->spec.mode = name_of(o->cipher_mode, "xts", crypto_mode_lookup, "cipher-mode")) <
		0 ||
	    (p->spec.ivgen = name_of(o->ivgen_alg, "plain64", crypto_ivgen_lookup, "ivgen-alg")) <
		0 ||
	    (p->hash = name_of(o->hash_alg, "sha256", crypto_hash_lookup, "hash-alg")) < 0)
		return -1;
	const char *ivhash = o->ivgen_hash_alg;
	if (!ivhash && p->spec.ivgen == CRYPTO_IVGEN_ESSIV)
		ivhash = "sha256";
	p->spec.ivgen_hash = -1;
	if (ivhash &&
	    (p->spec.ivgen_hash = name_of(ivhash, NULL, crypto_hash_lookup, "ivgen-hash-alg")) < 0)
		return -1;
	int n = ivhash ? snprintf(p->mode_spec, sizeof(p->mode_spec), "%s-%s:%s",
				  crypto_mode_name(p->spec.mode), crypto_ivgen_name(p->spec.ivgen),
				  ivhash)
		       : snprintf(p->mode_spec, sizeof(p->mode_spec), "%s-%s",
				  crypto_mode_name(p->spec.mode), crypto_ivgen_name(p->spec.ivgen));
	if (n >= (int)sizeof(p->mode_spec))
		return crypto_error("Cipher mode '%s' is too long for LUKS header", p->mode_spec);
	if (p->spec.ivgen == CRYPTO_IVGEN_ESSIV &&
	    crypto_essiv_cipher(p->spec.cipher, p->spec.ivgen_hash) < 0)
		return -1;
	if (p->spec.mode == CRYPTO_MODE_XTS && crypto_cipher_block_len(p->spec.cipher) != 16)
		return crypto_error("Unsupported cipher mode %s", crypto_mode_name(p->spec.mode));
	p->key_bytes = (uint32_t)crypto_spec_key_len(&p->spec);
	p->split_sectors = luks_split_sectors(p->key_bytes, LUKS_STRIPES);
	return 0;
}

int luks_header_size(const struct blk_encrypt_opts *o, uint64_t *size)
{
	struct plan p;
	if (make_plan(o, &p) < 0)
		return -1;
	*size = (LUKS_HEADER_SECTORS + BLK_LUKS_SLOTS * p.split_sectors) * CRYPTO_SECTOR;
	return 0;
}

/* QEMU's iteration count: a second's worth scaled to iter_time, divided as asked, at
 * least LUKS_MIN_ITERS. */
static int count_iters(const struct plan *p, const uint8_t *pw, size_t pwlen, const uint8_t *salt,
		       size_t outlen, unsigned divide, uint32_t *out)
{
	uint64_t per_sec =
	    crypto_pbkdf2_count_iters(p->hash, pw, pwlen, salt, LUKS_SALT_LEN, outlen);
	if (!per_sec)
		return -1;
	if (p->iter_time && per_sec > UINT64_MAX / p->iter_time)
		return crypto_error("PBKDF iterations %llu too large to scale",
				    (unsigned long long)per_sec);
	uint64_t iters = per_sec * p->iter_time / 1000 / divide;
	if (iters > UINT32_MAX)
		return crypto_error("PBKDF iterations %llu larger than %u",
				    (unsigned long long)iters, UINT32_MAX);
	*out = iters < LUKS_MIN_ITERS ? LUKS_MIN_ITERS : (uint32_t)iters;
	return 0;
}

static void uuid_v4(char *out)
{
	uint8_t u[16];
	crypto_random(u, sizeof(u));
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	snprintf(out, LUKS_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
		 u[15]);
}

/* The header fields but the key slot's, the master key digest computed. */
static int fill_header(const struct plan *p, const uint8_t *mk, struct luks_header *h)
{
	h->version = 1;
	const char *cname = crypto_cipher_name(p->spec.cipher);
	snprintf(h->cipher_name, sizeof(h->cipher_name), "%.*s", (int)strcspn(cname, "-"), cname);
	snprintf(h->cipher_mode, sizeof(h->cipher_mode), "%s", p->mode_spec);
	snprintf(h->hash_spec, sizeof(h->hash_spec), "%s", crypto_hash_name(p->hash));
	uuid_v4(h->uuid);
	h->key_bytes = p->key_bytes;
	if (crypto_random(h->mk_salt, LUKS_SALT_LEN) < 0 ||
	    count_iters(p, mk, p->key_bytes, h->mk_salt, LUKS_DIGEST_LEN, 8, &h->mk_iters) < 0 ||
	    crypto_pbkdf2(p->hash, mk, p->key_bytes, h->mk_salt, LUKS_SALT_LEN, h->mk_iters,
			  h->mk_digest, LUKS_DIGEST_LEN) < 0)
		return -1;
	for (int i = 0; i < BLK_LUKS_SLOTS; i++) {
		h->slots[i].active = LUKS_SLOT_DISABLED;
		h->slots[i].key_offset = (uint32_t)(LUKS_HEADER_SECTORS + i * p->split_sectors);
		h->slots[i].stripes = LUKS_STRIPES;
	}
	h->payload_offset = (uint32_t)(LUKS_HEADER_SECTORS + BLK_LUKS_SLOTS * p->split_sectors);
	return 0;
}

/* Key slot 0: the master key split, encrypted with the passphrase's key, written. */
static int store_slot0(const struct plan *p, struct luks_header *h, const char *pw,
		       const uint8_t *mk, luks_write_fn wr, void *opaque)
{
	struct luks_slot *s = &h->slots[0];
	size_t kb = p->key_bytes, splitlen = kb * LUKS_STRIPES;
	const uint8_t *pwb = (const uint8_t *)pw;
	uint8_t *key = malloc(kb), *split = malloc(splitlen);
	int r = key && split ? 0 : crypto_error("out of memory");
	if (r == 0 && (crypto_random(s->salt, LUKS_SALT_LEN) < 0 ||
		       count_iters(p, pwb, strlen(pw), s->salt, kb, 1, &s->iters) < 0 ||
		       crypto_pbkdf2(p->hash, pwb, strlen(pw), s->salt, LUKS_SALT_LEN, s->iters,
				     key, kb) < 0 ||
		       crypto_afsplit_encode(p->hash, kb, LUKS_STRIPES, mk, split) < 0))
		r = -1;
	struct crypto_sectors *c = r == 0 ? crypto_sectors_new(&p->spec, key, kb) : NULL;
	if (r == 0 && !c)
		r = -1;
	if (r == 0) {
		crypto_sectors_encrypt(c, 0, split, splitlen);
		r = wr(opaque, (uint64_t)s->key_offset * CRYPTO_SECTOR, split, splitlen);
	}
	s->active = LUKS_SLOT_ENABLED;
	crypto_sectors_free(c);
	crypto_free_secret(key, kb);
	crypto_free_secret(split, splitlen);
	return r;
}

int luks_create(const struct blk_encrypt_opts *o, const char *passphrase, luks_init_fn init,
		luks_write_fn wr, void *opaque)
{
	struct plan p;
	if (make_plan(o, &p) < 0)
		return -1;
	struct luks_header *h = calloc(1, sizeof(*h));
	uint8_t *mk = malloc(p.key_bytes);
	uint8_t raw[LUKS_HEADER_BYTES];
	int r = h && mk ? 0 : crypto_error("out of memory");
	if (r == 0 && (crypto_random(mk, p.key_bytes) < 0 || fill_header(&p, mk, h) < 0))
		r = -1;
	if (r == 0) /* the master key must suit the cipher before anything is written */
		crypto_sectors_free(crypto_sectors_new(&p.spec, mk, p.key_bytes));
	if (r == 0)
		r = init(opaque, (uint64_t)h->payload_offset * CRYPTO_SECTOR);
	if (r == 0)
		r = store_slot0(&p, h, passphrase, mk, wr, opaque);
	if (r == 0) {
		luks_header_encode(h, raw);
		r = wr(opaque, 0, raw, sizeof(raw));
	}
	crypto_free_secret(mk, p.key_bytes);
	crypto_free_secret(h, sizeof(*h));
	return r;
}

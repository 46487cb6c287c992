/* LUKS1 internals shared by crypto_luks.c (open) and crypto_luks_create.c. */
#ifndef KITE_BLOCK_CRYPTO_LUKS_INT_H
#define KITE_BLOCK_CRYPTO_LUKS_INT_H

#include "block/crypto.h"
#include "block/crypto_luks.h"

#define LUKS_HEADER_BYTES   592 /* on disk, big endian */
#define LUKS_NAME_LEN	    32
#define LUKS_DIGEST_LEN	    20
#define LUKS_SALT_LEN	    32
#define LUKS_UUID_LEN	    40
#define LUKS_STRIPES	    4000
#define LUKS_SLOT_ENABLED   0x00ac71f3u
#define LUKS_SLOT_DISABLED  0x0000deadu
#define LUKS_HEADER_SECTORS 8 /* key material starts at 4096 */
#define LUKS_MIN_ITERS	    1000
/* kite's bound on PBKDF2 iterations it runs to unlock (QEMU has none): about ten times what
 * qemu-img's default 2 s of PBKDF2 gives on today's CPUs, and a minute of work at most. */
#define LUKS_MAX_ITERS 100000000u

struct luks_slot {
	uint32_t active, iters;
	uint8_t salt[LUKS_SALT_LEN];
	uint32_t key_offset; /* sectors */
	uint32_t stripes;
};

struct luks_header {
	uint16_t version;
	char cipher_name[LUKS_NAME_LEN + 1], cipher_mode[LUKS_NAME_LEN + 1];
	char hash_spec[LUKS_NAME_LEN + 1];
	uint32_t payload_offset; /* sectors */
	uint32_t key_bytes;
	uint8_t mk_digest[LUKS_DIGEST_LEN], mk_salt[LUKS_SALT_LEN];
	uint32_t mk_iters;
	char uuid[LUKS_UUID_LEN + 1];
	struct luks_slot slots[BLK_LUKS_SLOTS];
};

struct luks {
	struct luks_header h;
	struct crypto_spec spec;
	int hash;		     /* PBKDF2 and AF splitter hash */
	struct crypto_sectors *data; /* keyed with the master key; NULL: header only */
};

/* The on-disk bytes of a header and back. */
void luks_header_encode(const struct luks_header *h, uint8_t *out);
/* Sectors a slot's key material takes (the key times its stripes, rounded as cryptsetup
 * rounds it). */
uint64_t luks_split_sectors(uint32_t key_bytes, uint32_t stripes);

#endif

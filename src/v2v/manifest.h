/* An OVA's manifest (NAME.mf): one line per file, "SHA1(disk1.vmdk)= <hex>" or
 * "SHA256(disk1.vmdk)= <hex>", as VMware's ovftool and VirtualBox write it. Digests are
 * computed with nettle while a file streams past (manifest_hash_*). */
#ifndef KITE_V2V_MANIFEST_H
#define KITE_V2V_MANIFEST_H

#include <nettle/sha1.h>
#include <nettle/sha2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum manifest_algo { MF_SHA1, MF_SHA256 };

struct manifest_line {
	char name[256];
	enum manifest_algo algo;
	uint8_t digest[SHA256_DIGEST_SIZE];
};

struct manifest {
	size_t n;
	struct manifest_line *l;
};

/* Parses the manifest's text; `where` begins messages (a line that is not a digest, an
 * algorithm kite does not know, a file listed twice). Returns 0 or -1 (reported). */
int manifest_parse(const char *text, size_t len, const char *where, struct manifest *m);
void manifest_free(struct manifest *m);
/* The line for `name`, or NULL when the manifest does not list it. */
const struct manifest_line *manifest_find(const struct manifest *m, const char *name);

struct manifest_hash {
	enum manifest_algo algo;
	union {
		struct sha1_ctx sha1;
		struct sha256_ctx sha256;
	} u;
};
void manifest_hash_init(struct manifest_hash *h, enum manifest_algo algo);
void manifest_hash_update(struct manifest_hash *h, const void *buf, size_t len);
/* Compares with the line's digest: 0, or -1 with "checksum of NAME does not match". */
int manifest_hash_check(struct manifest_hash *h, const struct manifest_line *l, const char *where);

#endif

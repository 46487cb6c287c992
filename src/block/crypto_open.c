/* What the encrypted formats (luks, qcow2) share when they open an image: QEMU's error
 * wording, the passphrase from the image's key-secret option, the LUKS header. */
#include "block/block_int.h"
#include "block/crypto.h"
#include "block/crypto_luks.h"
#include "block/secret.h"

#include <stdio.h>

static __thread char prefix[4096 + 32];

void blk_crypto_errors_begin(struct blk *b)
{
	const char *name = b->open_name ? b->open_name : b->filename;
	snprintf(prefix, sizeof(prefix), "Could not open '%s': ", name);
	crypto_set_error_prefix(prefix);
}

void blk_crypto_errors_end(void)
{
	crypto_set_error_prefix(NULL);
}

char *blk_crypto_passphrase(struct blk *b, const char *optprefix)
{
	if (!b->key_secret) {
		crypto_error("Parameter '%skey-secret' is required for cipher", optprefix);
		return NULL;
	}
	return blk_secret_passphrase(b->key_secret);
}

struct luks *blk_luks_open(struct blk *b, const char *optprefix, luks_read_fn rd, void *opaque)
{
	char *pw = NULL;
	if (!(b->flags & BLK_O_NO_IO) && !(pw = blk_crypto_passphrase(b, optprefix)))
		return NULL;
	struct luks *l = luks_open(rd, opaque, pw);
	blk_secret_free(pw);
	return l;
}

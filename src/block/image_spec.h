/* Image names beyond a plain path, as QEMU takes them: "file:PATH", "json:{...}" and
 * --image-opts strings. Parsed by blk_open (and for backing file names), not by callers. */
#ifndef KITE_BLOCK_IMAGE_SPEC_H
#define KITE_BLOCK_IMAGE_SPEC_H

#include <stdbool.h>

struct blk_spec {
	char *path;	      /* the local file */
	char *fmt;	      /* the format the name asks for; NULL: probe */
	char *key_secret;     /* the secret unlocking an encrypted image (qcow2's
			       * encrypt.key-secret, luks's key-secret); NULL: none */
	char *encrypt_format; /* qcow2's encrypt.format ("luks", "aes"); NULL: any */
};

/* Splits `name` (an --image-opts string when `image_opts`) into path and format. */
int blk_spec_parse(const char *name, bool image_opts, struct blk_spec *out);
/* True for names that are not plain paths ("json:", "file:"). */
bool blk_spec_is_special(const char *name);
void blk_spec_free(struct blk_spec *s);

#endif

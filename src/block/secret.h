/* Secrets, as QEMU's `--object secret,id=ID,data=...` defines them: the passphrases (and
 * qcow AES keys) of encrypted images, named by the images' key-secret options. They live
 * for the process, are never printed, and are wiped by blk_secrets_clear(). */
#ifndef KITE_BLOCK_SECRET_H
#define KITE_BLOCK_SECRET_H

#include <stddef.h>
#include <stdint.h>

/* Defines the object `def` ("secret,id=ID,data=TEXT" or file=PATH, format=raw|base64,
 * keyid=ID,iv=BASE64 for data encrypted with another secret), as qemu-img --object does,
 * with its messages. kite knows no other object type. */
int blk_object_add(const char *def);

/* The secret `id` as a passphrase: valid UTF-8 without NUL bytes, NUL-terminated, to free
 * with blk_secret_free(). NULL with QEMU's error ("No secret with id 'x'"). */
char *blk_secret_passphrase(const char *id);
void blk_secret_free(char *passphrase);

/* Forgets (and wipes) every secret. */
void blk_secrets_clear(void);

#endif

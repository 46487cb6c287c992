/* LUKS1 headers (the LUKS on-disk format specification 1.2, as QEMU and cryptsetup write
 * it): the volume header, its eight key slots and their key material, wherever they live
 * (the start of a -f luks image, the clusters a qcow2 crypto header extension points to).
 * The caller supplies the I/O, with offsets relative to the start of the LUKS header. */
#ifndef KITE_BLOCK_CRYPTO_LUKS_H
#define KITE_BLOCK_CRYPTO_LUKS_H

#include "block/block.h"

#include <stddef.h>
#include <stdint.h>

/* -1 with an error on failure */
typedef int (*luks_read_fn)(void *opaque, uint64_t off, void *buf, size_t len);
typedef int (*luks_write_fn)(void *opaque, uint64_t off, const void *buf, size_t len);
/* Reserves `len` bytes of header space (zeroed) before anything is written. */
typedef int (*luks_init_fn)(void *opaque, uint64_t len);

struct luks;

/* Reads and checks the header; with a passphrase (NULL: header only, for info) unlocks
 * the master key from the first key slot it opens, as QEMU tries them. Errors are QEMU's
 * ("Invalid password, cannot unlock any keyslot", "Keyslot 3 is corrupted ..."). */
struct luks *luks_open(luks_read_fn rd, void *opaque, const char *passphrase);
void luks_close(struct luks *l);

/* Where the encrypted data starts, in bytes from the header. */
uint64_t luks_payload_offset(const struct luks *l);
/* In place, `len` a multiple of 512, `sector` the number of the first 512-byte sector
 * (the IV); only on a luks opened with its passphrase. */
void luks_encrypt(const struct luks *l, uint64_t sector, uint8_t *buf, size_t len);
void luks_decrypt(const struct luks *l, uint64_t sector, uint8_t *buf, size_t len);
void luks_info(const struct luks *l, struct blk_crypto_info *info);

/* The header's size (payload offset) for these options, or an error for options QEMU
 * refuses (unknown names, impossible combinations). */
int luks_header_size(const struct blk_encrypt_opts *o, uint64_t *size);
/* Writes a new header with key slot 0 holding `passphrase`: init reserves the header
 * space, then the key material and the header are written. */
int luks_create(const struct blk_encrypt_opts *o, const char *passphrase, luks_init_fn init,
		luks_write_fn wr, void *opaque);

/* ---- for drivers (crypto_open.c) ---- */
/* Errors of the crypto layer named after the image being opened, as QEMU words them
 * ("Could not open 'x': ..."): set on entry of a driver's open, cleared on its exit. */
void blk_crypto_errors_begin(struct blk *b);
void blk_crypto_errors_end(void);
/* The passphrase of image b (its key-secret option, `optprefix` naming it in the error
 * when missing: "encrypt." for qcow2). To free with blk_secret_free(). */
char *blk_crypto_passphrase(struct blk *b, const char *optprefix);
/* Opens the LUKS header that `rd` reads: unlocked with b's passphrase, or header only when
 * b is opened with BLK_O_NO_IO. */
struct luks *blk_luks_open(struct blk *b, const char *optprefix, luks_read_fn rd, void *opaque);

#endif

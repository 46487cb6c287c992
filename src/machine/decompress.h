/* Decompression of a bzImage payload. Linux appends the uncompressed size as a little-endian
 * 32-bit word after the compressed stream (gzip's own trailer ends the same way), so the output
 * buffer is sized exactly and a stream that yields more or less is reported as corrupt. */
#ifndef KITE_MACHINE_DECOMPRESS_H
#define KITE_MACHINE_DECOMPRESS_H

#include <stddef.h>
#include <stdint.h>

#define DECOMPRESS_MAX_OUT (1ULL << 30) /* no kernel is larger; refuses hostile size fields */

enum compression {
	COMP_UNKNOWN,
	COMP_GZIP,
	COMP_XZ,
	COMP_ZSTD,
	COMP_LZ4,
	COMP_BZIP2,
	COMP_LZMA,
	COMP_LZO,
};

/* Format by magic number. */
enum compression compression_detect(const uint8_t *in, size_t len);
const char *compression_name(enum compression c);

/* Decompresses `in` (a whole payload, size trailer included) into a malloc'd buffer of
 * *out_len bytes. Returns 0, or -1 with an error naming `name` (unsupported format, corrupt or
 * truncated data, size mismatch, out of memory). */
int decompress_payload(const uint8_t *in, size_t len, const char *name, uint8_t **out,
		       size_t *out_len);

/* One decoder per library. Each decodes one stream from `in` into `out` (capacity `cap`) and
 * stores the number of bytes produced; returns 0, or -1 with an error naming `name`. Output that
 * does not fit in `cap` is an error. */
int decompress_gzip(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *produced,
		    const char *name);
int decompress_xz(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *produced,
		  const char *name);
int decompress_zstd(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *produced,
		    const char *name);
int decompress_lz4(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *produced,
		   const char *name);

#endif

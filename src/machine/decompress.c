#include "machine/decompress.h"
#include "util/err.h"
#include "machine/boot_bytes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	enum compression c;
	const char *name;
	const uint8_t *magic;
	size_t len;
} formats[] = {
    {COMP_GZIP, "gzip", (const uint8_t *)"\x1f\x8b", 2},
    {COMP_XZ, "xz",
     (const uint8_t *)"\xfd"
		      "7zXZ\0",
     6},
    {COMP_ZSTD, "zstd", (const uint8_t *)"\x28\xb5\x2f\xfd", 4},
    {COMP_LZ4, "lz4", (const uint8_t *)"\x02\x21\x4c\x18", 4},
    {COMP_BZIP2, "bzip2", (const uint8_t *)"BZh", 3},
    {COMP_LZMA, "lzma", (const uint8_t *)"\x5d\x00\x00", 3},
    {COMP_LZO, "lzo", (const uint8_t *)"\x89LZO", 4},
};

enum compression compression_detect(const uint8_t *in, size_t len)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (len >= formats[i].len && memcmp(in, formats[i].magic, formats[i].len) == 0)
			return formats[i].c;
	return COMP_UNKNOWN;
}

const char *compression_name(enum compression c)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (formats[i].c == c)
			return formats[i].name;
	return "unknown";
}

int decompress_payload(const uint8_t *in, size_t len, const char *name, uint8_t **out,
		       size_t *out_len)
{
	enum compression c = compression_detect(in, len);
	if (c == COMP_UNKNOWN)
		return kite_error("%s: unknown compression of the kernel payload", name);
	if (c == COMP_BZIP2 || c == COMP_LZMA || c == COMP_LZO)
		return kite_error("%s: %s-compressed kernels are not supported (use xz, zstd, gzip "
				  "or lz4)",
				  name, compression_name(c));
	if (len < 8)
		return kite_error("%s: truncated kernel payload (%zu bytes)", name, len);
	size_t size = get_le32(in + len - 4);
	if (size == 0 || size > DECOMPRESS_MAX_OUT)
		return kite_error("%s: implausible uncompressed kernel size %zu", name, size);
	/* One spare byte: a stream that decodes to more than the recorded size shows up. */
	uint8_t *buf = malloc(size + 1);
	if (!buf)
		return kite_error_errno(ENOMEM, "%s: %zu MiB for the decompressed kernel", name,
					size >> 20);
	size_t got = 0;
	int r;
	switch (c) {
	case COMP_GZIP: /* the size word is gzip's own ISIZE trailer: part of the stream */
		r = decompress_gzip(in, len, buf, size + 1, &got, name);
		break;
	case COMP_XZ:
		r = decompress_xz(in, len - 4, buf, size + 1, &got, name);
		break;
	case COMP_ZSTD:
		r = decompress_zstd(in, len - 4, buf, size + 1, &got, name);
		break;
	default:
		r = decompress_lz4(in, len - 4, buf, size + 1, &got, name);
		break;
	}
	if (r == 0 && got != size)
		r = kite_error("%s: corrupt %s payload: %zu bytes decompressed, %zu expected", name,
			       compression_name(c), got, size);
	if (r < 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	*out_len = size;
	return 0;
}

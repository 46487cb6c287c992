#include "machine/decompress.h"
#include "util/err.h"
#include "machine/boot_bytes.h"

#include <lz4.h>

/* The kernel uses lz4's legacy frame: a magic, then blocks of [le32 compressed size][data], each
 * decoding to at most 8 MiB. A further magic may start a concatenated frame. */
#define LZ4_LEGACY_MAGIC 0x184C2102u
#define LZ4_LEGACY_BLOCK (8u << 20)

int decompress_lz4(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *produced,
		   const char *name)
{
	size_t pos = 4, opos = 0;
	*produced = 0;
	if (len < 4 || get_le32(in) != LZ4_LEGACY_MAGIC)
		return kite_error("%s: not an lz4 legacy frame", name);
	while (pos < len) {
		if (len - pos < 4)
			return kite_error("%s: truncated lz4 payload", name);
		uint32_t bsize = get_le32(in + pos);
		pos += 4;
		if (bsize == LZ4_LEGACY_MAGIC)
			continue;
		if (bsize == 0 || bsize > len - pos ||
		    bsize > (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK))
			return kite_error("%s: corrupt lz4 payload: block of %u bytes", name,
					  bsize);
		size_t room = cap - opos < LZ4_LEGACY_BLOCK ? cap - opos : LZ4_LEGACY_BLOCK;
		int r = LZ4_decompress_safe((const char *)in + pos, (char *)out + opos, (int)bsize,
					    (int)room);
		if (r < 0)
			return kite_error("%s: corrupt lz4 payload at offset %zu", name, pos);
		opos += (size_t)r;
		pos += bsize;
	}
	*produced = opos;
	return 0;
}

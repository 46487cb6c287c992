#include "machine/decompress.h"
#include "util/err.h"

#include <lzma.h>

int decompress_xz(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *produced,
		  const char *name)
{
	lzma_stream s = LZMA_STREAM_INIT;
	if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK)
		return kite_error("%s: cannot initialise liblzma", name);
	s.next_in = in;
	s.avail_in = len;
	s.next_out = out;
	s.avail_out = cap;
	lzma_ret r;
	do
		r = lzma_code(&s, LZMA_FINISH);
	while (r == LZMA_OK && s.avail_out > 0 && s.avail_in > 0);
	*produced = cap - s.avail_out;
	lzma_end(&s);
	if (r == LZMA_STREAM_END)
		return 0;
	if (s.avail_out == 0)
		return kite_error("%s: corrupt xz payload: larger than its recorded size", name);
	if (r == LZMA_OK || r == LZMA_BUF_ERROR)
		return kite_error("%s: truncated xz payload", name);
	return kite_error("%s: corrupt xz payload (liblzma error %d)", name, (int)r);
}

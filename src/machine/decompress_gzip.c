#include "machine/decompress.h"
#include "util/err.h"

#include <string.h>
#include <zlib.h>

int decompress_gzip(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *produced,
		    const char *name)
{
	z_stream s;
	memset(&s, 0, sizeof(s));
	if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) /* 16: expect a gzip wrapper */
		return kite_error("%s: cannot initialise zlib", name);
	int r = Z_OK;
	/* zlib counts in uInt: feed and drain in steps that fit. */
	size_t in_off = 0, out_off = 0;
	while (r == Z_OK) {
		s.next_in = (Bytef *)(in + in_off);
		size_t in_step = len - in_off > UINT32_MAX ? UINT32_MAX : len - in_off;
		size_t out_step = cap - out_off > UINT32_MAX ? UINT32_MAX : cap - out_off;
		s.avail_in = (uInt)in_step;
		s.next_out = out + out_off;
		s.avail_out = (uInt)out_step;
		r = inflate(&s, Z_FINISH);
		in_off += in_step - s.avail_in;
		out_off += out_step - s.avail_out;
		if (r == Z_BUF_ERROR && in_off < len && out_off < cap)
			r = Z_OK; /* a step boundary, not the end */
	}
	inflateEnd(&s);
	*produced = out_off;
	if (r == Z_STREAM_END)
		return 0;
	if (r == Z_BUF_ERROR && out_off == cap)
		return kite_error("%s: corrupt gzip payload: larger than its recorded size", name);
	if (r == Z_BUF_ERROR)
		return kite_error("%s: truncated gzip payload", name);
	return kite_error("%s: corrupt gzip payload: %s", name, s.msg ? s.msg : "inflate failed");
}

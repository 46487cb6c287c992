#include "vmm/decompress.h"
#include "util/err.h"

#include <zstd.h>

int decompress_zstd(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *produced,
		    const char *name)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	if (!d)
		return kite_error("%s: cannot initialise libzstd", name);
	/* Kernels are compressed with --ultra -22: allow windows up to 2^31. */
	ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 31);
	ZSTD_inBuffer ib = {in, len, 0};
	ZSTD_outBuffer ob = {out, cap, 0};
	size_t r;
	for (;;) {
		size_t in_before = ib.pos, out_before = ob.pos;
		r = ZSTD_decompressStream(d, &ob, &ib);
		if (ZSTD_isError(r) || r == 0 || ob.pos == ob.size)
			break;
		if (ib.pos == in_before && ob.pos == out_before)
			break; /* input used up (or stuck) before the frame ended */
	}
	ZSTD_freeDCtx(d);
	*produced = ob.pos;
	if (ZSTD_isError(r))
		return kite_error("%s: corrupt zstd payload: %s", name, ZSTD_getErrorName(r));
	if (r == 0)
		return 0;
	if (ob.pos == ob.size)
		return kite_error("%s: corrupt zstd payload: larger than its recorded size", name);
	return kite_error("%s: truncated zstd payload", name);
}

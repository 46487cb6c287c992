#include "machine/decompress.h"
#include "util/err.h"

#include <zstd.h>
#include <zstd_errors.h>

/* One call into the exact-size output buffer: that buffer is the window, so no window size
 * limit applies (kernels use --ultra -22) and nothing else is allocated for it. */
int decompress_zstd(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *produced,
		    const char *name)
{
	*produced = 0;
	ZSTD_DCtx *d = ZSTD_createDCtx();
	if (!d)
		return kite_error("%s: cannot initialise libzstd", name);
	size_t r = ZSTD_decompressDCtx(d, out, cap, in, len);
	ZSTD_freeDCtx(d);
	if (!ZSTD_isError(r)) {
		*produced = r;
		return 0;
	}
	if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
		return kite_error("%s: corrupt zstd payload: larger than its recorded size", name);
	if (ZSTD_getErrorCode(r) == ZSTD_error_srcSize_wrong)
		return kite_error("%s: truncated zstd payload", name);
	return kite_error("%s: corrupt zstd payload: %s", name, ZSTD_getErrorName(r));
}

#include "guestfs/image.h"
#include "block/block.h"
#include "util/err.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int im_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
	return blk_pread(opaque, buf, len, off);
}

static int im_pwrite(void *opaque, const void *buf, size_t len, uint64_t off)
{
	return blk_pwrite(opaque, buf, len, off);
}

static int im_flush(void *opaque)
{
	return blk_flush(opaque);
}

int gimage_open(struct gimage *im, const char *path, const char *format, bool write)
{
	memset(im, 0, sizeof(*im));
	if (write) {
		/* root may write anything; a file without write permission bits is still meant
		 * to be read-only */
		struct stat st;
		if (stat(path, &st) < 0)
			return kite_error_errno(errno, "%s", path);
		if (access(path, W_OK) < 0 || !(st.st_mode & 0222))
			return kite_error("%s: the image is read-only: refusing to write", path);
	}
	im->blk = blk_open(path, format, (write ? BLK_O_RDWR : BLK_O_RDONLY) | BLK_O_NO_PROBE_WARN);
	if (!im->blk)
		return -1;
	im->dev.opaque = im->blk;
	im->dev.pread = im_pread;
	im->dev.pwrite = write ? im_pwrite : NULL;
	im->dev.flush = write ? im_flush : NULL;
	im->dev.size = blk_size(im->blk);
	return 0;
}

int gimage_close(struct gimage *im)
{
	int ret = 0;
	if (im->blk) {
		if (im->dev.flush && blk_flush(im->blk) < 0)
			ret = -1;
		blk_close(im->blk);
		im->blk = NULL;
	}
	return ret;
}

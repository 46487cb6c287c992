#include "guestfs/image.h"
#include "block/block.h"
#include "guestfs/fault.h"
#include "util/err.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int im_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
	struct gimage *im = opaque;
	if (gfs_fault_now(GFS_FAULT_READ))
		return kite_error("read error (injected by a test)");
	return blk_pread(im->blk, buf, len, off);
}

static int im_pwrite(void *opaque, const void *buf, size_t len, uint64_t off)
{
	struct gimage *im = opaque;
	if (gfs_fault_now(GFS_FAULT_WRITE))
		return kite_error("write error (injected by a test)");
	im->dirty = true;
	return blk_pwrite(im->blk, buf, len, off);
}

static int im_flush(void *opaque)
{
	struct gimage *im = opaque;
	if (gfs_fault_now(GFS_FAULT_FLUSH))
		return kite_error("flush error (injected by a test)");
	if (blk_flush(im->blk) < 0)
		return -1;
	im->dirty = false;
	return 0;
}

static int open_flags(struct gimage *im, const char *path, const char *format, bool write,
		      unsigned flags)
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
	im->blk = blk_open(path, format,
			   (write ? BLK_O_RDWR : BLK_O_RDONLY) | BLK_O_NO_PROBE_WARN | flags);
	if (!im->blk)
		return -1;
	im->dev.opaque = im;
	im->dev.pread = im_pread;
	im->dev.pwrite = write ? im_pwrite : NULL;
	im->dev.flush = write ? im_flush : NULL;
	im->dev.size = blk_size(im->blk);
	return 0;
}

int gimage_open(struct gimage *im, const char *path, const char *format, bool write)
{
	return open_flags(im, path, format, write, 0);
}

int gimage_open_shared(struct gimage *im, const char *path, const char *format)
{
	return open_flags(im, path, format, false, BLK_O_SHARE);
}

int gimage_close(struct gimage *im)
{
	int ret = 0;
	if (im->blk) {
		if (im->dirty && im_flush(im) < 0)
			ret = -1;
		blk_close(im->blk);
		im->blk = NULL;
	}
	return ret;
}

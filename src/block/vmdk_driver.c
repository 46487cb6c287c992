/* The read-only vmdk reader (vmdk.c) as a block layer driver. */
#include "block/block_int.h"
#include "block/vmdk.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

static int vmdk_drv_probe(const uint8_t *buf, size_t len, const char *filename)
{
	return vmdk_probe(buf, len) ? 100 : 0;
}

static int vmdk_drv_open(struct blk *b, struct blk_open_ctx *ctx)
{
	if (b->flags & BLK_O_RDWR)
		return kite_error("%s: vmdk images can only be opened read-only", b->filename);
	struct vmdk *v = vmdk_open_fd(b->fd, b->filename);
	if (!v)
		return -1;
	b->opaque = v;
	b->size = vmdk_size(v);
	return 0;
}

static int vmdk_drv_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	return vmdk_pread(b->opaque, buf, len, off);
}

static int vmdk_drv_block_status(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum,
				 unsigned *flags, uint64_t *host_off)
{
	uint64_t host;
	int st = vmdk_block_status(b->opaque, off, len, pnum, &host);
	if (st < 0)
		return -1;
	switch (st) {
	case VMDK_DATA:
		*flags = BLK_STATUS_DATA | BLK_STATUS_ALLOCATED;
		if (host != UINT64_MAX)
			*flags |= BLK_STATUS_OFFSET_VALID;
		else
			*flags |= BLK_STATUS_COMPRESSED;
		break;
	case VMDK_ZERO:
		*flags = BLK_STATUS_ZERO | BLK_STATUS_ALLOCATED;
		break;
	default:
		*flags = 0;
		break;
	}
	if (host_off)
		*host_off = host == UINT64_MAX ? 0 : host;
	return 0;
}

static void vmdk_drv_close(struct blk *b)
{
	vmdk_close(b->opaque);
	b->opaque = NULL;
}

static int vmdk_drv_info(struct blk *b, struct blk_info *info)
{
	struct vmdk *v = b->opaque;
	info->vmdk_cid = vmdk_cid(v);
	info->vmdk_parent_cid = vmdk_parent_cid(v);
	snprintf(info->vmdk_create_type, sizeof(info->vmdk_create_type), "%s", vmdk_create_type(v));
	return 0;
}

/* qemu-img info's format-specific data: QEMU's ImageInfoSpecificVmdk, one extent. */
static json_t *vmdk_drv_info_json(struct blk *b, const struct blk_info *in)
{
	json_t *data = json_object();
	bool compressed = !strcmp(in->vmdk_create_type, "streamOptimized");
	json_object_set_new(data, "cid", json_integer(in->vmdk_cid));
	json_object_set_new(data, "parent-cid", json_integer(in->vmdk_parent_cid));
	json_object_set_new(data, "create-type", json_string(in->vmdk_create_type));
	json_t *ext = json_object();
	if (compressed)
		json_object_set_new(ext, "compressed", json_true());
	json_object_set_new(ext, "virtual-size", json_integer((json_int_t)in->virtual_size));
	json_object_set_new(ext, "filename", json_string(blk_filename(b)));
	json_object_set_new(ext, "cluster-size", json_integer(in->cluster_size));
	json_object_set_new(ext, "format", json_string(""));
	json_t *list = json_array();
	json_array_append_new(list, ext);
	json_object_set_new(data, "extents", list);
	return data;
}

static uint32_t vmdk_drv_cluster_size(const struct blk *b)
{
	return vmdk_grain_size(b->opaque);
}

/* As QEMU: grains must lie inside the file, nothing to repair, and a bad grain fails the
 * check itself. */
static int vmdk_drv_check(struct blk *b, unsigned fix, struct blk_check_result *r)
{
	if (vmdk_check(b->opaque, &r->corruptions) < 0)
		return -1;
	if (r->corruptions)
		r->failed = "a grain lies beyond the end of the file";
	return 0;
}

static const struct blk_driver vmdk_driver = {
    .name = "vmdk",
    .probe = vmdk_drv_probe,
    .open = vmdk_drv_open,
    .read = vmdk_drv_read,
    .block_status = vmdk_drv_block_status,
    .close = vmdk_drv_close,
    .info = vmdk_drv_info,
    .info_json = vmdk_drv_info_json,
    .check = vmdk_drv_check,
    .cluster_size = vmdk_drv_cluster_size,
};
BLK_DRIVER(vmdk_driver)

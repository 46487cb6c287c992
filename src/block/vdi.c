/* VirtualBox's VDI images, read only (enough to import a VirtualBox disk): a header at 0x40,
 * a map of 32-bit entries, one per 1 MiB block, giving each block's place among the data
 * blocks or saying it reads as zeros. Dynamic and fixed images are the same to a reader. */
#include "block/block_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define VDI_SIGNATURE	   0xbeda107fu
#define VDI_VERSION_1_1	   0x00010001u
#define VDI_HEADER_AT	   0x40u
#define VDI_BLOCK_SIZE	   (1u << 20) /* the only block size VirtualBox and QEMU write */
#define VDI_UNALLOCATED	   0xffffffffu
#define VDI_DISCARDED	   0xfffffffeu
#define VDI_MAX_BLOCKS	   (0x3fffffffu) /* QEMU's limit: a map of at most 4 GiB */
#define VDI_TYPE_DYNAMIC   1u
#define VDI_TYPE_STATIC	   2u
#define VDI_MIN_HEADER_END 0x188u /* through blocks_allocated */

struct vdi {
	uint32_t *map; /* host order */
	uint32_t blocks;
	uint64_t data_off;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int vdi_probe(const uint8_t *buf, size_t len, const char *filename)
{
	if (len < VDI_HEADER_AT + 8)
		return 0;
	return le32(buf + VDI_HEADER_AT) == VDI_SIGNATURE ? 100 : 0;
}

/* The header's fields, checked as QEMU checks them before it trusts the map. */
static int parse_header(struct blk *b, const uint8_t *h, uint64_t fsize, struct vdi *v,
			uint64_t *map_off, uint64_t *size)
{
	const uint8_t *x = h + VDI_HEADER_AT;
	const char *fn = b->filename;
	if (le32(x) != VDI_SIGNATURE)
		return kite_error("%s: not a VDI image", fn);
	if (le32(x + 4) != VDI_VERSION_1_1)
		return kite_error("%s: unsupported VDI image (version %u.%u)", fn,
				  le32(x + 4) >> 16, le32(x + 4) & 0xffff);
	uint32_t type = le32(x + 0xc);
	if (type != VDI_TYPE_DYNAMIC && type != VDI_TYPE_STATIC)
		return kite_error("%s: unsupported VDI image type %u", fn, type);
	*map_off = le32(x + 0x114);
	v->data_off = le32(x + 0x118);
	uint32_t sector = le32(x + 0x128);
	*size = le64(x + 0x130);
	uint32_t block = le32(x + 0x138), extra = le32(x + 0x13c);
	v->blocks = le32(x + 0x140);
	if (sector != 512)
		return kite_error("%s: unsupported VDI image (sector size %u is not 512)", fn,
				  sector);
	if (block != VDI_BLOCK_SIZE || extra != 0)
		return kite_error("%s: unsupported VDI image (block size %u, extra %u)", fn, block,
				  extra);
	if (*map_off % 512 || v->data_off % 512)
		return kite_error("%s: invalid VDI image (map or data offset not on a sector)", fn);
	if (v->blocks > VDI_MAX_BLOCKS || *size > (uint64_t)v->blocks * VDI_BLOCK_SIZE)
		return kite_error("%s: invalid VDI image (%u blocks for %llu bytes)", fn, v->blocks,
				  (unsigned long long)*size);
	if (*map_off + (uint64_t)v->blocks * 4 > fsize)
		return kite_error("%s: invalid VDI image (the block map runs past the end of the "
				  "file)",
				  fn);
	return 0;
}

static int vdi_open(struct blk *b, struct blk_open_ctx *ctx)
{
	if (b->flags & BLK_O_RDWR)
		return kite_error("%s: VDI images can only be opened read-only", b->filename);
	uint8_t h[VDI_MIN_HEADER_END] = {0};
	uint64_t fsize, map_off = 0, size = 0;
	if (blk_file_size(b->fd, &fsize, b->filename) < 0)
		return -1;
	if (fsize < sizeof(h))
		return kite_error("%s: file too short for a VDI header", b->filename);
	if (blk_file_pread(b->fd, h, sizeof(h), 0, b->filename) < 0)
		return -1;
	struct vdi *v = calloc(1, sizeof(*v));
	if (!v)
		return kite_error("out of memory");
	if (parse_header(b, h, fsize, v, &map_off, &size) < 0)
		goto err;
	v->map = malloc(v->blocks ? (size_t)v->blocks * 4 : 1);
	if (!v->map) {
		kite_error("out of memory");
		goto err;
	}
	if (blk_file_pread(b->fd, v->map, (size_t)v->blocks * 4, map_off, b->filename) < 0)
		goto err;
	for (uint32_t i = 0; i < v->blocks; i++)
		v->map[i] = le32((const uint8_t *)&v->map[i]);
	b->opaque = v;
	b->size = size;
	return 0;
err:
	free(v->map);
	free(v);
	return -1;
}

static void vdi_close(struct blk *b)
{
	struct vdi *v = b->opaque;
	if (v) {
		free(v->map);
		free(v);
	}
}

/* Where block `i` lies in the file; false when it reads as zeros. */
static bool block_place(const struct vdi *v, uint64_t i, uint64_t *host)
{
	uint32_t e = v->map[i];
	if (e == VDI_UNALLOCATED || e == VDI_DISCARDED)
		return false;
	*host = v->data_off + (uint64_t)e * VDI_BLOCK_SIZE;
	return true;
}

static int vdi_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	const struct vdi *v = b->opaque;
	uint8_t *p = buf;
	while (len) {
		uint64_t i = off / VDI_BLOCK_SIZE, in = off % VDI_BLOCK_SIZE, host;
		size_t n = VDI_BLOCK_SIZE - in < len ? (size_t)(VDI_BLOCK_SIZE - in) : len;
		if (!block_place(v, i, &host))
			memset(p, 0, n);
		else if (blk_file_pread(b->fd, p, n, host + in, b->filename) < 0)
			return -1;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int vdi_block_status(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum,
			    unsigned *flags, uint64_t *host_off)
{
	const struct vdi *v = b->opaque;
	uint64_t i = off / VDI_BLOCK_SIZE, host = 0;
	bool data = block_place(v, i, &host);
	uint64_t n = VDI_BLOCK_SIZE - off % VDI_BLOCK_SIZE;
	/* contiguous blocks of the same kind (and, for data, following each other in the file)
	 * make one run */
	for (uint64_t j = i + 1; n < len && j < v->blocks; j++) {
		uint64_t h2;
		bool d2 = block_place(v, j, &h2);
		if (d2 != data || (data && h2 != host + (j - i) * VDI_BLOCK_SIZE))
			break;
		n += VDI_BLOCK_SIZE;
	}
	*pnum = n < len ? n : len;
	*host_off = data ? host + off % VDI_BLOCK_SIZE : 0;
	*flags = BLK_STATUS_ALLOCATED | (data ? BLK_STATUS_OFFSET_VALID : BLK_STATUS_ZERO);
	if (!data)
		return 0;
	/* as QEMU asks its file layer: a hole in the file reads as zeros */
	bool zero;
	if (blk_file_status(b->fd, *host_off, *pnum, pnum, &zero, b->filename) < 0)
		return -1;
	*flags |= zero ? BLK_STATUS_ZERO | BLK_STATUS_DATA : BLK_STATUS_DATA;
	return 0;
}

static uint32_t vdi_cluster_size(const struct blk *b)
{
	return VDI_BLOCK_SIZE;
}

static const struct blk_driver vdi_driver = {
    .name = "vdi",
    .probe = vdi_probe,
    .open = vdi_open,
    .read = vdi_read,
    .block_status = vdi_block_status,
    .close = vdi_close,
    .cluster_size = vdi_cluster_size,
};
BLK_DRIVER(vdi_driver)

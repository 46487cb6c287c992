/* Virtual PC / Hyper-V VHD images ("vpc"), read only. A 512-byte footer ("conectix") ends
 * every image; a fixed image is the raw disk followed by it, a dynamic one starts with a copy
 * of it, then a dynamic header ("cxsparse") pointing at the block allocation table (BAT): one
 * big-endian sector number per block, each block a sector bitmap followed by the data.
 * Read as qemu-img 7.2 reads it: the virtual size from the geometry or the footer's size
 * depending on the creator, the sector bitmaps ignored (an allocated block reads whole),
 * headers checked as QEMU checks them and refused with its messages. */
#include "block/block_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define VHD_FOOTER_SIZE	    512u
#define VHD_DYN_HEADER_SIZE 1024u
#define VHD_FIXED	    2u
#define VHD_UNALLOCATED	    0xffffffffu
#define VHD_MAX_SECTORS	    0xff000000ull	  /* 2040 GiB, QEMU's limit */
#define VHD_MAX_GEOMETRY    (65535ull * 16 * 255) /* all CHS at their maximum */

struct vpc {
	bool fixed;
	uint32_t *bat; /* host order; dynamic images only */
	uint32_t entries;
	uint32_t block_size, bitmap_size;
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static int vpc_probe(const uint8_t *buf, size_t len, const char *filename)
{
	/* as QEMU: only a copy of the footer at the start; a fixed image probes as raw */
	return len >= 8 && !memcmp(buf, "conectix", 8) ? 100 : 0;
}

/* The one's complement of the byte sum with the checksum field (at 64) counted as zero. */
static uint32_t footer_checksum(const uint8_t *f)
{
	uint32_t sum = 0;
	for (unsigned i = 0; i < VHD_FOOTER_SIZE; i++)
		sum += i >= 64 && i < 68 ? 0 : f[i];
	return ~sum;
}

/* QEMU's words for an image it cannot open */
#define open_error(fn, fmt, ...) kite_error("Could not open '%s': " fmt, fn, ##__VA_ARGS__)

/* Virtual size: Virtual PC and QEMU's old images go by the CHS geometry, Hyper-V, disk2vhd,
 * XenServer and QEMU's force_size images by the footer's current size (QEMU's table). */
static uint64_t footer_sectors(const uint8_t *f)
{
	const uint8_t *app = f + 28;
	uint64_t chs = (uint64_t)(f[56] << 8 | f[57]) * f[58] * f[59];
	bool use_chs = memcmp(app, "win ", 4) && memcmp(app, "qem2", 4) && memcmp(app, "d2v ", 4) &&
		       memcmp(app, "CTXS", 4) && memcmp(app, "tap", 4);
	if (!use_chs || chs == VHD_MAX_GEOMETRY)
		return be64(f + 48) / 512;
	return chs;
}

static int open_dynamic(struct blk *b, struct vpc *v, const uint8_t *f, uint64_t fsize)
{
	const char *fn = b->filename;
	uint8_t h[VHD_DYN_HEADER_SIZE];
	if (blk_file_pread(b->fd, h, sizeof(h), be64(f + 16), fn) < 0)
		return -1;
	if (memcmp(h, "cxsparse", 8))
		return open_error(fn, "Invalid header magic");
	v->block_size = be32(h + 32);
	if (v->block_size < 512 || (v->block_size & (v->block_size - 1)))
		return open_error(fn, "Invalid block size %u", v->block_size);
	v->bitmap_size = ((v->block_size / (8 * 512)) + 511) & ~511u;
	v->entries = be32(h + 28);
	if (b->size / v->block_size > 0xffffffffu)
		return open_error(fn, "Too many blocks");
	if ((uint64_t)v->entries * v->block_size < b->size)
		return open_error(fn, "Page table too small");
	if (v->entries > 0x7fffffffu / 4)
		return open_error(fn, "Max Table Entries too large (%d)", (int32_t)v->entries);
	uint64_t bat_off = be64(h + 16), bat_len = (uint64_t)v->entries * 4;
	/* QEMU finds a table past the end of the file by where the next block would go; check
	 * the table's own end first so that nothing is read or allocated for it */
	const char *truncated = "block-vpc: free_data_block_offset points after the end of "
				"file. The image has been truncated.";
	if (bat_off > fsize || ((bat_off + bat_len + 511) & ~511ull) > fsize)
		return open_error(fn, "%s", truncated);
	v->bat = malloc(bat_len ? bat_len : 1);
	if (!v->bat)
		return kite_error("out of memory");
	if (blk_file_pread(b->fd, v->bat, bat_len, bat_off, fn) < 0)
		return -1;
	for (uint32_t i = 0; i < v->entries; i++) {
		v->bat[i] = be32((const uint8_t *)&v->bat[i]);
		if (v->bat[i] != VHD_UNALLOCATED &&
		    512ull * v->bat[i] + v->bitmap_size + v->block_size > fsize)
			return open_error(fn, "%s", truncated);
	}
	return 0;
}

static int vpc_open(struct blk *b, struct blk_open_ctx *ctx)
{
	const char *fn = b->filename;
	if (b->flags & BLK_O_RDWR)
		return kite_error("%s: VHD (vpc) images can only be opened read-only", fn);
	uint8_t f[VHD_FOOTER_SIZE];
	uint64_t fsize;
	if (blk_file_size(b->fd, &fsize, fn) < 0 || blk_file_pread(b->fd, f, sizeof(f), 0, fn) < 0)
		return -1;
	bool fixed = false;
	if (memcmp(f, "conectix", 8)) {
		/* a fixed image has its footer only at the end */
		if (fsize < VHD_FOOTER_SIZE)
			return open_error(fn, "File too small for a VHD header");
		if (blk_file_pread(b->fd, f, sizeof(f), fsize - VHD_FOOTER_SIZE, fn) < 0)
			return -1;
		if (memcmp(f, "conectix", 8) || be32(f + 60) != VHD_FIXED)
			return open_error(fn, "invalid VPC image");
		fixed = true;
	}
	if (footer_checksum(f) != be32(f + 64))
		return open_error(fn, "Incorrect header checksum");
	uint64_t sectors = footer_sectors(f);
	if (sectors > VHD_MAX_SECTORS)
		/* no message of its own: QEMU names the file twice */
		return open_error(fn, "Could not open '%s': File too large", fn);
	struct vpc *v = calloc(1, sizeof(*v));
	if (!v)
		return kite_error("out of memory");
	v->fixed = fixed;
	b->size = sectors * 512;
	if (!fixed && open_dynamic(b, v, f, fsize) < 0) {
		free(v->bat);
		free(v);
		return -1;
	}
	b->opaque = v;
	return 0;
}

static void vpc_close(struct blk *b)
{
	struct vpc *v = b->opaque;
	if (v) {
		free(v->bat);
		free(v);
	}
}

/* Where virtual offset `off` lies in the file; false when its block is not allocated. */
static bool place(const struct vpc *v, uint64_t off, uint64_t *host)
{
	if (v->fixed) {
		*host = off;
		return true;
	}
	uint64_t i = off / v->block_size;
	if (i >= v->entries || v->bat[i] == VHD_UNALLOCATED)
		return false;
	*host = 512ull * v->bat[i] + v->bitmap_size + off % v->block_size;
	return true;
}

static int vpc_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	const struct vpc *v = b->opaque;
	if (v->fixed)
		return blk_file_pread(b->fd, buf, len, off, b->filename);
	uint8_t *p = buf;
	while (len) {
		uint64_t in = off % v->block_size, host;
		size_t n = v->block_size - in < len ? (size_t)(v->block_size - in) : len;
		if (!place(v, off, &host))
			memset(p, 0, n);
		else if (blk_file_pread(b->fd, p, n, host, b->filename) < 0)
			return -1;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* As QEMU 7.2: a fixed image is its file (holes read as zeros); a dynamic image's allocated
 * block is data to its end (one block at most: a bitmap lies between two), unallocated
 * blocks read as zeros and make one run. */
static int vpc_block_status(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum,
			    unsigned *flags, uint64_t *host_off)
{
	const struct vpc *v = b->opaque;
	*flags = BLK_STATUS_ALLOCATED;
	if (v->fixed) {
		bool zero;
		*host_off = off;
		if (blk_file_status(b->fd, off, len, pnum, &zero, b->filename) < 0)
			return -1;
		*flags |= BLK_STATUS_DATA | BLK_STATUS_OFFSET_VALID | (zero ? BLK_STATUS_ZERO : 0);
		return 0;
	}
	uint64_t host, n = v->block_size - off % v->block_size;
	if (place(v, off, &host)) {
		*pnum = n < len ? n : len;
		*host_off = host;
		*flags |= BLK_STATUS_DATA | BLK_STATUS_OFFSET_VALID;
		return 0;
	}
	while (n < len && !place(v, off + n, &host))
		n += v->block_size;
	*pnum = n < len ? n : len;
	*host_off = 0;
	*flags |= BLK_STATUS_ZERO;
	return 0;
}

static uint32_t vpc_cluster_size(const struct blk *b)
{
	const struct vpc *v = b->opaque;
	return v->fixed ? 0 : v->block_size;
}

static const struct blk_driver vpc_driver = {
    .name = "vpc",
    .probe = vpc_probe,
    .open = vpc_open,
    .read = vpc_read,
    .block_status = vpc_block_status,
    .close = vpc_close,
    .cluster_size = vpc_cluster_size,
};
BLK_DRIVER(vpc_driver)

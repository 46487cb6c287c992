/* Hyper-V's VHDX images, read only. The first MiB holds the file identifier ("vhdxfile"),
 * two headers (the valid one with the higher sequence number is current; it places the
 * log) and a region table placing the block allocation table (BAT) and the metadata (block
 * size, virtual size, sector size). Each BAT entry gives a payload block's state and its
 * place in MiB; after every `chunk_ratio` payload entries comes one sector-bitmap entry
 * (used by differencing images only). Checks and messages are qemu-img 7.2's. An image
 * whose log holds entries still to be replayed is refused, as qemu-img refuses it when it
 * opens read-only. CRC-32C comes from libext2fs (Debian's e2fsprogs, already linked). */
#include "block/block_int.h"
#include "util/err.h"

#include <ext2fs/ext2fs.h>
#include <stdlib.h>
#include <string.h>

#define MiB		       (1024u * 1024u)
#define VHDX_HEADER1_AT	       (64u * 1024)
#define VHDX_HEADER2_AT	       (128u * 1024)
#define VHDX_HEADER_SIZE       4096u
#define VHDX_REGION_AT	       (192u * 1024)
#define VHDX_REGION_SIZE       (64u * 1024)
#define VHDX_METADATA_MAX      (64u * 1024)
#define VHDX_LOG_MIN	       MiB
#define VHDX_LOG_SECTOR	       4096u
#define VHDX_BLOCK_MIN	       MiB
#define VHDX_BLOCK_MAX	       (256u * MiB)
#define VHDX_MAX_SECTORS_BLOCK (1ull << 23)
#define VHDX_BAT_STATE	       7u
#define VHDX_BAT_OFFSET	       0xfffffffffff00000ull
#define PAYLOAD_NOT_PRESENT    0
#define PAYLOAD_UNDEFINED      1
#define PAYLOAD_ZERO	       2
#define PAYLOAD_UNMAPPED       3
#define PAYLOAD_UNMAPPED_V095  5
#define PAYLOAD_FULLY_PRESENT  6
#define PARAMS_HAS_PARENT      2u
#define META_FILE_PARAMS       1u
#define META_VIRTUAL_SIZE      2u
#define META_PAGE83	       4u
#define META_LOGICAL_SECTOR    8u
#define META_PHYS_SECTOR       16u
#define META_PARENT_LOCATOR    32u
#define META_ALL	       31u

/* GUIDs as stored (Microsoft's mixed-endian layout) */
static const uint8_t bat_guid[16] = {0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
				     0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08};
static const uint8_t metadata_guid[16] = {0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
					  0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e};
static const struct {
	uint8_t guid[16];
	unsigned bit;
} meta_items[] = {
    {{0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7,
      0x6b},
     META_FILE_PARAMS},
    {{0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4,
      0xb8},
     META_VIRTUAL_SIZE},
    {{0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45, 0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7,
      0x46},
     META_PAGE83},
    {{0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47, 0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab,
      0x5f},
     META_LOGICAL_SECTOR},
    {{0xc7, 0x48, 0xa3, 0xcd, 0x5d, 0x44, 0x71, 0x44, 0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5,
      0x56},
     META_PHYS_SECTOR},
    {{0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45, 0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab,
      0x0c},
     META_PARENT_LOCATOR},
};

struct region {
	uint64_t start, end;
};

struct vhdx {
	uint64_t *bat;	     /* host order; the entries the file holds */
	uint64_t bat_loaded; /* entries read; the rest lie past EOF and read as 0 */
	uint64_t bat_entries;
	uint32_t block_size, chunk_ratio;
	/* open-time state */
	struct region regions[2 + 2047];
	unsigned nregions;
	uint64_t bat_off, meta_off;
	uint32_t bat_len;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* QEMU's words for an image it cannot open: with a reason of its own, or only an errno's
 * text (then QEMU names the file twice) */
#define open_error(fn, fmt, ...) kite_error("Could not open '%s': " fmt, fn, ##__VA_ARGS__)
#define open_errno(fn, what)	 open_error(fn, "Could not open '%s': %s", fn, what)
#define EINVAL_TEXT		 "Invalid argument"
#define ENOTSUP_TEXT		 "Operation not supported"

static int vhdx_probe(const uint8_t *buf, size_t len, const char *filename)
{
	return len >= 8 && !memcmp(buf, "vhdxfile", 8) ? 100 : 0;
}

/* CRC-32C of buf with its 4-byte checksum field at `at` counted as zero, against that field */
static bool checksum_ok(uint8_t *buf, size_t len, size_t at)
{
	uint8_t saved[4];
	memcpy(saved, buf + at, 4);
	memset(buf + at, 0, 4);
	uint32_t crc = ext2fs_crc32c_le(~0u, buf, len) ^ ~0u;
	memcpy(buf + at, saved, 4);
	uint32_t stored = le32(saved);
	return crc == stored;
}

/* Whether [start, start+len) overlaps a region known so far (QEMU's vhdx_region_check) */
static bool overlaps(const struct vhdx *v, uint64_t start, uint64_t len)
{
	uint64_t end = start + len;
	for (unsigned i = 0; i < v->nregions; i++)
		if (!(start >= v->regions[i].end || end <= v->regions[i].start)) {
			kite_error("VHDX region %llu-%llu overlaps with region %llu-%llu",
				   (unsigned long long)start, (unsigned long long)end,
				   (unsigned long long)v->regions[i].start,
				   (unsigned long long)v->regions[i].end);
			return true;
		}
	return false;
}

static void add_region(struct vhdx *v, uint64_t start, uint64_t len)
{
	if (v->nregions < sizeof(v->regions) / sizeof(v->regions[0]))
		v->regions[v->nregions++] = (struct region){start, start + len};
}

/* The current header into h (4 KiB): the valid one, or of two the higher sequence number */
static int parse_headers(struct blk *b, uint8_t *h)
{
	uint8_t h1[VHDX_HEADER_SIZE], h2[VHDX_HEADER_SIZE];
	if (blk_file_pread(b->fd, h1, sizeof(h1), VHDX_HEADER1_AT, b->filename) < 0 ||
	    blk_file_pread(b->fd, h2, sizeof(h2), VHDX_HEADER2_AT, b->filename) < 0)
		return -1;
	bool ok1 =
	    checksum_ok(h1, sizeof(h1), 4) && !memcmp(h1, "head", 4) && (h1[66] | h1[67] << 8) == 1;
	bool ok2 =
	    checksum_ok(h2, sizeof(h2), 4) && !memcmp(h2, "head", 4) && (h2[66] | h2[67] << 8) == 1;
	const uint8_t *cur = NULL;
	if (ok1 && ok2) {
		uint64_t s1 = le64(h1 + 8), s2 = le64(h2 + 8);
		/* Disk2VHD writes two identical headers */
		if (s1 > s2 || (s1 == s2 && !memcmp(h1, h2, 80)))
			cur = h1;
		else if (s2 > s1)
			cur = h2;
	} else if (ok1 || ok2) {
		cur = ok1 ? h1 : h2;
	}
	if (!cur)
		return open_error(b->filename, "No valid VHDX header found");
	memcpy(h, cur, VHDX_HEADER_SIZE);
	return 0;
}

/* Whether the log holds an entry of this log GUID (signature "loge", a sane length and a
 * good checksum): entries a writer left to be replayed. */
static int log_has_entries(struct blk *b, uint64_t off, uint32_t len, const uint8_t *guid,
			   uint64_t fsize, bool *found)
{
	*found = false;
	uint8_t *buf = NULL;
	for (uint64_t at = 0; at < len && off + at < fsize; at += VHDX_LOG_SECTOR) {
		uint8_t hdr[64];
		if (blk_file_pread(b->fd, hdr, sizeof(hdr), off + at, b->filename) < 0)
			goto err;
		uint32_t elen = le32(hdr + 8);
		if (memcmp(hdr, "loge", 4) || memcmp(hdr + 32, guid, 16) || !elen ||
		    elen % VHDX_LOG_SECTOR || elen > len - at)
			continue;
		uint8_t *nb = realloc(buf, elen);
		if (!nb) {
			kite_error("out of memory");
			goto err;
		}
		buf = nb;
		if (blk_file_pread(b->fd, buf, elen, off + at, b->filename) < 0)
			goto err;
		if (checksum_ok(buf, elen, 4)) {
			*found = true;
			break;
		}
	}
	free(buf);
	return 0;
err:
	free(buf);
	return -1;
}

static int parse_log(struct blk *b, struct vhdx *v, const uint8_t *h, uint64_t fsize)
{
	const char *fn = b->filename;
	uint64_t off = le64(h + 72);
	uint32_t len = le32(h + 68);
	static const uint8_t zero[16];
	if (off < VHDX_LOG_MIN || off % VHDX_LOG_MIN || (h[64] | h[65] << 8) != 0)
		return open_errno(fn, EINVAL_TEXT);
	if (!memcmp(h + 48, zero, 16) || !len)
		return 0;
	if (len % VHDX_LOG_MIN)
		return open_errno(fn, EINVAL_TEXT);
	bool found;
	if (log_has_entries(b, off, len, h + 48, fsize, &found) < 0)
		return -1;
	if (found && (b->flags & BLK_O_RDWR))
		return open_error(fn,
				  "kite cannot replay a VHDX log: replay it with qemu-img "
				  "check -r all '%s'",
				  fn);
	if (found) {
		open_error(fn,
			   "VHDX image file '%s' opened read-only, but contains a log that "
			   "needs to be replayed",
			   fn);
		fprintf(stderr, "To replay the log, run:\nqemu-img check -r all '%s'\n", fn);
		return -1;
	}
	(void)v;
	return 0;
}

static int parse_regions(struct blk *b, struct vhdx *v)
{
	const char *fn = b->filename;
	uint8_t *rt = malloc(VHDX_REGION_SIZE);
	if (!rt)
		return kite_error("out of memory");
	int ret = -1;
	if (blk_file_pread(b->fd, rt, VHDX_REGION_SIZE, VHDX_REGION_AT, fn) < 0)
		goto out;
	uint32_t count = le32(rt + 8);
	if (!checksum_ok(rt, VHDX_REGION_SIZE, 4) || memcmp(rt, "regi", 4) || count > 2047) {
		open_errno(fn, EINVAL_TEXT);
		goto out;
	}
	bool have_bat = false, have_meta = false;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = rt + 16 + 32 * i;
		uint64_t off = le64(e + 16);
		uint32_t len = le32(e + 24);
		if (overlaps(v, off, len)) {
			open_errno(fn, EINVAL_TEXT);
			goto out;
		}
		add_region(v, off, len);
		bool is_bat = !memcmp(e, bat_guid, 16), is_meta = !memcmp(e, metadata_guid, 16);
		if ((is_bat && have_bat) || (is_meta && have_meta)) {
			open_errno(fn, EINVAL_TEXT);
			goto out;
		}
		if (is_bat) {
			have_bat = true;
			v->bat_off = off;
			v->bat_len = len;
		} else if (is_meta) {
			have_meta = true;
			v->meta_off = off;
		} else if (le32(e + 28) & 1) { /* a required region kite does not know */
			open_errno(fn, ENOTSUP_TEXT);
			goto out;
		}
	}
	if (!have_bat || !have_meta) {
		open_errno(fn, EINVAL_TEXT);
		goto out;
	}
	ret = 0;
out:
	free(rt);
	return ret;
}

static int parse_metadata(struct blk *b, struct vhdx *v, uint64_t *size)
{
	const char *fn = b->filename;
	uint8_t *m = malloc(VHDX_METADATA_MAX);
	if (!m)
		return kite_error("out of memory");
	int ret = -1;
	if (blk_file_pread(b->fd, m, VHDX_METADATA_MAX, v->meta_off, fn) < 0)
		goto out;
	uint32_t count = m[10] | m[11] << 8, offs[6] = {0};
	unsigned present = 0;
	if (memcmp(m, "metadata", 8) || count * 32u > VHDX_METADATA_MAX - 32) {
		open_errno(fn, EINVAL_TEXT);
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = m + 32 + 32 * i;
		unsigned k = 0;
		while (k < 6 && memcmp(e, meta_items[k].guid, 16))
			k++;
		if (k == 6) {
			if (le32(e + 24) & 4) { /* required and unknown */
				open_errno(fn, ENOTSUP_TEXT);
				goto out;
			}
			continue;
		}
		if (present & meta_items[k].bit) {
			open_errno(fn, EINVAL_TEXT);
			goto out;
		}
		present |= meta_items[k].bit;
		offs[k] = le32(e + 16);
	}
	if ((present & META_ALL) != META_ALL) {
		open_errno(fn, ENOTSUP_TEXT);
		goto out;
	}
	uint8_t params[8], vsize[8], lss[4];
	if (blk_file_pread(b->fd, params, 8, v->meta_off + offs[0], fn) < 0 ||
	    blk_file_pread(b->fd, vsize, 8, v->meta_off + offs[1], fn) < 0 ||
	    blk_file_pread(b->fd, lss, 4, v->meta_off + offs[3], fn) < 0)
		goto out;
	if (le32(params + 4) & PARAMS_HAS_PARENT) {
		/* differencing images: QEMU 7.2 cannot read them either */
		open_errno(fn, present & META_PARENT_LOCATOR ? ENOTSUP_TEXT : EINVAL_TEXT);
		goto out;
	}
	uint32_t bs = le32(params), sector = le32(lss);
	*size = le64(vsize);
	if (bs < VHDX_BLOCK_MIN || bs > VHDX_BLOCK_MAX) {
		open_errno(fn, EINVAL_TEXT);
		goto out;
	}
	if (sector != 512) { /* QEMU 7.2 reads 512-byte logical sectors only */
		open_errno(fn, ENOTSUP_TEXT);
		goto out;
	}
	uint64_t ratio = VHDX_MAX_SECTORS_BLOCK * sector / bs;
	if ((bs & (bs - 1)) || (ratio & (ratio - 1))) {
		open_errno(fn, EINVAL_TEXT);
		goto out;
	}
	v->block_size = bs;
	v->chunk_ratio = (uint32_t)ratio;
	ret = 0;
out:
	free(m);
	return ret;
}

static unsigned ctz(uint64_t x)
{
	return (unsigned)__builtin_ctzll(x);
}

/* QEMU's vhdx_check_bat_entries: fully present blocks inside the file, clear of the
 * metadata regions and the log. Each problem is printed; without `errors` the first one
 * fails, with it all are counted there. */
static int check_bat(struct blk *b, struct vhdx *v, uint64_t fsize, uint64_t *errors)
{
	uint64_t payblocks = v->chunk_ratio;
	int ret = 0;
	for (uint64_t i = 0; i < v->bat_loaded; i++) {
		uint64_t e = v->bat[i];
		if ((e & VHDX_BAT_STATE) != PAYLOAD_FULLY_PRESENT)
			continue;
		unsigned long long n = i, off = e & VHDX_BAT_OFFSET, end = fsize;
		uint64_t rest = b->size - i * v->block_size;
		uint64_t blen = rest < v->block_size ? rest : v->block_size;
		bool bad = false;
		if (off > (uint64_t)INT64_MAX - v->block_size) {
			kite_error("VHDX BAT entry %llu offset points after end of file. Image has "
				   "probably been truncated.",
				   n);
			bad = true;
		}
		if (!bad || errors) {
			if (off >= fsize) {
				kite_error("VHDX BAT entry %llu start offset %llu points after end "
					   "of file (%llu). Image has probably been truncated.",
					   n, off, end);
				bad = true;
			} else if (off + blen > fsize) {
				kite_error(
				    "VHDX BAT entry %llu end offset %llu points after end of "
				    "file (%llu). Image has probably been truncated.",
				    n, off + blen - 1, end);
				bad = true;
			}
		}
		if (bad && !errors)
			return -1;
		if (bad) {
			++*errors;
			ret = -1;
		}
		if (payblocks--) {
			if (overlaps(v, off, v->block_size)) {
				if (!errors)
					return -1;
				++*errors;
				ret = -1;
			}
		} else {
			payblocks = v->chunk_ratio;
		}
	}
	return ret;
}

static int vhdx_open(struct blk *b, struct blk_open_ctx *ctx)
{
	const char *fn = b->filename;
	/* check -r opens read-write; there is nothing kite would write (no write hook) */
	if ((b->flags & BLK_O_RDWR) && !(b->flags & BLK_O_CHECK))
		return kite_error("%s: VHDX images can only be opened read-only", fn);
	uint8_t sig[8], h[VHDX_HEADER_SIZE];
	uint64_t fsize, size = 0;
	if (blk_file_size(b->fd, &fsize, fn) < 0 ||
	    blk_file_pread(b->fd, sig, sizeof(sig), 0, fn) < 0)
		return -1;
	if (memcmp(sig, "vhdxfile", 8))
		return open_errno(fn, EINVAL_TEXT);
	struct vhdx *v = calloc(1, sizeof(*v));
	if (!v)
		return kite_error("out of memory");
	if (parse_headers(b, h) < 0)
		goto err;
	add_region(v, le64(h + 72), le32(h + 68));
	if (parse_log(b, v, h, fsize) < 0 || parse_regions(b, v) < 0 ||
	    parse_metadata(b, v, &size) < 0)
		goto err;
	b->size = size & ~511ull; /* QEMU counts whole 512-byte sectors */
	/* QEMU counts the blocks in 32 bits; a size whose count wraps is refused the same way
	 * below, and the 64-bit count keeps every lookup inside the table */
	uint64_t blocks = (size + v->block_size - 1) / v->block_size;
	uint32_t blocks32 = (uint32_t)blocks;
	uint64_t entries32 = blocks32 + ((uint32_t)(blocks32 - 1) >> ctz(v->chunk_ratio));
	v->bat_entries = blocks ? blocks + ((blocks - 1) >> ctz(v->chunk_ratio)) : 0;
	if (entries32 > v->bat_len / 8 || v->bat_entries > v->bat_len / 8) {
		open_errno(fn, EINVAL_TEXT);
		goto err;
	}
	/* entries past the end of the file read as zeros (not present): keep only those the
	 * file holds, so a hostile table costs no more memory than the file's size */
	uint64_t in_file = v->bat_off < fsize ? (fsize - v->bat_off) / 8 : 0;
	v->bat_loaded = v->bat_entries < in_file ? v->bat_entries : in_file;
	v->bat = malloc(v->bat_loaded ? v->bat_loaded * 8 : 1);
	if (!v->bat) {
		kite_error("out of memory");
		goto err;
	}
	if (blk_file_pread(b->fd, v->bat, v->bat_loaded * 8, v->bat_off, fn) < 0)
		goto err;
	for (uint64_t i = 0; i < v->bat_loaded; i++)
		v->bat[i] = le64((const uint8_t *)&v->bat[i]);
	/* kite img check opens the image to count these instead */
	if (!(b->flags & BLK_O_CHECK) && check_bat(b, v, fsize, NULL) < 0) {
		open_errno(fn, EINVAL_TEXT);
		goto err;
	}
	b->opaque = v;
	return 0;
err:
	free(v->bat);
	free(v);
	return -1;
}

static void vhdx_close(struct blk *b)
{
	struct vhdx *v = b->opaque;
	if (v) {
		free(v->bat);
		free(v);
	}
}

static int vhdx_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	const struct vhdx *v = b->opaque;
	uint8_t *p = buf;
	while (len) {
		uint64_t blk = off / v->block_size, in = off % v->block_size;
		uint64_t i = blk + (blk >> ctz(v->chunk_ratio));
		size_t n = v->block_size - in < len ? (size_t)(v->block_size - in) : len;
		uint64_t e = i < v->bat_loaded ? v->bat[i] : 0;
		switch (e & VHDX_BAT_STATE) {
		case PAYLOAD_NOT_PRESENT:
		case PAYLOAD_UNDEFINED:
		case PAYLOAD_ZERO:
		case PAYLOAD_UNMAPPED:
		case PAYLOAD_UNMAPPED_V095:
			memset(p, 0, n);
			break;
		case PAYLOAD_FULLY_PRESENT:
			if (blk_file_pread(b->fd, p, n, (e & VHDX_BAT_OFFSET) + in, b->filename) <
			    0)
				return -1;
			break;
		default: /* partially present (differencing images) or undefined */
			return kite_error("%s: VHDX block %llu has state %u, which cannot be "
					  "read: Input/output error",
					  b->filename, (unsigned long long)blk,
					  (unsigned)(e & VHDX_BAT_STATE));
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int vhdx_check(struct blk *b, unsigned fix, struct blk_check_result *r)
{
	struct vhdx *v = b->opaque;
	uint64_t fsize;
	if (blk_file_size(b->fd, &fsize, b->filename) < 0)
		return -1;
	check_bat(b, v, fsize, &r->corruptions);
	return 0;
}

static uint32_t vhdx_cluster_size(const struct blk *b)
{
	const struct vhdx *v = b->opaque;
	return v->block_size;
}

/* No block_status: QEMU 7.2's vhdx driver has none, so all of the image is data at no
 * known offset, as qemu-img map shows it. */
static const struct blk_driver vhdx_driver = {
    .name = "vhdx",
    .probe = vhdx_probe,
    .open = vhdx_open,
    .read = vhdx_read,
    .close = vhdx_close,
    .check = vhdx_check,
    .cluster_size = vhdx_cluster_size,
};
BLK_DRIVER(vhdx_driver)

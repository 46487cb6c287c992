#include "block/vmdk.h"
#include "util/err.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SECTOR		  512ULL
#define VMDK_MAGIC	  0x564d444bU /* "KDMV" little endian */
#define GD_AT_END	  0xffffffffffffffffULL
#define FLAG_ZERO_GRAIN	  (1U << 2)
#define FLAG_COMPRESSED	  (1U << 16)
#define FLAG_MARKERS	  (1U << 17)
#define MAX_GRAIN	  (16ULL << 20) /* bigger grains are refused, as QEMU does */
#define MAX_GTES	  512		/* QEMU writes and accepts at most 512 entries per table */
#define MARKER_FOOTER	  3
#define GRAIN_MARKER_SIZE 12 /* uint64 lba, uint32 size, then the deflate stream */

/* The on-disk SparseExtentHeader fields we use (decoded from little endian). */
struct vmdk_header {
	uint32_t version, flags;
	uint64_t capacity, grain, desc_off, desc_size;
	uint32_t gtes;
	uint64_t rgd_off, gd_off;
	uint16_t compress_algo;
};

struct vmdk {
	int fd;
	bool own_fd;
	char *name;
	uint64_t file_size;
	uint64_t size;		   /* virtual size in bytes */
	uint64_t grain;		   /* bytes */
	uint32_t gtes;		   /* entries per grain table */
	uint32_t gd_count;	   /* grain directory entries */
	uint32_t *gd;		   /* sector offsets of grain tables */
	uint32_t **gt;		   /* grain tables, loaded on first use */
	bool compressed;	   /* grains are deflate streams behind a marker */
	bool zero_grain;	   /* grain table entry 1 means "zeroed grain" */
	uint8_t *grain_buf;	   /* last decompressed grain */
	uint64_t grain_buf_sector; /* its grain table entry, 0 when none */
	uint8_t *cbuf;		   /* compressed grain staging buffer */
	size_t cbuf_size;
	char create_type[64];
	uint32_t cid, parent_cid;
};

int vmdk_probe(const uint8_t *buf, size_t len)
{
	return len >= 4 && buf[0] == 'K' && buf[1] == 'D' && buf[2] == 'M' && buf[3] == 'V';
}

/* Reads exactly `len` bytes at `off`; a short read (the file ends) is an error. */
static int read_at(struct vmdk *v, void *buf, size_t len, uint64_t off, const char *what)
{
	if (off > v->file_size || len > v->file_size - off)
		return kite_error("%s: %s lies beyond the end of the file", v->name, what);
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(v->fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kite_error_errno(errno, "%s: reading %s", v->name, what);
		}
		if (n == 0)
			return kite_error("%s: %s lies beyond the end of the file", v->name, what);
		done += (size_t)n;
	}
	return 0;
}

static void decode_header(const uint8_t *b, struct vmdk_header *h)
{
	uint32_t u32;
	uint64_t u64;
	uint16_t u16;
#define LE32(o) (memcpy(&u32, b + (o), 4), le32toh(u32))
#define LE64(o) (memcpy(&u64, b + (o), 8), le64toh(u64))
	h->version = LE32(4);
	h->flags = LE32(8);
	h->capacity = LE64(12);
	h->grain = LE64(20);
	h->desc_off = LE64(28);
	h->desc_size = LE64(36);
	h->gtes = LE32(44);
	h->rgd_off = LE64(48);
	h->gd_off = LE64(56);
	memcpy(&u16, b + 77, 2);
	h->compress_algo = le16toh(u16);
#undef LE32
#undef LE64
}

/* Picks `key=value` out of the embedded descriptor text; value without quotes. */
static void desc_value(const char *desc, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	out[0] = '\0';
	for (const char *line = desc; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, key, klen) != 0)
			continue;
		const char *p = line + klen;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			continue;
		p++;
		while (*p == ' ' || *p == '\t' || *p == '"')
			p++;
		size_t n = 0;
		while (p[n] && p[n] != '"' && p[n] != '\n' && p[n] != '\r' && n + 1 < outlen)
			n++;
		memcpy(out, p, n);
		out[n] = '\0';
		return;
	}
}

static int parse_descriptor(struct vmdk *v, const struct vmdk_header *h)
{
	strcpy(v->create_type, v->compressed ? "streamOptimized" : "monolithicSparse");
	v->cid = 0;
	v->parent_cid = 0xffffffffU;
	if (h->desc_off == 0 || h->desc_size == 0)
		return 0;
	if (h->desc_size > 2048 || h->desc_off > v->file_size / SECTOR)
		return kite_error("%s: invalid embedded descriptor location", v->name);
	size_t len = (size_t)(h->desc_size * SECTOR);
	char *desc = malloc(len + 1);
	if (!desc)
		return kite_error("%s: out of memory", v->name);
	if (read_at(v, desc, len, h->desc_off * SECTOR, "the descriptor")) {
		free(desc);
		return -1;
	}
	desc[len] = '\0';
	char val[64];
	desc_value(desc, "createType", val, sizeof(val));
	if (val[0])
		snprintf(v->create_type, sizeof(v->create_type), "%s", val);
	desc_value(desc, "CID", val, sizeof(val));
	v->cid = (uint32_t)strtoul(val, NULL, 16);
	desc_value(desc, "parentCID", val, sizeof(val));
	if (val[0])
		v->parent_cid = (uint32_t)strtoul(val, NULL, 16);
	free(desc);
	if (v->parent_cid != 0xffffffffU)
		return kite_error("%s: vmdk delta images (with a parent disk) are not supported",
				  v->name);
	return 0;
}

/* A streamOptimized file written as a stream keeps its real header in the footer, 1 KiB
 * before the end (footer marker, footer, end-of-stream marker). */
static int read_footer(struct vmdk *v, struct vmdk_header *h)
{
	uint8_t buf[3 * SECTOR];
	if (v->file_size < 4 * SECTOR)
		return kite_error("%s: grain directory at end, but the file has no footer",
				  v->name);
	if (read_at(v, buf, sizeof(buf), v->file_size - 3 * SECTOR, "the footer"))
		return -1;
	uint32_t type, magic;
	memcpy(&type, buf + 12, 4);
	memcpy(&magic, buf + SECTOR, 4);
	if (le32toh(type) != MARKER_FOOTER || le32toh(magic) != VMDK_MAGIC)
		return kite_error("%s: grain directory at end, but no valid footer", v->name);
	decode_header(buf + SECTOR, h);
	if (h->gd_off == GD_AT_END)
		return kite_error("%s: the footer has no grain directory", v->name);
	return 0;
}

static int validate(struct vmdk *v, const struct vmdk_header *h)
{
	if (h->version < 1 || h->version > 3)
		return kite_error("%s: unsupported vmdk version %u", v->name, h->version);
	/* compare in sectors: grain * SECTOR could wrap around (found by fuzz_vmdk) */
	if (h->grain == 0 || (h->grain & (h->grain - 1)) || h->grain > MAX_GRAIN / SECTOR)
		return kite_error("%s: invalid grain size %llu sectors", v->name,
				  (unsigned long long)h->grain);
	if (h->gtes == 0 || h->gtes > MAX_GTES)
		return kite_error("%s: invalid grain table size %u", v->name, h->gtes);
	if (h->capacity == 0 || h->capacity > (UINT64_MAX / 2) / SECTOR)
		return kite_error("%s: invalid capacity %llu sectors", v->name,
				  (unsigned long long)h->capacity);
	if ((h->flags & FLAG_COMPRESSED) && h->compress_algo != 1)
		return kite_error("%s: unsupported grain compression %u", v->name,
				  h->compress_algo);
	uint64_t span = h->grain * h->gtes; /* sectors per grain table */
	uint64_t count = (h->capacity + span - 1) / span;
	/* The directory must lie inside the file: this also bounds what we allocate. */
	if (h->gd_off == 0 || h->gd_off > v->file_size / SECTOR || count > UINT32_MAX ||
	    count > (v->file_size - h->gd_off * SECTOR) / 4)
		return kite_error("%s: grain directory lies beyond the end of the file", v->name);
	v->gd_count = (uint32_t)count;
	return 0;
}

static int load_gd(struct vmdk *v, uint64_t gd_off)
{
	v->gd = malloc((size_t)v->gd_count * 4);
	v->gt = calloc(v->gd_count, sizeof(*v->gt));
	if (!v->gd || !v->gt)
		return kite_error("%s: out of memory for the grain directory", v->name);
	if (read_at(v, v->gd, (size_t)v->gd_count * 4, gd_off * SECTOR, "the grain directory"))
		return -1;
	for (uint32_t i = 0; i < v->gd_count; i++)
		v->gd[i] = le32toh(v->gd[i]);
	return 0;
}

struct vmdk *vmdk_open_fd(int fd, const char *name)
{
	struct vmdk *v = calloc(1, sizeof(*v));
	if (!v) {
		kite_error("%s: out of memory", name);
		return NULL;
	}
	v->fd = fd;
	v->name = strdup(name);
	struct stat st;
	if (!v->name || fstat(fd, &st) < 0) {
		kite_error_errno(errno, "%s: stat", name);
		goto fail;
	}
	v->file_size = (uint64_t)st.st_size;
	uint8_t hdr[SECTOR];
	if (v->file_size < SECTOR) {
		kite_error("%s: file too short for a vmdk header", name);
		goto fail;
	}
	if (read_at(v, hdr, sizeof(hdr), 0, "the header"))
		goto fail;
	if (!vmdk_probe(hdr, sizeof(hdr))) {
		if (!memcmp(hdr, "# Disk DescriptorFile", 21))
			kite_error("%s: vmdk descriptor files with separate extents are not "
				   "supported (only monolithicSparse and streamOptimized)",
				   name);
		else
			kite_error("%s: not a vmdk sparse extent (bad magic)", name);
		goto fail;
	}
	struct vmdk_header h;
	decode_header(hdr, &h);
	v->compressed = h.flags & FLAG_COMPRESSED;
	if (parse_descriptor(v, &h))
		goto fail;
	if (h.gd_off == GD_AT_END) {
		struct vmdk_header foot;
		if (read_footer(v, &foot))
			goto fail;
		h = foot;
		v->compressed = h.flags & FLAG_COMPRESSED;
	}
	if (validate(v, &h) || load_gd(v, h.gd_off))
		goto fail;
	v->zero_grain = h.flags & FLAG_ZERO_GRAIN;
	v->size = h.capacity * SECTOR;
	v->grain = h.grain * SECTOR;
	v->gtes = h.gtes;
	if (v->compressed) {
		/* deflate of a grain is at most a little larger than the grain */
		v->cbuf_size = (size_t)compressBound((uLong)v->grain) + GRAIN_MARKER_SIZE;
		v->cbuf = malloc(v->cbuf_size);
		v->grain_buf = malloc((size_t)v->grain);
		if (!v->cbuf || !v->grain_buf) {
			kite_error("%s: out of memory", name);
			goto fail;
		}
	}
	return v;
fail:
	v->own_fd = false;
	vmdk_close(v);
	return NULL;
}

struct vmdk *vmdk_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		kite_error_errno(errno, "could not open '%s'", path);
		return NULL;
	}
	struct vmdk *v = vmdk_open_fd(fd, path);
	if (!v) {
		close(fd);
		return NULL;
	}
	v->own_fd = true;
	return v;
}

void vmdk_close(struct vmdk *v)
{
	if (!v)
		return;
	if (v->gt)
		for (uint32_t i = 0; i < v->gd_count; i++)
			free(v->gt[i]);
	free(v->gt);
	free(v->gd);
	free(v->cbuf);
	free(v->grain_buf);
	free(v->name);
	if (v->own_fd)
		close(v->fd);
	free(v);
}

uint64_t vmdk_size(const struct vmdk *v)
{
	return v->size;
}

uint32_t vmdk_grain_size(const struct vmdk *v)
{
	return (uint32_t)v->grain;
}

int vmdk_compressed(const struct vmdk *v)
{
	return v->compressed;
}

const char *vmdk_create_type(const struct vmdk *v)
{
	return v->create_type;
}

uint32_t vmdk_cid(const struct vmdk *v)
{
	return v->cid;
}

uint32_t vmdk_parent_cid(const struct vmdk *v)
{
	return v->parent_cid;
}

/* Grain table entry (a sector number, 0 or 1 special) of the grain holding `off`. */
static int grain_entry(struct vmdk *v, uint64_t off, uint32_t *entry)
{
	uint64_t g = off / v->grain;
	uint64_t t = g / v->gtes;
	if (t >= v->gd_count)
		return kite_error("%s: offset %llu beyond the grain directory", v->name,
				  (unsigned long long)off);
	if (v->gd[t] == 0) {
		*entry = 0;
		return 0;
	}
	if (!v->gt[t]) {
		uint32_t *gt = malloc((size_t)v->gtes * 4);
		if (!gt)
			return kite_error("%s: out of memory for a grain table", v->name);
		if (read_at(v, gt, (size_t)v->gtes * 4, (uint64_t)v->gd[t] * SECTOR,
			    "a grain table")) {
			free(gt);
			return -1;
		}
		for (uint32_t i = 0; i < v->gtes; i++)
			gt[i] = le32toh(gt[i]);
		v->gt[t] = gt;
	}
	*entry = v->gt[t][g % v->gtes];
	return 0;
}

static bool is_zero_entry(const struct vmdk *v, uint32_t e)
{
	return e == 1 && v->zero_grain;
}

/* Makes v->grain_buf hold the decompressed grain whose marker is at sector `e`. */
static int load_compressed(struct vmdk *v, uint32_t e)
{
	if (v->grain_buf_sector == e)
		return 0;
	v->grain_buf_sector = 0;
	uint64_t pos = (uint64_t)e * SECTOR;
	if (pos >= v->file_size || v->file_size - pos < GRAIN_MARKER_SIZE)
		return kite_error("%s: compressed grain at %llu lies beyond the end of the file",
				  v->name, (unsigned long long)pos);
	uint64_t avail = v->file_size - pos;
	size_t want = avail < v->cbuf_size ? (size_t)avail : v->cbuf_size;
	if (read_at(v, v->cbuf, want, pos, "a compressed grain"))
		return -1;
	uint32_t clen;
	memcpy(&clen, v->cbuf + 8, 4);
	clen = le32toh(clen);
	if (clen == 0 || clen > want - GRAIN_MARKER_SIZE)
		return kite_error("%s: compressed grain at %llu has an invalid size %u", v->name,
				  (unsigned long long)pos, clen);
	uLongf out = (uLongf)v->grain;
	int zr = uncompress(v->grain_buf, &out, v->cbuf + GRAIN_MARKER_SIZE, clen);
	if (zr != Z_OK && zr != Z_BUF_ERROR)
		return kite_error("%s: compressed grain at %llu is corrupt (zlib error %d)",
				  v->name, (unsigned long long)pos, zr);
	if (zr == Z_BUF_ERROR)
		return kite_error("%s: compressed grain at %llu inflates beyond the grain size",
				  v->name, (unsigned long long)pos);
	memset(v->grain_buf + out, 0, (size_t)(v->grain - out));
	v->grain_buf_sector = e;
	return 0;
}

int vmdk_pread(struct vmdk *v, void *buf, uint64_t len, uint64_t off)
{
	if (off > v->size || len > v->size - off)
		return kite_error("%s: read beyond the end of the image", v->name);
	uint8_t *p = buf;
	while (len > 0) {
		uint64_t in = off % v->grain;
		uint64_t n = v->grain - in;
		if (n > len)
			n = len;
		uint32_t e;
		if (grain_entry(v, off, &e))
			return -1;
		if (e == 0 || is_zero_entry(v, e)) {
			memset(p, 0, (size_t)n);
		} else if (v->compressed) {
			if (load_compressed(v, e))
				return -1;
			memcpy(p, v->grain_buf + in, (size_t)n);
		} else {
			uint64_t host = (uint64_t)e * SECTOR + in;
			/* A grain starting past the end of the file is corrupt; the tail of
			 * the last grain may be cut short and reads as zeros, as in QEMU. */
			if (host >= v->file_size)
				return kite_error(
				    "%s: grain at %llu lies beyond the end of the file", v->name,
				    (unsigned long long)host);
			uint64_t have = v->file_size - host < n ? v->file_size - host : n;
			if (read_at(v, p, (size_t)have, host, "a grain"))
				return -1;
			memset(p + have, 0, (size_t)(n - have));
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int vmdk_block_status(struct vmdk *v, uint64_t off, uint64_t len, uint64_t *pnum, uint64_t *host)
{
	if (off >= v->size)
		return kite_error("%s: block status beyond the end of the image", v->name);
	if (len > v->size - off)
		len = v->size - off;
	uint32_t e;
	if (grain_entry(v, off, &e))
		return -1;
	int st = e == 0 ? VMDK_UNALLOCATED : is_zero_entry(v, e) ? VMDK_ZERO : VMDK_DATA;
	bool mapped = st == VMDK_DATA && !v->compressed;
	uint64_t in = off % v->grain;
	*host = mapped ? (uint64_t)e * SECTOR + in : UINT64_MAX;
	uint64_t done = v->grain - in;
	uint64_t next_host = mapped ? (uint64_t)e * SECTOR + v->grain : 0;
	while (done < len) {
		uint32_t e2;
		if (grain_entry(v, off + done, &e2))
			return -1;
		int st2 = e2 == 0 ? VMDK_UNALLOCATED : is_zero_entry(v, e2) ? VMDK_ZERO : VMDK_DATA;
		if (st2 != st)
			break;
		if (mapped) {
			if ((uint64_t)e2 * SECTOR != next_host)
				break;
			next_host += v->grain;
		}
		done += v->grain;
	}
	*pnum = done < len ? done : len;
	return st;
}

int vmdk_check(struct vmdk *v, uint64_t *corruptions)
{
	*corruptions = 0;
	uint64_t grains = (v->size + v->grain - 1) / v->grain;
	for (uint64_t g = 0; g < grains; g++) {
		if (v->gd[g / v->gtes] == 0) { /* no grain table: skip all of it */
			g = (g / v->gtes + 1) * v->gtes - 1;
			continue;
		}
		uint64_t sector = g * v->grain / SECTOR;
		uint32_t e;
		if (grain_entry(v, g * v->grain, &e) < 0) {
			fprintf(stderr, "ERROR: could not get cluster_offset for sector %llu\n",
				(unsigned long long)sector);
			*corruptions = 1;
			return 0;
		}
		if (e != 0 && !is_zero_entry(v, e) && (uint64_t)e * SECTOR >= v->file_size) {
			fprintf(stderr, "ERROR: cluster offset for sector %llu points after EOF\n",
				(unsigned long long)sector);
			*corruptions = 1;
			return 0;
		}
	}
	return 0;
}

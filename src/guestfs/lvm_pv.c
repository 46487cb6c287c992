#include "guestfs/lvm_pv.h"
#include "util/err.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SECTOR	      512u
#define LABEL_SECTORS 4u
#define LABEL_HDR     32u /* id[8] sector[8] crc[4] offset[4] type[8] */
#define PV_HDR	      40u /* uuid[32] device_size[8], then the area lists */
#define LOCN	      16u /* offset[8] size[8] */
#define MDA_HDR	      512u
#define MDA_MAGIC     " LVM2 x[5A%r0N*>"
#define RLOCN_OFF     40u /* checksum[4] magic[16] version[4] start[8] size[8] */
#define RLOCN_IGNORED 1u

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

uint32_t lvm_crc(uint32_t crc, const void *buf, size_t len)
{
	/* zlib inverts before and after; lvm2's variant does neither */
	return ~(uint32_t)crc32(~crc & 0xffffffffu, buf, (uInt)len);
}

void lvm_pv_free(struct lvm_pv_label *l)
{
	for (size_t i = 0; i < l->ntexts; i++)
		free(l->text[i]);
	memset(l, 0, sizeof(*l));
}

/* lvm2's UUID alphabet: letters, digits, '!' and '#'. */
static bool uuid_ok(const uint8_t *u)
{
	for (unsigned i = 0; i < LVM_UUID_LEN; i++) {
		uint8_t c = u[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '!' || c == '#'))
			return false;
	}
	return true;
}

/* Returns the sector (0..3) holding a label, -1 if none; a label whose checksum or sector
 * number is wrong is ignored, as lvm2 ignores it. */
static int find_label(const uint8_t *buf, size_t have, const char *name)
{
	for (unsigned s = 0; (s + 1) * SECTOR <= have && s < LABEL_SECTORS; s++) {
		const uint8_t *l = buf + s * SECTOR;
		if (memcmp(l, "LABELONE", 8))
			continue;
		if (le64(l + 8) != s ||
		    lvm_crc(LVM_CRC_INIT, l + 20, SECTOR - 20) != le32(l + 16)) {
			kite_warn("%s: an LVM2 label in sector %u has a wrong checksum or sector "
				  "number: ignored, as lvm2 ignores it",
				  name, s);
			continue;
		}
		if (memcmp(l + 24, "LVM2 001", 8)) {
			kite_warn("%s: an LVM label of a type other than LVM2 001: ignored", name);
			continue;
		}
		return (int)s;
	}
	return -1;
}

/* Reads the metadata text a ring buffer holds at [off, off + size) of the area, wrapping to
 * just after the area's header. */
static int read_text(const struct gdev *dev, const char *name, uint64_t mda, uint64_t mda_size,
		     const uint8_t *rl, struct lvm_pv_label *out)
{
	uint64_t off = le64(rl), size = le64(rl + 8);
	uint32_t want = le32(rl + 16);
	if (off < MDA_HDR || off >= mda_size || !size || size > mda_size - MDA_HDR)
		return kite_error("%s: the metadata area at offset %llu locates its text at "
				  "%llu (%llu bytes), outside the area (%llu bytes)",
				  name, (unsigned long long)mda, (unsigned long long)off,
				  (unsigned long long)size, (unsigned long long)mda_size);
	if (size > LVM_MAX_TEXT)
		return kite_error("%s: the LVM2 metadata text is %llu bytes, more than the %u kite "
				  "reads",
				  name, (unsigned long long)size, LVM_MAX_TEXT);
	/* what does not fit before the area's end continues after its header; as the text is
	 * smaller than the ring, it cannot reach its own start */
	uint64_t first = size < mda_size - off ? size : mda_size - off, rest = size - first;
	char *text = malloc(size + 1);
	if (!text)
		return kite_error("out of memory reading LVM2 metadata");
	if (gdev_read(dev, text, first, mda + off) < 0 ||
	    (rest && gdev_read(dev, text + first, rest, mda + MDA_HDR) < 0)) {
		free(text);
		return -1;
	}
	text[size] = 0;
	if (lvm_crc(LVM_CRC_INIT, text, size) != want) {
		free(text);
		return kite_error("%s: the LVM2 metadata text has a wrong checksum", name);
	}
	out->text[out->ntexts] = text;
	out->text_len[out->ntexts++] = size;
	return 0;
}

/* One metadata area: its header, then the text its first raw location points at. */
static int read_mda(const struct gdev *dev, const char *name, uint64_t off, uint64_t size,
		    struct lvm_pv_label *out)
{
	uint8_t h[MDA_HDR];
	if (size < MDA_HDR || off > dev->size || size > dev->size - off)
		return kite_error("%s: a metadata area (offset %llu, %llu bytes) lies outside the "
				  "physical volume (%llu bytes)",
				  name, (unsigned long long)off, (unsigned long long)size,
				  (unsigned long long)dev->size);
	if (gdev_read(dev, h, sizeof(h), off) < 0)
		return -1;
	if (memcmp(h + 4, MDA_MAGIC, 16))
		return kite_error("%s: no metadata area header at offset %llu", name,
				  (unsigned long long)off);
	if (lvm_crc(LVM_CRC_INIT, h + 4, MDA_HDR - 4) != le32(h))
		return kite_error("%s: the metadata area header at offset %llu has a wrong "
				  "checksum",
				  name, (unsigned long long)off);
	if (le32(h + 20) != 1)
		return kite_error("%s: metadata area version %u (kite reads version 1)", name,
				  le32(h + 20));
	if (le64(h + 24) != off || le64(h + 32) != size)
		return kite_error("%s: the metadata area header at offset %llu disagrees with the "
				  "PV header about where the area is",
				  name, (unsigned long long)off);
	const uint8_t *rl = h + RLOCN_OFF;
	if (le32(rl + 20) & RLOCN_IGNORED)
		return 0;
	if (!le64(rl) && !le64(rl + 8))
		return 0; /* a PV in no volume group */
	return read_text(dev, name, off, size, rl, out);
}

/* The PV header's two lists (data areas, then metadata areas), each ended by an entry with a
 * zero offset, must end inside the label sector. */
static int read_areas(const struct gdev *dev, const char *name, const uint8_t *l, uint32_t pos,
		      struct lvm_pv_label *out)
{
	for (int list = 0; list < 2; list++) {
		for (;; pos += LOCN) {
			if (pos + LOCN > SECTOR)
				return kite_error("%s: the PV header's area lists run past its "
						  "sector",
						  name);
			uint64_t off = le64(l + pos), size = le64(l + pos + 8);
			if (!off)
				break;
			if (list == 0)
				continue; /* data areas: the VG metadata says where extents are */
			if (out->ntexts == LVM_PV_MAX_MDAS)
				return kite_error("%s: more than %d metadata areas", name,
						  LVM_PV_MAX_MDAS);
			if (read_mda(dev, name, off, size, out) < 0)
				return -1;
		}
		pos += LOCN;
	}
	return 0;
}

int lvm_pv_read(const struct gdev *dev, const char *name, struct lvm_pv_label *out)
{
	uint8_t buf[LABEL_SECTORS * SECTOR];
	memset(out, 0, sizeof(*out));
	size_t have = dev->size < sizeof(buf) ? (size_t)dev->size : sizeof(buf);
	if (have < SECTOR)
		return 0;
	if (gdev_read(dev, buf, have, 0) < 0)
		return -1;
	int s = find_label(buf, have, name);
	if (s < 0)
		return 0;
	const uint8_t *l = buf + (unsigned)s * SECTOR;
	uint32_t hdr = le32(l + 20);
	if (hdr < LABEL_HDR || hdr > SECTOR - PV_HDR)
		return kite_error("%s: the LVM2 label puts the PV header at offset %u, outside its "
				  "sector",
				  name, hdr);
	if (!uuid_ok(l + hdr))
		return kite_error("%s: the PV header's UUID is not an LVM2 UUID", name);
	memcpy(out->uuid, l + hdr, LVM_UUID_LEN);
	out->dev_size = le64(l + hdr + LVM_UUID_LEN);
	out->sector = (unsigned)s;
	if (read_areas(dev, name, l, hdr + PV_HDR, out) < 0) {
		lvm_pv_free(out);
		return -1;
	}
	return 1;
}

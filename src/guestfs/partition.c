#include "guestfs/partition.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MBR_SECTOR	 512
#define MAX_LOGICAL	 256 /* more EBRs than this is a loop or garbage */
#define GPT_MAX_ENTRIES	 4096
#define GPT_MAX_ENT_SIZE 4096

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int add_part(struct part_table *t, const struct part *p)
{
	struct part *n = realloc(t->parts, (t->count + 1) * sizeof(*n));
	if (!n)
		return kite_error("out of memory");
	t->parts = n;
	t->parts[t->count++] = *p;
	return 0;
}

void part_table_free(struct part_table *t)
{
	free(t->parts);
	t->parts = NULL;
	t->count = 0;
}

const struct part *part_find(const struct part_table *t, int number)
{
	for (size_t i = 0; i < t->count; i++)
		if (t->parts[i].number == number)
			return &t->parts[i];
	return NULL;
}

static bool is_extended(uint8_t type)
{
	return type == 0x05 || type == 0x0f || type == 0x85;
}

/* GUIDs are stored with their first three fields little-endian. */
static void format_guid(char out[37], const uint8_t *g)
{
	snprintf(out, 37, "%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X", le32(g), le16(g + 4),
		 le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}

/* UTF-16LE (up to `units` code units, NUL-terminated or not) to UTF-8; bad surrogates become
 * U+FFFD. `out` must hold 3 bytes per unit plus one. */
static void utf16_to_utf8(char *out, const uint8_t *in, size_t units)
{
	char *o = out;
	for (size_t i = 0; i < units; i++) {
		uint32_t c = le16(in + 2 * i);
		if (!c)
			break;
		if (c >= 0xd800 && c < 0xdc00 && i + 1 < units) {
			uint32_t lo = le16(in + 2 * i + 2);
			if (lo >= 0xdc00 && lo < 0xe000) {
				c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
				i++;
			} else {
				c = 0xfffd;
			}
		} else if (c >= 0xd800 && c < 0xe000) {
			c = 0xfffd;
		}
		if (c < 0x80) {
			*o++ = (char)c;
		} else if (c < 0x800) {
			*o++ = (char)(0xc0 | c >> 6);
			*o++ = (char)(0x80 | (c & 0x3f));
		} else if (c < 0x10000) {
			*o++ = (char)(0xe0 | c >> 12);
			*o++ = (char)(0x80 | ((c >> 6) & 0x3f));
			*o++ = (char)(0x80 | (c & 0x3f));
		} else {
			/* a pair of units became 4 bytes: still within 3 bytes per unit */
			*o++ = (char)(0xf0 | c >> 18);
			*o++ = (char)(0x80 | ((c >> 12) & 0x3f));
			*o++ = (char)(0x80 | ((c >> 6) & 0x3f));
			*o++ = (char)(0x80 | (c & 0x3f));
		}
	}
	*o = 0;
}

/* Reads a GPT header at `lba` and its entry array; returns 1 if valid (filling `t`), 0 if not
 * a valid header, -1 on I/O error. */
static int gpt_try(const struct gdev *dev, unsigned ss, uint64_t lba, struct part_table *t)
{
	uint8_t *hdr = malloc(ss);
	uint8_t *ents = NULL;
	int ret = 0;
	if (!hdr)
		return kite_error("out of memory");
	if ((lba + 1) * ss > dev->size)
		goto out;
	if (gdev_read(dev, hdr, ss, lba * ss) < 0) {
		ret = -1;
		goto out;
	}
	if (memcmp(hdr, "EFI PART", 8))
		goto out;
	uint32_t hsize = le32(hdr + 12);
	if (hsize < 92 || hsize > ss)
		goto out;
	uint32_t want = le32(hdr + 16);
	memset(hdr + 16, 0, 4);
	if ((uint32_t)crc32(0, hdr, hsize) != want)
		goto out;
	if (le64(hdr + 24) != lba)
		goto out;
	uint64_t ent_lba = le64(hdr + 72);
	uint32_t n = le32(hdr + 80), esz = le32(hdr + 84);
	if (n > GPT_MAX_ENTRIES || esz < 128 || esz > GPT_MAX_ENT_SIZE || esz % 8)
		goto out;
	uint64_t bytes = (uint64_t)n * esz;
	uint64_t sectors = dev->size / ss;
	if (ent_lba >= sectors || bytes > (sectors - ent_lba) * ss)
		goto out;
	ents = malloc(bytes ? bytes : 1);
	if (!ents) {
		ret = kite_error("out of memory");
		goto out;
	}
	if (gdev_read(dev, ents, bytes, ent_lba * ss) < 0) {
		ret = -1;
		goto out;
	}
	if ((uint32_t)crc32(0, ents, (uInt)bytes) != le32(hdr + 88))
		goto out;
	format_guid(t->disk_guid, hdr + 56);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = ents + (size_t)i * esz;
		static const uint8_t zero[16];
		if (!memcmp(e, zero, 16))
			continue;
		uint64_t first = le64(e + 32), last = le64(e + 40);
		struct part p = {.number = (int)i + 1, .kind = PART_GPT};
		if (last < first || last >= UINT64_MAX / ss) {
			kite_warn("GPT entry %u has an invalid range (%llu..%llu); ignored", i + 1,
				  (unsigned long long)first, (unsigned long long)last);
			continue;
		}
		p.start = first * ss;
		p.size = (last - first + 1) * ss;
		format_guid(p.type_guid, e);
		format_guid(p.uuid, e + 16);
		utf16_to_utf8(p.name, e + 56, 36);
		if (add_part(t, &p) < 0) {
			ret = -1;
			goto out;
		}
	}
	ret = 1;
out:
	free(hdr);
	free(ents);
	return ret;
}

static int gpt_scan(const struct gdev *dev, struct part_table *t)
{
	static const unsigned sizes[] = {512, 4096};
	for (size_t i = 0; i < 2; i++) {
		unsigned ss = sizes[i];
		int r = gpt_try(dev, ss, 1, t);
		if (r == 0 && dev->size / ss >= 2) {
			r = gpt_try(dev, ss, dev->size / ss - 1, t);
			if (r == 1) {
				kite_warn("the primary GPT header is damaged; using the backup");
				t->used_backup = true;
			}
		}
		if (r < 0)
			return -1;
		if (r == 1) {
			t->sector_size = ss;
			return 0;
		}
	}
	return kite_error("the disk has a protective MBR but no valid GPT header");
}

static void mbr_entry(const uint8_t *e, struct part *p, uint64_t base)
{
	p->bootable = e[0] == 0x80;
	p->mbr_type = e[4];
	p->start = base + (uint64_t)le32(e + 8) * MBR_SECTOR;
	p->size = (uint64_t)le32(e + 12) * MBR_SECTOR;
}

/* Follows the chain of extended boot records inside the extended partition `ext`. */
static int mbr_logical(const struct gdev *dev, const struct part *ext, struct part_table *t)
{
	uint8_t ebr[MBR_SECTOR];
	uint64_t visited[MAX_LOGICAL];
	uint64_t rel = 0; /* EBR offset from the start of the extended partition */
	int number = 5;
	for (int i = 0;; i++) {
		if (i == MAX_LOGICAL)
			return kite_error("more than %d logical partitions: the chain of extended "
					  "boot records loops",
					  MAX_LOGICAL);
		for (int j = 0; j < i; j++)
			if (visited[j] == rel)
				return kite_error(
				    "the chain of extended boot records loops back to "
				    "offset %llu",
				    (unsigned long long)(ext->start + rel));
		visited[i] = rel;
		if (rel >= ext->size || ext->start + rel + MBR_SECTOR > dev->size)
			return kite_error("an extended boot record lies outside the extended "
					  "partition");
		if (gdev_read(dev, ebr, sizeof(ebr), ext->start + rel) < 0)
			return -1;
		if (ebr[510] != 0x55 || ebr[511] != 0xaa)
			return kite_error(
			    "bad signature in the extended boot record at offset %llu",
			    (unsigned long long)(ext->start + rel));
		const uint8_t *e0 = ebr + 446, *e1 = ebr + 462;
		if (e0[4] && le32(e0 + 12)) {
			struct part p = {.number = number++, .kind = PART_LOGICAL};
			mbr_entry(e0, &p, ext->start + rel);
			if (add_part(t, &p) < 0)
				return -1;
		}
		if (!is_extended(e1[4]) || !le32(e1 + 12))
			return 0;
		rel = (uint64_t)le32(e1 + 8) * MBR_SECTOR;
	}
}

/* A FAT boot sector also ends in 55 AA: it is a filesystem, not a partition table. */
static bool looks_like_vbr(const uint8_t *s)
{
	if (s[0] != 0xeb && s[0] != 0xe9)
		return false;
	return !memcmp(s + 54, "FAT", 3) || !memcmp(s + 82, "FAT", 3) ||
	       !memcmp(s + 3, "NTFS    ", 8) || !memcmp(s + 3, "EXFAT   ", 8);
}

int part_scan(const struct gdev *dev, struct part_table *t)
{
	uint8_t mbr[MBR_SECTOR];
	memset(t, 0, sizeof(*t));
	strcpy(t->scheme, "none");
	t->sector_size = MBR_SECTOR;
	if (dev->size < MBR_SECTOR)
		return 0;
	if (gdev_read(dev, mbr, sizeof(mbr), 0) < 0)
		return -1;
	if (mbr[510] != 0x55 || mbr[511] != 0xaa || looks_like_vbr(mbr))
		return 0;
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = mbr + 446 + 16 * i;
		if (e[0] != 0 && e[0] != 0x80)
			return 0; /* not a partition table */
	}
	for (int i = 0; i < 4; i++) {
		if (mbr[446 + 16 * i + 4] == 0xee) {
			strcpy(t->scheme, "gpt");
			if (gpt_scan(dev, t) < 0) {
				part_table_free(t);
				return -1;
			}
			return 0;
		}
	}
	strcpy(t->scheme, "mbr");
	int n_ext = 0;
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = mbr + 446 + 16 * i;
		if (!e[4] || !le32(e + 12))
			continue;
		struct part p = {.number = i + 1, .kind = PART_PRIMARY};
		mbr_entry(e, &p, 0);
		if (is_extended(e[4])) {
			p.kind = PART_EXTENDED;
			n_ext++;
		}
		if (add_part(t, &p) < 0)
			goto fail;
	}
	if (n_ext > 1) {
		kite_error("the MBR has %d extended partitions (at most one is allowed)", n_ext);
		goto fail;
	}
	for (size_t i = 0; i < t->count; i++) {
		if (t->parts[i].kind == PART_EXTENDED) {
			struct part ext = t->parts[i];
			if (mbr_logical(dev, &ext, t) < 0)
				goto fail;
			break;
		}
	}
	return 0;
fail:
	part_table_free(t);
	return -1;
}

const char *part_type_name(const struct part *p)
{
	static const struct {
		const char *guid, *name;
	} guids[] = {
	    {"0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"},
	    {"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "Linux root (x86-64)"},
	    {"933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "Linux home"},
	    {"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"},
	    {"E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"},
	    {"A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"},
	    {"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System"},
	    {"21686148-6449-6E6F-744E-656564454649", "BIOS boot"},
	    {"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "Microsoft basic data"},
	    {"E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved"},
	};
	static const struct {
		uint8_t type;
		const char *name;
	} mbr[] = {
	    {0x83, "Linux"},	       {0x82, "Linux swap"},
	    {0x8e, "Linux LVM"},       {0xfd, "Linux raid autodetect"},
	    {0x05, "Extended"},	       {0x0f, "W95 Ext'd (LBA)"},
	    {0x85, "Linux extended"},  {0x0b, "W95 FAT32"},
	    {0x0c, "W95 FAT32 (LBA)"}, {0x06, "FAT16"},
	    {0x0e, "W95 FAT16 (LBA)"}, {0x01, "FAT12"},
	    {0x07, "HPFS/NTFS/exFAT"}, {0xef, "EFI (FAT-12/16/32)"},
	};
	if (p->kind == PART_GPT) {
		for (size_t i = 0; i < sizeof(guids) / sizeof(guids[0]); i++)
			if (!strcmp(p->type_guid, guids[i].guid))
				return guids[i].name;
		return NULL;
	}
	for (size_t i = 0; i < sizeof(mbr) / sizeof(mbr[0]); i++)
		if (mbr[i].type == p->mbr_type)
			return mbr[i].name;
	return NULL;
}

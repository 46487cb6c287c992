#include "guestfs/fsdetect.h"

#include <stdio.h>
#include <string.h>

/* ext2 superblock fields we need (byte offsets inside the superblock at 1024). */
#define EXT_MAGIC_OFF	  56
#define EXT_LOG_BSIZE_OFF 24
#define EXT_BLOCKS_LO_OFF 4
#define EXT_BLOCKS_HI_OFF 0x150
#define EXT_COMPAT_OFF	  92
#define EXT_INCOMPAT_OFF  96
#define EXT_ROCOMPAT_OFF  100
#define EXT_UUID_OFF	  104
#define EXT_LABEL_OFF	  120

#define EXT3_COMPAT_JOURNAL	  0x0004
#define EXT4_INCOMPAT_64BIT	  0x0080
#define EXT3_INCOMPAT_JOURNAL_DEV 0x0008
#define EXT2_INCOMPAT_KNOWN	  0x0002 /* filetype: ext2 has it too */

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void uuid_str(char out[37], const uint8_t *u)
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

/* Copies a fixed-width, possibly unterminated or space-padded label; non-printable bytes are
 * replaced so that hostile labels cannot drive a terminal. */
static void copy_label(char *out, size_t outsz, const uint8_t *in, size_t len, bool trim)
{
	size_t n = 0;
	for (; n < len && n + 1 < outsz && in[n]; n++)
		out[n] = (in[n] < 0x20 || in[n] == 0x7f) ? '?' : (char)in[n];
	out[n] = 0;
	while (trim && n && out[n - 1] == ' ')
		out[--n] = 0;
}

static bool detect_ext(const uint8_t *sb, struct fsinfo *fi)
{
	if (le16(sb + EXT_MAGIC_OFF) != 0xef53)
		return false;
	uint32_t compat = le32(sb + EXT_COMPAT_OFF), incompat = le32(sb + EXT_INCOMPAT_OFF);
	uint32_t rocompat = le32(sb + EXT_ROCOMPAT_OFF);
	uint32_t log = le32(sb + EXT_LOG_BSIZE_OFF);
	if (incompat & EXT3_INCOMPAT_JOURNAL_DEV)
		strcpy(fi->type, "jbd");
	else if ((incompat & ~(uint32_t)EXT2_INCOMPAT_KNOWN) || (rocompat & ~(uint32_t)0x3))
		strcpy(fi->type, "ext4"); /* anything beyond sparse_super/large_file/filetype */
	else if (compat & EXT3_COMPAT_JOURNAL)
		strcpy(fi->type, "ext3");
	else
		strcpy(fi->type, "ext2");
	fi->supported = strcmp(fi->type, "jbd") != 0;
	copy_label(fi->label, sizeof(fi->label), sb + EXT_LABEL_OFF, 16, false);
	uuid_str(fi->uuid, sb + EXT_UUID_OFF);
	uint64_t blocks = le32(sb + EXT_BLOCKS_LO_OFF);
	if (incompat & EXT4_INCOMPAT_64BIT)
		blocks |= (uint64_t)le32(sb + EXT_BLOCKS_HI_OFF) << 32;
	fi->size = log <= 6 ? blocks << (10 + log) : 0;
	return true;
}

static bool detect_vfat(const uint8_t *bs, struct fsinfo *fi)
{
	if (bs[510] != 0x55 || bs[511] != 0xaa || (bs[0] != 0xeb && bs[0] != 0xe9))
		return false;
	int label_off, id_off;
	if (!memcmp(bs + 82, "FAT32   ", 8)) {
		label_off = 71;
		id_off = 67;
	} else if (!memcmp(bs + 54, "FAT1", 4) || !memcmp(bs + 54, "FAT     ", 8)) {
		label_off = 43;
		id_off = 39;
	} else {
		return false;
	}
	strcpy(fi->type, "vfat");
	copy_label(fi->label, sizeof(fi->label), bs + label_off, 11, true);
	if (!strcmp(fi->label, "NO NAME"))
		fi->label[0] = 0;
	const uint8_t *id = bs + id_off;
	snprintf(fi->uuid, sizeof(fi->uuid), "%02X%02X-%02X%02X", id[3], id[2], id[1], id[0]);
	uint64_t sectors = le16(bs + 19);
	if (!sectors)
		sectors = le32(bs + 32);
	fi->size = sectors * le16(bs + 11);
	return true;
}

/* Linux swap: signature at the end of the first page (4 KiB on x86). */
static bool detect_swap(const uint8_t *pg, struct fsinfo *fi)
{
	if (memcmp(pg + 4096 - 10, "SWAPSPACE2", 10) && memcmp(pg + 4096 - 10, "SWAP-SPACE", 10))
		return false;
	strcpy(fi->type, "swap");
	uuid_str(fi->uuid, pg + 1036);
	copy_label(fi->label, sizeof(fi->label), pg + 1052, 16, false);
	fi->size = ((uint64_t)le32(pg + 1028) + 1) * 4096;
	return true;
}

int fs_detect(const struct gdev *dev, struct fsinfo *fi)
{
	static uint8_t buf[0x10100]; /* enough for every signature checked below */
	memset(fi, 0, sizeof(*fi));
	strcpy(fi->type, "unknown");
	memset(buf, 0, sizeof(buf));
	uint64_t n = dev->size < sizeof(buf) ? dev->size : sizeof(buf);
	if (n && gdev_read(dev, buf, n, 0) < 0)
		return -1;
	if (detect_ext(buf + 1024, fi) || detect_swap(buf, fi) || detect_vfat(buf, fi))
		return 0;
	static const struct {
		size_t off;
		const char *magic;
		size_t len;
		const char *type;
	} others[] = {
	    {0x218, "LVM2 001", 8, "LVM2_member"}, /* label in sector 1 */
	    {0x018, "LVM2 001", 8, "LVM2_member"}, /* label in sector 0 */
	    {0, "LUKS\xba\xbe", 6, "crypto_LUKS"},
	    {0, "XFSB", 4, "xfs"},
	    {0x10040, "_BHRfS_M", 8, "btrfs"},
	    {3, "NTFS    ", 8, "ntfs"},
	    {3, "EXFAT   ", 8, "exfat"},
	    {0x8001, "CD001", 5, "iso9660"},
	    {0, "hsqs", 4, "squashfs"},
	    {0, "\xa9\x2b\x4d\xfc", 4, "bcache"},
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		if (!memcmp(buf + others[i].off, others[i].magic, others[i].len)) {
			strcpy(fi->type, others[i].type);
			return 0;
		}
	}
	return 0;
}

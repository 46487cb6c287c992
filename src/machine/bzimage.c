#include "machine/bzimage.h"
#include "util/err.h"
#include "machine/boot_bytes.h"

#include <string.h>

bool bzimage_detect(const uint8_t *buf, size_t len)
{
	return len >= SETUP_HEADER + 4 &&
	       get_le16(buf + SETUP_BOOT_FLAG) == SETUP_BOOT_FLAG_MAGIC &&
	       get_le32(buf + SETUP_HEADER) == SETUP_HDRS_MAGIC;
}

int bzimage_parse(const uint8_t *buf, size_t len, const char *name, struct bzimage *out)
{
	memset(out, 0, sizeof(*out));
	if (!bzimage_detect(buf, len))
		return kite_error("%s: no bzImage setup header", name);
	if (len < SETUP_HDR_MAX_END)
		return kite_error("%s: truncated bzImage setup header (%zu bytes)", name, len);
	out->version = get_le16(buf + SETUP_VERSION);
	if (out->version < 0x208)
		return kite_error("%s: boot protocol %u.%02u is too old: kite needs 2.08 or later",
				  name, out->version >> 8, out->version & 0xff);
	/* The header ends where the 2-byte short jump at 0x200 lands. */
	size_t hdr_end = SETUP_HEADER + buf[SETUP_JUMP + 1];
	if (hdr_end < SETUP_PAYLOAD_LENGTH + 4 || hdr_end > SETUP_HDR_MAX_END)
		hdr_end = SETUP_HDR_MAX_END;
	out->hdr = buf + SETUP_HDR_START;
	out->hdr_len = hdr_end - SETUP_HDR_START;

	size_t sects = buf[SETUP_SETUP_SECTS] ? buf[SETUP_SETUP_SECTS] : 4;
	size_t setup_len = (sects + 1) * 512;
	uint64_t off = get_le32(buf + SETUP_PAYLOAD_OFFSET);
	uint64_t plen = get_le32(buf + SETUP_PAYLOAD_LENGTH);
	if (setup_len > len || off > len - setup_len || plen > len - setup_len - off)
		return kite_error("%s: bzImage payload (offset %llu, %llu bytes) lies beyond the "
				  "end of the file (%zu bytes)",
				  name, (unsigned long long)(setup_len + off),
				  (unsigned long long)plen, len);
	if (plen == 0)
		return kite_error("%s: bzImage has an empty payload", name);
	out->payload = buf + setup_len + off;
	out->payload_len = plen;
	out->xloadflags = out->version >= 0x20c ? get_le16(buf + SETUP_XLOADFLAGS) : 0;
	out->initrd_addr_max = get_le32(buf + SETUP_INITRD_ADDR_MAX);
	if (out->initrd_addr_max == 0)
		out->initrd_addr_max = INITRD_ADDR_MAX_OLD;
	out->cmdline_size = get_le32(buf + SETUP_CMDLINE_SIZE);
	return 0;
}

/* What lies at the start of an LVM2 physical volume: the label in one of its first four
 * 512-byte sectors ("LABELONE", type "LVM2 001"), the PV header after it (the PV's UUID, its
 * size, its data and metadata area lists) and, in each metadata area, the mda_header that
 * locates the volume group's current text metadata in that area's ring buffer. Every field is
 * checked against the device and the checksums lvm2 writes. */
#ifndef KITE_GUESTFS_LVM_PV_H
#define KITE_GUESTFS_LVM_PV_H

#include "guestfs/dev.h"

#include <stddef.h>
#include <stdint.h>

#define LVM_PV_MAX_MDAS 8
#define LVM_MAX_TEXT	(16u << 20) /* metadata text kite reads at most */
#define LVM_UUID_LEN	32

struct lvm_pv_label {
	char uuid[LVM_UUID_LEN + 1]; /* as the label stores it: 32 characters, no dashes */
	uint64_t dev_size;	     /* bytes, as the PV header says */
	unsigned sector;	     /* where the label is */
	size_t ntexts;
	char *text[LVM_PV_MAX_MDAS]; /* each metadata area's current text, NUL-terminated */
	size_t text_len[LVM_PV_MAX_MDAS];
};

/* Reads the label of the PV `dev` (`name` in messages). Returns 1 with `out` filled (free it
 * with lvm_pv_free), 0 if `dev` holds no LVM2 label -- or one whose checksum is wrong, which
 * lvm2 ignores too (a warning says so) -- and -1 (reported) if the label, the PV header or a
 * metadata area is corrupt. */
int lvm_pv_read(const struct gdev *dev, const char *name, struct lvm_pv_label *out);
void lvm_pv_free(struct lvm_pv_label *l);

/* lvm2's checksum: CRC-32 started from 0xf597a6cf, without the final inversion. */
uint32_t lvm_crc(uint32_t crc, const void *buf, size_t len);
#define LVM_CRC_INIT 0xf597a6cfu

#endif

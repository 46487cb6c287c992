#include "machine/boot_pvh.h"
#include "util/err.h"
#include "machine/boot_bytes.h"
#include "machine/e820.h"

#include <string.h>

int boot_pvh_write(struct guest_mem *m, uint64_t addr, const struct pvh_boot_args *a)
{
	uint8_t buf[PVH_MEMMAP_OFFSET + E820_MAX * PVH_MEMMAP_ENTRY];
	memset(buf, 0, sizeof(buf));
	struct e820_entry e[E820_MAX];
	int n = e820_build(m, e, E820_MAX);

	put_le32(buf, PVH_START_MAGIC);
	put_le32(buf + 4, 1); /* version 1: has the memory map */
	put_le32(buf + 12, a->initrd_size ? 1 : 0);
	put_le64(buf + 16, a->initrd_size ? addr + PVH_MODLIST_OFFSET : 0);
	put_le64(buf + 24, a->cmdline_addr);
	put_le64(buf + 32, a->rsdp_addr);
	put_le64(buf + 40, addr + PVH_MEMMAP_OFFSET);
	put_le32(buf + 48, (uint32_t)n);
	if (a->initrd_size) {
		put_le64(buf + PVH_MODLIST_OFFSET, a->initrd_addr);
		put_le64(buf + PVH_MODLIST_OFFSET + 8, a->initrd_size);
	}
	for (int i = 0; i < n; i++) {
		uint8_t *p = buf + PVH_MEMMAP_OFFSET + i * PVH_MEMMAP_ENTRY;
		put_le64(p, e[i].addr);
		put_le64(p + 8, e[i].size);
		put_le32(p + 16, e[i].type);
	}
	size_t len = PVH_MEMMAP_OFFSET + (size_t)n * PVH_MEMMAP_ENTRY;
	if (gmem_write(m, addr, buf, len) < 0)
		return kite_error("PVH start_info at 0x%llx is not in guest RAM",
				  (unsigned long long)addr);
	return 0;
}

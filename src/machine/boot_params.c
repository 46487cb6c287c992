#include "machine/boot_params.h"
#include "util/err.h"
#include "machine/boot_bytes.h"
#include "machine/e820.h"

#include <string.h>

#define LOADER_UNDEFINED 0xff /* type_of_loader: a boot loader without an assigned id */
#define HEAP_END_PTR	 0xfe00

static void synth_header(uint8_t *zp)
{
	put_le16(zp + SETUP_BOOT_FLAG, SETUP_BOOT_FLAG_MAGIC);
	put_le32(zp + SETUP_HEADER, SETUP_HDRS_MAGIC);
	put_le16(zp + SETUP_VERSION, BP_SYNTH_VERSION);
	put_le32(zp + SETUP_INITRD_ADDR_MAX, BP_SYNTH_INITRD_ADDR_MAX);
	put_le32(zp + SETUP_KERNEL_ALIGN, BP_SYNTH_KERNEL_ALIGN);
	zp[SETUP_RELOCATABLE] = 1;
	put_le16(zp + SETUP_XLOADFLAGS, XLF_KERNEL_64 | XLF_ABOVE_4G);
	put_le32(zp + SETUP_CMDLINE_SIZE, BP_SYNTH_CMDLINE_SIZE);
}

int boot_params_write(struct guest_mem *m, uint64_t addr, const struct linux_boot_args *a)
{
	uint8_t zp[BP_SIZE];
	memset(zp, 0, sizeof(zp));
	if (a->bz)
		memcpy(zp + SETUP_HDR_START, a->bz->hdr, a->bz->hdr_len);
	else
		synth_header(zp);
	zp[SETUP_TYPE_OF_LOADER] = LOADER_UNDEFINED;
	zp[SETUP_LOADFLAGS] |= LOADFLAG_LOADED_HIGH | LOADFLAG_CAN_USE_HEAP;
	put_le16(zp + SETUP_HEAP_END_PTR, HEAP_END_PTR);
	put_le32(zp + SETUP_CMD_LINE_PTR, (uint32_t)a->cmdline_addr);
	put_le32(zp + BP_EXT_CMD_LINE_PTR, (uint32_t)(a->cmdline_addr >> 32));
	put_le32(zp + SETUP_RAMDISK_IMAGE, (uint32_t)a->initrd_addr);
	put_le32(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(a->initrd_addr >> 32));
	put_le32(zp + SETUP_RAMDISK_SIZE, (uint32_t)a->initrd_size);
	put_le32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)(a->initrd_size >> 32));
	put_le64(zp + BP_ACPI_RSDP_ADDR, a->rsdp_addr);

	struct e820_entry e[E820_MAX];
	int n = e820_build(m, e, E820_MAX);
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	for (int i = 0; i < n; i++) {
		uint8_t *p = zp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;
		put_le64(p, e[i].addr);
		put_le64(p + 8, e[i].size);
		put_le32(p + 16, e[i].type);
	}
	if (gmem_write(m, addr, zp, sizeof(zp)) < 0)
		return kite_error("boot_params at 0x%llx is not in guest RAM",
				  (unsigned long long)addr);
	return 0;
}

/* Linux's boot_params ("zero page"): the setup header (copied from a bzImage or synthesized for a
 * bare vmlinux), the e820 map, the command line and initrd pointers, and the ACPI RSDP address. */
#ifndef KITE_MACHINE_BOOT_PARAMS_H
#define KITE_MACHINE_BOOT_PARAMS_H

#include "machine/bzimage.h"
#include "kvm/memory.h"

#include <stdint.h>

#define BP_SIZE		     4096
#define BP_ACPI_RSDP_ADDR    0x070 /* read by kernels with protocol >= 2.14 */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES	     0x1e8
#define BP_E820_TABLE	     0x2d0
#define BP_E820_ENTRY_SIZE   20

/* Header values kite writes for a bare vmlinux, which carries no setup header. Every x86-64
 * kernel since 3.8 accepts these (initrd_addr_max 0x7fffffff, loadable above 4 GiB). */
#define BP_SYNTH_VERSION	 0x020f
#define BP_SYNTH_INITRD_ADDR_MAX 0x7fffffffu
#define BP_SYNTH_CMDLINE_SIZE	 2047
#define BP_SYNTH_KERNEL_ALIGN	 0x200000u

struct linux_boot_args {
	const struct bzimage *bz; /* NULL: synthesize the header */
	uint64_t cmdline_addr;
	uint64_t initrd_addr, initrd_size; /* 0, 0 without an initrd */
	uint64_t rsdp_addr;
};

/* Builds the zero page and writes it at `addr`. Returns 0 or -1 (error printed). */
int boot_params_write(struct guest_mem *m, uint64_t addr, const struct linux_boot_args *a);

#endif

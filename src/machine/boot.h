/* Boot protocol: lays out guest memory for the first vCPU before it runs, and says which
 * register state that vCPU must start with. This is the entry point `kite run` calls.
 *
 * What kernel_load() accepts (detected by content, not by file name):
 *  - an ELF64 Linux vmlinux: PT_LOAD segments at p_paddr, entered in 64-bit mode at e_entry
 *    (physical) with boot_params ("zero page") in RSI (mode BOOT_LONG64);
 *  - an ELF32/ELF64 freestanding program carrying a PVH note (XEN_ELFNOTE_PHYS32_ENTRY), such as
 *    the test guests in tests/guests/: entered in 32-bit flat protected mode, paging off, with
 *    EBX = hvm_start_info address (mode BOOT_PVH32);
 *  - a bzImage: kite decompresses its payload (xz, zstd, gzip, lz4) into a vmlinux ELF, caches
 *    it under $XDG_CACHE_HOME/kite (or ~/.cache/kite), and loads that as above, with the
 *    bzImage's setup header copied into boot_params;
 *  - a multiboot v1 kernel (header 0x1BADB002 in the first 8 KiB): an ELF32, or any file whose
 *    header gives the load addresses (the "a.out kludge"), entered in 32-bit flat protected
 *    mode with EAX = 0x2BADB002 and EBX = the multiboot information (mode BOOT_MULTIBOOT32;
 *    boot_multiboot.h). It wins over a PVH note, as in QEMU, except in an ELF64 without load
 *    addresses, which only PVH can enter.
 *
 * Guest physical layout kite uses below 1 MiB (documented so devices keep out of it):
 *   0x00500  GDT (null, null, 0x10 code, 0x18 data, 0x20 TSS)
 *   0x06000  hvm_start_info (PVH), 0x06100 module list, 0x06200 memory map; or the multiboot
 *            information, its memory map, module list and boot loader name (to 0x06fff)
 *   0x07000  boot_params (zero page)
 *   0x08000  boot stack page (RSP starts at 0x8ff0)
 *   0x09000  PML4, 0x0A000 PDPT, 0x0B000-0x0EFFF four page directories (2 MiB pages, 0-4 GiB)
 *   0x20000  kernel command line (at most BOOT_CMDLINE_MAX bytes with the NUL); for multiboot
 *            the module strings follow it in the same 64 KiB
 *   0xE0000  ACPI tables, RSDP first (see machine/acpi.h)
 * Kernel segments must lie at or above 1 MiB; the initrd goes as high as the protocol allows.
 * A multiboot kernel may lie lower, outside the GDT, the multiboot information, the strings and
 * 0x9FC00-1 MiB (the EBDA and the ACPI tables); its modules follow it, from 1 MiB up. */
#ifndef KITE_MACHINE_BOOT_H
#define KITE_MACHINE_BOOT_H

#include "kvm/memory.h"

#include <linux/kvm.h>
#include <stdint.h>

#define BOOT_GDT_ADDR	     0x500ULL
#define BOOT_START_INFO_ADDR 0x6000ULL
#define BOOT_MB_INFO_ADDR    0x6000ULL /* multiboot: the information block, to 0x6fff */
#define BOOT_MB_INFO_END     0x7000ULL
#define BOOT_PARAMS_ADDR     0x7000ULL
#define BOOT_STACK_TOP	     0x8ff0ULL
#define BOOT_PML4_ADDR	     0x9000ULL
#define BOOT_CMDLINE_ADDR    0x20000ULL
#define BOOT_CMDLINE_MAX     0x10000ULL
#define BOOT_KERNEL_MIN_ADDR 0x100000ULL

/* Selectors in kite's boot GDT (the Linux 64-bit boot protocol's __BOOT_CS/__BOOT_DS). */
#define BOOT_SEL_CODE 0x10
#define BOOT_SEL_DATA 0x18
#define BOOT_SEL_TSS  0x20

enum boot_mode {
	BOOT_LONG64, /* 64-bit long mode, paging on (identity map), RIP=entry, RSI=boot_params */
	BOOT_PVH32,  /* 32-bit flat protected mode, paging off, EIP=entry, EBX=start_info */
	BOOT_MULTIBOOT32, /* the same, with EAX=0x2BADB002 and EBX=the multiboot information */
};

enum kernel_kind {
	KERNEL_ELF_LINUX, /* ELF vmlinux */
	KERNEL_ELF_PVH,	  /* freestanding ELF with a PVH note */
	KERNEL_BZIMAGE,	  /* bzImage, payload decompressed by kite */
	KERNEL_MULTIBOOT, /* multiboot v1 kernel */
};

/* Register state for the boot vCPU. Apply it as-is: general registers (rip, rsp, rsi, rbx, rax,
 * rflags; all others zero), then sregs: cr0, cr3, cr4, efer, gdt (base, limit), cs from `cs`,
 * ds/es/fs/gs/ss from `ds`, tr from `tr`. The segments are struct kvm_segment so they can be
 * copied straight into struct kvm_sregs. The IDT is left empty (base 0, limit 0): both entry
 * paths run with interrupts off until the guest loads its own. */
struct boot_cpu_state {
	uint64_t rip, rsp, rsi, rbx, rax, rflags;
	uint64_t cr0, cr3, cr4, efer;
	uint64_t gdt_base;
	uint16_t gdt_limit;
	struct kvm_segment cs, ds, tr;
};

struct boot_info {
	enum kernel_kind kind;
	enum boot_mode mode;
	struct boot_cpu_state cpu; /* what the lead applies to vCPU 0 */
	uint64_t kernel_start;	   /* lowest loaded physical address */
	uint64_t kernel_end;	   /* end of the highest segment (memsz, so .bss included) */
	uint64_t entry64;	   /* 64-bit Linux entry (physical), 0 when none */
	uint64_t pvh_entry;	   /* PVH 32-bit entry from the ELF note, 0 when none */
	uint64_t initrd_addr, initrd_size; /* 0, 0 without an initrd */
	uint64_t boot_params_addr;	   /* BOOT_PARAMS_ADDR for Linux, else 0 */
	uint64_t start_info_addr; /* BOOT_START_INFO_ADDR when a PVH entry exists, else 0 */
	uint64_t mb_info_addr;	  /* BOOT_MB_INFO_ADDR for a multiboot kernel, else 0 */
	unsigned mb_modules;	  /* multiboot modules loaded (from the initrd list) */
};

/* Loads `kernel_path` (and `initrd_path`, `cmdline`; both may be NULL) into guest memory, writes
 * the boot data (boot_params and/or hvm_start_info, e820, GDT, page tables, cmdline) and fills
 * `out`. ACPI tables are separate: call acpi_build() (machine/acpi.h) too; boot_params and
 * start_info point at ACPI_RSDP_ADDR. Memory must be zero-filled beforehand (fresh mmap).
 * For a multiboot kernel `initrd_path` is a module list (config/initrd_list.h) and the command
 * line it gets is "KERNEL_PATH CMDLINE", as QEMU gives it.
 * Returns 0, or -1 with "kite: error: ..." printed (not a kernel, corrupt payload, memory too
 * small, initrd does not fit, cmdline too long, unreadable file). */
int kernel_load(struct guest_mem *m, const char *kernel_path, const char *initrd_path,
		const char *cmdline, struct boot_info *out);

/* For a Linux kernel that also carries a PVH note (out->pvh_entry != 0): switch `bi` to the PVH
 * entry instead of the 64-bit one (start_info is already written). Returns 0, or -1 (with an
 * error printed) when the kernel has no PVH entry. */
int boot_use_pvh(struct boot_info *bi);

#endif

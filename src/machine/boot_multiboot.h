/* Multiboot v1 (the Multiboot Specification 0.6.96): the header a kernel carries in its first
 * 8 KiB, and the loader that enters such a kernel as GRUB and QEMU's -kernel do.
 *
 * What the kernel gets (EBX = BOOT_MB_INFO_ADDR, EAX = MB_BOOT_MAGIC, flat 32-bit segments,
 * paging and interrupts off):
 *   mem_lower/mem_upper  RAM from 0 (at most 640 KiB) and RAM contiguous from 1 MiB, in KiB
 *   cmdline              "KERNEL_PATH CMDLINE" (QEMU's form: the kernel's path is argv[0])
 *   mods                 the --initrd list, in order, each page aligned after the kernel (from
 *                        1 MiB up), with its string "FILE ARGS"
 *   mmap                 kite's e820 map, entries of size 20
 *   boot_loader_name     "kite"
 * The information block, its memory map, module list and the loader name lie at 0x6000-0x6fff;
 * the command line and the module strings at BOOT_CMDLINE_ADDR (boot.h).
 *
 * Refused, with an error naming the cause: a video mode request (flag 2) or any other required
 * flag kite does not know (bits 3-15); load addresses (flag 16) that do not describe the file;
 * an image outside RAM, past 4 GiB or over kite's boot area; an entry point outside the image;
 * a file that is neither an ELF32 nor gives load addresses; modules that do not fit in RAM
 * below 4 GiB. */
#ifndef KITE_MACHINE_BOOT_MULTIBOOT_H
#define KITE_MACHINE_BOOT_MULTIBOOT_H

#include "machine/boot.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MB_HEADER_MAGIC	    0x1BADB002u
#define MB_BOOT_MAGIC	    0x2BADB002u
#define MB_SEARCH_BYTES	    8192 /* the header lies in the file's first 8 KiB */
#define MB_FLAG_PAGE_ALIGN  (1u << 0)
#define MB_FLAG_MEMORY_INFO (1u << 1)
#define MB_FLAG_VIDEO_MODE  (1u << 2)
#define MB_FLAG_ADDRESSES   (1u << 16) /* the "a.out kludge": header_addr ... entry_addr */
#define MB_LOADER_NAME	    "kite"

/* The multiboot information (offsets and flags of the fields kite fills in). */
#define MBI_FLAGS	     0
#define MBI_MEM_LOWER	     4
#define MBI_MEM_UPPER	     8
#define MBI_CMDLINE	     16
#define MBI_MODS_COUNT	     20
#define MBI_MODS_ADDR	     24
#define MBI_MMAP_LENGTH	     44
#define MBI_MMAP_ADDR	     48
#define MBI_BOOT_LOADER_NAME 64
#define MBI_SIZE	     88
#define MBI_HAS_MEMORY	     (1u << 0)
#define MBI_HAS_CMDLINE	     (1u << 2)
#define MBI_HAS_MODS	     (1u << 3)
#define MBI_HAS_MMAP	     (1u << 6)
#define MBI_HAS_LOADER_NAME  (1u << 9)
#define MB_MODULE_SIZE	     16 /* mod_start, mod_end (exclusive), string, reserved */
#define MB_MMAP_ENTRY_SIZE   24 /* size (20), base_addr, length, type */

/* Where the pieces lie in the information block at BOOT_MB_INFO_ADDR. */
#define MB_MMAP_OFFSET	 0x100
#define MB_MMAP_MAX	 32
#define MB_MODS_OFFSET	 0x400
#define MB_MAX_MODULES	 64
#define MB_LOADER_OFFSET 0x800

struct mb_header {
	size_t offset; /* in the file */
	uint32_t flags;
	bool has_addresses; /* the five address fields lie within the first 8 KiB and the file */
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

/* Finds the first header whose checksum holds (magic + flags + checksum == 0), at a 4-byte
 * aligned offset within the first 8 KiB. */
bool multiboot_find(const uint8_t *buf, size_t len, struct mb_header *h);

struct multiboot_args {
	const char *kernel_path; /* argv[0] of the command line, as given */
	const char *cmdline;	 /* may be NULL */
	const char *modules;	 /* the --initrd list, or NULL */
};

/* Loads the kernel in `buf` (whose header is `h`), its modules and the multiboot information,
 * writes kite's GDT and fills `out` (mode BOOT_MULTIBOOT32). Returns 0; 1 when the file is an
 * ELF64 without load addresses that carries a PVH note, which the caller enters through PVH
 * instead (nothing written); or -1 with an error printed. */
int multiboot_load(struct guest_mem *m, const uint8_t *buf, size_t len, const struct mb_header *h,
		   const struct multiboot_args *a, struct boot_info *out);

#endif

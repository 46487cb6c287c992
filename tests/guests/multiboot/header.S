/* The multiboot v1 header of a program's ELF32 build (build/guests/NAME.mb.elf): modules page
 * aligned (flag 0) and memory information (flag 1); the loader takes the load addresses and
 * the entry (multiboot_entry, lib/entry.S) from the ELF. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.section .note.GNU-stack, "", @progbits

/* The multiboot v1 header of a program's flat build (build/guests/NAME.mbk.bin, objcopy -O
 * binary): flags 0 and 1 as header.S, and flag 16, the "a.out kludge": the header itself says
 * where the file's bytes go (from load_addr up to load_end_addr, zeros up to bss_end_addr) and
 * where to enter, since a flat file has no program headers. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010003

	.section .multiboot, "a"
	.align 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
	.long mb_header		/* header_addr */
	.long _image_start	/* load_addr: the file's first byte */
	.long _load_end		/* load_end_addr */
	.long _image_end	/* bss_end_addr */
	.long multiboot_entry	/* entry_addr */

	.section .note.GNU-stack, "", @progbits

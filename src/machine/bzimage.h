/* bzImage: the x86 boot protocol's setup header and the compressed payload behind it
 * (Documentation/arch/x86/boot.rst). kite never runs the real-mode setup code or the in-guest
 * decompressor: it takes the payload (an ELF vmlinux once decompressed) and the header fields
 * the kernel reads from boot_params. */
#ifndef KITE_MACHINE_BZIMAGE_H
#define KITE_MACHINE_BZIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Offsets of setup-header fields, in the bzImage file and in boot_params alike. */
#define SETUP_HDR_START	      0x1f1
#define SETUP_SETUP_SECTS     0x1f1
#define SETUP_BOOT_FLAG	      0x1fe
#define SETUP_JUMP	      0x200
#define SETUP_HEADER	      0x202
#define SETUP_VERSION	      0x206
#define SETUP_TYPE_OF_LOADER  0x210
#define SETUP_LOADFLAGS	      0x211
#define SETUP_RAMDISK_IMAGE   0x218
#define SETUP_RAMDISK_SIZE    0x21c
#define SETUP_HEAP_END_PTR    0x224
#define SETUP_CMD_LINE_PTR    0x228
#define SETUP_INITRD_ADDR_MAX 0x22c
#define SETUP_KERNEL_ALIGN    0x230
#define SETUP_RELOCATABLE     0x234
#define SETUP_XLOADFLAGS      0x236
#define SETUP_CMDLINE_SIZE    0x238
#define SETUP_PAYLOAD_OFFSET  0x248
#define SETUP_PAYLOAD_LENGTH  0x24c
#define SETUP_PREF_ADDRESS    0x258
#define SETUP_INIT_SIZE	      0x260
#define SETUP_HDR_MAX_END     0x290 /* boot_params' next field after the header and its padding */

#define SETUP_BOOT_FLAG_MAGIC 0xAA55
#define SETUP_HDRS_MAGIC      0x53726448 /* "HdrS" */
#define LOADFLAG_LOADED_HIGH  0x01
#define LOADFLAG_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64	      0x01
#define XLF_ABOVE_4G	      0x02	  /* XLF_CAN_BE_LOADED_ABOVE_4G */
#define INITRD_ADDR_MAX_OLD   0x37ffffffu /* before protocol 2.03 */

struct bzimage {
	const uint8_t *hdr; /* setup header bytes, copied to boot_params at SETUP_HDR_START */
	size_t hdr_len;
	uint16_t version;
	uint16_t xloadflags;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size; /* longest command line, without the NUL */
	const uint8_t *payload;
	size_t payload_len;
};

/* True when the buffer has the boot-sector flag and the "HdrS" magic. */
bool bzimage_detect(const uint8_t *buf, size_t len);

/* Parses the setup header (protocol 2.08 or later: payload_offset/length are needed) and finds
 * the payload, all bounds-checked against `len`. Returns 0 or -1 with an error naming `name`. */
int bzimage_parse(const uint8_t *buf, size_t len, const char *name, struct bzimage *out);

#endif

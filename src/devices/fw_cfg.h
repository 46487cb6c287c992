/* QEMU's firmware configuration interface (docs/specs/fw_cfg.rst in QEMU), the legacy I/O
 * form: a guest writes a 16-bit key to the selector port FW_CFG_PORT (0x510) and reads the
 * item's bytes one at a time from the data port 0x511. Keys kite gives (machine/vm.c fills them):
 *   0x0000 signature "QEMU"        0x0001 features: 1 (the I/O interface; no DMA)
 *   0x0003 RAM size, 64-bit LE     0x0005 vCPUs, 16-bit LE      0x000f most vCPUs, 16-bit LE
 *   0x0019 the file directory: a 32-bit BE count, then per file a 32-bit BE size, a 16-bit
 *          BE key, 16 reserved bits and a 56-byte NUL-padded name, sorted by name
 *   0x0020 on: the files, such as etc/e820 (20-byte LE entries: address, length, type)
 * An unknown key, the bytes past an item's end and the selector port read as zeros (as in
 * QEMU); data port writes are ignored.
 *
 * The DMA interface (fw_cfg_enable_dma; feature bit 1): the guest writes the guest-physical
 * address of a 16-byte access (big-endian control, length, address) to FW_CFG_DMA_PORT, high
 * half at +0 and low half at +4 (which starts it), both big-endian. Control bits: 0x08 select
 * the key in bits 16-31 (offset 0), then 0x02 read `length` bytes of the item into `address`
 * (zeros past its end) or 0x04 skip them; 0x10 write is refused. When done the control word
 * is 0, or 0x01 when a range was not guest RAM or a write was asked. Reading the port gives
 * "QEMU CFG". Guest memory is reached only through kvm/memory.h's checked accessors. */
#ifndef KITE_DEVICES_FW_CFG_H
#define KITE_DEVICES_FW_CFG_H

#include "util/state.h"
#include "kvm/iobus.h"
#include "kvm/memory.h"

#include <pthread.h>
#include <stdint.h>

#define FW_CFG_PORT	  0x510
#define FW_CFG_PORTS	  2 /* selector (16-bit), data (8-bit) */
#define FW_CFG_DMA_PORT	  0x514
#define FW_CFG_DMA_PORTS  8
#define FW_CFG_SIGNATURE  0x0000
#define FW_CFG_ID	  0x0001
#define FW_CFG_RAM_SIZE	  0x0003
#define FW_CFG_NB_CPUS	  0x0005
#define FW_CFG_MAX_CPUS	  0x000f
#define FW_CFG_FILE_DIR	  0x0019
#define FW_CFG_FILE_FIRST 0x0020
#define FW_CFG_NAME_MAX	  56 /* with the NUL */
#define FW_CFG_MAX_ITEMS  16

struct fw_cfg_item {
	uint16_t key;
	uint8_t *data; /* owned */
	uint32_t len;
	char name[FW_CFG_NAME_MAX]; /* files only; "" for a fixed key */
};

struct fw_cfg {
	pthread_mutex_t lock;
	uint16_t selected;
	uint32_t offset;	     /* the next byte of the selected item */
	const struct guest_mem *mem; /* DMA, when enabled */
	uint32_t dma_high;	     /* the address's high half, written first */
	int nitems;
	struct fw_cfg_item items[FW_CFG_MAX_ITEMS];
};

extern const struct io_ops fw_cfg_ops;
/* The guest's place in the items (selector, offset, DMA address half); the items themselves
 * are the machine's, rebuilt from its definition. */
extern const struct state_ops fw_cfg_state_ops;
extern const struct io_ops fw_cfg_dma_ops; /* at FW_CFG_DMA_PORT, after fw_cfg_enable_dma */

/* An empty device: the signature and feature items only. Returns 0 or -1 (reported). */
int fw_cfg_init(struct fw_cfg *f);
void fw_cfg_destroy(struct fw_cfg *f);
/* Turns the DMA interface on over `mem` (feature bit 1). Returns 0 or -1 (reported). */
int fw_cfg_enable_dma(struct fw_cfg *f, const struct guest_mem *mem);
/* Adds a copy of `len` bytes as the item `key`. Returns 0 or -1 (reported). */
int fw_cfg_add(struct fw_cfg *f, uint16_t key, const void *data, uint32_t len);
int fw_cfg_add_le16(struct fw_cfg *f, uint16_t key, uint16_t v);
int fw_cfg_add_le64(struct fw_cfg *f, uint16_t key, uint64_t v);
/* Adds a named file at the next free key from FW_CFG_FILE_FIRST and rewrites the file
 * directory. Returns 0 or -1 (reported: a name too long or given twice, too many items). */
int fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data, uint32_t len);

#endif

/* Read-only VMDK reader: monolithicSparse and streamOptimized hosted sparse extents (the
 * "KDMV" header with its embedded descriptor), as VMware and `qemu-img convert -O vmdk` write
 * them. Used for import (`kite img convert -f vmdk`); there is no write support. */
#ifndef KITE_BLOCK_VMDK_H
#define KITE_BLOCK_VMDK_H

#include <stddef.h>
#include <stdint.h>

struct vmdk;

/* Block status of a range, as vmdk_block_status() reports it. */
enum vmdk_status {
	VMDK_UNALLOCATED = 0, /* no grain: reads as zeros */
	VMDK_ZERO = 1,	      /* zeroed grain (grain table entry 1) */
	VMDK_DATA = 2,	      /* a grain with data; *host is its file offset unless compressed */
};

/* Nonzero when the first bytes of a file (at least 4) look like a VMDK sparse extent. */
int vmdk_probe(const uint8_t *buf, size_t len);

/* Opens `path` read-only and validates the header and grain directory. NULL on error (the
 * reason already printed). */
struct vmdk *vmdk_open(const char *path);
void vmdk_close(struct vmdk *v);

/* Opens on an already open descriptor (not closed by vmdk_close) for drivers that own it. */
struct vmdk *vmdk_open_fd(int fd, const char *name);

uint64_t vmdk_size(const struct vmdk *v);
uint32_t vmdk_grain_size(const struct vmdk *v);
int vmdk_compressed(const struct vmdk *v);
const char *vmdk_create_type(const struct vmdk *v);
uint32_t vmdk_cid(const struct vmdk *v);
uint32_t vmdk_parent_cid(const struct vmdk *v);

/* Reads `len` bytes at virtual offset `off` (any alignment). Returns 0 or -1. */
int vmdk_pread(struct vmdk *v, void *buf, uint64_t len, uint64_t off);

/* Status of the range starting at `off`: returns a vmdk_status and sets *pnum to the length
 * (<= len) that shares it and, for uncompressed data, *host to the contiguous file offset
 * (UINT64_MAX otherwise). Returns -1 on error. */
int vmdk_block_status(struct vmdk *v, uint64_t off, uint64_t len, uint64_t *pnum, uint64_t *host);

/* qemu-img check for vmdk: every allocated grain must start inside the file. Prints
 * "ERROR: ..." for the first that does not (as QEMU) and sets *corruptions to 1. */
int vmdk_check(struct vmdk *v, uint64_t *corruptions);

#endif

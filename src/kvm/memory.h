/* Guest physical memory. RAM is one anonymous mapping; when it is larger than the space
 * below the 32-bit PCI hole, the rest is placed from 4 GiB up. Every access to guest memory
 * goes through these checked accessors: no raw guest-pointer arithmetic elsewhere. */
#ifndef KITE_KVM_MEMORY_H
#define KITE_KVM_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define GMEM_PCI_HOLE_START 0xC0000000ULL /* 3 GiB: RAM stops here below 4 GiB */
#define GMEM_HIGH_START	    0x100000000ULL

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	uint8_t *base; /* the whole mapping */
	uint64_t ram_size;
	int nregions;
	struct gmem_region regions[2];
};

/* Maps `ram_size` bytes of guest RAM (MAP_NORESERVE: untouched memory costs nothing).
 * Returns 0 or -1 with an error printed. */
int gmem_init(struct guest_mem *m, uint64_t ram_size);
/* Lays out regions over an existing buffer (unit tests). */
void gmem_init_from(struct guest_mem *m, uint8_t *buf, uint64_t ram_size);
void gmem_free(struct guest_mem *m);

/* Host pointer for [gpa, gpa+len) when the whole range is RAM inside one region, else NULL.
 * Overflow-checked. */
void *gmem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Copy to/from guest memory; return 0, or -1 (no message) when the range is not RAM. */
int gmem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);
int gmem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len);

/* Bytes of RAM below the PCI hole and from 4 GiB up. */
uint64_t gmem_low_size(const struct guest_mem *m);
uint64_t gmem_high_size(const struct guest_mem *m);

#endif

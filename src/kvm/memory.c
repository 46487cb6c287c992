#include "kvm/memory.h"
#include "util/err.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

void gmem_init_from(struct guest_mem *m, uint8_t *buf, uint64_t ram_size)
{
	memset(m, 0, sizeof(*m));
	m->base = buf;
	m->ram_size = ram_size;
	uint64_t low = ram_size < GMEM_PCI_HOLE_START ? ram_size : GMEM_PCI_HOLE_START;
	m->regions[0] = (struct gmem_region){.gpa = 0, .size = low, .host = buf};
	m->nregions = 1;
	if (ram_size > low) {
		m->regions[1] = (struct gmem_region){
		    .gpa = GMEM_HIGH_START, .size = ram_size - low, .host = buf + low};
		m->nregions = 2;
	}
}

/* Guest RAM starts on a 2 MiB boundary, as QEMU's does: KVM maps a guest's memory with
 * huge pages only where guest-physical and host addresses agree modulo the huge page, and
 * Linux before 6.7 places a large anonymous mapping on any 4 KiB boundary (seen: 352 KiB
 * past one on Debian 12's 6.1), which would leave every guest page a small page. */
#define GMEM_ALIGN (2ULL << 20)

int gmem_init(struct guest_mem *m, uint64_t ram_size)
{
	uint64_t map_size = (ram_size + 4095) & ~4095ULL;
	size_t len = (size_t)(map_size + GMEM_ALIGN);
	uint8_t *raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return kite_error_errno(errno, "cannot map %llu MiB of guest memory",
					(unsigned long long)(ram_size >> 20));
	uint8_t *p = (uint8_t *)(((uintptr_t)raw + GMEM_ALIGN - 1) & ~(uintptr_t)(GMEM_ALIGN - 1));
	size_t head = (size_t)(p - raw), tail = len - head - (size_t)map_size;
	if ((head && munmap(raw, head) < 0) || (tail && munmap(p + map_size, tail) < 0)) {
		int err = errno;
		munmap(raw, len);
		return kite_error_errno(err, "cannot align guest memory");
	}
	/* Transparent huge pages make guest page tables cheaper for KVM; a hint only. */
	(void)madvise(p, map_size, MADV_HUGEPAGE);
	gmem_init_from(m, p, ram_size);
	return 0;
}

void gmem_free(struct guest_mem *m)
{
	if (m->base)
		munmap(m->base, m->ram_size);
	memset(m, 0, sizeof(*m));
}

void *gmem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < m->nregions; i++) {
		const struct gmem_region *r = &m->regions[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off > r->size || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}

int gmem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	void *p = gmem_ptr(m, gpa, len);
	if (!p)
		return -1;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gmem_ptr(m, gpa, len);
	if (!p)
		return -1;
	memcpy(p, src, len);
	return 0;
}

uint64_t gmem_low_size(const struct guest_mem *m)
{
	return m->regions[0].size;
}

uint64_t gmem_high_size(const struct guest_mem *m)
{
	return m->nregions > 1 ? m->regions[1].size : 0;
}

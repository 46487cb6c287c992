/* A test driver's half of a split virtqueue: lays out rings and descriptors in a fake guest
 * memory the way Linux's virtio_ring does. Shared by the virtio unit tests. */
#ifndef KITE_TESTS_VDRIVER_H
#define KITE_TESTS_VDRIVER_H

#include "kvm/memory.h"

#include <stdint.h>
#include <string.h>

struct tq {
	const struct guest_mem *mem;
	uint64_t desc, avail, used;
	uint16_t size, avail_idx;
};

/* Rings at `base`: descriptors, then the available ring, then the used ring (4 KiB apart for
 * sizes up to 256). */
static inline void tq_init(struct tq *t, const struct guest_mem *m, uint64_t base, uint16_t size)
{
	t->mem = m;
	t->size = size;
	t->desc = base;
	t->avail = base + 16ull * size;
	t->used = (t->avail + 6 + 2ull * size + 4095) & ~4095ull;
	t->avail_idx = 0;
	memset(gmem_ptr(m, base, t->used + 6 + 8ull * size - base), 0,
	       t->used + 6 + 8ull * size - base);
}

static inline void tq_desc_at(const struct guest_mem *m, uint64_t table, uint16_t i, uint64_t addr,
			      uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *p = gmem_ptr(m, table + 16ull * i, 16);
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static inline void tq_desc(struct tq *t, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
			   uint16_t next)
{
	tq_desc_at(t->mem, t->desc, i, addr, len, flags, next);
}

static inline void tq_avail(struct tq *t, uint16_t head)
{
	uint8_t *ring = gmem_ptr(t->mem, t->avail, 6 + 2ull * t->size);
	memcpy(ring + 4 + 2 * (t->avail_idx % t->size), &head, 2);
	t->avail_idx++;
	__atomic_store_n((uint16_t *)(ring + 2), t->avail_idx, __ATOMIC_RELEASE);
}

static inline uint16_t tq_used_idx(const struct tq *t)
{
	uint8_t *ring = gmem_ptr(t->mem, t->used, 4);
	return __atomic_load_n((uint16_t *)(ring + 2), __ATOMIC_ACQUIRE);
}

static inline void tq_used_elem(const struct tq *t, uint16_t n, uint32_t *id, uint32_t *len)
{
	uint8_t *e = gmem_ptr(t->mem, t->used + 4 + 8ull * (n % t->size), 8);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

#endif

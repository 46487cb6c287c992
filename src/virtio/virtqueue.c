#include "virtio/virtqueue.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Records why the guest's queue is unusable (the device reports it, rate-limited: a hostile
 * guest must not flood the host's log). Returns -1. */
static int vq_fail(struct virtq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int vq_fail(struct virtq *q, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q->error, sizeof(q->error), fmt, ap);
	va_end(ap);
	return -1;
}

/* Ring layouts (virtio 1.x 2.7): all little-endian, which is the host's order on x86. */
#define DESC_SIZE 16

static uint64_t desc_table_bytes(uint16_t size)
{
	return (uint64_t)size * DESC_SIZE;
}
static uint64_t avail_bytes(uint16_t size)
{
	return 6 + 2ull * size; /* flags, idx, ring[], used_event */
}
static uint64_t used_bytes(uint16_t size)
{
	return 6 + 8ull * size; /* flags, idx, ring[] of {id, len}, avail_event */
}

static uint16_t load16_acquire(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}
static void store16_release(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE);
}

void virtq_reset(struct virtq *q, const struct guest_mem *mem, uint16_t max_size)
{
	memset(q, 0, sizeof(*q));
	q->mem = mem;
	q->max_size = max_size;
	q->size = max_size;
	q->msix_vector = 0xffff; /* VIRTIO_MSI_NO_VECTOR */
}

int virtq_enable(struct virtq *q)
{
	uint16_t n = q->size;
	if (n == 0 || (n & (n - 1)) || n > q->max_size)
		return vq_fail(q, "size %u is not a power of two up to %u", n, q->max_size);
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return vq_fail(q, "ring address not aligned");
	q->desc = gmem_ptr(q->mem, q->desc_gpa, desc_table_bytes(n));
	q->avail = gmem_ptr(q->mem, q->avail_gpa, avail_bytes(n));
	q->used = gmem_ptr(q->mem, q->used_gpa, used_bytes(n));
	if (!q->desc || !q->avail || !q->used) {
		q->desc = q->avail = q->used = NULL;
		return vq_fail(q, "ring outside guest RAM");
	}
	q->last_avail = 0; /* a driver starts its rings at index 0 after a reset */
	q->used_idx = 0;
	q->signalled_valid = false;
	q->enabled = true;
	return 0;
}

int virtq_restore(struct virtq *q, uint16_t last_avail, uint16_t used_idx, uint16_t signalled_used,
		  bool signalled_valid)
{
	if (virtq_enable(q) < 0)
		return -1;
	q->last_avail = last_avail;
	q->used_idx = used_idx;
	q->signalled_used = signalled_used;
	q->signalled_valid = signalled_valid;
	return 0;
}

bool virtq_has_avail(struct virtq *q)
{
	if (!q->enabled)
		return false;
	return load16_acquire(q->avail + 2) != q->last_avail;
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static void read_desc(const uint8_t *table, uint32_t i, struct desc *d)
{
	const uint8_t *p = table + (uint64_t)i * DESC_SIZE;
	memcpy(&d->addr, p, 8);
	memcpy(&d->len, p + 8, 4);
	memcpy(&d->flags, p + 12, 2);
	memcpy(&d->next, p + 14, 2);
}

/* Walks the chain at `head` into *e. Returns 0 or -1 with an error printed. */
static int walk_chain(struct virtq *q, uint16_t head, struct virtq_elem *e)
{
	const uint8_t *table = q->desc;
	uint32_t tsize = q->size, idx = head, steps = 0;
	bool in_indirect = false;

	e->head = head;
	e->n_out = e->n_in = 0;
	e->out_len = e->in_len = 0;
	for (;;) {
		struct desc d;
		if (idx >= tsize)
			return vq_fail(q, "descriptor index %u out of range", idx);
		/* A chain visits each descriptor of its table at most once: more steps is a loop.
		 */
		if (++steps > tsize)
			return vq_fail(q, "descriptor chain loops");
		read_desc(table, idx, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return vq_fail(q, "misplaced indirect descriptor");
			if (d.len == 0 || d.len % DESC_SIZE || d.len / DESC_SIZE > VIRTQ_MAX_SEGS)
				return vq_fail(q, "bad indirect table length %u", d.len);
			table = gmem_ptr(q->mem, d.addr, d.len);
			if (!table)
				return vq_fail(q, "indirect table outside guest RAM");
			tsize = d.len / DESC_SIZE;
			idx = 0;
			steps = 0;
			in_indirect = true;
			continue;
		}
		if (d.len) {
			uint8_t *p = gmem_ptr(q->mem, d.addr, d.len);
			if (!p)
				return vq_fail(q, "buffer 0x%llx+%u outside guest RAM",
					       (unsigned long long)d.addr, d.len);
			if (e->n_out + e->n_in >= VIRTQ_MAX_SEGS)
				return vq_fail(q, "chain has too many buffers");
			if (d.flags & VIRTQ_DESC_F_WRITE) {
				if (e->in_len + d.len > UINT32_MAX)
					return vq_fail(q, "chain too long");
				e->in[e->n_in++] = (struct virtq_iov){p, d.len};
				gmem_mark_dirty(q->mem, p, d.len);
				e->in_len += d.len;
			} else {
				/* Device-readable buffers come first (2.7.4.2). */
				if (e->n_in)
					return vq_fail(q, "readable buffer after a writable one");
				if (e->out_len + d.len > UINT32_MAX)
					return vq_fail(q, "chain too long");
				e->out[e->n_out++] = (struct virtq_iov){p, d.len};
				e->out_len += d.len;
			}
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		idx = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_elem *e)
{
	if (!q->enabled)
		return 0;
	uint16_t avail_idx = load16_acquire(q->avail + 2);
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size)
		return vq_fail(q, "available index moved by %u on a queue of %u", pending, q->size);
	uint16_t head;
	memcpy(&head, q->avail + 4 + 2u * (q->last_avail & (q->size - 1)), 2);
	q->last_avail++;
	if (q->event_idx) {
		/* Ask for a notification as soon as the driver adds more. The fence orders this
		 * store before our next read of avail->idx: without it (x86 lets loads pass
		 * stores) the driver could skip the kick while we see no new entry. */
		store16_release(q->used + 4 + 8u * q->size, q->last_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	return walk_chain(q, head, e) < 0 ? -1 : 1;
}

void virtq_unpop(struct virtq *q, uint16_t n)
{
	q->last_avail -= n;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	if (!q->enabled)
		return;
	uint8_t *ent = q->used + 4 + 8u * (q->used_idx & (q->size - 1));
	uint32_t id = head;
	memcpy(ent, &id, 4);
	memcpy(ent + 4, &len, 4);
	q->used_idx++;
	store16_release(q->used + 2, q->used_idx); /* entry visible before the index */
	gmem_mark_dirty(q->mem, q->used, used_bytes(q->size));
}

bool virtq_should_notify(struct virtq *q)
{
	if (!q->enabled)
		return false;
	/* Our used index must be visible before we read the driver's wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16_acquire(q->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	uint16_t old = q->signalled_used, new = q->used_idx;
	bool valid = q->signalled_valid;
	q->signalled_used = new;
	q->signalled_valid = true;
	if (!valid)
		return true;
	uint16_t event = load16_acquire(q->avail + 4 + 2u * q->size);
	/* vring_need_event: did `new` step past `event` since `old`? */
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

size_t virtq_elem_read(const struct virtq_elem *e, uint64_t off, void *dst, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < e->n_out && done < len; i++) {
		const struct virtq_iov *v = &e->out[i];
		if (off >= v->len) {
			off -= v->len;
			continue;
		}
		size_t n = v->len - off;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)dst + done, v->base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_elem_write(const struct virtq_elem *e, uint64_t off, const void *src, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < e->n_in && done < len; i++) {
		const struct virtq_iov *v = &e->in[i];
		if (off >= v->len) {
			off -= v->len;
			continue;
		}
		size_t n = v->len - off;
		if (n > len - done)
			n = len - done;
		memcpy(v->base + off, (const uint8_t *)src + done, n);
		done += n;
		off = 0;
	}
	return done;
}

uint8_t *virtq_elem_ptr(const struct virtq_elem *e, uint64_t off)
{
	for (unsigned i = 0; i < e->n_in; i++) {
		if (off < e->in[i].len)
			return e->in[i].base + off;
		off -= e->in[i].len;
	}
	return NULL;
}

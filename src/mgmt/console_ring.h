/* The last N bytes a guest wrote to its serial console, kept so that `kite console` can
 * replay recent output on attach. Writers never block on readers: a reader that falls more
 * than the ring's size behind skips what was overwritten. Thread-safe. */
#ifndef KITE_MGMT_CONSOLE_RING_H
#define KITE_MGMT_CONSOLE_RING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct console_ring {
	pthread_mutex_t lock;
	uint8_t *buf;
	size_t size;
	uint64_t head; /* bytes ever written; the ring holds [head - min(head, size), head) */
};

int console_ring_init(struct console_ring *r, size_t size);
void console_ring_destroy(struct console_ring *r);
void console_ring_write(struct console_ring *r, const void *data, size_t len);
/* Copies up to `max` bytes from stream offset *pos, advancing *pos. When *pos points at
 * bytes already overwritten, it first moves to the oldest byte kept. Returns the count. */
size_t console_ring_read(struct console_ring *r, uint64_t *pos, void *out, size_t max);
/* Offset of the oldest byte still held (for a full replay) and of the next byte written. */
uint64_t console_ring_oldest(struct console_ring *r);
uint64_t console_ring_head(struct console_ring *r);

#endif

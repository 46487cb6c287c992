#include "mgmt/console_ring.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

int console_ring_init(struct console_ring *r, size_t size)
{
	memset(r, 0, sizeof(*r));
	if (size == 0)
		return kite_error("console ring: size 0");
	r->buf = malloc(size);
	if (!r->buf)
		return kite_error("console ring: out of memory");
	r->size = size;
	int e = pthread_mutex_init(&r->lock, NULL);
	if (e) {
		free(r->buf);
		return kite_error_errno(e, "console ring: mutex");
	}
	return 0;
}

void console_ring_destroy(struct console_ring *r)
{
	if (!r->buf)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->buf);
	r->buf = NULL;
}

void console_ring_write(struct console_ring *r, const void *data, size_t len)
{
	const uint8_t *p = data;
	pthread_mutex_lock(&r->lock);
	if (len > r->size) {
		/* Only the tail can survive. */
		r->head += len - r->size;
		p += len - r->size;
		len = r->size;
	}
	size_t at = (size_t)(r->head % r->size);
	size_t first = r->size - at < len ? r->size - at : len;
	memcpy(r->buf + at, p, first);
	memcpy(r->buf, p + first, len - first);
	r->head += len;
	pthread_mutex_unlock(&r->lock);
}

static uint64_t oldest_locked(const struct console_ring *r)
{
	return r->head > r->size ? r->head - r->size : 0;
}

size_t console_ring_read(struct console_ring *r, uint64_t *pos, void *out, size_t max)
{
	pthread_mutex_lock(&r->lock);
	uint64_t oldest = oldest_locked(r);
	if (*pos < oldest)
		*pos = oldest;
	if (*pos > r->head)
		*pos = r->head;
	size_t avail = (size_t)(r->head - *pos);
	size_t n = avail < max ? avail : max;
	size_t at = (size_t)(*pos % r->size);
	size_t first = r->size - at < n ? r->size - at : n;
	memcpy(out, r->buf + at, first);
	memcpy((uint8_t *)out + first, r->buf, n - first);
	*pos += n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

uint64_t console_ring_oldest(struct console_ring *r)
{
	pthread_mutex_lock(&r->lock);
	uint64_t v = oldest_locked(r);
	pthread_mutex_unlock(&r->lock);
	return v;
}

uint64_t console_ring_head(struct console_ring *r)
{
	pthread_mutex_lock(&r->lock);
	uint64_t v = r->head;
	pthread_mutex_unlock(&r->lock);
	return v;
}

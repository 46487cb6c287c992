/* Write-back caches for L2 tables and refcount blocks (on-disk bytes, LRU eviction).
 * Writing an L2 table first writes and syncs the refcount blocks, so no table on disk
 * points at a cluster whose refcount is still zero there. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void mcache_init(struct mcache *c, bool is_l2, uint64_t cluster_size)
{
	memset(c, 0, sizeof(*c));
	uint64_t n = MCACHE_BYTES / cluster_size;
	c->slots = n < 2 ? 2 : n > MCACHE_SLOTS ? MCACHE_SLOTS : (int)n;
	c->is_l2 = is_l2;
}

void mcache_free(struct mcache *c)
{
	for (int i = 0; i < c->slots; i++) {
		free(c->e[i].buf);
		c->e[i].buf = NULL;
		c->e[i].off = 0;
	}
}

int qcow2_sync_refcounts(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (mcache_flush(b, &q->rbc) < 0)
		return -1;
	if (q->rb_unsynced) {
		if (blk_sync(b) < 0)
			return -1;
		q->rb_unsynced = false;
	}
	return 0;
}

static int write_entry(struct blk *b, struct mcache *c, struct mcache_entry *e)
{
	struct qcow2 *q = Q(b);
	if (!e->dirty)
		return 0;
	if (c->is_l2 && qcow2_sync_refcounts(b) < 0)
		return -1;
	if (blk_file_pwrite(b->fd, e->buf, q->cluster_size, e->off, b->filename) < 0)
		return -1;
	e->dirty = false;
	if (!c->is_l2)
		q->rb_unsynced = true;
	return 0;
}

uint8_t *mcache_get(struct blk *b, struct mcache *c, uint64_t off, bool read)
{
	struct qcow2 *q = Q(b);
	struct mcache_entry *victim = NULL;
	for (int i = 0; i < c->slots; i++) {
		struct mcache_entry *e = &c->e[i];
		if (e->buf && e->off == off) {
			e->used = ++c->tick;
			if (!read)
				memset(e->buf, 0, q->cluster_size);
			return e->buf;
		}
		if (!victim || !e->buf || (victim->buf && e->used < victim->used))
			victim = e;
	}
	if (victim->buf && victim->dirty && write_entry(b, c, victim) < 0)
		return NULL;
	if (!victim->buf) {
		victim->buf = malloc(q->cluster_size);
		if (!victim->buf) {
			kite_error("out of memory");
			return NULL;
		}
	}
	victim->off = 0;
	victim->dirty = false;
	if (read) {
		/* qemu-img check reads a table past the end of the file as zeros, and says so */
		if (off >= q->file_end && !(b->flags & BLK_O_CHECK)) {
			kite_error("%s: corrupt image: table at 0x%llx is beyond the end of the "
				   "file",
				   b->filename, (unsigned long long)off);
			return NULL;
		}
		if (blk_file_pread(b->fd, victim->buf, q->cluster_size, off, b->filename) < 0)
			return NULL;
	} else {
		memset(victim->buf, 0, q->cluster_size);
	}
	victim->off = off;
	victim->used = ++c->tick;
	return victim->buf;
}

void mcache_dirty(struct mcache *c, const uint8_t *buf)
{
	for (int i = 0; i < c->slots; i++)
		if (c->e[i].buf == buf)
			c->e[i].dirty = true;
}

int mcache_flush(struct blk *b, struct mcache *c)
{
	for (int i = 0; i < c->slots; i++)
		if (c->e[i].buf && c->e[i].dirty && write_entry(b, c, &c->e[i]) < 0)
			return -1;
	return 0;
}

void mcache_forget(struct mcache *c, uint64_t off)
{
	for (int i = 0; i < c->slots; i++)
		if (c->e[i].buf && c->e[i].off == off) {
			c->e[i].off = 0;
			c->e[i].dirty = false;
			c->e[i].used = 0;
		}
}

/* Drops every entry (clean ones: flush first), as when the tables they hold are replaced. */
void mcache_forget_all(struct mcache *c)
{
	for (int i = 0; i < c->slots; i++)
		mcache_forget(c, c->e[i].off);
}

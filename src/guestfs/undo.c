#include "guestfs/undo.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* An open-addressing table of kept units, keyed by unit number + 1 (0: an empty slot). */
struct gundo_entry {
	uint64_t key;
	uint32_t len;
	unsigned char *old;
};

static size_t slot_of(const struct gundo *u, uint64_t key)
{
	size_t i = (size_t)(key * 0x9e3779b97f4a7c15ull) & (u->cap - 1);
	while (u->tab[i].key && u->tab[i].key != key)
		i = (i + 1) & (u->cap - 1);
	return i;
}

static bool kept(const struct gundo *u, uint64_t unit)
{
	return u->cap && u->tab[slot_of(u, unit + 1)].key;
}

static int grow(struct gundo *u)
{
	size_t cap = u->cap ? u->cap * 2 : 256;
	struct gundo_entry *old = u->tab, *tab = calloc(cap, sizeof(*tab));
	if (!tab)
		return kite_error("out of memory keeping the blocks a change overwrites");
	size_t oldcap = u->cap;
	u->tab = tab;
	u->cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].key)
			u->tab[slot_of(u, old[i].key)] = old[i];
	free(old);
	return 0;
}

static int put(struct gundo *u, uint64_t unit, unsigned char *old, uint32_t len)
{
	if ((u->count + 1) * 2 > u->cap && grow(u) < 0)
		return -1;
	struct gundo_entry *e = &u->tab[slot_of(u, unit + 1)];
	*e = (struct gundo_entry){.key = unit + 1, .len = len, .old = old};
	u->count++;
	return 0;
}

/* Keeps the old content of every unit [off, off + len) changes, unless the part written holds
 * nothing worth keeping or the write leaves it as it is. */
static int keep_range(struct gundo *u, const unsigned char *buf, size_t len, uint64_t off)
{
	if (!len || (u->unused && u->unused(u->opaque, off, len)))
		return 0;
	uint64_t end = off + len;
	for (uint64_t unit = off / GUNDO_UNIT; unit * GUNDO_UNIT < end; unit++) {
		uint64_t uoff = unit * GUNDO_UNIT;
		uint64_t ulen =
		    u->lower->size - uoff < GUNDO_UNIT ? u->lower->size - uoff : GUNDO_UNIT;
		uint64_t a = off > uoff ? off : uoff, b = end < uoff + ulen ? end : uoff + ulen;
		if (kept(u, unit) || (u->unused && u->unused(u->opaque, a, (size_t)(b - a))))
			continue;
		unsigned char *old = malloc(ulen);
		if (!old)
			return kite_error("out of memory keeping the blocks a change overwrites");
		if (gdev_read(u->lower, old, (size_t)ulen, uoff) < 0) {
			free(old);
			return -1;
		}
		if (!memcmp(old + (a - uoff), buf + (a - off), (size_t)(b - a))) {
			free(old); /* unchanged: a later write that changes it keeps it then */
			continue;
		}
		if (put(u, unit, old, (uint32_t)ulen) < 0) {
			free(old);
			return -1;
		}
	}
	return 0;
}

static int failed(struct gundo *u, int r)
{
	if (r < 0)
		u->failed = true;
	return r;
}

static int u_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
	struct gundo *u = opaque;
	return failed(u, gdev_read(u->lower, buf, len, off));
}

static int u_pwrite(void *opaque, const void *buf, size_t len, uint64_t off)
{
	struct gundo *u = opaque;
	if (!u->begun) {
		u->begun = true;
		if (u->begin && u->begin(u->opaque) < 0)
			return failed(u, -1);
	}
	if (u->keep && keep_range(u, buf, len, off) < 0)
		return failed(u, -1);
	return failed(u, gdev_write(u->lower, buf, len, off));
}

static int u_flush(void *opaque)
{
	struct gundo *u = opaque;
	return failed(u, u->lower->flush ? u->lower->flush(u->lower->opaque) : 0);
}

void gundo_init(struct gdev *out, struct gundo *u, const struct gdev *lower)
{
	memset(u, 0, sizeof(*u));
	u->lower = lower;
	out->opaque = u;
	out->pread = u_pread;
	out->pwrite = lower->pwrite ? u_pwrite : NULL;
	out->flush = lower->pwrite ? u_flush : NULL;
	out->size = lower->size;
}

void gundo_commit(struct gundo *u)
{
	for (size_t i = 0; i < u->cap; i++)
		free(u->tab[i].old);
	free(u->tab);
	u->tab = NULL;
	u->cap = u->count = 0;
	u->failed = false;
}

static int restore(struct gundo *u, const struct gundo_entry *e)
{
	return gdev_write(u->lower, e->old, e->len, (e->key - 1) * GUNDO_UNIT);
}

int gundo_rollback(struct gundo *u)
{
	uint64_t last = u->last / GUNDO_UNIT + 1;
	int ret = 0;
	for (size_t i = 0; i < u->cap; i++) {
		if (u->tab[i].key && u->tab[i].key != last && restore(u, &u->tab[i]) < 0)
			ret = -1; /* go on: restore as much as the device takes */
	}
	if (u_flush(u) < 0)
		ret = -1;
	if (!ret && u->cap) {
		const struct gundo_entry *e = &u->tab[slot_of(u, last)];
		if (e->key && (restore(u, e) < 0 || u_flush(u) < 0))
			ret = -1;
	}
	gundo_commit(u);
	return ret;
}

size_t gundo_kept(const struct gundo *u)
{
	return u->count;
}

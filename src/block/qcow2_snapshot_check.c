/* qcow2 check: the snapshot table, read as QEMU 7.2's check reads it. A check-mode open
 * (BLK_O_CHECK) does not read the table, so that an image whose table is broken can still
 * be checked; here it is read leniently (bytes past the end of the file read as zeros),
 * and with repair too much extra data is cut and overhanging snapshots are dropped. An
 * incomplete entry (a v3 entry with less than 16 bytes of extra data) is a corruption that
 * repair fixes by writing the whole table again. */
#include "block/qcow2_check_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SNAP_HEADER	  40
#define SNAP_KNOWN_EXTRA  24   /* vm_state_size (64-bit), disk_size, icount */
#define SNAP_MAX_EXTRA	  1024 /* QEMU's QCOW_MAX_SNAPSHOT_EXTRA_DATA */
#define SNAP_MAX_TABLE	  (1024ull * QCOW2_MAX_SNAPSHOTS)
#define SNAP_MIN_EXTRA_V3 16

struct snap_table {
	struct qcow2_snapshot *s;
	uint32_t nb;
	uint64_t offset, size;
	uint32_t reduced; /* snapshots dropped off the end */
	uint32_t dropped; /* entries whose extra data was cut */
};

/* An error as qemu-img reports it ("qemu-img: <what>"), then its hint line, if any. */
static void chk_report(const struct qcow2_chk *c, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void chk_report(const struct qcow2_chk *c, const char *hint, const char *fmt, ...)
{
	if (c->quiet)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kite_error("%s", msg);
	if (hint)
		fputs(hint, stderr);
}

static void free_table(struct snap_table *t)
{
	for (uint32_t i = 0; t->s && i < t->nb; i++) {
		free(t->s[i].id);
		free(t->s[i].name);
		free(t->s[i].extra);
	}
	free(t->s);
	t->s = NULL;
}

static int read_at(struct qcow2_chk *c, void *buf, uint64_t len, uint64_t off)
{
	if (blk_file_pread(c->b->fd, buf, len, off, c->b->filename) < 0)
		return chk_errno();
	return 0;
}

static int read_str(struct qcow2_chk *c, char **out, uint32_t len, uint64_t off)
{
	*out = malloc(len + 1);
	if (!*out)
		return -ENOMEM;
	(*out)[len] = 0;
	return read_at(c, *out, len, off);
}

/* The entry at *off: the fixed part, the extra data (cut to SNAP_MAX_EXTRA when
 * `cut_extra`), the id and the name. *off ends after the entry. */
static int read_entry(struct qcow2_chk *c, struct qcow2_snapshot *s, uint64_t *off, bool cut_extra,
		      uint16_t *id_len, uint16_t *name_len)
{
	uint8_t h[SNAP_HEADER], known[SNAP_KNOWN_EXTRA];
	int r = read_at(c, h, SNAP_HEADER, *off);
	if (r < 0)
		return r;
	*off += SNAP_HEADER;
	s->l1_offset = get_be64(h);
	s->l1_size = get_be32(h + 8);
	*id_len = get_be16(h + 12);
	*name_len = get_be16(h + 14);
	s->date_sec = get_be32(h + 16);
	s->date_nsec = get_be32(h + 20);
	s->vm_clock_nsec = get_be64(h + 24);
	s->vm_state_size = get_be32(h + 32);
	uint32_t extra = get_be32(h + 36), kept = cut_extra ? SNAP_MAX_EXTRA : extra;
	uint32_t nknown = extra < SNAP_KNOWN_EXTRA ? extra : SNAP_KNOWN_EXTRA;
	memset(known, 0, sizeof(known));
	s->extra = calloc(1, kept > SNAP_KNOWN_EXTRA ? kept : SNAP_KNOWN_EXTRA);
	if (!s->extra)
		return -ENOMEM;
	s->extra_size = kept;
	r = read_at(c, known, nknown, *off);
	*off += nknown;
	if (r == 0 && kept > SNAP_KNOWN_EXTRA)
		r = read_at(c, s->extra + SNAP_KNOWN_EXTRA, kept - SNAP_KNOWN_EXTRA, *off);
	if (r < 0)
		return r;
	if (extra > SNAP_KNOWN_EXTRA)
		*off += extra - SNAP_KNOWN_EXTRA; /* the names follow all the extra data */
	memcpy(s->extra, known, nknown);
	s->vm_state_size = extra >= 8 ? get_be64(known) : s->vm_state_size;
	s->disk_size = extra >= 16 ? get_be64(known + 8) : (c->q->size & ~511ull);
	s->icount = extra >= 24 ? get_be64(known + 16) : UINT64_MAX;
	r = read_str(c, &s->id, *id_len, *off);
	*off += *id_len;
	if (r == 0)
		r = read_str(c, &s->name, *name_len, *off);
	*off += *name_len;
	return r;
}

/* QEMU's qcow2_do_read_snapshots(): with `repair`, problems are cut away and counted. */
static int read_table(struct qcow2_chk *c, struct snap_table *t, bool repair)
{
	uint64_t off = t->offset, length = 0;
	t->s = calloc(t->nb ? t->nb : 1, sizeof(*t->s));
	if (!t->s)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->nb; i++) {
		uint64_t entry_start = off;
		uint16_t id_len = 0, name_len = 0;
		uint32_t extra;
		length = (length + 7) & ~7ull;
		off = (off + 7) & ~7ull;
		int r = read_at(c, &extra, 4, off + 36);
		extra = r == 0 ? get_be32((uint8_t *)&extra) : 0;
		bool cut = extra > SNAP_MAX_EXTRA;
		if (r == 0 && cut && !repair) {
			chk_report(
			    c,
			    "You can force-remove this extra metadata with qemu-img check -r all\n",
			    "ERROR failed to read the snapshot table: Too much extra metadata in "
			    "snapshot table entry %u",
			    i);
			return -EFBIG;
		}
		if (cut) {
			chk_say(
			    c,
			    "Discarding too much extra metadata in snapshot table entry %u (%u > "
			    "%u)\n",
			    i, extra, SNAP_MAX_EXTRA);
			t->dropped++;
		}
		if (r == 0)
			r = read_entry(c, &t->s[i], &off, cut, &id_len, &name_len);
		if (r < 0) {
			chk_report(
			    c, NULL,
			    "ERROR failed to read the snapshot table: Failed to read snapshot "
			    "table: %s",
			    strerror(-r));
			return r;
		}
		length += SNAP_HEADER + t->s[i].extra_size + id_len + name_len;
		if (length <= SNAP_MAX_TABLE && off - t->offset <= INT32_MAX)
			continue;
		if (!repair) {
			char hint[128];
			snprintf(hint, sizeof(hint),
				 "You can force-remove all %u overhanging snapshots with qemu-img "
				 "check -r all\n",
				 t->nb - i);
			chk_report(c, hint,
				   "ERROR failed to read the snapshot table: Snapshot table is too "
				   "big");
			return -EFBIG;
		}
		chk_say(c, "Discarding %u overhanging snapshots (snapshot table is too big)\n",
			t->nb - i);
		t->reduced += t->nb - i;
		uint32_t keep = i;
		free(t->s[i].id);
		free(t->s[i].name);
		free(t->s[i].extra);
		memset(&t->s[i], 0, sizeof(t->s[i]));
		t->nb = keep;
		off = entry_start;
		break;
	}
	t->size = off - t->offset;
	return 0;
}

/* QEMU's qcow2_validate_table() for the snapshot table's place and size. */
static int validate_table(struct qcow2_chk *c, const struct snap_table *t)
{
	const char *what = NULL;
	int r = 0;
	if (t->nb > QCOW2_MAX_SNAPSHOTS) {
		what = "snapshot table too large";
		r = -EFBIG;
	} else if ((uint64_t)INT64_MAX - (uint64_t)t->nb * SNAP_HEADER < t->offset ||
		   (t->offset & (c->q->cluster_size - 1))) {
		what = "snapshot table offset invalid";
		r = -EINVAL;
	}
	if (!what)
		return 0;
	char hint[128];
	snprintf(hint, sizeof(hint),
		 "You can force-remove all %u overhanging snapshots with qemu-img check -r all\n",
		 t->nb - QCOW2_MAX_SNAPSHOTS);
	chk_report(c, t->nb > QCOW2_MAX_SNAPSHOTS ? hint : NULL, "ERROR %s", what);
	return r;
}

/* The extra data as QEMU writes it back: its three known fields, then what else was read. */
static int normalize_extra(struct qcow2_snapshot *s)
{
	uint32_t size = s->extra_size > SNAP_KNOWN_EXTRA ? s->extra_size : SNAP_KNOWN_EXTRA;
	uint8_t *e = calloc(1, size);
	if (!e)
		return -ENOMEM;
	if (s->extra_size > SNAP_KNOWN_EXTRA)
		memcpy(e + SNAP_KNOWN_EXTRA, s->extra + SNAP_KNOWN_EXTRA,
		       s->extra_size - SNAP_KNOWN_EXTRA);
	put_be64(e, s->vm_state_size);
	put_be64(e + 8, s->disk_size);
	put_be64(e + 16, s->icount);
	free(s->extra);
	s->extra = e;
	s->extra_size = size;
	return 0;
}

/* The table replaces the one the image had in memory. */
static int adopt_table(struct qcow2_chk *c, struct snap_table *t)
{
	for (uint32_t i = 0; i < t->nb; i++)
		if (normalize_extra(&t->s[i]) < 0)
			return -ENOMEM;
	qcow2_free_snapshots(c->q);
	c->q->snaps = t->s;
	c->q->nb_snapshots = t->nb;
	c->q->snapshots_offset = t->offset;
	c->q->snapshots_size = t->size;
	qcow2_meta_invalidate(c->q);
	t->s = NULL;
	return 0;
}

static int write_nb_snapshots(struct qcow2_chk *c, uint32_t nb)
{
	uint8_t v[4];
	put_be32(v, nb);
	if (blk_file_pwrite(c->b->fd, v, 4, 60, c->b->filename) < 0 || blk_sync(c->b) < 0)
		return chk_errno();
	return 0;
}

static void count_incomplete(struct qcow2_chk *c, const struct snap_table *t,
			     struct blk_check_result *res, unsigned fix)
{
	if (c->q->version < 3)
		return;
	for (uint32_t i = 0; i < t->nb; i++) {
		if (t->s[i].extra_size >= SNAP_MIN_EXTRA_V3)
			continue;
		res->corruptions++;
		chk_say(c, "%s snapshot table entry %u is incomplete\n",
			(fix & BLK_CHECK_FIX_ERRORS) ? "Repairing" : "ERROR", i);
	}
}

/* QEMU's qcow2_check_read_snapshot_table(). */
int chk_read_snapshot_table(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix)
{
	uint8_t ptr[12];
	int r = read_at(c, ptr, sizeof(ptr), 60);
	if (r < 0) {
		res->check_errors++;
		chk_say(c,
			"ERROR failed to read the snapshot table pointer from the image header: "
			"%s\n",
			strerror(-r));
		return r;
	}
	struct snap_table t = {.nb = get_be32(ptr), .offset = get_be64(ptr + 4)};
	if (t.nb > QCOW2_MAX_SNAPSHOTS && (fix & BLK_CHECK_FIX_ERRORS)) {
		chk_say(c, "Discarding %u overhanging snapshots\n", t.nb - QCOW2_MAX_SNAPSHOTS);
		t.reduced = t.nb - QCOW2_MAX_SNAPSHOTS;
		t.nb = QCOW2_MAX_SNAPSHOTS;
	}
	r = validate_table(c, &t);
	if (r == 0)
		r = read_table(c, &t, (fix & BLK_CHECK_FIX_ERRORS) != 0);
	if (r < 0) {
		res->check_errors++;
		free_table(&t);
		return r;
	}
	res->corruptions += t.reduced + t.dropped;
	if (t.reduced) {
		/* the header first: the refcount check takes the table from it */
		r = write_nb_snapshots(c, t.nb);
		if (r < 0) {
			res->check_errors++;
			chk_say(
			    c,
			    "ERROR failed to update the snapshot count in the image header: %s\n",
			    strerror(-r));
			free_table(&t);
			return r;
		}
		res->corruptions_fixed += t.reduced;
		res->corruptions -= t.reduced;
	}
	count_incomplete(c, &t, res, fix);
	r = adopt_table(c, &t);
	free_table(&t);
	if (r < 0)
		res->check_errors++;
	return r;
}

/* Frees the old table's clusters as QEMU's qcow2_free_clusters(): all or nothing, and a
 * range whose refcounts cannot drop is reported, not fatal. */
static void free_old_table(struct qcow2_chk *c, uint64_t off, uint64_t size)
{
	struct qcow2 *q = c->q;
	if (!size)
		return;
	uint64_t first = off >> q->cluster_bits, last = (off + size - 1) >> q->cluster_bits;
	for (uint64_t k = first; k <= last; k++) {
		uint64_t idx = k / q->rb_entries, rc = 0;
		if (idx >= q->rt_entries || !(q->rt[idx] & RTE_OFFSET_MASK) ||
		    qcow2_get_refcount(c->b, k, &rc) < 0 || rc == 0) {
			chk_say(c, "qcow2_free_clusters failed: %s\n", strerror(EINVAL));
			return;
		}
	}
	if (qcow2_update_refcount(c->b, off, size, -1) < 0)
		chk_say(c, "qcow2_free_clusters failed: %s\n", strerror(EIO));
}

/* QEMU's qcow2_check_fix_snapshot_table(): a table found broken is written again whole. */
int chk_fix_snapshot_table(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix)
{
	if (!res->corruptions || !(fix & BLK_CHECK_FIX_ERRORS))
		return 0;
	uint64_t old_off, old_size;
	struct qcow2 *q = c->q;
	if (qcow2_write_snapshot_table(c->b, q->snaps, q->nb_snapshots, &old_off, &old_size) < 0) {
		int r = chk_errno();
		res->check_errors++;
		chk_say(c, "ERROR failed to update snapshot table: %s\n", strerror(-r));
		return r;
	}
	free_old_table(c, old_off, old_size);
	res->corruptions_fixed += res->corruptions;
	res->corruptions = 0;
	return 0;
}

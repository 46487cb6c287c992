/* qemu-img amend on qcow2 (QEMU 7.2's qcow2_amend_options()): the options are read in
 * QEMU's order, every refusal QEMU would make at any step is made before anything is
 * written (QEMU makes some after earlier steps changed the image), then the steps run in
 * QEMU's order: upgrade, refcount width, lazy refcounts, size, downgrade. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* QEMU's largest image (BDRV_MAX_LENGTH: INT64_MAX down to a GiB) */
#define QEMU_MAX_LENGTH ((uint64_t)0x7fffffffc0000000ull)

/* The image as the amend leaves it. */
struct plan {
	uint32_t version;
	uint32_t order; /* refcount order */
	bool lazy;
	uint64_t size;	       /* 0: as is */
	const char *data_file; /* the external data file's new name; NULL: as is */
	bool data_raw_off;     /* data_file_raw=off on a raw data file */
};

void qcow2_amend_report(struct qcow2_amend_status *st, uint64_t done, uint64_t total)
{
	if (!st || !st->cb || !st->steps || !total)
		return;
	st->cb(st->ctx, st->steps_done * total + done, st->steps * total);
}

void qcow2_amend_step_done(struct qcow2_amend_status *st)
{
	if (st)
		st->steps_done++;
}

int qcow2_update_header_sync(struct blk *b)
{
	if (qcow2_write_header(b) < 0)
		return -1;
	return blk_sync(b);
}

int qcow2_mark_clean(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (!(q->incompat & QCOW2_INCOMPAT_DIRTY))
		return 0;
	if (qcow2_flush_all(b) < 0 ||
	    qcow2_set_incompat(b, q->incompat & ~QCOW2_INCOMPAT_DIRTY) < 0 || blk_sync(b) < 0)
		return -1;
	q->header_dirty_set = false;
	return 0;
}

static int parse_refcount_bits(const struct qcow2_amend_opts *o, struct plan *p)
{
	int bits = o->refcount_bits;
	if (!o->refcount_bits_set)
		return 0;
	if (bits <= 0 || bits > 64 || (bits & (bits - 1)))
		return kite_error("Refcount width must be a power of two and may not exceed 64 "
				  "bits");
	p->order = (uint32_t)__builtin_ctz((unsigned)bits);
	return 0;
}

/* The options one by one, in the order QEMU looks at them. */
static int parse_opts(struct blk *b, const struct qcow2_amend_opts *o, struct plan *p)
{
	struct qcow2 *q = Q(b);
	*p = (struct plan){
	    q->version, q->refcount_order, (q->compat & QCOW2_COMPAT_LAZY) != 0, o->size, NULL,
	    false};
	if (o->encrypt)
		return kite_error("Can't amend encryption options - encryption not present");
	if (o->compat) {
		if (!strcmp(o->compat, "0.10") || !strcmp(o->compat, "v2"))
			p->version = 2;
		else if (!strcmp(o->compat, "1.1") || !strcmp(o->compat, "v3"))
			p->version = 3;
		else
			return kite_error("Unknown compatibility level %s", o->compat);
	}
	if (o->data_file && !qcow2_has_data_file(q))
		return kite_error("data-file can only be set for images that use an external "
				  "data file");
	p->data_file = o->data_file;
	bool raw = (q->autoclear & QCOW2_AUTOCLEAR_DATA_RAW) != 0;
	if (o->data_file_raw > 0 && !raw)
		return kite_error("data-file-raw cannot be set on existing images");
	p->data_raw_off = o->data_file_raw == 0 && raw;
	if (o->lazy_refcounts >= 0)
		p->lazy = o->lazy_refcounts;
	return parse_refcount_bits(o, p);
}

static bool same_name(const char *given, const char *have)
{
	return given && have ? !strcmp(given, have) : given == have;
}

static int check_backing(struct qcow2 *q, const struct qcow2_amend_opts *o)
{
	if (!o->backing_file && !o->backing_fmt)
		return 0;
	if (same_name(o->backing_file, q->backing_file) &&
	    same_name(o->backing_fmt, q->backing_fmt[0] ? q->backing_fmt : NULL))
		return 0;
	return kite_error("Cannot amend the backing file\n"
			  "You can use 'kite img rebase' instead.");
}

static int check_size(struct qcow2 *q, const struct plan *p)
{
	if (!p->size)
		return 0;
	if (p->size > INT64_MAX)
		return kite_error("Image size cannot be negative");
	if (p->size > QEMU_MAX_LENGTH)
		return kite_error("offset(%" PRIu64 ") exceeds maximum(%" PRIu64 ")", p->size,
				  QEMU_MAX_LENGTH);
	if (p->size % 512)
		return kite_error("The new size must be a multiple of 512");
	/* the resize runs after an upgrade, before a downgrade */
	uint32_t version = p->version > q->version ? p->version : q->version;
	if (q->nb_snapshots && version < 3)
		return kite_error("Can't resize a v2 image which has snapshots");
	uint64_t per_l1 = q->l2_entries * q->cluster_size;
	if (p->size > (1ull << 62) || (p->size + per_l1 - 1) / per_l1 * 8 > QCOW2_MAX_L1_BYTES)
		return kite_error("Failed to grow the L1 table: File too large");
	return 0;
}

static int check_downgrade(struct blk *b, const struct plan *p)
{
	struct qcow2 *q = Q(b);
	uint64_t size = p->size ? p->size : q->size;
	if (p->version >= q->version)
		return 0;
	if (p->order != 4)
		return kite_error("compat=0.10 requires refcount_bits=16");
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (q->snaps[i].vm_state_size > UINT32_MAX || q->snaps[i].disk_size != size)
			return kite_error("Internal snapshots prevent downgrade of image");
	uint64_t features = q->incompat & ~(QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_DIRTY);
	if (features)
		return kite_error("Cannot downgrade an image with incompatible features "
				  "%#" PRIx64 " set",
				  features);
	if (!(q->incompat & QCOW2_INCOMPAT_COMPRESSION))
		return 0;
	int r = qcow2_has_compressed(b, size < q->size ? size : q->size);
	if (r > 0)
		return kite_error("Cannot downgrade an image with zstd compression type and "
				  "existing compressed clusters");
	return r;
}

/* QEMU's refusals, in the order its steps would meet them. */
static int check_plan(struct blk *b, const struct qcow2_amend_opts *o, const struct plan *p)
{
	struct qcow2 *q = Q(b);
	if (p->order != q->refcount_order) {
		if (p->version < 3 && p->order != 4)
			return kite_error("Refcount widths other than 16 bits require "
					  "compatibility level 1.1 or above (use compat=1.1 or "
					  "greater)");
		if (qcow2_refcounts_fit(b, p->order) < 0)
			return -1;
	}
	if (check_backing(q, o) < 0)
		return -1;
	bool lazy = (q->compat & QCOW2_COMPAT_LAZY) != 0;
	if (p->lazy && !lazy && p->version < 3)
		return kite_error("Lazy refcounts only supported with compatibility level 1.1 and "
				  "above (use compat=1.1 or greater)");
	if (check_size(q, p) < 0)
		return -1;
	return check_downgrade(b, p);
}

static int set_lazy(struct blk *b, bool on)
{
	struct qcow2 *q = Q(b);
	uint64_t old = q->compat;
	if (!on && qcow2_mark_clean(b) < 0)
		return -1;
	q->compat = on ? old | QCOW2_COMPAT_LAZY : old & ~QCOW2_COMPAT_LAZY;
	if (qcow2_update_header_sync(b) == 0)
		return 0;
	q->compat = old;
	return -1;
}

/* A new name for the data file (the file itself stays as it is: it is not opened again
 * here, as in QEMU) and data_file_raw=off. */
static int set_data_file(struct blk *b, const struct plan *p)
{
	struct qcow2 *q = Q(b);
	if (!p->data_file && !p->data_raw_off)
		return 0;
	for (int i = 0; p->data_file && i < q->nb_exts; i++) {
		struct qcow2_ext *x = &q->exts[i];
		if (x->type != QCOW2_EXT_DATA_FILE)
			continue;
		size_t len = strlen(p->data_file);
		uint8_t *d = malloc(len ? len : 1);
		char *name = strdup(p->data_file);
		if (!d || !name) {
			free(d);
			free(name);
			return kite_error("out of memory");
		}
		memcpy(d, p->data_file, len);
		free(x->data);
		x->data = d;
		x->len = (uint32_t)len;
		free(q->data_file_name);
		q->data_file_name = name;
	}
	if (p->data_raw_off)
		q->autoclear &= ~QCOW2_AUTOCLEAR_DATA_RAW;
	return qcow2_update_header_sync(b);
}

static int run_plan(struct blk *b, const struct plan *p, struct qcow2_amend_status *st)
{
	struct qcow2 *q = Q(b);
	if (p->version > q->version) {
		if (qcow2_upgrade(b, st) < 0)
			return -1;
		qcow2_amend_step_done(st);
	}
	if (p->order != q->refcount_order) {
		if (qcow2_change_refcount_order(b, p->order, st) < 0)
			return -1;
		qcow2_amend_step_done(st);
	}
	if (p->lazy != ((q->compat & QCOW2_COMPAT_LAZY) != 0) && set_lazy(b, p->lazy) < 0)
		return -1;
	if (set_data_file(b, p) < 0)
		return -1;
	if (p->size && qcow2_resize(b, p->size, true) < 0)
		return -1;
	if (p->version < q->version && qcow2_downgrade(b, st) < 0)
		return -1;
	return qcow2_flush_all(b);
}

int qcow2_amend(struct blk *b, const struct qcow2_amend_opts *o, qcow2_amend_progress cb, void *ctx)
{
	if (strcmp(blk_format_name(b), "qcow2"))
		return kite_error("Format driver '%s' does not support option amendment",
				  blk_format_name(b));
	if (!blk_is_writable(b))
		return kite_error("%s: amending needs the image open read-write", b->filename);
	struct qcow2 *q = Q(b);
	struct plan p;
	if (parse_opts(b, o, &p) < 0 || check_plan(b, o, &p) < 0)
		return -1;
	struct qcow2_amend_status st = {cb, ctx, 0, 0};
	st.steps = (p.version != q->version) + (p.order != q->refcount_order);
	return run_plan(b, &p, &st);
}

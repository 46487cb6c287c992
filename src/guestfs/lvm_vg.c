/* A volume group from its LVM2 text metadata (lvm2's format_text "vsn1"): the VG section, its
 * physical_volumes and logical_volumes, and each LV's segments. Everything the mapping relies
 * on is checked here: counts agree, segments have no gaps or overlaps, stripes stay inside
 * their PV's extents and no extent is used twice. */
#include "guestfs/lvm.h"
#include "guestfs/lvmtext.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where an error is: the text, then the VG, LV and segment being read. */
struct ctx {
	const char *what;
	const char *vg, *lv, *seg;
};

static int err(const struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int err(const struct ctx *c, const char *fmt, ...)
{
	char why[320], where[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	int n = snprintf(where, sizeof(where), "%s", c->what);
	if (c->vg && n >= 0 && (size_t)n < sizeof(where))
		n += snprintf(where + n, sizeof(where) - (size_t)n, ": volume group %s", c->vg);
	if (c->lv && n >= 0 && (size_t)n < sizeof(where))
		n += snprintf(where + n, sizeof(where) - (size_t)n, ", logical volume %s", c->lv);
	if (c->seg && n >= 0 && (size_t)n < sizeof(where))
		snprintf(where + n, sizeof(where) - (size_t)n, ", %s", c->seg);
	return kite_error("%s: %s", where, why);
}

/* A string from the text for a message, its unprintable bytes replaced and cut short. */
static const char *safe(const char *s, char out[80])
{
	size_t i = 0;
	for (; s[i] && i < 79; i++)
		out[i] = s[i] > ' ' && s[i] < 0x7f ? s[i] : '?';
	out[i] = 0;
	return out;
}

static int get_int(const struct ctx *c, const struct lvt_node *sec, const char *key, int64_t min,
		   int64_t max, uint64_t *out)
{
	const struct lvt_node *n = lvt_get(sec, key);
	if (!n)
		return err(c, "'%s' is missing", key);
	if (n->type != LVT_INT)
		return err(c, "'%s' (line %u) is not an integer", key, n->line);
	if (n->num < min || n->num > max)
		return err(c, "'%s' = %lld (line %u) is out of range (%lld..%lld)", key,
			   (long long)n->num, n->line, (long long)min, (long long)max);
	*out = (uint64_t)n->num;
	return 0;
}

static const char *get_str(const struct ctx *c, const struct lvt_node *sec, const char *key)
{
	const struct lvt_node *n = lvt_get(sec, key);
	if (!n) {
		err(c, "'%s' is missing", key);
		return NULL;
	}
	if (n->type != LVT_STRING) {
		err(c, "'%s' (line %u) is not a string", key, n->line);
		return NULL;
	}
	return n->str;
}

/* Does the list `key` (status, flags) hold `word`? An absent key holds nothing. */
static bool has_flag(const struct lvt_node *sec, const char *key, const char *word)
{
	const struct lvt_node *n = lvt_get(sec, key);
	if (!n || n->type != LVT_LIST)
		return false;
	for (const struct lvt_node *i = n->child; i; i = i->next)
		if (i->type == LVT_STRING && !strcmp(i->str, word))
			return true;
	return false;
}

/* lvm2's rule for VG and LV names: letters, digits and "+_.-", not starting with '-', not
 * "." or "..". It keeps the names usable as paths under /dev. */
static int check_name(const struct ctx *c, const char *kind, const char *name)
{
	size_t len = strlen(name);
	bool ok =
	    len && len <= LVM_NAME_MAX && name[0] != '-' && strcmp(name, ".") && strcmp(name, "..");
	for (size_t i = 0; ok && i < len; i++) {
		char ch = name[i];
		ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		     (ch >= '0' && ch <= '9') || strchr("+_.-", ch);
	}
	char b[80];
	if (!ok)
		return err(c, "the %s name '%s' is not a valid LVM2 name", kind, safe(name, b));
	return 0;
}

/* "xxxxxx-xxxx-...": 32 characters of lvm2's alphabet once the dashes are dropped. */
static int read_uuid(const struct ctx *c, const struct lvt_node *sec, char *formatted, size_t fsz,
		     char raw[LVM_UUID_LEN + 1])
{
	const char *id = get_str(c, sec, "id");
	if (!id)
		return -1;
	size_t n = 0;
	bool ok = !formatted || strlen(id) < fsz;
	for (const char *p = id; ok && *p; p++) {
		if (*p == '-')
			continue;
		ok = n < LVM_UUID_LEN && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
					  (*p >= 'A' && *p <= 'Z') || *p == '!' || *p == '#');
		if (ok && raw)
			raw[n] = *p;
		n++;
	}
	char b[80];
	if (!ok || n != LVM_UUID_LEN)
		return err(c, "the id '%s' is not an LVM2 UUID", safe(id, b));
	if (raw)
		raw[LVM_UUID_LEN] = 0;
	if (formatted)
		snprintf(formatted, fsz, "%s", id);
	return 0;
}

/* Names sorted for lookup: a hostile text may hold many of them. */
struct name_ix {
	const char *name;
	size_t ix;
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct name_ix *)a)->name, ((const struct name_ix *)b)->name);
}

static long find_name(const struct name_ix *v, size_t n, const char *name)
{
	struct name_ix key = {.name = name};
	const struct name_ix *r = bsearch(&key, v, n, sizeof(*v), cmp_name);
	return r ? (long)r->ix : -1;
}

struct builder {
	struct ctx c;
	struct lvm_vg *vg;
	struct name_ix *pv_names, *lv_names;
};

static int read_pv(struct builder *b, const struct lvt_node *sec, struct lvm_vg_pv *pv)
{
	struct ctx c = b->c;
	c.lv = NULL;
	char where[LVM_NAME_MAX + 32];
	snprintf(where, sizeof(where), "physical volume %s", sec->key);
	c.seg = where;
	if (sec->type != LVT_SECTION)
		return err(&c, "not a section (line %u)", sec->line);
	if (strlen(sec->key) > LVM_NAME_MAX)
		return err(&c, "the name is too long");
	snprintf(pv->name, sizeof(pv->name), "%s", sec->key);
	pv->found = -1;
	pv->missing = has_flag(sec, "flags", "MISSING");
	if (read_uuid(&c, sec, NULL, 0, pv->uuid) < 0 ||
	    get_int(&c, sec, "pe_start", 0, (int64_t)(UINT64_MAX >> 10), &pv->pe_start) < 0 ||
	    get_int(&c, sec, "pe_count", 0, UINT32_MAX, &pv->pe_count) < 0)
		return -1;
	return 0;
}

static int read_pvs(struct builder *b, const struct lvt_node *vgsec)
{
	const struct lvt_node *pvs = lvt_get(vgsec, "physical_volumes");
	if (!pvs || pvs->type != LVT_SECTION)
		return err(&b->c, "no physical_volumes section");
	if (pvs->count > LVM_MAX_PVS)
		return err(&b->c, "%zu physical volumes: more than the %d kite reads", pvs->count,
			   LVM_MAX_PVS);
	b->vg->pvs = calloc(pvs->count ? pvs->count : 1, sizeof(*b->vg->pvs));
	b->pv_names = calloc(pvs->count ? pvs->count : 1, sizeof(*b->pv_names));
	if (!b->vg->pvs || !b->pv_names)
		return kite_error("out of memory reading LVM2 metadata");
	for (const struct lvt_node *n = pvs->child; n; n = n->next) {
		size_t i = b->vg->npvs;
		if (read_pv(b, n, &b->vg->pvs[i]) < 0)
			return -1;
		b->pv_names[i] = (struct name_ix){.name = b->vg->pvs[i].name, .ix = i};
		b->vg->npvs++;
	}
	qsort(b->pv_names, b->vg->npvs, sizeof(*b->pv_names), cmp_name);
	for (size_t i = 0; i < b->vg->npvs; i++) {
		for (size_t j = i + 1; j < b->vg->npvs; j++)
			if (!strcmp(b->vg->pvs[i].uuid, b->vg->pvs[j].uuid))
				return err(&b->c, "physical volumes %s and %s have the same UUID",
					   b->vg->pvs[i].name, b->vg->pvs[j].name);
	}
	return 0;
}

/* The stripes list: "pvN", first extent, for each stripe. */
static int read_stripes(struct builder *b, const struct ctx *c, const struct lvt_node *sec,
			struct lvm_lv *lv, struct lvm_seg *seg)
{
	const struct lvt_node *list = lvt_get(sec, "stripes");
	if (!list || list->type != LVT_LIST)
		return err(c, "no stripes list");
	if (list->count != 2 * (size_t)seg->stripes)
		return err(c, "the stripes list (line %u) has %zu entries for %u stripes",
			   list->line, list->count, seg->stripes);
	seg->stripe = calloc(seg->stripes, sizeof(*seg->stripe));
	if (!seg->stripe)
		return kite_error("out of memory reading LVM2 metadata");
	uint64_t area = seg->count / seg->stripes;
	const struct lvt_node *it = list->child;
	for (uint32_t s = 0; s < seg->stripes; s++, it = it->next->next) {
		if (it->type != LVT_STRING || it->next->type != LVT_INT)
			return err(c, "stripe %u is not a volume name and an extent", s);
		long pv = find_name(b->pv_names, b->vg->npvs, it->str);
		if (pv < 0) {
			char buf[80];
			if (find_name(b->lv_names, b->vg->nlvs, it->str) < 0)
				return err(c,
					   "stripe %u is on '%s', which is no volume of the group",
					   s, safe(it->str, buf));
			if (!lv->unmapped[0])
				snprintf(lv->unmapped, sizeof(lv->unmapped), "stacked on LV %.40s",
					 it->str);
			seg->stripes = 0; /* kite maps segments over PVs only */
			return 0;
		}
		int64_t pe = it->next->num;
		const struct lvm_vg_pv *p = &b->vg->pvs[pv];
		if (pe < 0 || (uint64_t)pe > p->pe_count || area > p->pe_count - (uint64_t)pe)
			return err(c,
				   "stripe %u uses extents %lld..%llu of %s, which has %llu "
				   "extents",
				   s, (long long)pe, (unsigned long long)((uint64_t)pe + area - 1),
				   p->name, (unsigned long long)p->pe_count);
		seg->stripe[s] = (struct lvm_stripe){.pv = (size_t)pv, .pe = (uint64_t)pe};
	}
	return 0;
}

static int read_striped(struct builder *b, const struct ctx *c, const struct lvt_node *sec,
			struct lvm_lv *lv, struct lvm_seg *seg)
{
	uint64_t n, size = 0;
	if (get_int(c, sec, "stripe_count", 1, LVM_MAX_STRIPES, &n) < 0)
		return -1;
	seg->stripes = (uint32_t)n;
	if (seg->count % n)
		return err(c, "%llu extents do not divide into %u stripes",
			   (unsigned long long)seg->count, seg->stripes);
	if (n > 1) {
		if (get_int(c, sec, "stripe_size", 1, UINT32_MAX, &size) < 0)
			return -1;
		/* dm-stripe: each stripe's length is a whole number of chunks */
		if ((seg->count / n) * b->vg->extent_size % size)
			return err(c,
				   "the stripe size (%llu sectors) does not divide a stripe's "
				   "length",
				   (unsigned long long)size);
		seg->stripe_size = size;
	}
	return read_stripes(b, c, sec, lv, seg);
}

/* Marks the LVs a snapshot segment names: its origin (which must then not be written behind
 * the snapshot's back) and its copy-on-write store (which holds no filesystem of its own). */
static int read_snapshot(struct builder *b, const struct ctx *c, const struct lvt_node *sec)
{
	const char *origin = get_str(c, sec, "origin"), *cow = get_str(c, sec, "cow_store");
	if (!origin || !cow)
		return -1;
	long o = find_name(b->lv_names, b->vg->nlvs, origin);
	long w = find_name(b->lv_names, b->vg->nlvs, cow);
	if (o < 0 || w < 0)
		return err(c, "the snapshot names a logical volume the group does not have");
	b->vg->lvs[o].snapshot_origin = true;
	snprintf(b->vg->lvs[w].unmapped, sizeof(b->vg->lvs[w].unmapped), "snapshot");
	return 0;
}

static int read_segment(struct builder *b, const struct lvt_node *sec, struct lvm_lv *lv,
			struct lvm_seg *seg)
{
	struct ctx c = b->c;
	c.seg = sec->key;
	if (sec->type != LVT_SECTION)
		return err(&c, "not a section");
	const char *type = get_str(&c, sec, "type");
	if (!type || get_int(&c, sec, "start_extent", 0, UINT32_MAX, &seg->start) < 0 ||
	    get_int(&c, sec, "extent_count", 1, UINT32_MAX, &seg->count) < 0)
		return -1;
	size_t i = 0;
	for (; type[i] && i + 1 < sizeof(seg->type); i++)
		seg->type[i] = type[i] > ' ' && type[i] < 0x7f ? type[i] : '?';
	seg->type[i] = 0;
	if (!strcmp(type, "striped"))
		return read_striped(b, &c, sec, lv, seg);
	if (!lv->unmapped[0])
		snprintf(lv->unmapped, sizeof(lv->unmapped), "%s", seg->type);
	if (!strcmp(type, "snapshot"))
		return read_snapshot(b, &c, sec);
	return 0;
}

static int cmp_seg(const void *a, const void *b)
{
	const struct lvm_seg *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

static int read_segments(struct builder *b, const struct lvt_node *sec, struct lvm_lv *lv)
{
	uint64_t want;
	if (get_int(&b->c, sec, "segment_count", 1, LVM_MAX_SEGS, &want) < 0)
		return -1;
	size_t have = 0;
	for (const struct lvt_node *n = sec->child; n; n = n->next)
		have += n->type == LVT_SECTION;
	if (have != want)
		return err(&b->c, "segment_count is %llu but there are %zu segments",
			   (unsigned long long)want, have);
	lv->segs = calloc(have, sizeof(*lv->segs));
	if (!lv->segs)
		return kite_error("out of memory reading LVM2 metadata");
	lv->linear = true;
	for (const struct lvt_node *n = sec->child; n; n = n->next) {
		if (n->type != LVT_SECTION)
			continue;
		struct lvm_seg *seg = &lv->segs[lv->nsegs++];
		if (read_segment(b, n, lv, seg) < 0)
			return -1;
		lv->linear &= seg->stripes == 1;
	}
	qsort(lv->segs, lv->nsegs, sizeof(*lv->segs), cmp_seg);
	for (size_t i = 0; i < lv->nsegs; i++) {
		if (lv->segs[i].start != lv->extents)
			return err(&b->c, "its segments %s at extent %llu (expected %llu)",
				   lv->segs[i].start < lv->extents ? "overlap" : "leave a gap",
				   (unsigned long long)lv->segs[i].start,
				   (unsigned long long)lv->extents);
		lv->extents += lv->segs[i].count;
	}
	if (lv->extents > (uint64_t)INT64_MAX / 512 / b->vg->extent_size)
		return err(&b->c, "%llu extents make it larger than 8 EiB",
			   (unsigned long long)lv->extents);
	return 0;
}

static int read_lv_header(struct builder *b, const struct lvt_node *sec, struct lvm_lv *lv)
{
	if (sec->type != LVT_SECTION)
		return err(&b->c, "'%s' (line %u) is not a logical volume section", sec->key,
			   sec->line);
	if (check_name(&b->c, "logical volume", sec->key) < 0)
		return -1;
	snprintf(lv->name, sizeof(lv->name), "%s", sec->key);
	struct ctx c = b->c;
	c.lv = lv->name;
	if (read_uuid(&c, sec, lv->uuid, sizeof(lv->uuid), NULL) < 0)
		return -1;
	lv->visible = has_flag(sec, "status", "VISIBLE");
	lv->writable = has_flag(sec, "status", "WRITE");
	return 0;
}

static int read_lvs(struct builder *b, const struct lvt_node *vgsec)
{
	const struct lvt_node *lvs = lvt_get(vgsec, "logical_volumes");
	if (!lvs)
		return 0;
	if (lvs->type != LVT_SECTION)
		return err(&b->c, "logical_volumes is not a section");
	if (lvs->count > LVM_MAX_LVS)
		return err(&b->c, "%zu logical volumes: more than the %d kite reads", lvs->count,
			   LVM_MAX_LVS);
	b->vg->lvs = calloc(lvs->count ? lvs->count : 1, sizeof(*b->vg->lvs));
	b->lv_names = calloc(lvs->count ? lvs->count : 1, sizeof(*b->lv_names));
	if (!b->vg->lvs || !b->lv_names)
		return kite_error("out of memory reading LVM2 metadata");
	/* names first: segments refer to other LVs (snapshots, stacked segments) */
	for (const struct lvt_node *n = lvs->child; n; n = n->next) {
		size_t i = b->vg->nlvs;
		if (read_lv_header(b, n, &b->vg->lvs[i]) < 0)
			return -1;
		b->lv_names[i] = (struct name_ix){.name = b->vg->lvs[i].name, .ix = i};
		b->vg->nlvs++;
	}
	qsort(b->lv_names, b->vg->nlvs, sizeof(*b->lv_names), cmp_name);
	size_t i = 0;
	for (const struct lvt_node *n = lvs->child; n; n = n->next, i++) {
		struct builder one = *b;
		one.c.lv = b->vg->lvs[i].name;
		if (read_segments(&one, n, &b->vg->lvs[i]) < 0)
			return -1;
	}
	return 0;
}

/* A range of physical extents an LV's stripe uses. */
struct use {
	size_t pv, lv;
	uint64_t pe, count;
};

static int cmp_use(const void *a, const void *b)
{
	const struct use *x = a, *y = b;
	if (x->pv != y->pv)
		return x->pv < y->pv ? -1 : 1;
	return x->pe < y->pe ? -1 : x->pe > y->pe;
}

/* No physical extent belongs to two stripes. */
static int check_overlaps(struct builder *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->vg->nlvs; i++)
		for (size_t j = 0; j < b->vg->lvs[i].nsegs; j++)
			n += b->vg->lvs[i].segs[j].stripes;
	struct use *u = calloc(n ? n : 1, sizeof(*u));
	if (!u)
		return kite_error("out of memory reading LVM2 metadata");
	size_t k = 0;
	for (size_t i = 0; i < b->vg->nlvs; i++) {
		for (size_t j = 0; j < b->vg->lvs[i].nsegs; j++) {
			const struct lvm_seg *s = &b->vg->lvs[i].segs[j];
			for (uint32_t t = 0; t < s->stripes; t++)
				u[k++] = (struct use){.pv = s->stripe[t].pv,
						      .lv = i,
						      .pe = s->stripe[t].pe,
						      .count = s->count / s->stripes};
		}
	}
	qsort(u, n, sizeof(*u), cmp_use);
	int ret = 0;
	for (size_t i = 1; i < n && !ret; i++) {
		if (u[i].pv == u[i - 1].pv && u[i - 1].pe + u[i - 1].count > u[i].pe)
			ret = err(&b->c, "extent %llu of %s is used twice (by %s and %s)",
				  (unsigned long long)u[i].pe, b->vg->pvs[u[i].pv].name,
				  b->vg->lvs[u[i - 1].lv].name, b->vg->lvs[u[i].lv].name);
	}
	free(u);
	return ret;
}

/* The one section at the top of the text is the volume group. */
static const struct lvt_node *vg_section(const struct ctx *c, const struct lvt *t)
{
	const struct lvt_node *vg = NULL;
	for (const struct lvt_node *n = t->root.child; n; n = n->next) {
		if (n->type != LVT_SECTION)
			continue;
		if (vg) {
			err(c, "more than one volume group section ('%.*s' and '%.*s')", 140,
			    vg->key, 140, n->key);
			return NULL;
		}
		vg = n;
	}
	if (!vg)
		err(c, "no volume group section");
	return vg;
}

static int build(struct builder *b, const struct lvt *t)
{
	const struct lvt_node *sec = vg_section(&b->c, t);
	if (!sec || check_name(&b->c, "volume group", sec->key) < 0)
		return -1;
	struct lvm_vg *vg = b->vg;
	snprintf(vg->name, sizeof(vg->name), "%s", sec->key);
	b->c.vg = vg->name;
	if (read_uuid(&b->c, sec, vg->uuid, sizeof(vg->uuid), NULL) < 0 ||
	    get_int(&b->c, sec, "seqno", 0, INT64_MAX, &vg->seqno) < 0 ||
	    get_int(&b->c, sec, "extent_size", 1, UINT32_MAX, &vg->extent_size) < 0)
		return -1;
	vg->writable = has_flag(sec, "status", "WRITE");
	if (read_pvs(b, sec) < 0 || read_lvs(b, sec) < 0)
		return -1;
	return check_overlaps(b);
}

int lvm_vg_from_text(struct lvm_vg *vg, const char *text, size_t len, const char *what)
{
	struct lvt t;
	memset(vg, 0, sizeof(*vg));
	if (lvt_parse(&t, text, len, what) < 0)
		return -1;
	struct builder b = {.c = {.what = what}, .vg = vg};
	int r = build(&b, &t);
	free(b.pv_names);
	free(b.lv_names);
	lvt_free(&t);
	if (r < 0)
		lvm_vg_free(vg);
	return r;
}

void lvm_vg_free(struct lvm_vg *vg)
{
	for (size_t i = 0; i < vg->nlvs; i++) {
		for (size_t j = 0; j < vg->lvs[i].nsegs; j++)
			free(vg->lvs[i].segs[j].stripe);
		free(vg->lvs[i].segs);
	}
	free(vg->lvs);
	free(vg->pvs);
	memset(vg, 0, sizeof(*vg));
}

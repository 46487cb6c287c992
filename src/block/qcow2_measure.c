/* qemu-img measure for a qcow2 target: QEMU's formula (header, L1, L2 and refcount
 * clusters around the data), and the space the source's persistent bitmaps take. */
#include "block/crypto_luks.h"
#include "block/qcow2_int.h"

#include <stdlib.h>
#include <string.h>

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

/* Refcount table and block clusters needed to cover `clusters` plus themselves. */
static uint64_t refcount_clusters(uint64_t clusters, uint64_t cs, int refcount_bits)
{
	uint64_t per_block = cs * 8 / (uint64_t)refcount_bits, per_table = cs / 8;
	uint64_t table = 0, blocks = 0, n = 0, last;
	do {
		last = n;
		blocks = div_up(clusters + table + blocks, per_block);
		table = div_up(blocks, per_table);
		n = clusters + blocks + table;
	} while (n != last);
	return blocks + table;
}

/* File size of a fully allocated qcow2 image of `size` bytes. */
static uint64_t qcow2_full_size(uint64_t size, uint64_t cs, int refcount_bits, bool ext_l2)
{
	uint64_t l2_entry = ext_l2 ? 16 : 8;
	uint64_t aligned = div_up(size, cs) * cs;
	uint64_t meta = cs; /* header */
	uint64_t l2_tables = div_up(aligned / cs, cs / l2_entry);
	meta += l2_tables * cs;
	meta += div_up(l2_tables * 8, cs) * cs; /* L1 */
	meta += refcount_clusters((meta + aligned) / cs, cs, refcount_bits) * cs;
	return meta + aligned;
}

/* Bytes of the source that hold data, rounded out to whole clusters of `cs` (1 for raw). */
static int data_bytes(struct blk *b, uint64_t cs, uint64_t *out)
{
	uint64_t size = blk_size(b), total = 0;
	for (uint64_t off = 0; off < size;) {
		struct blk_map m;
		if (blk_map_status(b, off, size - off, &m) < 0)
			return -1;
		uint64_t n = m.pnum;
		if (!(m.flags & BLK_STATUS_ZERO) && (m.flags & BLK_STATUS_ALLOCATED) &&
		    (m.flags & BLK_STATUS_DATA)) {
			/* count up to the end of the cluster; continue after it */
			uint64_t end = div_up(off + n, cs) * cs;
			if (end > size)
				end = size;
			total += (off % cs) + (end - off);
			n = end - off;
		}
		off += n;
	}
	*out = total;
	return 0;
}

/* Whether src's persistent bitmaps come along (both sides qcow2 v3, as qemu-img), and
 * their size in clusters of `cs`. */
static int bitmaps_size(struct blk *src, const struct blk_create_opts *c, uint64_t cs,
			struct blk_measure *m)
{
	if (!src || strcmp(blk_format_name(src), "qcow2") || c->compat == 2)
		return 0;
	struct blk_info *in = calloc(1, sizeof(*in));
	if (!in || blk_get_info(src, in) < 0) {
		free(in);
		return -1;
	}
	m->has_bitmaps = strcmp(in->compat, "0.10") != 0;
	free(in);
	if (m->has_bitmaps && qcow2_bitmaps_size(src, cs, &m->bitmaps) < 0)
		return -1;
	return 0;
}

int qcow2_measure(const struct blk_create_opts *c, struct blk *src, uint64_t size,
		  struct blk_measure *m)
{
	uint64_t cs = c->cluster_size ? c->cluster_size : 65536;
	int rbits = c->refcount_bits ? c->refcount_bits : 16;
	uint64_t data = 0;
	if (src && data_bytes(src, cs, &data) < 0)
		return -1;
	/* as QEMU: a LUKS header takes whole clusters ahead of everything else */
	uint64_t luks = 0, hdr;
	if (c->encrypt.format && !strcmp(c->encrypt.format, "luks")) {
		if (qcow2_crypto_create_check(NULL, &c->encrypt) < 0 ||
		    luks_header_size(&c->encrypt, &hdr) < 0)
			return -1;
		luks = div_up(hdr, cs) * cs;
	}
	m->fully_allocated = luks + qcow2_full_size(size, cs, rbits, c->extended_l2);
	m->required = m->fully_allocated - div_up(size, cs) * cs + data;
	/* as qemu-img 7.2: space preallocated for data is required (metadata preallocation
	 * is counted already) */
	if (c->prealloc == BLK_PREALLOC_FULL || c->prealloc == BLK_PREALLOC_FALLOC)
		m->required = m->fully_allocated;
	return bitmaps_size(src, c, cs, m);
}

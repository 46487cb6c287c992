/* A snapshot's VM state in a qcow2 image, where QEMU's savevm keeps it: in the image's
 * address space past the virtual disk, from the first L1 entry boundary after its end
 * (QEMU's qcow2_vm_state_offset), with the snapshot table entry's vm_state_size (and the
 * 64-bit copy in its extra data) saying how long it is. The state is written through the
 * active L1 table, the snapshot then takes the L1 table with it, and the active table lets
 * go of it again (as QEMU does, so that the next snapshot does not copy it). Loading reads
 * it through the snapshot's own L1 table. kite's VM state is a kite save file
 * (machine/savefile.h); this layer only moves its bytes, skipping zero clusters both ways. */
#include "block/qcow2_int.h"
#include "util/err.h"
#include "util/fullio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK	     (1u << 20)
#define VMSTATE_MAX  (1ull << 40) /* a saved machine of up to 1 TiB */
#define VMSTATE_PAGE 4096u

static uint64_t per_l1(const struct qcow2 *q)
{
	return q->l2_entries * q->cluster_size;
}

static uint64_t vmstate_index(const struct qcow2 *q)
{
	return (q->size + per_l1(q) - 1) / per_l1(q);
}

/* The active L1 entries past the disk hold only VM state: cleared (on disk first), then
 * what they referenced released. A crash in between leaks clusters, no worse. */
static int drop_active_vmstate(struct blk *b)
{
	struct qcow2 *q = Q(b);
	uint64_t first = vmstate_index(q);
	if (qcow2_flush_all(b) < 0)
		return -1;
	for (uint64_t i = first; i < q->l1_size; i++) {
		uint64_t e = q->l1[i];
		if (!(e & L1E_OFFSET_MASK))
			continue;
		mcache_forget_all(&q->l2c); /* clean: flushed above and after each */
		q->l1[i] = 0;
		uint8_t v[8] = {0};
		if (blk_file_pwrite(b->fd, v, 8, q->l1_offset + i * 8, b->filename) < 0 ||
		    blk_sync(b) < 0)
			return -1;
		uint64_t one = e & ~OFLAG_COPIED;
		if (qcow2_l1_refcounts(b, &one, 1, -1) < 0 || qcow2_flush_all(b) < 0)
			return -1;
	}
	return qcow2_flush_all(b);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* The file's bytes into the image at `base`, cluster by cluster; holes and zero clusters
 * stay unallocated (they read as zeros). */
static int copy_in(struct blk *b, int fd, uint64_t size, uint64_t base)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return kite_error("out of memory");
	int r = 0;
	for (uint64_t off = 0; r == 0 && off < size;) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA);
		if (data < 0 || (uint64_t)data >= size)
			break; /* the rest is a hole */
		off = (uint64_t)data / cs * cs;
		uint64_t n = size - off < CHUNK ? size - off : CHUNK;
		if (full_pread(fd, buf, (size_t)n, off) != (ssize_t)n) {
			r = kite_error("VM state: cannot read the saved state");
			break;
		}
		for (uint64_t c = 0; r == 0 && c < n; c += cs) {
			uint64_t len = n - c < cs ? n - c : cs;
			if (!all_zero(buf + c, (size_t)len))
				r = qcow2_write(b, buf + c, (size_t)len, base + off + c);
		}
		off += n;
	}
	free(buf);
	return r;
}

int qcow2_snapshot_create_vmstate(struct blk *b, const char *name, int fd, uint64_t size,
				  uint64_t vm_clock_nsec)
{
	struct qcow2 *q = Q(b);
	if (!blk_is_writable(b))
		return kite_error("%s: the image is open read-only", b->filename);
	if (qcow2_has_data_file(q))
		return kite_error("%s: an image with an external data file has no room for a VM "
				  "state",
				  b->filename);
	if (size == 0 || size > VMSTATE_MAX)
		return kite_error("%s: a VM state of %llu bytes", b->filename,
				  (unsigned long long)size);
	uint64_t base = vmstate_index(q) * per_l1(q);
	/* Whatever an earlier apply left past the disk goes first: the state starts clean. */
	if (drop_active_vmstate(b) < 0 ||
	    qcow2_grow_l1(b, (base + size + per_l1(q) - 1) / per_l1(q)) < 0)
		return -1;
	if (copy_in(b, fd, size, base) < 0 || qcow2_flush_all(b) < 0 ||
	    qcow2_snapshot_create_vm(b, name, size, vm_clock_nsec) < 0) {
		drop_active_vmstate(b);
		return -1;
	}
	return drop_active_vmstate(b);
}

/* Reads the VM state of snapshot `idx` into `fd` (from offset 0; zero pages left as holes). */
static int copy_out(struct blk *b, const struct qcow2_snapshot *s, int fd)
{
	struct qcow2 *q = Q(b);
	uint64_t base = vmstate_index(q) * per_l1(q);
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return kite_error("out of memory");
	int r = 0;
	for (uint64_t off = 0; r == 0 && off < s->vm_state_size;) {
		uint64_t n = s->vm_state_size - off < CHUNK ? s->vm_state_size - off : CHUNK;
		uint64_t pnum = 0, host;
		unsigned flags = 0;
		if (qcow2_block_status(b, base + off, n, &pnum, &flags, &host) < 0) {
			r = -1;
			break;
		}
		if (pnum && pnum < n)
			n = pnum;
		if (!(flags & BLK_STATUS_DATA) || (flags & BLK_STATUS_ZERO)) {
			off += n;
			continue;
		}
		if (qcow2_read(b, buf, (size_t)n, base + off) < 0) {
			r = -1;
			break;
		}
		for (uint64_t p = 0; r == 0 && p < n; p += VMSTATE_PAGE) {
			size_t len = n - p < VMSTATE_PAGE ? (size_t)(n - p) : VMSTATE_PAGE;
			if (!all_zero(buf + p, len) &&
			    pwrite(fd, buf + p, len, (off_t)(off + p)) != (ssize_t)len)
				r = kite_error_errno(errno, "VM state: cannot write it out");
		}
		off += n;
	}
	free(buf);
	if (r == 0 && ftruncate(fd, (off_t)s->vm_state_size) < 0)
		r = kite_error_errno(errno, "VM state: cannot write it out");
	return r;
}

int qcow2_snapshot_read_vmstate(struct blk *b, const char *name_or_id, int fd, uint64_t *size)
{
	struct qcow2 *q = Q(b);
	int idx = qcow2_find_snapshot(b, name_or_id);
	if (idx < 0)
		return -1;
	struct qcow2_snapshot *s = &q->snaps[idx];
	if (s->vm_state_size == 0)
		return kite_error("%s: snapshot '%s' has no VM state", b->filename, s->name);
	if (s->vm_state_size > VMSTATE_MAX)
		return kite_error("%s: snapshot '%s': a VM state of %llu bytes", b->filename,
				  s->name, (unsigned long long)s->vm_state_size);
	uint64_t need =
	    (vmstate_index(q) * per_l1(q) + s->vm_state_size + per_l1(q) - 1) / per_l1(q);
	if (need > s->l1_size)
		return kite_error("%s: snapshot '%s': its L1 table does not cover its VM state",
				  b->filename, s->name);
	uint64_t *sl1;
	if (qcow2_flush_all(b) < 0 || qcow2_snapshot_read_l1(b, s, &sl1) < 0)
		return -1;
	/* Read through the snapshot's table in place of the active one, then back. */
	uint64_t *l1 = q->l1;
	uint32_t l1_size = q->l1_size;
	mcache_forget_all(&q->l2c);
	q->l1 = sl1;
	q->l1_size = s->l1_size;
	q->cz_off = 0;
	*size = s->vm_state_size;
	int r = copy_out(b, s, fd);
	mcache_forget_all(&q->l2c);
	q->l1 = l1;
	q->l1_size = l1_size;
	q->cz_off = 0;
	free(sl1);
	return r;
}

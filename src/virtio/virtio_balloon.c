#include "virtio/virtio_balloon.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define VIRTIO_BALLOON_F_STATS_VQ 1
#define BALLOON_PAGE		  4096u
#define INFLATE_Q		  0
#define DEFLATE_Q		  1
#define STATS_Q			  2
/* Bounds on one request (Linux sends at most 256 PFNs and ~10 statistics): a guest that
 * sends more only gets them ignored, and cannot hold a vCPU thread here for long. */
#define MAX_PFNS_PER_REQ  4096
#define MAX_STATS_PER_REQ 64

struct virtio_balloon {
	struct virtio_dev vd;
	pthread_mutex_t lock;
	uint32_t num_pages, actual;
	uint64_t inflated;
	bool stats_held; /* the driver's stats buffer, kept until we want a new report */
	uint16_t stats_head;
	struct virtio_balloon_stats stats;
	struct virtq_elem elem;
	void (*on_actual)(void *opaque, uint32_t actual);
	void *on_actual_opaque;
};

/* Drops the host memory behind [gpa, gpa + len) when it is RAM. */
static void discard_range(struct virtio_balloon *b, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gmem_ptr(b->vd.mem, gpa, len);
	if (!p || ((uintptr_t)p & (BALLOON_PAGE - 1)))
		return; /* not RAM (a hostile PFN): nothing to give back */
	if (madvise(p, len, MADV_DONTNEED) < 0)
		kite_error_errno(errno, "virtio-balloon: madvise");
}

static void handle_pages(struct virtio_balloon *b, bool inflate)
{
	uint64_t run_start = 0, run_len = 0, count = 0;
	uint64_t end = b->elem.out_len;
	if (end > 4ull * MAX_PFNS_PER_REQ)
		end = 4ull * MAX_PFNS_PER_REQ;
	for (uint64_t off = 0; off + 4 <= end; off += 4) {
		uint32_t pfn;
		virtq_elem_read(&b->elem, off, &pfn, 4);
		uint64_t gpa = (uint64_t)pfn * BALLOON_PAGE;
		count++;
		if (!inflate)
			continue; /* deflated pages fault back in on their own */
		if (run_len && gpa == run_start + run_len) {
			run_len += BALLOON_PAGE;
			continue;
		}
		if (run_len)
			discard_range(b, run_start, run_len);
		run_start = gpa;
		run_len = BALLOON_PAGE;
	}
	if (run_len)
		discard_range(b, run_start, run_len);
	if (inflate)
		b->inflated += count;
	else
		b->inflated = count > b->inflated ? 0 : b->inflated - count;
}

static void handle_stats(struct virtio_balloon *b)
{
	/* An array of packed { le16 tag; le64 val; }. */
	memset(b->stats.val, 0, sizeof(b->stats.val));
	b->stats.valid = 0;
	uint64_t end = b->elem.out_len;
	if (end > 10ull * MAX_STATS_PER_REQ)
		end = 10ull * MAX_STATS_PER_REQ;
	for (uint64_t off = 0; off + 10 <= end; off += 10) {
		uint8_t ent[10];
		virtq_elem_read(&b->elem, off, ent, 10);
		uint16_t tag;
		memcpy(&tag, ent, 2);
		if (tag >= VIRTIO_BALLOON_S_NR)
			continue;
		memcpy(&b->stats.val[tag], ent + 2, 8);
		b->stats.valid |= 1u << tag;
	}
	b->stats.reports++;
	b->stats_held = true;
	b->stats_head = b->elem.head;
}

static void balloon_notify(void *dev, unsigned qi)
{
	struct virtio_balloon *b = dev;
	struct virtq *q = &b->vd.vqs[qi];
	bool pushed = false;
	pthread_mutex_lock(&b->lock);
	while (virtio_dev_live(&b->vd)) {
		int got = virtq_pop(q, &b->elem);
		if (got == 0)
			break;
		if (got < 0) {
			virtio_dev_fail(&b->vd, q->error);
			break;
		}
		if (qi == STATS_Q) {
			if (b->stats_held) { /* a second buffer: return the old one */
				virtq_push(q, b->stats_head, 0);
				pushed = true;
			}
			handle_stats(b);
			continue;
		}
		handle_pages(b, qi == INFLATE_Q);
		virtq_push(q, b->elem.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_dev_queue_done(&b->vd, qi);
	pthread_mutex_unlock(&b->lock);
}

void virtio_balloon_request_stats(struct virtio_balloon *b)
{
	pthread_mutex_lock(&b->lock);
	if (b->stats_held && virtio_dev_live(&b->vd)) {
		b->stats_held = false;
		virtq_push(&b->vd.vqs[STATS_Q], b->stats_head, 0);
		virtio_dev_queue_done(&b->vd, STATS_Q);
	}
	pthread_mutex_unlock(&b->lock);
}

void virtio_balloon_get_stats(struct virtio_balloon *b, struct virtio_balloon_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->stats;
	pthread_mutex_unlock(&b->lock);
}

void virtio_balloon_set_target(struct virtio_balloon *b, uint32_t pages)
{
	pthread_mutex_lock(&b->lock);
	b->num_pages = pages;
	pthread_mutex_unlock(&b->lock);
	virtio_dev_config_changed(&b->vd);
}

void virtio_balloon_on_actual(struct virtio_balloon *b, void (*fn)(void *opaque, uint32_t actual),
			      void *opaque)
{
	pthread_mutex_lock(&b->lock);
	b->on_actual = fn;
	b->on_actual_opaque = opaque;
	pthread_mutex_unlock(&b->lock);
}

uint32_t virtio_balloon_actual(struct virtio_balloon *b)
{
	pthread_mutex_lock(&b->lock);
	uint32_t a = b->actual;
	pthread_mutex_unlock(&b->lock);
	return a;
}

uint64_t virtio_balloon_inflated(struct virtio_balloon *b)
{
	pthread_mutex_lock(&b->lock);
	uint64_t n = b->inflated;
	pthread_mutex_unlock(&b->lock);
	return n;
}

static void balloon_config_read(void *dev, uint32_t off, uint8_t *data, unsigned len)
{
	struct virtio_balloon *b = dev;
	uint8_t cfg[8];
	pthread_mutex_lock(&b->lock);
	memcpy(cfg, &b->num_pages, 4);
	memcpy(cfg + 4, &b->actual, 4);
	pthread_mutex_unlock(&b->lock);
	memcpy(data, cfg + off, len);
}

static void balloon_config_write(void *dev, uint32_t off, const uint8_t *data, unsigned len)
{
	struct virtio_balloon *b = dev;
	pthread_mutex_lock(&b->lock);
	uint8_t cfg[8];
	memcpy(cfg, &b->num_pages, 4);
	memcpy(cfg + 4, &b->actual, 4);
	memcpy(cfg + off, data, len);
	uint32_t before = b->actual;
	memcpy(&b->actual, cfg + 4, 4); /* num_pages is the host's to set */
	uint32_t now = b->actual;
	void (*fn)(void *, uint32_t) = b->on_actual;
	void *opaque = b->on_actual_opaque;
	pthread_mutex_unlock(&b->lock);
	if (fn && now != before)
		fn(opaque, now);
}

static void balloon_reset(void *dev)
{
	struct virtio_balloon *b = dev;
	pthread_mutex_lock(&b->lock);
	b->actual = 0;
	b->inflated = 0;
	b->stats_held = false;
	pthread_mutex_unlock(&b->lock);
}

/* Queues and the configuration are handled under the lock: holding it keeps the device
 * still; save and load run while it is held. */
static void balloon_quiesce(void *dev, bool stop)
{
	struct virtio_balloon *b = dev;
	if (stop)
		pthread_mutex_lock(&b->lock);
	else
		pthread_mutex_unlock(&b->lock);
}

/* The target, what the driver holds, and the statistics buffer kept for the next report. */
static int balloon_save(void *dev, struct state_buf *out)
{
	struct virtio_balloon *b = dev;
	struct state_writer w;
	state_begin(&w, out, "virtio-balloon", 1);
	state_put_u32(&w, "num_pages", b->num_pages);
	state_put_u32(&w, "actual", b->actual);
	state_put_u64(&w, "inflated", b->inflated);
	state_put_bool(&w, "stats_held", b->stats_held);
	state_put_u16(&w, "stats_head", b->stats_head);
	state_end(&w);
	return state_buf_check(out);
}

static int balloon_load(void *dev, const struct state_reader *r)
{
	struct virtio_balloon *b = dev;
	uint32_t num_pages, actual;
	uint64_t inflated;
	bool held;
	uint16_t head;
	if (state_get_u32(r, "num_pages", &num_pages) < 0 ||
	    state_get_u32(r, "actual", &actual) < 0 ||
	    state_get_u64(r, "inflated", &inflated) < 0 ||
	    state_get_bool(r, "stats_held", &held) < 0 || state_get_u16(r, "stats_head", &head) < 0)
		return -1;
	if (held && head >= b->vd.vqs[STATS_Q].size)
		return kite_error("device state: virtio-balloon: statistics buffer %u is past its "
				  "queue",
				  head);
	pthread_mutex_lock(&b->lock);
	b->num_pages = num_pages;
	b->actual = actual;
	b->inflated = inflated;
	b->stats_held = held;
	b->stats_head = head;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static const struct state_ops balloon_state = {"virtio-balloon", 1, balloon_save, balloon_load};

static const struct virtio_device_ops balloon_ops = {
    .name = "virtio-balloon",
    .device_id = VIRTIO_ID_BALLOON,
    .pci_class = 0x00ff00,
    .config_size = 8,
    .nqueues = 3,
    .queue_max_size = 128,
    .config_read = balloon_config_read,
    .config_write = balloon_config_write,
    .queue_notify = balloon_notify,
    .reset = balloon_reset,
    .state = &balloon_state,
    .quiesce = balloon_quiesce,
};

struct virtio_balloon *virtio_balloon_create(const struct guest_mem *mem)
{
	struct virtio_balloon *b = calloc(1, sizeof(*b));
	if (!b) {
		kite_error("virtio-balloon: out of memory");
		return NULL;
	}
	int err = pthread_mutex_init(&b->lock, NULL);
	if (err) {
		free(b);
		kite_error_errno(err, "virtio-balloon: mutex");
		return NULL;
	}
	if (virtio_dev_init(&b->vd, &balloon_ops, b, mem, 1ull << VIRTIO_BALLOON_F_STATS_VQ) < 0) {
		pthread_mutex_destroy(&b->lock);
		free(b);
		return NULL;
	}
	return b;
}

void virtio_balloon_destroy(struct virtio_balloon *b)
{
	if (!b)
		return;
	virtio_dev_destroy(&b->vd);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

struct virtio_dev *virtio_balloon_dev(struct virtio_balloon *b)
{
	return &b->vd;
}

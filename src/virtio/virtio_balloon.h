/* virtio-balloon (virtio 1.x, 5.5): the host sets a target in 4 KiB pages; the guest gives
 * pages back on the inflate queue (their host memory is dropped with MADV_DONTNEED) and
 * takes them back on the deflate queue. With VIRTIO_BALLOON_F_STATS_VQ the guest reports
 * memory statistics on request. */
#ifndef KITE_VIRTIO_VIRTIO_BALLOON_H
#define KITE_VIRTIO_VIRTIO_BALLOON_H

#include "virtio/virtio.h"

/* Statistic tags (5.5.6.3). */
enum {
	VIRTIO_BALLOON_S_SWAP_IN = 0,
	VIRTIO_BALLOON_S_SWAP_OUT = 1,
	VIRTIO_BALLOON_S_MAJFLT = 2,
	VIRTIO_BALLOON_S_MINFLT = 3,
	VIRTIO_BALLOON_S_MEMFREE = 4,
	VIRTIO_BALLOON_S_MEMTOT = 5,
	VIRTIO_BALLOON_S_AVAIL = 6,
	VIRTIO_BALLOON_S_CACHES = 7,
	VIRTIO_BALLOON_S_HTLB_PGALLOC = 8,
	VIRTIO_BALLOON_S_HTLB_PGFAIL = 9,
	VIRTIO_BALLOON_S_NR = 16 /* room for tags newer drivers send */
};

struct virtio_balloon_stats {
	uint64_t val[VIRTIO_BALLOON_S_NR];
	uint32_t valid; /* bit per tag seen in the last report */
	uint32_t reports;
};

struct virtio_balloon;

struct virtio_balloon *virtio_balloon_create(const struct guest_mem *mem);
void virtio_balloon_destroy(struct virtio_balloon *b); /* NULL is fine */
struct virtio_dev *virtio_balloon_dev(struct virtio_balloon *b);

/* Asks the guest to hold `pages` 4 KiB pages in the balloon (config interrupt). */
void virtio_balloon_set_target(struct virtio_balloon *b, uint32_t pages);
/* Calls fn (on the thread of the guest's config write) each time the driver changes
 * `actual`, as QEMU's BALLOON_CHANGE event follows it. */
void virtio_balloon_on_actual(struct virtio_balloon *b, void (*fn)(void *opaque, uint32_t actual),
			      void *opaque);
/* Pages the driver says it holds (its `actual` field). */
uint32_t virtio_balloon_actual(struct virtio_balloon *b);
/* Pages inflated minus pages deflated, as counted by the device. */
uint64_t virtio_balloon_inflated(struct virtio_balloon *b);
/* Hands the stats buffer back so the guest sends a fresh report. */
void virtio_balloon_request_stats(struct virtio_balloon *b);
void virtio_balloon_get_stats(struct virtio_balloon *b, struct virtio_balloon_stats *out);

#endif

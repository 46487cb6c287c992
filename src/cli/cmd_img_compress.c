/* Compressed output for kite img convert -c. Clusters go through two batch slots: while
 * worker threads compress one batch (blk_compress_cluster is thread-safe), this thread
 * writes the other batch's results in order (blk_pwrite_precompressed) and reads the next
 * clusters into it. The output is the same as a serial run. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH_BYTES (8u << 20)
#define MAX_THREADS 16

struct job {
	uint64_t off;
	size_t len;
	bool skip; /* all zeros: nothing to write */
	size_t clen;
	int err;
};

struct batch {
	struct blk *dst;
	size_t cs;
	uint8_t *raw, *out; /* room for `cap` clusters each */
	struct job *jobs;
	size_t n, cap;
	atomic_size_t next;
	pthread_t tid[MAX_THREADS];
	int started;
};

struct copy {
	struct blk *dst;
	uint64_t total;
	size_t cs;
	img_read_fn read_fn;
	img_zero_fn zero_fn;
	void *ctx;
};

static void *compress_worker(void *arg)
{
	struct batch *bt = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&bt->next, 1);
		if (i >= bt->n)
			return NULL;
		struct job *j = &bt->jobs[i];
		if (j->skip)
			continue;
		j->err = blk_compress_cluster(bt->dst, bt->raw + i * bt->cs, j->len,
					      bt->out + i * bt->cs, &j->clen);
	}
}

/* One thread per CPU, and at least 8 as qemu-img keeps 8 requests in flight (-m 8): on a
 * busy host that keeps our share of the CPUs comparable. */
static int nthreads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 8)
		n = 8;
	return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static void compress_start(struct batch *bt, int threads)
{
	atomic_store(&bt->next, 0);
	bt->started = 0;
	for (int t = 0; t < threads && (size_t)t < bt->n; t++) {
		if (pthread_create(&bt->tid[bt->started], NULL, compress_worker, bt) != 0)
			break;
		bt->started++;
	}
	if (bt->started == 0) /* no thread could start: compress here */
		compress_worker(bt);
}

static int compress_wait(struct batch *bt)
{
	for (int t = 0; t < bt->started; t++)
		pthread_join(bt->tid[t], NULL);
	bt->started = 0;
	for (size_t i = 0; i < bt->n; i++)
		if (bt->jobs[i].err)
			return -1;
	return 0;
}

/* Reads the clusters from *off into the batch, skipping those that are zero. */
static int fill(struct copy *c, struct batch *bt, uint64_t *off)
{
	bt->n = 0;
	while (bt->n < bt->cap && *off < c->total) {
		struct job *j = &bt->jobs[bt->n];
		uint8_t *buf = bt->raw + bt->n * c->cs;
		memset(j, 0, sizeof(*j));
		j->off = *off;
		j->len = c->total - *off < c->cs ? (size_t)(c->total - *off) : c->cs;
		bool zero;
		if (c->zero_fn(c->ctx, *off, j->len, &zero) < 0)
			return -1;
		if (zero) {
			j->skip = true;
		} else {
			if (c->read_fn(c->ctx, buf, j->len, *off) < 0)
				return -1;
			j->skip = img_is_zero(buf, j->len);
		}
		*off += j->len;
		bt->n++;
	}
	return 0;
}

static int drain(struct copy *c, struct batch *bt)
{
	for (size_t i = 0; i < bt->n; i++) {
		struct job *j = &bt->jobs[i];
		if (!j->skip && blk_pwrite_precompressed(c->dst, bt->out + i * c->cs, j->clen,
							 bt->raw + i * c->cs, j->len, j->off) < 0)
			return -1;
	}
	bt->n = 0;
	return 0;
}

int img_copy_compressed(struct blk *dst, uint64_t total, uint32_t cluster, img_read_fn read_fn,
			img_zero_fn zero_fn, void *ctx, void (*progress)(void *ctx, uint64_t done))
{
	struct copy c = {dst, total, cluster, read_fn, zero_fn, ctx};
	struct batch slot[2] = {{.dst = dst, .cs = cluster}, {.dst = dst, .cs = cluster}};
	int threads = nthreads();
	size_t cap = BATCH_BYTES / cluster;
	if (cap < (size_t)threads * 2)
		cap = (size_t)threads * 2;
	int rc = -1;
	for (int s = 0; s < 2; s++) {
		slot[s].cap = cap;
		slot[s].raw = malloc(cap * cluster);
		slot[s].out = malloc(cap * cluster);
		slot[s].jobs = calloc(cap, sizeof(*slot[s].jobs));
		if (!slot[s].raw || !slot[s].out || !slot[s].jobs) {
			kite_error("out of memory");
			goto out;
		}
	}
	uint64_t off = 0, written = 0;
	int cur = 0;
	if (fill(&c, &slot[cur], &off) < 0)
		goto out;
	compress_start(&slot[cur], threads);
	while (slot[cur].n > 0) {
		struct batch *busy = &slot[cur], *next = &slot[!cur];
		/* while `busy` compresses, read the next clusters; while `next` compresses,
		 * write `busy`'s results */
		int r = fill(&c, next, &off);
		if (compress_wait(busy) < 0 || r < 0)
			goto out;
		if (next->n > 0)
			compress_start(next, threads);
		for (size_t i = 0; i < busy->n; i++)
			written += busy->jobs[i].len;
		if (drain(&c, busy) < 0)
			goto out;
		progress(ctx, written);
		cur = !cur;
	}
	rc = 0;
out:
	for (int s = 0; s < 2; s++) {
		compress_wait(&slot[s]);
		free(slot[s].raw);
		free(slot[s].out);
		free(slot[s].jobs);
	}
	return rc;
}

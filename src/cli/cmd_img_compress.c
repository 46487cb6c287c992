/* Compressed output for kite img convert -c, as a pipeline over a ring of slots, each a
 * batch of consecutive clusters (about 1 MiB): this thread reads source batches into free
 * slots (in order, one read per run of data), worker threads compress filled slots
 * (blk_compress_cluster is thread-safe), and this thread writes finished slots in order
 * (blk_pwrite_precompressed; a run of clusters that do not shrink in one plain write).
 * Reading, compressing and writing overlap with no barrier between batches; the output
 * reads the same as a serial run's. Batches, not single clusters, keep the hand-overs
 * between threads (a futex wake each) and the reads few. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RING_BYTES  (16u << 20)
#define BATCH_BYTES (1u << 20)
#define MAX_THREADS 16

enum slot_state { SLOT_FREE, SLOT_FILLED, SLOT_BUSY, SLOT_DONE };

struct slot {
	enum slot_state state;
	uint64_t off;
	size_t len;   /* bytes of source in the batch */
	bool *skip;   /* per cluster: all zeros, nothing to compress or write */
	size_t *clen; /* per cluster: compressed length, 0 = store plainly */
	int err;
};

struct ring {
	struct blk *dst;
	size_t cs, per, n;  /* cluster size, clusters per slot, number of slots */
	uint8_t *raw, *out; /* n slots of per clusters each */
	struct slot *s;
	bool keep_zeros; /* -S 0: zero clusters are compressed too */
	uint64_t filled; /* slots handed out so far (slot index = count % n) */
	uint64_t taken;	 /* slots a worker has started */
	bool stop;
	pthread_mutex_t lock;
	pthread_cond_t work; /* a slot was filled, or stop */
	pthread_cond_t done; /* a slot was compressed */
};

static void *worker(void *arg)
{
	struct ring *r = arg;
	size_t bytes = r->per * r->cs;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->stop && r->taken == r->filled)
			pthread_cond_wait(&r->work, &r->lock);
		if (r->stop && r->taken == r->filled)
			break;
		size_t i = (size_t)(r->taken++ % r->n);
		struct slot *s = &r->s[i];
		s->state = SLOT_BUSY;
		pthread_mutex_unlock(&r->lock);
		int err = 0;
		for (size_t c = 0; c * r->cs < s->len && !err; c++) {
			size_t len = s->len - c * r->cs < r->cs ? s->len - c * r->cs : r->cs;
			s->clen[c] = 0;
			if (!s->skip[c])
				err = blk_compress_cluster(r->dst, r->raw + i * bytes + c * r->cs,
							   len, r->out + i * bytes + c * r->cs,
							   &s->clen[c]);
		}
		pthread_mutex_lock(&r->lock);
		s->err = err;
		s->state = SLOT_DONE;
		pthread_cond_signal(&r->done);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* One compressing thread per CPU: more only adds switches (measured: 16 threads on 2 CPUs
 * were 1.5x slower than 2). */
static int nthreads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

/* Reads the batch at s->off into buf: the clusters the source reports as zeros are not
 * read; each run of the others is, in one call. */
static int fill(struct ring *r, struct slot *s, uint8_t *buf, img_read_fn read_fn,
		img_zero_fn zero_fn, void *ctx)
{
	size_t nc = (s->len + r->cs - 1) / r->cs;
	for (size_t c = 0; c < nc; c++) {
		size_t len = s->len - c * r->cs < r->cs ? s->len - c * r->cs : r->cs;
		if (r->keep_zeros)
			s->skip[c] = false;
		else if (zero_fn(ctx, s->off + c * r->cs, len, &s->skip[c]) < 0)
			return -1;
	}
	for (size_t c = 0; c < nc;) {
		size_t e = c;
		while (e < nc && !s->skip[e])
			e++;
		if (e > c) {
			size_t end = e * r->cs < s->len ? e * r->cs : s->len;
			if (read_fn(ctx, buf + c * r->cs, end - c * r->cs, s->off + c * r->cs) < 0)
				return -1;
			for (size_t k = c; k < e; k++) {
				size_t len = end - k * r->cs < r->cs ? end - k * r->cs : r->cs;
				s->skip[k] = !r->keep_zeros && img_is_zero(buf + k * r->cs, len);
			}
		}
		c = e + 1;
	}
	return 0;
}

/* Writes a finished slot: zeros (when the target may hold old data), compressed clusters,
 * and each run of clusters that did not shrink as one plain write. */
static int write_slot(struct ring *r, const struct slot *s, size_t i, bool zero_old)
{
	size_t bytes = r->per * r->cs;
	size_t nc = (s->len + r->cs - 1) / r->cs;
	for (size_t c = 0; c < nc;) {
		uint64_t off = s->off + c * r->cs;
		size_t len = s->len - c * r->cs < r->cs ? s->len - c * r->cs : r->cs;
		const uint8_t *raw = r->raw + i * bytes + c * r->cs;
		if (s->skip[c]) {
			if (zero_old && blk_write_zeroes(r->dst, off, len, BLK_ZERO_MAY_UNMAP) < 0)
				return -1;
			c++;
		} else if (s->clen[c]) {
			if (blk_pwrite_precompressed(r->dst, r->out + i * bytes + c * r->cs,
						     s->clen[c], raw, len, off) < 0)
				return -1;
			c++;
		} else {
			size_t e = c + 1;
			while (e < nc && !s->skip[e] && !s->clen[e])
				e++;
			size_t end = e * r->cs < s->len ? e * r->cs : s->len;
			if (blk_pwrite(r->dst, raw, end - c * r->cs, off) < 0)
				return -1;
			c = e;
		}
	}
	return 0;
}

int img_copy_compressed(struct blk *dst, uint64_t total, uint32_t cluster, unsigned how,
			img_read_fn read_fn, img_zero_fn zero_fn, void *ctx,
			void (*progress)(void *ctx, uint64_t done))
{
	int threads = nthreads();
	struct ring r = {.dst = dst, .cs = cluster, .keep_zeros = how & IMG_CC_KEEP_ZEROS};
	bool zero_old = how & IMG_CC_ZERO_OLD;
	r.per = BATCH_BYTES / cluster ? BATCH_BYTES / cluster : 1;
	size_t bytes = r.per * cluster;
	r.n = RING_BYTES / bytes;
	if (r.n < (size_t)threads * 4)
		r.n = (size_t)threads * 4;
	r.raw = malloc(r.n * bytes);
	r.out = malloc(r.n * bytes);
	r.s = calloc(r.n, sizeof(*r.s));
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.work, NULL);
	pthread_cond_init(&r.done, NULL);
	pthread_t tid[MAX_THREADS];
	int started = 0, rc = -1;
	if (!r.raw || !r.out || !r.s) {
		kite_error("out of memory");
		goto out;
	}
	for (size_t i = 0; i < r.n; i++) {
		r.s[i].skip = calloc(r.per, sizeof(bool));
		r.s[i].clen = calloc(r.per, sizeof(size_t));
		if (!r.s[i].skip || !r.s[i].clen) {
			kite_error("out of memory");
			goto out;
		}
	}
	for (; started < threads; started++)
		if (pthread_create(&tid[started], NULL, worker, &r) != 0)
			break;
	if (started == 0) {
		kite_error("could not start compression threads");
		goto out;
	}
	uint64_t rd = 0, written = 0, next_write = 0;
	while (written < total) {
		/* fill free slots while there is input */
		while (rd < total && r.filled - next_write < r.n) {
			size_t i = (size_t)(r.filled % r.n);
			struct slot *s = &r.s[i];
			s->off = rd;
			s->len = total - rd < bytes ? (size_t)(total - rd) : bytes;
			s->err = 0;
			if (fill(&r, s, r.raw + i * bytes, read_fn, zero_fn, ctx) < 0)
				goto out;
			rd += s->len;
			pthread_mutex_lock(&r.lock);
			s->state = SLOT_FILLED;
			r.filled++;
			pthread_cond_signal(&r.work);
			pthread_mutex_unlock(&r.lock);
			/* write what is already finished before reading on */
			if (r.s[next_write % r.n].state == SLOT_DONE)
				break;
		}
		/* write the oldest slot once it is compressed */
		struct slot *s = &r.s[next_write % r.n];
		pthread_mutex_lock(&r.lock);
		while (s->state != SLOT_DONE)
			pthread_cond_wait(&r.done, &r.lock);
		pthread_mutex_unlock(&r.lock);
		if (s->err || write_slot(&r, s, (size_t)(next_write % r.n), zero_old) < 0)
			goto out;
		s->state = SLOT_FREE;
		written += s->len;
		next_write++;
		progress(ctx, written);
	}
	rc = 0;
out:
	pthread_mutex_lock(&r.lock);
	r.stop = true;
	pthread_cond_broadcast(&r.work);
	pthread_mutex_unlock(&r.lock);
	for (int t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	pthread_mutex_destroy(&r.lock);
	pthread_cond_destroy(&r.work);
	pthread_cond_destroy(&r.done);
	for (size_t i = 0; r.s && i < r.n; i++) {
		free(r.s[i].skip);
		free(r.s[i].clen);
	}
	free(r.raw);
	free(r.out);
	free(r.s);
	return rc;
}

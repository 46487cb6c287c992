/* Compressed output for kite img convert -c, as a pipeline over a ring of cluster slots:
 * this thread reads source clusters into free slots (in order), worker threads compress
 * filled slots (blk_compress_cluster is thread-safe), and this thread writes finished
 * slots in order (blk_pwrite_precompressed). Reading, compressing and writing overlap with
 * no barrier between batches; the output is the same as a serial run. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RING_BYTES  (16u << 20)
#define MAX_THREADS 16

enum slot_state { SLOT_FREE, SLOT_FILLED, SLOT_BUSY, SLOT_DONE };

struct slot {
	enum slot_state state;
	uint64_t off;
	size_t len;
	bool skip; /* all zeros: nothing to compress or write */
	size_t clen;
	int err;
};

struct ring {
	struct blk *dst;
	size_t cs, n;	    /* cluster size, number of slots */
	uint8_t *raw, *out; /* n clusters each */
	struct slot *s;
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
		size_t clen = 0;
		if (!s->skip)
			err = blk_compress_cluster(r->dst, r->raw + i * r->cs, s->len,
						   r->out + i * r->cs, &clen);
		pthread_mutex_lock(&r->lock);
		s->clen = clen;
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

int img_copy_compressed(struct blk *dst, uint64_t total, uint32_t cluster, bool zero_old,
			img_read_fn read_fn, img_zero_fn zero_fn, void *ctx,
			void (*progress)(void *ctx, uint64_t done))
{
	int threads = nthreads();
	struct ring r = {.dst = dst, .cs = cluster};
	r.n = RING_BYTES / cluster;
	if (r.n < (size_t)threads * 4)
		r.n = (size_t)threads * 4;
	r.raw = malloc(r.n * cluster);
	r.out = malloc(r.n * cluster);
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
			uint8_t *buf = r.raw + i * cluster;
			s->off = rd;
			s->len = total - rd < cluster ? (size_t)(total - rd) : cluster;
			s->err = 0;
			bool zero;
			if (zero_fn(ctx, rd, s->len, &zero) < 0)
				goto out;
			if (!zero && read_fn(ctx, buf, s->len, rd) < 0)
				goto out;
			s->skip = zero || img_is_zero(buf, s->len);
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
		if (s->err)
			goto out;
		size_t i = (size_t)(next_write % r.n);
		if (s->skip) {
			if (zero_old &&
			    blk_write_zeroes(dst, s->off, s->len, BLK_ZERO_MAY_UNMAP) < 0)
				goto out;
		} else if (blk_pwrite_precompressed(dst, r.out + i * cluster, s->clen,
						    r.raw + i * cluster, s->len, s->off) < 0) {
			goto out;
		}
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
	free(r.raw);
	free(r.out);
	free(r.s);
	return rc;
}

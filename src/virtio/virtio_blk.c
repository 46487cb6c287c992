#include "virtio/virtio_blk.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define SECTOR		 512
#define QUEUE_SIZE	 256
#define CONFIG_SIZE	 60
#define MAX_DWZ_SEGS	 32
#define MAX_DWZ_SECTORS	 (1u << 22)   /* 2 GiB per discard / write-zeroes segment */
#define DISCARD_ALIGN_SZ 8	      /* sectors: 4 KiB, a file system block */
#define IO_THREADS_MAX	 16	      /* requests in progress at once per disk */
#define RUN_MAX		 32	      /* writes one blk_pwritev carries */
#define RUN_BYTES	 (512u << 10) /* ... and no more bytes than this */

struct virtio_blk {
	struct virtio_dev vd;
	struct blk *blk;
	bool readonly;
	char serial[VIRTIO_BLK_SERIAL_LEN];
	uint8_t config[CONFIG_SIZE];
	uint64_t sectors;

	/* Requests run on a pool of I/O threads, several at once as QEMU's thread pool runs
	 * them, so that a guest's queue depth reaches the disk. One idle thread at a time
	 * blocks reading kick_fd (KVM signals it for a guest kick via queue_eventfd, a trapped
	 * notify and stop write it; open for the device's life, so no registration ever sees
	 * it closed); the others wait on work_cv. A thread that pops a chain (or a run of
	 * writes, see run_writes_locked) and sees more wakes or starts another, up to
	 * IO_THREADS_MAX. A thread that ran requests and finds none left hands kick_fd on
	 * (see hand_over_kicks_locked): the pool grows to IO_THREADS_MAX as kicks come, and
	 * the kicks then take turns over it. */
	int kick_fd;
	pthread_mutex_t lock; /* the queue and everything below */
	pthread_cond_t work_cv;
	pthread_cond_t drained_cv; /* inflight or starting dropped to 0 */
	bool have_kick;		   /* a kick passed virtio_dev_kick_ok(): pop until empty */
	bool polling;		   /* a thread is reading kick_fd */
	bool stop;
	bool quiesced; /* saving the machine: pop nothing (virtio_device_ops.quiesce) */
	unsigned inflight, nthreads;
	unsigned starting; /* threads reserved, being started outside the lock */
	/* Threads waiting on work_cv, and how many of them were signalled but have not run
	 * yet: work goes to an idle thread not already called, else to a new thread, so that
	 * every chain in flight has a thread however the host schedules them. */
	unsigned idle, called;
	struct io_thread *threads[IO_THREADS_MAX];
};

struct io_thread {
	struct virtio_blk *b;
	pthread_t thread;
	struct virtq_elem elem;
	/* A run of writes that follow each other on the disk, written in one go. */
	struct {
		uint16_t head;
		uint8_t *status;
	} run[RUN_MAX];
	struct iovec iov[BLK_IOV_MAX];
};

static void put_le(uint8_t *p, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

/* Checks a request range in sectors against the disk; returns the byte offset or -1. */
static int64_t range_ok(struct virtio_blk *b, uint64_t sector, uint64_t bytes)
{
	if (bytes % SECTOR || sector > b->sectors || bytes / SECTOR > b->sectors - sector)
		return -1;
	return (int64_t)(sector * SECTOR);
}

/* Checks a read of chain `e` at `sector`: VIRTIO_BLK_S_OK when it may be carried out. */
static uint8_t read_status(struct virtio_blk *b, const struct virtq_elem *e, uint64_t sector)
{
	if (e->out_len != 16) /* data buffers must be device-writable */
		return VIRTIO_BLK_S_IOERR;
	return range_ok(b, sector, e->in_len - 1) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

/* Appends the read's data buffers (all it may write but the status byte, which ends them)
 * to iov[*n]; false when they do not fit in `room` more entries. */
static bool gather_read(const struct virtq_elem *e, struct iovec *iov, int *n, int room)
{
	uint64_t left = e->in_len - 1;
	int k = *n;
	for (unsigned i = 0; i < e->n_in && left; i++) {
		size_t len = e->in[i].len < left ? e->in[i].len : (size_t)left;
		if (!len)
			continue;
		if (k == room)
			return false;
		iov[k++] = (struct iovec){e->in[i].base, len};
		left -= len;
	}
	*n = k;
	return true;
}

/* A read goes out as one blk_preadv, whatever number of buffers the driver split it in.
 * Reads are not merged across requests as writes are: tried twice (b2535ae), sequential
 * reads at queue depth 16 ran steadier but slower than in parallel, random ones slower. */
static uint8_t do_read(struct virtio_blk *b, struct virtq_elem *e, uint64_t sector,
		       uint32_t *written)
{
	uint8_t status = read_status(b, e, sector);
	if (status != VIRTIO_BLK_S_OK)
		return status;
	struct iovec iov[BLK_IOV_MAX];
	int n = 0;
	if (!gather_read(e, iov, &n, BLK_IOV_MAX) ||
	    blk_preadv(b->blk, iov, n, sector * SECTOR) < 0)
		return VIRTIO_BLK_S_IOERR;
	*written = e->in_len - 1;
	return VIRTIO_BLK_S_OK;
}

/* Checks a write of chain `e` at `sector`: VIRTIO_BLK_S_OK when it may be carried out. */
static uint8_t write_status(struct virtio_blk *b, const struct virtq_elem *e, uint64_t sector)
{
	if (b->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (e->in_len != 1) /* data buffers must be device-readable */
		return VIRTIO_BLK_S_IOERR;
	return range_ok(b, sector, e->out_len - 16) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

/* Appends the write's data buffers (past its 16-byte header) to iov[*n]; false when they
 * do not fit in `room` more entries. */
static bool gather_write(const struct virtq_elem *e, struct iovec *iov, int *n, int room)
{
	uint64_t skip = 16;
	int k = *n;
	for (unsigned i = 0; i < e->n_out; i++) {
		uint8_t *p = e->out[i].base;
		size_t len = e->out[i].len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		if (k == room)
			return false;
		iov[k++] = (struct iovec){p + skip, len - skip};
		skip = 0;
	}
	*n = k;
	return true;
}

static uint8_t do_write(struct virtio_blk *b, struct virtq_elem *e, uint64_t sector)
{
	uint8_t status = write_status(b, e, sector);
	if (status != VIRTIO_BLK_S_OK)
		return status;
	struct iovec iov[BLK_IOV_MAX];
	int n = 0;
	if (!gather_write(e, iov, &n, BLK_IOV_MAX) ||
	    blk_pwritev(b->blk, iov, n, sector * SECTOR) < 0)
		return VIRTIO_BLK_S_IOERR;
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_discard_zeroes(struct virtio_blk *b, struct virtq_elem *e, uint32_t type)
{
	unsigned feature =
	    type == VIRTIO_BLK_T_DISCARD ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES;
	if (!virtio_dev_has_feature(&b->vd, feature))
		return VIRTIO_BLK_S_UNSUPP;
	if (b->readonly)
		return VIRTIO_BLK_S_IOERR;
	uint64_t payload = e->out_len - 16;
	if (payload == 0 || payload % 16 || payload / 16 > MAX_DWZ_SEGS)
		return VIRTIO_BLK_S_IOERR;
	/* Check every segment before acting on any. */
	uint8_t segs[MAX_DWZ_SEGS * 16];
	virtq_elem_read(e, 16, segs, payload);
	for (uint64_t s = 0; s < payload / 16; s++) {
		uint64_t sector;
		uint32_t num, flags;
		memcpy(&sector, segs + 16 * s, 8);
		memcpy(&num, segs + 16 * s + 8, 4);
		memcpy(&flags, segs + 16 * s + 12, 4);
		if (num > MAX_DWZ_SECTORS || range_ok(b, sector, (uint64_t)num * SECTOR) < 0 ||
		    (flags & ~1u) || (type == VIRTIO_BLK_T_DISCARD && flags))
			return VIRTIO_BLK_S_IOERR;
	}
	for (uint64_t s = 0; s < payload / 16; s++) {
		uint64_t sector;
		uint32_t num, flags;
		memcpy(&sector, segs + 16 * s, 8);
		memcpy(&num, segs + 16 * s + 8, 4);
		memcpy(&flags, segs + 16 * s + 12, 4);
		int r = type == VIRTIO_BLK_T_DISCARD
			    ? blk_discard(b->blk, sector * SECTOR, (uint64_t)num * SECTOR)
			    : blk_write_zeroes(b->blk, sector * SECTOR, (uint64_t)num * SECTOR,
					       (flags & 1) ? BLK_ZERO_MAY_UNMAP : 0);
		if (r < 0)
			return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

/* Runs one popped request. Returns the used length, or -1 when the chain cannot even
 * carry a status (a protocol error). */
static int64_t handle(struct virtio_blk *b, struct virtq_elem *e)
{
	uint8_t hdr[16];
	if (e->out_len < 16 || e->in_len < 1)
		return -1;
	virtq_elem_read(e, 0, hdr, 16);
	uint32_t type;
	uint64_t sector;
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);

	uint32_t written = 0;
	uint8_t status;
	switch (type) {
	case VIRTIO_BLK_T_IN:
		status = do_read(b, e, sector, &written);
		break;
	case VIRTIO_BLK_T_OUT:
		status = do_write(b, e, sector);
		break;
	case VIRTIO_BLK_T_FLUSH:
		status = blk_flush(b->blk) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		uint64_t n = e->in_len - 1;
		if (n > VIRTIO_BLK_SERIAL_LEN)
			n = VIRTIO_BLK_SERIAL_LEN;
		written = virtq_elem_write(e, 0, b->serial, n);
		status = VIRTIO_BLK_S_OK;
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		status = do_discard_zeroes(b, e, type);
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	virtq_elem_write(e, e->in_len - 1, &status, 1);
	return (int64_t)written + 1;
}

static void kick(struct virtio_blk *b)
{
	uint64_t one = 1;
	if (write(b->kick_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		kite_warn("virtio-blk: cannot wake the I/O thread: %s", strerror(errno));
}

static void *io_thread_main(void *arg);

/* With b->lock held: reserves a place for one more thread, which the caller starts with
 * start_thread() once it has dropped the lock. False at the limit or when stopping. */
static bool reserve_thread_locked(struct virtio_blk *b)
{
	if (b->stop || b->nthreads + b->starting >= IO_THREADS_MAX)
		return false;
	b->starting++;
	return true;
}

/* Starts the thread reserved by reserve_thread_locked(), without the lock: creating a
 * thread costs a stack and system calls, which the requests of the other threads need not
 * wait for. A failure only loses parallelism. */
static bool start_thread(struct virtio_blk *b)
{
	struct io_thread *t = calloc(1, sizeof(*t));
	int err = t ? 0 : ENOMEM;
	if (t) {
		t->b = b;
		err = pthread_create(&t->thread, NULL, io_thread_main, t);
	}
	if (err) {
		kite_warn("virtio-blk: cannot start an I/O thread: %s", strerror(err));
		free(t);
		t = NULL;
	}
	pthread_mutex_lock(&b->lock);
	if (t)
		b->threads[b->nthreads++] = t;
	if (--b->starting == 0)
		pthread_cond_broadcast(&b->drained_cv);
	pthread_mutex_unlock(&b->lock);
	return t != NULL;
}

/* A write that can join a run: well formed, in range, on a writable disk. Sets its first
 * sector and length in sectors. Anything else runs alone through handle(). */
static bool plain_write(struct virtio_blk *b, const struct virtq_elem *e, uint64_t *sector,
			uint64_t *sectors)
{
	uint8_t hdr[16];
	uint32_t type;
	if (e->out_len <= 16 || e->in_len < 1)
		return false;
	virtq_elem_read(e, 0, hdr, 16);
	memcpy(&type, hdr, 4);
	memcpy(sector, hdr + 8, 8);
	*sectors = (e->out_len - 16) / SECTOR;
	return type == VIRTIO_BLK_T_OUT && write_status(b, e, *sector) == VIRTIO_BLK_S_OK;
}

enum helper { HELPER_NONE, HELPER_WAKE, HELPER_START };

/* With b->lock held: picks the thread to call, an idle one not yet called or a new one
 * (reserved), in the order `grow_first` says. The caller calls it with call_helper() once
 * it has dropped the lock. */
static enum helper pick_helper_locked(struct virtio_blk *b, bool grow_first)
{
	if (grow_first && reserve_thread_locked(b))
		return HELPER_START;
	if (b->idle > b->called) {
		b->called++;
		return HELPER_WAKE;
	}
	return !grow_first && reserve_thread_locked(b) ? HELPER_START : HELPER_NONE;
}

/* A thread took work while more waits: another thread takes the next chain, an idle one
 * if there is one (it is there already). */
static enum helper share_work_locked(struct virtio_blk *b)
{
	return virtq_has_avail(&b->vd.vqs[0]) ? pick_helper_locked(b, false) : HELPER_NONE;
}

/* Without the lock: a thread woken while the lock is still held would only run to block
 * on it, and on a host CPU it shares with others it would run first (it slept). */
static bool call_helper(struct virtio_blk *b, enum helper h)
{
	if (h == HELPER_WAKE)
		pthread_cond_signal(&b->work_cv);
	return h == HELPER_WAKE || (h == HELPER_START && start_thread(b));
}

static void request_done_locked(struct virtio_blk *b, unsigned n)
{
	virtio_dev_queue_done(&b->vd, 0);
	b->inflight -= n;
	if (b->inflight == 0)
		pthread_cond_broadcast(&b->drained_cv);
}

/* Runs one chain with the lock dropped, then returns it to the driver. */
static void run_request_locked(struct virtio_blk *b, struct virtq_elem *e)
{
	struct virtq *q = &b->vd.vqs[0];
	b->inflight++;
	enum helper helper = share_work_locked(b);
	pthread_mutex_unlock(&b->lock);
	call_helper(b, helper);
	int64_t used = handle(b, e);
	pthread_mutex_lock(&b->lock);
	if (used < 0) {
		virtio_dev_fail(&b->vd, "request without header or status");
		b->have_kick = false;
	} else {
		virtq_push(q, e->head, (uint32_t)used);
	}
	request_done_locked(b, 1);
}

/* t->elem holds a plain write at `sector`. Takes the writes that follow it on the disk
 * from the ring (up to RUN_MAX, RUN_BYTES) and writes them all with one blk_pwritev, as
 * QEMU merges such requests: a sequential stream costs one system call per run instead
 * of one per request. A longer stream goes on in another run on another thread, at the
 * same time: a disk opened with cache=none sees the queue depth, and on a host CPU shared
 * with the vCPU a thread woken for the next run is run sooner than one that ran on. */
static void run_writes_locked(struct virtio_blk *b, struct io_thread *t, uint64_t sector,
			      uint64_t sectors)
{
	struct virtq *q = &b->vd.vqs[0];
	uint64_t start = sector, end = sector + sectors;
	unsigned n = 0;
	int niov = 0;
	for (;;) {
		if (!gather_write(&t->elem, t->iov, &niov, BLK_IOV_MAX)) {
			if (n) { /* no room left in this run: the next one takes it */
				virtq_unpop(q, 1);
				end = sector;
				break;
			}
			/* a lone chain of more buffers than BLK_IOV_MAX: cannot be, seg_max */
			run_request_locked(b, &t->elem);
			return;
		}
		t->run[n].head = t->elem.head;
		t->run[n].status = virtq_elem_ptr(&t->elem, 0);
		n++;
		if (n == RUN_MAX || (end - start) * SECTOR >= RUN_BYTES)
			break;
		if (!virtq_has_avail(q))
			break;
		int r = virtq_pop(q, &t->elem);
		if (r < 0) {
			virtio_dev_fail(&b->vd, q->error);
			b->have_kick = false;
		}
		if (r <= 0)
			break;
		if (!plain_write(b, &t->elem, &sector, &sectors) || sector != end) {
			virtq_unpop(q, 1);
			break;
		}
		end += sectors;
	}
	b->inflight += n;
	enum helper helper = share_work_locked(b);
	pthread_mutex_unlock(&b->lock);
	call_helper(b, helper);
	uint8_t status = blk_pwritev(b->blk, t->iov, niov, start * SECTOR) < 0 ? VIRTIO_BLK_S_IOERR
									       : VIRTIO_BLK_S_OK;
	pthread_mutex_lock(&b->lock);
	for (unsigned i = 0; i < n; i++) {
		*t->run[i].status = status;
		virtq_push(q, t->run[i].head, 1);
	}
	request_done_locked(b, n);
}

/* With b->lock held, not polling: blocks for the next kick. False to end the thread. */
static bool wait_kick_locked(struct virtio_blk *b)
{
	b->polling = true;
	pthread_mutex_unlock(&b->lock);
	uint64_t count;
	ssize_t n = read(b->kick_fd, &count, sizeof(count));
	int err = errno;
	/* A KVM-signalled kick skipped virtio_dev_notify()'s checks: make them here. */
	bool ok = n == (ssize_t)sizeof(count) && virtio_dev_kick_ok(&b->vd, 0);
	if (n == (ssize_t)sizeof(count))
		__atomic_fetch_add(&b->vd.eventfd_kicks, count, __ATOMIC_RELAXED);
	pthread_mutex_lock(&b->lock);
	b->polling = false;
	if (n != (ssize_t)sizeof(count) && !(n < 0 && err == EINTR)) {
		kite_error_errno(n < 0 ? err : EIO, "virtio-blk: I/O thread: read");
		return false;
	}
	if (ok)
		b->have_kick = true;
	return true;
}

/* With b->lock held, by a thread that ran requests and found none left: starts a thread
 * (up to IO_THREADS_MAX), else calls one that waited longer, to take the next kick, as
 * QEMU's pool wakes its workers in turn. On a host CPU shared with a busy vCPU the
 * scheduler runs a thread sooner the longer it slept (up to a limit), and the guest waits
 * on this one: the more threads take turns, the longer each has slept. Drops the lock to
 * do so; false when there was no thread to call. */
static bool hand_over_kicks_locked(struct virtio_blk *b)
{
	enum helper h = pick_helper_locked(b, true);
	if (h == HELPER_NONE)
		return false;
	pthread_mutex_unlock(&b->lock);
	bool called = call_helper(b, h);
	pthread_mutex_lock(&b->lock);
	return called;
}

static void *io_thread_main(void *arg)
{
	struct io_thread *t = arg;
	struct virtio_blk *b = t->b;
	struct virtq *q = &b->vd.vqs[0];
	bool worked = false; /* since this thread last waited */
	pthread_mutex_lock(&b->lock);
	while (!b->stop) {
		if (b->have_kick && !b->quiesced && virtio_dev_live(&b->vd)) {
			int r = virtq_pop(q, &t->elem);
			uint64_t sector, sectors;
			if (r > 0 && plain_write(b, &t->elem, &sector, &sectors)) {
				run_writes_locked(b, t, sector, sectors);
				worked = true;
				continue;
			}
			if (r > 0) {
				run_request_locked(b, &t->elem);
				worked = true;
				continue;
			}
			b->have_kick = false;
			if (r < 0)
				virtio_dev_fail(&b->vd, q->error);
			continue;
		}
		if (!b->polling && worked && hand_over_kicks_locked(b)) {
			if (b->stop)
				break;
		} else if (!b->polling) {
			if (!wait_kick_locked(b))
				break;
			continue;
		}
		b->idle++;
		worked = false;
		pthread_cond_wait(&b->work_cv, &b->lock);
		b->idle--;
		if (b->called) /* else a spurious wakeup, or stop's broadcast */
			b->called--;
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

static void blk_notify(void *dev, unsigned q)
{
	(void)q;
	struct virtio_blk *b = dev;
	/* A notify that trapped (an MMIO exit, counted as such) is not one KVM signalled:
	 * take back the count its eventfd write will add. */
	__atomic_fetch_sub(&b->vd.eventfd_kicks, 1, __ATOMIC_RELAXED);
	kick(b);
}

static int blk_queue_eventfd(void *dev, unsigned q)
{
	struct virtio_blk *b = dev;
	return q == 0 ? b->kick_fd : -1;
}

static void blk_reset(void *dev)
{
	struct virtio_blk *b = dev;
	/* The status is already 0, so nothing new is popped; requests in progress still
	 * write into guest memory and the used ring: wait for them, as QEMU drains. */
	pthread_mutex_lock(&b->lock);
	while (b->inflight)
		pthread_cond_wait(&b->drained_cv, &b->lock);
	b->have_kick = false;
	pthread_mutex_unlock(&b->lock);
}

static void blk_config_read(void *dev, uint32_t off, uint8_t *data, unsigned len)
{
	struct virtio_blk *b = dev;
	memcpy(data, b->config + off, len);
}

/* Stops popping and waits for every request in flight (and every thread being started) to
 * complete: the used ring then says all there is, and the disk holds every write the guest
 * was told of. Chains still on the available ring stay there: after a load they are popped
 * on the first kick (virtio_dev_kick_all). */
static void blk_quiesce(void *dev, bool stop)
{
	struct virtio_blk *b = dev;
	pthread_mutex_lock(&b->lock);
	b->quiesced = stop;
	while (stop && (b->inflight || b->starting))
		pthread_cond_wait(&b->drained_cv, &b->lock);
	bool again = !stop && b->have_kick;
	pthread_mutex_unlock(&b->lock);
	if (stop)
		(void)blk_flush(b->blk);
	else if (again)
		kick(b);
}

/* Drained by quiesce: nothing in flight to record. The capacity and mode are checked
 * against the disk this machine has now. */
static int blk_save(void *dev, struct state_buf *out)
{
	struct virtio_blk *b = dev;
	struct state_writer w;
	pthread_mutex_lock(&b->lock);
	state_begin(&w, out, "virtio-blk", 1);
	state_put_u64(&w, "sectors", b->sectors);
	state_put_bool(&w, "readonly", b->readonly);
	state_put_u32(&w, "inflight", b->inflight);
	state_end(&w);
	pthread_mutex_unlock(&b->lock);
	return state_buf_check(out);
}

static int blk_load(void *dev, const struct state_reader *r)
{
	struct virtio_blk *b = dev;
	uint64_t sectors;
	bool readonly;
	uint32_t inflight;
	if (state_get_u64(r, "sectors", &sectors) < 0 ||
	    state_get_bool(r, "readonly", &readonly) < 0 ||
	    state_get_u32(r, "inflight", &inflight) < 0)
		return -1;
	if (inflight)
		return kite_error("device state: virtio-blk: %u requests were in flight (a save "
				  "drains them)",
				  inflight);
	if (sectors != b->sectors)
		return kite_error("device state: virtio-blk: the disk had %llu sectors, now %llu",
				  (unsigned long long)sectors, (unsigned long long)b->sectors);
	if (readonly != b->readonly)
		return kite_error("device state: virtio-blk: the disk was %s, now %s",
				  readonly ? "read-only" : "writable",
				  b->readonly ? "read-only" : "writable");
	return 0;
}

static const struct state_ops blk_state = {"virtio-blk", 1, blk_save, blk_load};

static const struct virtio_device_ops blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .pci_class = 0x010000, /* mass storage, SCSI: what QEMU shows */
    .config_size = CONFIG_SIZE,
    .nqueues = 1,
    .queue_max_size = QUEUE_SIZE,
    .config_read = blk_config_read,
    .queue_notify = blk_notify,
    .reset = blk_reset,
    .queue_eventfd = blk_queue_eventfd,
    .state = &blk_state,
    .quiesce = blk_quiesce,
};

void virtio_blk_set_blk(struct virtio_blk *b, struct blk *blk)
{
	b->blk = blk;
}

struct virtio_blk *virtio_blk_create(const struct guest_mem *mem, struct blk *blk, bool readonly,
				     const char *serial)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	if (!b) {
		kite_error("virtio-blk: out of memory");
		return NULL;
	}
	b->blk = blk;
	b->readonly = readonly || !blk_is_writable(blk);
	if (serial) /* 20 bytes, NUL-padded, not necessarily terminated (5.2.6) */
		memcpy(b->serial, serial, strnlen(serial, sizeof(b->serial)));
	b->sectors = blk_size(blk) / SECTOR;

	uint64_t features = 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE |
			    1ull << VIRTIO_BLK_F_FLUSH;
	if (b->readonly)
		features |= 1ull << VIRTIO_BLK_F_RO;
	else
		features |= 1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;

	put_le(b->config + 0, 8, b->sectors);	     /* capacity */
	put_le(b->config + 12, 4, QUEUE_SIZE - 2);   /* seg_max: room for header, status */
	put_le(b->config + 20, 4, SECTOR);	     /* blk_size */
	put_le(b->config + 36, 4, MAX_DWZ_SECTORS);  /* max_discard_sectors */
	put_le(b->config + 40, 4, MAX_DWZ_SEGS);     /* max_discard_seg */
	put_le(b->config + 44, 4, DISCARD_ALIGN_SZ); /* discard_sector_alignment */
	put_le(b->config + 48, 4, MAX_DWZ_SECTORS);  /* max_write_zeroes_sectors */
	put_le(b->config + 52, 4, MAX_DWZ_SEGS);     /* max_write_zeroes_seg */
	b->config[56] = 1;			     /* write_zeroes_may_unmap */

	b->kick_fd = eventfd(0, EFD_CLOEXEC);
	if (b->kick_fd < 0) {
		kite_error_errno(errno, "virtio-blk: eventfd");
		free(b);
		return NULL;
	}
	if (virtio_dev_init(&b->vd, &blk_ops, b, mem, features) < 0) {
		close(b->kick_fd);
		free(b);
		return NULL;
	}
	int err = pthread_mutex_init(&b->lock, NULL);
	if (!err)
		err = pthread_cond_init(&b->work_cv, NULL);
	if (!err)
		err = pthread_cond_init(&b->drained_cv, NULL);
	if (err) {
		kite_error_errno(err, "virtio-blk: cannot set up the I/O threads");
		virtio_dev_destroy(&b->vd);
		close(b->kick_fd);
		free(b);
		return NULL;
	}
	pthread_mutex_lock(&b->lock);
	bool reserved = reserve_thread_locked(b);
	pthread_mutex_unlock(&b->lock);
	if (reserved)
		start_thread(b);
	if (b->nthreads == 0) {
		kite_error("virtio-blk: cannot start the I/O thread");
		virtio_blk_destroy(b);
		return NULL;
	}
	return b;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = true; /* no thread is reserved after this */
	pthread_cond_broadcast(&b->work_cv);
	while (b->starting) /* threads being started: wait, to join them too */
		pthread_cond_wait(&b->drained_cv, &b->lock);
	pthread_mutex_unlock(&b->lock);
	kick(b); /* the polling thread */
	for (unsigned i = 0; i < b->nthreads; i++) {
		pthread_join(b->threads[i]->thread, NULL);
		free(b->threads[i]);
	}
	pthread_cond_destroy(&b->drained_cv);
	pthread_cond_destroy(&b->work_cv);
	pthread_mutex_destroy(&b->lock);
	virtio_dev_destroy(&b->vd);
	close(b->kick_fd);
	free(b);
}

struct virtio_dev *virtio_blk_dev(struct virtio_blk *b)
{
	return &b->vd;
}

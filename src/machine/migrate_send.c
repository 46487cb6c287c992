/* The source side of a migration: pre-copy over the stream of machine/migrate.h. */
#include "util/err.h"
#include "machine/migrate.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *const status_names[] = {
    [MIGRATE_NONE] = "none",	 [MIGRATE_SETUP] = "setup",
    [MIGRATE_ACTIVE] = "active", [MIGRATE_COMPLETED] = "completed",
    [MIGRATE_FAILED] = "failed", [MIGRATE_CANCELLED] = "cancelled",
};

const char *migrate_status_name(enum migrate_status s)
{
	return s <= MIGRATE_CANCELLED ? status_names[s] : "unknown";
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void migrate_job_init(struct migrate_job *j)
{
	memset(j, 0, sizeof(*j));
	pthread_mutex_init(&j->lock, NULL);
	atomic_init(&j->cancel, false);
	j->fd = -1;
}

void migrate_job_cancel(struct migrate_job *j)
{
	atomic_store(&j->cancel, true);
	pthread_mutex_lock(&j->lock);
	if (j->fd >= 0)
		shutdown(j->fd, SHUT_RDWR);
	pthread_mutex_unlock(&j->lock);
}

json_t *migrate_job_json(struct migrate_job *j)
{
	pthread_mutex_lock(&j->lock);
	if (j->status == MIGRATE_SETUP || j->status == MIGRATE_ACTIVE)
		j->total_ms = now_ms() - j->start_ms;
	json_t *o = json_pack(
	    "{s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:I, s:I}", "status",
	    migrate_status_name(j->status), "iteration", (json_int_t)j->iteration, "ram", "total",
	    (json_int_t)j->ram_total, "transferred", (json_int_t)j->transferred, "remaining",
	    (json_int_t)j->remaining, "duplicate", (json_int_t)j->zero_pages, "normal",
	    (json_int_t)j->pages_sent, "dirty-pages-rate", (json_int_t)j->dirty_rate, "bandwidth",
	    (json_int_t)j->bandwidth, "expected-downtime", (json_int_t)j->expected_downtime,
	    "total-time", (json_int_t)j->total_ms);
	if (o && j->status == MIGRATE_COMPLETED)
		json_object_set_new(o, "downtime", json_integer((json_int_t)j->downtime));
	if (o && j->error[0])
		json_object_set_new(o, "error-desc", json_string(j->error));
	pthread_mutex_unlock(&j->lock);
	return o;
}

static bool zero_page(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	for (size_t i = 0; i < MIGRATE_PAGE / 8; i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

static uint64_t count_bits(const uint64_t *bm, uint64_t words)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(bm[i]);
	return n;
}

struct sender {
	struct migrate_job *job;
	const struct migrate_source *src;
	int fd;
	uint64_t npages, words;
	uint64_t *bitmap;
	uint8_t *copy; /* a frame's pages: the guest may change them while they are sent */
};

static int cancelled(struct sender *s)
{
	if (atomic_load(&s->job->cancel))
		return kite_error("migration cancelled");
	return 0;
}

/* A write failed: the destination may have said why before it closed. */
static int stream_error(struct sender *s)
{
	int e = errno;
	if (cancelled(s) < 0)
		return -1;
	struct pollfd p = {.fd = s->fd, .events = POLLIN};
	if (poll(&p, 1, 1000) == 1 && migrate_expect_token(s->fd, "\0\0\0", "migration") < 0 &&
	    strstr(kite_last_error(), "the destination refused"))
		return -1;
	return kite_error_errno(e, "migration: the connection to the destination broke");
}

static void account(struct sender *s, uint64_t bytes, uint64_t zero, uint64_t data)
{
	pthread_mutex_lock(&s->job->lock);
	s->job->transferred += bytes;
	s->job->zero_pages += zero;
	s->job->pages_sent += data;
	uint64_t left = (zero + data) * MIGRATE_PAGE;
	s->job->remaining = s->job->remaining > left ? s->job->remaining - left : 0;
	pthread_mutex_unlock(&s->job->lock);
}

/* Sends every page set in the bitmap (clearing it): runs of zero pages as 'Z', others in
 * 'P' frames of up to MIGRATE_FRAME_PAGES contiguous pages. */
static int send_pages(struct sender *s)
{
	const uint8_t *ram = s->src->mem->base;
	for (uint64_t i = 0; i < s->npages;) {
		if (!(s->bitmap[i >> 6] >> (i & 63) & 1)) {
			if (!(i & 63) && !s->bitmap[i >> 6])
				i += 64;
			else
				i++;
			continue;
		}
		if (cancelled(s) < 0)
			return -1;
		bool zero = zero_page(ram + i * MIGRATE_PAGE);
		uint64_t j = i + 1, limit = zero ? (1u << 20) : MIGRATE_FRAME_PAGES;
		while (j < s->npages && j - i < limit && (s->bitmap[j >> 6] >> (j & 63) & 1) &&
		       zero_page(ram + j * MIGRATE_PAGE) == zero)
			j++;
		for (uint64_t k = i; k < j; k++)
			s->bitmap[k >> 6] &= ~(1ull << (k & 63));
		uint64_t n = j - i, first = i;
		int r;
		if (zero) {
			uint64_t z[2] = {first, n};
			r = migrate_send_frame(s->fd, MIGRATE_F_ZERO, z, sizeof(z), NULL, 0);
			if (r == 0)
				account(s, 12 + sizeof(z) + 4, n, 0);
		} else {
			/* A copy: the checksum must be of the bytes that go out. */
			memcpy(s->copy, ram + first * MIGRATE_PAGE, n * MIGRATE_PAGE);
			r = migrate_send_frame(s->fd, MIGRATE_F_PAGES, &first, 8, s->copy,
					       n * MIGRATE_PAGE);
			if (r == 0)
				account(s, 12 + 8 + n * MIGRATE_PAGE + 4, 0, n);
		}
		if (r < 0)
			return stream_error(s);
		i = j;
	}
	return 0;
}

static int send_header(struct sender *s, const struct migrate_params *p)
{
	json_t *j = machine_config_to_json(s->src->def);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!text)
		return kite_error("out of memory");
	struct state_buf hdr = {0};
	struct state_writer w;
	state_begin(&w, &hdr, "migration", 1);
	state_put_bytes(&w, "definition", text, strlen(text));
	state_put_u64(&w, "ram_size", p->offline ? 0 : s->src->mem->ram_size);
	state_put_u32(&w, "page_size", MIGRATE_PAGE);
	state_put_bool(&w, "offline", p->offline);
	state_end(&w);
	free(text);
	uint8_t pre[12];
	uint32_t v = MIGRATE_VERSION;
	memcpy(pre, MIGRATE_MAGIC, 8);
	memcpy(pre + 8, &v, 4);
	int r = state_buf_check(&hdr);
	if (r == 0 && (migrate_write_all(s->fd, pre, sizeof(pre)) < 0 ||
		       migrate_send_frame(s->fd, MIGRATE_F_HEADER, hdr.data, hdr.len, NULL, 0) < 0))
		r = stream_error(s);
	state_buf_free(&hdr);
	if (r == 0)
		r = migrate_expect_token(s->fd, "OKAY", "migration");
	return r;
}

static void set_status(struct migrate_job *job, enum migrate_status st)
{
	pthread_mutex_lock(&job->lock);
	job->status = st;
	pthread_mutex_unlock(&job->lock);
}

/* Rounds while the guest runs, until the rest fits the downtime limit. */
static int precopy(struct sender *s, const struct migrate_params *p)
{
	for (uint32_t round = 1;; round++) {
		uint64_t t0 = now_ms(), sent0;
		pthread_mutex_lock(&s->job->lock);
		s->job->iteration = round;
		sent0 = s->job->transferred;
		pthread_mutex_unlock(&s->job->lock);
		if (send_pages(s) < 0)
			return -1;
		if (s->src->log_sync(s->src->opaque, s->bitmap) < 0)
			return -1;
		uint64_t dt = now_ms() - t0 + 1, dirty = count_bits(s->bitmap, s->words);
		pthread_mutex_lock(&s->job->lock);
		uint64_t bytes = s->job->transferred - sent0;
		if (bytes > (1u << 20) || !s->job->bandwidth)
			s->job->bandwidth = bytes * 1000 / dt;
		uint64_t bw = s->job->bandwidth ? s->job->bandwidth : 1;
		s->job->dirty_rate = dirty * 1000 / dt;
		s->job->remaining = dirty * MIGRATE_PAGE;
		s->job->expected_downtime = dirty * MIGRATE_PAGE * 1000 / bw;
		uint64_t expect = s->job->expected_downtime;
		pthread_mutex_unlock(&s->job->lock);
		if (expect <= p->max_downtime_ms || round >= MIGRATE_MAX_ROUNDS)
			return 0;
	}
}

static int run(struct sender *s, const struct migrate_params *p, bool *stopped, bool *logging,
	       bool *released, uint64_t *t_stop)
{
	if (send_header(s, p) < 0)
		return -1;
	if (!p->offline) {
		const struct migrate_source *src = s->src;
		s->npages = src->mem->ram_size / MIGRATE_PAGE;
		s->words = (s->npages + 63) / 64;
		s->bitmap = calloc(s->words ? s->words : 1, 8);
		s->copy = malloc(MIGRATE_FRAME_PAGES * MIGRATE_PAGE);
		if (!s->bitmap || !s->copy)
			return kite_error("out of memory");
		for (uint64_t i = 0; i < s->npages; i++)
			s->bitmap[i >> 6] |= 1ull << (i & 63);
		pthread_mutex_lock(&s->job->lock);
		s->job->ram_total = s->job->remaining = src->mem->ram_size;
		pthread_mutex_unlock(&s->job->lock);
		set_status(s->job, MIGRATE_ACTIVE);
		if (p->live) {
			if (src->log_start(src->opaque) < 0)
				return -1;
			*logging = true;
			if (precopy(s, p) < 0)
				return -1;
		}
		*t_stop = now_ms();
		if (src->stop(src->opaque) < 0)
			return -1;
		*stopped = true;
		if (*logging && src->log_sync(src->opaque, s->bitmap) < 0)
			return -1;
		if (send_pages(s) < 0)
			return -1;
		struct state_buf st = {0};
		int r = src->save_state(src->opaque, &st);
		if (r == 0 &&
		    migrate_send_frame(s->fd, MIGRATE_F_STATE, st.data, st.len, NULL, 0) < 0)
			r = stream_error(s);
		state_buf_free(&st);
		if (r < 0)
			return -1;
	} else {
		set_status(s->job, MIGRATE_ACTIVE);
		*t_stop = now_ms();
	}
	if (migrate_send_frame(s->fd, MIGRATE_F_END, NULL, 0, NULL, 0) < 0)
		return stream_error(s);
	if (migrate_expect_token(s->fd, "RCVD", "migration") < 0 || cancelled(s) < 0)
		return -1;
	/* The destination has everything: from here the disks are its to lock. */
	if (!p->offline) {
		if (s->src->release_disks(s->src->opaque) < 0)
			return -1;
		*released = true;
	}
	if (migrate_send_frame(s->fd, MIGRATE_F_GO, NULL, 0, NULL, 0) < 0)
		return stream_error(s);
	return migrate_expect_token(s->fd, "DONE", "migration");
}

int migrate_send(struct migrate_job *job, const struct migrate_source *src,
		 const struct migrate_params *p)
{
	uint64_t t0 = now_ms(), t_stop = 0;
	struct sender s = {.job = job, .src = src, .fd = -1};
	bool stopped = false, logging = false, released = false;
	pthread_mutex_lock(&job->lock);
	job->start_ms = t0;
	pthread_mutex_unlock(&job->lock);
	set_status(job, MIGRATE_SETUP);
	int fd = migrate_connect(p->dest);
	int r = -1;
	if (fd >= 0) {
		pthread_mutex_lock(&job->lock);
		job->fd = fd;
		pthread_mutex_unlock(&job->lock);
		s.fd = fd;
		/* A cancel that came before the fd was known. */
		if (cancelled(&s) == 0)
			r = run(&s, p, &stopped, &logging, &released, &t_stop);
	}
	if (r < 0) {
		/* Back as it was: the destination drops what it got when the stream ends. */
		if (released && src->take_disks(src->opaque) < 0)
			kite_warn("migration failed and the disks' locks could not be taken back");
		if (stopped)
			src->resume(src->opaque);
	}
	if (logging)
		src->log_stop(src->opaque);
	pthread_mutex_lock(&job->lock);
	job->fd = -1;
	uint64_t t1 = now_ms();
	job->total_ms = t1 - t0;
	if (r == 0) {
		job->status = MIGRATE_COMPLETED;
		job->downtime = t1 - t_stop;
		job->remaining = 0;
	} else {
		job->status = atomic_load(&job->cancel) ? MIGRATE_CANCELLED : MIGRATE_FAILED;
		snprintf(job->error, sizeof(job->error), "%s", kite_last_error());
	}
	pthread_mutex_unlock(&job->lock);
	if (fd >= 0)
		close(fd);
	free(s.bitmap);
	free(s.copy);
	return r;
}

#include "cli/fake_migrate.h"
#include "block/blk_handover.h"
#include "mgmt/control_server.h"
#include "util/err.h"
#include "machine/savefile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

static struct {
	pthread_mutex_t lock;
	bool running, joinable, job_ready;
	pthread_t thread;
	struct migrate_job job;
	struct migrate_params params;
	struct fake_migrate_guest *g;
	uint64_t dirty_pages, round;
	bool was_paused;
} fm = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The fake guest uses its first 16 MiB only: the rest stays zero pages. */
#define FAKE_USED (16u << 20)

static uint64_t used_bytes(const struct guest_mem *mem)
{
	return mem->ram_size < FAKE_USED ? mem->ram_size : FAKE_USED;
}

static uint32_t ram_crc(const struct guest_mem *mem)
{
	uLong c = crc32(0L, Z_NULL, 0);
	uint64_t used = used_bytes(mem);
	for (uint64_t off = 0; off < used; off += 1u << 20)
		c = crc32(c, mem->base + off,
			  (uInt)(used - off < (1u << 20) ? used - off : 1u << 20));
	return (uint32_t)c;
}

static void print_crc(struct fake_migrate_guest *g, const char *when)
{
	char text[160];
	snprintf(text, sizeof(text), "fake guest: RAM crc32 %08x %s\n", ram_crc(g->mem), when);
	g->print(g->opaque, text);
}

int fake_migrate_ram(struct fake_migrate_guest *g, struct savefile *restore)
{
	if (gmem_init(g->mem, g->machine->memory) < 0)
		return -1;
	if (restore) {
		if (savefile_map_ram(restore, g->mem) < 0)
			return -1;
		print_crc(g, "restored");
		return 0;
	}
	/* Every 5th page of the first 16 MiB holds its index: data and zero pages both. */
	for (uint64_t pg = 0; (pg + 1) * MIGRATE_PAGE <= used_bytes(g->mem); pg += 5)
		memset(g->mem->base + pg * MIGRATE_PAGE, (int)(pg % 251) + 1, MIGRATE_PAGE);
	return 0;
}

static int f_log_start(void *o)
{
	return 0;
}

/* The guest ran for a while: it changed some pages. */
static int f_log_sync(void *o, uint64_t *bitmap)
{
	struct fake_migrate_guest *g = o;
	fm.round++;
	uint64_t npages = used_bytes(g->mem) / MIGRATE_PAGE;
	for (uint64_t i = 0; i < fm.dirty_pages && npages; i++) {
		uint64_t pg = (fm.round * 7919 + i * 104729) % npages;
		memset(g->mem->base + pg * MIGRATE_PAGE, (int)((fm.round + i) % 255) + 1, 64);
		bitmap[pg >> 6] |= 1ull << (pg & 63);
	}
	if (fm.dirty_pages) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

static void f_log_stop(void *o)
{
}

static int f_stop(void *o)
{
	struct fake_migrate_guest *g = o;
	g->set_paused(g->opaque, true);
	print_crc(g, "at the switch");
	return 0;
}

static void f_resume(void *o)
{
	struct fake_migrate_guest *g = o;
	g->set_paused(g->opaque, false);
	g->print(g->opaque, "fake guest: running on after the migration failed\n");
}

static int f_state(void *o, struct state_buf *out)
{
	return 0;
}

static int f_release(void *o)
{
	struct fake_migrate_guest *g = o;
	for (int i = 0; i < MACHINE_MAX_DISKS; i++)
		if (g->blks[i] && blk_release_locks(g->blks[i]) < 0)
			return -1;
	return 0;
}

static int f_take(void *o)
{
	struct fake_migrate_guest *g = o;
	int r = 0;
	for (int i = 0; i < MACHINE_MAX_DISKS; i++)
		if (g->blks[i] && blk_take_locks(g->blks[i]) < 0)
			r = -1;
	return r;
}

static void *fake_main(void *arg)
{
	struct fake_migrate_guest *g = arg;
	struct migrate_source src = {
	    .def = g->machine,
	    .mem = g->mem,
	    .opaque = g,
	    .log_start = f_log_start,
	    .log_sync = f_log_sync,
	    .log_stop = f_log_stop,
	    .stop = f_stop,
	    .resume = f_resume,
	    .save_state = f_state,
	    .release_disks = f_release,
	    .take_disks = f_take,
	};
	int r = migrate_send(&fm.job, &src, &fm.params);
	pthread_mutex_lock(&fm.job.lock);
	enum migrate_status st = fm.job.status;
	pthread_mutex_unlock(&fm.job.lock);
	g->done(g->opaque, r, st);
	pthread_mutex_lock(&fm.lock);
	fm.running = false;
	pthread_mutex_unlock(&fm.lock);
	return NULL;
}

int fake_migrate_start(struct fake_migrate_guest *g, json_t *args)
{
	json_t *v;
	if (!g->mem->base && fake_migrate_ram(g, NULL) < 0) {
		control_set_error(NULL, "%s", kite_last_error());
		return -1;
	}
	pthread_mutex_lock(&fm.lock);
	if (fm.running) {
		pthread_mutex_unlock(&fm.lock);
		control_set_error(NULL, "a migration is already running");
		return -1;
	}
	if (fm.joinable)
		pthread_join(fm.thread, NULL);
	fm.joinable = false;
	if (fm.job_ready)
		pthread_mutex_destroy(&fm.job.lock);
	migrate_job_init(&fm.job);
	fm.job_ready = true;
	memset(&fm.params, 0, sizeof(fm.params));
	snprintf(fm.params.dest, sizeof(fm.params.dest), "%s",
		 json_string_value(json_object_get(args, "uri")));
	fm.params.live = !(v = json_object_get(args, "live")) || json_is_true(v);
	fm.params.max_downtime_ms = (v = json_object_get(args, "max-downtime"))
					? (uint32_t)json_integer_value(v)
					: MIGRATE_DEFAULT_DOWNTIME;
	const char *d = getenv("KITE_FAKE_DIRTY_PAGES");
	fm.dirty_pages = d ? strtoull(d, NULL, 10) : 0;
	fm.round = 0;
	fm.g = g;
	int e = pthread_create(&fm.thread, NULL, fake_main, g);
	if (e == 0)
		fm.running = fm.joinable = true;
	pthread_mutex_unlock(&fm.lock);
	if (e) {
		control_set_error(NULL, "cannot start the migration thread");
		return -1;
	}
	return 0;
}

json_t *fake_migrate_query(void)
{
	pthread_mutex_lock(&fm.lock);
	json_t *j = fm.job_ready ? migrate_job_json(&fm.job) : json_pack("{s:s}", "status", "none");
	pthread_mutex_unlock(&fm.lock);
	return j;
}

void fake_migrate_cancel(void)
{
	pthread_mutex_lock(&fm.lock);
	if (fm.running)
		migrate_job_cancel(&fm.job);
	pthread_mutex_unlock(&fm.lock);
}

void fake_migrate_end(void)
{
	fake_migrate_cancel();
	pthread_mutex_lock(&fm.lock);
	bool j = fm.joinable;
	fm.joinable = false;
	pthread_mutex_unlock(&fm.lock);
	if (j)
		pthread_join(fm.thread, NULL);
}

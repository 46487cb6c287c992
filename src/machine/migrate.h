/* Live migration: a running machine's definition, RAM and device state sent over a stream to
 * a `kite migrate-incoming` waiting at tcp:HOST:PORT or unix:PATH, which writes them into a
 * save file (machine/savefile.h) and resumes the machine from it.
 *
 * The stream, integers little-endian:
 *   "KITEMIGR", u32 stream version (MIGRATE_VERSION)
 *   frames: u32 type, u32 payload length, the payload, u32 CRC-32 of the payload
 *     'H' header, first and once: a state record (util/state.h) "migration" version 1 with
 *         "definition" (the machine's JSON), "ram_size", "page_size", "offline" (bool)
 *     'P' pages: u64 first page, then whole pages of data (at most MIGRATE_FRAME_PAGES)
 *     'Z' zero pages: u64 first page, u64 count
 *     'S' the device state records (vm_save_state), once, after the last pages
 *     'E' end: everything was sent
 *     'G' go: the source has let go of its disks' locks; the destination starts the machine
 * and the destination answers with 4-byte tokens: "OKAY" (header accepted), "RCVD"
 * (everything received and checked), "DONE" (the machine runs here), or "FAIL" with a u32
 * length and a message, after which it closes the connection.
 *
 * The receiver checks every frame (type, length, CRC, page ranges, order) and the header as
 * a save file's; anything wrong is an error and the partial file is removed.
 *
 * Pre-copy (migrate_send): dirty logging on, every page sent while the guest runs, then the
 * pages dirtied meanwhile, round after round, until what is left fits the downtime limit at
 * the bandwidth measured (or MIGRATE_MAX_ROUNDS); then the guest is stopped, the rest and the
 * device state sent, the locks handed over at "RCVD" and the run ends at "DONE". Any failure
 * before "DONE" resumes the guest here. */
#ifndef KITE_VMM_MIGRATE_H
#define KITE_VMM_MIGRATE_H

#include "config/machine_config.h"
#include "util/state.h"
#include "kvm/memory.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define MIGRATE_MAGIC		 "KITEMIGR"
#define MIGRATE_VERSION		 1
#define MIGRATE_PAGE		 4096
#define MIGRATE_FRAME_PAGES	 256 /* 1 MiB of data per 'P' frame */
#define MIGRATE_HEADER_MAX	 (16u << 20)
#define MIGRATE_STATE_MAX	 (64u << 20)
#define MIGRATE_MAX_ROUNDS	 30
#define MIGRATE_DEFAULT_DOWNTIME 50 /* ms */

enum migrate_frame {
	MIGRATE_F_HEADER = 'H',
	MIGRATE_F_PAGES = 'P',
	MIGRATE_F_ZERO = 'Z',
	MIGRATE_F_STATE = 'S',
	MIGRATE_F_END = 'E',
	MIGRATE_F_GO = 'G',
};

/* ---- the stream (migrate_stream.c) ---- */

/* DEST: tcp:HOST:PORT, unix:PATH, or (connecting only) ssh://[user@]host[:port][/STATE_DIR]
 * (runs `ssh host kite migrate-incoming [--state-dir STATE_DIR] stdio`). Connects (source) /
 * listens and accepts one (destination). Return the connected fd, or -1 (printed). */
int migrate_connect(const char *dest);
int migrate_listen(const char *dest);
int migrate_accept(int lfd);
/* Whole writes and reads; -1 with errno (EPIPE/ECONNRESET, or EIO for an early end). */
int migrate_write_all(int fd, const void *p, size_t len);
int migrate_read_all(int fd, void *p, size_t len);
int migrate_send_frame(int fd, uint32_t type, const void *p1, size_t l1, const void *p2, size_t l2);
/* A token ("OKAY", ...) or a FAIL with its message. */
int migrate_send_token(int fd, const char *token);
int migrate_send_fail(int fd, const char *msg);
/* Reads a token: 0 when it is `want`, else -1 with an error (the peer's FAIL message, or
 * that it went away). */
int migrate_expect_token(int fd, const char *want, const char *what);

/* ---- the source (migrate_send.c) ---- */

enum migrate_status {
	MIGRATE_NONE,
	MIGRATE_SETUP,
	MIGRATE_ACTIVE,
	MIGRATE_COMPLETED,
	MIGRATE_FAILED,
	MIGRATE_CANCELLED,
};

const char *migrate_status_name(enum migrate_status s);

/* What the engine needs of the machine it migrates (the VMM's vm, or kite _fake-run's). */
struct migrate_source {
	const struct machine_config *def;
	const struct guest_mem *mem;
	void *opaque;
	/* Dirty page logging on/off; sync ORs the pages dirtied since the last sync (or since
	 * start) into `bitmap` (one bit per page of mem) and clears the log. */
	int (*log_start)(void *opaque);
	int (*log_sync)(void *opaque, uint64_t *bitmap);
	void (*log_stop)(void *opaque);
	/* Stops the guest (vCPUs parked, devices quiesced) / lets it run again. */
	int (*stop)(void *opaque);
	void (*resume)(void *opaque);
	int (*save_state)(void *opaque, struct state_buf *out);
	/* Drops the disks' image locks (caches flushed) / takes them again. */
	int (*release_disks)(void *opaque);
	int (*take_disks)(void *opaque);
};

struct migrate_params {
	char dest[PATH_MAX];
	bool live;
	bool offline; /* the definition only (the machine is not running) */
	uint32_t max_downtime_ms;
};

/* One migration's progress (query-migrate, `kite domjobinfo`); under `lock`. */
struct migrate_job {
	pthread_mutex_t lock;
	enum migrate_status status;
	uint64_t ram_total, transferred, remaining; /* bytes */
	uint64_t zero_pages, pages_sent;
	uint64_t dirty_rate;	     /* pages per second, last round */
	uint64_t bandwidth;	     /* bytes per second measured */
	uint64_t expected_downtime;  /* ms */
	uint64_t downtime, total_ms; /* ms, once completed */
	uint32_t iteration;
	uint64_t start_ms;
	char error[512];
	atomic_bool cancel;
	int fd; /* the stream, shut down by a cancel */
};

void migrate_job_init(struct migrate_job *j);
/* Asks a running migration to stop: the source keeps running. */
void migrate_job_cancel(struct migrate_job *j);
/* The job as query-migrate returns it. */
json_t *migrate_job_json(struct migrate_job *j);

/* Migrates: returns 0 once the destination runs the machine (the caller ends this run), or
 * -1 with the guest running here as before (job->error says why; also printed). */
int migrate_send(struct migrate_job *job, const struct migrate_source *src,
		 const struct migrate_params *p);

/* ---- the destination (migrate_recv.c) ---- */

struct migrate_incoming {
	struct machine_config def; /* owned once received */
	bool have_def;
	bool offline;
	char path[PATH_MAX]; /* the save file written (empty for offline) */
	int fd;
};

/* Reads the stream from `fd` (answers go to `wfd`, the same socket or ssh's stdout) up to 'E': the
 * header (checked by `accept_def`, which returns 0 or -1 with an error to send back), pages into a
 * save file in `dir`, the state. Answers "OKAY" and "RCVD". Returns 0, or -1 with the error
 * printed, sent to the peer, and nothing left in `dir`. */
int migrate_receive(int fd, int wfd, const char *dir, struct migrate_incoming *in,
		    int (*accept_def)(void *opaque, const struct machine_config *def),
		    void *opaque);
void migrate_incoming_free(struct migrate_incoming *in);
/* After migrate_receive: waits for the source's 'G' (it let go of the disks). 0 or -1. */
int migrate_wait_go(int fd);

#endif

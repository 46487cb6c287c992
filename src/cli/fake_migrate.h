/* kite _fake-run's migration: the real engine (machine/migrate.h) over the fake guest's RAM, a
 * buffer with a pattern that the "guest" keeps changing (KITE_FAKE_DIRTY_PAGES pages every
 * round, a round lasting at least 100 ms then: a migration that does not converge, for tests
 * that break or cancel one in flight). */
#ifndef KITE_CLI_FAKE_MIGRATE_H
#define KITE_CLI_FAKE_MIGRATE_H

#include "machine/migrate.h"

struct blk;
struct savefile;

struct fake_migrate_guest {
	const struct machine_config *machine;
	struct guest_mem *mem;
	struct blk **blks; /* MACHINE_MAX_DISKS */
	void (*print)(void *opaque, const char *text);
	void (*set_paused)(void *opaque, bool paused);
	/* The end: 0 when the destination runs the machine. */
	void (*done)(void *opaque, int result, enum migrate_status st);
	void *opaque;
};

/* The fake guest's RAM: the restored file's (its CRC-32 printed), or a pattern (at the
 * first migration: a fake that never migrates has none). */
int fake_migrate_ram(struct fake_migrate_guest *g, struct savefile *restore);
int fake_migrate_start(struct fake_migrate_guest *g, json_t *args);
json_t *fake_migrate_query(void);
void fake_migrate_cancel(void);
void fake_migrate_end(void);

#endif

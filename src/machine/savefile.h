/* A save file: a machine's definition, its state records and its RAM, as `kite save` writes
 * it and `kite restore` (`kite run --restore`) reads it.
 *
 * Layout, integers little-endian:
 *   0        "KITESAVE"
 *   8        u32 H, the header record's length
 *   12       the header, a state record (util/state.h) "savefile" version 1: "definition"
 *            (the machine's JSON, as `kite dumpjson` prints it), "state_length",
 *            "state_crc32", "ram_offset", "ram_size", "page_size", "created" (Unix time)
 *   12 + H   u32 CRC-32 of the header record
 *   16 + H   the state records (vm_save_state), state_length bytes
 *   ram_offset, a multiple of 4 KiB: the guest's RAM, ram_size bytes. Pages that were all
 *            zeros are not written: they are holes in the file, which read as zeros and
 *            take no disk space.
 *
 * Opening checks everything but the RAM's contents before any guest runs: the magic, the
 * header's CRC and version, the state's CRC and framing, that the file is long enough for
 * the RAM it claims, and that the definition parses and has that much memory. A restore
 * maps the RAM with MAP_PRIVATE (as Firecracker does): pages are read from the file as the
 * guest touches them, and what it writes stays in the process. A save replaces its file
 * with rename(), so a VM mapping the old file keeps the contents it restored from. */
#ifndef KITE_MACHINE_SAVEFILE_H
#define KITE_MACHINE_SAVEFILE_H

#include "config/machine_config.h"
#include "util/state.h"
#include "kvm/memory.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#define SAVEFILE_VERSION 1
#define SAVEFILE_PAGE	 4096

struct savefile {
	int fd;
	char path[PATH_MAX];
	struct machine_config def;
	bool def_owned; /* savefile_close frees def (a caller that takes it clears this) */
	uint8_t *state;
	size_t state_len;
	uint64_t ram_offset, ram_size;
	int64_t created;
};

/* Opens and checks `path`. Returns 0, or -1 with an error that says what is wrong (not a save
 * file, another version, corrupt, cut short) and nothing left open. */
int savefile_open(struct savefile *f, const char *path);
void savefile_close(struct savefile *f);
/* Maps the saved RAM over `mem` (same size), copy-on-write. Returns 0 or -1 (printed). */
int savefile_map_ram(const struct savefile *f, struct guest_mem *mem);
/* Writes a save file: the definition, the state records, every non-zero page of `mem`.
 * Goes to a temporary file beside `path`, renamed over it once complete and synced.
 * Returns 0 or -1 (printed; nothing left behind). */
int savefile_write(const char *path, const struct machine_config *def,
		   const struct state_buf *state, const struct guest_mem *mem);

#endif

/* On-disk cache of decompressed bzImage payloads, so a kernel is decompressed once, not at every
 * start. Files live in $XDG_CACHE_HOME/kite (or ~/.cache/kite) and are named after the bzImage's
 * size, mtime, device and inode. Writes are atomic (temporary file, then rename). The cache is an
 * optimisation: its failures are warnings, never errors. */
#ifndef KITE_MACHINE_BZIMAGE_CACHE_H
#define KITE_MACHINE_BZIMAGE_CACHE_H

#include "machine/boot_file.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Maps the cached payload for the bzImage `st` describes into `out` (release it with
 * boot_file_unmap). Returns 0 on a hit, -1 on a miss. Only a file of exactly `expect_len` bytes
 * counts as a hit. */
int bzcache_lookup(const struct stat *st, size_t expect_len, struct boot_file *out);

#define BZCACHE_KEEP 4 /* cached kernels kept; older ones are removed when a new one is stored */

/* Stores the decompressed payload; warns and carries on when it cannot. Then removes all but
 * the BZCACHE_KEEP most recently used cached kernels, and temporary files left by a kite that
 * was killed while writing. */
void bzcache_store(const struct stat *st, const uint8_t *data, size_t len);

/* The cache file name for `st` (exported for tests); returns 0, or -1 when no cache directory
 * is known (neither XDG_CACHE_HOME nor HOME set). */
int bzcache_path(const struct stat *st, char *buf, size_t size);

#endif

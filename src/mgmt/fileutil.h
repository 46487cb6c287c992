/* Crash-safe file writes and advisory locks for machine state. */
#ifndef KITE_MGMT_FILEUTIL_H
#define KITE_MGMT_FILEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Replaces `path` with `len` bytes atomically: writes PATH.tmp.PID, fsyncs it, renames it
 * over `path` and fsyncs the directory, so a reader sees the old or the new file, never a
 * mix, even after a power cut. Returns 0 or -1 (reported; the temp file is removed). */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* Reads a whole file (at most `max` bytes) into a NUL-terminated buffer the caller frees.
 * Returns 0, or -1 with errno set and nothing printed (callers word the message; ENOENT is
 * often not an error). EFBIG when the file is larger than `max`. */
int read_file_all(const char *path, size_t max, char **data, size_t *len);

/* Opens (creating) `path` and takes an exclusive flock on it, waiting for other holders.
 * Returns the descriptor (close it to release) or -1 (reported). */
int lock_file(const char *path);

/* fsyncs the directory that holds `path`. Returns 0 or -1 (reported). */
int fsync_parent_dir(const char *path);

/* Writes all `len` bytes (retrying short writes and EINTR). 0, or -1 with errno set. */
int write_all(int fd, const void *data, size_t len);

/* Milliseconds of CLOCK_MONOTONIC, for deadlines. */
int64_t mono_ms(void);

/* Sleeps `ms` milliseconds (resuming after signals). */
void sleep_ms(int ms);

#endif

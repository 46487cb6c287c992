#ifndef KITE_UTIL_FULLIO_H
#define KITE_UTIL_FULLIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* pread/pwrite of a whole range: they retry on EINTR and continue after short transfers.
 * full_pread returns the bytes read (less than len only at end of file) or -errno;
 * full_pwrite returns 0, -errno, or -EIO when the kernel wrote nothing. Callers decide what
 * a short read means (zeros for an image past its end, an error for a truncated save file) and
 * how to word the error. */
ssize_t full_pread(int fd, void *buf, size_t len, uint64_t off);
int full_pwrite(int fd, const void *buf, size_t len, uint64_t off);

#endif

/* Image locking compatible with QEMU's: open file description (OFD) locks on single bytes of
 * the image file, byte 100+n meaning "I use permission n" and byte 200+n "I do not let
 * others have permission n" (n: 0 consistent read, 1 write, 3 resize). So `kite guest` cannot
 * write an image that a running QEMU (or kite) VM has open, and a VM cannot start on an image
 * that `kite guest` is writing. */
#ifndef KITE_GUESTFS_IMGLOCK_H
#define KITE_GUESTFS_IMGLOCK_H

#include <stdbool.h>

/* Takes the locks for reading (`write` false) or writing `path`. Returns a descriptor to pass
 * to imglock_release, or -1 with an error naming the conflict. */
int imglock_acquire(const char *path, bool write);
void imglock_release(int fd);

#endif

/* Image locking compatible with QEMU's: open file description (OFD) locks on single bytes of
 * the image file, byte 100+n meaning "I use permission n" and byte 200+n "I do not let others
 * have permission n" (n: 0 consistent read, 1 write, 3 resize). A running QEMU or kite VM,
 * qemu-img, `kite img` and `kite guest` thereby see each other's use of an image.
 *
 * Within one process the holders of a file share one lock description: the process is one
 * user of the file (as QEMU's permission graph is), so `kite img commit` may read a chain and
 * write its base at once. Only other processes can conflict, and two writers. A child forked
 * without an exec shares the parent's locks (the descriptions are close-on-exec). */
#ifndef KITE_BLOCK_IMGLOCK_H
#define KITE_BLOCK_IMGLOCK_H

#include <stdbool.h>

#define IMGLOCK_READ   (1u << 0) /* BLK_PERM_CONSISTENT_READ */
#define IMGLOCK_WRITE  (1u << 1) /* BLK_PERM_WRITE */
#define IMGLOCK_RESIZE (1u << 3) /* BLK_PERM_RESIZE */

struct imglock;

/* Takes the permissions `use` and denies `unshare` to other processes on the file open as
 * `fd`, named `path`. When another process conflicts, returns NULL with QEMU's text:
 * "WHAT: Failed to get "write" lock" and "Is another process using the image [PATH]?",
 * where `what` says what failed ("Could not open 'top.qcow2'" for a backing file's).
 * `sole_writer`: this holder writes through its own caches, so no other holder in this
 * process may do the same (one image opened writable twice, as two disks of one VM). */
struct imglock *imglock_take(int fd, const char *path, unsigned use, unsigned unshare,
			     const char *what, bool sole_writer);
void imglock_drop(struct imglock *l); /* NULL is fine */

#endif

/* Handing a running VM's images to another process (a migration's destination): the source
 * drops its image locks once the destination has everything, and takes them back when the
 * migration fails after that. */
#ifndef KITE_BLOCK_BLK_HANDOVER_H
#define KITE_BLOCK_BLK_HANDOVER_H

struct blk;

/* Flushes `b` (its caches to the file) and drops the locks of it and its backing chain and
 * data file. Returns 0 or -1 (printed; the locks stay). */
int blk_release_locks(struct blk *b);
/* Takes them again, as blk_open took them. Returns 0 or -1 (printed: another process has
 * the image now). */
int blk_take_locks(struct blk *b);

#endif

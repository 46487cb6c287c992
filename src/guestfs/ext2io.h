/* A libext2fs io_manager over a struct gdev, so that e2fsprogs' library reads and writes a
 * filesystem inside any image the block layer opens (raw, qcow2 with backing files, vmdk), at
 * the partition's offset. */
#ifndef KITE_GUESTFS_EXT2IO_H
#define KITE_GUESTFS_EXT2IO_H

#include "guestfs/dev.h"

#include <ext2fs/ext2fs.h>

extern io_manager kite_io_manager;

/* Registers `dev` and writes into `name` (at least 32 bytes) the name to pass to
 * ext2fs_open2() with kite_io_manager. Returns -1 if every slot is taken. The device must stay
 * valid until ext2io_unregister(name) after the filesystem is closed. */
int ext2io_register(const struct gdev *dev, char *name, size_t namesz);
void ext2io_unregister(const char *name);

#endif

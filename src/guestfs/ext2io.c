#include "guestfs/ext2io.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libext2fs opens a channel by name; the name "kite:N" selects slot N of this table. */
#define SLOTS 16
static const struct gdev *slots[SLOTS];

struct chan {
	const struct gdev *dev;
	struct struct_io_stats stats;
};

int ext2io_register(const struct gdev *dev, char *name, size_t namesz)
{
	for (int i = 0; i < SLOTS; i++) {
		if (!slots[i]) {
			slots[i] = dev;
			snprintf(name, namesz, "kite:%d", i);
			return 0;
		}
	}
	return kite_error("too many filesystems open at once");
}

static int slot_of(const char *name)
{
	char *end;
	if (strncmp(name, "kite:", 5))
		return -1;
	long i = strtol(name + 5, &end, 10);
	if (*end || end == name + 5 || i < 0 || i >= SLOTS)
		return -1;
	return (int)i;
}

void ext2io_unregister(const char *name)
{
	int i = slot_of(name);
	if (i >= 0)
		slots[i] = NULL;
}

static errcode_t k_open(const char *name, int flags, io_channel *out)
{
	int i = slot_of(name);
	if (i < 0 || !slots[i])
		return EXT2_ET_BAD_DEVICE_NAME;
	if ((flags & IO_FLAG_RW) && !slots[i]->pwrite)
		return EROFS;
	io_channel io = calloc(1, sizeof(*io));
	struct chan *c = calloc(1, sizeof(*c));
	char *nm = strdup(name);
	if (!io || !c || !nm) {
		free(io);
		free(c);
		free(nm);
		return EXT2_ET_NO_MEMORY;
	}
	c->dev = slots[i];
	c->stats.num_fields = 2;
	io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	io->manager = kite_io_manager;
	io->name = nm;
	io->block_size = 1024;
	io->refcount = 1;
	io->private_data = c;
	*out = io;
	return 0;
}

static errcode_t k_close(io_channel io)
{
	if (--io->refcount > 0)
		return 0;
	free(io->private_data);
	free(io->name);
	free(io);
	return 0;
}

static errcode_t k_set_blksize(io_channel io, int blksize)
{
	if (blksize <= 0)
		return EXT2_ET_INVALID_ARGUMENT;
	io->block_size = blksize;
	return 0;
}

/* count > 0 is a number of blocks, count < 0 a number of bytes (libext2fs convention). */
static errcode_t span(io_channel io, unsigned long long block, int count, size_t *len,
		      uint64_t *off)
{
	uint64_t bs = (uint64_t)io->block_size;
	*len = count < 0 ? (size_t)(-(long long)count) : (size_t)count * bs;
	if (block > UINT64_MAX / bs)
		return EXT2_ET_LLSEEK_FAILED;
	*off = block * bs;
	return 0;
}

static errcode_t k_read64(io_channel io, unsigned long long block, int count, void *data)
{
	struct chan *c = io->private_data;
	size_t len;
	uint64_t off;
	errcode_t e = span(io, block, count, &len, &off);
	if (e)
		return e;
	/* Blocks past the end of the partition are a corrupt filesystem, not a reason to read
	 * the next partition: fail them. */
	if (off > c->dev->size || len > c->dev->size - off)
		e = EXT2_ET_SHORT_READ;
	else if (c->dev->pread(c->dev->opaque, data, len, off) < 0)
		e = EIO;
	if (e) {
		memset(data, 0, len);
		if (io->read_error)
			return io->read_error(io, (unsigned long)block, count, data, len, 0, e);
		return e;
	}
	c->stats.bytes_read += len;
	return 0;
}

static errcode_t k_write64(io_channel io, unsigned long long block, int count, const void *data)
{
	struct chan *c = io->private_data;
	size_t len;
	uint64_t off;
	errcode_t e = span(io, block, count, &len, &off);
	if (e)
		return e;
	if (!c->dev->pwrite)
		e = EROFS;
	else if (off > c->dev->size || len > c->dev->size - off)
		e = EXT2_ET_SHORT_WRITE;
	else if (c->dev->pwrite(c->dev->opaque, data, len, off) < 0)
		e = EIO;
	if (e) {
		if (io->write_error)
			return io->write_error(io, (unsigned long)block, count, data, len, 0, e);
		return e;
	}
	c->stats.bytes_written += len;
	return 0;
}

static errcode_t k_read(io_channel io, unsigned long block, int count, void *data)
{
	return k_read64(io, block, count, data);
}

static errcode_t k_write(io_channel io, unsigned long block, int count, const void *data)
{
	return k_write64(io, block, count, data);
}

static errcode_t k_flush(io_channel io)
{
	struct chan *c = io->private_data;
	if (c->dev->flush && c->dev->flush(c->dev->opaque) < 0)
		return EIO;
	return 0;
}

static errcode_t k_set_option(io_channel io, const char *option, const char *arg)
{
	return EXT2_ET_INVALID_ARGUMENT;
}

static errcode_t k_get_stats(io_channel io, io_stats *stats)
{
	struct chan *c = io->private_data;
	if (stats)
		*stats = &c->stats;
	return 0;
}

static errcode_t k_discard(io_channel io, unsigned long long block, unsigned long long count)
{
	return EXT2_ET_UNIMPLEMENTED;
}

static errcode_t k_readahead(io_channel io, unsigned long long block, unsigned long long count)
{
	return 0;
}

static struct struct_io_manager manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "kite block layer I/O manager",
    .open = k_open,
    .close = k_close,
    .set_blksize = k_set_blksize,
    .read_blk = k_read,
    .write_blk = k_write,
    .flush = k_flush,
    /* no write_byte: libext2fs then writes the primary superblock whole, in one write, not
     * as the 16-bit pieces that changed, which a failure part way would leave torn (its
     * checksum not matching) */
    .set_option = k_set_option,
    .get_stats = k_get_stats,
    .read_blk64 = k_read64,
    .write_blk64 = k_write64,
    .discard = k_discard,
    .cache_readahead = k_readahead,
};

io_manager kite_io_manager = &manager;

/* libFuzzer target for the whole open and read path of the block layer: the format is
 * probed (qcow2, vmdk, raw), backing files are not followed, and every byte and block
 * status of the first MiBs is read. Any input must give data or a clean error.
 * Build and run: see tests/fuzz/README.md. */
#include "block/block.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_READ (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz.img", 0);
	if (fd < 0)
		abort();
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct blk *b = blk_open(path, NULL, BLK_O_RDONLY | BLK_O_NO_BACKING | BLK_O_NO_PROBE_WARN);
	if (b) {
		static uint8_t buf[1 << 16];
		uint64_t end = blk_size(b) < MAX_READ ? blk_size(b) : MAX_READ;
		for (uint64_t off = 0; off < end; off += sizeof(buf)) {
			uint64_t n = end - off < sizeof(buf) ? end - off : sizeof(buf);
			blk_pread(b, buf, (size_t)n, off);
		}
		for (uint64_t off = 0, pnum; off < end; off += pnum) {
			unsigned flags;
			if (blk_block_status(b, off, end - off, &pnum, &flags, NULL) < 0 ||
			    pnum == 0)
				break;
		}
		struct blk_info info;
		blk_get_info(b, &info);
		blk_close(b);
	}
	close(fd);
	return 0;
}

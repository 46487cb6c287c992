/* libFuzzer target for the block layer's open+read path (qcow2, vmdk, raw by probing).
 *
 * Build and run (not part of `make`; needs clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE \
 *     -D_FILE_OFFSET_BITS=64 -Isrc tests/fuzz/fuzz_block_open.c src/block/\*.c src/util/\*.c \
 *     $(pkg-config --cflags --libs zlib libzstd) -lpthread -o build/fuzz_block_open
 *   build/fuzz_block_open -max_len=262144 -max_total_time=600 corpus/ 2>/dev/null
 * Seed the corpus with small images from qemu-img (see tests/fuzz/README). */
#include "block/block.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(struct blk *b)
{
	static uint8_t buf[1 << 16];
	uint64_t sz = blk_size(b);
	/* the first 256 KiB, then a few far offsets */
	for (uint64_t o = 0; o < sz && o < (1 << 18); o += sizeof(buf)) {
		size_t n = sz - o < sizeof(buf) ? (size_t)(sz - o) : sizeof(buf);
		if (blk_pread(b, buf, n, o) < 0)
			break;
	}
	uint64_t far[] = {sz / 2, sz - (sz > 4096 ? 4096 : sz), sz / 3 + 12345};
	for (int i = 0; i < 3; i++)
		if (far[i] < sz)
			blk_pread(b, buf, sz - far[i] < 4096 ? (size_t)(sz - far[i]) : 4096,
				  far[i]);
	uint64_t off = 0;
	for (int i = 0; i < 256 && off < sz; i++) {
		struct blk_map m;
		if (blk_map_status(b, off, sz - off, &m) < 0)
			break;
		off += m.pnum;
	}
	struct blk_info info;
	blk_get_info(b, &info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-image", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct blk *b = blk_open(path, NULL, BLK_O_NO_BACKING | BLK_O_NO_PROBE_WARN);
	if (b) {
		walk(b);
		blk_close(b);
	}
	close(fd);
	return 0;
}

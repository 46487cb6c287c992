/* libFuzzer target for qcow2's write paths on hostile images: open read-write (a dirty
 * image is rebuilt on open), write, zero, discard, write compressed, resize, snapshot,
 * check with repair. Looks for crashes and sanitizer reports; refusals are fine.
 * Build as fuzz_block_open.c (see README), with this file instead. */
#include "block/block.h"
#include "block/qcow2.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-qcow2", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct blk *b = blk_open(path, "qcow2", BLK_O_RDWR | BLK_O_NO_BACKING | BLK_O_UNSAFE);
	if (b) {
		static uint8_t buf[200000];
		memset(buf, 0x5a, sizeof(buf));
		uint64_t sz = blk_size(b);
		uint32_t cs = blk_cluster_size(b);
		/* offsets derived from the input's tail so the fuzzer can steer them */
		uint64_t pick = 0;
		if (size >= 8)
			memcpy(&pick, data + size - 8, 8);
		uint64_t offs[] = {0, sz / 2, pick % (sz ? sz : 1), sz > 4096 ? sz - 4096 : 0};
		for (int i = 0; i < 4; i++) {
			uint64_t off = offs[i], len = 70000;
			if (off >= sz)
				continue;
			if (len > sz - off)
				len = sz - off;
			blk_pwrite(b, buf, (size_t)len, off);
			blk_write_zeroes(b, off, len / 2, BLK_ZERO_MAY_UNMAP);
			blk_discard(b, off, len);
			if (cs && cs <= sizeof(buf) && off / cs * cs + cs <= sz)
				blk_pwrite_compressed(b, buf, cs, off / cs * cs);
			blk_pread(b, buf, (size_t)len, off);
		}
		if (pick & 1)
			qcow2_snapshot_create(b, "fuzz");
		if (pick & 2)
			blk_resize(b, sz + (1 << 20), false);
		struct blk_check_result res;
		qcow2_check(b, (pick & 4) ? BLK_CHECK_FIX_LEAKS | BLK_CHECK_FIX_ERRORS : 0, &res);
		blk_flush(b);
		blk_close(b);
	}
	close(fd);
	return 0;
}

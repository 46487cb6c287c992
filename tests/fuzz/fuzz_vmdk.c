/* libFuzzer target for the vmdk open and read path (src/block/vmdk.c): any input must give
 * either an image whose every byte and block status can be read, or a clean error.
 * Build and run (seeds: qemu-img convert -O vmdk [-o subformat=streamOptimized] of a small
 * raw image):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *     tests/fuzz/fuzz_vmdk.c src/block/vmdk.c src/util/err.c -lz -o build/fuzz_vmdk
 *   build/fuzz_vmdk -close_fd_mask=2 -max_total_time=600 corpus/ */
#include "block/vmdk.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_READ (8u << 20) /* bytes of the virtual disk read per input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz.vmdk", 0);
	if (fd < 0)
		abort();
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	struct vmdk *v = vmdk_open_fd(fd, "fuzz.vmdk");
	if (v) {
		static uint8_t buf[1 << 16];
		uint64_t end = vmdk_size(v) < MAX_READ ? vmdk_size(v) : MAX_READ;
		for (uint64_t off = 0; off < end; off += sizeof(buf)) {
			uint64_t n = end - off < sizeof(buf) ? end - off : sizeof(buf);
			vmdk_pread(v, buf, n, off);
		}
		/* an unaligned read at the very end */
		if (vmdk_size(v) > 3)
			vmdk_pread(v, buf, 3, vmdk_size(v) - 3);
		for (uint64_t off = 0, pnum, host; off < end; off += pnum)
			if (vmdk_block_status(v, off, end - off, &pnum, &host) < 0 || pnum == 0)
				break;
		uint64_t corrupt;
		if (vmdk_size(v) <= (64u << 20)) /* check walks every grain */
			vmdk_check(v, &corrupt);
		vmdk_close(v);
	}
	close(fd);
	return 0;
}

/* libFuzzer target for kernel_load(): kind detection, ELF headers, notes and segments, bzImage
 * setup headers, payload decompression (gzip, xz, zstd, lz4) and the boot structures written
 * after them. Any input must load or give a clean error; nothing may be written outside guest
 * RAM. The kernel cache is disabled (no XDG_CACHE_HOME, no HOME).
 *
 * Build and run (from the repository root; not part of `make`, needs clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE \
 *     -D_FILE_OFFSET_BITS=64 -Isrc tests/fuzz/fuzz_kernel_load.c src/machine/boot*.c
 * src/machine/elf.c \
 *     src/machine/bzimage*.c src/machine/decompress*.c src/machine/e820.c src/machine/pagetable.c \
 *     src/kvm/memory.c src/util/err.c $(pkg-config --cflags --libs zlib libzstd liblzma liblz4) \
 *     -o build/fuzz_kernel_load
 *   build/fuzz_kernel_load -close_fd_mask=2 -max_len=65536 -max_total_time=600 corpus/
 * Seeds: the test guests (build/guests) and bzImages made around them. */
#include "machine/boot.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_RAM (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	if (!mem.base) {
		unsetenv("XDG_CACHE_HOME");
		unsetenv("HOME");
		if (gmem_init(&mem, FUZZ_RAM) < 0)
			abort();
	}
	int fd = memfd_create("fuzz-kernel", 0);
	if (fd < 0)
		abort();
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct boot_info bi;
	(void)kernel_load(&mem, path, NULL, "console=ttyS0", &bi);
	close(fd);
	return 0;
}

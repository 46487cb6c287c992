#include "test_boot_fixture.h"
#include "machine/boot.h"
#include "machine/bzimage.h"
#include "machine/bzimage_cache.h"
#include "machine/decompress.h"

#include <fcntl.h>
#include <lz4.h>
#include <lzma.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#define MIB	       (1ULL << 20)
#define PAYLOAD_GAP    0x100 /* payload_offset: bytes between setup code and payload */
#define INIT_SIZE_MARK 0x1234000

static char cache_dir[64];

static int setup_cache(void **state)
{
	strcpy(cache_dir, "/tmp/kite-bz-cache-XXXXXX");
	assert_non_null(mkdtemp(cache_dir));
	setenv("XDG_CACHE_HOME", cache_dir, 1);
	return 0;
}

static int teardown_cache(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cache_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static size_t append_size(uint8_t *out, size_t n, size_t size)
{
	tput(out + n, size, 4);
	return n + 4;
}

/* Compresses like the kernel's build does; returns a malloc'd payload (size trailer appended). */
static uint8_t *kcompress_level(enum compression c, const uint8_t *in, size_t len, size_t *outlen,
				int fast)
{
	size_t cap = len * 2 + 1024;
	uint8_t *out = malloc(cap);
	assert_non_null(out);
	size_t n = 0;
	if (c == COMP_GZIP) {
		z_stream s;
		memset(&s, 0, sizeof(s));
		assert_int_equal(deflateInit2(&s, fast ? 1 : 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
					      Z_DEFAULT_STRATEGY),
				 Z_OK);
		s.next_in = (Bytef *)in;
		s.avail_in = (uInt)len;
		s.next_out = out;
		s.avail_out = (uInt)cap;
		assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
		n = s.total_out;
		deflateEnd(&s);
	} else if (c == COMP_XZ) {
		assert_int_equal(lzma_easy_buffer_encode(fast ? 0 : 6, LZMA_CHECK_CRC32, NULL, in,
							 len, out, &n, cap),
				 LZMA_OK);
		n = append_size(out, n, len);
	} else if (c == COMP_ZSTD) {
		/* With a content checksum, as the zstd tool writes by default. */
		ZSTD_CCtx *z = ZSTD_createCCtx();
		assert_non_null(z);
		ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, fast ? 1 : 19);
		ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1);
		n = ZSTD_compress2(z, out, cap, in, len);
		ZSTD_freeCCtx(z);
		assert_false(ZSTD_isError(n));
		n = append_size(out, n, len);
	} else if (c == COMP_LZ4) {
		tput(out, 0x184C2102, 4);
		n = 4;
		for (size_t off = 0; off < len; off += 8 * MIB) {
			size_t chunk = len - off < 8 * MIB ? len - off : 8 * MIB;
			int r = LZ4_compress_default((const char *)in + off, (char *)out + n + 4,
						     (int)chunk, (int)(cap - n - 4));
			assert_true(r > 0);
			tput(out + n, (uint64_t)r, 4);
			n += 4 + (size_t)r;
		}
		n = append_size(out, n, len);
	}
	*outlen = n;
	return out;
}

static uint8_t *kcompress(enum compression c, const uint8_t *in, size_t len, size_t *outlen)
{
	return kcompress_level(c, in, len, outlen, 0);
}

/* A bzImage: one setup sector after the boot sector, header 2.15, then the payload. */
static uint8_t *tbzimage(const uint8_t *payload, size_t plen, uint16_t version, size_t *len)
{
	size_t setup = 2 * 512;
	*len = setup + PAYLOAD_GAP + plen;
	uint8_t *b = calloc(1, *len);
	assert_non_null(b);
	b[0x1f1] = 1;
	tput(b + 0x1fe, 0xAA55, 2);
	b[0x200] = 0xEB;
	b[0x201] = 0x6A; /* header ends at 0x26c */
	memcpy(b + 0x202, "HdrS", 4);
	tput(b + 0x206, version, 2);
	b[0x211] = 0x01;
	tput(b + 0x22c, 0x7fffffff, 4);
	tput(b + 0x230, 0x200000, 4);
	tput(b + 0x236, 0x3, 2);
	tput(b + 0x238, 2047, 4);
	tput(b + 0x248, PAYLOAD_GAP, 4);
	tput(b + 0x24c, plen, 4);
	tput(b + 0x260, INIT_SIZE_MARK, 4);
	memcpy(b + setup + PAYLOAD_GAP, payload, plen);
	return b;
}

static const enum compression formats[] = {COMP_GZIP, COMP_XZ, COMP_ZSTD, COMP_LZ4};

static void payload_round_trip_each_format(void **state)
{
	size_t elen;
	uint8_t *elf = tvmlinux(0, &elen);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		size_t plen, blen;
		uint8_t *p = kcompress(formats[i], elf, elen, &plen);
		assert_int_equal(compression_detect(p, plen), formats[i]);
		uint8_t *bz = tbzimage(p, plen, 0x20f, &blen);
		struct bzimage h;
		assert_int_equal(bzimage_parse(bz, blen, "bz", &h), 0);
		assert_int_equal(h.payload_len, plen);
		assert_int_equal(h.version, 0x20f);
		assert_int_equal(h.xloadflags, 3);
		uint8_t *out;
		size_t olen;
		assert_int_equal(decompress_payload(h.payload, h.payload_len, "bz", &out, &olen),
				 0);
		assert_int_equal(olen, elen);
		assert_memory_equal(out, elf, elen);
		free(out);
		free(bz);
		free(p);
	}
	free(elf);
}

/* Payloads over 8 MiB: lz4 in two blocks, the others through several decoder rounds. */
static void large_payloads(void **state)
{
	size_t len = 9 * MIB + 123;
	uint8_t *in = malloc(len);
	for (size_t i = 0; i < len; i++)
		in[i] = (uint8_t)((i * 2654435761u) >> 13 & (i % 3 ? 0xff : 0x0f));
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		size_t plen;
		uint8_t *p = kcompress_level(formats[i], in, len, &plen, 1), *out;
		size_t olen;
		assert_int_equal(decompress_payload(p, plen, "big", &out, &olen), 0);
		assert_int_equal(olen, len);
		assert_memory_equal(out, in, len);
		free(out);
		free(p);
	}
	free(in);
}

static void corrupt_payloads_are_errors(void **state)
{
	size_t elen;
	uint8_t *elf = tvmlinux(0, &elen);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		size_t plen;
		uint8_t *p = kcompress(formats[i], elf, elen, &plen), *out;
		size_t olen;
		uint8_t *bad = malloc(plen);
		/* Bytes flipped in the middle of the stream. lz4's legacy frame has no checksum:
		 * there, corrupt the block size instead. */
		memcpy(bad, p, plen);
		if (formats[i] == COMP_LZ4)
			tput(bad + 4, plen, 4);
		else
			for (size_t j = plen / 3; j < plen / 3 + 16; j++)
				bad[j] ^= 0x5a;
		assert_int_equal(decompress_payload(bad, plen, "bad", &out, &olen), -1);
		/* Recorded size one byte short or one byte long (gzip's trailer is also its
		 * ISIZE, checked by zlib itself) */
		memcpy(bad, p, plen);
		tput(bad + plen - 4, elen - 1, 4);
		assert_int_equal(decompress_payload(bad, plen, "bad", &out, &olen), -1);
		tput(bad + plen - 4, elen + 1, 4);
		assert_int_equal(decompress_payload(bad, plen, "bad", &out, &olen), -1);
		/* Stream cut in half, trailer kept */
		size_t half = plen / 2;
		memcpy(bad, p, half);
		tput(bad + half, elen, 4);
		assert_int_equal(decompress_payload(bad, half + 4, "bad", &out, &olen), -1);
		/* Absurd recorded size */
		memcpy(bad, p, plen);
		tput(bad + plen - 4, 0xffffffff, 4);
		assert_int_equal(decompress_payload(bad, plen, "bad", &out, &olen), -1);
		free(bad);
		free(p);
	}
	free(elf);
}

static void fuzzed_payloads_never_crash(void **state)
{
	size_t elen;
	uint8_t *elf = tvmlinux(0, &elen);
	fflush(stderr);
	int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
	assert_true(saved >= 0 && devnull >= 0 && dup2(devnull, 2) == 2);
	srand(777);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		size_t plen;
		uint8_t *p = kcompress(formats[i], elf, elen, &plen), *out;
		uint8_t *bad = malloc(plen);
		for (int round = 0; round < 300; round++) {
			memcpy(bad, p, plen);
			for (int k = 0; k < 1 + rand() % 4; k++)
				bad[(size_t)rand() % plen] = (uint8_t)rand();
			/* A cut stream keeps its size trailer: random sizes up to 1 GiB would only
			 * test the allocator (and take minutes under ASan). */
			size_t olen, cut = plen;
			if (rand() % 4 == 0) {
				cut = 4 + (size_t)rand() % (plen - 4);
				memcpy(bad + cut - 4, p + plen - 4, 4);
			}
			if (decompress_payload(bad, cut, "fuzz", &out, &olen) == 0)
				free(out);
		}
		free(bad);
		free(p);
	}
	fflush(stderr);
	assert_true(dup2(saved, 2) == 2);
	close(saved);
	close(devnull);
	free(elf);
}

static void unsupported_and_unknown_formats(void **state)
{
	const char *magics[] = {"BZh91AY&SY", "\x5d\x00\x00\x80\x00", "\x89LZO\x00\r\n",
				"junkjunk"};
	for (size_t i = 0; i < 4; i++) {
		uint8_t p[64] = {0};
		memcpy(p, magics[i], strlen(magics[i]) ? strlen(magics[i]) : 3);
		tput(p + 60, 1000, 4);
		uint8_t *out;
		size_t olen;
		assert_int_equal(decompress_payload(p, sizeof(p), "x", &out, &olen), -1);
	}
}

static void bad_headers(void **state)
{
	uint8_t payload[64] = {0x1f, 0x8b};
	size_t blen;
	struct bzimage h;
	uint8_t *bz = tbzimage(payload, sizeof(payload), 0x207, &blen);
	assert_int_equal(bzimage_parse(bz, blen, "old", &h), -1);
	free(bz);
	bz = tbzimage(payload, sizeof(payload), 0x20f, &blen);
	assert_int_equal(bzimage_parse(bz, blen, "ok", &h), 0);
	assert_int_equal(bzimage_parse(bz, blen - 1, "cut", &h), -1);
	tput(bz + 0x248, 0xfffffff0, 4);
	assert_int_equal(bzimage_parse(bz, blen, "offset", &h), -1);
	tput(bz + 0x248, PAYLOAD_GAP, 4);
	bz[0x1f1] = 200; /* setup sectors beyond the file */
	assert_int_equal(bzimage_parse(bz, blen, "sects", &h), -1);
	assert_int_equal(bzimage_parse(bz, 0x200, "tiny", &h), -1);
	free(bz);
}

static char *write_bzimage(enum compression c, const uint8_t *elf, size_t elen)
{
	size_t plen, blen;
	uint8_t *p = kcompress(c, elf, elen, &plen);
	uint8_t *bz = tbzimage(p, plen, 0x20f, &blen);
	char *path = twrite_temp(bz, blen);
	free(bz);
	free(p);
	return path;
}

static uint64_t rd(const struct guest_mem *m, uint64_t gpa, int n)
{
	const uint8_t *p = gmem_ptr(m, gpa, (uint64_t)n);
	assert_non_null(p);
	return tget(p, n);
}

static void kernel_load_each_format(void **state)
{
	size_t elen;
	uint8_t *elf = tvmlinux(0, &elen);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		struct guest_mem m;
		tmem(&m, 64 * MIB);
		char *k = write_bzimage(formats[i], elf, elen);
		struct boot_info bi;
		assert_int_equal(kernel_load(&m, k, NULL, "root=/dev/vda", &bi), 0);
		assert_int_equal(bi.kind, KERNEL_BZIMAGE);
		assert_int_equal(bi.mode, BOOT_LONG64);
		assert_int_equal(bi.cpu.rip, 0x1000000);
		assert_int_equal(bi.cpu.rsi, BOOT_PARAMS_ADDR);
		assert_memory_equal(gmem_ptr(&m, 0x1000000, 8192), elf + 0x1000, 8192);
		/* The setup header is the bzImage's, with the loader's fields filled in. */
		uint64_t bp = BOOT_PARAMS_ADDR;
		assert_int_equal(rd(&m, bp + 0x260, 4), INIT_SIZE_MARK);
		assert_int_equal(rd(&m, bp + 0x206, 2), 0x20f);
		assert_int_equal(rd(&m, bp + 0x1f1, 1), 1);
		assert_int_equal(rd(&m, bp + 0x210, 1), 0xff);
		assert_int_equal(rd(&m, bp + 0x228, 4), BOOT_CMDLINE_ADDR);
		assert_int_equal(rd(&m, bp + 0x1e8, 1), 3);
		/* The decompressed ELF is in the cache. */
		struct stat st;
		assert_int_equal(stat(k, &st), 0);
		char cpath[4200];
		assert_int_equal(bzcache_path(&st, cpath, sizeof(cpath)), 0);
		assert_int_equal(strncmp(cpath, cache_dir, strlen(cache_dir)), 0);
		struct stat cst;
		assert_int_equal(stat(cpath, &cst), 0);
		assert_int_equal(cst.st_size, elen);
		tremove(k);
		tmem_free(&m);
	}
	free(elf);
}

/* A second start reads the cache instead of decompressing: prove it by planting a different
 * byte in the cached ELF and finding it in guest memory. */
static void second_load_uses_the_cache(void **state)
{
	size_t elen;
	uint8_t *elf = tvmlinux(0, &elen);
	char *k = write_bzimage(COMP_XZ, elf, elen);
	struct guest_mem m;
	struct boot_info bi;
	tmem(&m, 64 * MIB);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	assert_int_equal(rd(&m, 0x1000000, 1), elf[0x1000]);
	struct stat st;
	assert_int_equal(stat(k, &st), 0);
	char cpath[4200];
	assert_int_equal(bzcache_path(&st, cpath, sizeof(cpath)), 0);
	elf[0x1000] ^= 0xff;
	FILE *f = fopen(cpath, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(elf, 1, elen, f), elen);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	assert_int_equal(rd(&m, 0x1000000, 1), elf[0x1000]);
	/* A damaged cache file (not an ELF) is replaced, not trusted. */
	f = fopen(cpath, "r+b");
	assert_non_null(f);
	assert_int_equal(fwrite("JUNK", 1, 4, f), 4);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	assert_int_equal(rd(&m, 0x1000000, 1), elf[0x1000] ^ 0xff);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0); /* from the rewritten cache */
	assert_int_equal(rd(&m, 0x1000000, 1), elf[0x1000] ^ 0xff);
	/* A cache file of the wrong size is ignored. */
	assert_int_equal(truncate(cpath, 100), 0);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	assert_int_equal(rd(&m, 0x1000000, 1), elf[0x1000] ^ 0xff);
	tremove(k);
	tmem_free(&m);
	free(elf);
}

static void unwritable_cache_is_only_a_warning(void **state)
{
	size_t elen;
	uint8_t *elf = tvmlinux(0, &elen);
	char *k = write_bzimage(COMP_GZIP, elf, elen);
	char *file = twrite_temp("x", 1); /* a file where the cache directory should be */
	setenv("XDG_CACHE_HOME", file, 1);
	struct guest_mem m;
	struct boot_info bi;
	tmem(&m, 64 * MIB);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	assert_int_equal(bi.kind, KERNEL_BZIMAGE);
	setenv("XDG_CACHE_HOME", cache_dir, 1);
	tremove(file);
	tremove(k);
	tmem_free(&m);
	free(elf);
}

static void payload_that_is_not_elf(void **state)
{
	uint8_t junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37);
	char *k = write_bzimage(COMP_ZSTD, junk, sizeof(junk));
	struct guest_mem m;
	struct boot_info bi;
	tmem(&m, 64 * MIB);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), -1);
	tremove(k);
	tmem_free(&m);
}

static void make_file_with_mtime(const char *dir, const char *name, time_t mtime)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fclose(f), 0);
	struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int exists_in(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* Storing a kernel keeps the BZCACHE_KEEP most recent and removes stale temporary files. */
static void cache_keeps_the_newest(void **state)
{
	char home[] = "/tmp/kite-bz-prune-XXXXXX", dir[64];
	assert_non_null(mkdtemp(home));
	snprintf(dir, sizeof(dir), "%s/kite", home);
	assert_int_equal(mkdir(dir, 0700), 0);
	setenv("XDG_CACHE_HOME", home, 1);
	time_t now = time(NULL);
	const char *old[] = {"vmlinux-a", "vmlinux-b", "vmlinux-c", "vmlinux-d", "vmlinux-e"};
	for (int i = 0; i < 5; i++)
		make_file_with_mtime(dir, old[i], now - 1000 + i * 10); /* a oldest, e newest */
	make_file_with_mtime(dir, ".tmp-stale", now - 7200);
	make_file_with_mtime(dir, ".tmp-fresh", now);
	make_file_with_mtime(dir, "unrelated", now - 99999);

	size_t elen;
	uint8_t *elf = tvmlinux(0, &elen);
	char *k = write_bzimage(COMP_LZ4, elf, elen);
	struct guest_mem m;
	struct boot_info bi;
	tmem(&m, 64 * MIB);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	struct stat st;
	char cpath[4200];
	assert_int_equal(stat(k, &st), 0);
	assert_int_equal(bzcache_path(&st, cpath, sizeof(cpath)), 0);
	assert_int_equal(access(cpath, F_OK), 0);
	assert_false(exists_in(dir, "vmlinux-a"));
	assert_false(exists_in(dir, "vmlinux-b"));
	assert_true(exists_in(dir, "vmlinux-c"));
	assert_true(exists_in(dir, "vmlinux-d"));
	assert_true(exists_in(dir, "vmlinux-e"));
	assert_false(exists_in(dir, ".tmp-stale"));
	assert_true(exists_in(dir, ".tmp-fresh"));
	assert_true(exists_in(dir, "unrelated"));

	/* A cache hit marks the file used, so pruning keeps the kernels in use. */
	struct timespec past[2] = {{now - 5000, 0}, {now - 5000, 0}};
	assert_int_equal(utimensat(AT_FDCWD, cpath, past, 0), 0);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	struct stat cst;
	assert_int_equal(stat(cpath, &cst), 0);
	assert_true(cst.st_mtim.tv_sec >= now);

	setenv("XDG_CACHE_HOME", cache_dir, 1);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
	assert_int_equal(system(cmd), 0);
	tremove(k);
	tmem_free(&m);
	free(elf);
}

/* The Debian kernel, when one has been fetched (make guest, or KITE_TEST_BZIMAGE=path). */
static void real_debian_kernel(void **state)
{
	const char *path = getenv("KITE_TEST_BZIMAGE");
	if (!path)
		path = "build/guest/vmlinuz";
	if (access(path, R_OK) != 0) {
		skip();
		return;
	}
	struct guest_mem m;
	struct boot_info bi;
	assert_int_equal(gmem_init(&m, 512 * MIB), 0);
	char *ird = twrite_temp("0707010000", 10);
	struct timespec t0, t1, t2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(kernel_load(&m, path, ird, "console=ttyS0", &bi), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(kernel_load(&m, path, ird, "console=ttyS0", &bi), 0);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	print_message("first load %.0f ms, cached load %.0f ms\n",
		      (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
		      (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6);
	assert_int_equal(bi.kind, KERNEL_BZIMAGE);
	assert_int_equal(bi.entry64, 0x1000000);
	assert_true(bi.pvh_entry > 0x1000000 && bi.pvh_entry < bi.kernel_end);
	assert_true(bi.kernel_end > 0x2000000 && bi.kernel_end < 512 * MIB);
	assert_true(bi.initrd_addr >= bi.kernel_end && bi.initrd_addr + 10 <= 512 * MIB);
	assert_true(rd(&m, BOOT_PARAMS_ADDR + 0x206, 2) >= 0x20e);
	assert_int_equal(rd(&m, BOOT_PARAMS_ADDR + 0x202, 4), 0x53726448);
	tremove(ird);
	gmem_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(payload_round_trip_each_format),
	    cmocka_unit_test(large_payloads),
	    cmocka_unit_test(corrupt_payloads_are_errors),
	    cmocka_unit_test(fuzzed_payloads_never_crash),
	    cmocka_unit_test(unsupported_and_unknown_formats),
	    cmocka_unit_test(bad_headers),
	    cmocka_unit_test(kernel_load_each_format),
	    cmocka_unit_test(second_load_uses_the_cache),
	    cmocka_unit_test(unwritable_cache_is_only_a_warning),
	    cmocka_unit_test(cache_keeps_the_newest),
	    cmocka_unit_test(payload_that_is_not_elf),
	    cmocka_unit_test(real_debian_kernel),
	};
	return cmocka_run_group_tests(tests, setup_cache, teardown_cache);
}

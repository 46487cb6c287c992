/* Save files (machine/savefile.h) without KVM: a definition, some state records and a RAM with a
 * few non-zero pages go out and come back (the zero pages as holes, the RAM mapped from the
 * file copy-on-write); files cut at any length, with any byte of their header or state
 * flipped, or of another format version are refused with an error (the ASan build runs
 * these too). */
#include "unit.h"
#include "util/err.h"
#include "machine/savefile.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define RAM (8u << 20)

struct fx {
	char dir[64], path[128];
	struct machine_config def;
	struct guest_mem mem;
	uint8_t *ram;
	struct state_buf state;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/kite-savefile-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/m.save", f->dir);
	machine_config_init(&f->def);
	assert_int_equal(machine_config_set(&f->def, "name", "sf", "test"), 0);
	assert_int_equal(machine_config_set(&f->def, "kernel", "/bin/true", "test"), 0);
	assert_int_equal(machine_config_set(&f->def, "memory", "8M", "test"), 0);
	machine_config_finish(&f->def);
	f->ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->ram != MAP_FAILED);
	gmem_init_from(&f->mem, f->ram, RAM);
	memset(f->ram + 4096, 0x11, 4096);	     /* page 1 */
	memset(f->ram + (5u << 20), 0x22, 3 * 4096); /* three pages at 5 MiB */
	f->ram[RAM - 1] = 0x33;			     /* the last byte */
	struct state_writer w;
	state_begin(&w, &f->state, "machine", 1);
	state_put_u32(&w, "vcpus", 1);
	state_end(&w);
	state_begin(&w, &f->state, "serial", 1);
	state_put_bytes(&w, "rx_fifo", "abc", 3);
	state_end(&w);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	munmap(f->ram, RAM);
	machine_config_free(&f->def);
	state_buf_free(&f->state);
	free(f);
	return 0;
}

static void write_ok(struct fx *f)
{
	assert_int_equal(savefile_write(f->path, &f->def, &f->state, &f->mem), 0);
}

static void round_trip_sparse_and_mapped(void **state)
{
	struct fx *f = *state;
	write_ok(f);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_true((uint64_t)st.st_size >= RAM);
	assert_true((uint64_t)st.st_blocks * 512 < 1u << 20); /* 5 pages of 2048 written */
	struct savefile sf;
	assert_int_equal(savefile_open(&sf, f->path), 0);
	assert_string_equal(sf.def.name, "sf");
	assert_int_equal(sf.ram_size, RAM);
	assert_int_equal(sf.state_len, f->state.len);
	assert_memory_equal(sf.state, f->state.data, f->state.len);
	/* The RAM, mapped over a fresh guest memory, copy-on-write. */
	struct guest_mem m2;
	assert_int_equal(gmem_init(&m2, RAM), 0);
	assert_int_equal(savefile_map_ram(&sf, &m2), 0);
	assert_memory_equal(m2.base, f->ram, RAM);
	m2.base[4096] = 0x99; /* the guest writes: the file stays */
	savefile_close(&sf);
	gmem_free(&m2);
	assert_int_equal(savefile_open(&sf, f->path), 0);
	struct guest_mem m3;
	assert_int_equal(gmem_init(&m3, RAM), 0);
	assert_int_equal(savefile_map_ram(&sf, &m3), 0);
	assert_int_equal(m3.base[4096], 0x11);
	gmem_free(&m3);
	savefile_close(&sf);
	/* Saving over it replaces the file: a mapping of the old one keeps its contents. */
	assert_int_equal(savefile_open(&sf, f->path), 0);
	struct guest_mem m4;
	assert_int_equal(gmem_init(&m4, RAM), 0);
	assert_int_equal(savefile_map_ram(&sf, &m4), 0);
	memset(f->ram + 4096, 0x44, 4096);
	write_ok(f);
	assert_int_equal(m4.base[4096], 0x11);
	gmem_free(&m4);
	savefile_close(&sf);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *d = malloc((size_t)st.st_size);
	assert_int_equal(pread(fd, d, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return d;
}

static void write_all(const char *path, const uint8_t *d, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, d, len), (ssize_t)len);
	close(fd);
}

/* The first `len` bytes of `d`, then a hole up to `size`: a file of full length whose RAM
 * reads as zeros (its contents are not checked on open). */
static void write_head(const char *path, const uint8_t *d, size_t len, size_t size)
{
	write_all(path, d, len);
	assert_int_equal(truncate(path, (off_t)size), 0);
}

/* A good save file's bytes, and in `bad` the path of a sibling file `name` to damage. */
static uint8_t *good_bytes(struct fx *f, const char *name, char *bad, size_t badsz, size_t *len)
{
	write_ok(f);
	snprintf(bad, badsz, "%s/%s", f->dir, name);
	return read_all(f->path, len);
}

/* Every length up to past the state, and a few into the RAM: all refused. */
static void cut_files_refused(void **state)
{
	size_t len;
	char bad[160];
	uint8_t *d = good_bytes(*state, "cut.save", bad, sizeof(bad), &len);
	for (size_t n = 0; n < 2048; n += 7) {
		write_all(bad, d, n);
		struct savefile sf;
		assert_int_equal(savefile_open(&sf, bad), -1);
	}
	for (size_t n = len - RAM; n < len; n += RAM / 7) {
		write_all(bad, d, n);
		struct savefile sf;
		assert_int_equal(savefile_open(&sf, bad), -1);
		assert_non_null(strstr(kite_last_error(), "cut short"));
	}
	free(d);
}

/* Any byte of the magic, header or state changed: refused (a checksum or the magic). */
static void flipped_bytes_refused(void **state)
{
	struct fx *f = *state;
	size_t len;
	char bad[160];
	uint8_t *d = good_bytes(f, "flip.save", bad, sizeof(bad), &len);
	uint32_t hlen;
	memcpy(&hlen, d + 8, 4);
	size_t end = 16 + hlen + f->state.len;
	for (size_t i = 0; i < end; i += 3) {
		d[i] ^= 0x5a;
		write_head(bad, d, end, len);
		d[i] ^= 0x5a;
		struct savefile sf;
		assert_int_equal(savefile_open(&sf, bad), -1);
	}
	/* Unchanged, the same way: it opens (what was refused above was the flip). */
	write_head(bad, d, end, len);
	struct savefile sf;
	assert_int_equal(savefile_open(&sf, bad), 0);
	savefile_close(&sf);
	free(d);
}

static void other_version_refused(void **state)
{
	size_t len;
	char bad[160];
	uint8_t *d = good_bytes(*state, "v2.save", bad, sizeof(bad), &len);
	/* The header record's version follows its name; the CRC covers it: fix the CRC. */
	uint32_t hlen;
	memcpy(&hlen, d + 8, 4);
	uint8_t *ver = d + 12 + 4 + 1 + strlen("savefile");
	uint32_t two = 2;
	memcpy(ver, &two, 4);
	uLong c = crc32(0L, Z_NULL, 0);
	uint32_t crc = (uint32_t)crc32(c, d + 12, hlen);
	memcpy(d + 12 + hlen, &crc, 4);
	write_all(bad, d, len);
	struct savefile sf;
	assert_int_equal(savefile_open(&sf, bad), -1);
	assert_non_null(strstr(kite_last_error(), "save file format version 2; this kite reads "
						  "version 1"));
	free(d);
}

static void not_a_save_file(void **state)
{
	struct fx *f = *state;
	struct savefile sf;
	assert_int_equal(savefile_open(&sf, "/etc/hostname"), -1);
	assert_int_equal(savefile_open(&sf, f->dir), -1);
	assert_int_equal(savefile_open(&sf, "/nonexistent/x.save"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(round_trip_sparse_and_mapped, setup, teardown),
	    cmocka_unit_test_setup_teardown(cut_files_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(flipped_bytes_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(other_version_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(not_a_save_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

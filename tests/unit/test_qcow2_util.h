/* Helpers for the qcow2 tests: a scratch directory, shelling out to qemu-img/qemu-io (the
 * referees), and comparing what kite reads with what qemu-img converts to raw. */
#ifndef KITE_TESTS_QCOW2_UTIL_H
#define KITE_TESTS_QCOW2_UTIL_H

#include "unit.h"
#include "block/block.h"
#include "block/qcow2.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char qt_dir[] = "/tmp/kite-test-qcow2-XXXXXX";

static inline const char *qt_path(const char *name)
{
	static char paths[8][512];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, 512, "%s/%s", qt_dir, name);
	return p;
}

/* Runs a shell command in the scratch directory; returns its exit status. */
__attribute__((format(printf, 1, 2))) static inline int qt_sh(const char *fmt, ...)
{
	char cmd[4096];
	int n = snprintf(cmd, sizeof(cmd), "cd %s && ( ", qt_dir);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, " ) >/dev/null 2>&1");
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline uint8_t *qt_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Reads the whole image through kite (in odd-sized pieces to cross cluster edges). */
static inline uint8_t *qt_read_all(const char *path, const char *fmt, size_t *len)
{
	struct blk *b = blk_open(path, fmt, BLK_O_NO_PROBE_WARN);
	assert_non_null(b);
	size_t n = (size_t)blk_size(b);
	uint8_t *buf = malloc(n + 1);
	assert_non_null(buf);
	size_t step = 300007;
	for (size_t o = 0; o < n; o += step)
		assert_int_equal(blk_pread(b, buf + o, n - o < step ? n - o : step, o), 0);
	blk_close(b);
	*len = n;
	return buf;
}

/* kite's bytes of `name` equal qemu-img's raw conversion of it. */
static inline void qt_assert_reads_like_qemu(const char *name)
{
	assert_int_equal(qt_sh("qemu-img convert -O raw '%s' ref.raw", name), 0);
	size_t a, b;
	uint8_t *ref = qt_slurp(qt_path("ref.raw"), &a);
	uint8_t *got = qt_read_all(qt_path(name), NULL, &b);
	assert_int_equal(a, b);
	assert_memory_equal(ref, got, a);
	free(ref);
	free(got);
}

/* qemu-img check finds no errors and no leaks. */
static inline void qt_assert_clean(const char *name)
{
	assert_int_equal(qt_sh("qemu-img check -q '%s'", name), 0);
}

static inline void qt_fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

static inline int qt_setup(void **state)
{
	return mkdtemp(qt_dir) ? 0 : -1;
}

static inline int qt_teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", qt_dir);
	return system(cmd);
}

#endif

/* Builders for the boot tests: synthetic ELF kernels (64- and 32-bit, with notes), a bzImage
 * around a payload, temporary files, and a zero-filled guest memory. */
#ifndef KITE_TESTS_BOOT_FIXTURE_H
#define KITE_TESTS_BOOT_FIXTURE_H

#include "unit.h"
#include "kvm/memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tseg {
	uint64_t paddr, vaddr;
	const void *data;
	size_t filesz, memsz;
};

static inline void tput(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t tget(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* One ELF note: name (with NUL), type, descriptor; returns its length (4-byte padded). */
static inline size_t tnote(uint8_t *p, const char *name, uint32_t type, const void *desc,
			   size_t descsz)
{
	size_t namesz = strlen(name) + 1, np = (namesz + 3) & ~3u, dp = (descsz + 3) & ~3u;
	memset(p, 0, 12 + np + dp);
	tput(p, namesz, 4);
	tput(p + 4, descsz, 4);
	tput(p + 8, type, 4);
	memcpy(p + 12, name, namesz);
	memcpy(p + 12 + np, desc, descsz);
	return 12 + np + dp;
}

/* A PVH note followed by a Linux note when `linux_note`; returns the length. */
static inline size_t tnotes(uint8_t *p, uint64_t pvh_entry, int pvh_size, int linux_note)
{
	size_t n = 0;
	if (pvh_entry) {
		uint8_t d[8];
		tput(d, pvh_entry, 8);
		n += tnote(p, "Xen", 18, d, (size_t)pvh_size);
	}
	if (linux_note)
		n += tnote(p + n, "Linux", 0x100, "salt", 4);
	return n;
}

/* ELF (64-bit when is64, else 32-bit) with the segments as PT_LOAD and the notes as PT_NOTE.
 * Segment data is placed from file offset 0x1000. Returns a malloc'd buffer and its length. */
static inline uint8_t *telf(int is64, uint64_t entry, const struct tseg *s, int n,
			    const uint8_t *notes, size_t notes_len, size_t *len)
{
	size_t eh = is64 ? 64 : 52, ph = is64 ? 56 : 32;
	int nph = n + (notes_len ? 1 : 0);
	size_t off = 0x1000, total = off;
	for (int i = 0; i < n; i++)
		total += s[i].filesz;
	total += notes_len;
	uint8_t *b = calloc(1, total);
	assert_non_null(b);
	memcpy(b, "\177ELF", 4);
	b[4] = is64 ? 2 : 1;
	b[5] = 1;
	b[6] = 1;
	tput(b + 16, 2, 2);		/* ET_EXEC */
	tput(b + 18, is64 ? 62 : 3, 2); /* machine */
	tput(b + 20, 1, 4);
	if (is64) {
		tput(b + 24, entry, 8);
		tput(b + 32, eh, 8);
		tput(b + 52, eh, 2);
		tput(b + 54, ph, 2);
		tput(b + 56, (uint64_t)nph, 2);
	} else {
		tput(b + 24, entry, 4);
		tput(b + 28, eh, 4);
		tput(b + 40, eh, 2);
		tput(b + 42, ph, 2);
		tput(b + 44, (uint64_t)nph, 2);
	}
	for (int i = 0; i < nph; i++) {
		uint8_t *p = b + eh + ph * (size_t)i;
		int note = i == n;
		uint64_t type = note ? 4 : 1;
		uint64_t paddr = note ? 0 : s[i].paddr, vaddr = note ? 0 : s[i].vaddr;
		uint64_t fsz = note ? notes_len : s[i].filesz, msz = note ? notes_len : s[i].memsz;
		if (is64) {
			tput(p, type, 4);
			tput(p + 8, off, 8);
			tput(p + 16, vaddr, 8);
			tput(p + 24, paddr, 8);
			tput(p + 32, fsz, 8);
			tput(p + 40, msz, 8);
		} else {
			tput(p, type, 4);
			tput(p + 4, off, 4);
			tput(p + 8, vaddr, 4);
			tput(p + 12, paddr, 4);
			tput(p + 16, fsz, 4);
			tput(p + 20, msz, 4);
		}
		memcpy(b + off, note ? (const void *)notes : s[i].data, fsz);
		off += fsz;
	}
	*len = total;
	return b;
}

/* A Linux-like vmlinux: two segments at 16 MiB (text, then data+bss), "Linux" note, entry at
 * the physical start; virtual addresses in the kernel map like the real one. */
static inline uint8_t *tvmlinux(int pvh_note, size_t *len)
{
	static uint8_t text[8192], data[4096];
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 5);
	struct tseg s[2] = {
	    {0x1000000, 0xffffffff81000000ULL, text, sizeof(text), sizeof(text)},
	    {0x1002000, 0xffffffff81002000ULL, data, sizeof(data), 0x3000},
	};
	uint8_t notes[128];
	size_t nl = tnotes(notes, pvh_note ? 0x1000040 : 0, 8, 1);
	return telf(1, 0x1000000, s, 2, notes, nl, len);
}

static inline char *twrite_temp(const void *data, size_t len)
{
	char *path = strdup("/tmp/kite-boot-test-XXXXXX");
	assert_non_null(path);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return path;
}

static inline void tremove(char *path)
{
	unlink(path);
	free(path);
}

/* Zero-filled guest memory of `size` bytes (below the PCI hole in tests). */
static inline void tmem(struct guest_mem *m, uint64_t size)
{
	uint8_t *buf = calloc(1, size);
	assert_non_null(buf);
	gmem_init_from(m, buf, size);
}

static inline void tmem_free(struct guest_mem *m)
{
	free(m->base);
}

#endif

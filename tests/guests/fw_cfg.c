/* fw_cfg: QEMU's firmware configuration interface through its I/O ports (selector 0x510,
 * data 0x511): the "QEMU" signature, the feature bits (the I/O interface at least), the RAM
 * size against mem=, the vCPU count against cpus= and the most vCPUs at least that, the file
 * directory (well formed, sorted) with etc/e820, whose RAM entries add up to mem=, and an
 * unknown key reading as zeros. With the DMA feature (bit 1): the DMA port's "QEMU CFG", and DMA
 * reads of the signature, etc/e820 (the same bytes as through the data port) and an unknown key
 * (zeros), each access completing with its control word 0. Every opt/ file is printed with its
 * size and FNV-1a hash, for the host to check against what it gave (--fw-cfg, -fw_cfg). */
#include "libguest.h"

const char guest_name[] = "fw_cfg";

#define FW_CFG_SELECT 0x510
#define FW_CFG_DATA   0x511
#define FW_CFG_DMA    0x514
#define MAX_FILES     64
#define DMA_READ      0x02u
#define DMA_SELECT    0x08u

/* One DMA access, big-endian fields, as the device reads it from guest memory. */
struct dma_access {
	uint32_t control, length;
	uint64_t address;
} __attribute__((aligned(16)));

static struct dma_access dma;
static uint8_t dma_buf[512], pio_buf[512];

struct fw_file {
	uint32_t size;
	uint16_t key;
	char name[57];
};

static struct fw_file files[MAX_FILES];

static void select_key(uint16_t key)
{
	outw(FW_CFG_SELECT, key);
}

static void read_bytes(void *buf, size_t n)
{
	uint8_t *b = buf;
	for (size_t i = 0; i < n; i++)
		b[i] = inb(FW_CFG_DATA);
}

static uint64_t read_le(uint16_t key, int n)
{
	uint8_t b[8];
	select_key(key);
	read_bytes(b, (size_t)n);
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* The directory into files[]; returns the count (at most MAX_FILES kept). */
static uint32_t read_dir(bool *sorted)
{
	uint8_t b[64];
	select_key(0x19);
	read_bytes(b, 4);
	uint32_t n = (uint32_t)get_be(b, 4);
	*sorted = true;
	for (uint32_t i = 0; i < n && i < MAX_FILES; i++) {
		read_bytes(b, 64);
		files[i].size = (uint32_t)get_be(b, 4);
		files[i].key = (uint16_t)get_be(b + 4, 2);
		memcpy(files[i].name, b + 8, 56);
		files[i].name[56] = '\0';
		printf("fw_cfg: file %#x %u bytes \"%s\"\n", files[i].key, files[i].size,
		       files[i].name);
		if (i && strcmp(files[i - 1].name, files[i].name) >= 0)
			*sorted = false;
	}
	return n;
}

/* Reads `len` bytes of `key` into `buf` by DMA; returns the control word left (0: done). */
static uint32_t dma_read(uint16_t key, void *buf, uint32_t len)
{
	dma.control = __builtin_bswap32((uint32_t)key << 16 | DMA_SELECT | DMA_READ);
	dma.length = __builtin_bswap32(len);
	dma.address = __builtin_bswap64((uint64_t)buf);
	uint64_t at = (uint64_t)&dma;
	__asm__ volatile("" ::: "memory");
	outl(FW_CFG_DMA, __builtin_bswap32((uint32_t)(at >> 32)));
	outl(FW_CFG_DMA + 4, __builtin_bswap32((uint32_t)at));
	__asm__ volatile("" ::: "memory");
	return __builtin_bswap32(*(volatile uint32_t *)&dma.control);
}

static void check_dma(const struct fw_file *e820)
{
	char sig[9] = {0};
	for (int i = 0; i < 8; i++)
		sig[i] = (char)inb(FW_CFG_DMA + i);
	report(strcmp(sig, "QEMU CFG") == 0, "DMA port reads \"%s\"", sig);
	memset(dma_buf, 0xff, sizeof(dma_buf));
	uint32_t c = dma_read(0x00, dma_buf, 4);
	report(c == 0 && memcmp(dma_buf, "QEMU", 4) == 0 && dma_buf[4] == 0xff,
	       "DMA read of the signature (control %#x)", c);
	if (e820 && e820->size <= sizeof(dma_buf)) {
		select_key(e820->key);
		read_bytes(pio_buf, e820->size);
		c = dma_read(e820->key, dma_buf, e820->size);
		report(c == 0 && memcmp(dma_buf, pio_buf, e820->size) == 0,
		       "DMA read of etc/e820 gives the data port's bytes (control %#x)", c);
	}
	memset(dma_buf, 0xff, sizeof(dma_buf));
	c = dma_read(0x1234, dma_buf, 16);
	bool zeros = true;
	for (int i = 0; i < 16; i++)
		zeros = zeros && dma_buf[i] == 0;
	report(c == 0 && zeros, "DMA read of unknown key 0x1234 gives zeros (control %#x)", c);
}

static void check_e820(const struct fw_file *f, uint64_t mem)
{
	report(f->size > 0 && f->size % 20 == 0, "etc/e820: %u bytes, whole 20-byte entries",
	       f->size);
	select_key(f->key);
	uint64_t ram = 0;
	for (uint32_t off = 0; off + 20 <= f->size; off += 20) {
		uint8_t e[20];
		read_bytes(e, 20);
		uint64_t addr = 0, len = 0;
		for (int i = 7; i >= 0; i--) {
			addr = addr << 8 | e[i];
			len = len << 8 | e[8 + i];
		}
		uint32_t type =
		    (uint32_t)(e[16] | e[17] << 8 | e[18] << 16 | (uint32_t)e[19] << 24);
		printf("fw_cfg: e820 [%#014lx-%#014lx] type %u\n", addr, addr + len - 1, type);
		if (type == E820_RAM)
			ram += len;
	}
	report(ram == mem, "etc/e820 RAM adds up to mem= (%lu KiB)", ram >> 10);
}

/* Each opt/ file (QEMU's -fw_cfg, kite's --fw-cfg) read whole through the data port:
 * `fw_cfg: NAME: N bytes fnv1a 0xH "TEXT"`, TEXT its first 40 bytes with others than printable
 * ASCII as '.'. */
static void show_opt_files(uint32_t n)
{
	for (uint32_t i = 0; i < n && i < MAX_FILES; i++) {
		if (strncmp(files[i].name, "opt/", 4) != 0)
			continue;
		select_key(files[i].key);
		uint32_t h = 2166136261u;
		char text[41];
		for (uint32_t k = 0; k < files[i].size; k++) {
			uint8_t c = inb(FW_CFG_DATA);
			h = (h ^ c) * 16777619u;
			if (k < 40)
				text[k] = c >= 32 && c < 127 && c != '"' ? (char)c : '.';
		}
		text[files[i].size < 40 ? files[i].size : 40] = '\0';
		printf("fw_cfg: %s: %u bytes fnv1a %#x \"%s\"\n", files[i].name, files[i].size, h,
		       text);
	}
}

void guest_main(void)
{
	char sig[5] = {0};
	select_key(0x00);
	read_bytes(sig, 4);
	report(strcmp(sig, "QEMU") == 0, "signature \"%s\"", sig);
	uint64_t id = read_le(0x01, 4);
	report(id & 1, "features %#lx: the I/O interface", id);
	uint64_t mem = cmdline_u64("mem", 0), cpus = cmdline_u64("cpus", 1);
	uint64_t ram = read_le(0x03, 8);
	report(ram == mem, "RAM size %lu KiB is mem=", ram >> 10);
	uint64_t nb = read_le(0x05, 2), max = read_le(0x0f, 2);
	report(nb == cpus, "vCPUs %lu is cpus=", nb);
	report(max >= nb, "most vCPUs %lu, at least the vCPUs", max);
	bool sorted;
	uint32_t n = read_dir(&sorted);
	report(n > 0 && n <= MAX_FILES && sorted, "file directory: %u files sorted by name", n);
	const struct fw_file *e820 = NULL;
	for (uint32_t i = 0; i < n && i < MAX_FILES; i++)
		if (strcmp(files[i].name, "etc/e820") == 0)
			e820 = &files[i];
	report(e820 != NULL, "etc/e820 in the directory");
	show_opt_files(n);
	if (e820)
		check_e820(e820, mem);
	uint8_t b[8];
	memset(b, 0xff, sizeof(b));
	select_key(0x1234);
	read_bytes(b, sizeof(b));
	bool zeros = true;
	for (size_t i = 0; i < sizeof(b); i++)
		zeros = zeros && b[i] == 0;
	report(zeros, "unknown key 0x1234 reads as zeros");
	if (id & 2)
		check_dma(e820);
	else
		report_skip("the DMA interface (feature bit 1 clear)");
}

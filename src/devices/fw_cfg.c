#include "devices/fw_cfg.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* The write-channel bit; an arch-local key (0x8000) keeps its bit, so it selects nothing. */
#define FW_CFG_WRITE_CHANNEL  0x4000
#define FW_CFG_DIR_ENTRY      64 /* size, key, reserved, name */
#define FW_CFG_ID_TRADITIONAL 1u
#define FW_CFG_ID_DMA	      2u
#define DMA_ERROR	      0x01u
#define DMA_READ	      0x02u
#define DMA_SKIP	      0x04u
#define DMA_SELECT	      0x08u
#define DMA_WRITE	      0x10u
#define DMA_ACCESS_SIZE	      16
static const char dma_signature[FW_CFG_DMA_PORTS] = "QEMU CFG";

static const struct fw_cfg_item *find(const struct fw_cfg *f, uint16_t key)
{
	for (int i = 0; i < f->nitems; i++)
		if (f->items[i].key == key)
			return &f->items[i];
	return NULL;
}

static struct fw_cfg_item *slot(struct fw_cfg *f, uint16_t key)
{
	for (int i = 0; i < f->nitems; i++)
		if (f->items[i].key == key)
			return &f->items[i];
	if (f->nitems == FW_CFG_MAX_ITEMS) {
		kite_error("fw_cfg: more than %d items", FW_CFG_MAX_ITEMS);
		return NULL;
	}
	struct fw_cfg_item *it = &f->items[f->nitems++];
	memset(it, 0, sizeof(*it));
	it->key = key;
	return it;
}

int fw_cfg_add(struct fw_cfg *f, uint16_t key, const void *data, uint32_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return kite_error("out of memory");
	memcpy(copy, data, len);
	struct fw_cfg_item *it = slot(f, key);
	if (!it) {
		free(copy);
		return -1;
	}
	free(it->data);
	it->data = copy;
	it->len = len;
	return 0;
}

int fw_cfg_add_le16(struct fw_cfg *f, uint16_t key, uint16_t v)
{
	const uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	return fw_cfg_add(f, key, b, sizeof(b));
}

int fw_cfg_add_le64(struct fw_cfg *f, uint16_t key, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return fw_cfg_add(f, key, b, sizeof(b));
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static int by_name(const void *a, const void *b)
{
	const struct fw_cfg_item *x = *(const struct fw_cfg_item *const *)a;
	const struct fw_cfg_item *y = *(const struct fw_cfg_item *const *)b;
	return strcmp(x->name, y->name);
}

/* The directory item, from the files, sorted by name as QEMU sorts it. */
static int write_dir(struct fw_cfg *f)
{
	const struct fw_cfg_item *files[FW_CFG_MAX_ITEMS];
	uint32_t n = 0;
	for (int i = 0; i < f->nitems; i++)
		if (f->items[i].name[0])
			files[n++] = &f->items[i];
	qsort(files, n, sizeof(files[0]), by_name);
	uint8_t dir[4 + FW_CFG_MAX_ITEMS * FW_CFG_DIR_ENTRY];
	memset(dir, 0, sizeof(dir));
	put_be(dir, n, 4);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *e = dir + 4 + i * FW_CFG_DIR_ENTRY;
		put_be(e, files[i]->len, 4);
		put_be(e + 4, files[i]->key, 2);
		memcpy(e + 8, files[i]->name, strlen(files[i]->name));
	}
	return fw_cfg_add(f, FW_CFG_FILE_DIR, dir, 4 + n * FW_CFG_DIR_ENTRY);
}

int fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data, uint32_t len)
{
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen >= FW_CFG_NAME_MAX)
		return kite_error("fw_cfg: file name '%s' is empty or longer than %d bytes", name,
				  FW_CFG_NAME_MAX - 1);
	uint16_t key = FW_CFG_FILE_FIRST;
	for (int i = 0; i < f->nitems; i++) {
		if (!strcmp(f->items[i].name, name))
			return kite_error("fw_cfg: file '%s' added twice", name);
		if (f->items[i].name[0] && f->items[i].key >= key)
			key = (uint16_t)(f->items[i].key + 1);
	}
	if (fw_cfg_add(f, key, data, len) < 0)
		return -1;
	struct fw_cfg_item *it = slot(f, key);
	memcpy(it->name, name, nlen + 1);
	return write_dir(f);
}

int fw_cfg_init(struct fw_cfg *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	const uint8_t id[4] = {FW_CFG_ID_TRADITIONAL, 0, 0, 0};
	if (fw_cfg_add(f, FW_CFG_SIGNATURE, "QEMU", 4) < 0 ||
	    fw_cfg_add(f, FW_CFG_ID, id, sizeof(id)) < 0 || write_dir(f) < 0) {
		fw_cfg_destroy(f);
		return -1;
	}
	return 0;
}

void fw_cfg_destroy(struct fw_cfg *f)
{
	for (int i = 0; i < f->nitems; i++)
		free(f->items[i].data);
	f->nitems = 0;
	pthread_mutex_destroy(&f->lock);
}

static void fw_cfg_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct fw_cfg *f = opaque;
	memset(data, 0, len);
	if (off != 1)
		return; /* the selector reads as zeros */
	pthread_mutex_lock(&f->lock);
	const struct fw_cfg_item *it = find(f, f->selected);
	if (it && f->offset < it->len)
		data[0] = it->data[f->offset];
	if (f->offset < UINT32_MAX)
		f->offset++;
	pthread_mutex_unlock(&f->lock);
}

static void fw_cfg_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct fw_cfg *f = opaque;
	if (off != 0)
		return; /* data port writes are gone from QEMU too */
	uint16_t key = (uint16_t)(data[0] | (len > 1 ? data[1] << 8 : 0));
	pthread_mutex_lock(&f->lock);
	f->selected = key & (uint16_t)~FW_CFG_WRITE_CHANNEL;
	f->offset = 0;
	pthread_mutex_unlock(&f->lock);
}

const struct io_ops fw_cfg_ops = {.read = fw_cfg_read, .write = fw_cfg_write};

int fw_cfg_enable_dma(struct fw_cfg *f, const struct guest_mem *mem)
{
	const uint8_t id[4] = {FW_CFG_ID_TRADITIONAL | FW_CFG_ID_DMA, 0, 0, 0};
	f->mem = mem;
	return fw_cfg_add(f, FW_CFG_ID, id, sizeof(id));
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Reads or skips `len` bytes of the selected item; false when the guest range is not RAM. */
static bool dma_transfer(struct fw_cfg *f, uint32_t control, uint32_t len, uint64_t addr)
{
	const struct fw_cfg_item *it = find(f, f->selected);
	uint32_t avail = it && f->offset < it->len ? it->len - f->offset : 0;
	uint32_t n = len < avail ? len : avail;
	bool ok = true;
	if (control & DMA_READ) {
		uint8_t *dst = len ? gmem_ptr(f->mem, addr, len) : NULL;
		ok = dst || !len;
		if (dst) {
			if (n)
				memcpy(dst, it->data + f->offset, n);
			memset(dst + n, 0, len - n);
		}
	}
	if (ok)
		f->offset = len > UINT32_MAX - f->offset ? UINT32_MAX : f->offset + len;
	return ok;
}

/* Carries out the access at guest address `at` and writes its control word back. */
static void dma_run(struct fw_cfg *f, uint64_t at)
{
	uint8_t a[DMA_ACCESS_SIZE];
	if (gmem_read(f->mem, at, a, sizeof(a)) < 0)
		return; /* nowhere to report to */
	uint32_t control = (uint32_t)get_be(a, 4), len = (uint32_t)get_be(a + 4, 4);
	uint64_t addr = get_be(a + 8, 8);
	if (control & DMA_SELECT) {
		f->selected = (uint16_t)(control >> 16) & (uint16_t)~FW_CFG_WRITE_CHANNEL;
		f->offset = 0;
	}
	bool ok = true;
	if (control & DMA_WRITE)
		ok = false;
	else if (control & (DMA_READ | DMA_SKIP))
		ok = dma_transfer(f, control, len, addr);
	const uint8_t done[4] = {0, 0, 0, ok ? 0 : DMA_ERROR};
	(void)gmem_write(f->mem, at, done, sizeof(done));
}

static void fw_cfg_dma_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		data[i] = off + i < FW_CFG_DMA_PORTS ? (uint8_t)dma_signature[off + i] : 0;
}

static void fw_cfg_dma_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct fw_cfg *f = opaque;
	if (!f->mem || len != 4 || (off != 0 && off != 4))
		return;
	pthread_mutex_lock(&f->lock);
	uint32_t half = (uint32_t)get_be(data, 4);
	if (off == 0) {
		f->dma_high = half;
	} else {
		dma_run(f, (uint64_t)f->dma_high << 32 | half);
		f->dma_high = 0; /* the next access gives its high half again, or 0 */
	}
	pthread_mutex_unlock(&f->lock);
}

const struct io_ops fw_cfg_dma_ops = {.read = fw_cfg_dma_read, .write = fw_cfg_dma_write};

#include "devices/pc_testdev.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static uint32_t le_value(const uint8_t *data, unsigned len)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

/* QEMU's memory core refuses an access not aligned to its size: a read gives zeros, a write
 * is dropped. */
static bool misaligned(uint64_t off, unsigned len)
{
	return (off & (len - 1)) != 0;
}

/* The latch's bytes from `off` (bytes past its end read as zeros and are not written). */
static void latch_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct pc_testdev *t = opaque;
	if (misaligned(off, len)) {
		memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < len; i++)
		data[i] = off + i < 4 ? (uint8_t)(t->latch >> (8 * (off + i))) : 0;
	pthread_mutex_unlock(&t->lock);
}

static void latch_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct pc_testdev *t = opaque;
	if (misaligned(off, len))
		return;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < len && off + i < 4; i++) {
		unsigned shift = 8 * (unsigned)(off + i);
		t->latch = (t->latch & ~(0xffu << shift)) | (uint32_t)data[i] << shift;
	}
	pthread_mutex_unlock(&t->lock);
}

const struct io_ops pc_testdev_latch_ops = {.read = latch_read, .write = latch_write};

static void zero_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	memset(data, 0, len);
}

static void flush_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct pc_testdev *t = opaque;
	if (off != 0 || len != 4) /* QEMU: 32-bit accesses only */
		return;
	uint64_t page = le_value(data, len) & ~0xfffULL;
	t->platform->flush_page(t->platform->opaque, page);
}

const struct io_ops pc_testdev_flush_ops = {.read = zero_read, .write = flush_write};

static void irq_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct pc_testdev *t = opaque;
	if (len != 1 || off >= PC_TESTDEV_IRQ_LINES) /* QEMU: byte accesses only */
		return;
	int level = data[0] != 0;
	pthread_mutex_lock(&t->lock);
	if (level)
		t->lines |= 1u << off;
	else
		t->lines &= ~(1u << off);
	pthread_mutex_unlock(&t->lock);
	t->platform->set_irq(t->platform->opaque, (unsigned)off, level);
}

const struct io_ops pc_testdev_irq_ops = {.read = zero_read, .write = irq_write};

static unsigned iomem_span(uint64_t off, unsigned len)
{
	return off >= PC_TESTDEV_IOMEM_LEN
		   ? 0
		   : (unsigned)(len < PC_TESTDEV_IOMEM_LEN - off ? len
								 : PC_TESTDEV_IOMEM_LEN - off);
}

static void iomem_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct pc_testdev *t = opaque;
	unsigned n = iomem_span(off, len);
	memset(data, 0, len);
	pthread_mutex_lock(&t->lock);
	memcpy(data, t->iomem + off, n);
	pthread_mutex_unlock(&t->lock);
}

static void iomem_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct pc_testdev *t = opaque;
	unsigned n = iomem_span(off, len);
	pthread_mutex_lock(&t->lock);
	memcpy(t->iomem + off, data, n);
	pthread_mutex_unlock(&t->lock);
}

const struct io_ops pc_testdev_iomem_ops = {.read = iomem_read, .write = iomem_write};

int pc_testdev_init(struct pc_testdev *t, const struct platform_ops *platform)
{
	memset(t, 0, sizeof(*t));
	t->platform = platform;
	t->iomem = calloc(1, PC_TESTDEV_IOMEM_LEN);
	if (!t->iomem)
		return kite_error("out of memory");
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

void pc_testdev_destroy(struct pc_testdev *t)
{
	if (!t->iomem)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->iomem);
	t->iomem = NULL;
}

/* ---- state (util/state.h) ---- */

static int pc_testdev_save(void *dev, struct state_buf *out)
{
	struct pc_testdev *t = dev;
	struct state_writer w;
	pthread_mutex_lock(&t->lock);
	state_begin(&w, out, "pc-testdev", 1);
	state_put_u32(&w, "latch", t->latch);
	state_put_u32(&w, "lines", t->lines);
	state_put_bytes(&w, "iomem", t->iomem, PC_TESTDEV_IOMEM_LEN);
	state_end(&w);
	pthread_mutex_unlock(&t->lock);
	return state_buf_check(out);
}

static int pc_testdev_load(void *dev, const struct state_reader *rd)
{
	struct pc_testdev *t = dev;
	uint32_t latch, lines;
	const uint8_t *iomem;
	size_t len;
	if (state_get_u32(rd, "latch", &latch) < 0 || state_get_u32(rd, "lines", &lines) < 0 ||
	    state_get_blob(rd, "iomem", &iomem, &len) < 0)
		return -1;
	if (len != PC_TESTDEV_IOMEM_LEN)
		return kite_error("device state: pc-testdev: iomem is %zu bytes, not %u", len,
				  PC_TESTDEV_IOMEM_LEN);
	if (lines >> PC_TESTDEV_IRQ_LINES)
		return kite_error("device state: pc-testdev: lines 0x%x name a line past %u", lines,
				  PC_TESTDEV_IRQ_LINES - 1);
	pthread_mutex_lock(&t->lock);
	t->latch = latch;
	t->lines = lines;
	memcpy(t->iomem, iomem, PC_TESTDEV_IOMEM_LEN);
	pthread_mutex_unlock(&t->lock);
	for (unsigned n = 0; n < PC_TESTDEV_IRQ_LINES; n++)
		if (lines >> n & 1)
			t->platform->set_irq(t->platform->opaque, n, 1);
	return 0;
}

const struct state_ops pc_testdev_state_ops = {"pc-testdev", 1, pc_testdev_save, pc_testdev_load};

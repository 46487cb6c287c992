/* Device state records (util/state.h): round trips of the format and of each platform
 * device and the PCI configuration space, and records a hostile file could hold (cut short,
 * another version, sizes past the end, flipped bytes): each is refused with an error, never
 * read past its end (the ASan build runs these too). */
#include "unit.h"
#include "devices/acpi_pm.h"
#include "devices/fw_cfg.h"
#include "devices/i8042.h"
#include "devices/pc_testdev.h"
#include "devices/pci.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "util/err.h"
#include "util/state.h"

#include <stdlib.h>
#include <string.h>

static int irq_level[32];

static void fake_set_irq(void *opaque, unsigned gsi, int level)
{
	irq_level[gsi] = level;
}

static void fake_event(void *opaque, enum machine_event ev)
{
}

static const struct platform_ops fake = {.set_irq = fake_set_irq, .event = fake_event};

static uint8_t inb(const struct io_ops *ops, void *dev, uint64_t off)
{
	uint8_t v;
	ops->read(dev, off, &v, 1);
	return v;
}

static void outb(const struct io_ops *ops, void *dev, uint64_t off, uint8_t v)
{
	ops->write(dev, off, &v, 1);
}

/* A record with one field of each type. */
static void sample(struct state_buf *b)
{
	struct state_writer w;
	state_begin(&w, b, "sample", 3);
	state_put_u8(&w, "a", 0xab);
	state_put_u16(&w, "b", 0xabcd);
	state_put_u32(&w, "c", 0xdeadbeef);
	state_put_u64(&w, "d", 0x0123456789abcdefULL);
	state_put_bytes(&w, "e", "hello", 5);
	state_put_bool(&w, "f", true);
	state_end(&w);
}

static void format_round_trip(void **state)
{
	struct state_buf b = {0};
	sample(&b);
	sample(&b);
	assert_int_equal(state_buf_check(&b), 0);
	struct state_stream s;
	state_stream_init(&s, b.data, b.len);
	assert_int_equal(state_stream_check(&s), 2);
	struct state_reader r;
	assert_int_equal(state_next(&s, &r, "sample", 1, 3), 0);
	uint8_t a;
	uint16_t bb;
	uint32_t c;
	uint64_t d;
	bool f;
	char e[5];
	assert_int_equal(state_get_u8(&r, "a", &a), 0);
	assert_int_equal(state_get_u16(&r, "b", &bb), 0);
	assert_int_equal(state_get_u32(&r, "c", &c), 0);
	assert_int_equal(state_get_u64(&r, "d", &d), 0);
	assert_int_equal(state_get_bytes(&r, "e", e, 5), 0);
	assert_int_equal(state_get_bool(&r, "f", &f), 0);
	assert_int_equal(a, 0xab);
	assert_int_equal(bb, 0xabcd);
	assert_int_equal(c, 0xdeadbeef);
	assert_true(d == 0x0123456789abcdefULL);
	assert_memory_equal(e, "hello", 5);
	assert_true(f);
	/* Wrong type, wrong size, missing: errors, nothing written. */
	assert_int_equal(state_get_u32(&r, "a", &c), -1);
	assert_int_equal(state_get_bytes(&r, "e", e, 4), -1);
	assert_int_equal(state_get_u8(&r, "nope", &a), -1);
	assert_false(state_has(&r, "nope"));
	/* The second record, then the end. */
	assert_int_equal(state_next(&s, &r, "sample", 3, 3), 0);
	assert_true(state_stream_done(&s));
	assert_int_equal(state_next(&s, &r, "sample", 1, 3), -1);
	state_buf_free(&b);
}

static void other_version_or_section_refused(void **state)
{
	struct state_buf b = {0};
	sample(&b);
	struct state_stream s;
	struct state_reader r;
	state_stream_init(&s, b.data, b.len);
	assert_int_equal(state_next(&s, &r, "sample", 1, 2), -1); /* version 3 is from later */
	assert_string_equal(kite_last_error(),
			    "device state: sample record version 3 (this kite reads 1 to 2)");
	state_stream_init(&s, b.data, b.len);
	assert_int_equal(state_next(&s, &r, "sample", 1, 1), -1);
	assert_string_equal(kite_last_error(),
			    "device state: sample record version 3 (this kite reads 1)");
	state_stream_init(&s, b.data, b.len);
	assert_int_equal(state_next(&s, &r, "serial", 1, 3), -1);
	state_buf_free(&b);
}

/* Every prefix of a valid record is refused, read in a buffer of exactly its size (ASan sees
 * any read past it). */
static void truncated_records_refused(void **state)
{
	struct state_buf b = {0};
	sample(&b);
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, b.data, n);
		struct state_reader r;
		size_t used;
		assert_int_equal(state_parse(&r, copy, n, &used), -1);
		free(copy);
	}
	state_buf_free(&b);
}

/* Every single byte flipped to every value: parse either refuses the record or gives one
 * whose fields can all be asked for safely. */
static void corrupted_records_never_overrun(void **state)
{
	struct state_buf b = {0};
	sample(&b);
	uint8_t *copy = malloc(b.len);
	for (size_t i = 0; i < b.len; i++) {
		for (unsigned v = 0; v < 256; v += 7) {
			memcpy(copy, b.data, b.len);
			copy[i] = (uint8_t)v;
			struct state_reader r;
			size_t used;
			if (state_parse(&r, copy, b.len, &used) < 0)
				continue;
			assert_true(used <= b.len);
			uint64_t d;
			const uint8_t *p;
			size_t l;
			(void)state_get_u64(&r, "d", &d);
			if (state_get_blob(&r, "e", &p, &l) == 0)
				assert_true(p + l <= copy + b.len);
		}
	}
	free(copy);
	state_buf_free(&b);
}

/* A body length past the end and a field length past its record. */
static void sizes_past_the_end_refused(void **state)
{
	struct state_buf b = {0};
	sample(&b);
	struct state_reader r;
	size_t used;
	/* magic 4, name length 1 + "sample" 6, version 4: the body length follows. */
	uint8_t *body_len = b.data + 15;
	uint32_t huge = 0x7fffffff;
	memcpy(body_len, &huge, 4);
	assert_int_equal(state_parse(&r, b.data, b.len, &used), -1);
	state_buf_free(&b);

	sample(&b);
	/* The first field: name length 1, "a", type, then its length. */
	uint8_t *field_len = b.data + 19 + 3;
	uint32_t big = 1000;
	memcpy(field_len, &big, 4);
	assert_int_equal(state_parse(&r, b.data, b.len, &used), -1);
	state_buf_free(&b);
}

/* Saves dev through ops, then loads the record into `into`. */
static void round_trip(const struct state_ops *ops, void *dev, void *into)
{
	struct state_buf b = {0};
	assert_int_equal(ops->save(dev, &b), 0);
	struct state_stream s;
	state_stream_init(&s, b.data, b.len);
	assert_int_equal(state_load_dev(ops, into, &s), 0);
	assert_true(state_stream_done(&s));
	/* Every prefix of the record is refused, and the device stays as it was. */
	for (size_t n = 0; n + 1 < b.len; n += 3) {
		state_stream_init(&s, b.data, n);
		assert_int_equal(state_load_dev(ops, into, &s), -1);
	}
	state_buf_free(&b);
}

static void serial_round_trip(void **state)
{
	struct serial a, b;
	serial_init(&a, &fake, 4, NULL);
	serial_init(&b, &fake, 4, NULL);
	outb(&serial_io_ops, &a, 3, 0x80); /* DLAB: divisor 0x0102 */
	outb(&serial_io_ops, &a, 0, 0x02);
	outb(&serial_io_ops, &a, 1, 0x01);
	outb(&serial_io_ops, &a, 3, 0x03); /* 8N1 */
	outb(&serial_io_ops, &a, 7, 0x5a);
	outb(&serial_io_ops, &a, 1, 0x01); /* receive interrupts */
	assert_int_equal(serial_receive(&a, (const uint8_t *)"xyz", 3), 3);
	(void)inb(&serial_io_ops, &a, 0); /* 'x' read: "yz" stay */
	memset(irq_level, 0, sizeof(irq_level));
	round_trip(&serial_state_ops, &a, &b);
	assert_int_equal(irq_level[4], 1); /* data waiting: the line is raised again */
	assert_int_equal(inb(&serial_io_ops, &b, 7), 0x5a);
	assert_int_equal(inb(&serial_io_ops, &b, 3), 0x03);
	assert_int_equal(inb(&serial_io_ops, &b, 1), 0x01);
	assert_int_equal(inb(&serial_io_ops, &b, 2) & 0x0f, 0x04); /* IIR: received data */
	assert_int_equal(inb(&serial_io_ops, &b, 0), 'y');
	assert_int_equal(inb(&serial_io_ops, &b, 0), 'z');
	assert_int_equal(inb(&serial_io_ops, &b, 5) & 1, 0); /* FIFO empty */
	outb(&serial_io_ops, &b, 3, 0x80);
	assert_int_equal(inb(&serial_io_ops, &b, 0), 0x02);
	assert_int_equal(inb(&serial_io_ops, &b, 1), 0x01);
	serial_destroy(&a);
	serial_destroy(&b);
}

/* A restored VMM's console reads from its start: what was typed before the load comes
 * after the bytes the saved guest had not read, none lost. */
static void serial_input_before_load_follows_the_saved_fifo(void **state)
{
	struct serial a, b;
	serial_init(&a, &fake, 4, NULL);
	serial_init(&b, &fake, 4, NULL);
	outb(&serial_io_ops, &a, 1, 0x01);
	assert_int_equal(serial_receive(&a, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(serial_receive(&b, (const uint8_t *)"cd", 2), 2);
	round_trip(&serial_state_ops, &a, &b);
	const char *want = "abcd";
	for (int i = 0; i < 4; i++)
		assert_int_equal(inb(&serial_io_ops, &b, 0), want[i]);
	assert_int_equal(inb(&serial_io_ops, &b, 5) & 1, 0); /* FIFO empty */
	serial_destroy(&a);
	serial_destroy(&b);
}

static void i8042_round_trip(void **state)
{
	struct i8042 a, b;
	i8042_init(&a, &fake);
	i8042_init(&b, &fake);
	outb(&i8042_cmd_ops, &a, 0, 0x60); /* write command byte: waits for data */
	outb(&i8042_data_ops, &a, 0, 0x47);
	outb(&i8042_cmd_ops, &a, 0, 0xaa); /* self test: 0x55 waiting */
	round_trip(&i8042_state_ops, &a, &b);
	assert_true(inb(&i8042_cmd_ops, &b, 0) & 1);
	assert_int_equal(inb(&i8042_data_ops, &b, 0), 0x55);
	outb(&i8042_cmd_ops, &b, 0, 0x20);
	assert_int_equal(inb(&i8042_data_ops, &b, 0), 0x47);
	i8042_destroy(&a);
	i8042_destroy(&b);
}

static void rtc_round_trip(void **state)
{
	struct rtc a, b;
	rtc_init(&a);
	rtc_init(&b);
	outb(&rtc_io_ops, &a, 0, 0x0b);
	outb(&rtc_io_ops, &a, 1, 0x06); /* binary, 24 h */
	outb(&rtc_io_ops, &a, 0, 0x40);
	outb(&rtc_io_ops, &a, 1, 0x99); /* CMOS RAM */
	outb(&rtc_io_ops, &a, 0, 0x0b);
	round_trip(&rtc_state_ops, &a, &b);
	assert_int_equal(inb(&rtc_io_ops, &b, 1), 0x06); /* index 0x0b kept */
	outb(&rtc_io_ops, &b, 0, 0x40);
	assert_int_equal(inb(&rtc_io_ops, &b, 1), 0x99);
	rtc_destroy(&a);
	rtc_destroy(&b);
}

static void acpi_pm_round_trip(void **state)
{
	struct acpi_pm a, b;
	acpi_pm_init(&a, &fake);
	acpi_pm_init(&b, &fake);
	uint8_t en[2] = {0x00, 0x01}; /* PWRBTN_EN */
	acpi_pm_ops.write(&a, 2, en, 2);
	acpi_pm_power_button(&a);
	memset(irq_level, 0, sizeof(irq_level));
	uint8_t t0[4];
	acpi_pm_ops.read(&a, 8, t0, 4);
	round_trip(&acpi_pm_state_ops, &a, &b);
	assert_int_equal(irq_level[ACPI_SCI_IRQ], 1); /* the pending press raises the SCI */
	uint8_t st[2];
	acpi_pm_ops.read(&b, 0, st, 2);
	assert_int_equal(st[1] & 0x01, 0x01); /* PWRBTN_STS */
	uint8_t t1[4];
	acpi_pm_ops.read(&b, 8, t1, 4);
	uint32_t v0, v1;
	memcpy(&v0, t0, 4);
	memcpy(&v1, t1, 4);
	assert_true(v1 >= v0); /* the PM timer goes on from where it was */
	acpi_pm_destroy(&a);
	acpi_pm_destroy(&b);
}

static uint64_t mmio_base;
static unsigned moves;

static void bar_moved(void *opaque, struct pci_device *d, int bar, uint64_t old_addr,
		      uint64_t new_addr)
{
	moves++;
	if (bar == 0)
		mmio_base = new_addr;
}

static void msi(void *opaque, struct pci_device *d, unsigned v, uint64_t addr, uint32_t data)
{
}

static int bar_reads;
static void bar_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	bar_reads++;
	memset(data, 0, len);
}
static void bar_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
}
static const struct io_ops bar_ops = {bar_read, bar_write};

static void make_bus(struct pci_bus *bus, struct pci_device *d)
{
	struct pci_bus_ops ops = {.msi_send = msi, .set_irq = fake_set_irq, .bar_moved = bar_moved};
	assert_int_equal(pci_bus_init(bus, &ops), 0);
	pci_device_init(d, "test", 0x1af4, 0x1044, 0x00ff00, 1, 0x1af4, 0x1100);
	assert_int_equal(pci_device_set_bar(d, 0, 0x4000, &bar_ops, NULL), 0);
	assert_int_equal(pci_msix_init(d, 4, 1), 0);
	assert_int_equal(pci_bus_add(bus, d, -1), 1);
}

static void pci_config_round_trip(void **state)
{
	struct pci_bus ba, bb;
	struct pci_device a, b;
	make_bus(&ba, &a);
	make_bus(&bb, &b);
	/* The guest moves BAR0, enables decoding and bus mastering, masks a vector. */
	pci_cfg_write(&ba, 1, PCI_BAR0, 0xd0000000, 4);
	pci_cfg_write(&ba, 1, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	pci_cfg_write(&ba, 1, PCI_INTERRUPT_LINE, 11, 1);
	a.msix_table[16 * 2 + 8] = 0x42;
	pci_set_intx(&a, 1);
	struct state_buf buf = {0};
	assert_int_equal(pci_bus_save(&ba, &buf), 0);
	assert_int_equal(pci_device_save(&a, &buf), 0);
	moves = 0;
	struct state_stream s;
	struct state_reader r;
	state_stream_init(&s, buf.data, buf.len);
	assert_int_equal(state_next(&s, &r, "pci-bus", 1, 1), 0);
	assert_int_equal(pci_bus_load(&bb, &r), 0);
	assert_int_equal(state_next(&s, &r, "pci-dev", 1, 1), 0);
	memset(irq_level, 0, sizeof(irq_level));
	assert_int_equal(pci_device_load(&b, &r), 0);
	pci_bus_load_done(&bb);
	assert_int_equal(irq_level[PCI_INTX_GSI(1)], 1);
	assert_true(moves >= 1);
	assert_int_equal(mmio_base, 0xd0000000);
	assert_int_equal(pci_bar_addr(&b, 0), 0xd0000000);
	assert_int_equal(pci_cfg_read(&bb, 1, PCI_INTERRUPT_LINE, 1), 11);
	assert_int_equal(pci_cfg_read(&bb, 1, PCI_COMMAND, 2) & 6, 6);
	assert_int_equal(b.msix_table[16 * 2 + 8], 0x42);
	/* Another device in that slot refuses the record. */
	struct pci_bus bc;
	struct pci_device c;
	struct pci_bus_ops ops = {.msi_send = msi, .set_irq = fake_set_irq};
	assert_int_equal(pci_bus_init(&bc, &ops), 0);
	pci_device_init(&c, "other", 0x1af4, 0x1042, 0x010000, 1, 0x1af4, 0x1100);
	assert_int_equal(pci_msix_init(&c, 4, 1), 0);
	assert_int_equal(pci_bus_add(&bc, &c, -1), 1);
	state_stream_init(&s, buf.data, buf.len);
	assert_int_equal(state_next(&s, &r, "pci-bus", 1, 1), 0);
	assert_int_equal(state_next(&s, &r, "pci-dev", 1, 1), 0);
	assert_int_equal(pci_device_load(&c, &r), -1);
	state_buf_free(&buf);
	pci_bus_destroy(&ba);
	pci_bus_destroy(&bb);
	pci_bus_destroy(&bc);
}

/* A guest half way through an item reads on from the same byte after a load. */
static void fw_cfg_round_trip(void **state)
{
	struct fw_cfg a, b;
	assert_int_equal(fw_cfg_init(&a), 0);
	assert_int_equal(fw_cfg_init(&b), 0);
	assert_int_equal(fw_cfg_add_file(&a, "etc/x", "0123456789", 10), 0);
	assert_int_equal(fw_cfg_add_file(&b, "etc/x", "0123456789", 10), 0);
	uint8_t key[2] = {FW_CFG_FILE_FIRST & 0xff, FW_CFG_FILE_FIRST >> 8};
	fw_cfg_ops.write(&a, 0, key, 2);
	uint8_t c;
	for (int i = 0; i < 4; i++)
		fw_cfg_ops.read(&a, 1, &c, 1);
	round_trip(&fw_cfg_state_ops, &a, &b);
	fw_cfg_ops.read(&b, 1, &c, 1);
	assert_int_equal(c, '4');
	fw_cfg_destroy(&a);
	fw_cfg_destroy(&b);
}

/* The latch, the MMIO window's bytes and the raised lines come back; a line raised at the save
 * is raised again on load; a window of another size or a line past 23 is refused. */
static void pc_testdev_round_trip(void **state)
{
	struct pc_testdev a, b;
	assert_int_equal(pc_testdev_init(&a, &fake), 0);
	assert_int_equal(pc_testdev_init(&b, &fake), 0);
	const uint8_t v[4] = {1, 2, 3, 4}, one = 1;
	pc_testdev_latch_ops.write(&a, 0, v, 4);
	pc_testdev_iomem_ops.write(&a, 0xfffc, v, 4);
	pc_testdev_irq_ops.write(&a, 14, &one, 1);
	irq_level[14] = 0;
	round_trip(&pc_testdev_state_ops, &a, &b);
	assert_int_equal(irq_level[14], 1);
	uint8_t r[4];
	pc_testdev_latch_ops.read(&b, 0, r, 4);
	assert_memory_equal(r, v, 4);
	pc_testdev_iomem_ops.read(&b, 0xfffc, r, 4);
	assert_memory_equal(r, v, 4);

	struct state_buf buf = {0};
	struct state_writer w;
	state_begin(&w, &buf, "pc-testdev", 1);
	state_put_u32(&w, "latch", 0);
	state_put_u32(&w, "lines", 1u << 24);
	uint8_t *zeros = calloc(1, PC_TESTDEV_IOMEM_LEN);
	assert_non_null(zeros);
	state_put_bytes(&w, "iomem", zeros, PC_TESTDEV_IOMEM_LEN);
	free(zeros);
	state_end(&w);
	struct state_stream s;
	state_stream_init(&s, buf.data, buf.len);
	assert_int_equal(state_load_dev(&pc_testdev_state_ops, &b, &s), -1);
	pc_testdev_latch_ops.read(&b, 0, r, 4);
	assert_memory_equal(r, v, 4); /* unchanged */
	state_buf_free(&buf);
	pc_testdev_destroy(&a);
	pc_testdev_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(format_round_trip),
	    cmocka_unit_test(other_version_or_section_refused),
	    cmocka_unit_test(truncated_records_refused),
	    cmocka_unit_test(corrupted_records_never_overrun),
	    cmocka_unit_test(sizes_past_the_end_refused),
	    cmocka_unit_test(serial_round_trip),
	    cmocka_unit_test(serial_input_before_load_follows_the_saved_fifo),
	    cmocka_unit_test(i8042_round_trip),
	    cmocka_unit_test(rtc_round_trip),
	    cmocka_unit_test(acpi_pm_round_trip),
	    cmocka_unit_test(fw_cfg_round_trip),
	    cmocka_unit_test(pc_testdev_round_trip),
	    cmocka_unit_test(pci_config_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

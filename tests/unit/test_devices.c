/* Platform device models alone, through their register interfaces, as a guest drives them. */
#include "unit.h"
#include "devices/acpi_pm.h"
#include "devices/debug_exit.h"
#include "config/fw_cfg_config.h"
#include "devices/fw_cfg.h"
#include "devices/i8042.h"
#include "devices/pc_testdev.h"
#include "devices/rtc.h"
#include "devices/serial.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int irq_level[32];
static int events[2];

static void fake_set_irq(void *opaque, unsigned gsi, int level)
{
	irq_level[gsi] = level;
}

static void fake_event(void *opaque, enum machine_event ev)
{
	events[ev]++;
}

static uint32_t exit_codes[4];
static int nexit_codes;

static void fake_guest_exit(void *opaque, uint32_t code)
{
	if (nexit_codes < 4)
		exit_codes[nexit_codes] = code;
	nexit_codes++;
}

static uint64_t flushed[4];
static int nflushed;

static void fake_flush_page(void *opaque, uint64_t gpa)
{
	if (nflushed < 4)
		flushed[nflushed] = gpa;
	nflushed++;
}

static const struct platform_ops fake = {.set_irq = fake_set_irq,
					 .event = fake_event,
					 .guest_exit = fake_guest_exit,
					 .flush_page = fake_flush_page};

static int reset_fakes(void **state)
{
	memset(irq_level, 0, sizeof(irq_level));
	memset(events, 0, sizeof(events));
	nexit_codes = 0;
	nflushed = 0;
	return 0;
}

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

static void serial_transmits_to_console(void **state)
{
	char path[] = "/tmp/kite-serial-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	struct console con;
	assert_int_equal(console_open(&con, CONSOLE_FILE, path), 0);
	struct serial s;
	serial_init(&s, &fake, 4, &con);
	for (const char *p = "hello\n"; *p; p++) {
		assert_true(inb(&serial_io_ops, &s, 5) & 0x20); /* THRE */
		outb(&serial_io_ops, &s, 0, (uint8_t)*p);
	}
	serial_destroy(&s);
	console_close(&con);
	char buf[16] = {0};
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	assert_string_equal(buf, "hello\n");
	close(fd);
	unlink(path);
}

static void serial_receive_raises_irq_until_read(void **state)
{
	struct serial s;
	serial_init(&s, &fake, 4, NULL);
	outb(&serial_io_ops, &s, 1, 0x01); /* IER: received data */
	assert_int_equal(irq_level[4], 0);
	assert_int_equal(serial_receive(&s, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(irq_level[4], 1);
	assert_int_equal(inb(&serial_io_ops, &s, 2) & 0x0f, 0x04); /* IIR: RDI */
	assert_true(inb(&serial_io_ops, &s, 5) & 0x01);		   /* LSR: DR */
	assert_int_equal(inb(&serial_io_ops, &s, 0), 'a');
	assert_int_equal(irq_level[4], 1);
	assert_int_equal(inb(&serial_io_ops, &s, 0), 'b');
	assert_int_equal(irq_level[4], 0);
	assert_false(inb(&serial_io_ops, &s, 5) & 0x01);
	assert_int_equal(inb(&serial_io_ops, &s, 2) & 0x0f, 0x01); /* no interrupt */
	serial_destroy(&s);
}

static void serial_thre_interrupt_acknowledged_by_iir(void **state)
{
	struct serial s;
	serial_init(&s, &fake, 4, NULL);
	outb(&serial_io_ops, &s, 1, 0x02); /* IER: THR empty */
	assert_int_equal(irq_level[4], 1);
	assert_int_equal(inb(&serial_io_ops, &s, 2) & 0x0f, 0x02);
	assert_int_equal(irq_level[4], 0); /* reading IIR acknowledged it */
	outb(&serial_io_ops, &s, 0, 'x');  /* transmit: empty again */
	assert_int_equal(irq_level[4], 1);
	serial_destroy(&s);
}

static void serial_fifo_loopback_scratch_and_divisor(void **state)
{
	struct serial s;
	serial_init(&s, &fake, 4, NULL);
	outb(&serial_io_ops, &s, 2, 0x01); /* FCR: FIFO on */
	assert_int_equal(inb(&serial_io_ops, &s, 2) & 0xc0, 0xc0);
	outb(&serial_io_ops, &s, 7, 0x5a);
	assert_int_equal(inb(&serial_io_ops, &s, 7), 0x5a);
	outb(&serial_io_ops, &s, 3, 0x80); /* DLAB */
	outb(&serial_io_ops, &s, 0, 0x01);
	outb(&serial_io_ops, &s, 1, 0x00);
	assert_int_equal(inb(&serial_io_ops, &s, 0), 0x01);
	outb(&serial_io_ops, &s, 3, 0x03);
	outb(&serial_io_ops, &s, 4, 0x1f); /* loopback with all outputs on */
	assert_int_equal(inb(&serial_io_ops, &s, 6) & 0xf0, 0xf0);
	outb(&serial_io_ops, &s, 0, 'L');
	assert_int_equal(inb(&serial_io_ops, &s, 0), 'L');
	outb(&serial_io_ops, &s, 4, 0x10); /* loopback, outputs off */
	assert_int_equal(inb(&serial_io_ops, &s, 6) & 0xf0, 0x00);
	serial_destroy(&s);
}

static void serial_overrun_sets_lsr(void **state)
{
	struct serial s;
	serial_init(&s, &fake, 4, NULL);
	uint8_t many[SERIAL_RX_FIFO + 8];
	memset(many, 'z', sizeof(many));
	assert_int_equal(serial_receive(&s, many, sizeof(many)), SERIAL_RX_FIFO);
	serial_destroy(&s);
}

static void acpi_poweroff_on_s5(void **state)
{
	struct acpi_pm pm;
	acpi_pm_init(&pm, &fake);
	uint16_t ctl;
	acpi_pm_ops.read(&pm, 4, (uint8_t *)&ctl, 2);
	assert_true(ctl & 1);			 /* SCI_EN */
	ctl = (uint16_t)((3 << 10) | (1 << 13)); /* S3 is not power-off */
	acpi_pm_ops.write(&pm, 4, (uint8_t *)&ctl, 2);
	assert_int_equal(events[MACHINE_POWEROFF], 0);
	ctl = (uint16_t)((ACPI_SLP_TYP_S5 << 10) | (1 << 13));
	acpi_pm_ops.write(&pm, 4, (uint8_t *)&ctl, 2);
	assert_int_equal(events[MACHINE_POWEROFF], 1);
	acpi_pm_destroy(&pm);
}

static void acpi_power_button_raises_sci(void **state)
{
	struct acpi_pm pm;
	acpi_pm_init(&pm, &fake);
	acpi_pm_power_button(&pm);
	assert_int_equal(irq_level[ACPI_SCI_IRQ], 0); /* not enabled yet */
	uint16_t en = ACPI_PM1_PWRBTN;
	acpi_pm_ops.write(&pm, 2, (uint8_t *)&en, 2);
	assert_int_equal(irq_level[ACPI_SCI_IRQ], 1);
	uint16_t sts;
	acpi_pm_ops.read(&pm, 0, (uint8_t *)&sts, 2);
	assert_true(sts & ACPI_PM1_PWRBTN);
	acpi_pm_ops.write(&pm, 0, (uint8_t *)&sts, 2); /* write 1 to clear */
	assert_int_equal(irq_level[ACPI_SCI_IRQ], 0);
	acpi_pm_destroy(&pm);
}

static void acpi_timer_runs(void **state)
{
	struct acpi_pm pm;
	acpi_pm_init(&pm, &fake);
	uint32_t a, b;
	acpi_pm_ops.read(&pm, 8, (uint8_t *)&a, 4);
	usleep(2000);
	acpi_pm_ops.read(&pm, 8, (uint8_t *)&b, 4);
	assert_true(b - a >= 3579545 / 1000); /* at least 1 ms of ticks */
	acpi_pm_destroy(&pm);
}

static void reset_port_cf9(void **state)
{
	struct acpi_pm pm;
	acpi_pm_init(&pm, &fake);
	outb(&acpi_reset_ops, &pm, 0, 0x02);
	assert_int_equal(events[MACHINE_RESET], 0);
	outb(&acpi_reset_ops, &pm, 0, ACPI_RESET_VALUE);
	assert_int_equal(events[MACHINE_RESET], 1);
	acpi_pm_destroy(&pm);
}

static void i8042_pulse_resets(void **state)
{
	struct i8042 k;
	i8042_init(&k, &fake);
	outb(&i8042_cmd_ops, &k, 0, 0xAA);
	assert_true(inb(&i8042_cmd_ops, &k, 0) & 1);
	assert_int_equal(inb(&i8042_data_ops, &k, 0), 0x55);
	assert_int_equal(events[MACHINE_RESET], 0);
	outb(&i8042_cmd_ops, &k, 0, 0xFE);
	assert_int_equal(events[MACHINE_RESET], 1);
	i8042_destroy(&k);
}

/* isa-debug-exit: any write ends the run with its value; reads are zeros. */
static void debug_exit_writes_end_the_run(void **state)
{
	struct debug_exit d;
	debug_exit_init(&d, &fake);
	uint8_t v[4] = {0xff, 0xff, 0xff, 0xff};
	debug_exit_ops.read(&d, 0, v, 4);
	assert_memory_equal(v, "\0\0\0\0", 4);
	assert_int_equal(nexit_codes, 0);
	const uint8_t code[4] = {0x2a, 0x01, 0x00, 0x80};
	debug_exit_ops.write(&d, 0, code, 4);
	debug_exit_ops.write(&d, 2, code, 1);
	debug_exit_ops.write(&d, 0, code, 2);
	assert_int_equal(nexit_codes, 3);
	assert_int_equal(exit_codes[0], 0x8000012a);
	assert_int_equal(exit_codes[1], 0x2a);
	assert_int_equal(exit_codes[2], 0x12a);
	assert_int_equal(events[MACHINE_POWEROFF] + events[MACHINE_RESET], 0);
}

static void fw_cfg_select(struct fw_cfg *f, uint16_t key)
{
	const uint8_t b[2] = {(uint8_t)key, (uint8_t)(key >> 8)};
	fw_cfg_ops.write(f, 0, b, 2);
}

static void fw_cfg_bytes(struct fw_cfg *f, uint16_t key, uint8_t *out, size_t n)
{
	fw_cfg_select(f, key);
	for (size_t i = 0; i < n; i++)
		out[i] = inb(&fw_cfg_ops, f, 1);
}

/* fw_cfg through its two ports: items, the file directory, zeros for what is not there. */
static void fw_cfg_items_files_and_zeros(void **state)
{
	struct fw_cfg f;
	assert_int_equal(fw_cfg_init(&f), 0);
	assert_int_equal(fw_cfg_add_le64(&f, FW_CFG_RAM_SIZE, 0x123456789aULL), 0);
	assert_int_equal(fw_cfg_add_le16(&f, FW_CFG_NB_CPUS, 3), 0);
	assert_int_equal(fw_cfg_add_file(&f, "etc/zz", "zz!", 3), 0);
	assert_int_equal(fw_cfg_add_file(&f, "etc/e820", "0123456789", 10), 0);
	assert_int_equal(fw_cfg_add_file(&f, "etc/e820", "x", 1), -1);
	uint8_t b[200];
	fw_cfg_bytes(&f, FW_CFG_SIGNATURE, b, 6);
	assert_memory_equal(b, "QEMU\0\0", 6); /* past the end: zeros */
	fw_cfg_bytes(&f, FW_CFG_ID, b, 4);
	assert_memory_equal(b, "\1\0\0\0", 4);
	fw_cfg_bytes(&f, FW_CFG_RAM_SIZE, b, 8);
	assert_memory_equal(b, "\x9a\x78\x56\x34\x12\0\0\0", 8);
	fw_cfg_bytes(&f, FW_CFG_NB_CPUS | 0x4000, b, 2); /* the write bit selects the same */
	assert_memory_equal(b, "\3\0", 2);
	fw_cfg_bytes(&f, FW_CFG_FILE_DIR, b, 4 + 2 * 64);
	assert_memory_equal(b, "\0\0\0\2", 4);
	/* Sorted by name: etc/e820 (key 0x21, 10 bytes) before etc/zz (0x20, 3). */
	assert_memory_equal(b + 4, "\0\0\0\x0a\0\x21\0\0etc/e820\0", 17);
	assert_memory_equal(b + 68, "\0\0\0\3\0\x20\0\0etc/zz\0", 15);
	fw_cfg_bytes(&f, 0x21, b, 3);
	assert_memory_equal(b, "012", 3);
	for (uint16_t key = 0x1234; key; key = key == 0x1234 ? 0x8003 : 0) {
		memset(b, 0xff, 8);
		fw_cfg_bytes(&f, key, b, 8); /* unknown, and arch-local: zeros */
		assert_memory_equal(b, "\0\0\0\0\0\0\0\0", 8);
	}
	assert_int_equal(inb(&fw_cfg_ops, &f, 0), 0);
	fw_cfg_destroy(&f);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* Starts the DMA access at `at` (below 4 GiB: the high half is left as the device reset it). */
static void fw_cfg_dma_start(struct fw_cfg *f, uint32_t at)
{
	uint8_t b[4];
	put_be32(b, at);
	fw_cfg_dma_ops.write(f, 4, b, 4);
}

static void dma_access(uint8_t *ram, uint32_t at, uint32_t control, uint32_t len, uint32_t addr)
{
	memset(ram + at, 0, 16);
	put_be32(ram + at, control);
	put_be32(ram + at + 4, len);
	put_be32(ram + at + 12, addr);
}

/* fw_cfg's DMA interface over guest RAM: select and read, skip, zeros past the end, errors
 * for a write and for a range that is not RAM. */
static void fw_cfg_dma_reads_into_guest_ram(void **state)
{
	const uint64_t size = 1 << 20;
	uint8_t *ram = calloc(1, size);
	assert_non_null(ram);
	struct guest_mem mem;
	gmem_init_from(&mem, ram, size);
	struct fw_cfg f;
	assert_int_equal(fw_cfg_init(&f), 0);
	assert_int_equal(fw_cfg_enable_dma(&f, &mem), 0);
	assert_int_equal(fw_cfg_add_file(&f, "etc/e820", "0123456789", 10), 0);
	uint8_t sig[8];
	fw_cfg_dma_ops.read(&f, 0, sig, 8);
	assert_memory_equal(sig, "QEMU CFG", 8);
	fw_cfg_bytes(&f, FW_CFG_ID, sig, 4);
	assert_memory_equal(sig, "\3\0\0\0", 4);
	/* Select 0x20 and read 4 bytes; then skip 2 and read 8: 4 bytes and 4 zeros. */
	dma_access(ram, 0x1000, 0x200000 | 0x08 | 0x02, 4, 0x2000);
	fw_cfg_dma_start(&f, 0x1000);
	assert_memory_equal(ram + 0x1000, "\0\0\0\0", 4);
	assert_memory_equal(ram + 0x2000, "0123", 4);
	dma_access(ram, 0x1000, 0x04, 2, 0);
	fw_cfg_dma_start(&f, 0x1000);
	memset(ram + 0x2000, 0xff, 8);
	dma_access(ram, 0x1000, 0x02, 8, 0x2000);
	fw_cfg_dma_start(&f, 0x1000);
	assert_memory_equal(ram + 0x1000, "\0\0\0\0", 4);
	assert_memory_equal(ram + 0x2000, "6789\0\0\0\0", 8);
	/* A write, and a read past RAM: the error bit. */
	dma_access(ram, 0x1000, 0x10, 1, 0x2000);
	fw_cfg_dma_start(&f, 0x1000);
	assert_memory_equal(ram + 0x1000, "\0\0\0\1", 4);
	dma_access(ram, 0x1000, 0x00000008 | 0x02, 16, (uint32_t)size - 8);
	fw_cfg_dma_start(&f, 0x1000);
	assert_memory_equal(ram + 0x1000, "\0\0\0\1", 4);
	fw_cfg_destroy(&f);
	free(ram);
}

static time_t fixed_time(time_t *t)
{
	return 1795000000; /* 2026-11-18 11:06:40 UTC */
}

static uint8_t cmos(struct rtc *r, uint8_t idx)
{
	outb(&rtc_io_ops, r, 0, idx);
	return inb(&rtc_io_ops, r, 1);
}

static void rtc_reads_bcd_time(void **state)
{
	struct rtc r;
	rtc_init(&r);
	r.now = fixed_time;
	assert_int_equal(cmos(&r, 0x00), 0x40);
	assert_int_equal(cmos(&r, 0x02), 0x06);
	assert_int_equal(cmos(&r, 0x04), 0x11);
	assert_int_equal(cmos(&r, 0x07), 0x18);
	assert_int_equal(cmos(&r, 0x08), 0x11);
	assert_int_equal(cmos(&r, 0x09), 0x26);
	assert_int_equal(cmos(&r, 0x32), 0x20);
	assert_int_equal(cmos(&r, 0x0a) & 0x80, 0); /* no update in progress */
	assert_int_equal(cmos(&r, 0x0d), 0x80);
	rtc_destroy(&r);
}

/* A machine's fw_cfg (machine/vm.c's items, etc/e820) has room for every --fw-cfg file. */
static void fw_cfg_takes_every_boot_file(void **state)
{
	struct fw_cfg f;
	assert_int_equal(fw_cfg_init(&f), 0);
	assert_int_equal(fw_cfg_add_le64(&f, FW_CFG_RAM_SIZE, 1 << 26), 0);
	assert_int_equal(fw_cfg_add_le16(&f, FW_CFG_NB_CPUS, 1), 0);
	assert_int_equal(fw_cfg_add_le16(&f, FW_CFG_MAX_CPUS, 1), 0);
	assert_int_equal(fw_cfg_add_file(&f, "etc/e820", "e820", 4), 0);
	char name[24];
	for (int i = 0; i < MACHINE_MAX_FW_CFG; i++) {
		snprintf(name, sizeof(name), "opt/f%d", i);
		assert_int_equal(fw_cfg_add_file(&f, name, name, (uint32_t)strlen(name)), 0);
	}
	fw_cfg_destroy(&f);
}

static uint32_t le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* QEMU's pc-testdev: the latch by every width and port, misaligned accesses dropped. */
static void pc_testdev_latch(void **state)
{
	struct pc_testdev t;
	assert_int_equal(pc_testdev_init(&t, &fake), 0);
	const struct io_ops *l = &pc_testdev_latch_ops;
	uint8_t v[4] = {0x78, 0x56, 0x34, 0x12}, r[4];
	l->write(&t, 0, v, 4);
	l->read(&t, 0, r, 4);
	assert_int_equal(le32(r), 0x12345678);
	l->read(&t, 2, r, 2);
	assert_int_equal(r[0] | r[1] << 8, 0x1234);
	l->read(&t, 3, r, 1);
	assert_int_equal(r[0], 0x12);
	const uint8_t b = 0xab, w[2] = {0xef, 0xcd};
	l->write(&t, 2, &b, 1);
	l->write(&t, 1, w, 2); /* misaligned: dropped */
	l->read(&t, 1, r, 2);
	assert_int_equal(r[0] | r[1] << 8, 0);
	l->read(&t, 0, r, 4);
	assert_int_equal(le32(r), 0x12ab5678);
	l->write(&t, 0, w, 2);
	l->read(&t, 0, r, 4);
	assert_int_equal(le32(r), 0x12abcdef);
	pc_testdev_destroy(&t);
}

/* Byte writes of 1/0 raise/lower GSI n; other widths and lines past 23 do nothing. */
static void pc_testdev_irq_lines_and_flush(void **state)
{
	struct pc_testdev t;
	assert_int_equal(pc_testdev_init(&t, &fake), 0);
	const uint8_t one[4] = {1, 0, 0, 0}, two = 2, zero = 0;
	pc_testdev_irq_ops.write(&t, 10, &two, 1);
	assert_int_equal(irq_level[10], 1);
	pc_testdev_irq_ops.write(&t, 11, one, 2);
	assert_int_equal(irq_level[11], 0);
	pc_testdev_irq_ops.write(&t, 24, one, 1);
	pc_testdev_irq_ops.write(&t, 10, &zero, 1);
	assert_int_equal(irq_level[10], 0);
	uint8_t r = 0xff;
	pc_testdev_irq_ops.read(&t, 10, &r, 1);
	assert_int_equal(r, 0);
	const uint8_t addr[4] = {0x23, 0x51, 0x34, 0x12};
	pc_testdev_flush_ops.write(&t, 0, addr, 4);
	pc_testdev_flush_ops.write(&t, 0, addr, 2); /* 32-bit only */
	assert_int_equal(nflushed, 1);
	assert_int_equal(flushed[0], 0x12345000);
	pc_testdev_destroy(&t);
}

/* The 64 KiB window: zeros, then what was written, clipped at its end. */
static void pc_testdev_iomem_window(void **state)
{
	struct pc_testdev t;
	assert_int_equal(pc_testdev_init(&t, &fake), 0);
	const struct io_ops *m = &pc_testdev_iomem_ops;
	uint8_t r[8];
	m->read(&t, 0x100, r, 8);
	assert_memory_equal(r, "\0\0\0\0\0\0\0\0", 8);
	m->write(&t, 0x101, (const uint8_t *)"ABCDEFGH", 8);
	m->read(&t, 0x100, r, 8);
	assert_memory_equal(r, "\0ABCDEFG", 8);
	m->write(&t, PC_TESTDEV_IOMEM_LEN - 2, (const uint8_t *)"wxyz", 4);
	m->read(&t, PC_TESTDEV_IOMEM_LEN - 4, r, 8);
	assert_memory_equal(r, "\0\0wx\0\0\0\0", 8);
	pc_testdev_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(serial_transmits_to_console, reset_fakes),
	    cmocka_unit_test_setup(serial_receive_raises_irq_until_read, reset_fakes),
	    cmocka_unit_test_setup(serial_thre_interrupt_acknowledged_by_iir, reset_fakes),
	    cmocka_unit_test_setup(serial_fifo_loopback_scratch_and_divisor, reset_fakes),
	    cmocka_unit_test_setup(serial_overrun_sets_lsr, reset_fakes),
	    cmocka_unit_test_setup(acpi_poweroff_on_s5, reset_fakes),
	    cmocka_unit_test_setup(acpi_power_button_raises_sci, reset_fakes),
	    cmocka_unit_test_setup(acpi_timer_runs, reset_fakes),
	    cmocka_unit_test_setup(reset_port_cf9, reset_fakes),
	    cmocka_unit_test_setup(i8042_pulse_resets, reset_fakes),
	    cmocka_unit_test_setup(rtc_reads_bcd_time, reset_fakes),
	    cmocka_unit_test_setup(debug_exit_writes_end_the_run, reset_fakes),
	    cmocka_unit_test_setup(fw_cfg_takes_every_boot_file, reset_fakes),
	    cmocka_unit_test_setup(pc_testdev_latch, reset_fakes),
	    cmocka_unit_test_setup(pc_testdev_irq_lines_and_flush, reset_fakes),
	    cmocka_unit_test_setup(pc_testdev_iomem_window, reset_fakes),
	    cmocka_unit_test_setup(fw_cfg_items_files_and_zeros, reset_fakes),
	    cmocka_unit_test_setup(fw_cfg_dma_reads_into_guest_ram, reset_fakes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

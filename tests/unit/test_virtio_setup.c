/* Building a machine's virtio devices from its description. */
#include "unit.h"
#include "vpci_driver.h"
#include "virtio/virtio_devices.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

/* A fresh file of `size` bytes; its name goes to `path` (a private name per run). */
static void make_file(char *path, size_t size)
{
	strcpy(path, "/tmp/kite-vsetup-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static void test_create_all(void **state)
{
	struct vdrv d;
	vd_init(&d);
	/* vd_init registered its own bus: build the machine's on a fresh iobus */
	struct iobus io = {0};
	char a_img[64], b_img[64], opt[128];
	make_file(a_img, 1 << 20);
	make_file(b_img, 2 << 20);
	struct machine_config *cfg = calloc(1, sizeof(*cfg));
	machine_config_init(cfg);
	snprintf(opt, sizeof(opt), "%s,format=raw", a_img);
	assert_int_equal(machine_config_set(cfg, "disks", opt, "--disk"), 0);
	snprintf(opt, sizeof(opt), "%s,format=raw,readonly=on", b_img);
	assert_int_equal(machine_config_set(cfg, "disks", opt, "--disk"), 0);
	assert_int_equal(machine_config_set(cfg, "nics", "user", "--net"), 0);
	cfg->rng = cfg->balloon = true;
	struct virtio_console_backend console = {0};
	struct virtio_devices *v = calloc(1, sizeof(*v));
	struct pci_bus_ops ops = {.msi_send = vd_msi, .set_irq = vd_irq, .opaque = &d};
	assert_int_equal(virtio_devices_create(v, cfg, &console, &d.mem, &io, &ops), 0);
	/* enumerate through the machine's iobus, as the guest would */
	const uint16_t want[] = {0x0008, 0x1042, 0x1042, 0x1041, 0x1044, 0x1045, 0x1043, 0xffff};
	for (unsigned slot = 0; slot < 8; slot++) {
		uint32_t a = 0x80000000u | slot << 11;
		iobus_access(&io, IOBUS_PIO, 0xCF8, (uint8_t *)&a, 4, true);
		uint32_t id = 0;
		iobus_access(&io, IOBUS_PIO, 0xCFC, (uint8_t *)&id, 4, false);
		assert_int_equal(id >> 16, want[slot]);
	}
	/* the second disk's capacity (device config at BAR0 + 0x2000) is 4096 sectors */
	uint64_t bar = 0;
	uint32_t a = 0x80000000u | 2 << 11 | PCI_BAR0;
	iobus_access(&io, IOBUS_PIO, 0xCF8, (uint8_t *)&a, 4, true);
	iobus_access(&io, IOBUS_PIO, 0xCFC, (uint8_t *)&bar, 4, false);
	a = 0x80000000u | 2 << 11 | PCI_COMMAND;
	uint32_t cmd = PCI_COMMAND_MEMORY;
	iobus_access(&io, IOBUS_PIO, 0xCF8, (uint8_t *)&a, 4, true);
	iobus_access(&io, IOBUS_PIO, 0xCFC, (uint8_t *)&cmd, 2, true);
	uint64_t cap = 0;
	iobus_access(&io, IOBUS_MMIO, bar + VIRTIO_PCI_DEVICE_OFF, (uint8_t *)&cap, 8, false);
	assert_int_equal(cap, 4096);
	virtio_devices_destroy(v);

	/* a missing disk fails cleanly */
	struct iobus io2 = {0};
	snprintf(opt, sizeof(opt), "%s.missing", b_img);
	assert_int_equal(machine_config_remove_disk(cfg, "vdb"), 0);
	assert_int_equal(machine_config_set(cfg, "disks", opt, "--disk"), 0);
	assert_int_equal(virtio_devices_create(v, cfg, &console, &d.mem, &io2, &ops), -1);
	assert_int_equal(io2.n, 0);
	free(v);
	machine_config_free(cfg);
	free(cfg);
	unlink(a_img);
	unlink(b_img);
	vd_fini(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

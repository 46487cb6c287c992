#include "unit.h"
#include "vmm/memory.h"

#include <stdlib.h>

static void small_ram_is_one_region(void **state)
{
	static uint8_t buf[1 << 16];
	struct guest_mem m;
	gmem_init_from(&m, buf, sizeof(buf));
	assert_int_equal(m.nregions, 1);
	assert_ptr_equal(gmem_ptr(&m, 0, sizeof(buf)), buf);
	assert_ptr_equal(gmem_ptr(&m, 100, 10), buf + 100);
	assert_null(gmem_ptr(&m, sizeof(buf) - 4, 8));
	assert_null(gmem_ptr(&m, sizeof(buf), 1));
	assert_null(gmem_ptr(&m, UINT64_MAX - 2, 8));
	assert_null(gmem_ptr(&m, 8, UINT64_MAX));
}

static void large_ram_skips_pci_hole(void **state)
{
	struct guest_mem m;
	uint64_t size = 4ULL << 30;
	/* Pointers are never dereferenced: a fake base is enough to check the arithmetic. */
	uint8_t *fake = (uint8_t *)0x10000000;
	gmem_init_from(&m, fake, size);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(gmem_low_size(&m), GMEM_PCI_HOLE_START);
	assert_int_equal(gmem_high_size(&m), size - GMEM_PCI_HOLE_START);
	assert_null(gmem_ptr(&m, GMEM_PCI_HOLE_START, 1));
	assert_null(gmem_ptr(&m, GMEM_PCI_HOLE_START - 1, 2));
	assert_ptr_equal(gmem_ptr(&m, GMEM_HIGH_START, 1), fake + GMEM_PCI_HOLE_START);
	assert_null(gmem_ptr(&m, GMEM_HIGH_START + (1ULL << 30), 1));
}

static void read_write_round_trip(void **state)
{
	static uint8_t buf[4096];
	struct guest_mem m;
	gmem_init_from(&m, buf, sizeof(buf));
	uint32_t v = 0xdeadbeef, r = 0;
	assert_int_equal(gmem_write(&m, 4092, &v, 4), 0);
	assert_int_equal(gmem_read(&m, 4092, &r, 4), 0);
	assert_int_equal(r, v);
	assert_int_equal(gmem_write(&m, 4093, &v, 4), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(small_ram_is_one_region),
	    cmocka_unit_test(large_ram_skips_pci_hole),
	    cmocka_unit_test(read_write_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

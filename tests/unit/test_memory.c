#include "unit.h"
#include "kvm/memory.h"

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

/* Guest RAM starts on a 2 MiB boundary whatever its size (KVM maps huge pages only there),
 * and all of it can be written. */
static void ram_is_huge_page_aligned(void **state)
{
	const uint64_t sizes[] = {16ULL << 20, (64ULL << 20) + 4096, (2ULL << 20) - 4096, 5000};
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct guest_mem m;
		assert_int_equal(gmem_init(&m, sizes[i]), 0);
		assert_int_equal((uintptr_t)m.base % (2u << 20), 0);
		assert_int_equal(m.ram_size, sizes[i]);
		uint8_t *first = gmem_ptr(&m, 0, 1), *last = gmem_ptr(&m, sizes[i] - 1, 1);
		assert_non_null(first);
		assert_non_null(last);
		*first = 1;
		*last = 2;
		assert_int_equal(*first + *last, 3);
		gmem_free(&m);
	}
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
	    cmocka_unit_test(ram_is_huge_page_aligned),
	    cmocka_unit_test(read_write_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

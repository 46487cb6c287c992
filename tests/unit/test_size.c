#include "unit.h"
#include "util/size.h"

#include <errno.h>

static void parses_suffixes(void **state)
{
	uint64_t v;
	assert_int_equal(parse_size("512M", 1, &v), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(parse_size("2G", 1, &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("128K", 1, &v), 0);
	assert_int_equal(v, 128ULL << 10);
	assert_int_equal(parse_size("20g", 1, &v), 0);
	assert_int_equal(v, 20ULL << 30);
	assert_int_equal(parse_size("1.5G", 1, &v), 0);
	assert_int_equal(v, 3ULL << 29);
	assert_int_equal(parse_size("4096", 1, &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("64MiB", 1, &v), 0);
	assert_int_equal(v, 64ULL << 20);
	/* hexadecimal, as qemu-img takes cluster_size=0x10000 */
	assert_int_equal(parse_size("0x10000", 1, &v), 0);
	assert_int_equal(v, 0x10000);
	assert_int_equal(parse_size("0XfF", 1, &v), 0);
	assert_int_equal(v, 255);
}

static void bare_number_uses_default_unit(void **state)
{
	uint64_t v;
	assert_int_equal(parse_size("256", 1 << 20, &v), 0);
	assert_int_equal(v, 256ULL << 20);
}

static void rejects_garbage(void **state)
{
	uint64_t v;
	assert_int_equal(parse_size("", 1, &v), -1);
	assert_int_equal(parse_size("M", 1, &v), -1);
	assert_int_equal(parse_size("12X", 1, &v), -1);
	assert_int_equal(parse_size("-5", 1, &v), -1);
	assert_int_equal(parse_size("99999999999999999999", 1, &v), -1);
	assert_int_equal(parse_size("100000E", 1, &v), -1);
	assert_int_equal(parse_size("5Mx", 1, &v), -1);
	assert_int_equal(parse_size("0x1.8M", 1, &v), -1); /* no fractions in hex */
	assert_int_equal(parse_size("0x", 1, &v), -1);
	assert_int_equal(parse_size("0xg", 1, &v), -1);
}

static void qemu_grammar(void **state)
{
	uint64_t v;
	assert_int_equal(parse_size_qemu("1M", &v), 0);
	assert_int_equal(v, 1ULL << 20);
	assert_int_equal(parse_size_qemu("1.5m", &v), 0);
	assert_int_equal(v, 3ULL << 19);
	assert_int_equal(parse_size_qemu("1.k", &v), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(parse_size_qemu(" +512b", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(parse_size_qemu("0x10", &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(parse_size_qemu("7E", &v), 0);
	assert_int_equal(v, 7ULL << 60);
	assert_int_equal(parse_size_qemu("16E", &v), -ERANGE);
	assert_int_equal(parse_size_qemu("99999999999999999999999", &v), -ERANGE);
	assert_int_equal(parse_size_qemu("99999999999999999999999x", &v), -EINVAL);
	assert_int_equal(parse_size_qemu("1.5", &v), -EINVAL);
	assert_int_equal(parse_size_qemu("1KiB", &v), -EINVAL);
	assert_int_equal(parse_size_qemu("-1", &v), -EINVAL);
	assert_int_equal(parse_size_qemu("", &v), -EINVAL);
	assert_int_equal(parse_size_qemu("0x1k", &v), -EINVAL);
	assert_int_equal(parse_size_qemu("1.5e3M", &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parses_suffixes),
	    cmocka_unit_test(bare_number_uses_default_unit),
	    cmocka_unit_test(rejects_garbage),
	    cmocka_unit_test(qemu_grammar),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

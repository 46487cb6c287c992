#include "unit.h"
#include "vmm/pvm.h"

#include <stdlib.h>

static void fwait_is_stepped_over(void **state)
{
	const uint8_t insn[] = {0x9b, 0x90};
	unsigned len = 0;
	assert_int_equal(pvm_fallback_decide(insn, 2, &len), PVM_FALLBACK_SKIP);
	assert_int_equal(len, 1);
}

static void int3_injects_breakpoint(void **state)
{
	const uint8_t insn[] = {0xcc};
	unsigned len = 0;
	assert_int_equal(pvm_fallback_decide(insn, 1, &len), PVM_FALLBACK_INJECT_BP);
	assert_int_equal(len, 1);
}

static void others_are_reported(void **state)
{
	const uint8_t cmpxchg16b[] = {0xf0, 0x48, 0x0f, 0xc7, 0x4d, 0x20};
	const uint8_t xrstor[] = {0x48, 0x0f, 0xae, 0x2f};
	unsigned len = 0;
	assert_int_equal(pvm_fallback_decide(cmpxchg16b, 6, &len), PVM_FALLBACK_NONE);
	assert_int_equal(pvm_fallback_decide(xrstor, 4, &len), PVM_FALLBACK_NONE);
	assert_int_equal(pvm_fallback_decide(xrstor, 0, &len), PVM_FALLBACK_NONE);
}

static void cmdline_gets_pvm_defaults(void **state)
{
	char *s = pvm_cmdline("console=ttyS0", 1);
	assert_string_equal(s, "console=ttyS0 " PVM_LINUX_CMDLINE);
	free(s);
	s = pvm_cmdline("", 1);
	assert_string_equal(s, PVM_LINUX_CMDLINE);
	free(s);
	s = pvm_cmdline("quiet", 0);
	assert_string_equal(s, "quiet");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fwait_is_stepped_over),
	    cmocka_unit_test(int3_injects_breakpoint),
	    cmocka_unit_test(others_are_reported),
	    cmocka_unit_test(cmdline_gets_pvm_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "test_boot_fixture.h"
#include "unit.h"
#include "kvm/pvm.h"
#include "machine/vm.h"

#include <stdio.h>
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

/* Everything else goes to pvm_emulate (tests/unit/test_pvm_emulate.c); no bytes, no fallback. */
static void others_are_emulated(void **state)
{
	const uint8_t movd[] = {0x66, 0x44, 0x0f, 0x6e, 0xf9};
	const uint8_t ldmxcsr[] = {0x0f, 0xae, 0x54, 0x24, 0x04};
	unsigned len = 0;
	assert_int_equal(pvm_fallback_decide(movd, 5, &len), PVM_FALLBACK_EMULATE);
	assert_int_equal(pvm_fallback_decide(ldmxcsr, 5, &len), PVM_FALLBACK_EMULATE);
	assert_int_equal(pvm_fallback_decide(movd, 0, &len), PVM_FALLBACK_NONE);
}

static void stats_count_by_name(void **state)
{
	struct pvm_stats a = {0}, b = {0};
	pvm_stats_count(&a, "movd");
	pvm_stats_count(&a, "int3");
	pvm_stats_count(&a, "movd");
	pvm_stats_count(&b, "int3");
	pvm_stats_count(&b, "popcnt");
	pvm_stats_add(&a, &b);
	char buf[128];
	pvm_stats_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "movd 2, int3 2, popcnt 1");
	assert_int_equal(a.total, 5);
	/* past PVM_STATS_NAMES names the rest is "other" */
	struct pvm_stats c = {0};
	for (int i = 0; i < PVM_STATS_NAMES + 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "i%d", i);
		pvm_stats_count(&c, name);
	}
	assert_int_equal(c.other, 3);
	assert_int_equal(c.total, PVM_STATS_NAMES + 3);
	pvm_stats_format(&c, buf, 8);
	assert_string_equal(buf, "i0 1, i");
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

/* The PVM defaults as vm_prepare decides them, with the host handed in: the command line the
 * guest reads through its boot data (boot_params for Linux, hvm_start_info for PVH). */
static const struct kvm_host_facts pvm_host = {.pvm = true}, other_host = {.pvm = false};

static char *write_kernel(bool linux_kernel)
{
	size_t len;
	uint8_t *elf;
	if (linux_kernel) {
		elf = tvmlinux(0, &len);
	} else {
		static uint8_t code[512];
		struct tseg s = {0x100000, 0x100000, code, sizeof(code), sizeof(code)};
		uint8_t notes[64];
		size_t nl = tnotes(notes, 0x100000, 4, 0);
		elf = telf(0, 0x100000, &s, 1, notes, nl, &len);
	}
	char *path = twrite_temp(elf, len);
	free(elf);
	return path;
}

static uint64_t rd(const struct vm *vm, uint64_t gpa, int n)
{
	const uint8_t *p = gmem_ptr(&vm->mem, gpa, (uint64_t)n);
	assert_non_null(p);
	return tget(p, n);
}

/* Boots nothing: prepares a VM for `host` and returns the command line the guest would see. */
static char *prepared_cmdline(const struct kvm_host_facts *host, bool linux_kernel,
			      bool no_pvm_defaults)
{
	char *kernel = write_kernel(linux_kernel);
	struct machine_config m;
	machine_config_init(&m);
	assert_int_equal(machine_config_set(&m, "kernel", kernel, "--kernel"), 0);
	assert_int_equal(machine_config_set(&m, "append", "console=ttyS0 quiet", "--append"), 0);
	assert_int_equal(machine_config_set(&m, "memory", "64M", "--memory"), 0);
	struct vm_config cfg = {.machine = &m, .no_pvm_defaults = no_pvm_defaults};
	struct vm vm;
	assert_int_equal(vm_prepare(&vm, &cfg, host), 0);
	uint64_t at;
	if (vm.boot.kind == KERNEL_ELF_PVH)
		at = rd(&vm, vm.boot.start_info_addr + 24, 8); /* cmdline_paddr */
	else
		at = rd(&vm, vm.boot.boot_params_addr + 0x228, 4); /* cmd_line_ptr */
	const char *s = gmem_ptr(&vm.mem, at, 1);
	assert_non_null(s);
	char *copy = strdup(s);
	assert_non_null(copy);
	assert_int_equal(vm.pvm_cmdline, strcmp(copy, m.append) != 0);
	vm_destroy(&vm);
	machine_config_free(&m);
	tremove(kernel);
	return copy;
}

static void linux_on_pvm_host_gets_pvm_defaults(void **state)
{
	char *s = prepared_cmdline(&pvm_host, true, false);
	assert_string_equal(s, "console=ttyS0 quiet " PVM_LINUX_CMDLINE);
	free(s);
}

static void pvh_program_on_pvm_host_gets_its_cmdline(void **state)
{
	char *s = prepared_cmdline(&pvm_host, false, false);
	assert_string_equal(s, "console=ttyS0 quiet");
	free(s);
}

static void no_pvm_defaults_on_pvm_host_is_obeyed(void **state)
{
	char *s = prepared_cmdline(&pvm_host, true, true);
	assert_string_equal(s, "console=ttyS0 quiet");
	free(s);
}

static void linux_on_other_hosts_gets_its_cmdline(void **state)
{
	char *s = prepared_cmdline(&other_host, true, false);
	assert_string_equal(s, "console=ttyS0 quiet");
	free(s);
	s = prepared_cmdline(&other_host, false, false);
	assert_string_equal(s, "console=ttyS0 quiet");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fwait_is_stepped_over),
	    cmocka_unit_test(int3_injects_breakpoint),
	    cmocka_unit_test(others_are_emulated),
	    cmocka_unit_test(stats_count_by_name),
	    cmocka_unit_test(cmdline_gets_pvm_defaults),
	    cmocka_unit_test(linux_on_pvm_host_gets_pvm_defaults),
	    cmocka_unit_test(pvh_program_on_pvm_host_gets_its_cmdline),
	    cmocka_unit_test(no_pvm_defaults_on_pvm_host_is_obeyed),
	    cmocka_unit_test(linux_on_other_hosts_gets_its_cmdline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "test_boot_fixture.h"
#include "unit.h"
#include "vmm/pvm.h"
#include "vmm/vm.h"

#include <stdlib.h>

static void fwait_is_stepped_over(void **state)
{
	const uint8_t insn[] = {0x9b, 0x90};
	unsigned len = 0;
	struct pvm_mem_operand mem;
	assert_int_equal(pvm_fallback_decide(insn, 2, &len, &mem), PVM_FALLBACK_SKIP);
	assert_int_equal(len, 1);
}

static void int3_injects_breakpoint(void **state)
{
	const uint8_t insn[] = {0xcc};
	unsigned len = 0;
	struct pvm_mem_operand mem;
	assert_int_equal(pvm_fallback_decide(insn, 1, &len, &mem), PVM_FALLBACK_INJECT_BP);
	assert_int_equal(len, 1);
}

static void others_are_reported(void **state)
{
	const uint8_t cmpxchg16b[] = {0xf0, 0x48, 0x0f, 0xc7, 0x4d, 0x20};
	const uint8_t xrstor[] = {0x48, 0x0f, 0xae, 0x2f};
	unsigned len = 0;
	struct pvm_mem_operand mem;
	assert_int_equal(pvm_fallback_decide(cmpxchg16b, 6, &len, &mem), PVM_FALLBACK_NONE);
	assert_int_equal(pvm_fallback_decide(xrstor, 4, &len, &mem), PVM_FALLBACK_NONE);
	assert_int_equal(pvm_fallback_decide(xrstor, 0, &len, &mem), PVM_FALLBACK_NONE);
}

/* Registers in encoding order with distinct values: rax=0x100, rcx=0x200, ... */
static const uint64_t regs[16] = {0x100, 0x200, 0x300, 0x400, 0x7000, 0x600, 0x700, 0x800,
				  0x900, 0xa00, 0xb00, 0xc00, 0xd00,  0xe00, 0xf00, 0x1000};

static enum pvm_fallback decode(const uint8_t *insn, unsigned n, unsigned *len, uint64_t *addr)
{
	struct pvm_mem_operand mem;
	enum pvm_fallback f = pvm_fallback_decide(insn, n, len, &mem);
	if (f == PVM_FALLBACK_LDMXCSR || f == PVM_FALLBACK_STMXCSR)
		*addr = pvm_operand_address(&mem, regs, 0x10000, 0xf5000000, 0x65000000);
	return f;
}

static void ldmxcsr_operands_decode(void **state)
{
	unsigned len;
	uint64_t a;
	/* The one seen on a PVM host: ldmxcsr 0x4(%rsp) */
	const uint8_t rsp4[] = {0x0f, 0xae, 0x54, 0x24, 0x04};
	assert_int_equal(decode(rsp4, 5, &len, &a), PVM_FALLBACK_LDMXCSR);
	assert_int_equal(len, 5);
	assert_int_equal(a, 0x7004);
	/* ldmxcsr (%rdi) */
	const uint8_t rdi[] = {0x0f, 0xae, 0x17};
	assert_int_equal(decode(rdi, 3, &len, &a), PVM_FALLBACK_LDMXCSR);
	assert_int_equal(len, 3);
	assert_int_equal(a, 0x800);
	/* ldmxcsr 0x12345678(%rip) */
	const uint8_t rip[] = {0x0f, 0xae, 0x15, 0x78, 0x56, 0x34, 0x12};
	assert_int_equal(decode(rip, 7, &len, &a), PVM_FALLBACK_LDMXCSR);
	assert_int_equal(len, 7);
	assert_int_equal(a, 0x10000 + 0x12345678);
	/* stmxcsr -0x10(%r13,%r12,8) with REX.XB: 41 is B only, 43 is X and B */
	const uint8_t sib[] = {0x43, 0x0f, 0xae, 0x5c, 0xe5, 0xf0};
	assert_int_equal(decode(sib, 6, &len, &a), PVM_FALLBACK_STMXCSR);
	assert_int_equal(len, 6);
	assert_int_equal(a, 0xe00 + 0xd00 * 8 - 0x10);
	/* ldmxcsr %gs:0x40 via SIB without base or index */
	const uint8_t gs[] = {0x65, 0x0f, 0xae, 0x14, 0x25, 0x40, 0x00, 0x00, 0x00};
	assert_int_equal(decode(gs, 9, &len, &a), PVM_FALLBACK_LDMXCSR);
	assert_int_equal(len, 9);
	assert_int_equal(a, 0x65000040);
	/* ldmxcsr 0x100(%r8) : REX.B, mod 2 disp32 */
	const uint8_t r8[] = {0x41, 0x0f, 0xae, 0x90, 0x00, 0x01, 0x00, 0x00};
	assert_int_equal(decode(r8, 8, &len, &a), PVM_FALLBACK_LDMXCSR);
	assert_int_equal(len, 8);
	assert_int_equal(a, 0x900 + 0x100);
}

static void other_0fae_forms_are_not_ours(void **state)
{
	unsigned len;
	uint64_t a;
	const uint8_t xrstor[] = {0x48, 0x0f, 0xae, 0x2f};	  /* /5 */
	const uint8_t lfence[] = {0x0f, 0xae, 0xe8};		  /* register form */
	const uint8_t truncated[] = {0x0f, 0xae, 0x54, 0x24};	  /* disp8 missing */
	const uint8_t truncated_rip[] = {0x0f, 0xae, 0x15, 0x78}; /* disp32 cut */
	assert_int_equal(decode(xrstor, 4, &len, &a), PVM_FALLBACK_NONE);
	assert_int_equal(decode(lfence, 3, &len, &a), PVM_FALLBACK_NONE);
	assert_int_equal(decode(truncated, 4, &len, &a), PVM_FALLBACK_NONE);
	assert_int_equal(decode(truncated_rip, 4, &len, &a), PVM_FALLBACK_NONE);
	assert_int_equal(decode(truncated, 1, &len, &a), PVM_FALLBACK_NONE);
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
	    cmocka_unit_test(others_are_reported),
	    cmocka_unit_test(ldmxcsr_operands_decode),
	    cmocka_unit_test(other_0fae_forms_are_not_ours),
	    cmocka_unit_test(cmdline_gets_pvm_defaults),
	    cmocka_unit_test(linux_on_pvm_host_gets_pvm_defaults),
	    cmocka_unit_test(pvh_program_on_pvm_host_gets_its_cmdline),
	    cmocka_unit_test(no_pvm_defaults_on_pvm_host_is_obeyed),
	    cmocka_unit_test(linux_on_other_hosts_gets_its_cmdline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

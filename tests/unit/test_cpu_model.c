/* --cpu: the grammar (config/cpu_config.c) and the model applied to a CPUID table as KVM gives
 * it (machine/cpuid.c cpuid_shape), on a synthetic host with AVX, AVX2, SMEP and XSAVE. */
#include "unit.h"
#include "config/cpu_config.h"
#include "machine/vm.h"

#include <stdlib.h>
#include <string.h>

static void parse_and_format(void **state)
{
	struct cpu_config c;
	char text[256];
	assert_int_equal(cpu_config_parse("host", &c, "--cpu"), 0);
	assert_true(cpu_config_is_default(&c));
	assert_int_equal(cpu_config_parse("base,avx=on,-sse4_1,pni=off,+sse4.1", &c, "--cpu"), 0);
	cpu_config_format(&c, text, sizeof(text));
	assert_string_equal(text, "base,+avx,-sse3,+sse4.1");
	assert_int_equal(cpu_config_parse("max,-tsc_deadline_timer,+lahf_lm", &c, "--cpu"), 0);
	cpu_config_format(&c, text, sizeof(text));
	assert_string_equal(text, "max,-tsc-deadline,+lahf-lm");
	assert_false(cpu_config_is_default(&c));
	assert_int_equal(cpu_config_parse("max,+nosuch", &c, "--cpu"), -1);
	assert_int_equal(cpu_config_parse("qemu64", &c, "--cpu"), -1);
	assert_int_equal(cpu_config_parse("max,avx", &c, "--cpu"), -1);
	assert_int_equal(cpu_config_parse("max,avx=yes", &c, "--cpu"), -1);
	assert_int_equal(cpu_config_parse("", &c, "--cpu"), -1);
	/* The last good value stays. */
	cpu_config_format(&c, text, sizeof(text));
	assert_string_equal(text, "max,-tsc-deadline,+lahf-lm");
	/* Every feature is found by its name and its alias, at its own place. */
	for (size_t i = 0; i < cpu_nfeatures; i++) {
		assert_int_equal(cpu_feature_find(cpu_features[i].name), (int)i);
		if (cpu_features[i].alias)
			assert_int_equal(cpu_feature_find(cpu_features[i].alias), (int)i);
		for (size_t j = 0; j < i; j++)
			assert_false(cpu_features[i].leaf == cpu_features[j].leaf &&
				     cpu_features[i].subleaf == cpu_features[j].subleaf &&
				     cpu_features[i].reg == cpu_features[j].reg &&
				     cpu_features[i].bit == cpu_features[j].bit);
	}
}

#define NENT 8
enum { E0, E1, E7, ED0, ED1, ED2, EX0, EX1 };

static struct kvm_cpuid2 *host_table(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + NENT * sizeof(struct kvm_cpuid_entry2));
	assert_non_null(c);
	c->nent = NENT;
	struct kvm_cpuid_entry2 *e = c->entries;
	e[E0] = (struct kvm_cpuid_entry2){.function = 0, .eax = 0xd};
	memcpy(&e[E0].ebx, "Genu", 4);
	memcpy(&e[E0].edx, "ineI", 4);
	memcpy(&e[E0].ecx, "ntel", 4);
	/* sse3 ssse3 cx16 sse4.1 sse4.2 x2apic popcnt aes xsave avx hypervisor (as supported_cpuid
	 * adds it); fpu...sse2 */
	e[E1] = (struct kvm_cpuid_entry2){.function = 1,
					  .ecx = 1u << 0 | 1u << 9 | 1u << 13 | 1u << 19 |
						 1u << 20 | 1u << 21 | 1u << 23 | 1u << 25 |
						 1u << 26 | 1u << 28 | 1u << 31,
					  .edx = 0x07ffffffu};
	e[E7] = (struct kvm_cpuid_entry2){.function = 7,
					  .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					  .ebx = 1u << 5 | 1u << 7 | 1u << 9};
	e[ED0] = (struct kvm_cpuid_entry2){
	    .function = 0xd, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 7, .ecx = 832};
	e[ED1] = (struct kvm_cpuid_entry2){
	    .function = 0xd, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 1};
	e[ED2] = (struct kvm_cpuid_entry2){.function = 0xd,
					   .index = 2,
					   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					   .eax = 256,
					   .ebx = 576};
	e[EX0] = (struct kvm_cpuid_entry2){.function = 0x80000000, .eax = 0x80000001};
	e[EX1] = (struct kvm_cpuid_entry2){.function = 0x80000001,
					   .ecx = 1u << 0 | 1u << 5,
					   .edx = 1u << 11 | 1u << 20 | 1u << 26 | 1u << 29};
	return c;
}

static struct kvm_cpuid2 *shaped(const char *model, int expect)
{
	struct cpu_config cpu;
	assert_int_equal(cpu_config_parse(model, &cpu, "--cpu"), 0);
	struct kvm_cpuid2 *host = host_table(), *c = host_table();
	assert_int_equal(cpuid_shape(c, host, &cpu, false), expect);
	free(host);
	return c;
}

static void host_model_is_kvms(void **state)
{
	struct kvm_cpuid2 *host = host_table(), *c = shaped("max", 0);
	assert_memory_equal(c->entries, host->entries, NENT * sizeof(struct kvm_cpuid_entry2));
	free(c);
	free(host);
}

static void removing_avx_drops_the_ymm_state(void **state)
{
	struct kvm_cpuid2 *c = shaped("max,-avx,-smep", 0);
	assert_int_equal(c->entries[E1].ecx >> 28 & 1, 0);
	assert_int_equal(c->entries[E7].ebx, 1u << 5 | 1u << 9); /* avx2 stays, as in QEMU */
	assert_int_equal(c->entries[ED0].eax, 3);
	assert_int_equal(c->entries[ED0].ecx, 576);
	assert_int_equal(c->entries[ED2].eax | c->entries[ED2].ebx, 0);
	assert_memory_equal(&c->entries[E0].ebx, "Genu", 4); /* the vendor stays */
	free(c);
	c = shaped("max,-xsave", 0);
	assert_int_equal(c->entries[ED0].eax | c->entries[ED0].ecx | c->entries[ED1].eax, 0);
	free(c);
}

static void base_model(void **state)
{
	struct kvm_cpuid2 *c = shaped("base", 0);
	uint32_t base_ecx =
	    1u << 0 | 1u << 9 | 1u << 13 | 1u << 19 | 1u << 20 | 1u << 21 | 1u << 23 | 1u << 31;
	assert_int_equal(c->entries[E1].ecx, base_ecx);
	assert_int_equal(c->entries[E1].edx,
			 0x07ffffffu & ~(1u << 10 | 1u << 18 | 1u << 20 | 1u << 21 | 1u << 22));
	assert_int_equal(c->entries[E7].ebx, 0);
	assert_int_equal(c->entries[ED0].eax | c->entries[ED1].eax, 0); /* no xsave */
	assert_int_equal(c->entries[EX1].ecx, 1u << 0);			/* lahf-lm, not abm */
	assert_int_equal(c->entries[EX1].edx, 1u << 11 | 1u << 20 | 1u << 29);
	free(c);
	c = shaped("base,+xsave,+avx,+aes,-x2apic", 0);
	assert_int_equal(c->entries[E1].ecx,
			 (base_ecx & ~(1u << 21)) | 1u << 25 | 1u << 26 | 1u << 28);
	assert_int_equal(c->entries[ED0].eax, 7);
	assert_int_equal(c->entries[ED0].ecx, 832);
	free(c);
}

static void a_feature_kvm_lacks_is_refused(void **state)
{
	free(shaped("base,+avx512f", -1));
	free(shaped("max,+rdrand", -1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_and_format),
	    cmocka_unit_test(host_model_is_kvms),
	    cmocka_unit_test(removing_avx_drops_the_ymm_state),
	    cmocka_unit_test(base_model),
	    cmocka_unit_test(a_feature_kvm_lacks_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

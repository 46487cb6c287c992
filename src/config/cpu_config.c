/* --cpu: the model's grammar and the feature names (cpu_config.h). */
#include "config/cpu_config.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L1   0x1u
#define L7   0x7u
#define LD   0xdu
#define LX1  0x80000001u
#define EAX_ CPUID_EAX
#define EBX_ CPUID_EBX
#define ECX_ CPUID_ECX
#define EDX_ CPUID_EDX

/* Bits from the SDM (vol. 2A, CPUID) and AMD's APM (vol. 3, appendix E); names as QEMU 7.2's
 * feature_word_info spells them. Dynamic bits (osxsave, ospke) and the AMD copies of leaf 1's
 * EDX in 0x80000001 are not named: KVM or the model keeps them right. */
const struct cpu_feature cpu_features[] = {
    /* leaf 1, EDX */
    {"fpu", NULL, L1, 0, EDX_, 0, true},
    {"vme", NULL, L1, 0, EDX_, 1, true},
    {"de", NULL, L1, 0, EDX_, 2, true},
    {"pse", NULL, L1, 0, EDX_, 3, true},
    {"tsc", NULL, L1, 0, EDX_, 4, true},
    {"msr", NULL, L1, 0, EDX_, 5, true},
    {"pae", NULL, L1, 0, EDX_, 6, true},
    {"mce", NULL, L1, 0, EDX_, 7, true},
    {"cx8", NULL, L1, 0, EDX_, 8, true},
    {"apic", NULL, L1, 0, EDX_, 9, true},
    {"sep", NULL, L1, 0, EDX_, 11, true},
    {"mtrr", NULL, L1, 0, EDX_, 12, true},
    {"pge", NULL, L1, 0, EDX_, 13, true},
    {"mca", NULL, L1, 0, EDX_, 14, true},
    {"cmov", NULL, L1, 0, EDX_, 15, true},
    {"pat", NULL, L1, 0, EDX_, 16, true},
    {"pse36", NULL, L1, 0, EDX_, 17, true},
    {"clflush", NULL, L1, 0, EDX_, 19, true},
    {"mmx", NULL, L1, 0, EDX_, 23, true},
    {"fxsr", NULL, L1, 0, EDX_, 24, true},
    {"sse", NULL, L1, 0, EDX_, 25, true},
    {"sse2", NULL, L1, 0, EDX_, 26, true},
    {"ss", NULL, L1, 0, EDX_, 27, false},
    {"ht", NULL, L1, 0, EDX_, 28, false},
    /* leaf 1, ECX */
    {"sse3", "pni", L1, 0, ECX_, 0, true},
    {"pclmulqdq", "pclmuldq", L1, 0, ECX_, 1, false},
    {"monitor", NULL, L1, 0, ECX_, 3, false},
    {"vmx", NULL, L1, 0, ECX_, 5, false},
    {"ssse3", NULL, L1, 0, ECX_, 9, true},
    {"fma", NULL, L1, 0, ECX_, 12, false},
    {"cx16", NULL, L1, 0, ECX_, 13, true},
    {"pdcm", NULL, L1, 0, ECX_, 15, false},
    {"pcid", NULL, L1, 0, ECX_, 17, false},
    {"sse4.1", NULL, L1, 0, ECX_, 19, true},
    {"sse4.2", NULL, L1, 0, ECX_, 20, true},
    {"x2apic", NULL, L1, 0, ECX_, 21, true},
    {"movbe", NULL, L1, 0, ECX_, 22, false},
    {"popcnt", NULL, L1, 0, ECX_, 23, true},
    {"tsc-deadline", "tsc_deadline_timer", L1, 0, ECX_, 24, false},
    {"aes", NULL, L1, 0, ECX_, 25, false},
    {"xsave", NULL, L1, 0, ECX_, 26, false},
    {"avx", NULL, L1, 0, ECX_, 28, false},
    {"f16c", NULL, L1, 0, ECX_, 29, false},
    {"rdrand", NULL, L1, 0, ECX_, 30, false},
    {"hypervisor", NULL, L1, 0, ECX_, 31, true},
    /* leaf 7 subleaf 0, EBX */
    {"fsgsbase", NULL, L7, 0, EBX_, 0, false},
    {"tsc-adjust", NULL, L7, 0, EBX_, 1, false},
    {"bmi1", NULL, L7, 0, EBX_, 3, false},
    {"hle", NULL, L7, 0, EBX_, 4, false},
    {"avx2", NULL, L7, 0, EBX_, 5, false},
    {"smep", NULL, L7, 0, EBX_, 7, false},
    {"bmi2", NULL, L7, 0, EBX_, 8, false},
    {"erms", NULL, L7, 0, EBX_, 9, false},
    {"invpcid", NULL, L7, 0, EBX_, 10, false},
    {"rtm", NULL, L7, 0, EBX_, 11, false},
    {"mpx", NULL, L7, 0, EBX_, 14, false},
    {"avx512f", NULL, L7, 0, EBX_, 16, false},
    {"avx512dq", NULL, L7, 0, EBX_, 17, false},
    {"rdseed", NULL, L7, 0, EBX_, 18, false},
    {"adx", NULL, L7, 0, EBX_, 19, false},
    {"smap", NULL, L7, 0, EBX_, 20, false},
    {"avx512ifma", NULL, L7, 0, EBX_, 21, false},
    {"clflushopt", NULL, L7, 0, EBX_, 23, false},
    {"clwb", NULL, L7, 0, EBX_, 24, false},
    {"avx512cd", NULL, L7, 0, EBX_, 28, false},
    {"sha-ni", "sha_ni", L7, 0, EBX_, 29, false},
    {"avx512bw", NULL, L7, 0, EBX_, 30, false},
    {"avx512vl", NULL, L7, 0, EBX_, 31, false},
    /* leaf 7 subleaf 0, ECX */
    {"avx512vbmi", NULL, L7, 0, ECX_, 1, false},
    {"umip", NULL, L7, 0, ECX_, 2, false},
    {"pku", NULL, L7, 0, ECX_, 3, false},
    {"waitpkg", NULL, L7, 0, ECX_, 5, false},
    {"avx512vbmi2", NULL, L7, 0, ECX_, 6, false},
    {"gfni", NULL, L7, 0, ECX_, 8, false},
    {"vaes", NULL, L7, 0, ECX_, 9, false},
    {"vpclmulqdq", NULL, L7, 0, ECX_, 10, false},
    {"avx512vnni", NULL, L7, 0, ECX_, 11, false},
    {"avx512bitalg", NULL, L7, 0, ECX_, 12, false},
    {"avx512-vpopcntdq", NULL, L7, 0, ECX_, 14, false},
    {"la57", NULL, L7, 0, ECX_, 16, false},
    {"rdpid", NULL, L7, 0, ECX_, 22, false},
    {"movdiri", NULL, L7, 0, ECX_, 27, false},
    {"movdir64b", NULL, L7, 0, ECX_, 28, false},
    /* leaf 7 subleaf 0, EDX */
    {"fsrm", NULL, L7, 0, EDX_, 4, false},
    {"md-clear", NULL, L7, 0, EDX_, 10, false},
    {"serialize", NULL, L7, 0, EDX_, 14, false},
    {"spec-ctrl", NULL, L7, 0, EDX_, 26, false},
    {"stibp", NULL, L7, 0, EDX_, 27, false},
    {"arch-capabilities", NULL, L7, 0, EDX_, 29, false},
    {"ssbd", NULL, L7, 0, EDX_, 31, false},
    /* leaf 0xd subleaf 1, EAX */
    {"xsaveopt", NULL, LD, 1, EAX_, 0, false},
    {"xsavec", NULL, LD, 1, EAX_, 1, false},
    {"xgetbv1", NULL, LD, 1, EAX_, 2, false},
    {"xsaves", NULL, LD, 1, EAX_, 3, false},
    /* leaf 0x80000001, ECX */
    {"lahf-lm", "lahf_lm", LX1, 0, ECX_, 0, true},
    {"cmp-legacy", NULL, LX1, 0, ECX_, 1, false},
    {"svm", NULL, LX1, 0, ECX_, 2, false},
    {"cr8legacy", NULL, LX1, 0, ECX_, 4, false},
    {"abm", NULL, LX1, 0, ECX_, 5, false},
    {"sse4a", NULL, LX1, 0, ECX_, 6, false},
    {"misalignsse", NULL, LX1, 0, ECX_, 7, false},
    {"3dnowprefetch", NULL, LX1, 0, ECX_, 8, false},
    {"xop", NULL, LX1, 0, ECX_, 11, false},
    {"fma4", NULL, LX1, 0, ECX_, 16, false},
    {"tbm", NULL, LX1, 0, ECX_, 21, false},
    {"topoext", NULL, LX1, 0, ECX_, 22, false},
    /* leaf 0x80000001, EDX */
    {"syscall", NULL, LX1, 0, EDX_, 11, true},
    {"nx", "xd", LX1, 0, EDX_, 20, true},
    {"mmxext", NULL, LX1, 0, EDX_, 22, false},
    {"fxsr-opt", "ffxsr", LX1, 0, EDX_, 25, false},
    {"pdpe1gb", NULL, LX1, 0, EDX_, 26, false},
    {"rdtscp", NULL, LX1, 0, EDX_, 27, false},
    {"lm", "i64", LX1, 0, EDX_, 29, true},
};

const size_t cpu_nfeatures = sizeof(cpu_features) / sizeof(cpu_features[0]);

static const char *const model_names[] = {"host", "max", "base"};

/* '_', '-' and '.' are one character in feature names, as in QEMU. */
static bool name_equal(const char *a, const char *b)
{
	for (;; a++, b++) {
		char ca = (*a == '_' || *a == '.') ? '-' : *a;
		char cb = (*b == '_' || *b == '.') ? '-' : *b;
		if (ca != cb)
			return false;
		if (!ca)
			return true;
	}
}

int cpu_feature_find(const char *name)
{
	for (size_t i = 0; i < cpu_nfeatures; i++)
		if (name_equal(name, cpu_features[i].name) ||
		    (cpu_features[i].alias && name_equal(name, cpu_features[i].alias)))
			return (int)i;
	return -1;
}

static int add_change(struct cpu_config *c, int feature, bool on, const char *ctx)
{
	for (unsigned i = 0; i < c->nchanges; i++)
		if (c->changes[i].feature == feature) {
			memmove(&c->changes[i], &c->changes[i + 1],
				(c->nchanges - i - 1) * sizeof(c->changes[0]));
			c->nchanges--;
			break;
		}
	if (c->nchanges == CPU_MAX_CHANGES)
		return kite_error("%s: more than %d features named", ctx, CPU_MAX_CHANGES);
	c->changes[c->nchanges].feature = (uint16_t)feature;
	c->changes[c->nchanges].on = on;
	c->nchanges++;
	return 0;
}

/* One word after the model: +FEAT, -FEAT, FEAT=on or FEAT=off. */
static int parse_word(struct cpu_config *c, char *word, const char *ctx)
{
	bool on;
	char *name = word;
	char *eq = strchr(word, '=');
	if (*word == '+' || *word == '-') {
		on = *word == '+';
		name = word + 1;
	} else if (eq) {
		*eq = '\0';
		if (!strcmp(eq + 1, "on"))
			on = true;
		else if (!strcmp(eq + 1, "off"))
			on = false;
		else
			return kite_error("%s: '%s=%s': a feature is on or off", ctx, word, eq + 1);
	} else {
		return kite_error("%s: '%s' is not +FEATURE, -FEATURE or FEATURE=on|off", ctx,
				  word);
	}
	int f = cpu_feature_find(name);
	if (f < 0)
		return kite_error("%s: unknown CPU feature '%s'", ctx, name);
	return add_change(c, f, on, ctx);
}

int cpu_config_parse(const char *text, struct cpu_config *out, const char *ctx)
{
	struct cpu_config c = {0};
	char *copy = strdup(text);
	if (!copy)
		return kite_error("out of memory");
	char *save = NULL;
	char *model = strtok_r(copy, ",", &save);
	int r = -1;
	bool found = false;
	for (size_t i = 0; model && i < sizeof(model_names) / sizeof(model_names[0]); i++)
		if (!strcmp(model, model_names[i])) {
			c.model = (enum cpu_model)i;
			found = true;
		}
	if (!found) {
		kite_error("%s: '%s' is not a CPU model: host, max or base", ctx,
			   model ? model : "");
		goto out;
	}
	for (char *w = strtok_r(NULL, ",", &save); w; w = strtok_r(NULL, ",", &save))
		if (parse_word(&c, w, ctx) < 0)
			goto out;
	*out = c;
	r = 0;
out:
	free(copy);
	return r;
}

void cpu_config_format(const struct cpu_config *c, char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "%s", model_names[c->model]);
	for (unsigned i = 0; i < c->nchanges && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, ",%c%s", c->changes[i].on ? '+' : '-',
				      cpu_features[c->changes[i].feature].name);
}

bool cpu_config_is_default(const struct cpu_config *c)
{
	return c->model == CPU_MODEL_HOST && c->nchanges == 0;
}

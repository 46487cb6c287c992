/* cpuid: what the VMM's CPU model shows. Ring 0 executes CPUID (on a KVM-PVM host ring 3's
 * CPUID would not be the VMM's) and prints the vendor and, for each feature of the table below
 * (QEMU's names, bits from the SDM and AMD's APM), `cpuid: NAME=0|1`. Then it checks
 * on=F1,F2,... and off=F3,... from the command line against them, and that leaf 0xd offers the
 * YMM state exactly when avx is there (with xsave). The host compares the printed lines between
 * VMMs and models (tests/integration/test_cpu_model.py). */
#include "libguest.h"

const char guest_name[] = "cpuid";

enum { EAX, EBX, ECX, EDX };

static const struct {
	const char *name;
	uint32_t leaf, sub;
	int reg, bit;
} features[] = {
    {"sse3", 1, 0, ECX, 0},
    {"pclmulqdq", 1, 0, ECX, 1},
    {"ssse3", 1, 0, ECX, 9},
    {"fma", 1, 0, ECX, 12},
    {"cx16", 1, 0, ECX, 13},
    {"pcid", 1, 0, ECX, 17},
    {"sse4.1", 1, 0, ECX, 19},
    {"sse4.2", 1, 0, ECX, 20},
    {"x2apic", 1, 0, ECX, 21},
    {"movbe", 1, 0, ECX, 22},
    {"popcnt", 1, 0, ECX, 23},
    {"tsc-deadline", 1, 0, ECX, 24},
    {"aes", 1, 0, ECX, 25},
    {"xsave", 1, 0, ECX, 26},
    {"avx", 1, 0, ECX, 28},
    {"f16c", 1, 0, ECX, 29},
    {"rdrand", 1, 0, ECX, 30},
    {"hypervisor", 1, 0, ECX, 31},
    {"sse", 1, 0, EDX, 25},
    {"sse2", 1, 0, EDX, 26},
    {"apic", 1, 0, EDX, 9},
    {"fsgsbase", 7, 0, EBX, 0},
    {"bmi1", 7, 0, EBX, 3},
    {"avx2", 7, 0, EBX, 5},
    {"smep", 7, 0, EBX, 7},
    {"bmi2", 7, 0, EBX, 8},
    {"erms", 7, 0, EBX, 9},
    {"invpcid", 7, 0, EBX, 10},
    {"avx512f", 7, 0, EBX, 16},
    {"rdseed", 7, 0, EBX, 18},
    {"adx", 7, 0, EBX, 19},
    {"smap", 7, 0, EBX, 20},
    {"clflushopt", 7, 0, EBX, 23},
    {"sha-ni", 7, 0, EBX, 29},
    {"umip", 7, 0, ECX, 2},
    {"pku", 7, 0, ECX, 3},
    {"rdpid", 7, 0, ECX, 22},
    {"xsaveopt", 0xd, 1, EAX, 0},
    {"xsavec", 0xd, 1, EAX, 1},
    {"lahf-lm", 0x80000001, 0, ECX, 0},
    {"abm", 0x80000001, 0, ECX, 5},
    {"syscall", 0x80000001, 0, EDX, 11},
    {"nx", 0x80000001, 0, EDX, 20},
    {"pdpe1gb", 0x80000001, 0, EDX, 26},
    {"rdtscp", 0x80000001, 0, EDX, 27},
    {"lm", 0x80000001, 0, EDX, 29},
};

#define NFEATURES (sizeof(features) / sizeof(features[0]))

static int values[NFEATURES];

static uint32_t max_leaf(uint32_t base)
{
	uint32_t a, b, c, d;
	cpuid(base, 0, &a, &b, &c, &d);
	return a;
}

static int feature_value(size_t i)
{
	uint32_t r[4];
	uint32_t top = max_leaf(features[i].leaf & 0x80000000u);
	if (features[i].leaf > top)
		return 0;
	cpuid(features[i].leaf, features[i].sub, &r[0], &r[1], &r[2], &r[3]);
	return (int)(r[features[i].reg] >> features[i].bit & 1);
}

static int find(const char *name, size_t len)
{
	for (size_t i = 0; i < NFEATURES; i++)
		if (strlen(features[i].name) == len && !strncmp(features[i].name, name, len))
			return (int)i;
	return -1;
}

/* KEY=F1,F2,...: each named feature must read as `want`. */
static void check_list(const char *key, int want)
{
	char list[512];
	if (!cmdline_get(key, list, sizeof(list)))
		return;
	for (const char *p = list; *p;) {
		size_t n = 0;
		while (p[n] && p[n] != ',')
			n++;
		int i = find(p, n);
		if (i < 0)
			report(false, "feature %.*s is in the program's table", (int)n, p);
		else
			report(values[i] == want, "%s is %s", features[i].name,
			       want ? "on" : "off");
		p += n;
		if (*p == ',')
			p++;
	}
}

void guest_main(void)
{
	uint32_t a, b, c, d;
	char vendor[13];
	cpuid(0, 0, &a, &b, &c, &d);
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
	vendor[12] = '\0';
	printf("cpuid: vendor %s\n", vendor);
	for (size_t i = 0; i < NFEATURES; i++) {
		values[i] = feature_value(i);
		printf("cpuid: %s=%d\n", features[i].name, values[i]);
	}
	check_list("on", 1);
	check_list("off", 0);
	int xsave = values[find("xsave", 5)], avx = values[find("avx", 3)];
	if (xsave && max_leaf(0) >= 0xd) {
		cpuid(0xd, 0, &a, &b, &c, &d);
		printf("cpuid: xcr0 components 0x%x, save area %u bytes\n", a, c);
		report((int)(a >> 2 & 1) == avx,
		       "leaf 0xd offers YMM state exactly when avx is on");
	}
}

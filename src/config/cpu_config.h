/* The vCPU model: `--cpu host|max|base[,+FEAT|-FEAT|FEAT=on|off]...`, as QEMU's -cpu takes it
 * for what tests check. The vendor and everything not named stay as KVM_GET_SUPPORTED_CPUID
 * gives them; the machine (machine/cpuid.c) applies the model:
 *   host, max  every feature this host's KVM supports (the two are the same under KVM, as in
 *              QEMU), plus hypervisor and, when KVM has the capability, tsc-deadline;
 *   base       a conservative baseline: the x86-64-v2 level of the x86-64 psABI (the baseline
 *              CPU features of x86-64, then cx16, lahf-lm, popcnt, sse3, ssse3, sse4.1, sse4.2)
 *              plus x2apic and hypervisor, which every KVM guest can have; nothing of leaf 7.
 * Then each named feature in order: -FEAT (FEAT=off) clears it, +FEAT (FEAT=on) sets it, which
 * the machine refuses at start when this host's KVM cannot give it. Names are QEMU's (Linux's
 * /proc/cpuinfo spelling too: '_', '-' and '.' are the same), see cpu_features[]. */
#ifndef KITE_CONFIG_CPU_CONFIG_H
#define KITE_CONFIG_CPU_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cpu_model { CPU_MODEL_HOST = 0, CPU_MODEL_MAX, CPU_MODEL_BASE };
enum cpuid_reg { CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX };

struct cpu_feature {
	const char *name;  /* QEMU's */
	const char *alias; /* another spelling QEMU or Linux uses, or NULL */
	uint32_t leaf, subleaf;
	uint8_t reg; /* enum cpuid_reg */
	uint8_t bit;
	bool base; /* in the `base` model */
};

extern const struct cpu_feature cpu_features[];
extern const size_t cpu_nfeatures;

#define CPU_MAX_CHANGES 64

struct cpu_config {
	enum cpu_model model;
	unsigned nchanges;
	struct {
		uint16_t feature; /* index in cpu_features */
		bool on;
	} changes[CPU_MAX_CHANGES]; /* in order; a feature named twice: its last word */
};

/* The feature called NAME (or its alias, '_' '-' '.' alike), or -1. */
int cpu_feature_find(const char *name);
/* Parses the option's text into *c. Returns 0, or -1 with `kite: error: CTX: ...`. */
int cpu_config_parse(const char *text, struct cpu_config *c, const char *ctx);
/* The canonical text ("max,-avx,+x2apic"); "host" for the default. */
void cpu_config_format(const struct cpu_config *c, char *buf, size_t size);
/* The default model with nothing changed (a definition then has no "cpu" field). */
bool cpu_config_is_default(const struct cpu_config *c);

#endif

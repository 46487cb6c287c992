#include "kvm/pvm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pvm_fallback pvm_fallback_decide(const uint8_t *insn, unsigned n, unsigned *len)
{
	if (n < 1)
		return PVM_FALLBACK_NONE;
	if (insn[0] == 0x9b) { /* fwait */
		*len = 1;
		return PVM_FALLBACK_SKIP;
	}
	if (insn[0] == 0xcc) { /* int3 */
		*len = 1;
		return PVM_FALLBACK_INJECT_BP;
	}
	return PVM_FALLBACK_EMULATE;
}

static void stats_count_n(struct pvm_stats *s, const char *name, uint64_t n)
{
	s->total += n;
	for (int i = 0; i < PVM_STATS_NAMES; i++) {
		if (!s->by_name[i].n) {
			snprintf(s->by_name[i].name, sizeof(s->by_name[i].name), "%s", name);
			s->by_name[i].n = n;
			return;
		}
		if (strcmp(s->by_name[i].name, name) == 0) {
			s->by_name[i].n += n;
			return;
		}
	}
	s->other += n;
}

void pvm_stats_count(struct pvm_stats *s, const char *name)
{
	stats_count_n(s, name, 1);
}

void pvm_stats_add(struct pvm_stats *dst, const struct pvm_stats *src)
{
	for (int i = 0; i < PVM_STATS_NAMES && src->by_name[i].n; i++)
		stats_count_n(dst, src->by_name[i].name, src->by_name[i].n);
	dst->other += src->other;
	dst->total += src->other;
}

void pvm_stats_format(const struct pvm_stats *s, char *buf, size_t len)
{
	size_t off = 0;
	if (len)
		buf[0] = 0;
	for (int i = 0; i < PVM_STATS_NAMES && s->by_name[i].n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s %llu", i ? ", " : "",
					s->by_name[i].name, (unsigned long long)s->by_name[i].n);
	if (s->other && off < len)
		snprintf(buf + off, len - off, "%sother %llu", off ? ", " : "",
			 (unsigned long long)s->other);
}

char *pvm_cmdline(const char *append, int add)
{
	const char *base = append ? append : "";
	char *out;
	int r;
	if (add)
		r = asprintf(&out, "%s%s%s", base, *base ? " " : "", PVM_LINUX_CMDLINE);
	else
		r = asprintf(&out, "%s", base);
	return r < 0 ? NULL : out;
}

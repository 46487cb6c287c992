#include "vmm/pvm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pvm_fallback pvm_fallback_decide(const uint8_t *insn, unsigned n, unsigned *len)
{
	if (n < 1)
		return PVM_FALLBACK_NONE;
	switch (insn[0]) {
	case 0x9b: /* fwait */
		*len = 1;
		return PVM_FALLBACK_SKIP;
	case 0xcc: /* int3 */
		*len = 1;
		return PVM_FALLBACK_INJECT_BP;
	default:
		return PVM_FALLBACK_NONE;
	}
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

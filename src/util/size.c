#include "util/size.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>

static int suffix_shift(const char *s, unsigned *shift, int *have)
{
	static const char units[] = "BKMGTPE";
	*have = 0;
	if (*s == '\0')
		return 0;
	for (unsigned i = 0; units[i]; i++) {
		if (toupper((unsigned char)*s) == units[i]) {
			*shift = 10 * i;
			*have = 1;
			s++;
			if (i > 0 && (strcasecmp(s, "iB") == 0 || strcasecmp(s, "B") == 0))
				return 0;
			return *s == '\0' ? 0 : -1;
		}
	}
	return -1;
}

int parse_size(const char *s, uint64_t default_unit, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	/* hexadecimal as QEMU takes it: "0x10000"; no fraction */
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isxdigit((unsigned char)s[2]);
	errno = 0;
	char *end;
	uint64_t whole = strtoull(s, &end, hex ? 16 : 10);
	if (errno)
		return -1;
	double frac = 0;
	if (*end == '.' && !hex) {
		char *fend;
		frac = strtod(end, &fend);
		if (fend == end + 1)
			return -1;
		end = fend;
	}
	unsigned shift = 0;
	int have;
	if (suffix_shift(end, &shift, &have))
		return -1;
	uint64_t unit = have ? (1ULL << shift) : default_unit;
	if (whole != 0 && unit > UINT64_MAX / whole)
		return -1;
	uint64_t v = whole * unit;
	if (frac > 0) {
		double extra = frac * (double)unit;
		if (v + (uint64_t)extra < v)
			return -1;
		v += (uint64_t)llround(extra);
	}
	*out = v;
	return 0;
}

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

/* 1024^n for QEMU's suffix letters, 0 for any other character. */
static uint64_t qemu_suffix_mul(char c)
{
	static const char letters[] = "bkmgtpe";
	for (unsigned i = 0; letters[i]; i++)
		if (tolower((unsigned char)c) == letters[i])
			return 1ull << (10 * i);
	return 0;
}

/* The integral part: strtoull's syntax, a '-' refused. */
static int qemu_integral(const char *s, char **end, int base, uint64_t *v)
{
	errno = 0;
	*v = strtoull(s, end, base);
	if (*end == s)
		return -EINVAL;
	for (const char *p = s; p < *end; p++)
		if (*p == '-')
			return -EINVAL;
	if (errno == ERANGE)
		return **end ? -EINVAL : -ERANGE; /* as QEMU: junk after it outranks */
	return 0;
}

/* `whole` and `frac` (a fraction in 1/2^64 units) times `mul`, QEMU's rounding. */
static int qemu_scale(uint64_t whole, uint64_t frac, uint64_t mul, uint64_t *out)
{
	unsigned __int128 r = (unsigned __int128)whole * mul;
	unsigned __int128 f = (unsigned __int128)frac * mul;
	r += (uint64_t)(f >> 64);
	r += (uint64_t)f >> 63; /* half rounds up */
	if (r >> 64)
		return -ERANGE;
	*out = (uint64_t)r;
	return 0;
}

int parse_size_qemu(const char *s, uint64_t *out)
{
	char *end;
	uint64_t whole, frac = 0;
	int r = qemu_integral(s, &end, 10, &whole);
	if (r < 0)
		return r;
	if (whole == 0 && (*end == 'x' || *end == 'X')) {
		if ((r = qemu_integral(s, &end, 16, &whole)) < 0)
			return r;
		if (*end == '.' || qemu_suffix_mul(*end))
			return -EINVAL;
	} else if (*end == '.') {
		char *fend;
		errno = 0;
		double f = strtod(end, &fend);
		if (fend == end || errno || !isfinite(f)) {
			fend = end + 1; /* "1.k": no digits after the point */
		} else {
			for (const char *p = end; p < fend; p++)
				if (*p == 'e' || *p == 'E')
					return -EINVAL;
			frac = (uint64_t)(f * 0x1p64);
		}
		end = fend;
	}
	uint64_t mul = qemu_suffix_mul(*end);
	if (mul)
		end++;
	else
		mul = 1;
	if (*end)
		return -EINVAL;
	if (mul == 1 && frac)
		return -EINVAL;
	return qemu_scale(whole, frac, mul, out);
}

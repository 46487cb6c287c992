#include "config/option_text.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

char *option_next_item(const char **p)
{
	const char *s = *p;
	char *out = malloc(strlen(s) + 1), *o = out;
	if (!out) {
		kite_error("out of memory");
		return NULL;
	}
	while (*s) {
		if (*s == ',') {
			if (s[1] != ',')
				break;
			s++; /* ",," */
		}
		*o++ = *s++;
	}
	*o = '\0';
	*p = *s ? s + 1 : s;
	return out;
}

int option_parse_bool(const char *value, bool *out, const char *ctx)
{
	if (!value || !strcmp(value, "on"))
		*out = true;
	else if (!strcmp(value, "off"))
		*out = false;
	else
		return kite_error("%s: '%s' is not on or off", ctx, value);
	return 0;
}

int option_append(char **spec, const char *key, const char *value)
{
	size_t have = *spec ? strlen(*spec) : 0;
	size_t need = have + (key ? strlen(key) + 2 : 0) + 2 * strlen(value) + 1;
	char *s = realloc(*spec, need);
	if (!s) {
		free(*spec);
		*spec = NULL;
		return kite_error("out of memory");
	}
	char *o = s + have;
	if (key) {
		*o++ = ',';
		o = stpcpy(o, key);
		*o++ = '=';
	}
	for (const char *v = value; *v; v++) {
		*o++ = *v;
		if (*v == ',')
			*o++ = ',';
	}
	*o = '\0';
	*spec = s;
	return 0;
}

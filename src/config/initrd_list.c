#include "config/initrd_list.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* One module's string from `p` up to a single comma or the end; ",," is a comma. Sets *next to
 * the character after the separating comma, or NULL at the end. */
static char *take_module(const char *p, const char **next)
{
	size_t len = strlen(p);
	char *s = malloc(len + 1);
	if (!s)
		return NULL;
	size_t n = 0;
	*next = NULL;
	while (*p) {
		if (*p == ',' && p[1] == ',') {
			s[n++] = ',';
			p += 2;
		} else if (*p == ',') {
			*next = p + 1;
			break;
		} else {
			s[n++] = *p++;
		}
	}
	s[n] = '\0';
	return s;
}

void initrd_list_free(struct initrd_module *l, int n)
{
	for (int i = 0; i < n; i++) {
		free(l[i].string);
		free(l[i].path);
		l[i].string = l[i].path = NULL;
	}
}

int initrd_list_parse(const char *value, struct initrd_module *out, int max, const char *ctx)
{
	int n = 0;
	const char *p = value;
	while (p) {
		if (n == max) {
			initrd_list_free(out, n);
			return kite_error("%s: more than %d boot modules", ctx, max);
		}
		char *s = take_module(p, &p);
		char *path = s ? strndup(s, strcspn(s, " ")) : NULL;
		if (!s || !path) {
			free(s);
			initrd_list_free(out, n);
			return kite_error("out of memory");
		}
		out[n].string = s;
		out[n].path = path;
		n++;
		if (!path[0]) {
			initrd_list_free(out, n);
			return kite_error("%s: boot module %d has no file name (in '%s')", ctx, n,
					  value);
		}
	}
	return n;
}

char *initrd_list_format(const struct initrd_module *l, int n)
{
	size_t len = 1;
	for (int i = 0; i < n; i++)
		len += 2 * strlen(l[i].string) + 1;
	char *s = malloc(len), *o = s;
	if (!s)
		return NULL;
	for (int i = 0; i < n; i++) {
		if (i)
			*o++ = ',';
		for (const char *c = l[i].string; *c; c++) {
			if (*c == ',')
				*o++ = ',';
			*o++ = *c;
		}
	}
	*o = '\0';
	return s;
}

bool initrd_list_is_list(const char *value)
{
	for (const char *p = value; *p; p++) {
		if (*p == ' ')
			return true;
		if (*p == ',') {
			if (p[1] != ',')
				return true;
			p++;
		}
	}
	return false;
}

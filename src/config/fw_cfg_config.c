/* --fw-cfg's grammar (fw_cfg_config.h). */
#include "config/fw_cfg_config.h"
#include "util/err.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The next comma-separated word of *p, ",," read as a comma (malloc'd), or NULL. */
static char *next_word(const char **p)
{
	const char *s = *p;
	char *w = malloc(strlen(s) + 1);
	if (!w)
		return NULL;
	size_t n = 0;
	while (*s) {
		if (*s == ',' && s[1] == ',') {
			w[n++] = ',';
			s += 2;
		} else if (*s == ',') {
			s++;
			break;
		} else {
			w[n++] = *s++;
		}
	}
	w[n] = '\0';
	*p = s;
	return w;
}

static int set_value(struct fw_cfg_config *c, const char *key, const char *v, const char *ctx)
{
	if (!strcmp(key, "name")) {
		if (!*v || strlen(v) >= FW_CFG_CONFIG_NAME_MAX)
			return kite_error("%s: name '%s' is not 1 to %d bytes", ctx, v,
					  FW_CFG_CONFIG_NAME_MAX - 1);
		strcpy(c->name, v);
		return 0;
	}
	char **slot = !strcmp(key, "file") ? &c->file : !strcmp(key, "string") ? &c->string : NULL;
	if (!slot)
		return kite_error("%s: unknown key '%s' (name, file, string)", ctx, key);
	if (!*v)
		return kite_error("%s: %s is empty", ctx, key);
	char *d = strdup(v);
	if (!d)
		return kite_error("out of memory");
	free(*slot);
	*slot = d;
	return 0;
}

int fw_cfg_config_parse(const char *text, struct fw_cfg_config *out, const char *ctx)
{
	struct fw_cfg_config c = {0};
	const char *p = text;
	bool first = true;
	int r = 0;
	while (r == 0 && (*p || first)) {
		char *w = next_word(&p);
		if (!w)
			return kite_error("out of memory");
		char *eq = strchr(w, '=');
		if (eq) {
			*eq = '\0';
			r = set_value(&c, w, eq + 1, ctx);
		} else if (first) {
			r = set_value(&c, "name", w, ctx); /* QEMU's [name=]NAME */
		} else {
			r = kite_error("%s: '%s' is not KEY=VALUE", ctx, w);
		}
		free(w);
		first = false;
	}
	if (r == 0 && !c.name[0])
		r = kite_error("%s: no name=", ctx);
	if (r == 0 && !c.file == !c.string)
		r = kite_error("%s: give one of file= and string=", ctx);
	if (r < 0) {
		fw_cfg_config_free(&c);
		return -1;
	}
	*out = c;
	return 0;
}

/* Appends s with its commas doubled. */
static char *append_escaped(char *out, const char *s)
{
	for (; *s; s++) {
		*out++ = *s;
		if (*s == ',')
			*out++ = ',';
	}
	return out;
}

char *fw_cfg_config_format(const struct fw_cfg_config *c)
{
	const char *v = c->file ? c->file : c->string;
	char *text = malloc(2 * (strlen(c->name) + strlen(v)) + 16);
	if (!text) {
		kite_error("out of memory");
		return NULL;
	}
	char *p = append_escaped(stpcpy(text, "name="), c->name);
	p = stpcpy(p, c->file ? ",file=" : ",string=");
	*append_escaped(p, v) = '\0';
	return text;
}

void fw_cfg_config_free(struct fw_cfg_config *c)
{
	free(c->file);
	free(c->string);
	c->file = c->string = NULL;
}

#include "guestfs/lvmtext.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE (64u << 10)

/* Nodes and strings live in chunks freed together. */
struct lvt_chunk {
	struct lvt_chunk *prev;
	size_t used, size;
	max_align_t data[];
};

struct parser {
	const char *p, *end;
	unsigned line;
	struct lvt *t;
	const char *what;
};

static void *alloc(struct lvt *t, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (!t->mem || t->mem->size - t->mem->used < n) {
		size_t size = n > CHUNK_SIZE ? n : CHUNK_SIZE;
		struct lvt_chunk *c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->prev = t->mem;
		c->used = 0;
		c->size = size;
		t->mem = c;
	}
	void *r = (char *)t->mem->data + t->mem->used;
	t->mem->used += n;
	return r;
}

void lvt_free(struct lvt *t)
{
	while (t->mem) {
		struct lvt_chunk *c = t->mem;
		t->mem = c->prev;
		free(c);
	}
	memset(t, 0, sizeof(*t));
}

static int fail(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parser *ps, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return kite_error("%s, line %u: %s", ps->what, ps->line, why);
}

static bool at_end(const struct parser *ps)
{
	return ps->p == ps->end || !*ps->p;
}

static void skip_space(struct parser *ps)
{
	while (!at_end(ps)) {
		char c = *ps->p;
		if (c == '#') {
			while (!at_end(ps) && *ps->p != '\n')
				ps->p++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
			   c == '\v') {
			if (c == '\n')
				ps->line++;
			ps->p++;
		} else {
			break;
		}
	}
}

/* Printable ASCII but what the grammar itself uses. */
static bool key_char(char c)
{
	return c > ' ' && c < 0x7f && !strchr("#={}[],\"'", c);
}

/* The byte at the cursor for a message: hostile bytes must not reach the terminal raw. */
static const char *shown(const struct parser *ps, char out[16])
{
	unsigned char c = at_end(ps) ? 0 : (unsigned char)*ps->p;
	if (c > ' ' && c < 0x7f)
		snprintf(out, 16, "'%c'", c);
	else
		snprintf(out, 16, "byte 0x%02x", c);
	return out;
}

static bool delimiter(const struct parser *ps)
{
	return at_end(ps) || strchr(" \t\r\n\f\v,]}#", *ps->p);
}

static struct lvt_node *new_node(struct parser *ps, const char *key, enum lvt_type type)
{
	if (ps->t->entries >= LVT_MAX_ENTRIES) {
		fail(ps, "more than %d entries", LVT_MAX_ENTRIES);
		return NULL;
	}
	struct lvt_node *n = alloc(ps->t, sizeof(*n));
	if (!n) {
		kite_error("out of memory reading LVM2 metadata");
		return NULL;
	}
	memset(n, 0, sizeof(*n));
	n->key = key;
	n->type = type;
	n->line = ps->line;
	ps->t->entries++;
	return n;
}

static char *copy(struct parser *ps, const char *s, size_t len)
{
	char *r = alloc(ps->t, len + 1);
	if (!r) {
		kite_error("out of memory reading LVM2 metadata");
		return NULL;
	}
	memcpy(r, s, len);
	r[len] = 0;
	return r;
}

/* A "string": backslash makes the next byte literal. */
static struct lvt_node *parse_string(struct parser *ps, const char *key)
{
	unsigned line = ps->line;
	const char *s = ++ps->p;
	size_t len = 0;
	for (; !at_end(ps) && *ps->p != '"'; ps->p++, len++) {
		if (*ps->p == '\\' && ps->p + 1 < ps->end && ps->p[1])
			ps->p++;
		if (*ps->p == '\n')
			ps->line++;
	}
	if (at_end(ps)) {
		ps->line = line;
		fail(ps, "the string that starts here has no closing quote");
		return NULL;
	}
	ps->p++;
	struct lvt_node *n = new_node(ps, key, LVT_STRING);
	char *out = n ? alloc(ps->t, len + 1) : NULL;
	if (!out) {
		if (n)
			kite_error("out of memory reading LVM2 metadata");
		return NULL;
	}
	n->line = line;
	size_t o = 0;
	for (const char *q = s; o < len; q++) {
		if (*q == '\\')
			q++;
		out[o++] = *q;
	}
	out[len] = 0;
	n->str = out;
	return n;
}

/* [+-]digits: an integer; with a fraction it is kept as its text (lvm2 writes none). */
static struct lvt_node *parse_number(struct parser *ps, const char *key)
{
	const char *s = ps->p;
	bool neg = *ps->p == '-';
	if (*ps->p == '-' || *ps->p == '+')
		ps->p++;
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	bool digits = false, big = false;
	while (!at_end(ps) && *ps->p >= '0' && *ps->p <= '9') {
		unsigned d = (unsigned)(*ps->p++ - '0');
		big |= v > (limit - d) / 10;
		v = v * 10 + d;
		digits = true;
	}
	bool fraction = !at_end(ps) && *ps->p == '.';
	if (fraction) {
		ps->p++;
		while (!at_end(ps) && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (!digits || !delimiter(ps)) {
		fail(ps, "a malformed number");
		return NULL;
	}
	if (fraction) {
		struct lvt_node *n = new_node(ps, key, LVT_STRING);
		if (n && !(n->str = copy(ps, s, (size_t)(ps->p - s))))
			return NULL;
		return n;
	}
	if (big) {
		fail(ps, "the number %.*s is out of range", (int)(ps->p - s), s);
		return NULL;
	}
	struct lvt_node *n = new_node(ps, key, LVT_INT);
	if (n)
		n->num = neg ? (int64_t)(0 - v) : (int64_t)v;
	return n;
}

static struct lvt_node *parse_scalar(struct parser *ps, const char *key)
{
	if (at_end(ps)) {
		fail(ps, "the text ends where a value was expected");
		return NULL;
	}
	char c = *ps->p, b[16];
	if (c == '"')
		return parse_string(ps, key);
	if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.')
		return parse_number(ps, key);
	fail(ps, "expected a value (a number or a \"string\") but found %s", shown(ps, b));
	return NULL;
}

static void append(struct lvt_node *parent, struct lvt_node **tail, struct lvt_node *n)
{
	if (*tail)
		(*tail)->next = n;
	else
		parent->child = n;
	*tail = n;
	parent->count++;
}

static struct lvt_node *parse_list(struct parser *ps, const char *key)
{
	struct lvt_node *list = new_node(ps, key, LVT_LIST), *tail = NULL;
	if (!list)
		return NULL;
	ps->p++;
	for (;;) {
		skip_space(ps);
		if (at_end(ps)) {
			ps->line = list->line;
			fail(ps, "the list that starts here has no closing ']'");
			return NULL;
		}
		if (*ps->p == ']') {
			ps->p++;
			return list;
		}
		struct lvt_node *item = parse_scalar(ps, NULL);
		if (!item)
			return NULL;
		append(list, &tail, item);
		skip_space(ps);
		if (!at_end(ps) && *ps->p == ',')
			ps->p++;
	}
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp((*(struct lvt_node *const *)a)->key, (*(struct lvt_node *const *)b)->key);
}

/* Sorting the keys finds duplicates in n log n, whatever the text holds. */
static int check_duplicates(struct parser *ps, const struct lvt_node *section)
{
	if (section->count < 2)
		return 0;
	struct lvt_node **v = malloc(section->count * sizeof(*v));
	if (!v)
		return kite_error("out of memory reading LVM2 metadata");
	size_t i = 0;
	for (struct lvt_node *n = section->child; n; n = n->next)
		v[i++] = n;
	qsort(v, i, sizeof(*v), cmp_key);
	int ret = 0;
	for (size_t j = 1; j < i && !ret; j++) {
		if (!strcmp(v[j - 1]->key, v[j]->key)) {
			ps->line = v[j - 1]->line > v[j]->line ? v[j - 1]->line : v[j]->line;
			ret = fail(ps, "'%s' appears twice in the same section", v[j]->key);
		}
	}
	free(v);
	return ret;
}

static int parse_entries(struct parser *ps, struct lvt_node *section, unsigned depth);

static struct lvt_node *parse_entry(struct parser *ps, unsigned depth)
{
	const char *k = ps->p;
	while (!at_end(ps) && key_char(*ps->p))
		ps->p++;
	if (ps->p == k) {
		char b[16];
		fail(ps, "expected a name but found %s", shown(ps, b));
		return NULL;
	}
	char *key = copy(ps, k, (size_t)(ps->p - k));
	if (!key)
		return NULL;
	skip_space(ps);
	if (!at_end(ps) && *ps->p == '{') {
		if (depth >= LVT_MAX_DEPTH) {
			fail(ps, "sections nested more than %d deep", LVT_MAX_DEPTH);
			return NULL;
		}
		struct lvt_node *s = new_node(ps, key, LVT_SECTION);
		ps->p++;
		if (!s || parse_entries(ps, s, depth + 1) < 0)
			return NULL;
		return s;
	}
	if (at_end(ps) || *ps->p != '=') {
		fail(ps, "expected '=' or '{' after '%s'", key);
		return NULL;
	}
	ps->p++;
	skip_space(ps);
	if (!at_end(ps) && *ps->p == '[')
		return parse_list(ps, key);
	return parse_scalar(ps, key);
}

/* The entries of a section up to its '}' (depth > 0) or the end of the text (depth 0). */
static int parse_entries(struct parser *ps, struct lvt_node *section, unsigned depth)
{
	struct lvt_node *tail = NULL;
	unsigned line = ps->line;
	for (;;) {
		skip_space(ps);
		if (at_end(ps)) {
			if (depth) {
				ps->line = line;
				return fail(ps, "section '%s' that starts here has no closing '}'",
					    section->key);
			}
			break;
		}
		if (*ps->p == '}') {
			if (!depth)
				return fail(ps, "a '}' closes no section");
			ps->p++;
			break;
		}
		struct lvt_node *n = parse_entry(ps, depth);
		if (!n)
			return -1;
		append(section, &tail, n);
	}
	return check_duplicates(ps, section);
}

int lvt_parse(struct lvt *t, const char *text, size_t len, const char *what)
{
	memset(t, 0, sizeof(*t));
	t->root.type = LVT_SECTION;
	struct parser ps = {.p = text, .end = text + len, .line = 1, .t = t, .what = what};
	if (parse_entries(&ps, &t->root, 0) < 0) {
		lvt_free(t);
		return -1;
	}
	return 0;
}

const struct lvt_node *lvt_get(const struct lvt_node *section, const char *key)
{
	if (!section || section->type != LVT_SECTION)
		return NULL;
	for (const struct lvt_node *n = section->child; n; n = n->next)
		if (!strcmp(n->key, key))
			return n;
	return NULL;
}

#include "guestfs/textedit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MARKER "# Set by kite guest init (the original is sshd_config.origin)"

/* A growing string. */
struct sb {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->s, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = 0;
}

static void sb_str(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static char *sb_done(struct sb *b)
{
	if (b->oom) {
		free(b->s);
		return NULL;
	}
	if (!b->s)
		return strdup("");
	return b->s;
}

/* Calls `fn` for each line (without its newline); a missing final newline is tolerated. */
#define FOR_EACH_LINE(text, line, len)                                                             \
	for (const char *line = (text), *_e; *line; line = *_e ? _e + 1 : _e)                      \
		for (size_t len = (size_t)((_e = strchrnul(line, '\n')) - line), _once = 1; _once; \
		     _once = 0)

static void add_line(struct sb *b, const char *line, size_t len)
{
	sb_add(b, line, len);
	sb_add(b, "\n", 1);
}

/* The first word of an sshd_config line (keywords are case-insensitive). */
static size_t first_word(const char *line, size_t len, const char **w)
{
	size_t i = 0;
	while (i < len && isspace((unsigned char)line[i]))
		i++;
	*w = line + i;
	size_t n = 0;
	while (i + n < len && !isspace((unsigned char)line[i + n]) && line[i + n] != '=')
		n++;
	return n;
}

char *sshd_apply(const char *conf, const char *const *keys, const char *const *vals, size_t n)
{
	struct sb b = {0};
	sb_str(&b, MARKER "\n");
	for (size_t i = 0; i < n; i++) {
		sb_str(&b, keys[i]);
		sb_str(&b, " ");
		sb_str(&b, vals[i]);
		sb_str(&b, "\n");
	}
	bool in_match = false;
	FOR_EACH_LINE(conf, line, len)
	{
		const char *w;
		size_t wl = first_word(line, len, &w);
		if (wl == 5 && !strncasecmp(w, "Match", 5))
			in_match = true;
		if (len == strlen(MARKER) && !memcmp(line, MARKER, len))
			continue;
		bool drop = false;
		for (size_t i = 0; i < n && !in_match && wl; i++)
			drop |= wl == strlen(keys[i]) && !strncasecmp(w, keys[i], wl);
		if (!drop)
			add_line(&b, line, len);
	}
	return sb_done(&b);
}

char *hosts_set_hostname(const char *hosts, const char *hostname)
{
	struct sb b = {0};
	bool done = false;
	char want[300];
	snprintf(want, sizeof(want), "127.0.1.1\t%s", hostname);
	FOR_EACH_LINE(hosts, line, len)
	{
		if (len >= 9 && !strncmp(line, "127.0.1.1", 9) &&
		    (len == 9 || isspace((unsigned char)line[9]))) {
			if (!done)
				sb_str(&b, want), sb_str(&b, "\n");
			done = true;
			continue;
		}
		add_line(&b, line, len);
	}
	if (!done)
		sb_str(&b, want), sb_str(&b, "\n");
	return sb_done(&b);
}

/* Field `idx` (0-based) of a colon-separated line, as [*start, *start + *flen). */
static bool field(const char *line, size_t len, int idx, const char **start, size_t *flen)
{
	const char *p = line, *end = line + len;
	for (int i = 0; i < idx; i++) {
		const char *c = memchr(p, ':', (size_t)(end - p));
		if (!c)
			return false;
		p = c + 1;
	}
	const char *c = memchr(p, ':', (size_t)(end - p));
	*start = p;
	*flen = (size_t)((c ? c : end) - p);
	return true;
}

static bool num_field(const char *line, size_t len, int idx, uint32_t *out)
{
	const char *s;
	size_t n;
	if (!field(line, len, idx, &s, &n) || !n || n > 10)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool is_entry(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	return len > n && !strncmp(line, name, n) && line[n] == ':';
}

bool db_find(const char *db, const char *name, uint32_t *f3, uint32_t *f4)
{
	FOR_EACH_LINE(db, line, len)
	{
		if (!is_entry(line, len, name))
			continue;
		if (f3 && !num_field(line, len, 2, f3))
			*f3 = UINT32_MAX;
		if (f4 && !num_field(line, len, 3, f4))
			*f4 = UINT32_MAX;
		return true;
	}
	return false;
}

uint32_t db_free_id(const char *db, uint32_t lo, uint32_t hi, bool down)
{
	for (uint64_t k = 0; k <= (uint64_t)hi - lo; k++) {
		uint32_t id = down ? hi - (uint32_t)k : lo + (uint32_t)k;
		bool used = false;
		FOR_EACH_LINE(db, line, len)
		{
			uint32_t v;
			if (num_field(line, len, 2, &v) && v == id)
				used = true;
		}
		if (!used)
			return id;
	}
	return UINT32_MAX;
}

char *db_append(const char *db, const char *line)
{
	struct sb b = {0};
	sb_str(&b, db);
	if (b.len && b.s[b.len - 1] != '\n')
		sb_str(&b, "\n");
	sb_str(&b, line);
	sb_str(&b, "\n");
	return sb_done(&b);
}

char *group_add_member(const char *db, const char *group, const char *user)
{
	struct sb b = {0};
	FOR_EACH_LINE(db, line, len)
	{
		const char *m;
		size_t ml;
		if (!is_entry(line, len, group) || !field(line, len, 3, &m, &ml)) {
			add_line(&b, line, len);
			continue;
		}
		bool present = false;
		for (const char *p = m; p < m + ml;) {
			const char *c = memchr(p, ',', (size_t)(m + ml - p));
			size_t n = (size_t)((c ? c : m + ml) - p);
			present |= n == strlen(user) && !strncmp(p, user, n);
			p += n + 1;
		}
		sb_add(&b, line, len);
		if (!present) {
			if (ml)
				sb_str(&b, ",");
			sb_str(&b, user);
		}
		sb_str(&b, "\n");
	}
	return sb_done(&b);
}

char *shadow_lock(const char *db, const char *user)
{
	struct sb b = {0};
	FOR_EACH_LINE(db, line, len)
	{
		const char *pw;
		size_t pl;
		if (is_entry(line, len, user) && field(line, len, 1, &pw, &pl) &&
		    (!pl || pw[0] != '!')) {
			sb_add(&b, line, (size_t)(pw - line));
			sb_str(&b, "!");
			sb_add(&b, pw, len - (size_t)(pw - line));
			sb_str(&b, "\n");
			continue;
		}
		add_line(&b, line, len);
	}
	return sb_done(&b);
}

static bool has_line(const char *text, const char *l, size_t n)
{
	FOR_EACH_LINE(text, line, len)
	{
		if (len == n && !memcmp(line, l, n))
			return true;
	}
	return false;
}

char *keys_merge(const char *existing, const char *add)
{
	struct sb b = {0};
	sb_str(&b, existing);
	if (b.len && b.s[b.len - 1] != '\n')
		sb_str(&b, "\n");
	FOR_EACH_LINE(add, line, len)
	{
		size_t n = len;
		while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
			n--;
		if (!n || line[0] == '#')
			continue;
		if (b.s && has_line(b.s, line, n))
			continue;
		add_line(&b, line, n);
	}
	return sb_done(&b);
}

bool keys_valid(const char *keys)
{
	static const char *const prefixes[] = {"ssh-ed25519 ",	 "ssh-rsa ",
					       "ecdsa-sha2-",	 "sk-ssh-ed25519@openssh.com ",
					       "sk-ecdsa-sha2-", "ssh-dss "};
	bool any = false;
	for (const unsigned char *p = (const unsigned char *)keys; *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\r' && *p != '\t') || *p == 0x7f)
			return false;
	FOR_EACH_LINE(keys, line, len)
	{
		if (!len || line[0] == '#' || (len == 1 && line[0] == '\r'))
			continue;
		bool ok = false;
		for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
			size_t pl = strlen(prefixes[i]);
			ok |= len > pl && !strncmp(line, prefixes[i], pl);
		}
		if (!ok)
			return false;
		any = true;
	}
	return any;
}

bool valid_user_name(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 32 || !(islower((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return true;
}

bool valid_hostname(const char *s)
{
	size_t n = strlen(s), label = 0;
	if (!n || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (!label || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!(isalnum((unsigned char)c) || c == '-') || (c == '-' && !label) ||
		    ++label > 63)
			return false;
	}
	return label && s[n - 1] != '-';
}

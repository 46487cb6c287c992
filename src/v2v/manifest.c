/* Manifest digests with nettle: Debian's libarchive already links it for its own digests, so
 * it adds no library to a kite process; SHA-1 and SHA-256 are what OVA manifests use. */
#include "v2v/manifest.h"
#include "util/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t digest_size(enum manifest_algo a)
{
	return a == MF_SHA1 ? SHA1_DIGEST_SIZE : SHA256_DIGEST_SIZE;
}

static int hex_digest(const char *s, size_t n, uint8_t *out)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
		    sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* "SHA256(name)= hex" (spaces around "(", ")" and "=" allowed). */
static int parse_line(char *line, const char *where, int lineno, struct manifest_line *l)
{
	char *open = strchr(line, '('), *close = strrchr(line, ')');
	if (!open || !close || close < open)
		return kite_error("%s: line %d is not 'SHA1(FILE)= DIGEST'", where, lineno);
	char algo[16];
	size_t al = (size_t)(open - line);
	while (al && line[al - 1] == ' ')
		al--;
	snprintf(algo, sizeof(algo), "%.*s", (int)(al < 15 ? al : 15), line);
	if (!strcasecmp(algo, "SHA1"))
		l->algo = MF_SHA1;
	else if (!strcasecmp(algo, "SHA256"))
		l->algo = MF_SHA256;
	else
		return kite_error("%s: line %d: digest '%s' is not one kite checks (SHA1, SHA256)",
				  where, lineno, algo);
	size_t nl = (size_t)(close - open - 1);
	if (!nl || nl >= sizeof(l->name))
		return kite_error("%s: line %d: bad file name", where, lineno);
	memcpy(l->name, open + 1, nl);
	l->name[nl] = '\0';
	char *p = close + 1;
	while (*p == ' ')
		p++;
	if (*p++ != '=')
		return kite_error("%s: line %d is not 'SHA1(FILE)= DIGEST'", where, lineno);
	while (*p == ' ')
		p++;
	size_t e = strlen(p);
	while (e && (p[e - 1] == ' ' || p[e - 1] == '\r'))
		p[--e] = '\0';
	if (hex_digest(p, digest_size(l->algo), l->digest) < 0)
		return kite_error("%s: line %d: '%s' is not a %s digest", where, lineno, p, algo);
	return 0;
}

int manifest_parse(const char *text, size_t len, const char *where, struct manifest *m)
{
	memset(m, 0, sizeof(*m));
	char *copy = strndup(text, len);
	if (!copy)
		return kite_error("out of memory");
	int lineno = 0, r = 0;
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line && !r;
	     line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (!line[strspn(line, " \t\r")])
			continue;
		struct manifest_line l;
		if (parse_line(line, where, lineno, &l) < 0) {
			r = -1;
		} else if (manifest_find(m, l.name)) {
			r = kite_error("%s: '%s' is listed twice", where, l.name);
		} else {
			struct manifest_line *n = realloc(m->l, (m->n + 1) * sizeof(*n));
			if (!n) {
				r = kite_error("out of memory");
			} else {
				m->l = n;
				m->l[m->n++] = l;
			}
		}
	}
	free(copy);
	if (r)
		manifest_free(m);
	return r;
}

void manifest_free(struct manifest *m)
{
	free(m->l);
	memset(m, 0, sizeof(*m));
}

const struct manifest_line *manifest_find(const struct manifest *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->l[i].name, name))
			return &m->l[i];
	return NULL;
}

void manifest_hash_init(struct manifest_hash *h, enum manifest_algo algo)
{
	h->algo = algo;
	if (algo == MF_SHA1)
		sha1_init(&h->u.sha1);
	else
		sha256_init(&h->u.sha256);
}

void manifest_hash_update(struct manifest_hash *h, const void *buf, size_t len)
{
	if (h->algo == MF_SHA1)
		sha1_update(&h->u.sha1, len, buf);
	else
		sha256_update(&h->u.sha256, len, buf);
}

int manifest_hash_check(struct manifest_hash *h, const struct manifest_line *l, const char *where)
{
	uint8_t got[SHA256_DIGEST_SIZE];
	size_t n = digest_size(h->algo);
	if (h->algo == MF_SHA1)
		sha1_digest(&h->u.sha1, SHA1_DIGEST_SIZE, got);
	else
		sha256_digest(&h->u.sha256, SHA256_DIGEST_SIZE, got);
	if (memcmp(got, l->digest, n))
		return kite_error("%s: the %s checksum of '%s' does not match the manifest: "
				  "refusing the OVA",
				  where, h->algo == MF_SHA1 ? "SHA1" : "SHA256", l->name);
	return 0;
}

/* OVA archives through libarchive (Debian's libarchive: tar in all its dialects — ustar, pax,
 * GNU — with the checks of a maintained reader, rather than a tar parser of kite's own). */
#include "v2v/ova.h"
#include "util/err.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK (1 << 20)

static struct archive *open_archive(const char *path)
{
	struct archive *a = archive_read_new();
	if (!a) {
		kite_error("out of memory");
		return NULL;
	}
	/* an OVA is a plain tar; other formats and compressions are not OVAs */
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, path, BLOCK) != ARCHIVE_OK) {
		kite_error("%s: %s", path, archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* A name an OVA may hold: one plain file name ("./" before it is allowed). */
static int check_name(const char *ova, const char *name)
{
	if (!name || !name[0])
		return kite_error("%s: an entry has no name", ova);
	if (name[0] == '/')
		return kite_error("%s: entry '%s' has an absolute path: refusing the OVA", ova,
				  name);
	if (!strcmp(name, "..") || !strcmp(name, ".") || !strncmp(name, "../", 3) ||
	    strstr(name, "/../") || (strlen(name) > 3 && !strcmp(name + strlen(name) - 3, "/..")))
		return kite_error("%s: entry '%s' leads out of its directory (\"..\"): refusing "
				  "the OVA",
				  ova, name);
	if (strchr(name, '/'))
		return kite_error("%s: entry '%s' is in a directory: an OVA holds plain files", ova,
				  name);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return kite_error("%s: an entry's name holds control characters", ova);
	return 0;
}

static int add_entry(struct ova *o, struct archive_entry *ae)
{
	const char *name = archive_entry_pathname(ae);
	while (name && !strncmp(name, "./", 2))
		name += 2;
	if (check_name(o->path, name) < 0)
		return -1;
	if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae) ||
	    archive_entry_symlink(ae))
		return kite_error("%s: entry '%s' is not a regular file: refusing the OVA", o->path,
				  name);
	if (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0)
		return kite_error("%s: entry '%s' has no size", o->path, name);
	if (ova_find(o, name))
		return kite_error("%s: entry '%s' is there twice: refusing the OVA", o->path, name);
	struct ova_entry *n = realloc(o->e, (o->n + 1) * sizeof(*n));
	if (!n)
		return kite_error("out of memory");
	o->e = n;
	o->e[o->n].name = strdup(name);
	o->e[o->n].size = (uint64_t)archive_entry_size(ae);
	if (!o->e[o->n].name)
		return kite_error("out of memory");
	o->n++;
	return 0;
}

int ova_open(struct ova *o, const char *path)
{
	memset(o, 0, sizeof(*o));
	if (!(o->path = strdup(path)))
		return kite_error("out of memory");
	struct archive *a = open_archive(path);
	if (!a)
		goto fail;
	struct archive_entry *ae;
	int r;
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		if (add_entry(o, ae) < 0) {
			archive_read_free(a);
			goto fail;
		}
	}
	if (r != ARCHIVE_EOF) {
		kite_error("%s: not a readable OVA (tar) archive: %s", path,
			   archive_error_string(a));
		archive_read_free(a);
		goto fail;
	}
	archive_read_free(a);
	if (!o->n) {
		kite_error("%s: the archive is empty", path);
		goto fail;
	}
	return 0;
fail:
	ova_close(o);
	return -1;
}

void ova_close(struct ova *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->e[i].name);
	free(o->e);
	free(o->path);
	memset(o, 0, sizeof(*o));
}

const struct ova_entry *ova_find(const struct ova *o, const char *name)
{
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->e[i].name, name))
			return &o->e[i];
	return NULL;
}

const struct ova_entry *ova_find_suffix(const struct ova *o, const char *suffix, int *count)
{
	const struct ova_entry *found = NULL;
	size_t sl = strlen(suffix);
	*count = 0;
	for (size_t i = 0; i < o->n; i++) {
		size_t l = strlen(o->e[i].name);
		if (l > sl && !strcasecmp(o->e[i].name + l - sl, suffix)) {
			found = &o->e[i];
			(*count)++;
		}
	}
	return *count == 1 ? found : NULL;
}

static int copy_data(const struct ova *o, struct archive *a, const struct ova_entry *e,
		     ova_sink sink, void *ctx)
{
	uint64_t total = 0;
	char *buf = malloc(BLOCK);
	if (!buf)
		return kite_error("out of memory");
	int r = 0;
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, BLOCK);
		if (n == 0)
			break;
		if (n < 0) {
			r = kite_error("%s: reading '%s': %s", o->path, e->name,
				       archive_error_string(a));
			break;
		}
		total += (uint64_t)n;
		if (total > e->size) {
			r = kite_error("%s: '%s' holds more than its size", o->path, e->name);
			break;
		}
		if (sink(ctx, buf, (size_t)n) < 0) {
			r = -1;
			break;
		}
	}
	free(buf);
	if (r == 0 && total != e->size)
		r = kite_error("%s: '%s' is truncated (%llu of %llu bytes)", o->path, e->name,
			       (unsigned long long)total, (unsigned long long)e->size);
	return r;
}

int ova_read(const struct ova *o, const char *name, ova_sink sink, void *ctx)
{
	const struct ova_entry *e = ova_find(o, name);
	if (!e)
		return kite_error("%s: no entry '%s'", o->path, name);
	struct archive *a = open_archive(o->path);
	if (!a)
		return -1;
	struct archive_entry *ae;
	int r, ret = -1;
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		const char *n = archive_entry_pathname(ae);
		while (n && !strncmp(n, "./", 2))
			n += 2;
		if (n && !strcmp(n, name)) {
			ret = copy_data(o, a, e, sink, ctx);
			break;
		}
	}
	if (r != ARCHIVE_OK)
		kite_error("%s: '%s' is gone from the archive: %s", o->path, name,
			   r == ARCHIVE_EOF ? "not found" : archive_error_string(a));
	archive_read_free(a);
	return ret;
}

struct mem_sink {
	char *data;
	size_t len;
};

static int to_mem(void *ctx, const void *buf, size_t len)
{
	struct mem_sink *m = ctx;
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return 0;
}

int ova_read_all(const struct ova *o, const char *name, size_t max, char **data, size_t *len)
{
	const struct ova_entry *e = ova_find(o, name);
	if (!e)
		return kite_error("%s: no entry '%s'", o->path, name);
	if (e->size > max)
		return kite_error("%s: '%s' is %llu bytes: more than the %zu kite reads", o->path,
				  name, (unsigned long long)e->size, max);
	struct mem_sink m = {.data = malloc((size_t)e->size + 1)};
	if (!m.data)
		return kite_error("out of memory");
	if (ova_read(o, name, to_mem, &m) < 0) {
		free(m.data);
		return -1;
	}
	m.data[m.len] = '\0';
	*data = m.data;
	*len = m.len;
	return 0;
}

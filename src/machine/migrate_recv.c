/* The destination side of a migration: the stream of machine/migrate.h, every field checked,
 * into a save file that `kite run --restore` resumes. */
#include "util/err.h"
#include "util/fullio.h"
#include "machine/migrate.h"
#include "machine/savefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

struct receiver {
	int fd, wfd, file; /* the stream's read and write ends (ssh: stdin, stdout) */
	bool anon;	   /* an O_TMPFILE: no name until it is complete */
	uint64_t npages, ram_offset;
	uint64_t *written; /* pages with data in the file */
	uint8_t *buf;
	size_t buf_cap;
};

/* One frame: its type and payload (in r->buf, up to `max` bytes), CRC checked. */
static int read_frame(struct receiver *r, uint32_t *type, uint32_t *len, uint32_t max)
{
	uint32_t head[2];
	if (migrate_read_all(r->fd, head, sizeof(head)) < 0)
		return kite_error("migration stream: cut short (the source went away)");
	*type = head[0];
	*len = head[1];
	if (*len > max)
		return kite_error("migration stream: a frame of type %#x and %u bytes is too large",
				  *type, *len);
	if (*len + 4 > r->buf_cap) {
		uint8_t *nb = realloc(r->buf, (size_t)*len + 4);
		if (!nb)
			return kite_error("out of memory");
		r->buf = nb;
		r->buf_cap = (size_t)*len + 4;
	}
	if (migrate_read_all(r->fd, r->buf, (size_t)*len + 4) < 0)
		return kite_error("migration stream: cut short (the source went away)");
	uint32_t want;
	memcpy(&want, r->buf + *len, 4);
	uint32_t got = (uint32_t)crc32(crc32(0L, Z_NULL, 0), r->buf, *len);
	if (got != want)
		return kite_error("migration stream: corrupt (frame checksum)");
	return 0;
}

static int parse_header(struct receiver *r, uint32_t len, struct migrate_incoming *in,
			uint64_t *ram_size)
{
	struct state_reader h;
	size_t used;
	uint32_t page;
	const uint8_t *def;
	size_t def_len;
	bool offline;
	if (state_parse(&h, r->buf, len, &used) < 0 || used != len ||
	    state_expect(&h, "migration", 1, 1) < 0 ||
	    state_get_u64(&h, "ram_size", ram_size) < 0 ||
	    state_get_u32(&h, "page_size", &page) < 0 ||
	    state_get_bool(&h, "offline", &offline) < 0 ||
	    state_get_blob(&h, "definition", &def, &def_len) < 0)
		return kite_error("migration stream: the header is corrupt");
	in->offline = offline;
	json_error_t je;
	json_t *root = json_loadb((const char *)def, def_len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return kite_error("migration stream: the definition is not valid JSON: %s",
				  je.text);
	int rc = machine_config_from_json(root, "migration stream: definition", &in->def);
	json_decref(root);
	if (rc < 0)
		return -1;
	in->have_def = true;
	if (!in->def.name[0])
		return kite_error("migration stream: the machine has no name");
	if (page != MIGRATE_PAGE)
		return kite_error("migration stream: pages of %u bytes; this kite uses %u", page,
				  MIGRATE_PAGE);
	if (offline ? *ram_size != 0 : *ram_size != in->def.memory || *ram_size % MIGRATE_PAGE)
		return kite_error("migration stream: %llu bytes of RAM for a machine of %llu MiB",
				  (unsigned long long)*ram_size,
				  (unsigned long long)(in->def.memory >> 20));
	return 0;
}

static int open_file(struct receiver *r, const char *dir, struct migrate_incoming *in,
		     uint64_t ram_size)
{
	if (savefile_plan(&in->def, ram_size, MIGRATE_STATE_MAX, &r->ram_offset) < 0)
		return -1;
	if (snprintf(in->path, sizeof(in->path), "%s/.%s.migrate.XXXXXX", dir, in->def.name) >=
	    (int)sizeof(in->path))
		return kite_error("%s: path too long", dir);
	/* Unnamed while it fills: a receiver killed meanwhile leaves nothing behind. */
	r->file = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	r->anon = r->file >= 0;
	if (!r->anon)
		r->file = mkostemp(in->path, O_CLOEXEC);
	if (r->file < 0) {
		int e = errno;
		in->path[0] = '\0';
		return kite_error_errno(e, "%s: cannot create the incoming machine's file", dir);
	}
	if (ftruncate(r->file, (off_t)(r->ram_offset + ram_size)) < 0)
		return kite_error_errno(errno, "%s: the incoming machine's file", dir);
	r->npages = ram_size / MIGRATE_PAGE;
	r->written = calloc((r->npages + 63) / 64 + 1, 8);
	if (!r->written)
		return kite_error("out of memory");
	if (r->anon)
		in->path[0] = '\0';
	return 0;
}

/* The complete file gets its name (in->path), for `kite run --restore`. */
static int name_file(struct receiver *r, const char *dir, struct migrate_incoming *in)
{
	if (!r->anon)
		return 0;
	char proc[64], path[PATH_MAX];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", r->file);
	for (unsigned i = 0; i < 100; i++) {
		if (snprintf(path, sizeof(path), "%s/.%s.migrate.%d.%u", dir, in->def.name,
			     (int)getpid(), i) >= (int)sizeof(path))
			return kite_error("%s: path too long", dir);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) {
			snprintf(in->path, sizeof(in->path), "%s", path);
			return 0;
		}
		if (errno != EEXIST)
			return kite_error_errno(errno,
						"%s: cannot name the incoming machine's file", dir);
	}
	return kite_error("%s: cannot name the incoming machine's file", dir);
}

static int range_ok(struct receiver *r, uint64_t first, uint64_t n)
{
	if (n == 0 || first >= r->npages || n > r->npages - first)
		return kite_error("migration stream: pages %llu+%llu are outside the guest's %llu",
				  (unsigned long long)first, (unsigned long long)n,
				  (unsigned long long)r->npages);
	return 0;
}

static int got_pages(struct receiver *r, uint32_t len, const char *path)
{
	uint64_t first;
	if (len < 8 + MIGRATE_PAGE || (len - 8) % MIGRATE_PAGE)
		return kite_error("migration stream: a page frame of %u bytes", len);
	memcpy(&first, r->buf, 8);
	uint64_t n = (len - 8) / MIGRATE_PAGE;
	if (range_ok(r, first, n) < 0)
		return -1;
	int rc = full_pwrite(r->file, r->buf + 8, (size_t)(len - 8),
			     r->ram_offset + first * MIGRATE_PAGE);
	if (rc < 0)
		return kite_error_errno(-rc, "%s: write", path);
	for (uint64_t i = first; i < first + n; i++)
		r->written[i >> 6] |= 1ull << (i & 63);
	return 0;
}

/* Zero pages: holes, punched where data was written before. */
static int got_zero(struct receiver *r, uint32_t len, const char *path)
{
	uint64_t z[2];
	if (len != sizeof(z))
		return kite_error("migration stream: a zero-page frame of %u bytes", len);
	memcpy(z, r->buf, sizeof(z));
	if (range_ok(r, z[0], z[1]) < 0)
		return -1;
	for (uint64_t i = z[0]; i < z[0] + z[1];) {
		if (!(r->written[i >> 6] >> (i & 63) & 1)) {
			i++;
			continue;
		}
		uint64_t j = i;
		while (j < z[0] + z[1] && (r->written[j >> 6] >> (j & 63) & 1)) {
			r->written[j >> 6] &= ~(1ull << (j & 63));
			j++;
		}
		if (fallocate(r->file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(r->ram_offset + i * MIGRATE_PAGE),
			      (off_t)((j - i) * MIGRATE_PAGE)) < 0)
			return kite_error_errno(errno, "%s: cannot zero pages", path);
		i = j;
	}
	return 0;
}

static int receive(struct receiver *r, const char *dir, struct migrate_incoming *in,
		   int (*accept_def)(void *, const struct machine_config *), void *opaque)
{
	uint8_t pre[12];
	if (migrate_read_all(r->fd, pre, sizeof(pre)) < 0)
		return kite_error("migration stream: cut short before its header");
	if (memcmp(pre, MIGRATE_MAGIC, 8))
		return kite_error("migration stream: not a kite migration");
	uint32_t version;
	memcpy(&version, pre + 8, 4);
	if (version != MIGRATE_VERSION)
		return kite_error("migration stream version %u; this kite reads version %u",
				  version, MIGRATE_VERSION);
	uint32_t type, len;
	uint64_t ram_size = 0;
	if (read_frame(r, &type, &len, MIGRATE_HEADER_MAX) < 0)
		return -1;
	if (type != MIGRATE_F_HEADER)
		return kite_error("migration stream: it does not start with its header");
	if (parse_header(r, len, in, &ram_size) < 0 || accept_def(opaque, &in->def) < 0)
		return -1;
	if (!in->offline && open_file(r, dir, in, ram_size) < 0)
		return -1;
	if (migrate_send_token(r->wfd, "OKAY") < 0)
		return kite_error("migration: the source went away");
	struct state_buf state = {0};
	bool have_state = false;
	for (;;) {
		uint32_t max = in->offline ? 0 : have_state ? 0 : MIGRATE_STATE_MAX;
		if (max < 8 + MIGRATE_FRAME_PAGES * MIGRATE_PAGE && !in->offline && !have_state)
			max = 8 + MIGRATE_FRAME_PAGES * MIGRATE_PAGE;
		int rc = read_frame(r, &type, &len, max);
		if (rc == 0 && type == MIGRATE_F_END && len == 0 && (in->offline || have_state))
			break;
		if (rc == 0 && (in->offline || have_state))
			rc = kite_error("migration stream: frame %#x where its end belongs", type);
		else if (rc == 0 && type == MIGRATE_F_PAGES)
			rc = got_pages(r, len, in->path[0] ? in->path : dir);
		else if (rc == 0 && type == MIGRATE_F_ZERO)
			rc = got_zero(r, len, in->path[0] ? in->path : dir);
		else if (rc == 0 && type == MIGRATE_F_STATE) {
			struct state_stream s;
			state_stream_init(&s, r->buf, len);
			if (state_stream_check(&s) < 0) {
				rc = kite_error("migration stream: the device state is corrupt");
			} else {
				have_state = true;
				state.data = r->buf; /* handed over: r->buf is not reused */
				state.len = state.cap = len;
				r->buf = NULL;
				r->buf_cap = 0;
			}
		} else if (rc == 0) {
			rc = kite_error("migration stream: unexpected frame %#x (%u bytes)", type,
					len);
		}
		if (rc < 0) {
			state_buf_free(&state);
			return -1;
		}
	}
	int rc = 0;
	if (!in->offline) {
		rc = savefile_write_head(r->file, &in->def, &state, ram_size, r->ram_offset);
		if (rc == 0)
			rc = name_file(r, dir, in);
		/* The whole file, checked as a restore checks it. */
		struct savefile f;
		if (rc == 0 && (rc = savefile_open(&f, in->path)) == 0)
			savefile_close(&f);
	}
	state_buf_free(&state);
	if (rc < 0)
		return -1;
	if (migrate_send_token(r->wfd, "RCVD") < 0)
		return kite_error("migration: the source went away");
	return 0;
}

int migrate_receive(int fd, int wfd, const char *dir, struct migrate_incoming *in,
		    int (*accept_def)(void *opaque, const struct machine_config *def), void *opaque)
{
	memset(in, 0, sizeof(*in));
	in->fd = -1;
	struct receiver r = {.fd = fd, .wfd = wfd, .file = -1};
	int rc = receive(&r, dir, in, accept_def, opaque);
	if (r.file >= 0)
		close(r.file);
	free(r.written);
	free(r.buf);
	if (rc < 0) {
		(void)migrate_send_fail(wfd, kite_last_error());
		migrate_incoming_free(in);
	}
	return rc;
}

void migrate_incoming_free(struct migrate_incoming *in)
{
	if (in->path[0])
		unlink(in->path);
	in->path[0] = '\0';
	if (in->have_def)
		machine_config_free(&in->def);
	in->have_def = false;
}

int migrate_wait_go(int fd)
{
	uint32_t f[3];
	if (migrate_read_all(fd, f, sizeof(f)) < 0)
		return kite_error("migration: the source went away before the switch");
	if (f[0] != MIGRATE_F_GO || f[1] != 0 || f[2] != 0)
		return kite_error("migration stream: frame %#x where the switch belongs", f[0]);
	return 0;
}

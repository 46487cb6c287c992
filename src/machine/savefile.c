#include "machine/savefile.h"
#include "util/err.h"
#include "util/fullio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC	       "KITESAVE"
#define MAGIC_LEN      8
#define HEADER_MAX     (16u << 20)  /* a definition is a few KiB */
#define STATE_MAX      (256u << 20) /* device state is a few hundred KiB at most */
#define WRITE_CHUNK    (8u << 20)
#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((uint64_t)(a)-1))

static uint32_t crc(const void *p, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);
	const uint8_t *b = p;
	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		c = crc32(c, b, n);
		b += n;
		len -= n;
	}
	return (uint32_t)c;
}

/* A save file read short is a truncated one. */
static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = full_pread(fd, buf, len, off);
	return n < 0 ? (int)n : (size_t)n < len ? -EIO : 0;
}

/* ---- reading ---- */

static int read_header(struct savefile *f, uint64_t size, struct state_reader *hdr, uint8_t **hbuf)
{
	uint8_t head[MAGIC_LEN + 4];
	if (size < sizeof(head) || pread_all(f->fd, head, sizeof(head), 0) < 0 ||
	    memcmp(head, MAGIC, MAGIC_LEN))
		return kite_error("%s: not a kite save file", f->path);
	uint32_t hlen;
	memcpy(&hlen, head + MAGIC_LEN, 4);
	if (hlen > HEADER_MAX || sizeof(head) + (uint64_t)hlen + 4 > size)
		return kite_error("%s: the save file is cut short or corrupt (header of %u bytes)",
				  f->path, hlen);
	*hbuf = malloc((size_t)hlen + 4);
	if (!*hbuf)
		return kite_error("out of memory");
	if (pread_all(f->fd, *hbuf, (size_t)hlen + 4, sizeof(head)) < 0)
		return kite_error_errno(errno, "%s: read", f->path);
	uint32_t want;
	memcpy(&want, *hbuf + hlen, 4);
	if (crc(*hbuf, hlen) != want)
		return kite_error("%s: the save file is corrupt (header checksum)", f->path);
	size_t used;
	if (state_parse(hdr, *hbuf, hlen, &used) < 0 || used != hlen)
		return kite_error("%s: the save file's header is corrupt", f->path);
	if (strcmp(hdr->section, "savefile"))
		return kite_error("%s: not a kite save file (header %s)", f->path, hdr->section);
	if (hdr->version != SAVEFILE_VERSION)
		return kite_error("%s: save file format version %u; this kite reads version %u",
				  f->path, hdr->version, SAVEFILE_VERSION);
	return (int)hlen;
}

static int parse_definition(struct savefile *f, const uint8_t *text, size_t len)
{
	json_error_t je;
	json_t *root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return kite_error("%s: the saved definition is not valid JSON: %s", f->path,
				  je.text);
	char where[PATH_MAX + 32];
	snprintf(where, sizeof(where), "%s: saved definition", f->path);
	int r = machine_config_from_json(root, where, &f->def);
	json_decref(root);
	if (r < 0)
		return -1;
	if (f->def.memory != f->ram_size) {
		/* Both in KiB: the file's RAM is any number of pages, not always whole MiB. */
		unsigned long long def_kib = f->def.memory >> 10;
		machine_config_free(&f->def);
		return kite_error("%s: the definition has %llu KiB of memory, the file %llu KiB",
				  f->path, def_kib, (unsigned long long)(f->ram_size >> 10));
	}
	return 0;
}

/* The header's fields, and the file's length against them. */
static int check_layout(struct savefile *f, const struct state_reader *hdr, uint64_t hdr_end,
			uint64_t size, uint64_t *state_len, uint32_t *state_crc)
{
	uint32_t page;
	uint64_t created;
	if (state_get_u64(hdr, "state_length", state_len) < 0 ||
	    state_get_u32(hdr, "state_crc32", state_crc) < 0 ||
	    state_get_u64(hdr, "ram_offset", &f->ram_offset) < 0 ||
	    state_get_u64(hdr, "ram_size", &f->ram_size) < 0 ||
	    state_get_u32(hdr, "page_size", &page) < 0 ||
	    state_get_u64(hdr, "created", &created) < 0)
		return kite_error("%s: the save file's header is incomplete", f->path);
	f->created = (int64_t)created;
	if (page != SAVEFILE_PAGE || f->ram_offset % SAVEFILE_PAGE || f->ram_size % SAVEFILE_PAGE ||
	    f->ram_size == 0 || *state_len > STATE_MAX || f->ram_offset < hdr_end + *state_len ||
	    f->ram_offset > UINT64_MAX - f->ram_size)
		return kite_error("%s: the save file's layout is corrupt", f->path);
	if (f->ram_offset + f->ram_size > size)
		return kite_error(
		    "%s: the save file is cut short (%llu bytes, its RAM ends at %llu)", f->path,
		    (unsigned long long)size, (unsigned long long)(f->ram_offset + f->ram_size));
	return 0;
}

int savefile_open(struct savefile *f, const char *path)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return kite_error_errno(errno, "%s", path);
	struct stat st;
	uint8_t *hbuf = NULL;
	struct state_reader hdr;
	uint64_t state_len;
	uint32_t state_crc;
	const uint8_t *def;
	size_t def_len;
	if (fstat(f->fd, &st) < 0) {
		kite_error_errno(errno, "%s", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		kite_error("%s: not a kite save file (not a regular file)", path);
		goto fail;
	}
	int hlen = read_header(f, (uint64_t)st.st_size, &hdr, &hbuf);
	if (hlen < 0)
		goto fail;
	uint64_t hdr_end = MAGIC_LEN + 4 + (uint64_t)hlen + 4;
	if (check_layout(f, &hdr, hdr_end, (uint64_t)st.st_size, &state_len, &state_crc) < 0 ||
	    state_get_blob(&hdr, "definition", &def, &def_len) < 0)
		goto fail;
	f->state_len = (size_t)state_len;
	f->state = malloc(f->state_len ? f->state_len : 1);
	if (!f->state) {
		kite_error("out of memory");
		goto fail;
	}
	if (pread_all(f->fd, f->state, f->state_len, hdr_end) < 0) {
		kite_error("%s: the save file is cut short (state)", path);
		goto fail;
	}
	struct state_stream s;
	state_stream_init(&s, f->state, f->state_len);
	if (crc(f->state, f->state_len) != state_crc) {
		kite_error("%s: the save file is corrupt (state checksum)", path);
		goto fail;
	}
	if (state_stream_check(&s) < 0) {
		kite_error("%s: the save file's state is corrupt", path);
		goto fail;
	}
	if (parse_definition(f, def, def_len) < 0)
		goto fail;
	f->def_owned = true;
	free(hbuf);
	return 0;
fail:
	free(hbuf);
	free(f->state);
	f->state = NULL;
	close(f->fd);
	f->fd = -1;
	return -1;
}

void savefile_close(struct savefile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->state);
	f->state = NULL;
	if (f->def_owned)
		machine_config_free(&f->def);
	f->def_owned = false;
}

int savefile_map_ram(const struct savefile *f, struct guest_mem *mem)
{
	if (mem->ram_size != f->ram_size)
		return kite_error("%s: %llu MiB of saved RAM for a %llu MiB guest", f->path,
				  (unsigned long long)(f->ram_size >> 20),
				  (unsigned long long)(mem->ram_size >> 20));
	void *p = mmap(mem->base, f->ram_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, f->fd, (off_t)f->ram_offset);
	if (p == MAP_FAILED)
		return kite_error_errno(errno, "%s: cannot map the saved RAM", f->path);
	return 0;
}

/* ---- writing ---- */

static bool zero_page(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	for (size_t i = 0; i < SAVEFILE_PAGE / 8; i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

/* Every run of non-zero pages of RAM at its place; the zero ones stay holes. */
static int write_ram(int fd, const struct guest_mem *mem, uint64_t off)
{
	if (!mem)
		return 0;
	const uint8_t *ram = mem->base;
	uint64_t n = mem->ram_size / SAVEFILE_PAGE;
	for (uint64_t i = 0; i < n;) {
		if (zero_page(ram + i * SAVEFILE_PAGE)) {
			i++;
			continue;
		}
		uint64_t j = i + 1;
		while (j < n && (j - i) * SAVEFILE_PAGE < WRITE_CHUNK &&
		       !zero_page(ram + j * SAVEFILE_PAGE))
			j++;
		int rc = full_pwrite(fd, ram + i * SAVEFILE_PAGE, (size_t)((j - i) * SAVEFILE_PAGE),
				     off + i * SAVEFILE_PAGE);
		if (rc < 0)
			return rc;
		i = j;
	}
	return 0;
}

static int build_header(struct state_buf *hdr, const struct machine_config *def,
			const struct state_buf *state, uint64_t ram_size, uint64_t *ram_offset)
{
	json_t *j = machine_config_to_json(def);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!text)
		return kite_error("out of memory");
	struct state_writer w;
	/* The header's length does not depend on the values: write it once to learn it. */
	for (int pass = 0; pass < 2; pass++) {
		uint64_t hdr_end = MAGIC_LEN + 4 + hdr->len + 4;
		*ram_offset = ALIGN_UP(hdr_end + state->len, SAVEFILE_PAGE);
		hdr->len = 0;
		state_begin(&w, hdr, "savefile", SAVEFILE_VERSION);
		state_put_bytes(&w, "definition", text, strlen(text));
		state_put_u64(&w, "state_length", state->len);
		state_put_u32(&w, "state_crc32", crc(state->data, state->len));
		state_put_u64(&w, "ram_offset", *ram_offset);
		state_put_u64(&w, "ram_size", ram_size);
		state_put_u32(&w, "page_size", SAVEFILE_PAGE);
		state_put_u64(&w, "created", (uint64_t)time(NULL));
		state_end(&w);
	}
	free(text);
	return state_buf_check(hdr);
}

static int write_file(int fd, const struct state_buf *hdr, const struct state_buf *state,
		      const struct guest_mem *mem, uint64_t ram_size, uint64_t ram_offset)
{
	uint8_t head[MAGIC_LEN + 4];
	uint32_t hlen = (uint32_t)hdr->len, hcrc = crc(hdr->data, hdr->len);
	memcpy(head, MAGIC, MAGIC_LEN);
	memcpy(head + MAGIC_LEN, &hlen, 4);
	uint64_t off = 0;
	int rc;
	if ((rc = full_pwrite(fd, head, sizeof(head), off)) < 0 ||
	    (rc = full_pwrite(fd, hdr->data, hdr->len, off += sizeof(head))) < 0 ||
	    (rc = full_pwrite(fd, &hcrc, 4, off += hdr->len)) < 0 ||
	    (rc = full_pwrite(fd, state->data, state->len, off += 4)) < 0)
		return rc;
	if (ftruncate(fd, (off_t)(ram_offset + ram_size)) < 0)
		return -errno;
	if ((rc = write_ram(fd, mem, ram_offset)) < 0)
		return rc;
	return fsync(fd) < 0 ? -errno : 0;
}

int savefile_write(const char *path, const struct machine_config *def,
		   const struct state_buf *state, const struct guest_mem *mem)
{
	uint64_t ram_size = mem ? mem->ram_size : def->memory, ram_offset = 0;
	struct state_buf hdr = {0};
	if (build_header(&hdr, def, state, ram_size, &ram_offset) < 0) {
		state_buf_free(&hdr);
		return -1;
	}
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
		state_buf_free(&hdr);
		return kite_error("%s: path too long", path);
	}
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		state_buf_free(&hdr);
		return kite_error_errno(errno, "%s: cannot create it", path);
	}
	int rc = write_file(fd, &hdr, state, mem, ram_size, ram_offset);
	state_buf_free(&hdr);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return kite_error_errno(-rc, "%s: cannot write the save file", path);
	}
	/* The rename itself on disk: the directory's entry. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

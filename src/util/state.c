#include "util/state.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define RECORD_MAGIC 0x3152534bu /* "KSR1" */
#define HEADER_FIXED 13		 /* magic, name length, version, body length (no name) */

void state_buf_free(struct state_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int state_buf_check(const struct state_buf *b)
{
	return b->failed ? kite_error("device state: out of memory") : 0;
}

static void buf_put(struct state_buf *b, const void *p, size_t len)
{
	if (b->failed)
		return;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->failed = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, len);
	b->len += len;
}

static void buf_le(struct state_buf *b, uint64_t v, unsigned width)
{
	uint8_t le[8];
	for (unsigned i = 0; i < width; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	buf_put(b, le, width);
}

static uint64_t get_le(const uint8_t *p, unsigned width)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < width; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_name(struct state_buf *b, const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > STATE_NAME_MAX) { /* a programming error: keep the stream sane */
		b->failed = true;
		return;
	}
	uint8_t len = (uint8_t)n;
	buf_put(b, &len, 1);
	buf_put(b, name, n);
}

void state_begin(struct state_writer *w, struct state_buf *out, const char *section,
		 uint32_t version)
{
	w->out = out;
	w->start = out->len;
	buf_le(out, RECORD_MAGIC, 4);
	put_name(out, section);
	buf_le(out, version, 4);
	buf_le(out, 0, 4); /* body length, patched by state_end */
}

static void put_field(struct state_writer *w, const char *name, enum state_type t, const void *p,
		      size_t len)
{
	if (len > STATE_RECORD_MAX) {
		w->out->failed = true;
		return;
	}
	put_name(w->out, name);
	uint8_t type = (uint8_t)t;
	buf_put(w->out, &type, 1);
	buf_le(w->out, len, 4);
	buf_put(w->out, p, len);
}

static void put_int(struct state_writer *w, const char *name, enum state_type t, uint64_t v,
		    unsigned width)
{
	uint8_t le[8];
	for (unsigned i = 0; i < width; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	put_field(w, name, t, le, width);
}

void state_put_u8(struct state_writer *w, const char *name, uint8_t v)
{
	put_int(w, name, STATE_U8, v, 1);
}

void state_put_u16(struct state_writer *w, const char *name, uint16_t v)
{
	put_int(w, name, STATE_U16, v, 2);
}

void state_put_u32(struct state_writer *w, const char *name, uint32_t v)
{
	put_int(w, name, STATE_U32, v, 4);
}

void state_put_u64(struct state_writer *w, const char *name, uint64_t v)
{
	put_int(w, name, STATE_U64, v, 8);
}

void state_put_bool(struct state_writer *w, const char *name, bool v)
{
	put_int(w, name, STATE_U8, v ? 1 : 0, 1);
}

void state_put_bytes(struct state_writer *w, const char *name, const void *p, size_t len)
{
	put_field(w, name, STATE_BYTES, p, len);
}

void state_end(struct state_writer *w)
{
	struct state_buf *b = w->out;
	if (b->failed)
		return;
	size_t name_len = b->data[w->start + 4];
	size_t body_at = w->start + HEADER_FIXED + name_len;
	size_t body = b->len - body_at;
	if (body > STATE_RECORD_MAX) {
		b->failed = true;
		return;
	}
	for (unsigned i = 0; i < 4; i++)
		b->data[body_at - 4 + i] = (uint8_t)(body >> (8 * i));
}

/* ---- reading ---- */

/* Reads a name at p[0..avail): copies it to out, returns the bytes it took, or 0. */
static size_t take_name(const uint8_t *p, size_t avail, char *out)
{
	if (avail < 1 || p[0] == 0 || p[0] > STATE_NAME_MAX || (size_t)p[0] + 1 > avail)
		return 0;
	size_t n = p[0];
	for (size_t i = 0; i < n; i++) {
		char c = (char)p[1 + i];
		if (c < 0x21 || c > 0x7e) /* printable, so an error message can show it */
			return 0;
		out[i] = c;
	}
	out[n] = '\0';
	return n + 1;
}

int state_parse(struct state_reader *r, const void *buf, size_t len, size_t *used)
{
	const uint8_t *p = buf;
	memset(r, 0, sizeof(*r));
	if (len < HEADER_FIXED + 1)
		return kite_error("device state: a record is cut short (%zu bytes left)", len);
	if (get_le(p, 4) != RECORD_MAGIC)
		return kite_error("device state: not a state record (bad magic)");
	size_t n = take_name(p + 4, len - 4, r->section);
	if (!n)
		return kite_error("device state: a record has a bad section name");
	size_t at = 4 + n;
	if (len - at < 8)
		return kite_error("device state: record %s is cut short", r->section);
	r->version = (uint32_t)get_le(p + at, 4);
	uint64_t body = get_le(p + at + 4, 4);
	at += 8;
	if (body > STATE_RECORD_MAX || body > len - at)
		return kite_error("device state: record %s: its length (%llu bytes) runs past the "
				  "end (%zu left)",
				  r->section, (unsigned long long)body, len - at);
	r->body = p + at;
	r->body_len = (size_t)body;
	/* Every field inside the body, every integer of its width. */
	for (size_t off = 0; off < r->body_len;) {
		char name[STATE_NAME_MAX + 1];
		size_t k = take_name(r->body + off, r->body_len - off, name);
		if (!k || r->body_len - off - k < 5)
			return kite_error("device state: record %s: a field is cut short or badly "
					  "named",
					  r->section);
		uint8_t type = r->body[off + k];
		uint64_t flen = get_le(r->body + off + k + 1, 4);
		size_t data = off + k + 5;
		if (flen > r->body_len - data)
			return kite_error(
			    "device state: record %s: field %s (%llu bytes) runs past "
			    "the end of the record",
			    r->section, name, (unsigned long long)flen);
		bool ok = (type == STATE_U8 && flen == 1) || (type == STATE_U16 && flen == 2) ||
			  (type == STATE_U32 && flen == 4) || (type == STATE_U64 && flen == 8) ||
			  type == STATE_BYTES;
		if (!ok)
			return kite_error("device state: record %s: field %s has type %u and %llu "
					  "bytes",
					  r->section, name, type, (unsigned long long)flen);
		off = data + (size_t)flen;
	}
	*used = at + r->body_len;
	return 0;
}

int state_expect(const struct state_reader *r, const char *section, uint32_t min, uint32_t max)
{
	if (strcmp(r->section, section))
		return kite_error("device state: expected a %s record, found %s", section,
				  r->section);
	if ((r->version < min || r->version > max) && min == max)
		return kite_error("device state: %s record version %u (this kite reads %u)",
				  section, r->version, min);
	if (r->version < min || r->version > max)
		return kite_error("device state: %s record version %u (this kite reads %u to %u)",
				  section, r->version, min, max);
	return 0;
}

/* The field `name`: its type, data and length. False when absent. */
static bool find(const struct state_reader *r, const char *name, uint8_t *type,
		 const uint8_t **data, size_t *len)
{
	for (size_t off = 0; off < r->body_len;) {
		char fname[STATE_NAME_MAX + 1];
		size_t k = take_name(r->body + off, r->body_len - off, fname);
		/* state_parse checked the framing: k is never 0 here. */
		uint8_t t = r->body[off + k];
		size_t flen = (size_t)get_le(r->body + off + k + 1, 4);
		size_t at = off + k + 5;
		if (!strcmp(fname, name)) {
			*type = t;
			*data = r->body + at;
			*len = flen;
			return true;
		}
		off = at + flen;
	}
	return false;
}

bool state_has(const struct state_reader *r, const char *name)
{
	uint8_t t;
	const uint8_t *d;
	size_t l;
	return find(r, name, &t, &d, &l);
}

static int get_int(const struct state_reader *r, const char *name, enum state_type want,
		   unsigned width, uint64_t *v)
{
	uint8_t t;
	const uint8_t *d;
	size_t l;
	if (!find(r, name, &t, &d, &l))
		return kite_error("device state: record %s has no field %s", r->section, name);
	if (t != want || l != width)
		return kite_error("device state: record %s: field %s is not a %u-byte integer",
				  r->section, name, width);
	*v = get_le(d, width);
	return 0;
}

int state_get_u8(const struct state_reader *r, const char *name, uint8_t *v)
{
	uint64_t x = 0;
	if (get_int(r, name, STATE_U8, 1, &x) < 0)
		return -1;
	*v = (uint8_t)x;
	return 0;
}

int state_get_u16(const struct state_reader *r, const char *name, uint16_t *v)
{
	uint64_t x = 0;
	if (get_int(r, name, STATE_U16, 2, &x) < 0)
		return -1;
	*v = (uint16_t)x;
	return 0;
}

int state_get_u32(const struct state_reader *r, const char *name, uint32_t *v)
{
	uint64_t x = 0;
	if (get_int(r, name, STATE_U32, 4, &x) < 0)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

int state_get_u64(const struct state_reader *r, const char *name, uint64_t *v)
{
	return get_int(r, name, STATE_U64, 8, v);
}

int state_get_bool(const struct state_reader *r, const char *name, bool *v)
{
	uint64_t x = 0;
	if (get_int(r, name, STATE_U8, 1, &x) < 0)
		return -1;
	if (x > 1)
		return kite_error("device state: record %s: field %s is not 0 or 1", r->section,
				  name);
	*v = x == 1;
	return 0;
}

int state_get_blob(const struct state_reader *r, const char *name, const uint8_t **p, size_t *len)
{
	uint8_t t;
	if (!find(r, name, &t, p, len))
		return kite_error("device state: record %s has no field %s", r->section, name);
	if (t != STATE_BYTES)
		return kite_error("device state: record %s: field %s is not bytes", r->section,
				  name);
	return 0;
}

int state_get_bytes(const struct state_reader *r, const char *name, void *dst, size_t len)
{
	const uint8_t *p;
	size_t l;
	if (state_get_blob(r, name, &p, &l) < 0)
		return -1;
	if (l != len)
		return kite_error("device state: record %s: field %s has %zu bytes, expected %zu",
				  r->section, name, l, len);
	memcpy(dst, p, len);
	return 0;
}

/* ---- streams ---- */

void state_stream_init(struct state_stream *s, const void *data, size_t len)
{
	s->data = data;
	s->len = len;
	s->off = 0;
}

bool state_stream_done(const struct state_stream *s)
{
	return s->off >= s->len;
}

int state_next(struct state_stream *s, struct state_reader *r, const char *section, uint32_t min,
	       uint32_t max)
{
	if (state_stream_done(s))
		return kite_error("device state: the %s record is missing (the state ends before "
				  "it)",
				  section);
	size_t used;
	if (state_parse(r, s->data + s->off, s->len - s->off, &used) < 0 ||
	    state_expect(r, section, min, max) < 0)
		return -1;
	s->off += used;
	return 0;
}

int state_stream_check(const struct state_stream *s)
{
	int n = 0;
	for (size_t off = s->off; off < s->len; n++) {
		struct state_reader r;
		size_t used;
		if (state_parse(&r, s->data + off, s->len - off, &used) < 0)
			return -1;
		off += used;
	}
	return n;
}

int state_save_dev(const struct state_ops *ops, void *dev, struct state_buf *out)
{
	return ops->save(dev, out);
}

int state_load_dev(const struct state_ops *ops, void *dev, struct state_stream *s)
{
	struct state_reader r;
	if (state_next(s, &r, ops->section, 1, ops->version) < 0)
		return -1;
	return ops->load(dev, &r);
}

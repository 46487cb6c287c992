/* Device state records: each device and vCPU saves its state as one record, a versioned and
 * self-describing section that a later run (or a hostile file) is checked against on load.
 *
 * A record, every integer little-endian:
 *   u32 magic "KSR1"
 *   u8  name length (1..STATE_NAME_MAX), the section name ("serial", "vcpu", "pci-dev"...)
 *   u32 version of the section's layout
 *   u32 body length
 *   body: fields, each
 *     u8  name length (1..STATE_NAME_MAX), the field name
 *     u8  type (STATE_U8, STATE_U16, STATE_U32, STATE_U64, STATE_BYTES)
 *     u32 length (1, 2, 4, 8 for the integers; any for bytes)
 *     the value
 * Fields are found by name, so a loader can tell a missing field from a bad one, and every
 * size is checked before a byte is copied. A loader accepts the versions it knows and
 * refuses others with an error that names both.
 *
 * Records follow each other in a stream (a save file's state part); state_next() takes the
 * next one and checks its name. Nothing here knows devices: they call it. */
#ifndef KITE_UTIL_STATE_H
#define KITE_UTIL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_NAME_MAX	 40
#define STATE_RECORD_MAX (64u << 20) /* no record is larger: a bigger length is corrupt */

enum state_type { STATE_U8 = 1, STATE_U16, STATE_U32, STATE_U64, STATE_BYTES };

/* A growing buffer records are written to. A failed allocation is remembered: the writer
 * goes on, and state_buf_failed() tells at the end. */
struct state_buf {
	uint8_t *data;
	size_t len, cap;
	bool failed;
};

void state_buf_free(struct state_buf *b);
/* -1 with an error printed when an allocation failed, else 0. */
int state_buf_check(const struct state_buf *b);

/* Writing one record: state_begin, the fields, state_end. */
struct state_writer {
	struct state_buf *out;
	size_t start; /* where this record's header begins in out */
};

void state_begin(struct state_writer *w, struct state_buf *out, const char *section,
		 uint32_t version);
void state_put_u8(struct state_writer *w, const char *name, uint8_t v);
void state_put_u16(struct state_writer *w, const char *name, uint16_t v);
void state_put_u32(struct state_writer *w, const char *name, uint32_t v);
void state_put_u64(struct state_writer *w, const char *name, uint64_t v);
void state_put_bytes(struct state_writer *w, const char *name, const void *p, size_t len);
void state_put_bool(struct state_writer *w, const char *name, bool v);
/* Patches the body length in. */
void state_end(struct state_writer *w);

/* One record, parsed and checked for framing (every field inside the body). */
struct state_reader {
	char section[STATE_NAME_MAX + 1];
	uint32_t version;
	const uint8_t *body;
	size_t body_len;
};

/* Parses the record at buf[0..len): *used is its size. Returns 0 or -1 with an error printed
 * (bad magic, sizes past the end, a field that overruns the body, names too long). */
int state_parse(struct state_reader *r, const void *buf, size_t len, size_t *used);
/* The section must be `section` with a version in [min, max]. Returns 0 or -1 (printed). */
int state_expect(const struct state_reader *r, const char *section, uint32_t min, uint32_t max);

/* Fields. Each returns 0, or -1 with an error naming the section and field when it is
 * missing or has another type or size. */
int state_get_u8(const struct state_reader *r, const char *name, uint8_t *v);
int state_get_u16(const struct state_reader *r, const char *name, uint16_t *v);
int state_get_u32(const struct state_reader *r, const char *name, uint32_t *v);
int state_get_u64(const struct state_reader *r, const char *name, uint64_t *v);
int state_get_bool(const struct state_reader *r, const char *name, bool *v);
/* Exactly `len` bytes into dst. */
int state_get_bytes(const struct state_reader *r, const char *name, void *dst, size_t len);
/* Bytes of any length, pointed to in place. */
int state_get_blob(const struct state_reader *r, const char *name, const uint8_t **p, size_t *len);
bool state_has(const struct state_reader *r, const char *name);

/* A stream of records. */
struct state_stream {
	const uint8_t *data;
	size_t len, off;
};

void state_stream_init(struct state_stream *s, const void *data, size_t len);
/* The next record, which must be `section` with a version in [min, max]. Returns 0 or -1
 * (printed: the stream ended, or another section comes next). */
int state_next(struct state_stream *s, struct state_reader *r, const char *section, uint32_t min,
	       uint32_t max);
/* Checks the framing of every record left. Returns how many, or -1 (printed). */
int state_stream_check(const struct state_stream *s);
bool state_stream_done(const struct state_stream *s);

/* What a device offers for saving: its section and version, save (one record appended to
 * out) and load (from the reader, already checked for section and version). Both return 0
 * or -1 with an error printed; a load that fails leaves the device as valid as before. */
struct state_ops {
	const char *section;
	uint32_t version;
	int (*save)(void *dev, struct state_buf *out);
	int (*load)(void *dev, const struct state_reader *r);
};

/* Saves through ops / loads the next record of `s` through ops. */
int state_save_dev(const struct state_ops *ops, void *dev, struct state_buf *out);
int state_load_dev(const struct state_ops *ops, void *dev, struct state_stream *s);

#endif

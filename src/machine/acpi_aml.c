#include "machine/acpi_aml.h"
#include "machine/boot_bytes.h"

#include <stdlib.h>
#include <string.h>

#define AML_ZERO       0x00
#define AML_ONE	       0x01
#define AML_NAME_OP    0x08
#define AML_BYTE_PFX   0x0A
#define AML_WORD_PFX   0x0B
#define AML_DWORD_PFX  0x0C
#define AML_QWORD_PFX  0x0E
#define AML_SCOPE_OP   0x10
#define AML_BUFFER_OP  0x11
#define AML_PACKAGE_OP 0x12
#define AML_EXT_PFX    0x5B
#define AML_DEVICE_OP  0x82
#define AML_ROOT_CHAR  0x5C
#define AML_DUAL_PFX   0x2E
#define AML_MULTI_PFX  0x2F

#define RES_IO		 0x47
#define RES_END		 0x79
#define RES_MEM32_FIXED	 0x86
#define RES_DWORD_ADDR	 0x87
#define RES_WORD_ADDR	 0x88
#define ADDR_TYPE_MEM	 0
#define ADDR_TYPE_IO	 1
#define ADDR_TYPE_BUS	 2
#define ADDR_MIN_MAX_FIX 0x0C /* MinFixed, MaxFixed, PosDecode, ResourceProducer */

void aml_free(struct aml *a)
{
	free(a->p);
	memset(a, 0, sizeof(*a));
}

void aml_bytes(struct aml *a, const void *b, size_t n)
{
	if (a->failed)
		return;
	if (a->len + n > a->cap) {
		size_t cap = a->cap ? a->cap : 256;
		while (cap < a->len + n)
			cap *= 2;
		uint8_t *p = realloc(a->p, cap);
		if (!p) {
			a->failed = true;
			return;
		}
		a->p = p;
		a->cap = cap;
	}
	memcpy(a->p + a->len, b, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[9];
	if (v == 0 || v == 1) {
		aml_byte(a, v ? AML_ONE : AML_ZERO);
		return;
	}
	int n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffff ? 4 : 8;
	b[0] = n == 1	? AML_BYTE_PFX
	       : n == 2 ? AML_WORD_PFX
	       : n == 4 ? AML_DWORD_PFX
			: AML_QWORD_PFX;
	for (int i = 0; i < n; i++)
		b[1 + i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, (size_t)n + 1);
}

static void nameseg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = {'_', '_', '_', '_'};
	memcpy(seg, s, n > 4 ? 4 : n);
	aml_bytes(a, seg, 4);
}

void aml_name(struct aml *a, const char *path)
{
	if (*path == '\\') {
		aml_byte(a, AML_ROOT_CHAR);
		path++;
	}
	const char *segs[8];
	size_t lens[8], n = 0;
	while (*path && n < 8) {
		const char *dot = strchr(path, '.');
		size_t l = dot ? (size_t)(dot - path) : strlen(path);
		segs[n] = path;
		lens[n++] = l;
		path += l + (dot ? 1 : 0);
	}
	if (n == 2)
		aml_byte(a, AML_DUAL_PFX);
	else if (n > 2) {
		aml_byte(a, AML_MULTI_PFX);
		aml_byte(a, (uint8_t)n);
	}
	for (size_t i = 0; i < n; i++)
		nameseg(a, segs[i], lens[i]);
}

uint32_t aml_eisaid(const char *id)
{
	/* Three letters in 5 bits each, then four hex digits; stored in big-endian byte order. */
	uint32_t v = (uint32_t)((id[0] - 0x40) & 0x1f) << 26 |
		     (uint32_t)((id[1] - 0x40) & 0x1f) << 21 |
		     (uint32_t)((id[2] - 0x40) & 0x1f) << 16 | (uint32_t)strtoul(id + 3, NULL, 16);
	return __builtin_bswap32(v);
}

void aml_name_decl(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME_OP);
	aml_name(a, path);
}

/* PkgLength counts itself: 1 byte up to 63, else 2-4 bytes with the low nibble first. */
static void pkg_length(struct aml *a, size_t body)
{
	size_t total;
	if (body + 1 < 0x40) {
		aml_byte(a, (uint8_t)(body + 1));
		return;
	}
	int extra = body + 2 < 0x1000 ? 1 : body + 3 < 0x100000 ? 2 : 3;
	total = body + 1 + (size_t)extra;
	aml_byte(a, (uint8_t)(extra << 6 | (total & 0xf)));
	for (int i = 0; i < extra; i++)
		aml_byte(a, (uint8_t)(total >> (4 + 8 * i)));
}

static void wrap(struct aml *a, const uint8_t *op, size_t oplen, struct aml *head, struct aml *body)
{
	if (body->failed || (head && head->failed))
		a->failed = true;
	aml_bytes(a, op, oplen);
	pkg_length(a, (head ? head->len : 0) + body->len);
	if (head)
		aml_bytes(a, head->p, head->len);
	aml_bytes(a, body->p, body->len);
	if (head)
		aml_free(head);
	aml_free(body);
}

void aml_package(struct aml *a, uint8_t nelems, struct aml *body)
{
	struct aml head = {0};
	aml_byte(&head, nelems);
	const uint8_t op = AML_PACKAGE_OP;
	wrap(a, &op, 1, &head, body);
}

void aml_buffer(struct aml *a, struct aml *body)
{
	struct aml head = {0};
	aml_int(&head, body->len);
	const uint8_t op = AML_BUFFER_OP;
	wrap(a, &op, 1, &head, body);
}

void aml_device(struct aml *a, const char *name, struct aml *body)
{
	struct aml head = {0};
	aml_name(&head, name);
	const uint8_t op[2] = {AML_EXT_PFX, AML_DEVICE_OP};
	wrap(a, op, 2, &head, body);
}

void aml_scope(struct aml *a, const char *name, struct aml *body)
{
	struct aml head = {0};
	aml_name(&head, name);
	const uint8_t op = AML_SCOPE_OP;
	wrap(a, &op, 1, &head, body);
}

static void word_addr(struct aml *a, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	uint8_t d[16] = {RES_WORD_ADDR, 13, 0, type, ADDR_MIN_MAX_FIX, tflags};
	put_le16(d + 6, 0); /* granularity */
	put_le16(d + 8, min);
	put_le16(d + 10, max);
	put_le16(d + 12, 0); /* translation */
	put_le16(d + 14, (uint16_t)(max - min + 1));
	aml_bytes(a, d, sizeof(d));
}

void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max)
{
	word_addr(a, ADDR_TYPE_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	word_addr(a, ADDR_TYPE_IO, 0x03 /* EntireRange */, min, max);
}

void aml_res_io(struct aml *a, uint16_t port, uint8_t len)
{
	uint8_t d[8] = {RES_IO, 0x01 /* Decode16 */};
	put_le16(d + 2, port);
	put_le16(d + 4, port);
	d[6] = 1; /* alignment */
	d[7] = len;
	aml_bytes(a, d, sizeof(d));
}

void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max)
{
	/* ReadWrite, NonCacheable */
	uint8_t d[26] = {RES_DWORD_ADDR, 23, 0, ADDR_TYPE_MEM, ADDR_MIN_MAX_FIX, 0x01};
	put_le32(d + 6, 0);
	put_le32(d + 10, min);
	put_le32(d + 14, max);
	put_le32(d + 18, 0);
	put_le32(d + 22, max - min + 1);
	aml_bytes(a, d, sizeof(d));
}

void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len)
{
	uint8_t d[12] = {RES_MEM32_FIXED, 9, 0, 0x01 /* ReadWrite */};
	put_le32(d + 4, base);
	put_le32(d + 8, len);
	aml_bytes(a, d, sizeof(d));
}

void aml_res_end(struct aml *a)
{
	const uint8_t d[2] = {RES_END, 0}; /* checksum 0: "treat as correct" */
	aml_bytes(a, d, 2);
}

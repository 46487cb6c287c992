#include "machine/elf.h"
#include "util/err.h"
#include "machine/boot_bytes.h"

#include <string.h>

#define EI_CLASS    4
#define EI_DATA	    5
#define CLASS32	    1
#define CLASS64	    2
#define DATA_LE	    1
#define EM_386	    3
#define EM_X86_64   62
#define PT_LOAD	    1
#define PT_NOTE	    4
#define EHDR32_SIZE 52
#define EHDR64_SIZE 64
#define PHDR32_SIZE 32
#define PHDR64_SIZE 56

/* One program header, widened to 64 bits whatever the class. */
struct phdr {
	uint32_t type;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

struct elf_file {
	const uint8_t *buf;
	size_t len;
	bool is64;
	uint64_t entry, phoff;
	unsigned phnum;
	const char *name;
};

static struct phdr phdr_at(const struct elf_file *f, unsigned i)
{
	struct phdr h;
	if (f->is64) {
		const uint8_t *p = f->buf + f->phoff + (uint64_t)i * PHDR64_SIZE;
		h.type = get_le32(p);
		h.offset = get_le64(p + 8);
		h.vaddr = get_le64(p + 16);
		h.paddr = get_le64(p + 24);
		h.filesz = get_le64(p + 32);
		h.memsz = get_le64(p + 40);
		h.align = get_le64(p + 48);
	} else {
		const uint8_t *p = f->buf + f->phoff + (uint64_t)i * PHDR32_SIZE;
		h.type = get_le32(p);
		h.offset = get_le32(p + 4);
		h.vaddr = get_le32(p + 8);
		h.paddr = get_le32(p + 12);
		h.filesz = get_le32(p + 16);
		h.memsz = get_le32(p + 20);
		h.align = get_le32(p + 28);
	}
	return h;
}

bool elf_is_elf(const uint8_t *buf, size_t len)
{
	return len >= 4 && memcmp(buf, "\177ELF", 4) == 0;
}

static int parse_header(struct elf_file *f)
{
	const uint8_t *b = f->buf;
	if (f->len < EHDR32_SIZE)
		return kite_error("%s: truncated ELF header (%zu bytes)", f->name, f->len);
	if (b[EI_DATA] != DATA_LE)
		return kite_error("%s: not a little-endian ELF", f->name);
	if (b[EI_CLASS] != CLASS32 && b[EI_CLASS] != CLASS64)
		return kite_error("%s: unknown ELF class %u", f->name, b[EI_CLASS]);
	f->is64 = b[EI_CLASS] == CLASS64;
	if (f->is64 && f->len < EHDR64_SIZE)
		return kite_error("%s: truncated ELF header (%zu bytes)", f->name, f->len);
	uint16_t machine = get_le16(b + 18);
	if (machine != (f->is64 ? EM_X86_64 : EM_386))
		return kite_error("%s: not an x86 ELF (machine %u)", f->name, machine);
	unsigned phentsize;
	if (f->is64) {
		f->entry = get_le64(b + 24);
		f->phoff = get_le64(b + 32);
		phentsize = get_le16(b + 54);
		f->phnum = get_le16(b + 56);
	} else {
		f->entry = get_le32(b + 24);
		f->phoff = get_le32(b + 28);
		phentsize = get_le16(b + 42);
		f->phnum = get_le16(b + 44);
	}
	if (phentsize != (f->is64 ? PHDR64_SIZE : PHDR32_SIZE))
		return kite_error("%s: unexpected ELF program header size %u", f->name, phentsize);
	if (f->phnum == 0)
		return kite_error("%s: ELF has no program headers", f->name);
	uint64_t table = (uint64_t)f->phnum * phentsize;
	if (f->phoff > f->len || table > f->len - f->phoff)
		return kite_error("%s: ELF program headers (offset 0x%llx) lie beyond the end of "
				  "the file (%zu bytes)",
				  f->name, (unsigned long long)f->phoff, f->len);
	return 0;
}

/* Walks the notes of one PT_NOTE segment. The descriptor and the next note start at the
 * segment's alignment: 4, or 8 in segments aligned to 8 (what newer linkers emit for some
 * notes). All sizes come from the file: every step is bounded by what is left. */
static int scan_notes(const struct elf_file *f, const struct phdr *h, struct elf_image *out)
{
	if (h->offset > f->len || h->filesz > f->len - h->offset)
		return kite_error("%s: ELF note segment lies beyond the end of the file", f->name);
	const uint8_t *p = f->buf + h->offset;
	uint64_t left = h->filesz, a = h->align == 8 ? 8 : 4;
	while (left >= 12) {
		uint64_t namesz = get_le32(p), descsz = get_le32(p + 4);
		uint32_t type = get_le32(p + 8);
		uint64_t desc_off = (12 + namesz + a - 1) & ~(a - 1);
		uint64_t next = (desc_off + descsz + a - 1) & ~(a - 1);
		if (desc_off > left || descsz > left - desc_off)
			return kite_error("%s: malformed ELF note", f->name);
		const uint8_t *name = p + 12, *desc = p + desc_off;
		if (namesz == 4 && memcmp(name, "Xen", 4) == 0 &&
		    type == ELF_NOTE_XEN_PHYS32_ENTRY) {
			if (descsz == 4)
				out->pvh_entry = get_le32(desc);
			else if (descsz == 8)
				out->pvh_entry = get_le64(desc);
			else
				return kite_error("%s: PVH entry note has %llu bytes", f->name,
						  (unsigned long long)descsz);
		}
		if (namesz == 6 && memcmp(name, "Linux", 6) == 0)
			out->linux_note = true;
		if (next >= left)
			break; /* the last note may omit its trailing padding */
		p += next;
		left -= next;
	}
	return 0;
}

static int check_avoid(const struct elf_file *f, const struct phdr *h, const struct elf_avoid *a)
{
	if (h->paddr >= a->end || h->paddr + h->memsz <= a->start)
		return 0;
	if (!a->what) /* the lowest address kite leaves to kernels */
		return kite_error("%s: ELF segment at 0x%llx lies below 0x%llx, where kite keeps "
				  "its boot data",
				  f->name, (unsigned long long)h->paddr,
				  (unsigned long long)a->end);
	return kite_error("%s: ELF segment 0x%llx-0x%llx overlaps kite's boot area: %s at "
			  "0x%llx-0x%llx",
			  f->name, (unsigned long long)h->paddr,
			  (unsigned long long)(h->paddr + h->memsz - 1), a->what,
			  (unsigned long long)a->start, (unsigned long long)(a->end - 1));
}

static int check_segment(const struct guest_mem *m, const struct elf_file *f, const struct phdr *h,
			 const struct elf_avoid *avoid, int navoid)
{
	if (h->filesz > h->memsz)
		return kite_error("%s: ELF segment has more file bytes than memory bytes", f->name);
	if (h->offset > f->len || h->filesz > f->len - h->offset)
		return kite_error("%s: ELF segment (offset 0x%llx, %llu bytes) lies beyond the end "
				  "of the file (%zu bytes)",
				  f->name, (unsigned long long)h->offset,
				  (unsigned long long)h->filesz, f->len);
	if (h->paddr > UINT64_MAX - h->memsz)
		return kite_error("%s: ELF segment address overflows", f->name);
	for (int i = 0; i < navoid; i++)
		if (check_avoid(f, h, &avoid[i]) < 0)
			return -1;
	if (!gmem_ptr(m, h->paddr, h->memsz))
		return kite_error("%s: kernel segment 0x%llx-0x%llx (%llu KiB) does not fit in "
				  "%llu MiB of guest RAM",
				  f->name, (unsigned long long)h->paddr,
				  (unsigned long long)(h->paddr + h->memsz),
				  (unsigned long long)(h->memsz >> 10),
				  (unsigned long long)(m->ram_size >> 20));
	return 0;
}

static bool in_segment(uint64_t a, uint64_t base, uint64_t size)
{
	return a >= base && a - base < size;
}

/* e_entry is a physical address in Linux's vmlinux; a program linked at virtual addresses has
 * it in a segment's virtual range instead. */
static uint64_t entry_to_phys(const struct elf_file *f, uint64_t e)
{
	for (unsigned i = 0; i < f->phnum; i++) {
		struct phdr h = phdr_at(f, i);
		if (h.type == PT_LOAD && in_segment(e, h.paddr, h.memsz))
			return e;
	}
	for (unsigned i = 0; i < f->phnum; i++) {
		struct phdr h = phdr_at(f, i);
		if (h.type == PT_LOAD && in_segment(e, h.vaddr, h.memsz))
			return h.paddr + (e - h.vaddr);
	}
	return 0;
}

/* Zeroes [p, p+len) (the .bss), but writes only pages that hold something: reading a page of a
 * fresh anonymous mapping maps the shared zero page, writing it costs resident memory, and a
 * guest's .bss can be far larger than what it ever touches. */
static void zero_untouched(uint8_t *p, uint64_t len)
{
	static const uint8_t zero[4096];
	while (len) {
		uint64_t n = len < sizeof(zero) ? len : sizeof(zero);
		if (memcmp(p, zero, n) != 0)
			memset(p, 0, n);
		p += n;
		len -= n;
	}
}

int elf_inspect(const uint8_t *buf, size_t len, const char *name, struct elf_image *out)
{
	memset(out, 0, sizeof(*out));
	struct elf_file f = {.buf = buf, .len = len, .name = name};
	if (!elf_is_elf(buf, len))
		return kite_error("%s: not an ELF file", name);
	if (parse_header(&f) < 0)
		return -1;
	out->is64 = f.is64;
	for (unsigned i = 0; i < f.phnum; i++) {
		struct phdr h = phdr_at(&f, i);
		if (h.type == PT_NOTE && scan_notes(&f, &h, out) < 0)
			return -1;
	}
	return 0;
}

int elf_load(struct guest_mem *m, const uint8_t *buf, size_t len, const char *name,
	     uint64_t min_addr, struct elf_image *out)
{
	const struct elf_avoid below = {0, min_addr, NULL};
	return elf_load_avoiding(m, buf, len, name, &below, min_addr ? 1 : 0, out);
}

int elf_load_avoiding(struct guest_mem *m, const uint8_t *buf, size_t len, const char *name,
		      const struct elf_avoid *avoid, int navoid, struct elf_image *out)
{
	memset(out, 0, sizeof(*out));
	struct elf_file f = {.buf = buf, .len = len, .name = name};
	if (!elf_is_elf(buf, len))
		return kite_error("%s: not an ELF file", name);
	if (parse_header(&f) < 0)
		return -1;
	out->is64 = f.is64;
	out->start = UINT64_MAX;
	/* Check everything before writing anything into guest memory. */
	for (unsigned i = 0; i < f.phnum; i++) {
		struct phdr h = phdr_at(&f, i);
		if (h.type == PT_NOTE && scan_notes(&f, &h, out) < 0)
			return -1;
		if (h.type != PT_LOAD || h.memsz == 0)
			continue;
		if (check_segment(m, &f, &h, avoid, navoid) < 0)
			return -1;
		if (h.paddr < out->start)
			out->start = h.paddr;
		if (h.paddr + h.memsz > out->end)
			out->end = h.paddr + h.memsz;
	}
	if (out->end == 0)
		return kite_error("%s: ELF has no loadable segment", name);
	out->entry = entry_to_phys(&f, f.entry);
	if (out->pvh_entry && entry_to_phys(&f, out->pvh_entry) != out->pvh_entry)
		return kite_error("%s: PVH entry 0x%llx is outside the loaded segments", name,
				  (unsigned long long)out->pvh_entry);
	if (!out->entry && !out->pvh_entry)
		return kite_error("%s: ELF entry point 0x%llx is outside the loaded segments", name,
				  (unsigned long long)f.entry);
	for (unsigned i = 0; i < f.phnum; i++) {
		struct phdr h = phdr_at(&f, i);
		if (h.type != PT_LOAD || h.memsz == 0)
			continue;
		uint8_t *dst = gmem_ptr(m, h.paddr, h.memsz);
		memcpy(dst, buf + h.offset, h.filesz);
		zero_untouched(dst + h.filesz, h.memsz - h.filesz);
	}
	return 0;
}

#include "machine/boot_multiboot.h"
#include "config/initrd_list.h"
#include "util/err.h"
#include "machine/boot_bytes.h"
#include "machine/boot_cpu.h"
#include "machine/boot_file.h"
#include "machine/e820.h"
#include "machine/elf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB_REQUIRED_UNKNOWN 0xfff8u /* bits 3-15: requirements no spec defines yet */
#define FOUR_GIB	    0x100000000ULL
#define PAGE		    4096ULL

/* What a multiboot kernel must keep out of: kite writes these before the kernel runs. */
static const struct elf_avoid boot_area[] = {
    {BOOT_GDT_ADDR, BOOT_GDT_ADDR + 0x100, "kite's boot GDT"},
    {BOOT_MB_INFO_ADDR, BOOT_MB_INFO_END, "the multiboot information"},
    {BOOT_CMDLINE_ADDR, BOOT_CMDLINE_ADDR + BOOT_CMDLINE_MAX,
     "the command line and module strings"},
    {E820_LOW_RAM_END, E820_HIGH_RAM, "the EBDA and ACPI tables (reserved in the memory map)"},
};
#define BOOT_AREA_N ((int)(sizeof(boot_area) / sizeof(boot_area[0])))

/* The loaded kernel. */
struct mb_image {
	uint64_t start, end, entry;
};

struct mb_module {
	uint64_t start, end;
	uint64_t string; /* guest address */
};

bool multiboot_find(const uint8_t *buf, size_t len, struct mb_header *h)
{
	size_t limit = len < MB_SEARCH_BYTES ? len : MB_SEARCH_BYTES;
	for (size_t off = 0; off + 12 <= limit; off += 4) {
		const uint8_t *p = buf + off;
		if (get_le32(p) != MB_HEADER_MAGIC ||
		    (uint32_t)(MB_HEADER_MAGIC + get_le32(p + 4) + get_le32(p + 8)) != 0)
			continue;
		memset(h, 0, sizeof(*h));
		h->offset = off;
		h->flags = get_le32(p + 4);
		if (off + 32 <= limit) {
			h->has_addresses = true;
			h->header_addr = get_le32(p + 12);
			h->load_addr = get_le32(p + 16);
			h->load_end_addr = get_le32(p + 20);
			h->bss_end_addr = get_le32(p + 24);
			h->entry_addr = get_le32(p + 28);
		}
		return true;
	}
	return false;
}

static int check_flags(const struct mb_header *h, const char *name)
{
	if (h->flags & MB_FLAG_VIDEO_MODE)
		return kite_error("%s: the multiboot header asks for a video mode (flags 0x%x, bit "
				  "2): kite has no display to set one on",
				  name, h->flags);
	if (h->flags & MB_REQUIRED_UNKNOWN)
		return kite_error("%s: the multiboot header requires features kite does not know "
				  "(flags 0x%x: bits 3-15 must be clear)",
				  name, h->flags);
	return 0;
}

/* [start, end) in RAM, below 4 GiB and clear of kite's boot area. */
static int check_image(const struct guest_mem *m, uint64_t start, uint64_t end, const char *name)
{
	if (end > FOUR_GIB)
		return kite_error("%s: the multiboot image 0x%llx-0x%llx goes past 4 GiB", name,
				  (unsigned long long)start, (unsigned long long)end);
	for (int i = 0; i < BOOT_AREA_N; i++)
		if (start < boot_area[i].end && end > boot_area[i].start)
			return kite_error("%s: the multiboot image 0x%llx-0x%llx overlaps kite's "
					  "boot area: %s at 0x%llx-0x%llx",
					  name, (unsigned long long)start,
					  (unsigned long long)(end - 1), boot_area[i].what,
					  (unsigned long long)boot_area[i].start,
					  (unsigned long long)(boot_area[i].end - 1));
	if (!gmem_ptr(m, start, end - start))
		return kite_error("%s: the multiboot image 0x%llx-0x%llx does not fit in %llu MiB "
				  "of guest RAM",
				  name, (unsigned long long)start, (unsigned long long)end,
				  (unsigned long long)(m->ram_size >> 20));
	return 0;
}

/* The file offset and sizes the header's load addresses describe (flag 16). */
static int aout_layout(const struct mb_header *h, size_t len, const char *name, uint64_t *offset,
		       uint64_t *load_size, uint64_t *mem_size)
{
	if (!h->has_addresses)
		return kite_error("%s: the multiboot header at offset 0x%zx sets flag 16 (load "
				  "addresses) but its address fields lie past the first 8 KiB or "
				  "the end of the file",
				  name, h->offset);
	if (h->header_addr < h->load_addr)
		return kite_error("%s: multiboot header_addr 0x%x lies below load_addr 0x%x", name,
				  h->header_addr, h->load_addr);
	uint64_t into = h->header_addr - h->load_addr;
	if (into > h->offset)
		return kite_error("%s: multiboot load_addr 0x%x lies 0x%llx bytes before the "
				  "header, which is at file offset 0x%zx: before the file begins",
				  name, h->load_addr, (unsigned long long)into, h->offset);
	*offset = h->offset - into;
	if (h->load_end_addr) {
		if (h->load_end_addr < h->load_addr)
			return kite_error("%s: multiboot load_end_addr 0x%x lies below load_addr "
					  "0x%x",
					  name, h->load_end_addr, h->load_addr);
		*load_size = h->load_end_addr - h->load_addr;
		if (*load_size > len - *offset)
			return kite_error("%s: multiboot load_end_addr 0x%x asks for %llu bytes "
					  "from file offset 0x%llx; the file has %zu bytes",
					  name, h->load_end_addr, (unsigned long long)*load_size,
					  (unsigned long long)*offset, len);
	} else {
		*load_size = len - *offset;
	}
	*mem_size = *load_size;
	if (h->bss_end_addr) {
		if (h->bss_end_addr < h->load_addr + *load_size)
			return kite_error("%s: multiboot bss_end_addr 0x%x lies below the end of "
					  "the loaded bytes (0x%llx)",
					  name, h->bss_end_addr,
					  (unsigned long long)(h->load_addr + *load_size));
		*mem_size = h->bss_end_addr - h->load_addr;
	}
	if (*mem_size == 0)
		return kite_error("%s: the multiboot load addresses load nothing", name);
	return 0;
}

/* Loads the bytes the header's load addresses describe (the "a.out kludge"). */
static int load_aout(struct guest_mem *m, const uint8_t *buf, size_t len, const struct mb_header *h,
		     const char *name, struct mb_image *img)
{
	uint64_t offset = 0, load_size = 0, mem_size = 0;
	if (aout_layout(h, len, name, &offset, &load_size, &mem_size) < 0)
		return -1;
	uint64_t start = h->load_addr, end = start + mem_size;
	if (check_image(m, start, end, name) < 0)
		return -1;
	if (h->entry_addr < start || h->entry_addr >= end)
		return kite_error("%s: multiboot entry_addr 0x%x lies outside the image "
				  "0x%llx-0x%llx",
				  name, h->entry_addr, (unsigned long long)start,
				  (unsigned long long)(end - 1));
	uint8_t *dst = gmem_ptr(m, start, mem_size);
	memcpy(dst, buf + offset, load_size);
	memset(dst + load_size, 0, mem_size - load_size);
	*img = (struct mb_image){.start = start, .end = end, .entry = h->entry_addr};
	return 0;
}

/* Loads an ELF32's segments; returns 1 (nothing loaded) for an ELF64 with a PVH note. */
static int load_elf32(struct guest_mem *m, const uint8_t *buf, size_t len, const char *name,
		      struct mb_image *img)
{
	if (!elf_is_elf(buf, len))
		return kite_error("%s: a multiboot header without load addresses (flag 16) in a "
				  "file that is not an ELF: kite cannot tell where to load it",
				  name);
	struct elf_image e;
	if (elf_inspect(buf, len, name, &e) < 0)
		return -1;
	if (e.is64) {
		if (e.pvh_entry)
			return 1;
		return kite_error("%s: a 64-bit ELF with a multiboot header: multiboot kernels "
				  "start in 32-bit mode, from an ELF32 (objcopy -O elf32-i386) or "
				  "from the header's load addresses (flag 16)",
				  name);
	}
	if (elf_load_avoiding(m, buf, len, name, boot_area, BOOT_AREA_N, &e) < 0)
		return -1;
	if (!e.entry)
		return kite_error("%s: ELF entry point is outside the loaded segments", name);
	*img = (struct mb_image){.start = e.start, .end = e.end, .entry = e.entry};
	return 0;
}

/* Copies one module file to `addr` (page aligned, after `*next`) and advances *next. */
static int load_module(struct guest_mem *m, const struct initrd_module *mod, int index,
		       uint64_t *next, struct mb_module *out)
{
	struct boot_file f;
	if (boot_file_map(mod->path, &f) < 0)
		return -1;
	uint64_t addr = (*next + PAGE - 1) & ~(PAGE - 1), len = f.len;
	int r = 0;
	if (addr + len > FOUR_GIB || !gmem_ptr(m, addr, len ? len : 1))
		r = kite_error("--initrd: multiboot module %d (%s, %llu KiB) does not fit in guest "
			       "RAM below 4 GiB from 0x%llx, after the kernel and the modules "
			       "before it",
			       index, mod->path, (unsigned long long)(len >> 10),
			       (unsigned long long)addr);
	else if (len)
		memcpy(gmem_ptr(m, addr, len), f.data, len);
	boot_file_unmap(&f);
	out->start = addr;
	out->end = addr + len;
	*next = out->end;
	return r;
}

/* Appends NUL-terminated `s` to the strings area; returns its guest address, or 0 when the
 * area is full. */
static uint64_t add_string(char *area, size_t *used, const char *s)
{
	size_t n = strlen(s) + 1;
	if (n > BOOT_CMDLINE_MAX - *used)
		return 0;
	memcpy(area + *used, s, n);
	uint64_t addr = BOOT_CMDLINE_ADDR + *used;
	*used += n;
	return addr;
}

/* The modules and every string: the command line first, at BOOT_CMDLINE_ADDR. */
static int load_modules_and_strings(struct guest_mem *m, const struct multiboot_args *a,
				    uint64_t after, struct mb_module *mods, int *nmods,
				    uint64_t *cmdline_addr)
{
	struct initrd_module l[MB_MAX_MODULES];
	int n = 0;
	if (a->modules && (n = initrd_list_parse(a->modules, l, MB_MAX_MODULES, "--initrd")) < 0)
		return -1;
	char *area = malloc(BOOT_CMDLINE_MAX);
	char *cmd = NULL;
	int r = -1;
	if (!area || asprintf(&cmd, "%s %s", a->kernel_path, a->cmdline ? a->cmdline : "") < 0) {
		cmd = NULL;
		kite_error("out of memory");
		goto out;
	}
	size_t used = 0;
	*cmdline_addr = add_string(area, &used, cmd);
	bool full = !*cmdline_addr;
	uint64_t next = after < E820_HIGH_RAM ? E820_HIGH_RAM : after;
	for (int i = 0; i < n && !full; i++) {
		if (load_module(m, &l[i], i, &next, &mods[i]) < 0)
			goto out;
		mods[i].string = add_string(area, &used, l[i].string);
		full = !mods[i].string;
	}
	if (full) {
		kite_error("the multiboot command line and module strings take more than the %llu "
			   "bytes kite has room for",
			   (unsigned long long)BOOT_CMDLINE_MAX);
		goto out;
	}
	if (gmem_write(m, BOOT_CMDLINE_ADDR, area, used) < 0) {
		kite_error("no guest RAM for the command line at 0x%llx",
			   (unsigned long long)BOOT_CMDLINE_ADDR);
		goto out;
	}
	*nmods = n;
	r = 0;
out:
	free(cmd);
	free(area);
	initrd_list_free(l, n);
	return r;
}

/* RAM contiguous from `from` in the memory map, in bytes. */
static uint64_t ram_run(const struct e820_entry *e, int n, uint64_t from)
{
	uint64_t end = from;
	for (bool grew = true; grew;) {
		grew = false;
		for (int i = 0; i < n; i++)
			if (e[i].type == E820_RAM && e[i].addr <= end &&
			    e[i].addr + e[i].size > end) {
				end = e[i].addr + e[i].size;
				grew = true;
			}
	}
	return end - from;
}

static int write_info(struct guest_mem *m, uint64_t cmdline_addr, const struct mb_module *mods,
		      int nmods)
{
	uint8_t b[BOOT_MB_INFO_END - BOOT_MB_INFO_ADDR];
	memset(b, 0, sizeof(b));
	struct e820_entry e[MB_MMAP_MAX];
	int n = e820_build(m, e, MB_MMAP_MAX);
	uint64_t lower = ram_run(e, n, 0), upper = ram_run(e, n, E820_HIGH_RAM);
	put_le32(b + MBI_FLAGS, MBI_HAS_MEMORY | MBI_HAS_CMDLINE | MBI_HAS_MODS | MBI_HAS_MMAP |
				    MBI_HAS_LOADER_NAME);
	put_le32(b + MBI_MEM_LOWER, (uint32_t)((lower < 0xa0000 ? lower : 0xa0000) >> 10));
	put_le32(b + MBI_MEM_UPPER, (uint32_t)(upper >> 10));
	put_le32(b + MBI_CMDLINE, (uint32_t)cmdline_addr);
	put_le32(b + MBI_MODS_COUNT, (uint32_t)nmods);
	put_le32(b + MBI_MODS_ADDR, (uint32_t)(BOOT_MB_INFO_ADDR + MB_MODS_OFFSET));
	put_le32(b + MBI_MMAP_LENGTH, (uint32_t)(n * MB_MMAP_ENTRY_SIZE));
	put_le32(b + MBI_MMAP_ADDR, (uint32_t)(BOOT_MB_INFO_ADDR + MB_MMAP_OFFSET));
	put_le32(b + MBI_BOOT_LOADER_NAME, (uint32_t)(BOOT_MB_INFO_ADDR + MB_LOADER_OFFSET));
	for (int i = 0; i < n; i++) {
		uint8_t *p = b + MB_MMAP_OFFSET + i * MB_MMAP_ENTRY_SIZE;
		put_le32(p, MB_MMAP_ENTRY_SIZE - 4);
		put_le64(p + 4, e[i].addr);
		put_le64(p + 12, e[i].size);
		put_le32(p + 20, e[i].type);
	}
	for (int i = 0; i < nmods; i++) {
		uint8_t *p = b + MB_MODS_OFFSET + i * MB_MODULE_SIZE;
		put_le32(p, (uint32_t)mods[i].start);
		put_le32(p + 4, (uint32_t)mods[i].end);
		put_le32(p + 8, (uint32_t)mods[i].string);
	}
	memcpy(b + MB_LOADER_OFFSET, MB_LOADER_NAME, sizeof(MB_LOADER_NAME));
	if (gmem_write(m, BOOT_MB_INFO_ADDR, b, sizeof(b)) < 0)
		return kite_error("no guest RAM for the multiboot information at 0x%llx",
				  (unsigned long long)BOOT_MB_INFO_ADDR);
	return 0;
}

int multiboot_load(struct guest_mem *m, const uint8_t *buf, size_t len, const struct mb_header *h,
		   const struct multiboot_args *a, struct boot_info *out)
{
	const char *name = a->kernel_path;
	if (check_flags(h, name) < 0)
		return -1;
	struct mb_image img = {0};
	int r = (h->flags & MB_FLAG_ADDRESSES) ? load_aout(m, buf, len, h, name, &img)
					       : load_elf32(m, buf, len, name, &img);
	if (r != 0)
		return r;
	struct mb_module mods[MB_MAX_MODULES];
	int nmods = 0;
	uint64_t cmdline_addr = 0;
	if (load_modules_and_strings(m, a, img.end, mods, &nmods, &cmdline_addr) < 0 ||
	    write_info(m, cmdline_addr, mods, nmods) < 0 || boot_gdt_write(m) < 0)
		return -1;
	out->kind = KERNEL_MULTIBOOT;
	out->mode = BOOT_MULTIBOOT32;
	out->kernel_start = img.start;
	out->kernel_end = img.end;
	out->mb_info_addr = BOOT_MB_INFO_ADDR;
	out->mb_modules = (unsigned)nmods;
	boot_cpu_multiboot32(&out->cpu, img.entry, MB_BOOT_MAGIC, BOOT_MB_INFO_ADDR);
	return 0;
}

/* multiboot: what a multiboot v1 loader hands over (the Multiboot Specification 0.6.96),
 * checked in the program's multiboot builds (multiboot.mb.elf, multiboot.mbk.bin):
 *  - EAX = 0x2BADB002, CR0.PE set and PG clear, EFLAGS IF and VM clear;
 *  - the information's flags: memory, command line, modules, memory map, boot loader name;
 *  - mem_lower = RAM from 0 (at most 640 KiB), mem_upper = RAM contiguous from 1 MiB, both as
 *    the memory map says, and RAM as large as mem= (less what lies below 1 MiB);
 *  - a memory map of well-formed entries, sorted and not overlapping;
 *  - the command line "KERNEL ARGS": its first word is argv0=, the rest arrives intact;
 *  - mods= modules, each with its string "FILE size=N seed=S": N bytes of the pattern
 *    (k * 31 + S * 7 + (k >> 8)) & 0xff, page aligned (flag 0), above 1 MiB, disjoint from each
 *    other, the image and the information.
 * Prints "multiboot: boot loader name "NAME"" for the host to compare. */
#include "libguest.h"

const char guest_name[] = "multiboot";

#define CR0_PE	  (1u << 0)
#define CR0_PG	  (1u << 31)
#define EFLAGS_IF (1u << 9)
#define EFLAGS_VM (1u << 17)
#define LOW_LIMIT (640 * 1024ull)

static bool overlaps(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
	return a < d && c < b;
}

/* RAM contiguous from `from` in the memory map. */
static uint64_t ram_run(uint64_t from)
{
	uint64_t end = from;
	for (bool grew = true; grew;) {
		grew = false;
		for (int i = 0; i < e820_count; i++) {
			const struct e820_entry *e = &e820_map[i];
			if (e->type == E820_RAM && e->addr <= end && e->addr + e->size > end) {
				end = e->addr + e->size;
				grew = true;
			}
		}
	}
	return end - from;
}

static void check_entry(void)
{
	const struct pvh_entry_state *e = &pvh_entry_state;
	report(mb_boot.entered && mb_boot.magic == MB_BOOT_MAGIC,
	       "entered through multiboot with EAX %#x", mb_boot.magic);
	report((e->cr0 & CR0_PE) && !(e->cr0 & CR0_PG), "CR0.PE set, CR0.PG clear (%#x)", e->cr0);
	report(!(e->eflags & (EFLAGS_IF | EFLAGS_VM)), "EFLAGS IF, VM clear (%#x)", e->eflags);
	uint32_t want =
	    MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MODS | MB_INFO_MMAP | MB_INFO_LOADER_NAME;
	report((mb_boot.flags & want) == want,
	       "information flags %#x: memory, cmdline, mods, mmap, loader name", mb_boot.flags);
}

static void check_memory(void)
{
	uint64_t ram = 0;
	bool ordered = true;
	for (int i = 0; i < e820_count; i++) {
		const struct e820_entry *e = &e820_map[i];
		printf("mmap: [%#014lx-%#014lx] type %u\n", e->addr, e->addr + e->size - 1,
		       e->type);
		if (i && e->addr < e820_map[i - 1].addr + e820_map[i - 1].size)
			ordered = false;
		if (e->type == E820_RAM)
			ram += e->size;
	}
	report(e820_count > 0 && mb_boot.mmap_sizes_ok,
	       "memory map: %d entries of size >= 20 in %u bytes", e820_count, mb_boot.mmap_length);
	report(ordered, "memory map sorted and not overlapping");
	uint64_t low = ram_run(0), upper = ram_run(MiB);
	if (low > LOW_LIMIT)
		low = LOW_LIMIT;
	printf("multiboot: mem_lower %u KiB mem_upper %u KiB\n", mb_boot.mem_lower,
	       mb_boot.mem_upper);
	report(mb_boot.mem_lower == low >> 10, "mem_lower %u KiB is the map's RAM below 640 KiB",
	       mb_boot.mem_lower);
	report(mb_boot.mem_upper == upper >> 10,
	       "mem_upper %u KiB is the map's RAM contiguous from 1 MiB", mb_boot.mem_upper);
	uint64_t mem = cmdline_u64("mem", 0);
	if (!mem || mem > 3 * GiB) {
		report_skip("mem_upper and the map against mem= (none, or above 3 GiB)");
		return;
	}
	/* Firmware may keep the last pages of RAM (SeaBIOS does): allow 1 MiB. */
	uint64_t top = ((uint64_t)mb_boot.mem_upper << 10) + MiB;
	report(top <= mem && top + MiB >= mem,
	       "mem_upper ends RAM at %#lx, within 1 MiB of mem=", top);
	report(ram <= mem && ram + MiB >= mem,
	       "memory map RAM %lu KiB is mem= %lu KiB less < 1 MiB", ram >> 10, mem >> 10);
}

static void check_cmdline(void)
{
	char argv0[256];
	size_t n = 0;
	while (boot_cmdline[n] && boot_cmdline[n] != ' ' && n + 1 < sizeof(argv0)) {
		argv0[n] = boot_cmdline[n];
		n++;
	}
	argv0[n] = '\0';
	char want[256];
	if (cmdline_get("argv0", want, sizeof(want)))
		report(strcmp(argv0, want) == 0, "command line starts with the kernel (%s)", argv0);
	else
		report_skip("command line starts with the kernel (no argv0=)");
	if (cmdline_get("expect", want, sizeof(want)))
		report(strcmp(want, "a=b=c") == 0 && cmdline_u64("n", 0) == 42,
		       "command line arrives intact");
}

/* The value of KEY=N in a module string, or `def`. */
static uint64_t word_u64(const char *s, const char *key, uint64_t def)
{
	size_t klen = strlen(key);
	for (const char *p = s; *p; p++) {
		if ((p == s || p[-1] == ' ') && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			uint64_t v = 0;
			for (p += klen + 1; *p >= '0' && *p <= '9'; p++)
				v = v * 10 + (uint64_t)(*p - '0');
			return v;
		}
	}
	return def;
}

struct pattern {
	const uint8_t *p;
	uint64_t len, seed;
};

/* Ring 3: the number of bytes that differ from the module pattern. */
static uint64_t pattern_check(uint64_t arg)
{
	const struct pattern *t = (const struct pattern *)arg;
	uint64_t bad = 0;
	for (uint64_t k = 0; k < t->len; k++)
		bad += t->p[k] != (uint8_t)(k * 31 + t->seed * 7 + (k >> 8));
	return bad;
}

static void check_module(uint32_t i)
{
	const char *s = mb_boot.mods[i].string;
	uint64_t start = mb_boot.mods[i].start, end = mb_boot.mods[i].end;
	uint64_t size = word_u64(s, "size", ~0ull), seed = word_u64(s, "seed", 0);
	printf("multiboot: module %u at %#lx-%#lx \"%s\"\n", i, start, end, s);
	report(end - start == size, "module %u: %lu bytes as its string says", i, end - start);
	report(start % PAGE_SIZE == 0 && start >= MiB, "module %u: page aligned above 1 MiB", i);
	bool apart = !overlaps(start, end, (uint64_t)_image_start, (uint64_t)_image_end) &&
		     !overlaps(start, end, mb_boot.info_addr, mb_boot.info_addr + 88);
	for (uint32_t j = 0; j < i; j++)
		apart = apart && !overlaps(start, end, mb_boot.mods[j].start, mb_boot.mods[j].end);
	report(apart, "module %u: clear of the image, the information and the other modules", i);
	if (end - start == size) {
		struct pattern t = {(const uint8_t *)start, size, seed};
		report(run_user(pattern_check, (uint64_t)&t) == 0, "module %u: content intact", i);
	}
}

static void check_modules(void)
{
	uint64_t want = cmdline_u64("mods", 0);
	report(mb_boot.mods_count == want, "%u modules, mods= %lu", mb_boot.mods_count, want);
	for (uint32_t i = 0; i < mb_boot.mods_count && i < MB_MAX_MODS; i++)
		check_module(i);
}

void guest_main(void)
{
	check_entry();
	if (!mb_boot.entered)
		return;
	check_memory();
	check_cmdline();
	check_modules();
	printf("multiboot: boot loader name \"%s\"\n", mb_boot.loader_name);
	report(mb_boot.loader_name[0] != '\0', "boot loader name given");
}

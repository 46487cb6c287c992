/* guest_start(): C entry on the BSP. Validates and copies what struct hvm_start_info points
 * to (command line, memory map) before anything can overwrite it, then runs the program.
 * Entered through multiboot_entry (the multiboot builds), it copies the multiboot information
 * instead: the same command line and memory map, plus what only multiboot has (mb_boot). */
#include "libguest.h"

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr; /* version >= 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

extern uint64_t boot_start_info; /* EBX at entry, saved by entry.S */
extern uint32_t boot_mb_magic, boot_mb_info, boot_via_multiboot;

/* The multiboot information (Multiboot Specification 0.6.96, section 3.3). */
struct mb_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper;
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr;
	uint32_t config_table;
	uint32_t boot_loader_name;
} __attribute__((packed));

struct mb_mod {
	uint32_t start, end, string, reserved;
};

struct mb_mmap_entry {
	uint32_t size; /* of the rest of the entry */
	uint64_t addr, len;
	uint32_t type;
} __attribute__((packed));

struct mb_boot mb_boot;

struct e820_entry e820_map[E820_MAX];
int e820_count;
uint64_t boot_rsdp_paddr;
uint32_t boot_start_info_version;
char boot_cmdline[1024];

/* Only the identity-mapped low 4 GiB is addressable. */
static bool addressable(uint64_t addr, uint64_t len)
{
	return addr != 0 && addr < 4 * GiB && len <= 4 * GiB - addr;
}

static bool read_start_info(void)
{
	if (!addressable(boot_start_info, sizeof(struct hvm_start_info))) {
		printf("guest: start_info address %#lx is not usable\n", boot_start_info);
		return false;
	}
	const struct hvm_start_info *si = (const void *)boot_start_info;
	if (si->magic != HVM_START_MAGIC) {
		printf("guest: start_info magic is %x, not %x\n", si->magic, HVM_START_MAGIC);
		return false;
	}
	boot_start_info_version = si->version;
	boot_rsdp_paddr = si->rsdp_paddr;
	if (si->cmdline_paddr && addressable(si->cmdline_paddr, 1)) {
		const char *c = (const char *)si->cmdline_paddr;
		size_t i = 0;
		for (; i + 1 < sizeof(boot_cmdline) && c[i]; i++)
			boot_cmdline[i] = c[i];
		boot_cmdline[i] = '\0';
	}
	if (si->version >= 1 && si->memmap_entries &&
	    addressable(si->memmap_paddr,
			(uint64_t)si->memmap_entries * sizeof(struct hvm_memmap_entry))) {
		const struct hvm_memmap_entry *m = (const void *)si->memmap_paddr;
		for (uint32_t i = 0; i < si->memmap_entries && e820_count < E820_MAX; i++) {
			e820_map[e820_count].addr = m[i].addr;
			e820_map[e820_count].size = m[i].size;
			e820_map[e820_count].type = m[i].type;
			e820_count++;
		}
	}
	return true;
}

static void copy_string(char *dst, size_t size, uint64_t addr)
{
	size_t i = 0;
	if (addr && addressable(addr, 1)) {
		const char *c = (const char *)addr;
		for (; i + 1 < size && c[i]; i++)
			dst[i] = c[i];
	}
	dst[i] = '\0';
}

static void read_mb_mmap(const struct mb_info *mi)
{
	mb_boot.mmap_length = mi->mmap_length;
	mb_boot.mmap_sizes_ok = true;
	if (!addressable(mi->mmap_addr, mi->mmap_length))
		return;
	for (uint64_t off = 0; off + 4 <= mi->mmap_length && e820_count < E820_MAX;) {
		const struct mb_mmap_entry *e = (const void *)(uint64_t)(mi->mmap_addr + off);
		if (e->size < 20 || off + 4 + e->size > mi->mmap_length) {
			mb_boot.mmap_sizes_ok = false;
			break;
		}
		e820_map[e820_count].addr = e->addr;
		e820_map[e820_count].size = e->len;
		e820_map[e820_count].type = e->type;
		e820_count++;
		off += 4 + e->size;
	}
}

static bool read_multiboot(void)
{
	mb_boot.entered = true;
	mb_boot.magic = boot_mb_magic;
	mb_boot.info_addr = boot_mb_info;
	if (!addressable(boot_mb_info, sizeof(struct mb_info))) {
		printf("guest: multiboot information address %#x is not usable\n", boot_mb_info);
		return false;
	}
	const struct mb_info *mi = (const void *)(uint64_t)boot_mb_info;
	mb_boot.flags = mi->flags;
	mb_boot.mem_lower = mi->mem_lower;
	mb_boot.mem_upper = mi->mem_upper;
	if (mi->flags & MB_INFO_CMDLINE)
		copy_string(boot_cmdline, sizeof(boot_cmdline), mi->cmdline);
	if (mi->flags & MB_INFO_LOADER_NAME)
		copy_string(mb_boot.loader_name, sizeof(mb_boot.loader_name), mi->boot_loader_name);
	if (mi->flags & MB_INFO_MMAP)
		read_mb_mmap(mi);
	if ((mi->flags & MB_INFO_MODS) &&
	    addressable(mi->mods_addr, (uint64_t)mi->mods_count * sizeof(struct mb_mod))) {
		mb_boot.mods_count = mi->mods_count;
		const struct mb_mod *m = (const void *)(uint64_t)mi->mods_addr;
		for (uint32_t i = 0; i < mi->mods_count && i < MB_MAX_MODS; i++) {
			mb_boot.mods[i].start = m[i].start;
			mb_boot.mods[i].end = m[i].end;
			copy_string(mb_boot.mods[i].string, sizeof(mb_boot.mods[i].string),
				    m[i].string);
			if (m[i].end > m[i].start)
				mem_reserve(m[i].start, m[i].end);
		}
	}
	return true;
}

static bool key_at(const char *p, const char *key, size_t klen)
{
	return strncmp(p, key, klen) == 0 && p[klen] == '=';
}

bool cmdline_get(const char *key, char *buf, size_t size)
{
	size_t klen = strlen(key);
	for (const char *p = boot_cmdline; *p;) {
		while (*p == ' ')
			p++;
		if (key_at(p, key, klen)) {
			p += klen + 1;
			size_t n = 0;
			while (p[n] && p[n] != ' ') {
				if (n + 1 < size)
					buf[n] = p[n];
				n++;
			}
			buf[n + 1 < size ? n : size - 1] = '\0';
			return true;
		}
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

uint64_t cmdline_u64(const char *key, uint64_t def)
{
	char v[32];
	if (!cmdline_get(key, v, sizeof(v)) || !v[0])
		return def;
	uint64_t n = 0;
	const char *p = v;
	for (; *p >= '0' && *p <= '9'; p++)
		n = n * 10 + (uint64_t)(*p - '0');
	if (p == v)
		return def;
	switch (*p) {
	case 'K':
	case 'k':
		n <<= 10;
		p++;
		break;
	case 'M':
	case 'm':
		n <<= 20;
		p++;
		break;
	case 'G':
	case 'g':
		n <<= 30;
		p++;
		break;
	}
	return *p ? def : n;
}

void guest_start(void)
{
	serial_init();
	desc_init();
	pic_disable();
	printf("GUEST %s: start\n", guest_name);
	if (boot_via_multiboot) {
		if (!read_multiboot()) {
			report(false, "multiboot information from the VMM is valid");
			guest_exit();
		}
		printf("guest: multiboot eax %#x info %#x flags %#x cmdline \"%s\" e820 %d "
		       "entries\n",
		       mb_boot.magic, mb_boot.info_addr, mb_boot.flags, boot_cmdline, e820_count);
	} else if (!read_start_info()) {
		report(false, "start_info from the VMM is valid");
		guest_exit();
	} else {
		printf("guest: start_info v%u cmdline \"%s\" e820 %d entries rsdp %#lx\n",
		       boot_start_info_version, boot_cmdline, e820_count, boot_rsdp_paddr);
	}
	mem_init();
	guest_main();
	guest_exit();
}

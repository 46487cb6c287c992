/* kernel_load(): detects the kind of kernel, loads it, and writes every boot structure the
 * chosen entry path needs. The pieces live in their own files: elf.c, bzimage.c, decompress*.c,
 * bzimage_cache.c, boot_initrd.c, boot_params.c, boot_pvh.c, boot_multiboot.c, boot_cpu.c,
 * pagetable.c. */
#include "machine/boot.h"
#include "util/err.h"
#include "machine/acpi.h"
#include "machine/boot_bytes.h"
#include "machine/boot_cpu.h"
#include "machine/boot_file.h"
#include "machine/boot_initrd.h"
#include "machine/boot_multiboot.h"
#include "machine/boot_params.h"
#include "machine/boot_pvh.h"
#include "machine/bzimage.h"
#include "machine/bzimage_cache.h"
#include "machine/decompress.h"
#include "machine/elf.h"
#include "machine/pagetable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the kernel accepts, from its setup header or kite's defaults. */
struct kernel_limits {
	uint64_t cmdline_max; /* without the NUL */
	struct initrd_limits initrd;
};

/* The decompressed vmlinux of a bzImage: mapped from the cache, or decompressed into a malloc'd
 * buffer (then cached). *owned is what the caller frees; *cached what it unmaps. */
static const uint8_t *bzimage_vmlinux(const struct boot_file *kf, const struct bzimage *bz,
				      const char *name, size_t *len, uint8_t **owned,
				      struct boot_file *cached)
{
	if (bz->payload_len < 8) {
		kite_error("%s: truncated bzImage payload (%zu bytes)", name, bz->payload_len);
		return NULL;
	}
	size_t expect = get_le32(bz->payload + bz->payload_len - 4);
	if (bzcache_lookup(&kf->st, expect, cached) == 0) {
		if (elf_is_elf(cached->data, cached->len)) {
			*len = cached->len;
			return cached->data;
		}
		kite_warn("%s: the cached kernel is damaged: decompressing again", name);
		boot_file_unmap(cached);
	}
	if (decompress_payload(bz->payload, bz->payload_len, name, owned, len) < 0)
		return NULL;
	if (elf_is_elf(*owned, *len))
		bzcache_store(&kf->st, *owned, *len); /* only cache what can be loaded */
	return *owned;
}

static int load_initrd(struct guest_mem *m, const char *path, const struct initrd_limits *l,
		       struct boot_info *out)
{
	struct boot_file f;
	if (boot_file_map(path, &f) < 0)
		return -1;
	int r = 0;
	if (f.len) {
		r = initrd_place(m, f.len, l, &out->initrd_addr);
		if (r == 0) {
			memcpy(gmem_ptr(m, out->initrd_addr, f.len), f.data, f.len);
			out->initrd_size = f.len;
		}
	}
	boot_file_unmap(&f);
	return r;
}

static int write_cmdline(struct guest_mem *m, const char *cmdline, uint64_t max)
{
	if (!cmdline)
		cmdline = "";
	size_t len = strlen(cmdline);
	if (len > max)
		return kite_error("the kernel command line is %zu bytes; this kernel accepts at "
				  "most %llu",
				  len, (unsigned long long)max);
	if (gmem_write(m, BOOT_CMDLINE_ADDR, cmdline, len + 1) < 0)
		return kite_error("no guest RAM for the command line at 0x%llx",
				  (unsigned long long)BOOT_CMDLINE_ADDR);
	return 0;
}

static void limits_for(const struct bzimage *bz, const struct elf_image *img, bool linux_entry,
		       struct kernel_limits *l)
{
	l->initrd.min_addr = img->end;
	if (!linux_entry) {
		l->cmdline_max = BOOT_CMDLINE_MAX - 1;
		l->initrd.addr_max = UINT32_MAX;
		l->initrd.above_4g = false;
		return;
	}
	l->cmdline_max = bz ? bz->cmdline_size : BP_SYNTH_CMDLINE_SIZE;
	if (l->cmdline_max > BOOT_CMDLINE_MAX - 1)
		l->cmdline_max = BOOT_CMDLINE_MAX - 1;
	l->initrd.addr_max = bz ? bz->initrd_addr_max : BP_SYNTH_INITRD_ADDR_MAX;
	/* A kernel that may also be entered through PVH keeps its initrd below 4 GiB: the PVH
	 * module list is read into 32-bit boot_params fields by Linux. */
	l->initrd.above_4g = (bz ? (bz->xloadflags & XLF_ABOVE_4G) != 0 : true) && !img->pvh_entry;
}

static int write_boot_data(struct guest_mem *m, const struct bzimage *bz,
			   const struct elf_image *img, bool linux_entry, struct boot_info *out)
{
	if (boot_gdt_write(m) < 0)
		return -1;
	if (img->pvh_entry) {
		struct pvh_boot_args pa = {.cmdline_addr = BOOT_CMDLINE_ADDR,
					   .initrd_addr = out->initrd_addr,
					   .initrd_size = out->initrd_size,
					   .rsdp_addr = ACPI_RSDP_ADDR};
		if (boot_pvh_write(m, BOOT_START_INFO_ADDR, &pa) < 0)
			return -1;
		out->start_info_addr = BOOT_START_INFO_ADDR;
	}
	if (!linux_entry) {
		out->mode = BOOT_PVH32;
		boot_cpu_pvh32(&out->cpu, img->pvh_entry, BOOT_START_INFO_ADDR);
		return 0;
	}
	struct linux_boot_args la = {.bz = bz,
				     .cmdline_addr = BOOT_CMDLINE_ADDR,
				     .initrd_addr = out->initrd_addr,
				     .initrd_size = out->initrd_size,
				     .rsdp_addr = ACPI_RSDP_ADDR};
	if (boot_params_write(m, BOOT_PARAMS_ADDR, &la) < 0 ||
	    pagetable_build(m, BOOT_PML4_ADDR) < 0)
		return -1;
	out->boot_params_addr = BOOT_PARAMS_ADDR;
	out->mode = BOOT_LONG64;
	boot_cpu_long64(&out->cpu, img->entry, BOOT_PARAMS_ADDR, BOOT_PML4_ADDR);
	return 0;
}

/* Loads the ELF in `buf` and decides its entry path. */
static int load_elf(struct guest_mem *m, const uint8_t *buf, size_t len, const char *name,
		    bool from_bzimage, struct elf_image *img, bool *linux_entry)
{
	if (elf_load(m, buf, len, name, BOOT_KERNEL_MIN_ADDR, img) < 0)
		return -1;
	if (from_bzimage || (img->is64 && (img->linux_note || !img->pvh_entry))) {
		if (!img->is64)
			return kite_error("%s: the decompressed kernel is a 32-bit ELF: kite boots "
					  "x86-64 kernels only",
					  name);
		if (!img->entry)
			return kite_error("%s: ELF entry point is outside the loaded segments",
					  name);
		*linux_entry = true;
		return 0;
	}
	if (!img->pvh_entry)
		return kite_error("%s: 32-bit ELF without a PVH entry note "
				  "(XEN_ELFNOTE_PHYS32_ENTRY): kite cannot enter it",
				  name);
	*linux_entry = false;
	return 0;
}

/* A multiboot header decides, as in QEMU, unless the file is a bzImage (QEMU looks for the
 * setup header first) or an ELF64 that only PVH can enter. Returns 0 when loaded, 1 when the
 * file is not to be booted as multiboot, -1 on error. */
static int try_multiboot(struct guest_mem *m, const struct boot_file *kf, const char *kernel_path,
			 const char *initrd_path, const char *cmdline, struct boot_info *out)
{
	struct mb_header h;
	if (bzimage_detect(kf->data, kf->len) || !multiboot_find(kf->data, kf->len, &h))
		return 1;
	struct multiboot_args a = {
	    .kernel_path = kernel_path, .cmdline = cmdline, .modules = initrd_path};
	return multiboot_load(m, kf->data, kf->len, &h, &a, out);
}

int kernel_load(struct guest_mem *m, const char *kernel_path, const char *initrd_path,
		const char *cmdline, struct boot_info *out)
{
	memset(out, 0, sizeof(*out));
	if (gmem_low_size(m) < BOOT_KERNEL_MIN_ADDR)
		return kite_error("guest memory (%llu KiB) is too small: kite needs at least 1 MiB "
				  "below the kernel",
				  (unsigned long long)(m->ram_size >> 10));
	struct boot_file kf;
	if (boot_file_map(kernel_path, &kf) < 0)
		return -1;
	int r = -1;
	uint8_t *owned = NULL;
	struct boot_file cached = {0};
	struct bzimage bz, *bzp = NULL;
	struct elf_image img;
	bool linux_entry = false;
	char payload_name[4200];
	int mb = try_multiboot(m, &kf, kernel_path, initrd_path, cmdline, out);
	if (mb <= 0) {
		r = mb;
		goto out;
	}
	if (elf_is_elf(kf.data, kf.len)) {
		out->kind = KERNEL_ELF_PVH;
		if (load_elf(m, kf.data, kf.len, kernel_path, false, &img, &linux_entry) < 0)
			goto out;
		if (linux_entry)
			out->kind = KERNEL_ELF_LINUX;
	} else if (bzimage_detect(kf.data, kf.len)) {
		out->kind = KERNEL_BZIMAGE;
		if (bzimage_parse(kf.data, kf.len, kernel_path, &bz) < 0)
			goto out;
		bzp = &bz;
		size_t vlen = 0;
		const uint8_t *vmlinux =
		    bzimage_vmlinux(&kf, &bz, kernel_path, &vlen, &owned, &cached);
		if (!vmlinux)
			goto out;
		snprintf(payload_name, sizeof(payload_name), "%s (decompressed payload)",
			 kernel_path);
		if (!elf_is_elf(vmlinux, vlen)) {
			kite_error("%s: not an ELF vmlinux", payload_name);
			goto out;
		}
		if (load_elf(m, vmlinux, vlen, payload_name, true, &img, &linux_entry) < 0)
			goto out;
	} else {
		kite_error("%s: not a kernel (no ELF or bzImage header)", kernel_path);
		goto out;
	}
	out->kernel_start = img.start;
	out->kernel_end = img.end;
	out->entry64 = linux_entry ? img.entry : 0;
	out->pvh_entry = img.pvh_entry;

	struct kernel_limits lim;
	limits_for(bzp, &img, linux_entry, &lim);
	if (write_cmdline(m, cmdline, lim.cmdline_max) < 0)
		goto out;
	if (initrd_path && load_initrd(m, initrd_path, &lim.initrd, out) < 0)
		goto out;
	r = write_boot_data(m, bzp, &img, linux_entry, out);
out:
	free(owned);
	boot_file_unmap(&cached);
	boot_file_unmap(&kf);
	return r;
}

int boot_use_pvh(struct boot_info *bi)
{
	if (!bi->pvh_entry || !bi->start_info_addr)
		return kite_error("this kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
	bi->mode = BOOT_PVH32;
	boot_cpu_pvh32(&bi->cpu, bi->pvh_entry, bi->start_info_addr);
	return 0;
}

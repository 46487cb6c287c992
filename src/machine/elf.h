/* ELF kernels: validation and loading of PT_LOAD segments at their physical addresses, and the
 * notes that tell how to enter them (Xen's PVH entry, Linux's own notes). Works on an image
 * already in host memory; every offset and size from the file is checked before use. */
#ifndef KITE_MACHINE_ELF_H
#define KITE_MACHINE_ELF_H

#include "kvm/memory.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ELF_NOTE_XEN_PHYS32_ENTRY 18 /* XEN_ELFNOTE_PHYS32_ENTRY, name "Xen" */

struct elf_image {
	bool is64;
	bool linux_note;    /* carries a note named "Linux": a Linux vmlinux */
	uint64_t entry;	    /* e_entry as a physical address; 0 when it is in no segment */
	uint64_t pvh_entry; /* from the PVH note, 0 when none */
	uint64_t start;	    /* lowest physical address loaded */
	uint64_t end;	    /* end of the highest segment in memory (p_paddr + p_memsz) */
};

/* True when the buffer starts with the ELF magic. */
bool elf_is_elf(const uint8_t *buf, size_t len);

/* Validates the ELF (class, little endian, x86 machine, headers within the file), loads every
 * PT_LOAD segment at p_paddr (file bytes, then zeros up to p_memsz), and fills `out`. Segments
 * must lie in RAM at or above `min_addr`. `name` prefixes errors. Returns 0 or -1. */
int elf_load(struct guest_mem *m, const uint8_t *buf, size_t len, const char *name,
	     uint64_t min_addr, struct elf_image *out);

/* A range of guest memory a kernel's segments must keep out of: [start, end), `what` names it
 * in the error ("the multiboot information"). */
struct elf_avoid {
	uint64_t start, end;
	const char *what;
};

/* elf_load() with a list of ranges instead of a lowest address. */
int elf_load_avoiding(struct guest_mem *m, const uint8_t *buf, size_t len, const char *name,
		      const struct elf_avoid *avoid, int navoid, struct elf_image *out);

/* Reads the header and the notes only (is64, linux_note, pvh_entry), loading nothing. Returns 0,
 * or -1 with an error printed when the ELF is malformed. */
int elf_inspect(const uint8_t *buf, size_t len, const char *name, struct elf_image *out);

#endif

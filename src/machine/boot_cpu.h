/* The boot vCPU's entry state: the GDTs kite places in guest memory and the register values
 * for the two entry paths (Linux 64-bit boot protocol, PVH 32-bit). */
#ifndef KITE_MACHINE_BOOT_CPU_H
#define KITE_MACHINE_BOOT_CPU_H

#include "machine/boot.h"

/* Two GDTs side by side: one for long mode (0x10 is a 64-bit code segment) and one for PVH
 * (0x10 is a 32-bit code segment), so that boot_use_pvh() can switch without guest memory. */
#define BOOT_GDT64_ADDR	 BOOT_GDT_ADDR
#define BOOT_GDT32_ADDR	 (BOOT_GDT_ADDR + 0x40)
#define BOOT_GDT_ENTRIES 6 /* null, null, code, data, TSS (16 bytes in long mode) */

/* Writes both GDTs. Returns 0 or -1 (error printed). */
int boot_gdt_write(struct guest_mem *m);

/* Register state for Linux's 64-bit entry: paging on with kite's identity map at `cr3`. */
void boot_cpu_long64(struct boot_cpu_state *s, uint64_t entry, uint64_t boot_params, uint64_t cr3);

/* Register state for the PVH entry: flat 32-bit protected mode, paging off. */
void boot_cpu_pvh32(struct boot_cpu_state *s, uint64_t entry, uint64_t start_info);

/* Register state for a multiboot kernel: the PVH state, EAX = `magic`, EBX = the multiboot
 * information, ESP below it (the spec leaves ESP undefined: kernels set their own). */
void boot_cpu_multiboot32(struct boot_cpu_state *s, uint64_t entry, uint32_t magic, uint64_t info);

/* The 8-byte GDT descriptor encoding a struct kvm_segment (exported for tests). */
uint64_t boot_gdt_descriptor(const struct kvm_segment *s);

#endif

/* libguest: the small freestanding runtime of the guest test programs (tests/guests/).
 *
 * A program defines `const char guest_name[]` and `void guest_main(void)`. The library boots it
 * (PVH entry, long mode, IDT, TSS, COM1), prints "GUEST <name>: start", calls guest_main(),
 * then prints "SUMMARY: N passed, M failed" and powers the machine off through ACPI. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "io.h"

#define PAGE_SIZE 4096ull
#define MiB	  (1024ull * 1024)
#define GiB	  (1024ull * MiB)

/* Provided by each program. */
extern const char guest_name[];
void guest_main(void);

/* string.c */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* printf.c: output goes to COM1; whole calls are serialized across CPUs. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* serial.c: COM1 16550 at 0x3f8. */
#define COM1_IRQ 4
void serial_init(void);
/* Writes N bytes, in either ring. */
void serial_write(const char *s, size_t n);
/* Ring 0 (serial_write and UREQ_SERIAL_WRITE call it): up to 16 bytes each time the
 * transmitter reports empty, the FIFO's depth, so one status read per 16 bytes. */
void serial_send(const char *s, size_t n);
bool serial_try_getc(char *c);
/* Reads one line (without its newline) by polling; false on timeout. */
bool serial_read_line(char *buf, size_t size, uint64_t timeout_ms);

/* report.c */
void report(bool pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int report_failures(void);
/* Prints the SUMMARY line and powers off (ring 0 only). */
__attribute__((noreturn)) void guest_exit(void);

/* boot.c: what the VMM handed over in struct hvm_start_info. */
struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};
#define E820_RAM 1
#define E820_MAX 128
extern struct e820_entry e820_map[E820_MAX];
extern int e820_count;
extern uint64_t boot_rsdp_paddr;
extern uint32_t boot_start_info_version;
extern char boot_cmdline[1024];

/* boot.c: the multiboot information, when the VMM entered multiboot_entry (the multiboot
 * builds, NAME.mb.elf and NAME.mbk.bin). The command line and memory map go to boot_cmdline and
 * e820_map as from start_info; the modules' memory is kept from the page allocator. */
#define MB_BOOT_MAGIC	    0x2BADB002u
#define MB_INFO_MEMORY	    (1u << 0)
#define MB_INFO_CMDLINE	    (1u << 2)
#define MB_INFO_MODS	    (1u << 3)
#define MB_INFO_MMAP	    (1u << 6)
#define MB_INFO_LOADER_NAME (1u << 9)
#define MB_MAX_MODS	    16
struct mb_boot {
	bool entered; /* through multiboot_entry */
	uint32_t magic, info_addr;
	uint32_t flags, mem_lower, mem_upper;
	uint32_t mmap_length;
	bool mmap_sizes_ok; /* every entry's size field at least 20 and inside mmap_length */
	uint32_t mods_count;
	struct {
		uint32_t start, end;
		char string[256];
	} mods[MB_MAX_MODS];
	char loader_name[64];
};
extern struct mb_boot mb_boot;

/* Copies the value of KEY=VALUE from the command line; false when absent. */
bool cmdline_get(const char *key, char *buf, size_t size);
/* KEY=N with an optional K/M/G suffix; DEF when absent or malformed. */
uint64_t cmdline_u64(const char *key, uint64_t def);

/* entry.S: CPU state as the VMM entered pvh_entry, before the program changed anything. */
struct pvh_entry_state {
	uint32_t cr0, cr4, eflags;
	uint16_t cs, ds, es, ss, tr;
	uint16_t gdt_limit;
	uint32_t gdt_base;
} __attribute__((packed));
extern const struct pvh_entry_state pvh_entry_state;

/* mem.c: page allocator over the e820 RAM above 1 MiB, minus the program image. */
void mem_init(void);
/* Keeps [lo, hi) out of what mem_init() hands out (call before it). */
void mem_reserve(uint64_t lo, uint64_t hi);
void *page_alloc(void);
void page_free(void *page);
void *pages_alloc(size_t npages);
/* Takes the largest free run of pages; returns its start, count in *npages. */
void *pages_alloc_largest(size_t *npages);
size_t pages_free_count(void);
extern char _image_start[], _image_end[];

/* desc.c: IDT, TSS and interrupt dispatch. */
struct intr_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};
typedef void (*intr_handler)(struct intr_frame *f);
void desc_init(void);
void idt_load(void);
void set_intr_handler(int vector, intr_handler h);

/* user.S: runs fn(arg) in ring 3 (IOPL=0, interrupts enabled) on the BSP and returns its value.
 * Anything that loops belongs there: on PVM hosts ring-0 code is emulated instruction by
 * instruction, ring 3 runs natively. Port I/O there goes through requests to ring 0 (ureq.h;
 * io.h, serial_write and the PCI library make them); cli, sti, hlt and MSRs are ring 0's. */
uint64_t run_user(uint64_t (*fn)(uint64_t), uint64_t arg);

/* time.c: TSC calibrated against PIT channel 2. Usable in ring 3. */
uint64_t tsc_khz(void);
/* TSC ticks over a `ms` one-shot of PIT channel 2 (at most 54 ms), 0 if it never fires. */
uint64_t pit_tsc_window(unsigned ms);
uint64_t deadline_ms(uint64_t ms);
bool deadline_passed(uint64_t deadline);
void udelay(uint64_t us);

/* acpi.c */
struct acpi_header {
	char sig[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	uint32_t creator_id;
	uint32_t creator_revision;
} __attribute__((packed));

#define MAX_CPUS 64
#define MAX_ISO	 16
struct madt_info {
	uint32_t lapic_addr;
	int ncpus; /* enabled processors (xAPIC and x2APIC entries) */
	uint32_t apic_ids[MAX_CPUS];
	int nioapic;
	uint32_t ioapic_addr; /* first IOAPIC */
	uint32_t ioapic_gsi_base;
	int niso;
	struct {
		uint8_t source;
		uint32_t gsi;
		uint16_t flags;
	} iso[MAX_ISO];
};

struct fadt_info {
	uint16_t sci_int; /* the SCI's ISA IRQ (a GSI where there is no 8259) */
	uint32_t smi_cmd; /* port the OS writes acpi_enable to for SCI_EN; 0: already ACPI */
	uint8_t acpi_enable;
	uint32_t pm1a_evt; /* PM1a event block: status, then enable at pm1a_evt + evt_len/2 */
	uint8_t pm1_evt_len;
	uint32_t pm1a_cnt; /* I/O port, 0 if none */
	uint32_t pm1b_cnt;
	uint32_t flags;
	uint64_t dsdt;
	bool hw_reduced;
	uint8_t sleep_ctl_space; /* generic address of the HW-reduced sleep control register */
	uint64_t sleep_ctl_addr;
};

/* RSDP from start_info, else the EBDA and 0xE0000-0xFFFFF scans; 0 when absent or invalid. */
uint64_t acpi_rsdp(void);
bool acpi_rsdp_from_start_info(void);
/* The legacy search alone: first KiB of the EBDA, then 0xE0000-0xFFFFF. */
uint64_t acpi_rsdp_scan(void);
/* The INDEXth table with signature SIG (checksummed), or NULL. */
const struct acpi_header *acpi_find_table(const char sig[4], int index);
bool acpi_fadt(struct fadt_info *out);
bool acpi_madt(struct madt_info *out);
/* SLP_TYPa of \_S5_ from the DSDT, or -1. */
int acpi_s5_slp_typ(void);
/* ISA IRQ to GSI through the MADT overrides; *flags gets MPS INTI flags (0 = bus default). */
uint32_t acpi_isa_gsi(const struct madt_info *m, int irq, uint16_t *flags);
/* Tries ACPI S5 (PM1a_CNT or the HW-reduced sleep register); returns if still running. */
void acpi_poweroff(bool verbose);

/* apic.c */
#define LAPIC_ID       0x020
#define LAPIC_VERSION  0x030
#define LAPIC_TPR      0x080
#define LAPIC_EOI      0x0b0
#define LAPIC_SVR      0x0f0
#define LAPIC_ESR      0x280
#define LAPIC_ICR_LO   0x300
#define LAPIC_ICR_HI   0x310
#define LAPIC_LVT_TMR  0x320
#define LAPIC_TMR_INIT 0x380
#define LAPIC_TMR_CUR  0x390
#define LAPIC_TMR_DIV  0x3e0
#define SPURIOUS_VEC   0xff
void lapic_init(void);
uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t v);
uint32_t lapic_id(void);
void lapic_eoi(void);
/* Sends an IPI (ICR low bits) to APIC id DEST; false if it stays pending. */
bool lapic_ipi(uint32_t dest, uint32_t icr_lo);
void ioapic_init(uint64_t base, uint32_t gsi_base);
uint32_t ioapic_max_redir(void);
/* Routes GSI to VECTOR on DEST (fixed delivery, physical), MPS INTI flags for polarity/trigger. */
void ioapic_route(uint32_t gsi, uint8_t vector, uint32_t dest, uint16_t flags);
void ioapic_mask(uint32_t gsi);
/* Remaps the 8259 PICs to 0x20-0x2f and masks them all. */
void pic_disable(void);

/* smp.c: brings up APs with INIT/SIPI/SIPI through a real-mode trampoline below 1 MiB. */
extern volatile uint32_t smp_ap_ids[MAX_CPUS];
extern volatile int smp_ap_count;
/* Starts the AP with APIC id ID; true once it runs C code (it records its id, then halts). */
bool smp_start_ap(uint32_t id);

/* Port I/O, MMIO, MSR and CPU helpers for guest programs. Port I/O works in ring 3 too: there
 * (run_user, IOPL=0) each access is a request to ring 0 (ureq.h), one #UD, since ring 3 may
 * not execute in/out itself. MMIO works there because every page is user-accessible. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "ureq.h"

/* True in ring 3 (the CPL is the low two bits of CS). Not volatile: no function changes its
 * own ring (run_user returns in the ring it was called in), so the compiler may read CS once
 * per function. */
static inline bool in_user_mode(void)
{
	uint16_t cs;
	__asm__("mov %%cs, %0" : "=r"(cs));
	return (cs & 3) != 0;
}

/* `ud2` and the request byte: see ureq.h for the registers of each request. */
#define UREQ_ASM "ud2\n\t.byte %c[req]"

/* outb/outw/outl(port, value) and inb/inw/inl(port): the instruction in ring 0, the request in
 * ring 3. */
#define PORT_IO(sfx, type, req_in, req_out)                                                        \
	static inline void out##sfx(uint16_t port, type v)                                         \
	{                                                                                          \
		if (in_user_mode())                                                                \
			__asm__ volatile(UREQ_ASM                                                  \
					 :                                                         \
					 : "a"(v), "d"(port), [req] "i"(req_out)                   \
					 : "memory");                                              \
		else                                                                               \
			__asm__ volatile("out" #sfx " %0, %1" : : "a"(v), "Nd"(port));             \
	}                                                                                          \
	static inline type in##sfx(uint16_t port)                                                  \
	{                                                                                          \
		type v;                                                                            \
		if (in_user_mode())                                                                \
			__asm__ volatile(UREQ_ASM                                                  \
					 : "=a"(v)                                                 \
					 : "d"(port), [req] "i"(req_in)                            \
					 : "memory");                                              \
		else                                                                               \
			__asm__ volatile("in" #sfx " %1, %0" : "=a"(v) : "Nd"(port));              \
		return v;                                                                          \
	}
PORT_IO(b, uint8_t, UREQ_INB, UREQ_OUTB)
PORT_IO(w, uint16_t, UREQ_INW, UREQ_OUTW)
PORT_IO(l, uint32_t, UREQ_INL, UREQ_OUTL)
#undef PORT_IO

static inline uint16_t mmio_read16(uint64_t addr)
{
	return *(volatile uint16_t *)addr;
}

static inline void mmio_write16(uint64_t addr, uint16_t v)
{
	*(volatile uint16_t *)addr = v;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)addr;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}

static inline uint8_t mmio_read8(uint64_t addr)
{
	return *(volatile uint8_t *)addr;
}

static inline void mmio_write8(uint64_t addr, uint8_t v)
{
	*(volatile uint8_t *)addr = v;
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c,
			 uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

static inline void irq_disable(void)
{
	__asm__ volatile("cli" ::: "memory");
}

static inline void irq_enable(void)
{
	__asm__ volatile("sti" ::: "memory");
}

/* Halts forever with interrupts off (ring 0 only). */
static inline __attribute__((noreturn)) void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt" ::: "memory");
}

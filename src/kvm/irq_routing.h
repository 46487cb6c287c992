/* The GSI routing table of the in-kernel irqchip. KVM's default sends GSI n to IOAPIC pin n, so
 * the in-kernel PIT (which raises GSI 0) would land on pin 0, while the MADT tells the guest,
 * as on every PC, that ISA IRQ 0 is wired to GSI 2. This table routes like a PC (and like
 * QEMU): GSI 0 to IOAPIC pin 2 and PIC pin 0, GSI 1-15 to the PIC and IOAPIC pin of the same
 * number (the cascade, 2, has no route), GSI 16-23 to the IOAPIC only.
 *
 * MSI routes (one per MSI-X vector that signals through an irqfd, machine/irqfd.c) go above the
 * IOAPIC's pins, at GSI 24 and up. KVM_SET_GSI_ROUTING replaces the whole table, so the PC
 * routes and the MSI routes live in one `struct irq_routes` that is installed whole. */
#ifndef KITE_KVM_IRQ_ROUTING_H
#define KITE_KVM_IRQ_ROUTING_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#define IRQ_ROUTING_IOAPIC_PINS	    24
#define IRQ_ROUTING_DEFAULT_ENTRIES 38			    /* 15 PIC + 23 IOAPIC */
#define IRQ_ROUTING_MSI_BASE	    IRQ_ROUTING_IOAPIC_PINS /* first GSI for MSI routes */
#define IRQ_ROUTING_MAX_GSI	    1023 /* KVM accepts at least 1024 routes (older hosts) */

/* Fills `e` (room for `max`) with the PC routing; returns the number of entries, or -1 if
 * `max` is too small. */
int irq_routing_pc(struct kvm_irq_routing_entry *e, size_t max);

/* Installs the PC routing on a VM that has an in-kernel irqchip; -1 after an error message. */
int irq_routing_install(int vm_fd);

/* A whole table: the PC routes, then MSI routes in the order they were added. */
struct irq_routes {
	struct kvm_irq_routing *table; /* table->nr entries in use */
	unsigned cap;		       /* entries allocated */
};

/* The PC routes alone. Returns 0, or -1 (out of memory) with an error printed. */
int irq_routes_init(struct irq_routes *r);
void irq_routes_free(struct irq_routes *r);
/* Routes `gsi` (IRQ_ROUTING_MSI_BASE..IRQ_ROUTING_MAX_GSI) to the MSI message addr/data,
 * adding the entry or changing the one it has. Returns 1 when the table changed, 0 when it
 * already said that, -1 for a GSI outside the MSI range or when memory runs out. */
int irq_routes_set_msi(struct irq_routes *r, unsigned gsi, uint64_t addr, uint32_t data);
/* Drops the MSI route of `gsi`. Returns 1 when there was one, 0 when not. */
int irq_routes_remove_msi(struct irq_routes *r, unsigned gsi);
/* The MSI route of `gsi`, or NULL. */
const struct kvm_irq_routing_entry *irq_routes_find_msi(const struct irq_routes *r, unsigned gsi);
/* KVM_SET_GSI_ROUTING with the whole table. Returns 0, or -errno (nothing printed: the
 * caller decides whether that is fatal). */
int irq_routes_install(const struct irq_routes *r, int vm_fd);

#endif

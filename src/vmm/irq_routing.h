/* The GSI routing table of the in-kernel irqchip. KVM's default sends GSI n to IOAPIC pin n, so
 * the in-kernel PIT (which raises GSI 0) would land on pin 0, while the MADT tells the guest,
 * as on every PC, that ISA IRQ 0 is wired to GSI 2. This table routes like a PC (and like
 * QEMU): GSI 0 to IOAPIC pin 2 and PIC pin 0, GSI 1-15 to the PIC and IOAPIC pin of the same
 * number (the cascade, 2, has no route), GSI 16-23 to the IOAPIC only. */
#ifndef KITE_VMM_IRQ_ROUTING_H
#define KITE_VMM_IRQ_ROUTING_H

#include <linux/kvm.h>
#include <stddef.h>

#define IRQ_ROUTING_IOAPIC_PINS	    24
#define IRQ_ROUTING_DEFAULT_ENTRIES 38 /* 15 PIC + 23 IOAPIC */

/* Fills `e` (room for `max`) with the PC routing; returns the number of entries, or -1 if
 * `max` is too small. */
int irq_routing_pc(struct kvm_irq_routing_entry *e, size_t max);

/* Installs the PC routing on a VM that has an in-kernel irqchip; -1 after an error message. */
int irq_routing_install(int vm_fd);

#endif

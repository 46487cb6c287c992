#include "vmm/irq_routing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/err.h"

static void route(struct kvm_irq_routing_entry *e, unsigned gsi, unsigned chip, unsigned pin)
{
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

int irq_routing_pc(struct kvm_irq_routing_entry *e, size_t max)
{
	if (max < IRQ_ROUTING_DEFAULT_ENTRIES)
		return -1;
	size_t n = 0;
	for (unsigned gsi = 0; gsi < 16; gsi++) {
		if (gsi == 2)
			continue; /* the slave PIC's cascade input */
		route(&e[n++], gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
		      gsi % 8);
	}
	for (unsigned gsi = 0; gsi < IRQ_ROUTING_IOAPIC_PINS; gsi++) {
		if (gsi == 2)
			continue; /* pin 2 belongs to ISA IRQ 0, routed from GSI 0 */
		route(&e[n++], gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi);
	}
	return (int)n;
}

int irq_routing_install(int vm_fd)
{
	size_t size = sizeof(struct kvm_irq_routing) +
		      IRQ_ROUTING_DEFAULT_ENTRIES * sizeof(struct kvm_irq_routing_entry);
	struct kvm_irq_routing *table = calloc(1, size);
	if (!table)
		return kite_error("irq routing: out of memory");
	table->nr = (unsigned)irq_routing_pc(table->entries, IRQ_ROUTING_DEFAULT_ENTRIES);
	int rc = ioctl(vm_fd, KVM_SET_GSI_ROUTING, table);
	int err = errno;
	free(table);
	if (rc < 0)
		return kite_error_errno(err, "KVM_SET_GSI_ROUTING");
	return 0;
}

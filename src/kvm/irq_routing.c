#include "kvm/irq_routing.h"

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
	struct irq_routes r;
	if (irq_routes_init(&r) < 0)
		return -1;
	int rc = irq_routes_install(&r, vm_fd);
	irq_routes_free(&r);
	if (rc < 0)
		return kite_error_errno(-rc, "KVM_SET_GSI_ROUTING");
	return 0;
}

static struct kvm_irq_routing *alloc_table(unsigned cap)
{
	return calloc(1, sizeof(struct kvm_irq_routing) +
			     (size_t)cap * sizeof(struct kvm_irq_routing_entry));
}

int irq_routes_init(struct irq_routes *r)
{
	r->cap = IRQ_ROUTING_DEFAULT_ENTRIES;
	r->table = alloc_table(r->cap);
	if (!r->table)
		return kite_error("irq routing: out of memory");
	r->table->nr = (unsigned)irq_routing_pc(r->table->entries, r->cap);
	return 0;
}

void irq_routes_free(struct irq_routes *r)
{
	free(r->table);
	r->table = NULL;
	r->cap = 0;
}

static struct kvm_irq_routing_entry *find_msi(const struct irq_routes *r, unsigned gsi)
{
	for (unsigned i = 0; i < r->table->nr; i++) {
		struct kvm_irq_routing_entry *e = &r->table->entries[i];
		if (e->gsi == gsi && e->type == KVM_IRQ_ROUTING_MSI)
			return e;
	}
	return NULL;
}

const struct kvm_irq_routing_entry *irq_routes_find_msi(const struct irq_routes *r, unsigned gsi)
{
	return find_msi(r, gsi);
}

int irq_routes_set_msi(struct irq_routes *r, unsigned gsi, uint64_t addr, uint32_t data)
{
	if (gsi < IRQ_ROUTING_MSI_BASE || gsi > IRQ_ROUTING_MAX_GSI)
		return -1;
	struct kvm_irq_routing_entry *e = find_msi(r, gsi);
	if (e && e->u.msi.address_lo == (uint32_t)addr &&
	    e->u.msi.address_hi == (uint32_t)(addr >> 32) && e->u.msi.data == data)
		return 0;
	if (!e) {
		if (r->table->nr == r->cap) {
			/* Doubling: a few reallocations for a whole machine's vectors. */
			struct kvm_irq_routing *t = alloc_table(r->cap * 2);
			if (!t)
				return -1;
			memcpy(t, r->table,
			       sizeof(*t) + (size_t)r->table->nr * sizeof(t->entries[0]));
			free(r->table);
			r->table = t;
			r->cap *= 2;
		}
		e = &r->table->entries[r->table->nr++];
	}
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_MSI;
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
	return 1;
}

int irq_routes_remove_msi(struct irq_routes *r, unsigned gsi)
{
	struct kvm_irq_routing_entry *e = find_msi(r, gsi);
	if (!e)
		return 0;
	struct kvm_irq_routing_entry *last = &r->table->entries[r->table->nr - 1];
	size_t tail = (size_t)(last - e);
	memmove(e, e + 1, tail * sizeof(*e)); /* keeps the order: the PC routes stay first */
	r->table->nr--;
	return 1;
}

int irq_routes_install(const struct irq_routes *r, int vm_fd)
{
	if (ioctl(vm_fd, KVM_SET_GSI_ROUTING, r->table) < 0)
		return -errno;
	return 0;
}

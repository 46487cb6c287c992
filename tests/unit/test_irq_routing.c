#include "unit.h"
#include "vmm/irq_routing.h"

static const struct kvm_irq_routing_entry *find(const struct kvm_irq_routing_entry *e, int n,
						unsigned gsi, unsigned chip)
{
	for (int i = 0; i < n; i++)
		if (e[i].gsi == gsi && e[i].u.irqchip.irqchip == chip)
			return &e[i];
	return NULL;
}

static void isa_irq0_reaches_ioapic_pin_2_like_the_madt_says(void **state)
{
	(void)state;
	struct kvm_irq_routing_entry e[IRQ_ROUTING_DEFAULT_ENTRIES];
	int n = irq_routing_pc(e, IRQ_ROUTING_DEFAULT_ENTRIES);
	assert_int_equal(n, IRQ_ROUTING_DEFAULT_ENTRIES);
	const struct kvm_irq_routing_entry *pit = find(e, n, 0, KVM_IRQCHIP_IOAPIC);
	assert_non_null(pit);
	assert_int_equal(pit->type, KVM_IRQ_ROUTING_IRQCHIP);
	assert_int_equal(pit->u.irqchip.pin, 2);
	assert_int_equal(find(e, n, 0, KVM_IRQCHIP_PIC_MASTER)->u.irqchip.pin, 0);
	/* nothing drives pin 2 otherwise, nor the cascade input */
	assert_null(find(e, n, 2, KVM_IRQCHIP_IOAPIC));
	assert_null(find(e, n, 2, KVM_IRQCHIP_PIC_MASTER));
}

static void other_gsis_keep_their_numbers(void **state)
{
	(void)state;
	struct kvm_irq_routing_entry e[IRQ_ROUTING_DEFAULT_ENTRIES];
	int n = irq_routing_pc(e, IRQ_ROUTING_DEFAULT_ENTRIES);
	assert_int_equal(find(e, n, 4, KVM_IRQCHIP_IOAPIC)->u.irqchip.pin, 4); /* COM1 */
	assert_int_equal(find(e, n, 4, KVM_IRQCHIP_PIC_MASTER)->u.irqchip.pin, 4);
	assert_int_equal(find(e, n, 9, KVM_IRQCHIP_PIC_SLAVE)->u.irqchip.pin, 1); /* SCI */
	assert_int_equal(find(e, n, 9, KVM_IRQCHIP_IOAPIC)->u.irqchip.pin, 9);
	for (unsigned gsi = 16; gsi < 24; gsi++) { /* PCI INTx: IOAPIC only */
		assert_int_equal(find(e, n, gsi, KVM_IRQCHIP_IOAPIC)->u.irqchip.pin, gsi);
		assert_null(find(e, n, gsi, KVM_IRQCHIP_PIC_MASTER));
		assert_null(find(e, n, gsi, KVM_IRQCHIP_PIC_SLAVE));
	}
}

static void too_small_a_table_is_refused(void **state)
{
	(void)state;
	struct kvm_irq_routing_entry e[IRQ_ROUTING_DEFAULT_ENTRIES];
	assert_int_equal(irq_routing_pc(e, IRQ_ROUTING_DEFAULT_ENTRIES - 1), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(isa_irq0_reaches_ioapic_pin_2_like_the_madt_says),
	    cmocka_unit_test(other_gsis_keep_their_numbers),
	    cmocka_unit_test(too_small_a_table_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

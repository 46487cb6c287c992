#include "unit.h"
#include "kvm/irq_routing.h"

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

static void msi_routes_go_after_the_pc_routes(void **state)
{
	(void)state;
	struct irq_routes r;
	assert_int_equal(irq_routes_init(&r), 0);
	assert_int_equal(r.table->nr, IRQ_ROUTING_DEFAULT_ENTRIES);
	assert_int_equal(irq_routes_set_msi(&r, 24, 0xfee01000u, 0x4051), 1);
	assert_int_equal(r.table->nr, IRQ_ROUTING_DEFAULT_ENTRIES + 1);
	const struct kvm_irq_routing_entry *e = irq_routes_find_msi(&r, 24);
	assert_non_null(e);
	assert_ptr_equal(e, &r.table->entries[IRQ_ROUTING_DEFAULT_ENTRIES]);
	assert_int_equal(e->type, KVM_IRQ_ROUTING_MSI);
	assert_int_equal(e->u.msi.address_lo, 0xfee01000u);
	assert_int_equal(e->u.msi.address_hi, 0);
	assert_int_equal(e->u.msi.data, 0x4051);
	/* the PC part is untouched: GSI 0 still reaches IOAPIC pin 2 */
	assert_int_equal(
	    find(r.table->entries, (int)r.table->nr, 0, KVM_IRQCHIP_IOAPIC)->u.irqchip.pin, 2);
	irq_routes_free(&r);
}

static void rewriting_a_vector_updates_its_route_in_place(void **state)
{
	(void)state;
	struct irq_routes r;
	assert_int_equal(irq_routes_init(&r), 0);
	assert_int_equal(irq_routes_set_msi(&r, 24, 0xfee00000u, 0x41), 1);
	assert_int_equal(irq_routes_set_msi(&r, 25, 0xfee00000u, 0x42), 1);
	/* the same message again: nothing to install */
	assert_int_equal(irq_routes_set_msi(&r, 24, 0xfee00000u, 0x41), 0);
	/* the guest aims vector 0 elsewhere (another CPU, 64-bit address) */
	assert_int_equal(irq_routes_set_msi(&r, 24, 0x1fee02000ull, 0x61), 1);
	assert_int_equal(r.table->nr, IRQ_ROUTING_DEFAULT_ENTRIES + 2);
	const struct kvm_irq_routing_entry *e = irq_routes_find_msi(&r, 24);
	assert_int_equal(e->u.msi.address_lo, 0xfee02000u);
	assert_int_equal(e->u.msi.address_hi, 1);
	assert_int_equal(e->u.msi.data, 0x61);
	assert_int_equal(irq_routes_find_msi(&r, 25)->u.msi.data, 0x42);
	irq_routes_free(&r);
}

static void msi_routes_stay_out_of_the_irqchip_gsis(void **state)
{
	(void)state;
	struct irq_routes r;
	assert_int_equal(irq_routes_init(&r), 0);
	assert_int_equal(irq_routes_set_msi(&r, 0, 0xfee00000u, 0x41), -1);
	assert_int_equal(irq_routes_set_msi(&r, 23, 0xfee00000u, 0x41), -1);
	assert_int_equal(irq_routes_set_msi(&r, IRQ_ROUTING_MAX_GSI + 1, 0xfee00000u, 0x41), -1);
	assert_int_equal(r.table->nr, IRQ_ROUTING_DEFAULT_ENTRIES);
	assert_null(irq_routes_find_msi(&r, 0)); /* an irqchip route is not an MSI route */
	assert_int_equal(irq_routes_remove_msi(&r, 4), 0);
	assert_int_equal(r.table->nr, IRQ_ROUTING_DEFAULT_ENTRIES);
	irq_routes_free(&r);
}

static void the_table_grows_and_shrinks(void **state)
{
	(void)state;
	struct irq_routes r;
	assert_int_equal(irq_routes_init(&r), 0);
	/* every vector of 27 virtio functions with 9 vectors each, and more */
	for (unsigned gsi = IRQ_ROUTING_MSI_BASE; gsi < IRQ_ROUTING_MSI_BASE + 300; gsi++)
		assert_int_equal(irq_routes_set_msi(&r, gsi, 0xfee00000u, gsi), 1);
	assert_int_equal(r.table->nr, IRQ_ROUTING_DEFAULT_ENTRIES + 300);
	assert_true(r.cap >= r.table->nr);
	for (unsigned gsi = IRQ_ROUTING_MSI_BASE; gsi < IRQ_ROUTING_MSI_BASE + 300; gsi++)
		assert_int_equal(irq_routes_find_msi(&r, gsi)->u.msi.data, gsi);
	assert_int_equal(irq_routes_remove_msi(&r, 100), 1);
	assert_int_equal(irq_routes_remove_msi(&r, 100), 0);
	assert_null(irq_routes_find_msi(&r, 100));
	assert_int_equal(r.table->nr, IRQ_ROUTING_DEFAULT_ENTRIES + 299);
	/* the others keep their messages, the PC routes stay first */
	assert_int_equal(irq_routes_find_msi(&r, 99)->u.msi.data, 99);
	assert_int_equal(irq_routes_find_msi(&r, 101)->u.msi.data, 101);
	assert_int_equal(r.table->entries[0].type, KVM_IRQ_ROUTING_IRQCHIP);
	assert_int_equal(r.table->entries[IRQ_ROUTING_DEFAULT_ENTRIES].gsi, IRQ_ROUTING_MSI_BASE);
	irq_routes_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(isa_irq0_reaches_ioapic_pin_2_like_the_madt_says),
	    cmocka_unit_test(other_gsis_keep_their_numbers),
	    cmocka_unit_test(too_small_a_table_is_refused),
	    cmocka_unit_test(msi_routes_go_after_the_pc_routes),
	    cmocka_unit_test(rewriting_a_vector_updates_its_route_in_place),
	    cmocka_unit_test(msi_routes_stay_out_of_the_irqchip_gsis),
	    cmocka_unit_test(the_table_grows_and_shrinks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* virtio_msix: one MSI-X interrupt arrives for a used-ring update. The virtio-rng queue gets
 * MSI-X table entry 0, aimed at this CPU's LAPIC; a request is posted from ring 3 (interrupts
 * on; device setup runs there too) and the ring-0 handler, kept short, counts the interrupt
 * and records the used index it saw. */
#include "libguest.h"
#include "virtio.h"

const char guest_name[] = "virtio_msix";

#define VQ_VECTOR 0x51

static struct virtio_dev vd;
static volatile unsigned irqs;
static volatile uint16_t used_at_irq;

static void vq_irq(struct intr_frame *f)
{
	irqs++;
	used_at_irq = vd.vq[0].used->idx;
	lapic_eoi();
}

/* Ring 3 from PCI setup on: posts a request, waits for the used ring, then for the interrupt. */
static uint64_t body(uint64_t arg)
{
	uint32_t apic = (uint32_t)arg;
	if (!virtio_find(VIRTIO_ID_ENTROPY, 0, &vd)) {
		report(false, "virtio-rng device found");
		return 0;
	}
	bool msix = virtio_msix_setup(&vd, 0, apic, VQ_VECTOR);
	report(msix, "MSI-X capability: %u vectors, entry 0 -> APIC %u vector %#x", vd.msix_count,
	       apic, VQ_VECTOR);
	if (!msix)
		return 0;
	bool ok = virtio_negotiate(&vd, 0) && virtio_queue_setup(&vd, 0, 16, 0);
	report(ok, "virtio-rng: VERSION_1 negotiated, queue ready");
	if (!ok)
		return 0;
	uint16_t vec = virtio_queue_msix(&vd, 0);
	report(vec == 0, "queue 0 MSI-X vector reads back 0 (%#x)", vec);
	virtio_driver_ok(&vd);
	uint8_t *data = page_alloc();
	struct vbuf b = {data, 32, true};
	if (virtq_add(&vd.vq[0], &b, 1) < 0)
		return 0;
	virtq_kick(&vd, &vd.vq[0]);
	uint64_t end = deadline_ms(5000);
	while (!irqs && !deadline_passed(end))
		cpu_relax();
	/* A little longer: a second interrupt for one update would be a device bug. */
	udelay(100000);
	unsigned n = irqs;
	uint32_t id, len = 0;
	bool used = virtq_get_used(&vd.vq[0], &id, &len);
	report(n == 1, "one MSI-X interrupt for one used-ring update (%u)", n);
	report(used && used_at_irq == 1,
	       "the used ring was updated when the interrupt arrived (used idx %u, len %u)",
	       used_at_irq, len);
	return 0;
}

void guest_main(void)
{
	lapic_init();
	set_intr_handler(VQ_VECTOR, vq_irq);
	run_user(body, lapic_id());
}

/* virtio_msix: one MSI-X interrupt arrives for a used-ring update. The virtio-rng queue gets
 * MSI-X table entry 0, aimed at this CPU's LAPIC; a request is posted from ring 3 (interrupts
 * on) and the ring-0 handler, kept short, counts the interrupt and records the used index it
 * saw. */
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

static uint8_t *data;

/* Ring 3: posts a request, waits for the used ring, then for the interrupt. */
static uint64_t post_and_wait(uint64_t arg)
{
	struct vbuf b = {data, 32, true};
	if (virtq_add(&vd.vq[0], &b, 1) < 0)
		return 0;
	virtq_kick(&vd, &vd.vq[0]);
	uint64_t end = deadline_ms(5000);
	while (!irqs && !deadline_passed(end))
		cpu_relax();
	/* A little longer: a second interrupt for one update would be a device bug. */
	udelay(100000);
	return irqs;
}

void guest_main(void)
{
	lapic_init();
	set_intr_handler(VQ_VECTOR, vq_irq);
	if (!virtio_find(VIRTIO_ID_ENTROPY, 0, &vd)) {
		report(false, "virtio-rng device found");
		return;
	}
	bool msix = virtio_msix_setup(&vd, 0, lapic_id(), VQ_VECTOR);
	report(msix, "MSI-X capability: %u vectors, entry 0 -> APIC %u vector %#x", vd.msix_count,
	       lapic_id(), VQ_VECTOR);
	if (!msix)
		return;
	bool ok = virtio_negotiate(&vd, 0) && virtio_queue_setup(&vd, 0, 16, 0);
	report(ok, "virtio-rng: VERSION_1 negotiated, queue ready");
	if (!ok)
		return;
	uint16_t vec = virtio_queue_msix(&vd, 0);
	report(vec == 0, "queue 0 MSI-X vector reads back 0 (%#x)", vec);
	virtio_driver_ok(&vd);
	data = page_alloc();
	unsigned n = (unsigned)run_user(post_and_wait, 0);
	uint32_t id, len;
	bool used = virtq_get_used(&vd.vq[0], &id, &len);
	report(n == 1, "one MSI-X interrupt for one used-ring update (%u)", n);
	report(used && used_at_irq == 1,
	       "the used ring was updated when the interrupt arrived (used idx %u, len %u)",
	       used_at_irq, len);
}

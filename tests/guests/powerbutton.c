/* powerbutton: answers the ACPI power button as Linux's button driver does. It puts the
 * platform in ACPI mode (SCI_EN, through SMI_CMD when the FADT has one), routes the SCI
 * through the IOAPIC as the MADT says, enables PWRBTN_EN in PM1a_EN and prints
 * "READY: power button". The press arrives as an SCI; the handler clears PWRBTN_STS (write 1
 * to clear) and the program powers off through PM1a_CNT (SLP_TYP of \_S5_ with SLP_EN).
 * `timeout=S` (default 60) bounds the wait; the host presses the button (kite shutdown,
 * QEMU's system_powerdown). */
#include "libguest.h"

const char guest_name[] = "powerbutton";

#define SCI_VEC	      0x29
#define PM1_PWRBTN    0x0100 /* PWRBTN_STS in PM1_STS, PWRBTN_EN in PM1_EN */
#define PM1_SCI_EN    0x0001 /* in PM1_CNT */
#define MPS_LEVEL_LOW 0x000f /* the SCI's default polarity/trigger (ACPI 5.2.12.5) */
#define MPS_POLARITY  0x0003
#define MPS_TRIGGER   0x000c

static uint16_t evt_sts, evt_en;
static volatile unsigned sci_count, presses;
static volatile uint16_t seen_status;

/* Ring 0, with the level-triggered SCI asserted: acknowledge the event at its source before
 * the EOI, or the interrupt comes straight back. */
static void sci_handler(struct intr_frame *f)
{
	uint16_t sts = inw(evt_sts);
	sci_count++;
	if (sts & PM1_PWRBTN) {
		seen_status = sts;
		outw(evt_sts, PM1_PWRBTN);
		presses++;
	}
	lapic_eoi();
}

static uint64_t wait_press(uint64_t ms)
{
	uint64_t end = deadline_ms(ms);
	while (!presses && !deadline_passed(end))
		cpu_relax();
	return presses;
}

/* Ring 3: sets SCI_EN the way an OS leaves legacy mode, when it is not set already. */
static uint64_t enter_acpi_mode(uint64_t arg)
{
	const struct fadt_info *f = (const struct fadt_info *)arg;
	if (inw((uint16_t)f->pm1a_cnt) & PM1_SCI_EN)
		return 1;
	if (!f->smi_cmd || !f->acpi_enable)
		return 0;
	outb((uint16_t)f->smi_cmd, f->acpi_enable);
	uint64_t end = deadline_ms(3000);
	while (!(inw((uint16_t)f->pm1a_cnt) & PM1_SCI_EN)) {
		if (deadline_passed(end))
			return 0;
		udelay(1000);
	}
	return 1;
}

void guest_main(void)
{
	struct fadt_info f;
	struct madt_info m;
	if (!acpi_fadt(&f) || f.hw_reduced || !f.pm1a_evt || f.pm1a_evt > 0xffff ||
	    f.pm1_evt_len < 4 || !f.pm1a_cnt || f.pm1a_cnt > 0xffff) {
		report(false, "FADT with a PM1a event block and PM1a_CNT in I/O space");
		return;
	}
	if (!acpi_madt(&m) || !m.nioapic) {
		report(false, "MADT names an IOAPIC");
		return;
	}
	evt_sts = (uint16_t)f.pm1a_evt;
	evt_en = (uint16_t)(f.pm1a_evt + f.pm1_evt_len / 2);
	printf("powerbutton: PM1a_EVT %#x (enable %#x), PM1a_CNT %#x, SCI IRQ %u, SMI_CMD %#x\n",
	       evt_sts, evt_en, f.pm1a_cnt, f.sci_int, f.smi_cmd);
	report(run_user(enter_acpi_mode, (uint64_t)&f), "ACPI mode: SCI_EN set in PM1a_CNT");

	uint16_t flags;
	uint32_t gsi = acpi_isa_gsi(&m, f.sci_int, &flags);
	/* Bus default for the SCI: level, active low; an override may say otherwise per field. */
	if (!(flags & MPS_POLARITY))
		flags |= MPS_LEVEL_LOW & MPS_POLARITY;
	if (!(flags & MPS_TRIGGER))
		flags |= MPS_LEVEL_LOW & MPS_TRIGGER;
	pic_disable();
	lapic_init();
	ioapic_init(m.ioapic_addr, m.ioapic_gsi_base);
	set_intr_handler(SCI_VEC, sci_handler);
	/* Stale events first (write 1 to clear), then only the power button may raise the SCI. */
	outw(evt_sts, inw(evt_sts));
	outw(evt_en, PM1_PWRBTN);
	report(inw(evt_en) == PM1_PWRBTN, "PM1_EN reads back PWRBTN_EN alone (%#x)", inw(evt_en));
	ioapic_route(gsi, SCI_VEC, lapic_id(), flags);

	uint64_t timeout = cmdline_u64("timeout", 60);
	printf("READY: power button (SCI on GSI %u, %s, %s)\n", gsi,
	       (flags & MPS_TRIGGER) == MPS_TRIGGER ? "level" : "edge",
	       (flags & MPS_POLARITY) == MPS_POLARITY ? "active low" : "active high");
	bool pressed = run_user(wait_press, timeout * 1000);
	report(pressed, "power button pressed: SCI delivered, PM1_STS %#x", seen_status);
	if (!pressed)
		return;
	/* A cleared status drops the level-triggered SCI: no interrupt storm after the EOI. */
	udelay(50000);
	unsigned after = sci_count;
	report(after == 1, "one SCI for one press (%u)", after);
	report(!(inw(evt_sts) & PM1_PWRBTN), "PWRBTN_STS cleared by writing 1 (PM1_STS %#x)",
	       inw(evt_sts));
	ioapic_mask(gsi);
	outw(evt_en, 0);
	printf("powerbutton: powering off through PM1a_CNT\n");
	/* guest_exit: SUMMARY, then SLP_TYP(\_S5_) | SLP_EN to PM1a_CNT. */
}

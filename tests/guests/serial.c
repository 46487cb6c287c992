/* serial: COM1 output and input. The host sends one line after "READY: polling" (read by
 * polling the LSR) and one after "READY: irq" (read by the IRQ 4 handler through the IOAPIC);
 * each is echoed as "echo: <line>" and compared with line1=/line2= from the command line. */
#include "libguest.h"

const char guest_name[] = "serial";

#define COM1	   0x3f8
#define SERIAL_VEC 0x24

static char rx_buf[256];
static volatile size_t rx_len;
static volatile bool rx_done;
static volatile unsigned rx_irqs;

static void serial_irq(struct intr_frame *f)
{
	char c;
	rx_irqs++;
	while (serial_try_getc(&c)) {
		if (c == '\r' || rx_done)
			continue;
		if (c == '\n') {
			rx_buf[rx_len] = '\0';
			rx_done = true;
		} else if (rx_len + 1 < sizeof(rx_buf)) {
			rx_buf[rx_len++] = c;
		}
	}
	lapic_eoi();
}

/* Ring 3: waits for the handler to complete a line. */
static uint64_t wait_line(uint64_t ms)
{
	uint64_t end = deadline_ms(ms);
	while (!rx_done && !deadline_passed(end))
		cpu_relax();
	return rx_done;
}

static uint64_t read_polled(uint64_t arg)
{
	return serial_read_line((char *)arg, 256, 30000);
}

static void check_line(const char *what, bool got, const char *line, const char *key)
{
	char want[256];
	printf("echo: %s\n", line);
	report(got, "serial input (%s): a line arrives", what);
	if (cmdline_get(key, want, sizeof(want)))
		report(got && strcmp(line, want) == 0, "serial input (%s): line matches %s=", what,
		       key);
}

void guest_main(void)
{
	char charset[96];
	for (int i = 0; i < 95; i++)
		charset[i] = (char)(32 + i);
	charset[95] = '\0';
	printf("charset: %s\n", charset);
	report(true, "serial output");

	/* The scratch register is plain storage on a 16550. */
	outb(COM1 + 7, 0xa5);
	uint8_t a = inb(COM1 + 7);
	outb(COM1 + 7, 0x5a);
	report(a == 0xa5 && inb(COM1 + 7) == 0x5a, "serial scratch register holds a byte");

	char line[256];
	printf("READY: polling\n");
	bool got = run_user(read_polled, (uint64_t)line);
	check_line("polling", got, line, "line1");

	struct madt_info m;
	if (!acpi_madt(&m) || !m.nioapic) {
		report(false, "serial input (irq): MADT names an IOAPIC");
		return;
	}
	uint16_t flags;
	uint32_t gsi = acpi_isa_gsi(&m, COM1_IRQ, &flags);
	lapic_init();
	ioapic_init(m.ioapic_addr, m.ioapic_gsi_base);
	set_intr_handler(SERIAL_VEC, serial_irq);
	ioapic_route(gsi, SERIAL_VEC, lapic_id(), flags);
	outb(COM1 + 1, 0x01); /* IER: received data available */
	printf("READY: irq\n");
	got = run_user(wait_line, 30000);
	outb(COM1 + 1, 0x00);
	ioapic_mask(gsi);
	report(rx_irqs > 0, "serial input (irq): IRQ %d (GSI %u) delivered %u interrupts", COM1_IRQ,
	       gsi, rx_irqs);
	check_line("irq", got, rx_buf, "line2");
}

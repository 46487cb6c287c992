/* COM1 (16550 at 0x3f8): 115200 8N1, FIFOs on, polled output and input. Output from ring 3 is
 * one request (UREQ_SERIAL_WRITE) per write, not one per port access. */
#include "libguest.h"

#define COM1	       0x3f8
#define RBR	       0 /* receive buffer (read) / transmit holding (write) */
#define IER	       1
#define FCR	       2
#define LCR	       3
#define MCR	       4
#define LSR	       5
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY  0x20
#define TX_FIFO	       16 /* bytes the transmitter takes once it reports empty */

void serial_init(void)
{
	outb(COM1 + IER, 0x00);
	outb(COM1 + LCR, 0x80); /* DLAB: divisor 1 = 115200 baud */
	outb(COM1 + 0, 0x01);
	outb(COM1 + 1, 0x00);
	outb(COM1 + LCR, 0x03); /* 8N1 */
	outb(COM1 + FCR, 0x07); /* FIFOs on and cleared */
	outb(COM1 + MCR, 0x0b); /* DTR, RTS, OUT2 (routes the IRQ) */
}

void serial_send(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		/* Bounded: a VMM without a transmitter status must not hang the program. */
		for (int k = 0; k < 100000 && !(inb(COM1 + LSR) & LSR_THR_EMPTY); k++)
			cpu_relax();
		for (int k = 0; k < TX_FIFO && i < n; k++)
			outb(COM1 + RBR, (uint8_t)s[i++]);
	}
}

void serial_write(const char *s, size_t n)
{
	if (!in_user_mode()) {
		serial_send(s, n);
		return;
	}
	__asm__ volatile(UREQ_ASM
			 : "+D"(s), "+S"(n)
			 : [req] "i"(UREQ_SERIAL_WRITE)
			 : "rax", "rdx", "r8", "r9", "r10", "r11", "memory", "cc");
}

bool serial_try_getc(char *c)
{
	if (!(inb(COM1 + LSR) & LSR_DATA_READY))
		return false;
	*c = (char)inb(COM1 + RBR);
	return true;
}

bool serial_read_line(char *buf, size_t size, uint64_t timeout_ms)
{
	uint64_t deadline = deadline_ms(timeout_ms);
	size_t n = 0;
	while (!deadline_passed(deadline)) {
		char c;
		if (!serial_try_getc(&c)) {
			cpu_relax();
			continue;
		}
		if (c == '\r')
			continue;
		if (c == '\n') {
			buf[n] = '\0';
			return true;
		}
		if (n + 1 < size)
			buf[n++] = c;
	}
	buf[n] = '\0';
	return false;
}

/* 16550A UART (COM1 at 0x3f8, IRQ 4): the register model Linux's 8250 driver expects,
 * interrupt driven, FIFO, loopback for the driver's probe. */
#ifndef KITE_DEVICES_SERIAL_H
#define KITE_DEVICES_SERIAL_H

#include "devices/console.h"
#include "devices/platform.h"
#include "util/state.h"
#include "kvm/iobus.h"

#include <pthread.h>

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ	 4
#define SERIAL_RX_FIFO	 64

struct serial {
	pthread_mutex_t lock;
	const struct platform_ops *platform;
	unsigned irq;
	struct console *console;
	uint8_t ier, iir_fifo, lcr, mcr, lsr, msr, scr, dll, dlm;
	bool thr_ipending;
	int irq_level;
	uint8_t rx[SERIAL_RX_FIFO];
	unsigned rx_head, rx_count;
};

extern const struct io_ops serial_io_ops;
/* Registers, the receive FIFO and the interrupt line (section "serial"). */
extern const struct state_ops serial_state_ops;

/* `console` may be NULL (output dropped). Attaches itself to the console's input. */
void serial_init(struct serial *s, const struct platform_ops *platform, unsigned irq,
		 struct console *console);
void serial_destroy(struct serial *s);
/* Feeds received bytes (the console's input callback); returns how many fit. */
size_t serial_receive(void *opaque, const uint8_t *buf, size_t len);

#endif

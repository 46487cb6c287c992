#include "devices/serial.h"
#include "util/err.h"

#include <string.h>

enum {
	REG_DATA = 0, /* RBR/THR, DLL with DLAB */
	REG_IER = 1,  /* DLM with DLAB */
	REG_IIR = 2,  /* FCR on write */
	REG_LCR = 3,
	REG_MCR = 4,
	REG_LSR = 5,
	REG_MSR = 6,
	REG_SCR = 7,
};

#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI	 0x08

#define IIR_NONE 0x01
#define IIR_MSI	 0x00
#define IIR_THRI 0x02
#define IIR_RDI	 0x04
#define IIR_RLSI 0x06

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02

#define LCR_DLAB 0x80

#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR	 0x01
#define LSR_OE	 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS  0x01
#define MSR_DDSR  0x02
#define MSR_TERI  0x04
#define MSR_DDCD  0x08
#define MSR_CTS	  0x10
#define MSR_DSR	  0x20
#define MSR_RI	  0x40
#define MSR_DCD	  0x80
#define MSR_DELTA (MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD)

static uint8_t current_iir(const struct serial *s)
{
	if ((s->ier & IER_RLSI) && (s->lsr & LSR_OE))
		return IIR_RLSI;
	if ((s->ier & IER_RDI) && s->rx_count)
		return IIR_RDI;
	if ((s->ier & IER_THRI) && s->thr_ipending)
		return IIR_THRI;
	if ((s->ier & IER_MSI) && (s->msr & MSR_DELTA))
		return IIR_MSI;
	return IIR_NONE;
}

/* Recomputes the interrupt line; called with the lock held after every state change. */
static void update_irq(struct serial *s)
{
	int level = current_iir(s) != IIR_NONE;
	if (level != s->irq_level) {
		s->irq_level = level;
		if (s->platform && s->platform->set_irq)
			s->platform->set_irq(s->platform->opaque, s->irq, level);
	}
}

static void rx_push(struct serial *s, uint8_t ch)
{
	if (s->rx_count == SERIAL_RX_FIFO) {
		s->lsr |= LSR_OE;
		return;
	}
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = ch;
	s->rx_count++;
	s->lsr |= LSR_DR;
}

static uint8_t rx_pop(struct serial *s)
{
	if (!s->rx_count)
		return 0;
	uint8_t ch = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
	if (--s->rx_count == 0)
		s->lsr &= ~LSR_DR;
	return ch;
}

/* In loopback the modem outputs feed the modem status inputs, as the 8250 probe expects. */
static void update_msr_loopback(struct serial *s)
{
	uint8_t old = s->msr;
	uint8_t in = 0;
	if (s->mcr & MCR_RTS)
		in |= MSR_CTS;
	if (s->mcr & MCR_DTR)
		in |= MSR_DSR;
	if (s->mcr & MCR_OUT1)
		in |= MSR_RI;
	if (s->mcr & MCR_OUT2)
		in |= MSR_DCD;
	uint8_t delta = 0;
	if ((old ^ in) & MSR_CTS)
		delta |= MSR_DCTS;
	if ((old ^ in) & MSR_DSR)
		delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(in & MSR_RI))
		delta |= MSR_TERI;
	if ((old ^ in) & MSR_DCD)
		delta |= MSR_DDCD;
	s->msr = in | (old & MSR_DELTA) | delta;
}

static void serial_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct serial *s = opaque;
	uint8_t v = data[0];
	struct console *out = NULL;
	pthread_mutex_lock(&s->lock);
	switch (off) {
	case REG_DATA:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			break;
		}
		if (s->mcr & MCR_LOOP) {
			rx_push(s, v);
		} else {
			out = s->console;
		}
		/* Transmission is instantaneous: the holding register is empty again. */
		s->thr_ipending = true;
		s->lsr |= LSR_THRE | LSR_TEMT;
		break;
	case REG_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			break;
		}
		if ((v & IER_THRI) && !(s->ier & IER_THRI))
			s->thr_ipending = true;
		s->ier = v & 0x0f;
		break;
	case REG_IIR: /* FCR */
		if (v & FCR_CLEAR_RX) {
			s->rx_count = 0;
			s->lsr &= ~(LSR_DR | LSR_OE);
		}
		s->iir_fifo = (v & FCR_ENABLE) ? 0xc0 : 0;
		break;
	case REG_LCR:
		s->lcr = v;
		break;
	case REG_MCR:
		s->mcr = v & 0x1f;
		if (s->mcr & MCR_LOOP)
			update_msr_loopback(s);
		else
			s->msr = (s->msr & MSR_DELTA) | MSR_DCD | MSR_DSR | MSR_CTS;
		break;
	case REG_SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	if (out)
		console_write(out, &v, 1);
}

static void serial_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct serial *s = opaque;
	uint8_t v = 0;
	bool room_freed = false;
	memset(data, 0, len);
	pthread_mutex_lock(&s->lock);
	switch (off) {
	case REG_DATA:
		if (s->lcr & LCR_DLAB) {
			v = s->dll;
			break;
		}
		v = rx_pop(s);
		room_freed = true;
		break;
	case REG_IER:
		v = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
		break;
	case REG_IIR: {
		uint8_t iir = current_iir(s);
		if (iir == IIR_THRI)
			s->thr_ipending = false; /* reading IIR acknowledges THRE */
		v = iir | s->iir_fifo;
		break;
	}
	case REG_LCR:
		v = s->lcr;
		break;
	case REG_MCR:
		v = s->mcr;
		break;
	case REG_LSR:
		v = s->lsr;
		s->lsr &= ~LSR_OE;
		break;
	case REG_MSR:
		v = s->msr;
		s->msr &= ~MSR_DELTA;
		break;
	case REG_SCR:
		v = s->scr;
		break;
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	data[0] = v;
	if (room_freed && s->console)
		console_kick(s->console);
}

const struct io_ops serial_io_ops = {.read = serial_read, .write = serial_write};

size_t serial_receive(void *opaque, const uint8_t *buf, size_t len)
{
	struct serial *s = opaque;
	size_t n = 0;
	pthread_mutex_lock(&s->lock);
	/* In loopback the line is disconnected from the outside world. */
	while (!(s->mcr & MCR_LOOP) && n < len && s->rx_count < SERIAL_RX_FIFO)
		rx_push(s, buf[n++]);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

void serial_init(struct serial *s, const struct platform_ops *platform, unsigned irq,
		 struct console *console)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->platform = platform;
	s->irq = irq;
	s->console = console;
	s->lsr = LSR_THRE | LSR_TEMT;
	s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->iir_fifo = 0;
	if (console)
		console_attach(console, serial_receive, s);
}

void serial_destroy(struct serial *s)
{
	if (s->console)
		console_attach(s->console, NULL, NULL);
	pthread_mutex_destroy(&s->lock);
}

/* ---- state (util/state.h) ---- */

#define STATE_VERSION 1

static int serial_save(void *dev, struct state_buf *out)
{
	struct serial *s = dev;
	struct state_writer w;
	uint8_t fifo[SERIAL_RX_FIFO];
	pthread_mutex_lock(&s->lock);
	state_begin(&w, out, "serial", STATE_VERSION);
	state_put_u8(&w, "ier", s->ier);
	state_put_u8(&w, "fcr", s->iir_fifo);
	state_put_u8(&w, "lcr", s->lcr);
	state_put_u8(&w, "mcr", s->mcr);
	state_put_u8(&w, "lsr", s->lsr);
	state_put_u8(&w, "msr", s->msr);
	state_put_u8(&w, "scr", s->scr);
	state_put_u8(&w, "dll", s->dll);
	state_put_u8(&w, "dlm", s->dlm);
	state_put_bool(&w, "thr_ipending", s->thr_ipending);
	/* The receive FIFO in order, oldest byte first. */
	for (unsigned i = 0; i < s->rx_count; i++)
		fifo[i] = s->rx[(s->rx_head + i) % SERIAL_RX_FIFO];
	state_put_bytes(&w, "rx_fifo", fifo, s->rx_count);
	state_end(&w);
	pthread_mutex_unlock(&s->lock);
	return state_buf_check(out);
}

static int serial_load(void *dev, const struct state_reader *r)
{
	struct serial *s = dev;
	uint8_t ier, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	bool thr;
	const uint8_t *fifo;
	size_t n;
	if (state_get_u8(r, "ier", &ier) < 0 || state_get_u8(r, "fcr", &fcr) < 0 ||
	    state_get_u8(r, "lcr", &lcr) < 0 || state_get_u8(r, "mcr", &mcr) < 0 ||
	    state_get_u8(r, "lsr", &lsr) < 0 || state_get_u8(r, "msr", &msr) < 0 ||
	    state_get_u8(r, "scr", &scr) < 0 || state_get_u8(r, "dll", &dll) < 0 ||
	    state_get_u8(r, "dlm", &dlm) < 0 || state_get_bool(r, "thr_ipending", &thr) < 0 ||
	    state_get_blob(r, "rx_fifo", &fifo, &n) < 0)
		return -1;
	if (n > SERIAL_RX_FIFO)
		return kite_error("device state: serial: %zu bytes in a %d-byte FIFO", n,
				  SERIAL_RX_FIFO);
	if ((ier & ~0x0fu) || (mcr & ~0x1fu) || (fcr & ~0xc0u))
		return kite_error("device state: serial: register values no UART holds");
	pthread_mutex_lock(&s->lock);
	/* The console reads from the VMM's start, so what was typed before the load is in the
	 * FIFO already: it comes after what the saved guest had not read yet. */
	uint8_t early[SERIAL_RX_FIFO];
	unsigned nearly = 0;
	while (s->rx_count)
		early[nearly++] = rx_pop(s);
	s->ier = ier;
	s->iir_fifo = fcr;
	s->lcr = lcr;
	s->mcr = mcr;
	s->lsr = lsr;
	s->msr = msr;
	s->scr = scr;
	s->dll = dll;
	s->dlm = dlm;
	s->thr_ipending = thr;
	memcpy(s->rx, fifo, n);
	s->rx_head = 0;
	s->rx_count = (unsigned)n;
	for (unsigned i = 0; i < nearly; i++)
		rx_push(s, early[i]); /* past a full FIFO: an overrun, as a UART's */
	/* The line as the registers say, raised again (the interrupt controller's own state is
	 * restored before the devices). */
	s->irq_level = 0;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	/* Input the console holds back for want of room goes on once the guest reads. */
	if (s->console)
		console_kick(s->console);
	return 0;
}

const struct state_ops serial_state_ops = {"serial", STATE_VERSION, serial_save, serial_load};

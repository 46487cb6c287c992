#include "devices/acpi_pm.h"
#include "util/err.h"

#include <string.h>
#include <time.h>

#define PM1_TMR_STS    0x0001
#define PM1_PWRBTN_STS 0x0100
#define PM1_WAK_STS    0x8000
#define PM1_SCI_EN     0x0001
#define PM1_SLP_TYP(v) (((v) >> 10) & 7)
#define PM1_SLP_EN     0x2000
#define PM_TIMER_HZ    3579545ULL

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void update_sci(struct acpi_pm *pm)
{
	int level = (pm->status & pm->enable) != 0;
	if (level != pm->sci_level) {
		pm->sci_level = level;
		if (pm->platform && pm->platform->set_irq)
			pm->platform->set_irq(pm->platform->opaque, ACPI_SCI_IRQ, level);
	}
}

static uint32_t timer_value(const struct acpi_pm *pm)
{
	uint64_t ns = now_ns() - pm->start_ns;
	/* Split to avoid overflow: seconds and the remainder. */
	uint64_t ticks =
	    (ns / 1000000000ULL) * PM_TIMER_HZ + (ns % 1000000000ULL) * PM_TIMER_HZ / 1000000000ULL;
	return (uint32_t)ticks; /* 32-bit timer: the FADT sets TMR_VAL_EXT */
}

static void pm_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct acpi_pm *pm = opaque;
	uint8_t regs[ACPI_PM_LEN];
	pthread_mutex_lock(&pm->lock);
	uint32_t tmr = timer_value(pm);
	memcpy(regs + 0, &pm->status, 2);
	memcpy(regs + 2, &pm->enable, 2);
	memcpy(regs + 4, &pm->control, 2);
	memset(regs + 6, 0, 2);
	memcpy(regs + 8, &tmr, 4);
	pthread_mutex_unlock(&pm->lock);
	memset(data, 0, len);
	for (unsigned i = 0; i < len && off + i < ACPI_PM_LEN; i++)
		data[i] = regs[off + i];
}

static void pm_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct acpi_pm *pm = opaque;
	uint8_t bytes[8] = {0};
	memcpy(bytes, data, len > 8 ? 8 : len);
	bool poweroff = false;
	pthread_mutex_lock(&pm->lock);
	/* Byte-wise so that 8-bit and 16-bit accesses behave alike. */
	for (unsigned i = 0; i < len; i++) {
		uint64_t reg = off + i;
		unsigned shift = (reg & 1) * 8;
		uint16_t v = (uint16_t)(bytes[i] << shift);
		uint16_t mask = (uint16_t)(0xff << shift);
		if (reg < 2) {
			pm->status &= ~v; /* write 1 to clear */
		} else if (reg < 4) {
			pm->enable = (pm->enable & ~mask) | v;
		} else if (reg < 6) {
			uint16_t ctl = (pm->control & ~mask) | v;
			if (ctl & PM1_SLP_EN) {
				if (PM1_SLP_TYP(ctl) == ACPI_SLP_TYP_S5)
					poweroff = true;
				ctl &= ~PM1_SLP_EN; /* write-only bit */
			}
			pm->control = ctl | PM1_SCI_EN;
		}
	}
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	if (poweroff && pm->platform && pm->platform->event)
		pm->platform->event(pm->platform->opaque, MACHINE_POWEROFF);
}

const struct io_ops acpi_pm_ops = {.read = pm_read, .write = pm_write};

static void reset_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	memset(data, 0, len);
}

static void reset_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct acpi_pm *pm = opaque;
	/* Bit 2 (RST_CPU) starts the reset; bit 1 selects a hard one: both reset the VM here. */
	if ((data[0] & 0x04) && pm->platform && pm->platform->event)
		pm->platform->event(pm->platform->opaque, MACHINE_RESET);
}

const struct io_ops acpi_reset_ops = {.read = reset_read, .write = reset_write};

void acpi_pm_init(struct acpi_pm *pm, const struct platform_ops *platform)
{
	memset(pm, 0, sizeof(*pm));
	pthread_mutex_init(&pm->lock, NULL);
	pm->platform = platform;
	/* No SMI command port in the FADT: the machine starts in ACPI mode. */
	pm->control = PM1_SCI_EN;
	pm->start_ns = now_ns();
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	pthread_mutex_destroy(&pm->lock);
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->status |= PM1_PWRBTN_STS;
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

/* ---- state (util/state.h) ---- */

/* The PM timer as the time it has run: it goes on from there after a load. */
static int pm_save(void *dev, struct state_buf *out)
{
	struct acpi_pm *pm = dev;
	struct state_writer w;
	pthread_mutex_lock(&pm->lock);
	state_begin(&w, out, "acpi-pm", 1);
	state_put_u16(&w, "status", pm->status);
	state_put_u16(&w, "enable", pm->enable);
	state_put_u16(&w, "control", pm->control);
	state_put_u64(&w, "timer_ns", now_ns() - pm->start_ns);
	state_end(&w);
	pthread_mutex_unlock(&pm->lock);
	return state_buf_check(out);
}

static int pm_load(void *dev, const struct state_reader *r)
{
	struct acpi_pm *pm = dev;
	uint16_t status, enable, control;
	uint64_t ran;
	if (state_get_u16(r, "status", &status) < 0 || state_get_u16(r, "enable", &enable) < 0 ||
	    state_get_u16(r, "control", &control) < 0 || state_get_u64(r, "timer_ns", &ran) < 0)
		return -1;
	uint64_t now = now_ns();
	if (ran > now)
		return kite_error("device state: acpi-pm: the PM timer ran %llu s, longer than "
				  "this host is up",
				  (unsigned long long)(ran / 1000000000ULL));
	pthread_mutex_lock(&pm->lock);
	pm->status = status;
	pm->enable = enable;
	pm->control = (uint16_t)((control & ~PM1_SLP_EN) | PM1_SCI_EN);
	pm->start_ns = now - ran;
	pm->sci_level = 0;
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

const struct state_ops acpi_pm_state_ops = {"acpi-pm", 1, pm_save, pm_load};

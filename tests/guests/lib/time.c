/* Time: the TSC, calibrated once against a 10 ms one-shot of PIT channel 2 (polled through
 * port 0x61, so no interrupt is involved). rdtsc works in ring 3, so the deadline helpers do. */
#include "libguest.h"

#define PIT_HZ 1193182

static uint64_t khz;

uint64_t pit_tsc_window(unsigned ms)
{
	uint8_t gate = inb(0x61);
	outb(0x61, (gate & ~0x02) | 0x01); /* gate on, speaker off */
	outb(0x43, 0xb0);		   /* channel 2, lo/hi byte, mode 0 */
	uint16_t count = (uint16_t)(PIT_HZ * ms / 1000);
	outb(0x42, count & 0xff);
	outb(0x42, count >> 8);
	uint64_t t0 = rdtsc(), t = 0;
	/* OUT2 (bit 5) rises when the count reaches 0; bounded in case there is no PIT. */
	for (int i = 0; i < 2000000 && !t; i++) {
		if (inb(0x61) & 0x20)
			t = rdtsc() - t0;
	}
	outb(0x61, gate);
	return t;
}

static uint64_t calibrate(void)
{
	uint64_t k = pit_tsc_window(10) / 10;
	if (k)
		return k;
	printf("guest: PIT channel 2 never fired; assuming a 1 GHz TSC\n");
	return 1000000;
}

uint64_t tsc_khz(void)
{
	if (!khz)
		khz = calibrate();
	return khz;
}

uint64_t deadline_ms(uint64_t ms)
{
	return rdtsc() + ms * tsc_khz();
}

bool deadline_passed(uint64_t deadline)
{
	return (int64_t)(rdtsc() - deadline) >= 0;
}

void udelay(uint64_t us)
{
	uint64_t end = rdtsc() + us * tsc_khz() / 1000;
	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
}

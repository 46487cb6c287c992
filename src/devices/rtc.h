/* MC146818 CMOS real-time clock at ports 0x70/0x71: the host's UTC time in BCD, 24-hour mode,
 * never "update in progress", so Linux reads the time at boot without waiting. */
#ifndef KITE_DEVICES_RTC_H
#define KITE_DEVICES_RTC_H

#include "util/state.h"
#include "kvm/iobus.h"

#include <pthread.h>
#include <time.h>

#define RTC_PORT 0x70

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[128];
	time_t (*now)(time_t *); /* the clock (tests replace it) */
};

extern const struct io_ops rtc_io_ops;
/* CMOS RAM and index (section "rtc"). */
extern const struct state_ops rtc_state_ops;

void rtc_init(struct rtc *r);
void rtc_destroy(struct rtc *r);

#endif

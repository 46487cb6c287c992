#include "devices/rtc.h"
#include "util/err.h"

#include <string.h>

enum {
	RTC_SECONDS = 0x00,
	RTC_MINUTES = 0x02,
	RTC_HOURS = 0x04,
	RTC_WEEKDAY = 0x06,
	RTC_DAY = 0x07,
	RTC_MONTH = 0x08,
	RTC_YEAR = 0x09,
	RTC_REG_A = 0x0a,
	RTC_REG_B = 0x0b,
	RTC_REG_C = 0x0c,
	RTC_REG_D = 0x0d,
	RTC_CENTURY = 0x32,
};

#define REG_B_24H    0x02
#define REG_B_BINARY 0x04
#define REG_D_VRT    0x80 /* valid RAM and time: the battery is fine */

static uint8_t to_bcd(int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static uint8_t encode(const struct rtc *r, int v)
{
	return (r->cmos[RTC_REG_B] & REG_B_BINARY) ? (uint8_t)v : to_bcd(v);
}

static uint8_t read_reg(struct rtc *r, uint8_t idx)
{
	struct tm tm;
	time_t t = r->now(NULL);
	gmtime_r(&t, &tm);
	switch (idx) {
	case RTC_SECONDS:
		return encode(r, tm.tm_sec);
	case RTC_MINUTES:
		return encode(r, tm.tm_min);
	case RTC_HOURS:
		return encode(r, tm.tm_hour);
	case RTC_WEEKDAY:
		return encode(r, tm.tm_wday + 1);
	case RTC_DAY:
		return encode(r, tm.tm_mday);
	case RTC_MONTH:
		return encode(r, tm.tm_mon + 1);
	case RTC_YEAR:
		return encode(r, tm.tm_year % 100);
	case RTC_CENTURY:
		return encode(r, (tm.tm_year + 1900) / 100);
	case RTC_REG_A:
		return r->cmos[RTC_REG_A] & 0x7f; /* UIP never set */
	case RTC_REG_C: {
		uint8_t v = r->cmos[RTC_REG_C];
		r->cmos[RTC_REG_C] = 0; /* read clears the interrupt flags */
		return v;
	}
	case RTC_REG_D:
		return REG_D_VRT;
	default:
		return r->cmos[idx & 0x7f];
	}
}

static void rtc_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct rtc *r = opaque;
	memset(data, 0, len);
	pthread_mutex_lock(&r->lock);
	data[0] = off == 0 ? r->index : read_reg(r, r->index);
	pthread_mutex_unlock(&r->lock);
}

static void rtc_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct rtc *r = opaque;
	pthread_mutex_lock(&r->lock);
	if (off == 0) {
		r->index = data[0] & 0x7f; /* bit 7 is the NMI mask */
	} else if (r->index == RTC_REG_A || r->index == RTC_REG_B || r->index >= 0x0e) {
		/* Time registers stay the host's: writes to them are ignored. */
		r->cmos[r->index] = data[0];
	}
	pthread_mutex_unlock(&r->lock);
}

const struct io_ops rtc_io_ops = {.read = rtc_read, .write = rtc_write};

void rtc_init(struct rtc *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->now = time;
	r->cmos[RTC_REG_A] = 0x26;
	r->cmos[RTC_REG_B] = REG_B_24H;
}

void rtc_destroy(struct rtc *r)
{
	pthread_mutex_destroy(&r->lock);
}

/* ---- state (util/state.h) ---- */

/* The CMOS RAM and the index; the time registers are the host's clock, read live. */
static int rtc_save(void *dev, struct state_buf *out)
{
	struct rtc *r = dev;
	struct state_writer w;
	pthread_mutex_lock(&r->lock);
	state_begin(&w, out, "rtc", 1);
	state_put_u8(&w, "index", r->index);
	state_put_bytes(&w, "cmos", r->cmos, sizeof(r->cmos));
	state_end(&w);
	pthread_mutex_unlock(&r->lock);
	return state_buf_check(out);
}

static int rtc_load(void *dev, const struct state_reader *rd)
{
	struct rtc *r = dev;
	uint8_t index, cmos[sizeof(r->cmos)];
	if (state_get_u8(rd, "index", &index) < 0 ||
	    state_get_bytes(rd, "cmos", cmos, sizeof(cmos)) < 0)
		return -1;
	if (index & 0x80)
		return kite_error("device state: rtc: index 0x%02x is past the CMOS", index);
	pthread_mutex_lock(&r->lock);
	r->index = index;
	memcpy(r->cmos, cmos, sizeof(cmos));
	pthread_mutex_unlock(&r->lock);
	return 0;
}

const struct state_ops rtc_state_ops = {"rtc", 1, rtc_save, rtc_load};

#include "machine/milestones.h"

#include <string.h>
#include <time.h>

/* Lines worth a timestamp: the stages of a Linux boot where time goes on a slow host. */
static const char *const markers[] = {
    "Linux version ",
    "Memory: ",
    "x86/fpu: ",
    "smp: Brought up",
    "devtmpfs: initialized",
    "clocksource: Switched to",
    "PCI: Using",
    "Freeing unused kernel",
    "Run /init",
    "Run /sbin/init",
    "KITE-GUEST-UP",
    "SUMMARY: ",
    "reboot: ",
};

static double monotonic_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void milestones_init(struct milestones *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->clock = monotonic_s;
	m->start = m->clock();
	m->first_output = -1;
}

void milestones_destroy(struct milestones *m)
{
	pthread_mutex_destroy(&m->lock);
}

static void end_line(struct milestones *m, double now)
{
	m->line[m->len] = '\0';
	for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
		if (m->n < MILESTONE_MAX && strstr(m->line, markers[i])) {
			m->seen[m->n].at = now - m->start;
			snprintf(m->seen[m->n].text, sizeof(m->seen[m->n].text), "%s", m->line);
			m->n++;
			break;
		}
	}
	m->len = 0;
}

void milestones_observe(void *opaque, const uint8_t *buf, size_t len)
{
	struct milestones *m = opaque;
	double now = m->clock();
	pthread_mutex_lock(&m->lock);
	if (m->first_output < 0)
		m->first_output = now - m->start;
	m->last_output = now - m->start;
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = buf[i];
		if (ch == '\n') {
			end_line(m, now);
		} else if (ch != '\r' && m->len < sizeof(m->line) - 1) {
			m->line[m->len++] = (char)ch;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

void milestones_print(const struct milestones *m, FILE *out)
{
	if (m->first_output < 0) {
		fprintf(out, "kite: stats: the guest printed nothing\n");
		return;
	}
	fprintf(out, "kite: stats: first output at +%.3f s, last at +%.3f s\n", m->first_output,
		m->last_output);
	double prev = 0;
	for (int i = 0; i < m->n; i++) {
		fprintf(out, "kite: stats: +%9.3f s (+%8.3f)  %s\n", m->seen[i].at,
			m->seen[i].at - prev, m->seen[i].text);
		prev = m->seen[i].at;
	}
}

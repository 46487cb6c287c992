/* Boot milestones for `kite run --stats`: the time from start to the guest lines that mark
 * the stages of a Linux boot (and our test programs' lines), read off the console output. */
#ifndef KITE_MACHINE_MILESTONES_H
#define KITE_MACHINE_MILESTONES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MILESTONE_MAX	   32
#define MILESTONE_LINE_MAX 160

struct milestones {
	pthread_mutex_t lock;
	double start;
	char line[MILESTONE_LINE_MAX];
	size_t len;
	int n;
	struct {
		double at;
		char text[MILESTONE_LINE_MAX];
	} seen[MILESTONE_MAX];
	double first_output, last_output;
	double (*clock)(void); /* seconds; tests replace it */
};

void milestones_init(struct milestones *m);
void milestones_destroy(struct milestones *m);
/* A console observer: feed it guest output. */
void milestones_observe(void *opaque, const uint8_t *buf, size_t len);
/* Prints "kite: stats: +S.SSS s (+delta) line" per milestone. */
void milestones_print(const struct milestones *m, FILE *out);

#endif

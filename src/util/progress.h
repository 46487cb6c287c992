/* Progress display for long operations (kite img convert -p, commit -p, ...). Prints
 * qemu-img's "    (12.34/100%)" line, redrawn in place, plus a bar when stdout is a
 * terminal. Updates at most once per percent. */
#ifndef KITE_UTIL_PROGRESS_H
#define KITE_UTIL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	bool enabled;
	bool tty;
	double last; /* percent last printed, -1 before the first */
};

void progress_init(struct progress *p, bool enabled);
/* Reports `done` of `total` units (total 0 counts as complete). */
void progress_update(struct progress *p, uint64_t done, uint64_t total);
/* Prints 100% and ends the line. */
void progress_finish(struct progress *p);

#endif

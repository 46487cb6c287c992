#include "util/progress.h"

#include <stdio.h>
#include <unistd.h>

#define BAR_WIDTH 40

void progress_init(struct progress *p, bool enabled)
{
	p->enabled = enabled;
	p->tty = enabled && isatty(STDOUT_FILENO);
	p->last = -1;
	if (enabled)
		progress_update(p, 0, 1);
}

static void draw(struct progress *p, double pct)
{
	printf("    (%4.2f/100%%)", pct);
	if (p->tty) {
		int fill = (int)(pct * BAR_WIDTH / 100.0);
		putchar(' ');
		putchar('[');
		for (int i = 0; i < BAR_WIDTH; i++)
			putchar(i < fill ? '#' : ' ');
		putchar(']');
	}
	putchar('\r');
	fflush(stdout);
	p->last = pct;
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	if (!p->enabled)
		return;
	double pct = total ? (double)done * 100.0 / (double)total : 100.0;
	if (pct > 100.0)
		pct = 100.0;
	/* whole percents only, as qemu-img's default granularity */
	if (p->last >= 0 && pct < 100.0 && pct - p->last < 1.0)
		return;
	draw(p, pct);
}

void progress_finish(struct progress *p)
{
	if (!p->enabled)
		return;
	if (p->last < 100.0)
		draw(p, 100.0);
	putchar('\n');
	fflush(stdout);
	p->enabled = false;
}

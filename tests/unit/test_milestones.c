#include "unit.h"
#include "machine/milestones.h"

#include <stdlib.h>
#include <string.h>

static double fake_now;
static double fake_clock(void)
{
	return fake_now;
}

static void feed(struct milestones *m, double at, const char *s)
{
	fake_now = at;
	milestones_observe(m, (const uint8_t *)s, strlen(s));
}

static void records_marker_lines_with_their_times(void **state)
{
	struct milestones m;
	milestones_init(&m);
	m.clock = fake_clock;
	m.start = 0;
	feed(&m, 0.5, "[    0.000000] Linux version 6.1.0 (gcc)\r\n");
	feed(&m, 1.0, "some other line\n");
	feed(&m, 2.0, "[    1.2] Run /init as init");
	feed(&m, 3.0, " process\r\nKITE-GUEST-UP uptime=1.9\n");
	assert_int_equal(m.n, 3);
	assert_true(m.seen[0].at == 0.5);
	assert_string_equal(m.seen[0].text, "[    0.000000] Linux version 6.1.0 (gcc)");
	assert_true(m.seen[1].at == 3.0); /* the time the line ended */
	assert_string_equal(m.seen[1].text, "[    1.2] Run /init as init process");
	assert_string_equal(m.seen[2].text, "KITE-GUEST-UP uptime=1.9");
	assert_true(m.first_output == 0.5);
	assert_true(m.last_output == 3.0);
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	milestones_print(&m, f);
	fclose(f);
	assert_non_null(
	    strstr(buf, "+    3.000 s (+   2.500)  [    1.2] Run /init as init process"));
	free(buf);
	milestones_destroy(&m);
}

static void long_lines_are_cut_not_overflowed(void **state)
{
	struct milestones m;
	milestones_init(&m);
	m.clock = fake_clock;
	char big[1000];
	memset(big, 'x', sizeof(big));
	memcpy(big, "Linux version ", 14);
	milestones_observe(&m, (const uint8_t *)big, sizeof(big));
	milestones_observe(&m, (const uint8_t *)"\n", 1);
	assert_int_equal(m.n, 1);
	assert_int_equal(strlen(m.seen[0].text), MILESTONE_LINE_MAX - 1);
	milestones_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(records_marker_lines_with_their_times),
	    cmocka_unit_test(long_lines_are_cut_not_overflowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

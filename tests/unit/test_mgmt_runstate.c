/* Run state from the runtime files: pid files (hostile contents), process identity, the
 * crash reason taken from a log. */
#include "unit.h"
#include "mgmt/fileutil.h"
#include "mgmt/runstate.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/kite-rs-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void put(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void own_process_is_alive_a_reused_pid_is_not(void **state)
{
	uint64_t start = process_start_time(getpid());
	assert_true(start > 0);
	assert_true(process_alive(getpid(), start));
	assert_false(process_alive(getpid(), start + 1)); /* same pid, another process */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	/* A zombie (exited, not yet reaped) is not a live VM. */
	usleep(100000);
	uint64_t zs = process_start_time(child);
	assert_int_equal(zs, 0);
	waitpid(child, NULL, 0);
	assert_int_equal(process_start_time(child), 0);
	assert_false(process_alive(0, 0));
	assert_false(process_alive(-1, 0));
}

static void pid_files_with_garbage_are_refused(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/vm.pid", dir);
	pid_t r, s;
	uint64_t rs, ss;
	assert_int_equal(pidfile_read(path, &r, &rs, &s, &ss), -1);
	assert_int_equal(errno, ENOENT);
	const char *bad[] = {"",	 "12",	    "12 34 56", "abc def ghi jkl",
			     "-5 1 7 1", "0 1 7 1", "5 1 -7 1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put("vm.pid", bad[i]);
		assert_int_equal(pidfile_read(path, &r, &rs, &s, &ss), -1);
	}
	put("vm.pid", "123 456 789 1011\n");
	assert_int_equal(pidfile_read(path, &r, &rs, &s, &ss), 0);
	assert_int_equal(r, 123);
	assert_int_equal(rs, 456);
	assert_int_equal(s, 789);
	assert_int_equal(ss, 1011);
}

static void crash_reason_is_the_last_error_line(void **state)
{
	char path[128], out[256];
	snprintf(path, sizeof(path), "%s/vm.log", dir);
	log_last_error(path, out, sizeof(out));
	assert_string_equal(out, ""); /* no log */
	put("vm.log", "kite: booting\nkite: error: first\nguest says hi\nkite: error: "
		      "KVM_RUN: internal error, suberror 1\nkite: bye\n");
	log_last_error(path, out, sizeof(out));
	assert_string_equal(out, "kite: error: KVM_RUN: internal error, suberror 1");
	put("vm.log", "just a line\nand the last one\n");
	log_last_error(path, out, sizeof(out));
	assert_string_equal(out, "and the last one");
}

static void states_from_the_files(void **state)
{
	struct mgmt_dirs d;
	char run[96];
	snprintf(run, sizeof(run), "%s", dir);
	assert_int_equal(mgmt_dirs_init(dir, run, &d), 0);
	struct machine_status st;
	assert_int_equal(machine_status_get(&d, "vm", false, &st), 0);
	assert_int_equal(st.state, MACHINE_SHUTOFF);
	assert_string_equal(machine_state_name(st.state), "shut off");
	put("vm.status", "{\"state\": \"crashed\", \"reason\": \"killed by signal 9\"}");
	assert_int_equal(machine_status_get(&d, "vm", false, &st), 0);
	assert_int_equal(st.state, MACHINE_CRASHED);
	assert_string_equal(st.reason, "killed by signal 9");
	put("vm.status", "{\"state\": "); /* a torn status file still says something */
	assert_int_equal(machine_status_get(&d, "vm", false, &st), 0);
	assert_int_equal(st.state, MACHINE_CRASHED);
	/* This very process as "the VM": running. */
	char line[128];
	snprintf(line, sizeof(line), "%d %llu %d %llu\n", (int)getpid(),
		 (unsigned long long)process_start_time(getpid()), (int)getpid(),
		 (unsigned long long)process_start_time(getpid()));
	put("vm.pid", line);
	assert_int_equal(machine_status_get(&d, "vm", false, &st), 0);
	assert_int_equal(st.state, MACHINE_RUNNING);
	assert_int_equal(st.pid, getpid());
	/* Pids whose processes are gone, and no supervisor to say why: crashed. */
	put("vm.pid", "999999 1 999998 1\n");
	assert_int_equal(machine_status_get(&d, "vm", false, &st), 0);
	assert_int_equal(st.state, MACHINE_CRASHED);
	assert_non_null(strstr(st.reason, "supervisor are gone"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(own_process_is_alive_a_reused_pid_is_not),
	    cmocka_unit_test_setup_teardown(pid_files_with_garbage_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(crash_reason_is_the_last_error_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(states_from_the_files, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

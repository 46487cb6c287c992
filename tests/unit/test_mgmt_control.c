/* The control socket, server against client, with fake handlers: no VM involved. */
#include "unit.h"
#include "cli/cmd_machine.h"
#include "mgmt/console_ring.h"
#include "mgmt/control_client.h"
#include "mgmt/control_server.h"
#include "mgmt/fileutil.h"
#include "mgmt/machine_control.h"

#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fake {
	pthread_mutex_t lock;
	bool paused;
	int quits, powerdowns;
	uint64_t balloon;
	char input[256];
	size_t inlen;
	volatile int hang_release; /* a hanging handler waits for this */
	struct control_server *server;
};

static int f_status(void *o, json_t *args, json_t **out)
{
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	*out = json_pack("{s:s}", "status", f->paused ? "paused" : "running");
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int f_stop(void *o, json_t *args, json_t **ret)
{
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	f->paused = true;
	pthread_mutex_unlock(&f->lock);
	control_server_emit_event(f->server, "STOP", json_pack("{s:s}", "why", "test"));
	return 0;
}

static int f_cont(void *o, json_t *args, json_t **ret)
{
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	f->paused = false;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* The hanging handler: stands for a VMM that never answers (kvmtool's balloon stat). */
static int f_reset(void *o, json_t *args, json_t **ret)
{
	struct fake *f = o;
	while (!f->hang_release)
		usleep(1000);
	return 0;
}

static int f_powerdown(void *o, json_t *args, json_t **ret)
{
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	f->powerdowns++;
	pthread_mutex_unlock(&f->lock);
	control_set_error("DeviceNotActive", "no ACPI in this test guest");
	return -1;
}

static int f_quit(void *o, json_t *args, json_t **ret)
{
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	f->quits++;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int f_balloon(void *o, json_t *args, json_t **ret)
{
	struct fake *f = o;
	f->balloon = (uint64_t)json_integer_value(json_object_get(args, "value"));
	return 0;
}

static int f_query_balloon(void *o, json_t *args, json_t **ret)
{
	*ret = json_pack("{s:I}", "actual", (json_int_t)((struct fake *)o)->balloon);
	return 0;
}

static int f_input(void *o, const void *d, size_t n)
{
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	if (f->inlen + n < sizeof(f->input)) {
		memcpy(f->input + f->inlen, d, n);
		f->inlen += n;
	}
	pthread_mutex_unlock(&f->lock);
	return 0;
}

struct fixture {
	char dir[64];
	char path[128];
	struct fake fake;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	strcpy(fx->dir, "/tmp/kite-ctl-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/vm.sock", fx->dir);
	pthread_mutex_init(&fx->fake.lock, NULL);
	fx->fake.balloon = 256 << 20;
	struct control_handlers h = {
	    .cmd =
		{
		    [CONTROL_QUERY_STATUS] = f_status,
		    [CONTROL_STOP] = f_stop,
		    [CONTROL_CONT] = f_cont,
		    [CONTROL_SYSTEM_POWERDOWN] = f_powerdown,
		    [CONTROL_SYSTEM_RESET] = f_reset,
		    [CONTROL_QUIT] = f_quit,
		    [CONTROL_BALLOON] = f_balloon,
		    [CONTROL_QUERY_BALLOON] = f_query_balloon,
		},
	    .console_input = f_input,
	    .opaque = &fx->fake,
	};
	assert_int_equal(control_server_start(fx->path, "testvm", &h, &fx->fake.server), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	fx->fake.hang_release = 1;
	control_server_stop(fx->fake.server);
	/* The socket file goes with the server. */
	assert_int_equal(access(fx->path, F_OK), -1);
	rmdir(fx->dir);
	pthread_mutex_destroy(&fx->fake.lock);
	free(fx);
	return 0;
}

static struct control_client *connect_ok(struct fixture *fx)
{
	struct control_client *c = NULL;
	char *err = NULL;
	int r = control_client_connect(fx->path, 2000, &c, &err);
	if (r < 0)
		fail_msg("connect: %s", err);
	return c;
}

static void greeting_and_status(void **state)
{
	struct fixture *fx = *state;
	struct control_client *c = connect_ok(fx);
	json_t *g = control_client_greeting(c);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(g, "kite"), "protocol")), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(g, "kite"), "name")),
			    "testvm");
	json_t *ret = NULL;
	assert_int_equal(control_client_execute(c, "query-status", NULL, &ret, 2000), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
	json_decref(ret);
	struct stat st;
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	control_client_close(c);
}

static void stop_emits_event_and_changes_status(void **state)
{
	struct fixture *fx = *state;
	struct control_client *c = connect_ok(fx);
	struct control_client *watcher = connect_ok(fx);
	assert_int_equal(control_client_execute(c, "stop", NULL, NULL, 2000), 0);
	json_t *ret = NULL;
	assert_int_equal(control_client_execute(c, "query-status", NULL, &ret, 2000), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "paused");
	json_decref(ret);
	/* Every connection sees the event. */
	json_t *ev = NULL;
	assert_int_equal(control_client_next_event(watcher, 2000, &ev), 0);
	assert_string_equal(json_string_value(json_object_get(ev, "event")), "STOP");
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "why")),
			    "test");
	assert_true(json_is_integer(json_object_get(json_object_get(ev, "timestamp"), "seconds")));
	json_decref(ev);
	assert_int_equal(control_client_execute(c, "cont", NULL, NULL, 2000), 0);
	control_client_close(c);
	control_client_close(watcher);
}

static void malformed_json_gets_error_and_connection_lives(void **state)
{
	struct fixture *fx = *state;
	struct control_client *c = connect_ok(fx);
	const char *bad[] = {"{\"execute\": \n", "[1,2,3]\n", "{\"execute\": 42}\n",
			     "{\"execute\": \"query-status\", \"arguments\": 5}\n",
			     "{\"execute\": \"query-status\", \"bogus\": 1}\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(control_client_send_raw(c, bad[i], strlen(bad[i])), 0);
		json_t *msg = NULL;
		assert_int_equal(control_client_read_message(c, 2000, &msg), 0);
		json_t *e = json_object_get(msg, "error");
		assert_non_null(e);
		assert_string_equal(json_string_value(json_object_get(e, "class")), "GenericError");
		json_decref(msg);
	}
	json_t *ret = NULL;
	assert_int_equal(control_client_execute(c, "query-status", NULL, &ret, 2000), 0);
	json_decref(ret);
	control_client_close(c);
}

static void half_closed_client_still_gets_its_answers(void **state)
{
	struct fixture *fx = *state;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, fx->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	const char *req = "{\"execute\": \"query-status\", \"id\": 1}\n"
			  "{\"execute\": \"query-balloon\", \"id\": 2}\n";
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	assert_int_equal(shutdown(fd, SHUT_WR), 0); /* as `echo ... | socat` does */
	char buf[4096];
	size_t len = 0;
	ssize_t n;
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	/* Greeting, both answers, then the server closed (read returned 0). */
	assert_non_null(strstr(buf, "\"status\":\"running\""));
	assert_non_null(strstr(buf, "\"actual\":268435456"));
	assert_int_equal(n, 0);
}

static void oversized_line_is_refused_and_closed(void **state)
{
	struct fixture *fx = *state;
	struct control_client *c = connect_ok(fx);
	size_t n = CONTROL_LINE_MAX + 100;
	char *big = malloc(n);
	memset(big, 'a', n);
	/* The server may close before it reads all of it: a send error is fine then. */
	control_client_send_raw(c, big, n);
	free(big);
	json_t *msg = NULL;
	assert_int_equal(control_client_read_message(c, 2000, &msg), 0);
	const char *desc =
	    json_string_value(json_object_get(json_object_get(msg, "error"), "desc"));
	assert_non_null(desc);
	assert_non_null(strstr(desc, "longer than 65536"));
	json_decref(msg);
	assert_int_equal(control_client_read_message(c, 2000, &msg), -1);
	assert_string_equal(control_client_error_class(c), "Disconnected");
	control_client_close(c);
	/* The server still serves others. */
	c = connect_ok(fx);
	assert_int_equal(control_client_execute(c, "query-status", NULL, &msg, 2000), 0);
	json_decref(msg);
	control_client_close(c);
}

static void unknown_command_and_handler_errors(void **state)
{
	struct fixture *fx = *state;
	struct control_client *c = connect_ok(fx);
	assert_int_equal(control_client_execute(c, "frobnicate", NULL, NULL, 2000), -1);
	assert_string_equal(control_client_error_class(c), "CommandNotFound");
	assert_int_equal(control_client_execute(c, "system_powerdown", NULL, NULL, 2000), -1);
	assert_string_equal(control_client_error_class(c), "DeviceNotActive");
	assert_string_equal(control_client_error(c), "no ACPI in this test guest");
	assert_int_equal(
	    control_client_execute(c, "balloon", json_pack("{s:s}", "value", "x"), NULL, 2000), -1);
	/* Arguments are checked against the command's schema. */
	assert_int_equal(control_client_execute(c, "balloon", NULL, NULL, 2000), -1);
	assert_string_equal(control_client_error(c),
			    "balloon needs \"value\": a positive number of bytes");
	assert_int_equal(
	    control_client_execute(c, "stop", json_pack("{s:b}", "now", 1), NULL, 2000), -1);
	assert_string_equal(control_client_error_class(c), "GenericError");
	assert_string_equal(control_client_error(c), "stop takes no argument 'now'");
	assert_int_equal(
	    control_client_execute(c, "console", json_pack("{s:i}", "replay", 1), NULL, 2000), -1);
	assert_string_equal(control_client_error(c), "'replay' must be true or false");
	assert_int_equal(
	    control_client_execute(
		c, "balloon", json_pack("{s:I}", "value", (json_int_t)(128 << 20)), NULL, 2000),
	    0);
	json_t *ret = NULL;
	assert_int_equal(control_client_execute(c, "query-balloon", NULL, &ret, 2000), 0);
	assert_int_equal(json_integer_value(json_object_get(ret, "actual")), 128 << 20);
	json_decref(ret);
	control_client_close(c);
}

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hanging_handler_times_out_on_the_server(void **state)
{
	struct fixture *fx = *state;
	control_server_set_timeout(fx->fake.server, 200);
	struct control_client *c = connect_ok(fx);
	int64_t t0 = ms_now();
	assert_int_equal(control_client_execute(c, "system_reset", NULL, NULL, 5000), -1);
	assert_string_equal(control_client_error_class(c), "Timeout");
	assert_true(ms_now() - t0 < 4000);
	/* The connection and the server go on. */
	json_t *ret = NULL;
	assert_int_equal(control_client_execute(c, "query-status", NULL, &ret, 2000), 0);
	json_decref(ret);
	control_client_close(c);
}

static void hung_handlers_are_bounded(void **state)
{
	struct fixture *fx = *state;
	control_server_set_timeout(fx->fake.server, 20);
	struct control_client *c = connect_ok(fx);
	int timeouts = 0, refused = 0;
	for (int i = 0; i < CONTROL_MAX_WORKERS + 5; i++) {
		assert_int_equal(control_client_execute(c, "system_reset", NULL, NULL, 5000), -1);
		if (!strcmp(control_client_error_class(c), "Timeout"))
			timeouts++;
		else if (strstr(control_client_error(c), "too many commands"))
			refused++;
	}
	assert_int_equal(timeouts, CONTROL_MAX_WORKERS);
	assert_int_equal(refused, 5);
	/* Commands the server answers itself still work. */
	json_t *ret = NULL;
	assert_int_equal(control_client_execute(c, "query-version", NULL, &ret, 2000), 0);
	json_decref(ret);
	control_client_close(c);
}

static void client_gives_up_after_its_own_timeout(void **state)
{
	struct fixture *fx = *state;
	control_server_set_timeout(fx->fake.server, 10000);
	struct control_client *c = connect_ok(fx);
	int64_t t0 = ms_now();
	assert_int_equal(control_client_execute(c, "system_reset", NULL, NULL, 300), -1);
	assert_string_equal(control_client_error_class(c), "Timeout");
	assert_non_null(strstr(control_client_error(c), "no answer from the VM within 300 ms"));
	assert_true(ms_now() - t0 < 3000);
	control_client_close(c);
}

static void quit_replies_before_the_vmm_ends(void **state)
{
	struct fixture *fx = *state;
	struct control_client *c = connect_ok(fx);
	assert_int_equal(control_client_execute(c, "quit", NULL, NULL, 2000), 0);
	for (int i = 0; i < 200 && !fx->fake.quits; i++)
		usleep(5000);
	assert_int_equal(fx->fake.quits, 1);
	control_client_close(c);
}

static void console_replays_then_streams_both_ways(void **state)
{
	struct fixture *fx = *state;
	control_server_console_output(fx->fake.server, "boot line 1\n", 12);
	struct control_client *c = connect_ok(fx);
	assert_int_equal(control_client_execute(c, "console", NULL, NULL, 2000), 0);
	control_server_console_output(fx->fake.server, "live\n", 5);
	int sv[2], in[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pipe(in), 0);
	/* Typed: "ls\n" then Ctrl-] (detach) and bytes after it that must not be sent. */
	assert_int_equal(write(in[1], "ls\n\x1dXX", 6), 6);
	usleep(100000); /* let the live line arrive before the escape ends the session */
	assert_int_equal(control_client_console(c, in[0], sv[0], 500), 0);
	char buf[256] = {0};
	ssize_t n = recv(sv[1], buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	assert_non_null(strstr(buf, "boot line 1\n"));
	for (int i = 0; i < 200 && fx->fake.inlen < 3; i++)
		usleep(5000);
	pthread_mutex_lock(&fx->fake.lock);
	assert_int_equal(fx->fake.inlen, 3);
	assert_memory_equal(fx->fake.input, "ls\n", 3);
	pthread_mutex_unlock(&fx->fake.lock);
	control_client_close(c);
	close(sv[0]);
	close(sv[1]);
	close(in[0]);
	close(in[1]);
}

static void other_users_are_refused(void **state)
{
	struct fixture *fx = *state;
	if (geteuid() != 0)
		skip(); /* needs root to become another user */
	struct passwd *pw = getpwnam("nobody");
	assert_non_null(pw);
	/* Open the file mode so that only SO_PEERCRED stands in the way. */
	assert_int_equal(chmod(fx->path, 0666), 0);
	assert_int_equal(chmod(fx->dir, 0755), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
			_exit(10);
		struct control_client *c;
		char *err = NULL;
		if (control_client_connect(fx->path, 2000, &c, &err) == 0)
			_exit(11);
		_exit(strstr(err, "PermissionDenied") || strstr(err, "may not control") ? 0 : 12);
	}
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
	/* Root still gets in. */
	control_client_close(connect_ok(fx));
}

static void stale_socket_is_replaced_live_one_is_not(void **state)
{
	struct fixture *fx = *state;
	struct control_server *second;
	struct control_handlers h = {0};
	assert_int_equal(control_server_start(fx->path, NULL, &h, &second), -1);
	char stale[160];
	snprintf(stale, sizeof(stale), "%s/stale.sock", fx->dir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, stale);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* a socket file nobody listens on: what a crash leaves */
	assert_int_equal(control_server_start(stale, NULL, &h, &second), 0);
	struct control_client *c;
	char *err = NULL;
	assert_int_equal(control_client_connect(stale, 2000, &c, &err), 0);
	json_t *ret = NULL;
	/* No handlers: the server's own commands answer, the VMM's say they are not available
	 * (one rule for every command of the table). */
	assert_int_equal(control_client_execute(c, "query-commands", NULL, &ret, 2000), 0);
	assert_int_equal(json_array_size(ret), 4);
	json_decref(ret);
	assert_int_equal(control_client_execute(c, "query-status", NULL, NULL, 2000), -1);
	assert_string_equal(control_client_error_class(c), "CommandNotAvailable");
	assert_int_equal(control_client_execute(c, "stop", NULL, NULL, 2000), -1);
	assert_string_equal(control_client_error_class(c), "CommandNotAvailable");
	assert_int_equal(control_client_execute(c, "query-balloon", NULL, NULL, 2000), -1);
	assert_string_equal(control_client_error_class(c), "DeviceNotActive");
	control_client_close(c);
	control_server_stop(second);
}

static void ring_keeps_the_newest_bytes(void **state)
{
	struct console_ring r;
	assert_int_equal(console_ring_init(&r, 8), 0);
	console_ring_write(&r, "abcdef", 6);
	uint64_t pos = 0;
	char out[16];
	assert_int_equal(console_ring_read(&r, &pos, out, sizeof(out)), 6);
	assert_memory_equal(out, "abcdef", 6);
	console_ring_write(&r, "ghijk", 5); /* wraps; "abc" is gone */
	pos = 0;
	assert_int_equal(console_ring_read(&r, &pos, out, sizeof(out)), 8);
	assert_memory_equal(out, "defghijk", 8);
	assert_int_equal(pos, 11);
	console_ring_write(&r, "0123456789", 10); /* more than the ring */
	pos = console_ring_oldest(&r);
	assert_int_equal(console_ring_read(&r, &pos, out, 3), 3);
	assert_memory_equal(out, "234", 3);
	assert_int_equal(console_ring_read(&r, &pos, out, sizeof(out)), 5);
	assert_memory_equal(out, "56789", 5);
	console_ring_destroy(&r);
}

/* A command a VMM carries out has a handler in every VMM: the real one and the stand-in. */
static void every_command_has_a_handler_in_every_vmm(void **state)
{
	int rows[CONTROL_VMM_COMMANDS] = {0};
	for (size_t i = 0; i < control_ncommands; i++) {
		const struct control_command *cmd = &control_commands[i];
		assert_ptr_equal(control_command_find(cmd->name), cmd); /* names are unique */
		if (!cmd->by_vmm)
			continue;
		assert_true(cmd->vmm >= 0 && cmd->vmm < CONTROL_VMM_COMMANDS);
		rows[cmd->vmm]++;
		if (!machine_control_handlers[cmd->vmm])
			fail_msg("kite run has no handler for %s", cmd->name);
		if (!fake_run_handlers[cmd->vmm])
			fail_msg("kite _fake-run has no handler for %s", cmd->name);
	}
	for (int i = 0; i < CONTROL_VMM_COMMANDS; i++)
		if (rows[i] != 1)
			fail_msg("enum control_cmd %d has %d rows in control_commands[]", i,
				 rows[i]);
}

/* The docs' table of commands is the table: a row per command, in its order, with its
 * arguments as the schema has them. */
static void the_docs_list_every_command(void **state)
{
	char *doc;
	size_t len;
	if (read_file_all("docs/control-protocol.md", 1 << 20, &doc, &len) < 0 &&
	    read_file_all("../../docs/control-protocol.md", 1 << 20, &doc, &len) < 0)
		fail_msg("docs/control-protocol.md not found (run from the repository)");
	const char *table = strstr(doc, "### Commands");
	assert_non_null(table);
	const char *row = strstr(table, "|---|");
	assert_non_null(row);
	row = strchr(row, '\n') + 1;
	for (size_t i = 0; i < control_ncommands; i++) {
		const struct control_command *cmd = &control_commands[i];
		char args[200], want[600];
		snprintf(want, sizeof(want), "| `%s` | %s | %s |\n", cmd->name,
			 control_command_args_doc(cmd, args, sizeof(args)), cmd->returns);
		/* An empty cell is written "| |". */
		char *empty = strstr(want, "|  |");
		if (empty)
			memmove(empty + 2, empty + 3, strlen(empty + 3) + 1);
		const char *nl = strchr(row, '\n');
		if (strncmp(row, want, strlen(want)))
			fail_msg("docs row %zu:\n  %.*s\nthe table says:\n  %s", i + 1,
				 nl ? (int)(nl - row) : 40, row, want);
		row += strlen(want);
	}
	if (row[0] == '|')
		fail_msg("the docs list a command the table does not have: %.60s", row);
	free(doc);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(greeting_and_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(stop_emits_event_and_changes_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(malformed_json_gets_error_and_connection_lives, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(half_closed_client_still_gets_its_answers, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(oversized_line_is_refused_and_closed, setup, teardown),
	    cmocka_unit_test_setup_teardown(unknown_command_and_handler_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(hanging_handler_times_out_on_the_server, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(hung_handlers_are_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(client_gives_up_after_its_own_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(quit_replies_before_the_vmm_ends, setup, teardown),
	    cmocka_unit_test_setup_teardown(console_replays_then_streams_both_ways, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(other_users_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(stale_socket_is_replaced_live_one_is_not, setup,
					    teardown),
	    cmocka_unit_test(ring_keeps_the_newest_bytes),
	    cmocka_unit_test(every_command_has_a_handler_in_every_vmm),
	    cmocka_unit_test(the_docs_list_every_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

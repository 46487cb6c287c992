/* kite start, suspend, resume, reboot, shutdown, destroy, console, autostart: a machine's
 * life, over its control socket. */
#include "cli/cmd_machine.h"
#include "mgmt/control_client.h"
#include "mgmt/fileutil.h"
#include "mgmt/launch.h"
#include "mgmt/runstate.h"
#include "util/err.h"
#include "machine/savefile.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

enum { O_DISABLE = 1, O_BOOT, O_TIMEOUT, O_NO_REPLAY, O_CONSOLE, O_LOOP };

static bool is_active(const struct machine_status *st)
{
	return st->state == MACHINE_RUNNING || st->state == MACHINE_PAUSED;
}

/* Starts the machine, or resumes its managed save (`kite managedsave`) when it has one, as
 * virsh does; the save file goes once the machine runs from it (the VMM maps its RAM and
 * keeps it open). A managed save that fails its checks stops the start: the error says
 * so, and `kite managedsave-remove` lets the machine boot afresh. */
static int start_or_resume(struct machine_cli *cli, const struct machine_config *def)
{
	char save[PATH_MAX];
	if (managed_save_path(&cli->dirs, def->name, save, sizeof(save)) < 0)
		return -1;
	if (access(save, F_OK) < 0)
		return machine_start(&cli->dirs, def, NULL, start_timeout_ms());
	struct savefile f;
	if (savefile_open(&f, save) < 0)
		return kite_error("machine %s: its managed save cannot be resumed "
				  "(kite managedsave-remove %s discards it)",
				  def->name, def->name);
	bool same = !strcmp(f.def.name, def->name);
	savefile_close(&f);
	if (!same)
		return kite_error("machine %s: its managed save %s is another machine's", def->name,
				  save);
	if (machine_start(&cli->dirs, def, save, start_timeout_ms()) < 0)
		return -1;
	if (unlink(save) < 0)
		kite_warn("cannot remove %s: %s", save, strerror(errno));
	return 0;
}

/* Starts NAME under its lock. `quiet_if_running`: autostart --boot skips running machines. */
static int start_one(struct machine_cli *cli, const char *name, bool autostart_only)
{
	if (machine_name_check(name) < 0)
		return -1;
	int lock = def_lock(&cli->dirs, name);
	if (lock < 0)
		return -1;
	int r = -1;
	struct machine_config def;
	struct machine_status st;
	if (machine_load(cli, name, &def) < 0)
		goto out;
	if (autostart_only && !def.autostart) {
		r = 1;
		goto out_def;
	}
	if (machine_status_get(&cli->dirs, name, false, &st) < 0)
		goto out_def;
	if (is_active(&st)) {
		if (autostart_only) {
			r = 1;
			goto out_def;
		}
		kite_error("machine %s is already running (pid %d)", name, (int)st.pid);
		goto out_def;
	}
	if (start_or_resume(cli, &def) < 0)
		goto out_def;
	r = 0;
	if (def.current_memory < def.memory) {
		/* The VM boots with all of `memory`; the balloon takes it down to the target. */
		struct control_client *c;
		if (machine_connect(&cli->dirs, name, &c) == 0) {
			/* The socket may answer before the VMM has its devices: retry a while. */
			int64_t until = mono_ms() + 2000;
			int br;
			while ((br = control_client_execute(
				    c, "balloon",
				    json_pack("{s:I}", "value", (json_int_t)def.current_memory),
				    NULL, CONTROL_CLIENT_TIMEOUT_MS)) < 0 &&
			       strcmp(control_client_error_class(c), "Disconnected") &&
			       mono_ms() < until)
				sleep_ms(50);
			if (br < 0)
				kite_warn("machine %s: cannot set its memory to %llu KiB: %s", name,
					  (unsigned long long)(def.current_memory >> 10),
					  control_client_error(c));
			control_client_close(c);
		}
	}
	printf("Machine '%s' started\n", name);
	fflush(stdout);
out_def:
	machine_config_free(&def);
out:
	close(lock);
	return r;
}

/* kite console's session: Ctrl-] ends it. Returns the exit code. */
static int attach_console(struct machine_cli *cli, const char *name, bool replay)
{
	struct control_client *cc;
	if (machine_connect(&cli->dirs, name, &cc) < 0)
		return 1;
	if (control_client_execute(cc, "console", json_pack("{s:b}", "replay", replay), NULL,
				   CONTROL_CLIENT_TIMEOUT_MS) < 0) {
		kite_error("machine %s: console: %s", name, control_client_error(cc));
		control_client_close(cc);
		return 1;
	}
	fprintf(stderr, "Connected to machine '%s'\nEscape character is ^] (Ctrl + ])\n", name);
	struct termios saved, raw;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (tty) {
		raw = saved;
		cfmakeraw(&raw);
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
			tty = false;
	}
	int r = control_client_console(cc, STDIN_FILENO, STDOUT_FILENO, 500);
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	if (r < 0)
		kite_error("machine %s: console: %s", name, control_client_error(cc));
	else if (r == 1)
		fprintf(stderr, "\nkite: machine '%s' stopped\n", name);
	else
		fputc('\n', stderr);
	control_client_close(cc);
	return r < 0;
}

int cmd_start(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"console", no_argument, NULL, O_CONSOLE}, {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "start",
	    .usage =
		"usage: kite start NAME [--console]\n"
		"Boots a defined machine in the background (its own supervised `kite run`)\n"
		"and returns once it answers on its control socket; --console then attaches\n"
		"to its console. KITE_RUNNER replaces 'kite run' (tests use 'kite _fake-run').\n"};
	bool console = false;
	const struct machine_flag flags[] = {{O_CONSOLE, &console, NULL}, {0, NULL, NULL}};
	int r = machine_parse(&cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (r >= 0)
		return r;
	const char *name = machine_resolve(&cli, argv[optind]);
	if (start_one(&cli, name, false) < 0)
		return 1;
	return console ? attach_console(&cli, name, true) : 0;
}

/* Sends one command to NAME; prints `done` (with %s for the name) on success. */
static int simple_command(int argc, char **argv, const char *verb, const char *usage,
			  const char *cmd, const char *done)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = verb, .usage = usage};
	int r = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME");
	if (r >= 0)
		return r;
	const char *name = machine_resolve(&cli, argv[optind]);
	struct control_client *c;
	if (machine_connect(&cli.dirs, name, &c) < 0)
		return 1;
	r = control_client_execute(c, cmd, NULL, NULL, CONTROL_CLIENT_TIMEOUT_MS);
	if (r < 0)
		kite_error("machine %s: %s: %s", name, verb, control_client_error(c));
	control_client_close(c);
	if (r < 0)
		return 1;
	printf(done, name);
	return 0;
}

int cmd_suspend(int argc, char **argv)
{
	return simple_command(argc, argv, "suspend",
			      "usage: kite suspend NAME\nPauses a running machine's vCPUs.\n",
			      "stop", "Machine '%s' suspended\n\n");
}

int cmd_resume(int argc, char **argv)
{
	return simple_command(argc, argv, "resume",
			      "usage: kite resume NAME\nResumes a paused machine.\n", "cont",
			      "Machine '%s' resumed\n\n");
}

int cmd_reboot(int argc, char **argv)
{
	return simple_command(argc, argv, "reboot",
			      "usage: kite reboot NAME\nResets a running machine (its VMM "
			      "process stays).\n",
			      "system_reset", "Machine '%s' is being rebooted\n\n");
}

int cmd_shutdown(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"timeout", required_argument, NULL, O_TIMEOUT},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "shutdown",
	    .usage = "usage: kite shutdown NAME [--timeout SECONDS]\n"
		     "Presses the ACPI power button: the guest shuts itself down. With --timeout,\n"
		     "waits for it and fails when the machine still runs after SECONDS.\n"};
	const char *timeout_arg = NULL;
	const struct machine_flag flags[] = {{O_TIMEOUT, NULL, &timeout_arg}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	int timeout = -1;
	if (timeout_arg) {
		char *end;
		long v = strtol(timeout_arg, &end, 10);
		if (!*timeout_arg || *end || v < 0 || v > 86400) {
			kite_error("--timeout %s: not a number of seconds", timeout_arg);
			return 1;
		}
		timeout = (int)v;
	}
	const char *name = machine_resolve(&cli, argv[optind]);
	struct control_client *cc;
	if (machine_connect(&cli.dirs, name, &cc) < 0)
		return 1;
	int r =
	    control_client_execute(cc, "system_powerdown", NULL, NULL, CONTROL_CLIENT_TIMEOUT_MS);
	if (r < 0)
		kite_error("machine %s: shutdown: %s", name, control_client_error(cc));
	control_client_close(cc);
	if (r < 0)
		return 1;
	printf("Machine '%s' is being shutdown\n", name);
	fflush(stdout);
	if (timeout < 0)
		return 0;
	r = machine_wait_stopped(&cli.dirs, name, timeout * 1000);
	if (r < 0)
		return 1;
	if (r == 1) {
		kite_error("machine %s is still running %d s after the power button: the guest "
			   "ignored it ('kite destroy %s' stops it now)",
			   name, timeout, name);
		return 1;
	}
	struct machine_status st;
	if (machine_status_get(&cli.dirs, name, false, &st) < 0)
		return 1;
	if (st.state == MACHINE_CRASHED) {
		kite_error("machine %s crashed while shutting down: %s", name, st.reason);
		return 1;
	}
	printf("Machine '%s' shut off\n", name);
	return 0;
}

int cmd_destroy(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "destroy",
				  .usage = "usage: kite destroy NAME\n"
					   "Stops a machine immediately (no guest shutdown).\n"};
	int r = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME");
	if (r >= 0)
		return r;
	const char *name = machine_resolve(&cli, argv[optind]);
	if (machine_name_check(name) < 0)
		return 1;
	struct machine_status st;
	if (machine_status_get(&cli.dirs, name, false, &st) < 0)
		return 1;
	if (!is_active(&st)) {
		kite_error("machine %s is not running (%s)", name, machine_state_name(st.state));
		return 1;
	}
	if (machine_destroy(&cli.dirs, name) < 0)
		return 1;
	printf("Machine '%s' destroyed\n\n", name);
	return 0;
}

int cmd_console(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"no-replay", no_argument, NULL, O_NO_REPLAY},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "console",
	    .usage = "usage: kite console NAME [--no-replay]\n"
		     "Attaches to a running machine's serial console, showing its recent output\n"
		     "first (--no-replay: only new output). Ctrl-] detaches.\n"};
	bool no_replay = false;
	const struct machine_flag flags[] = {{O_NO_REPLAY, &no_replay, NULL}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	return attach_console(&cli, machine_resolve(&cli, argv[optind]), !no_replay);
}

static int set_autostart(struct machine_cli *cli, const char *name, bool on)
{
	if (machine_name_check(name) < 0)
		return -1;
	int lock = def_lock(&cli->dirs, name);
	if (lock < 0)
		return -1;
	struct machine_config def;
	int r = -1;
	if (machine_load(cli, name, &def) == 0) {
		def.autostart = on;
		r = def_save(&cli->dirs, &def);
		machine_config_free(&def);
	}
	close(lock);
	return r;
}

/* Every autostart machine not running yet; the others are left alone. */
static int autostart_boot(struct machine_cli *cli)
{
	char **names;
	int n = def_list_names(&cli->dirs, &names);
	if (n < 0)
		return 1;
	int failed = 0;
	for (int i = 0; i < n; i++) {
		struct machine_config def;
		char *why = NULL;
		enum def_load_result lr = def_load(&cli->dirs, names[i], true, &def, &why);
		if (lr == DEF_CORRUPT) {
			kite_error("definition of %s is corrupt (%s): not started", names[i],
				   why ? why : "?");
			failed++;
		}
		free(why);
		if (lr != DEF_OK)
			continue;
		bool want = def.autostart;
		machine_config_free(&def);
		if (want && start_one(cli, names[i], true) < 0)
			failed++;
	}
	def_free_names(names, n);
	return failed ? 1 : 0;
}

int cmd_autostart(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"disable", no_argument, NULL, O_DISABLE},
	    {"boot", no_argument, NULL, O_BOOT},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "autostart",
	    .usage =
		"usage: kite autostart [--disable] NAME\n"
		"       kite autostart --boot\n"
		"Marks a machine to start at host boot (--disable: unmarks it). --boot starts\n"
		"every marked machine that is not running (contrib/kite-autostart.service).\n"};
	bool disable = false, boot = false;
	const struct machine_flag flags[] = {
	    {O_DISABLE, &disable, NULL}, {O_BOOT, &boot, NULL}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 0, 1, "NAME");
	if (pr >= 0)
		return pr;
	if (boot && (disable || argc - optind != 0)) {
		kite_error("autostart: --boot takes no NAME and no --disable");
		return 1;
	}
	if (boot)
		return autostart_boot(&cli);
	if (argc - optind != 1) {
		machine_positional(&cli, argc, argv, 1, "NAME");
		return 1;
	}
	const char *name = machine_resolve(&cli, argv[optind]);
	if (set_autostart(&cli, name, !disable) < 0)
		return 1;
	if (disable)
		printf("Machine '%s' unmarked as autostarted\n\n", name);
	else
		printf("Machine '%s' marked as autostarted\n\n", name);
	return 0;
}

int cmd_event(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"loop", no_argument, NULL, O_LOOP},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "event",
	    .usage =
		"usage: kite event NAME [--loop] [--timeout SECONDS]\n"
		"Prints the machine's events (STOP, RESUME, RESET, POWERDOWN, SHUTDOWN, ...):\n"
		"the next one, or all of them with --loop, until the timeout or the machine\n"
		"stops.\n"};
	bool loop = false;
	const char *timeout_arg = NULL;
	const struct machine_flag flags[] = {
	    {O_LOOP, &loop, NULL}, {O_TIMEOUT, NULL, &timeout_arg}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	long timeout = -1;
	if (timeout_arg) {
		char *end;
		timeout = strtol(timeout_arg, &end, 10);
		if (!*timeout_arg || *end || timeout < 1 || timeout > 86400) {
			kite_error("--timeout %s: not a number of seconds", timeout_arg);
			return 1;
		}
	}
	const char *name = machine_resolve(&cli, argv[optind]);
	struct control_client *cc;
	if (machine_connect(&cli.dirs, name, &cc) < 0)
		return 1;
	int64_t deadline = timeout > 0 ? mono_ms() + timeout * 1000 : INT64_MAX;
	int count = 0;
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			break;
		json_t *ev;
		if (control_client_next_event(cc, left > 60000 ? 60000 : (int)left, &ev) < 0) {
			if (!strcmp(control_client_error_class(cc), "Timeout"))
				continue;
			printf("machine '%s' stopped\n", name);
			break;
		}
		json_t *data = json_object_get(ev, "data");
		char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
		printf("event '%s' for machine '%s'%s%s\n",
		       json_string_value(json_object_get(ev, "event")), name, text ? ": " : "",
		       text ? text : "");
		fflush(stdout);
		free(text);
		json_decref(ev);
		count++;
		if (!loop)
			break;
	}
	control_client_close(cc);
	printf("events received: %d\n", count);
	return 0;
}

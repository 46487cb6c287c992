/* kite monitor NAME COMMAND [ARGUMENTS]: one control-protocol command to a running machine,
 * what it returns printed as JSON (virsh's qemu-monitor-command). The commands are the
 * protocol's one table (mgmt/control_commands.h), which --help lists. */
#include "cli/cmd_machine.h"
#include "mgmt/control_client.h"
#include "mgmt/control_commands.h"
#include "mgmt/launch.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* The usage, with the table of commands. */
static const char *monitor_usage(void)
{
	static char text[4096];
	size_t n = (size_t)snprintf(
	    text, sizeof(text),
	    "usage: kite monitor NAME COMMAND [ARGUMENTS]\n"
	    "Sends one control-protocol command to a running machine and prints what it returns\n"
	    "(JSON). ARGUMENTS is a JSON object, e.g. kite monitor web balloon '{\"value\": "
	    "268435456}'.\nCommands (docs/control-protocol.md):\n");
	for (size_t i = 0; i < control_ncommands && n < sizeof(text); i++) {
		const struct control_command *cmd = &control_commands[i];
		char args[200];
		n += (size_t)snprintf(text + n, sizeof(text) - n, "  %-18s %s\n      returns %s\n",
				      cmd->name, control_command_args_doc(cmd, args, sizeof(args)),
				      cmd->returns);
	}
	return text;
}

/* The ARGUMENTS word, checked against the command's schema. NULL (reported) when bad. */
static json_t *parse_arguments(const struct control_command *cmd, const char *text, bool *bad)
{
	*bad = false;
	if (!text)
		return NULL;
	json_error_t je;
	json_t *args = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	char why[200];
	if (!json_is_object(args)) {
		*bad = true;
		kite_error("monitor: ARGUMENTS '%s' is not a JSON object", text);
	} else if (control_command_check_args(cmd, args, why, sizeof(why))) {
		*bad = true;
		kite_error("monitor: %s", why);
	}
	if (*bad) {
		json_decref(args);
		return NULL;
	}
	return args;
}

int cmd_monitor(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "monitor", .usage = monitor_usage()};
	int pr = machine_parse(&cli, argc, argv, opts, NULL, 2, 3, "NAME COMMAND [ARGUMENTS]");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	const struct control_command *cmd = control_command_find(argv[optind + 1]);
	if (!cmd) {
		kite_error("monitor: no command '%s' (kite monitor --help lists them)",
			   argv[optind + 1]);
		return 1;
	}
	if (!cmd->by_vmm && cmd->server == CONTROL_SERVER_CONSOLE) {
		kite_error("monitor: the console is 'kite console %s'", name);
		return 1;
	}
	bool bad;
	json_t *args = parse_arguments(cmd, argc - optind == 3 ? argv[optind + 2] : NULL, &bad);
	if (bad)
		return 1;
	struct control_client *c;
	if (machine_connect(&cli.dirs, name, &c) < 0) {
		json_decref(args);
		return 1;
	}
	json_t *ret = NULL;
	int r = control_client_execute(c, cmd->name, args, &ret, CONTROL_CLIENT_TIMEOUT_MS);
	if (r < 0)
		kite_error("machine %s: %s: %s (%s)", name, cmd->name, control_client_error(c),
			   control_client_error_class(c));
	control_client_close(c);
	if (r < 0)
		return 1;
	if (!ret)
		ret = json_object();
	char *text = ret ? json_dumps(ret, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;
	json_decref(ret);
	if (!text) {
		kite_error("out of memory");
		return 1;
	}
	puts(text);
	free(text);
	return 0;
}

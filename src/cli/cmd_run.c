/* kite run: one VM in the foreground. */
#include "cli/commands.h"
#include "cli/machine_options.h"
#include "cli/run_options.h"
#include "machine/machine.h"
#include "mgmt/machine_control.h"
#include "mgmt/network.h"

#include <stdio.h>

static void usage(FILE *out)
{
	fputs("usage: kite run --kernel FILE [options]\n"
	      "       kite run --definition FILE [--control-socket PATH] [options]\n"
	      "\n" MACHINE_OPTIONS_HELP RUN_OPTIONS_HELP "\n"
	      "Ctrl-A x quits when the console is a terminal. Exit codes: 0 guest powered off (or\n"
	      "reset with --no-reboot, or quit), 1 bad input or VMM failure, 2 guest crashed.\n",
	      out);
}

static bool machine_has_network_nics(const struct machine_config *m)
{
	for (int i = 0; i < m->nnics; i++)
		if (m->nics[i].kind == NIC_NETWORK && !m->nics[i].bridge[0])
			return true;
	return false;
}

int cmd_run(int argc, char **argv)
{
	static struct run_options o; /* large (device tables): not on the stack */
	int r = run_options_parse(argc, argv, "run", usage, &o);
	if (r == 0 && machine_has_network_nics(&o.machine)) {
		/* --net network=NAME: the network's bridge, from the state directory. */
		struct mgmt_dirs d;
		if (mgmt_dirs_init(NULL, NULL, &d) < 0 || network_resolve_nics(&d, &o.machine) < 0)
			r = -1;
	}
	struct machine_monitor control;
	if (r == 0 && o.control_socket) {
		machine_control_monitor(&control, o.control_socket,
					o.machine.name[0] ? o.machine.name : NULL);
		o.run.monitor = &control;
	}
	if (r == 0)
		r = machine_run(&o.run);
	else
		r = r < 0 ? KITE_EXIT_ERROR : KITE_EXIT_OK;
	run_options_free(&o);
	return r;
}

#include "cli/run_options.h"
#include "cli/machine_options.h"
#include "util/err.h"

#include <errno.h>
#include <string.h>

enum {
	OPT_NAME = 256,
	OPT_NO_REBOOT,
	OPT_STATS,
	OPT_NO_PVM,
	OPT_CONTROL,
	OPT_DEFINITION,
	OPT_DETACHED,
	OPT_RESTORE,
};

static const struct option run_longopts[] = {
    MACHINE_LONG_OPTIONS{"name", required_argument, NULL, OPT_NAME},
    {"no-reboot", no_argument, NULL, OPT_NO_REBOOT},
    {"stats", no_argument, NULL, OPT_STATS},
    {"no-pvm-defaults", no_argument, NULL, OPT_NO_PVM},
    {"control-socket", required_argument, NULL, OPT_CONTROL},
    {"definition", required_argument, NULL, OPT_DEFINITION},
    {"detached", no_argument, NULL, OPT_DETACHED},
    {"restore", required_argument, NULL, OPT_RESTORE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int load_definition(const char *file, struct machine_config *m)
{
	json_error_t je;
	json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		if (je.line < 0)
			return kite_error("--definition %s: cannot read it: %s", file, je.text);
		return kite_error("--definition %s: not valid JSON: %s (line %d, column %d)", file,
				  je.text, je.line, je.column);
	}
	int r = machine_config_from_json(root, file, m);
	json_decref(root);
	return r;
}

/* One option; returns 0, or -1 after an error. `described`: a machine option was given. */
static int apply(struct run_options *o, int c, const char *verb, char **argv, bool *described)
{
	switch (machine_option(&o->machine, c, optarg)) {
	case 1:
		*described = true;
		return 0;
	case -1:
		return -1;
	}
	switch (c) {
	case OPT_NAME:
		*described = true;
		return machine_config_set(&o->machine, "name", optarg, "--name");
	case OPT_NO_REBOOT:
		o->run.no_reboot = true;
		return 0;
	case OPT_STATS:
		o->run.stats = true;
		return 0;
	case OPT_NO_PVM:
		o->run.no_pvm_defaults = true;
		return 0;
	case OPT_CONTROL:
		o->control_socket = optarg;
		return 0;
	case OPT_DEFINITION:
		o->definition = optarg;
		return 0;
	case OPT_DETACHED:
		o->run.detached = true;
		return 0;
	case OPT_RESTORE:
		o->restore_path = optarg;
		return 0;
	}
	if (optopt)
		return kite_error("%s: option -%c is unknown or needs a value", verb, optopt);
	return kite_error("%s: unknown option %s", verb, argv[optind - 1]);
}

int run_options_parse(int argc, char **argv, const char *verb, void (*usage)(FILE *out),
		      struct run_options *o)
{
	memset(o, 0, sizeof(*o));
	machine_config_init(&o->machine);
	o->run.machine = &o->machine;
	bool described = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, MACHINE_SHORT_OPTIONS "h", run_longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 1;
		}
		if (apply(o, c, verb, argv, &described) < 0)
			return -1;
	}
	if (optind < argc)
		return kite_error("%s: unexpected argument '%s'", verb, argv[optind]);
	if (o->restore_path) {
		if (described || o->definition)
			return kite_error(
			    "%s: --restore %s holds the whole machine: give no machine "
			    "options or --definition with it",
			    verb, o->restore_path);
		machine_config_free(&o->machine);
		memset(&o->machine, 0, sizeof(o->machine));
		if (savefile_open(&o->restore, o->restore_path) < 0)
			return -1;
		o->machine = o->restore.def; /* owned by o->machine from here on */
		memset(&o->restore.def, 0, sizeof(o->restore.def));
		o->restore.def_owned = false;
		o->run.restore = &o->restore;
	} else if (o->definition) {
		if (described)
			return kite_error("%s: --definition %s describes the whole machine: give "
					  "either it or machine options (--kernel, --disk, ...)",
					  verb, o->definition);
		machine_config_free(&o->machine);
		if (load_definition(o->definition, &o->machine) < 0)
			return -1;
	} else {
		if (!o->machine.kernel)
			return kite_error("%s: --kernel FILE is required", verb);
		machine_config_finish(&o->machine);
		if (machine_config_validate(&o->machine, verb) < 0)
			return -1;
	}
	return machine_config_check_files(&o->machine);
}

void run_options_free(struct run_options *o)
{
	if (o->run.restore)
		savefile_close(&o->restore);
	machine_config_free(&o->machine);
}

/* kite guest v2v -i ova FILE.ova -o local|kite -os DIR [-of qcow2|raw] [-on NAME]: virt-v2v's
 * import of another hypervisor's machine (src/v2v/ does the work). -o local writes the
 * definition as DIR/NAME.json, for `kite define`; -o kite defines the machine in the state
 * directory at once. */
#include "cli/cmd_guest.h"
#include "mgmt/def_store.h"
#include "util/err.h"
#include "v2v/v2v.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define V2V_USAGE                                                                                  \
	"-i ova FILE.ova -o local|kite -os DIR [-of qcow2|raw] [-on NAME] --kernel FILE "          \
	"[--initrd FILE] [--append CMDLINE] [--progress]"

struct v2v_cli {
	struct v2v_opts o;
	const char *input_mode, *output_mode;
	const char *kernel, *initrd, *append;
	const char *state_dir, *runtime_dir;
};

static int parse(struct v2v_cli *c, int argc, char **argv)
{
	enum {
		O_I = 1,
		O_O,
		O_OS,
		O_OF,
		O_ON,
		O_KERNEL,
		O_INITRD,
		O_APPEND,
		O_PROGRESS,
		O_STATE,
		O_RUNTIME
	};
	static const struct option longopts[] = {
	    {"i", required_argument, NULL, O_I},
	    {"o", required_argument, NULL, O_O},
	    {"os", required_argument, NULL, O_OS},
	    {"of", required_argument, NULL, O_OF},
	    {"on", required_argument, NULL, O_ON},
	    {"kernel", required_argument, NULL, O_KERNEL},
	    {"initrd", required_argument, NULL, O_INITRD},
	    {"append", required_argument, NULL, O_APPEND},
	    {"progress", no_argument, NULL, O_PROGRESS},
	    {"state-dir", required_argument, NULL, O_STATE},
	    {"runtime-dir", required_argument, NULL, O_RUNTIME},
	    {NULL, 0, NULL, 0}};
	const char **slot[] = {
	    [O_I] = &c->input_mode,	  [O_O] = &c->output_mode, [O_OS] = &c->o.outdir,
	    [O_OF] = &c->o.format,	  [O_ON] = &c->o.name,	   [O_KERNEL] = &c->kernel,
	    [O_INITRD] = &c->initrd,	  [O_APPEND] = &c->append, [O_STATE] = &c->state_dir,
	    [O_RUNTIME] = &c->runtime_dir};
	int opt;
	opterr = 0;
	while ((opt = getopt_long_only(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == O_PROGRESS)
			c->o.progress = true;
		else if (opt > 0 && opt <= O_RUNTIME && slot[opt])
			*slot[opt] = optarg;
		else
			return kite_error("v2v: option '%s' is unknown or needs a value",
					  argv[optind - 1]);
	}
	if (argc - optind != 1)
		return kite_error("v2v: expected one input (FILE.ova)");
	c->o.input = argv[optind];
	if (!c->input_mode || strcmp(c->input_mode, "ova"))
		return kite_error("v2v: -i %s: kite imports -i ova",
				  c->input_mode ? c->input_mode : "(missing)");
	if (!c->output_mode || (strcmp(c->output_mode, "local") && strcmp(c->output_mode, "kite")))
		return kite_error("v2v: -o takes local (a definition file in -os DIR) or kite "
				  "(defined in the state directory)");
	if (!c->o.outdir)
		return kite_error("v2v: -os DIR: where the disks go");
	if (!c->kernel)
		return kite_error("v2v: --kernel FILE is needed: a kite machine boots a Linux "
				  "kernel it is given (not the guest's bootloader)");
	if (!c->o.format)
		c->o.format = "qcow2";
	return 0;
}

static int set_boot(struct v2v_cli *c, struct machine_config *m)
{
	if (machine_config_set(m, "kernel", c->kernel, "--kernel") < 0 ||
	    (c->initrd && machine_config_set(m, "initrd", c->initrd, "--initrd") < 0) ||
	    (c->append && machine_config_set(m, "append", c->append, "--append") < 0))
		return -1;
	return machine_config_absolute_paths(m);
}

/* -o kite: stored as `kite define` stores a new machine. */
static int define(struct v2v_cli *c, struct machine_config *m)
{
	struct mgmt_dirs dirs;
	struct machine_config old;
	if (mgmt_dirs_init(c->state_dir, c->runtime_dir, &dirs) < 0 || def_prepare(m, m->name) < 0)
		return -1;
	int lock = def_lock(&dirs, m->name);
	if (lock < 0)
		return -1;
	enum def_load_result lr = def_load(&dirs, m->name, true, &old, NULL);
	int r = -1;
	if (lr == DEF_OK) {
		machine_config_free(&old);
		kite_error("machine %s exists already", m->name);
	} else if (lr == DEF_MISSING) {
		r = def_save(&dirs, m);
	} else {
		kite_error("machine %s: a definition file of that name is there already", m->name);
	}
	close(lock);
	return r;
}

static bool exists(struct v2v_cli *c, const char *name)
{
	struct mgmt_dirs dirs;
	struct machine_config old;
	if (mgmt_dirs_init(c->state_dir, c->runtime_dir, &dirs) < 0)
		return false;
	enum def_load_result lr = def_load(&dirs, name, true, &old, NULL);
	if (lr == DEF_OK)
		machine_config_free(&old);
	return lr != DEF_MISSING;
}

static void remove_disks(const struct machine_config *m)
{
	for (int i = 0; i < m->ndisks; i++)
		unlink(m->disks[i].path);
}

int guest_v2v(int argc, char **argv)
{
	struct v2v_cli c = {0};
	optind = 0;
	if (parse(&c, argc, argv) < 0)
		return guest_usage_error("v2v", V2V_USAGE);
	bool to_kite = !strcmp(c.output_mode, "kite");
	if (to_kite && c.o.name && exists(&c, c.o.name)) {
		kite_error("machine %s exists already (-on NAME names the import)", c.o.name);
		return 1;
	}
	struct machine_config m;
	machine_config_init_definition(&m);
	int rc = 1;
	if (set_boot(&c, &m) < 0 || v2v_import_ova(&c.o, &m) < 0)
		goto out;
	char *path = NULL;
	int r = machine_config_fill_ids(&m);
	if (r == 0)
		r = machine_config_validate(&m, m.name);
	if (r == 0)
		r = to_kite ? define(&c, &m) : v2v_write_definition(&m, c.o.outdir, &path);
	if (r < 0) {
		remove_disks(&m);
		goto out;
	}
	for (int i = 0; i < m.ndisks; i++)
		printf("disk %s: %s\n", m.disks[i].target, m.disks[i].path);
	if (to_kite)
		printf("Machine '%s' defined (kite start %s boots it)\n", m.name, m.name);
	else
		printf("Machine '%s' written to %s (kite define %s defines it)\n", m.name, path,
		       path);
	free(path);
	rc = 0;
out:
	machine_config_free(&m);
	return rc;
}

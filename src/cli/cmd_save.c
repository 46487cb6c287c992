/* kite save, restore, managedsave, managedsave-remove: a running machine's complete state
 * into a file and back, as virsh's verbs of those names (machine/savefile.h is the file). */
#include "cli/cmd_machine.h"
#include "mgmt/launch.h"
#include "mgmt/runstate.h"
#include "util/err.h"
#include "machine/savefile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool is_active(const struct machine_status *st)
{
	return st->state == MACHINE_RUNNING || st->state == MACHINE_PAUSED;
}

/* FILE as an absolute path: the VMM runs in another directory. */
static int absolute(const char *file, char *buf, size_t size)
{
	if (file[0] == '/') {
		if (snprintf(buf, size, "%s", file) >= (int)size)
			return kite_error("%s: path too long", file);
		return 0;
	}
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		return kite_error_errno(errno, "getcwd");
	if (snprintf(buf, size, "%s/%s", cwd, file) >= (int)size)
		return kite_error("%s: path too long", file);
	return 0;
}

/* Under NAME's lock: it must run; then its state goes into `file` and its VMM ends. */
static int save_locked(struct machine_cli *cli, const char *name, const char *file)
{
	if (machine_name_check(name) < 0)
		return -1;
	int lock = def_lock(&cli->dirs, name);
	if (lock < 0)
		return -1;
	struct machine_status st;
	int r = -1;
	if (machine_status_get(&cli->dirs, name, false, &st) == 0) {
		if (!is_active(&st))
			kite_error("machine %s is not running", name);
		else
			r = machine_save(&cli->dirs, name, file);
	}
	close(lock);
	return r;
}

int cmd_save(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "save",
	    .usage = "usage: kite save NAME FILE\n"
		     "Pauses a running machine, writes its definition, the state of its vCPUs and\n"
		     "devices (requests in flight completed first) and its RAM (zero pages left\n"
		     "out) to FILE, and stops it. `kite restore FILE` resumes it.\n"};
	int r = machine_parse(&cli, argc, argv, opts, NULL, 2, 2, "NAME FILE");
	if (r >= 0)
		return r;
	const char *name = machine_resolve(&cli, argv[optind]);
	char file[PATH_MAX];
	if (absolute(argv[optind + 1], file, sizeof(file)) < 0 || save_locked(&cli, name, file) < 0)
		return 1;
	printf("Machine '%s' saved to %s\n", name, argv[optind + 1]);
	return 0;
}

int cmd_managedsave(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "managedsave",
	    .usage =
		"usage: kite managedsave NAME\n"
		"Saves a running machine as `kite save` does, into the state directory\n"
		"(NAME.save): the next `kite start NAME` resumes it. `kite managedsave-remove`\n"
		"discards it.\n"};
	int r = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME");
	if (r >= 0)
		return r;
	const char *name = machine_resolve(&cli, argv[optind]);
	char file[PATH_MAX];
	if (managed_save_path(&cli.dirs, name, file, sizeof(file)) < 0 ||
	    save_locked(&cli, name, file) < 0)
		return 1;
	printf("Machine '%s' state saved by kite\n", name);
	return 0;
}

int cmd_managedsave_remove(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "managedsave-remove",
				  .usage = "usage: kite managedsave-remove NAME\n"
					   "Discards the machine's managed save: the next start "
					   "boots it afresh.\n"};
	int r = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME");
	if (r >= 0)
		return r;
	const char *name = machine_resolve(&cli, argv[optind]);
	struct machine_config def;
	if (machine_load(&cli, name, &def) < 0)
		return 1;
	machine_config_free(&def);
	int lock = def_lock(&cli.dirs, name);
	if (lock < 0)
		return 1;
	char file[PATH_MAX];
	r = managed_save_path(&cli.dirs, name, file, sizeof(file));
	if (r == 0 && unlink(file) < 0) {
		if (errno == ENOENT)
			printf("Machine '%s' has no managed save image; removal skipped\n", name);
		else
			r = kite_error_errno(errno, "cannot remove %s", file);
	} else if (r == 0) {
		printf("Removed managedsave image for machine '%s'\n", name);
	}
	close(lock);
	return r < 0;
}

/* The saved machine, defined from the file when no machine of its name is. */
static int restore_locked(struct machine_cli *cli, struct savefile *f, const char *file)
{
	const char *name = f->def.name;
	struct machine_config def;
	char *why = NULL;
	enum def_load_result lr = def_load(&cli->dirs, name, true, &def, &why);
	free(why);
	if (lr == DEF_OK) {
		machine_config_free(&def);
	} else if (lr == DEF_MISSING) {
		if (def_save(&cli->dirs, &f->def) < 0)
			return -1;
		printf("Machine '%s' defined from %s\n", name, file);
	} else {
		return kite_error("machine %s: its definition is unreadable ('kite edit %s')", name,
				  name);
	}
	struct machine_status st;
	if (machine_status_get(&cli->dirs, name, false, &st) < 0)
		return -1;
	if (is_active(&st))
		return kite_error("machine %s is already running (pid %d)", name, (int)st.pid);
	return machine_start(&cli->dirs, &f->def, file, start_timeout_ms());
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "restore",
	    .usage =
		"usage: kite restore FILE\n"
		"Resumes the machine a save file holds (`kite save`) in the background, as\n"
		"`kite start` runs machines, defining it from the file when no machine has its\n"
		"name. The file is checked first (not a save file, another version, corrupt or\n"
		"cut short: refused before anything runs) and stays: the machine's RAM is mapped\n"
		"from it.\n"};
	int r = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "FILE");
	if (r >= 0)
		return r;
	char file[PATH_MAX];
	struct savefile f;
	if (absolute(argv[optind], file, sizeof(file)) < 0 || savefile_open(&f, file) < 0)
		return 1;
	r = -1;
	if (!f.def.name[0]) {
		kite_error("%s: the saved machine has no name ('kite run --restore %s' runs it)",
			   argv[optind], argv[optind]);
	} else {
		int lock = def_lock(&cli.dirs, f.def.name);
		if (lock >= 0) {
			r = restore_locked(&cli, &f, file);
			close(lock);
		}
	}
	if (r == 0)
		printf("Machine '%s' restored from %s\n", f.def.name, argv[optind]);
	savefile_close(&f);
	return r < 0;
}

/* kite define, create, undefine, dumpjson, edit: machine definitions. */
#include "cli/cmd_machine.h"
#include "cli/machine_options.h"
#include "mgmt/fileutil.h"
#include "mgmt/launch.h"
#include "mgmt/runstate.h"
#include "mgmt/snapshot_store.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static bool machine_is_live(struct machine_cli *cli, const char *name)
{
	struct machine_status st;
	return machine_status_get(&cli->dirs, name, false, &st) == 0 &&
	       (st.state == MACHINE_RUNNING || st.state == MACHINE_PAUSED);
}

/* Stores `def` under its lock, refusing to replace a corrupt file or to change the UUID of
 * an existing machine. `keep_uuid`: the new definition came without a uuid, so an existing
 * machine keeps its own. `must_be_new`: kite create. */
static int store_new(struct machine_cli *cli, struct machine_config *def, bool keep_uuid,
		     bool must_be_new)
{
	int lock = def_lock(&cli->dirs, def->name);
	if (lock < 0)
		return -1;
	struct machine_config old;
	char *why = NULL;
	int r = -1;
	enum def_load_result lr = def_load(&cli->dirs, def->name, true, &old, &why);
	if (lr == DEF_CORRUPT) {
		kite_error("the existing definition of %s is corrupt (%s): it is kept as it is; "
			   "'kite undefine %s' removes it",
			   def->name, why ? why : "?", def->name);
		goto out;
	}
	if (lr == DEF_ERROR)
		goto out;
	if (lr == DEF_OK) {
		if (must_be_new) {
			kite_error("machine %s already exists", def->name);
			machine_config_free(&old);
			goto out;
		}
		if (keep_uuid) {
			memcpy(def->uuid, old.uuid, sizeof(def->uuid));
		} else if (strcasecmp(def->uuid, old.uuid)) {
			kite_error("machine %s already exists with UUID %s", def->name, old.uuid);
			machine_config_free(&old);
			goto out;
		}
		machine_config_free(&old);
	}
	r = def_save(&cli->dirs, def);
out:
	free(why);
	close(lock);
	return r;
}

/* A definition as define and edit take it: parsed, then prepared for storing (paths made
 * absolute from the current directory, files checked, ids given). */
static int parse_def_text(const char *text, size_t len, const char *where,
			  struct machine_config *def, bool *had_uuid)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return kite_error("%s: not valid JSON: %s (line %d, column %d)", where, je.text,
				  je.line, je.column);
	if (had_uuid)
		*had_uuid = json_is_object(root) && json_object_get(root, "uuid");
	int r = def_from_json(root, where, def);
	json_decref(root);
	if (r == 0 && def_prepare(def, where) < 0) {
		machine_config_free(def);
		r = -1;
	}
	return r;
}

int cmd_define(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "define",
	    .usage = "usage: kite define FILE.json   (FILE '-' reads standard input)\n"
		     "Defines a machine, or replaces the definition of the machine it names.\n"};
	int pr = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "FILE.json");
	if (pr >= 0)
		return pr;
	const char *file = argv[optind];
	char *text;
	size_t len;
	if (read_file_all(!strcmp(file, "-") ? "/dev/stdin" : file, DEF_FILE_MAX, &text, &len) <
	    0) {
		kite_error_errno(errno, "cannot read %s", file);
		return 1;
	}
	struct machine_config def;
	bool had_uuid;
	int r = parse_def_text(text, len, file, &def, &had_uuid);
	free(text);
	if (r < 0)
		return 1;
	r = store_new(&cli, &def, !had_uuid, false);
	if (r == 0)
		printf("Machine '%s' defined from %s\n", def.name, file);
	machine_config_free(&def);
	return r < 0 ? 1 : 0;
}

static const char create_usage[] =
    "usage: kite create NAME --kernel FILE [options]\n"
    "Defines machine NAME from the machine options of `kite run` (kite start NAME boots it).\n"
    "Paths are stored absolute; the kernel and the disks must exist, each disk once. A\n"
    "machine gets a balloon unless --balloon=off, and a MAC for each NIC.\n"
    "\n" MACHINE_OPTIONS_HELP "      --uuid UUID          instead of a random one\n"
    "      --autostart          start it with `kite autostart --boot`\n";

int cmd_create(int argc, char **argv)
{
	enum { O_UUID = 1, O_AUTOSTART };
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS MACHINE_LONG_OPTIONS{"uuid", required_argument, NULL, O_UUID},
	    {"autostart", no_argument, NULL, O_AUTOSTART},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "create", .usage = create_usage};
	struct machine_config def;
	machine_config_init_definition(&def);
	int c, rc = 1;
	optind = 1;
	while ((c = machine_getopt(&cli, argc, argv, MACHINE_SHORT_OPTIONS, opts)) != -1) {
		if (c == 'H') {
			rc = 0;
			goto out;
		}
		int r = machine_option(&def, c, optarg);
		if (r == 0 && c == O_UUID)
			r = machine_config_set(&def, "uuid", optarg, "--uuid");
		else if (r == 0 && c == O_AUTOSTART)
			r = machine_config_set(&def, "autostart", "on", "--autostart");
		else if (r == 0)
			r = -1; /* reported by machine_getopt */
		if (r < 0)
			goto out;
	}
	/* NAME may come before or after the options (getopt moves it to the end). */
	if (machine_positional(&cli, argc, argv, 1, "NAME") < 0 ||
	    machine_config_set(&def, "name", argv[optind], "create") < 0)
		goto out;
	if (!def.kernel) {
		kite_error("create: --kernel FILE is required");
		goto out;
	}
	machine_config_finish(&def);
	if (def_prepare(&def, "create") < 0 || machine_cli_dirs(&cli) < 0)
		goto out;
	if (store_new(&cli, &def, false, true) < 0)
		goto out;
	printf("Machine '%s' defined\n", def.name);
	rc = 0;
out:
	machine_config_free(&def);
	return rc;
}

int cmd_undefine(int argc, char **argv)
{
	enum { O_STORAGE = 1, O_MANAGED, O_SNAPSHOTS };
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"remove-all-storage", no_argument, NULL, O_STORAGE},
	    {"managed-save", no_argument, NULL, O_MANAGED},
	    {"snapshots-metadata", no_argument, NULL, O_SNAPSHOTS},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "undefine",
	    .usage =
		"usage: kite undefine NAME [--remove-all-storage] [--managed-save]\n"
		"                      [--snapshots-metadata]\n"
		"Removes a shut off machine's definition; with --remove-all-storage, its disk\n"
		"images too. A machine with a managed save (kite managedsave) needs\n"
		"--managed-save, which removes it too, and one with snapshots needs\n"
		"--snapshots-metadata, which removes their metadata (the disks keep them), as\n"
		"virsh.\n"};
	bool storage = false, managed = false, snapmeta = false;
	const struct machine_flag flags[] = {{O_STORAGE, &storage, NULL},
					     {O_MANAGED, &managed, NULL},
					     {O_SNAPSHOTS, &snapmeta, NULL},
					     {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	if (machine_name_check(name) < 0)
		return 1;
	int lock = def_lock(&cli.dirs, name);
	if (lock < 0)
		return 1;
	int rc = 1;
	struct machine_config def;
	char *why = NULL;
	enum def_load_result lr = def_load(&cli.dirs, name, true, &def, &why);
	if (lr == DEF_MISSING) {
		kite_error("no machine named '%s'", name);
		goto out;
	}
	if (lr == DEF_ERROR)
		goto out;
	if (machine_is_live(&cli, name)) {
		kite_error("machine %s is running: 'kite destroy %s' first", name, name);
		goto out_def;
	}
	char save[PATH_MAX];
	if (managed_save_path(&cli.dirs, name, save, sizeof(save)) < 0)
		goto out_def;
	if (access(save, F_OK) == 0 && !managed) {
		kite_error(
		    "machine %s has a managed save: 'kite undefine %s --managed-save' removes "
		    "it too",
		    name, name);
		goto out_def;
	}
	int nsnap = snapshot_store_count(&cli.dirs, name);
	if (nsnap != 0 && !snapmeta) {
		if (nsnap > 0)
			kite_error("machine %s has %d snapshot%s: 'kite undefine %s "
				   "--snapshots-metadata' removes their metadata too",
				   name, nsnap, nsnap == 1 ? "" : "s", name);
		else
			kite_error("'kite undefine %s --snapshots-metadata' removes it", name);
		goto out_def;
	}
	if (snapshot_store_remove(&cli.dirs, name) < 0)
		goto out_def;
	if (managed && unlink(save) < 0 && errno != ENOENT) {
		kite_error_errno(errno, "cannot remove %s", save);
		goto out_def;
	}
	if (lr == DEF_CORRUPT && storage) {
		kite_error("the definition of %s is corrupt (%s): its disks are unknown, so "
			   "nothing was removed; undefine it without --remove-all-storage",
			   name, why ? why : "?");
		goto out;
	}
	if (storage) {
		for (int i = 0; i < def.ndisks; i++) {
			if (unlink(def.disks[i].path) < 0 && errno != ENOENT) {
				kite_error_errno(errno, "cannot remove %s", def.disks[i].path);
				goto out_def;
			}
			printf("Volume '%s'(%s) removed.\n", def.disks[i].target,
			       def.disks[i].path);
		}
	}
	if (def_remove(&cli.dirs, name) < 0)
		goto out_def;
	/* A crash record or a stale pid file would greet a new machine of the same name. */
	static const char *const leftovers[] = {"status",     "pid",	    "sock",    "json",
						"destroying", "status.tmp", "pid.tmp", "saving"};
	for (size_t i = 0; i < sizeof(leftovers) / sizeof(leftovers[0]); i++) {
		char path[PATH_MAX];
		if (runtime_path(&cli.dirs, name, leftovers[i], path, sizeof(path)) == 0 &&
		    unlink(path) < 0 && errno != ENOENT)
			kite_warn("cannot remove %s: %s", path, strerror(errno));
	}
	printf("Machine '%s' has been undefined\n", name);
	rc = 0;
out_def:
	if (lr == DEF_OK)
		machine_config_free(&def);
out:
	free(why);
	close(lock);
	return rc;
}

int cmd_dumpjson(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "dumpjson",
				  .usage = "usage: kite dumpjson NAME\n"
					   "Prints a machine's definition (JSON).\n"};
	int pr = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	struct machine_config def;
	if (machine_load(&cli, machine_resolve(&cli, argv[optind]), &def) < 0)
		return 1;
	json_t *j = machine_config_to_json(&def);
	machine_config_free(&def);
	if (!j)
		return 1;
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text)
		return 1;
	puts(text);
	free(text);
	return 0;
}

static int run_editor(const char *file)
{
	const char *editor = getenv("VISUAL");
	if (!editor || !*editor)
		editor = getenv("EDITOR");
	if (!editor || !*editor)
		editor = "vi";
	/* Through the shell, as git does, so EDITOR may carry arguments. */
	char *cmd;
	if (asprintf(&cmd, "%s \"$1\"", editor) < 0)
		return kite_error("out of memory");
	pid_t pid = fork();
	if (pid < 0) {
		free(cmd);
		return kite_error_errno(errno, "fork");
	}
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, "sh", file, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return kite_error_errno(errno, "waitpid");
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return kite_error("editor '%s' failed (exit status %d)", editor,
				  WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
	return 0;
}

int cmd_edit(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "edit",
	    .usage = "usage: kite edit NAME\n"
		     "Opens the definition in $VISUAL/$EDITOR (vi); the result replaces it only "
		     "when it is valid.\n"};
	int pr = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	char path[PATH_MAX];
	if (machine_name_check(name) < 0 || def_path(&cli.dirs, name, path, sizeof(path)) < 0)
		return 1;
	struct machine_config def;
	if (machine_load(&cli, name, &def) < 0)
		return 1;
	char *before;
	size_t before_len;
	if (read_file_all(path, DEF_FILE_MAX, &before, &before_len) < 0) {
		machine_config_free(&def);
		kite_error_errno(errno, "cannot read %s", path);
		return 1;
	}
	char tmpl[] = "/tmp/kite-edit-XXXXXX.json";
	int fd = mkstemps(tmpl, 5);
	if (fd < 0) {
		free(before);
		machine_config_free(&def);
		kite_error_errno(errno, "cannot create a temporary file");
		return 1;
	}
	int rc = 1;
	close(fd);
	if (write_file_atomic(tmpl, before, before_len, 0600) < 0 || run_editor(tmpl) < 0)
		goto out;
	char *after;
	size_t after_len;
	if (read_file_all(tmpl, DEF_FILE_MAX, &after, &after_len) < 0) {
		kite_error_errno(errno, "cannot read %s", tmpl);
		goto out;
	}
	if (after_len == before_len && !memcmp(before, after, after_len)) {
		printf("Machine '%s' definition not changed.\n", name);
		free(after);
		rc = 0;
		goto out;
	}
	struct machine_config edited;
	bool had_uuid;
	int r = parse_def_text(after, after_len, tmpl, &edited, &had_uuid);
	free(after);
	if (r < 0) {
		kite_error("the edited definition is not valid: %s is unchanged", path);
		goto out;
	}
	if (strcmp(edited.name, name)) {
		kite_error("edit cannot rename %s to %s: the definition is unchanged", name,
			   edited.name);
		machine_config_free(&edited);
		goto out;
	}
	if (!had_uuid)
		memcpy(edited.uuid, def.uuid, sizeof(edited.uuid));
	if (strcasecmp(edited.uuid, def.uuid)) {
		kite_error("edit cannot change the UUID of %s: the definition is unchanged", name);
		machine_config_free(&edited);
		goto out;
	}
	int lock = def_lock(&cli.dirs, name);
	if (lock >= 0) {
		/* Someone may have changed it while the editor was open. */
		char *now;
		size_t now_len;
		if (read_file_all(path, DEF_FILE_MAX, &now, &now_len) < 0) {
			kite_error_errno(errno, "cannot read %s", path);
		} else {
			if (now_len != before_len || memcmp(now, before, now_len))
				kite_error("%s changed while it was being edited: not replaced "
					   "(your edit is in %s)",
					   path, tmpl);
			else if (def_save(&cli.dirs, &edited) == 0)
				rc = 0;
			free(now);
		}
		close(lock);
	}
	machine_config_free(&edited);
	if (rc == 0)
		printf("Machine '%s' definition edited.\n", name);
	else
		goto keep;
out:
	unlink(tmpl);
keep:
	free(before);
	machine_config_free(&def);
	return rc;
}

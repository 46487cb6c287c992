/* kite snapshot-create-as, snapshot-list, snapshot-current, snapshot-info,
 * snapshot-dumpjson, snapshot-delete, snapshot-revert: virsh's snapshot verbs. The snapshots
 * are qcow2 internal snapshots of every writable disk (machine/disk_snapshot.h), with the VM
 * state of a running machine in the first qcow2 disk's VM state area; their metadata is in
 * the state directory (mgmt/snapshot_store.h). A running machine takes its snapshot itself
 * (control command snapshot-create); a stopped one gets a disk-only snapshot from here. */
#include "cli/cmd_machine.h"
#include "mgmt/control_commands.h"
#include "mgmt/launch.h"
#include "mgmt/runstate.h"
#include "mgmt/snapshot_store.h"
#include "util/err.h"
#include "machine/disk_snapshot.h"
#include "machine/savefile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	O_DESCRIPTION = 1100,
	O_DISK_ONLY,
	O_ATOMIC,
	O_TREE,
	O_NAME,
	O_RUNNING,
	O_PAUSED,
	O_CURRENT,
};

/* One machine verb's context: the lock held, the definition, status and metadata loaded. */
struct snap_ctx {
	struct machine_cli cli;
	const char *name;
	int lock;
	struct machine_config def;
	bool def_loaded;
	struct machine_status st;
	json_t *meta;
};

static bool is_active(const struct machine_status *st)
{
	return st->state == MACHINE_RUNNING || st->state == MACHINE_PAUSED;
}

static int ctx_open(struct snap_ctx *x, const char *arg)
{
	x->lock = -1;
	x->name = machine_resolve(&x->cli, arg);
	if (machine_load(&x->cli, x->name, &x->def) < 0)
		return -1;
	x->def_loaded = true;
	if ((x->lock = def_lock(&x->cli.dirs, x->name)) < 0 ||
	    machine_status_get(&x->cli.dirs, x->name, true, &x->st) < 0)
		return -1;
	x->meta = snapshot_store_load(&x->cli.dirs, x->name);
	return x->meta ? 0 : -1;
}

static void ctx_close(struct snap_ctx *x)
{
	json_decref(x->meta);
	if (x->def_loaded)
		machine_config_free(&x->def);
	if (x->lock >= 0)
		close(x->lock);
}

static json_t *find_or_fail(struct snap_ctx *x, const char *snap)
{
	json_t *s = snapshot_find(x->meta, snap);
	if (!s)
		kite_error("machine %s has no snapshot named '%s'", x->name, snap);
	return s;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- snapshot-create-as ---- */

static int scratch_path(struct snap_ctx *x, char *buf, size_t size)
{
	return mgmt_path(buf, size, x->cli.dirs.state, x->name, ".snapshot-state");
}

/* The running machine takes it: vCPUs paused at one instant, disks drained. */
static json_t *create_running(struct snap_ctx *x, const char *snap, bool disk_only)
{
	char state[PATH_MAX];
	if (scratch_path(x, state, sizeof(state)) < 0)
		return NULL;
	struct control_client *c;
	if (machine_connect(&x->cli.dirs, x->name, &c) < 0)
		return NULL;
	json_t *args = disk_only ? json_pack("{s:s, s:b}", "name", snap, "external", 1)
				 : json_pack("{s:s, s:s}", "name", snap, "state", state);
	json_t *ret = NULL;
	if (control_client_execute(c, "snapshot-create", args, &ret, SAVE_TIMEOUT_MS) < 0)
		kite_error("machine %s: snapshot-create-as: %s", x->name, control_client_error(c));
	control_client_close(c);
	return ret;
}

/* A stopped machine's disks, opened here (their locks taken), disk-only. */
static json_t *create_stopped(struct snap_ctx *x, const char *snap)
{
	struct blk *blks[MACHINE_MAX_DISKS] = {0};
	json_t *ret = NULL;
	int r = 0;
	for (int i = 0; r == 0 && i < x->def.ndisks; i++) {
		const struct disk_config *d = &x->def.disks[i];
		blks[i] = blk_open(d->path, d->format[0] ? d->format : NULL,
				   d->readonly ? BLK_O_RDONLY : BLK_O_RDWR);
		r = blks[i] ? 0 : -1;
	}
	if (r == 0)
		disk_snapshot_create(&x->def, blks, snap, NULL, 0, &ret);
	for (int i = 0; i < x->def.ndisks; i++)
		if (blks[i])
			blk_close(blks[i]);
	return ret;
}

static json_t *create_overlays_stopped(struct snap_ctx *x, const char *snap)
{
	char(*paths)[PATH_MAX] = calloc(MACHINE_MAX_DISKS, PATH_MAX);
	json_t *ret = NULL;
	if (!paths)
		kite_error("out of memory");
	else
		disk_snapshot_create_overlays(&x->def, NULL, snap, paths, &ret);
	free(paths);
	return ret;
}

/* The definition follows the disks onto their overlays (as virsh's does). */
static int follow_overlays(struct snap_ctx *x, json_t *ret)
{
	json_t *d;
	size_t i;
	json_array_foreach(json_object_get(ret, "disks"), i, d)
	{
		const char *file = str(d, "file");
		if (!file || i >= (size_t)x->def.ndisks)
			continue;
		char *p = strdup(file);
		if (!p)
			return kite_error("out of memory");
		free(x->def.disks[i].path);
		x->def.disks[i].path = p;
		snprintf(x->def.disks[i].format, sizeof(x->def.disks[i].format), "qcow2");
	}
	return def_save(&x->cli.dirs, &x->def);
}

static bool is_external(json_t *s)
{
	json_t *d;
	size_t i;
	json_array_foreach(json_object_get(s, "disks"), i, d)
	{
		const char *kind = str(d, "snapshot");
		if (kind && !strcmp(kind, "external"))
			return true;
	}
	return false;
}

static int create_as(struct snap_ctx *x, const char *snap, const char *desc, bool disk_only)
{
	if (!control_snapshot_name_ok(snap))
		return kite_error("'%s' is not a snapshot name (1 to 255 bytes, no '/')", snap);
	if (snapshot_find(x->meta, snap))
		return kite_error("machine %s: snapshot '%s' already exists", x->name, snap);
	bool active = is_active(&x->st);
	const char *state = !active			    ? "shutoff"
			    : disk_only			    ? "disk-snapshot"
			    : x->st.state == MACHINE_PAUSED ? "paused"
							    : "running";
	time_t now = time(NULL);
	json_t *ret = active	  ? create_running(x, snap, disk_only)
		      : disk_only ? create_overlays_stopped(x, snap)
				  : create_stopped(x, snap);
	if (!ret || (disk_only && follow_overlays(x, ret) < 0)) {
		json_decref(ret);
		return -1;
	}
	json_t *cur = json_object_get(x->meta, "current");
	json_t *e = json_pack("{s:s, s:s, s:O, s:I, s:s, s:b, s:O, s:O, s:O}", "name", snap,
			      "description", desc ? desc : "", "parent", cur, "creation_time",
			      (json_int_t)now, "state", state, "memory", active && !disk_only,
			      "vmstate_disk", json_object_get(ret, "vmstate_disk"), "vm_state_size",
			      json_object_get(ret, "vm_state_size"), "disks",
			      json_object_get(ret, "disks"));
	json_decref(ret);
	if (!e)
		return kite_error("machine %s: the VMM's answer lacks the snapshot's details",
				  x->name);
	json_array_append_new(json_object_get(x->meta, "snapshots"), e);
	json_object_set_new(x->meta, "current", json_string(snap));
	return snapshot_store_save(&x->cli.dirs, x->name, x->meta);
}

int cmd_snapshot_create_as(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"description", required_argument, NULL, O_DESCRIPTION},
	    {"disk-only", no_argument, NULL, O_DISK_ONLY},
	    {"atomic", no_argument, NULL, O_ATOMIC},
	    {NULL, 0, NULL, 0}};
	struct snap_ctx x = {
	    .cli = {
		.verb = "snapshot-create-as",
		.usage =
		    "usage: kite snapshot-create-as NAME SNAP [--description TEXT] "
		    "[--disk-only] [--atomic]\n"
		    "Takes snapshot SNAP of machine NAME. Running (or paused): its vCPUs stop "
		    "at one\n"
		    "instant, its disks' requests complete, every writable disk takes a qcow2 "
		    "internal\n"
		    "snapshot and the first one also stores the machine's state and RAM (as "
		    "QEMU's\n"
		    "savevm), then it goes on. Shut off: a disk-only internal snapshot of its "
		    "disks.\n"
		    "--disk-only (as virsh): every writable disk, raw ones too, moves onto a new "
		    "qcow2\n"
		    "overlay DISK.SNAP backed by it, and the definition follows. Raw disks "
		    "take no\n"
		    "internal snapshot. --atomic: all disks or none (always "
		    "so).\n" MACHINE_COMMON_HELP}};
	bool disk_only = false, atomic = false;
	const char *desc = NULL;
	const struct machine_flag flags[] = {{O_DESCRIPTION, NULL, &desc},
					     {O_DISK_ONLY, &disk_only, NULL},
					     {O_ATOMIC, &atomic, NULL},
					     {0, NULL, NULL}};
	int r = machine_parse(&x.cli, argc, argv, opts, flags, 2, 2, "NAME SNAP");
	if (r >= 0)
		return r;
	const char *snap = argv[optind + 1];
	r = ctx_open(&x, argv[optind]);
	if (r == 0)
		r = create_as(&x, snap, desc, disk_only);
	ctx_close(&x);
	if (r < 0)
		return 1;
	printf("Domain snapshot %s created\n", snap);
	return 0;
}

/* ---- snapshot-list, -current, -info, -dumpjson ---- */

static void format_time(json_int_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!localtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S %z", &tm))
		snprintf(buf, size, "%lld", (long long)t);
}

static void print_tree(json_t *meta, const char *parent, int depth)
{
	json_t *s;
	size_t i;
	json_array_foreach(json_object_get(meta, "snapshots"), i, s)
	{
		const char *p = str(s, "parent");
		if ((parent == NULL) != (p == NULL) || (p && strcmp(p, parent)))
			continue;
		for (int k = 0; k < depth; k++)
			fputs(k + 1 == depth ? "  +- " : "  |  ", stdout);
		printf("%s\n", str(s, "name"));
		if (depth < 64)
			print_tree(meta, str(s, "name"), depth + 1);
	}
}

static int list_table(json_t *meta)
{
	static const char *const header[] = {"Name", "Creation Time", "State"};
	struct table *t = table_new(3, header);
	if (!t)
		return -1;
	json_t *s;
	size_t i;
	int r = 0;
	json_array_foreach(json_object_get(meta, "snapshots"), i, s)
	{
		char when[64];
		format_time(json_integer_value(json_object_get(s, "creation_time")), when,
			    sizeof(when));
		const char *row[] = {str(s, "name"), when, str(s, "state")};
		if (r == 0)
			r = table_add(t, row);
	}
	if (r == 0)
		table_print(t, stdout);
	table_free(t);
	return r;
}

int cmd_snapshot_list(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"tree", no_argument, NULL, O_TREE}, {NULL, 0, NULL, 0}};
	struct snap_ctx x = {
	    .cli = {.verb = "snapshot-list",
		    .usage = "usage: kite snapshot-list NAME [--tree]\n"
			     "Lists machine NAME's snapshots: virsh's table (Name, Creation Time, "
			     "State),\n"
			     "or with --tree each under its parent.\n" MACHINE_COMMON_HELP}};
	bool tree = false;
	const struct machine_flag flags[] = {{O_TREE, &tree, NULL}, {0, NULL, NULL}};
	int r = machine_parse(&x.cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (r >= 0)
		return r;
	r = ctx_open(&x, argv[optind]);
	if (r == 0 && tree)
		print_tree(x.meta, NULL, 0);
	else if (r == 0)
		r = list_table(x.meta);
	ctx_close(&x);
	return r < 0;
}

static int dump(json_t *s)
{
	char *text = json_dumps(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return kite_error("out of memory");
	printf("%s\n", text);
	free(text);
	return 0;
}

int cmd_snapshot_current(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"name", no_argument, NULL, O_NAME}, {NULL, 0, NULL, 0}};
	struct snap_ctx x = {
	    .cli = {
		.verb = "snapshot-current",
		.usage =
		    "usage: kite snapshot-current NAME [--name]\n"
		    "Prints machine NAME's current snapshot (the last taken or reverted "
		    "to) as\n"
		    "snapshot-dumpjson does, or with --name only its name.\n" MACHINE_COMMON_HELP}};
	bool name_only = false;
	const struct machine_flag flags[] = {{O_NAME, &name_only, NULL}, {0, NULL, NULL}};
	int r = machine_parse(&x.cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (r >= 0)
		return r;
	r = ctx_open(&x, argv[optind]);
	const char *cur = r == 0 ? str(x.meta, "current") : NULL;
	if (r == 0 && !cur)
		r = kite_error("machine %s has no current snapshot", x.name);
	if (r == 0 && name_only)
		printf("%s\n", cur);
	else if (r == 0)
		r = dump(snapshot_find(x.meta, cur));
	ctx_close(&x);
	return r < 0;
}

/* SNAP, or the current one with --current. */
static json_t *snap_arg(struct snap_ctx *x, int argc, char **argv, bool current)
{
	if (current && optind + 1 < argc) {
		kite_error("%s: give SNAP or --current, not both", x->cli.verb);
		return NULL;
	}
	if (!current && optind + 1 >= argc) {
		kite_error("%s: which snapshot? (SNAP or --current)", x->cli.verb);
		return NULL;
	}
	const char *snap = current ? str(x->meta, "current") : argv[optind + 1];
	if (!snap) {
		kite_error("machine %s has no current snapshot", x->name);
		return NULL;
	}
	return find_or_fail(x, snap);
}

int cmd_snapshot_info(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"current", no_argument, NULL, O_CURRENT}, {NULL, 0, NULL, 0}};
	struct snap_ctx x = {.cli = {.verb = "snapshot-info",
				     .usage = "usage: kite snapshot-info NAME (SNAP | --current)\n"
					      "Prints what virsh snapshot-info prints about a "
					      "snapshot.\n" MACHINE_COMMON_HELP}};
	bool current = false;
	const struct machine_flag flags[] = {{O_CURRENT, &current, NULL}, {0, NULL, NULL}};
	int r = machine_parse(&x.cli, argc, argv, opts, flags, 1, 2, "NAME SNAP");
	if (r >= 0)
		return r;
	r = ctx_open(&x, argv[optind]);
	json_t *s = r == 0 ? snap_arg(&x, argc, argv, current) : NULL;
	if (s) {
		const char *cur = str(x.meta, "current"), *parent = str(s, "parent");
		int children, desc;
		snapshot_count_children(x.meta, str(s, "name"), &children, &desc);
		printf("%-15s %s\n", "Name:", str(s, "name"));
		printf("%-15s %s\n", "Domain:", x.name);
		printf("%-15s %s\n",
		       "Current:", cur && !strcmp(cur, str(s, "name")) ? "yes" : "no");
		printf("%-15s %s\n", "State:", str(s, "state"));
		printf("%-15s %s\n", "Location:", is_external(s) ? "external" : "internal");
		printf("%-15s %s\n", "Parent:", parent ? parent : "-");
		printf("%-15s %d\n", "Children:", children);
		printf("%-15s %d\n", "Descendants:", desc);
		printf("%-15s %s\n", "Metadata:", "yes");
		printf("%-15s %s\n",
		       "Memory:", json_is_true(json_object_get(s, "memory")) ? "yes" : "no");
	}
	ctx_close(&x);
	return !s;
}

int cmd_snapshot_dumpjson(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct snap_ctx x = {
	    .cli = {.verb = "snapshot-dumpjson",
		    .usage = "usage: kite snapshot-dumpjson NAME SNAP\n"
			     "Prints a snapshot's metadata as JSON (virsh snapshot-dumpxml's "
			     "counterpart).\n" MACHINE_COMMON_HELP}};
	int r = machine_parse(&x.cli, argc, argv, opts, NULL, 2, 2, "NAME SNAP");
	if (r >= 0)
		return r;
	r = ctx_open(&x, argv[optind]);
	json_t *s = r == 0 ? find_or_fail(&x, argv[optind + 1]) : NULL;
	if (s)
		r = dump(s);
	ctx_close(&x);
	return !s || r < 0;
}

/* ---- snapshot-delete ---- */

int cmd_snapshot_delete(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"current", no_argument, NULL, O_CURRENT}, {NULL, 0, NULL, 0}};
	struct snap_ctx x = {
	    .cli = {.verb = "snapshot-delete",
		    .usage = "usage: kite snapshot-delete NAME (SNAP | --current)\n"
			     "Deletes a snapshot from every disk and from the metadata; its "
			     "children take\n"
			     "its parent.\n" MACHINE_COMMON_HELP}};
	bool current = false;
	const struct machine_flag flags[] = {{O_CURRENT, &current, NULL}, {0, NULL, NULL}};
	int r = machine_parse(&x.cli, argc, argv, opts, flags, 1, 2, "NAME SNAP");
	if (r >= 0)
		return r;
	r = ctx_open(&x, argv[optind]);
	json_t *s = r == 0 ? snap_arg(&x, argc, argv, current) : NULL;
	char *snap = s ? strdup(str(s, "name")) : NULL;
	r = snap ? 0 : -1;
	bool external = s && is_external(s);
	if (r == 0 && external) {
		/* The overlays are the disks now: only the record goes. */
	} else if (r == 0 && is_active(&x.st)) {
		struct control_client *c;
		r = machine_connect(&x.cli.dirs, x.name, &c);
		if (r == 0) {
			r = control_client_execute(c, "snapshot-delete",
						   json_pack("{s:s}", "name", snap), NULL,
						   SAVE_TIMEOUT_MS);
			if (r < 0)
				kite_error("machine %s: snapshot-delete: %s", x.name,
					   control_client_error(c));
			control_client_close(c);
		}
	} else if (r == 0) {
		r = disk_snapshot_delete(&x.def, NULL, snap);
	}
	if (r == 0) {
		snapshot_forget(x.meta, snap);
		r = snapshot_store_save(&x.cli.dirs, x.name, x.meta);
	}
	ctx_close(&x);
	if (r == 0)
		printf("Domain snapshot %s deleted\n", snap);
	free(snap);
	return r < 0;
}

/* ---- snapshot-revert ---- */

static int revert_path(struct snap_ctx *x, char *buf, size_t size)
{
	return snapshot_store_revert_path(&x->cli.dirs, x->name, buf, size);
}

static int send_simple(struct snap_ctx *x, const char *cmd)
{
	struct control_client *c;
	if (machine_connect(&x->cli.dirs, x->name, &c) < 0)
		return -1;
	int r = control_client_execute(c, cmd, NULL, NULL, CONTROL_CLIENT_TIMEOUT_MS);
	if (r < 0)
		kite_error("machine %s: %s: %s", x->name, cmd, control_client_error(c));
	control_client_close(c);
	return r;
}

/* The VMM quits and closes its disks itself (a qcow2 disk's last metadata written: a
 * killed writer leaves leaked clusters); only one that does not end in time is killed. */
static int stop_cleanly(struct snap_ctx *x)
{
	struct control_client *c;
	if (machine_connect(&x->cli.dirs, x->name, &c) == 0) {
		control_client_execute(c, "quit", NULL, NULL, CONTROL_CLIENT_TIMEOUT_MS);
		control_client_close(c);
		if (machine_wait_stopped(&x->cli.dirs, x->name, start_timeout_ms()) == 0)
			return 0;
	}
	return machine_destroy(&x->cli.dirs, x->name);
}

static int revert(struct snap_ctx *x, json_t *s, bool running, bool paused)
{
	const char *snap = str(s, "name");
	if (is_external(s))
		return kite_error("snapshot %s is external (its disks went on in qcow2 overlays): "
				  "reverting to it is not supported",
				  snap);
	bool memory = json_is_true(json_object_get(s, "memory"));
	/* The machine stops first: its disks go back under it otherwise. */
	if (is_active(&x->st) && stop_cleanly(x) < 0)
		return -1;
	char state[PATH_MAX], managed[PATH_MAX];
	if (revert_path(x, state, sizeof(state)) < 0 ||
	    managed_save_path(&x->cli.dirs, x->name, managed, sizeof(managed)) < 0)
		return -1;
	/* The state is read out and checked before the disks change: a snapshot whose state
	 * is unreadable or corrupt leaves everything as it was. */
	struct savefile f;
	if (memory) {
		if (disk_snapshot_read_state(&x->def, snap, str(s, "vmstate_disk"), state) < 0)
			return -1;
		if (savefile_open(&f, state) < 0)
			return kite_error("snapshot %s: its VM state is not usable", snap);
		savefile_close(&f);
	}
	if (disk_snapshot_revert(&x->def, snap) < 0)
		return -1;
	/* A managed save belongs to the disks as they were: it goes. */
	if (unlink(managed) < 0 && errno != ENOENT)
		return kite_error_errno(errno, "cannot remove %s", managed);
	json_object_set_new(x->meta, "current", json_string(snap));
	if (snapshot_store_save(&x->cli.dirs, x->name, x->meta) < 0)
		return -1;
	bool start = memory ? true : running || paused;
	if (!start)
		return 0;
	if (memory) {
		if (machine_start(&x->cli.dirs, &x->def, state, start_timeout_ms()) < 0)
			return -1;
	} else if (machine_start(&x->cli.dirs, &x->def, NULL, start_timeout_ms()) < 0) {
		return -1;
	}
	bool want_paused = paused || (!running && !strcmp(str(s, "state"), "paused"));
	return want_paused ? send_simple(x, "stop") : 0;
}

int cmd_snapshot_revert(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"running", no_argument, NULL, O_RUNNING},
	    {"paused", no_argument, NULL, O_PAUSED},
	    {"current", no_argument, NULL, O_CURRENT},
	    {NULL, 0, NULL, 0}};
	struct snap_ctx x = {
	    .cli = {.verb = "snapshot-revert",
		    .usage =
			"usage: kite snapshot-revert NAME (SNAP | --current) [--running | "
			"--paused]\n"
			"Puts machine NAME back to snapshot SNAP: a running machine is stopped, "
			"its disks\n"
			"revert (qemu-img snapshot -a), and a snapshot with the machine's state "
			"resumes\n"
			"from it (running, or paused as it was taken); a disk-only one leaves the "
			"machine\n"
			"shut off unless --running or --paused boots it.\n" MACHINE_COMMON_HELP}};
	bool running = false, paused = false, current = false;
	const struct machine_flag flags[] = {{O_RUNNING, &running, NULL},
					     {O_PAUSED, &paused, NULL},
					     {O_CURRENT, &current, NULL},
					     {0, NULL, NULL}};
	int r = machine_parse(&x.cli, argc, argv, opts, flags, 1, 2, "NAME SNAP");
	if (r >= 0)
		return r;
	if (running && paused) {
		kite_error("snapshot-revert: --running and --paused exclude each other");
		return 1;
	}
	r = ctx_open(&x, argv[optind]);
	json_t *s = r == 0 ? snap_arg(&x, argc, argv, current) : NULL;
	char *snap = s ? strdup(str(s, "name")) : NULL;
	r = snap ? revert(&x, s, running, paused) : -1;
	ctx_close(&x);
	if (r == 0)
		printf("Domain '%s' reverted to snapshot %s\n", x.name, snap);
	free(snap);
	return r < 0;
}

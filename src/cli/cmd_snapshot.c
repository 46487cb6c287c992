/* kite snapshot-create-as, snapshot-list, snapshot-current, snapshot-info,
 * snapshot-dumpjson, snapshot-delete, snapshot-revert: virsh's snapshot verbs. The snapshots
 * are qcow2 internal snapshots of every writable disk (machine/disk_snapshot.h), with the VM
 * state of a running machine in the first qcow2 disk's VM state area; their metadata is in
 * the state directory (mgmt/snapshot_store.h). This file parses and prints; the operations
 * are mgmt/snapshot_ops.c's. */
#include "cli/cmd_machine.h"
#include "mgmt/runstate.h"
#include "mgmt/snapshot_ops.h"
#include "util/err.h"

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

/* One verb: its command line, and the operation (mgmt/snapshot_ops.h). */
struct snap_ctx {
	struct machine_cli cli;
	struct snapshot_op op;
};

static int ctx_open(struct snap_ctx *x, const char *arg)
{
	return snapshot_op_open(&x->op, &x->cli.dirs, machine_resolve(&x->cli, arg));
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
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
		r = snapshot_op_create(&x.op, snap, desc, disk_only);
	snapshot_op_close(&x.op);
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
		print_tree(x.op.meta, NULL, 0);
	else if (r == 0)
		r = list_table(x.op.meta);
	snapshot_op_close(&x.op);
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
	const char *cur = r == 0 ? str(x.op.meta, "current") : NULL;
	if (r == 0 && !cur)
		r = kite_error("machine %s has no current snapshot", x.op.name);
	if (r == 0 && name_only)
		printf("%s\n", cur);
	else if (r == 0)
		r = dump(snapshot_find(x.op.meta, cur));
	snapshot_op_close(&x.op);
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
	const char *snap = current ? str(x->op.meta, "current") : argv[optind + 1];
	if (!snap) {
		kite_error("machine %s has no current snapshot", x->op.name);
		return NULL;
	}
	return snapshot_op_find(&x->op, snap);
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
		const char *cur = str(x.op.meta, "current"), *parent = str(s, "parent");
		int children, desc;
		snapshot_count_children(x.op.meta, str(s, "name"), &children, &desc);
		printf("%-15s %s\n", "Name:", str(s, "name"));
		printf("%-15s %s\n", "Domain:", x.op.name);
		printf("%-15s %s\n",
		       "Current:", cur && !strcmp(cur, str(s, "name")) ? "yes" : "no");
		printf("%-15s %s\n", "State:", str(s, "state"));
		printf("%-15s %s\n",
		       "Location:", snapshot_is_external(s) ? "external" : "internal");
		printf("%-15s %s\n", "Parent:", parent ? parent : "-");
		printf("%-15s %d\n", "Children:", children);
		printf("%-15s %d\n", "Descendants:", desc);
		printf("%-15s %s\n", "Metadata:", "yes");
		printf("%-15s %s\n",
		       "Memory:", json_is_true(json_object_get(s, "memory")) ? "yes" : "no");
	}
	snapshot_op_close(&x.op);
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
	json_t *s = r == 0 ? snapshot_op_find(&x.op, argv[optind + 1]) : NULL;
	if (s)
		r = dump(s);
	snapshot_op_close(&x.op);
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
	if (r == 0)
		r = snapshot_op_delete(&x.op, snap);
	snapshot_op_close(&x.op);
	if (r == 0)
		printf("Domain snapshot %s deleted\n", snap);
	free(snap);
	return r < 0;
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
	r = snap ? snapshot_op_revert(&x.op, s, running, paused) : -1;
	snapshot_op_close(&x.op);
	if (r == 0)
		printf("Domain '%s' reverted to snapshot %s\n", x.op.name, snap);
	free(snap);
	return r < 0;
}

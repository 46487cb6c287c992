/* virsh's snapshot operations on one machine, below the CLI: a running machine takes its
 * snapshot itself (control command snapshot-create), a stopped one's disks are snapshotted
 * here (machine/disk_snapshot.h); the metadata is mgmt/snapshot_store.h's. */
#include "mgmt/snapshot_ops.h"
#include "machine/disk_snapshot.h"
#include "machine/savefile.h"
#include "mgmt/control_commands.h"
#include "mgmt/launch.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool snapshot_machine_active(const struct machine_status *st)
{
	return st->state == MACHINE_RUNNING || st->state == MACHINE_PAUSED;
}

int snapshot_op_open(struct snapshot_op *x, const struct mgmt_dirs *d, const char *name)
{
	memset(x, 0, sizeof(*x));
	x->dirs = d;
	x->name = name;
	x->lock = -1;
	if (def_load(d, name, false, &x->def, NULL) != DEF_OK)
		return -1;
	x->def_loaded = true;
	if ((x->lock = def_lock(d, name)) < 0 || machine_status_get(d, name, true, &x->st) < 0)
		return -1;
	x->meta = snapshot_store_load(d, name);
	return x->meta ? 0 : -1;
}

void snapshot_op_close(struct snapshot_op *x)
{
	json_decref(x->meta);
	if (x->def_loaded)
		machine_config_free(&x->def);
	if (x->lock >= 0)
		close(x->lock);
}

json_t *snapshot_op_find(struct snapshot_op *x, const char *snap)
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

static int scratch_path(struct snapshot_op *x, char *buf, size_t size)
{
	return mgmt_path(buf, size, x->dirs->state, x->name, ".snapshot-state");
}

/* The running machine takes it: vCPUs paused at one instant, disks drained. */
static json_t *create_running(struct snapshot_op *x, const char *snap, bool disk_only)
{
	char state[PATH_MAX];
	if (scratch_path(x, state, sizeof(state)) < 0)
		return NULL;
	struct control_client *c;
	if (machine_connect(x->dirs, x->name, &c) < 0)
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
static json_t *create_stopped(struct snapshot_op *x, const char *snap)
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

static json_t *create_overlays_stopped(struct snapshot_op *x, const char *snap)
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
static int follow_overlays(struct snapshot_op *x, json_t *ret)
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
	return def_save(x->dirs, &x->def);
}

bool snapshot_is_external(json_t *s)
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

int snapshot_op_create(struct snapshot_op *x, const char *snap, const char *desc, bool disk_only)
{
	if (!control_snapshot_name_ok(snap))
		return kite_error("'%s' is not a snapshot name (1 to 255 bytes, no '/')", snap);
	if (snapshot_find(x->meta, snap))
		return kite_error("machine %s: snapshot '%s' already exists", x->name, snap);
	bool active = snapshot_machine_active(&x->st);
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
	return snapshot_store_save(x->dirs, x->name, x->meta);
}

static int revert_path(struct snapshot_op *x, char *buf, size_t size)
{
	return snapshot_store_revert_path(x->dirs, x->name, buf, size);
}

static int send_simple(struct snapshot_op *x, const char *cmd)
{
	struct control_client *c;
	if (machine_connect(x->dirs, x->name, &c) < 0)
		return -1;
	int r = control_client_execute(c, cmd, NULL, NULL, CONTROL_CLIENT_TIMEOUT_MS);
	if (r < 0)
		kite_error("machine %s: %s: %s", x->name, cmd, control_client_error(c));
	control_client_close(c);
	return r;
}

/* The VMM quits and closes its disks itself (a qcow2 disk's last metadata written: a
 * killed writer leaves leaked clusters); only one that does not end in time is killed. */
static int stop_cleanly(struct snapshot_op *x)
{
	struct control_client *c;
	if (machine_connect(x->dirs, x->name, &c) == 0) {
		control_client_execute(c, "quit", NULL, NULL, CONTROL_CLIENT_TIMEOUT_MS);
		control_client_close(c);
		if (machine_wait_stopped(x->dirs, x->name, start_timeout_ms()) == 0)
			return 0;
	}
	return machine_destroy(x->dirs, x->name);
}

int snapshot_op_revert(struct snapshot_op *x, json_t *s, bool running, bool paused)
{
	const char *snap = str(s, "name");
	if (snapshot_is_external(s))
		return kite_error("snapshot %s is external (its disks went on in qcow2 overlays): "
				  "reverting to it is not supported",
				  snap);
	bool memory = json_is_true(json_object_get(s, "memory"));
	/* The machine stops first: its disks go back under it otherwise. */
	if (snapshot_machine_active(&x->st) && stop_cleanly(x) < 0)
		return -1;
	char state[PATH_MAX], managed[PATH_MAX];
	if (revert_path(x, state, sizeof(state)) < 0 ||
	    managed_save_path(x->dirs, x->name, managed, sizeof(managed)) < 0)
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
	if (snapshot_store_save(x->dirs, x->name, x->meta) < 0)
		return -1;
	bool start = memory ? true : running || paused;
	if (!start)
		return 0;
	if (memory) {
		if (machine_start(x->dirs, &x->def, state, start_timeout_ms()) < 0)
			return -1;
	} else if (machine_start(x->dirs, &x->def, NULL, start_timeout_ms()) < 0) {
		return -1;
	}
	bool want_paused = paused || (!running && !strcmp(str(s, "state"), "paused"));
	return want_paused ? send_simple(x, "stop") : 0;
}

int snapshot_op_delete(struct snapshot_op *x, const char *snap)
{
	json_t *s = snapshot_op_find(x, snap);
	if (!s)
		return -1;
	int r = 0;
	if (snapshot_is_external(s)) {
		/* The overlays are the disks now: only the record goes. */
	} else if (snapshot_machine_active(&x->st)) {
		struct control_client *c;
		r = machine_connect(x->dirs, x->name, &c);
		if (r == 0) {
			r = control_client_execute(c, "snapshot-delete",
						   json_pack("{s:s}", "name", snap), NULL,
						   SAVE_TIMEOUT_MS);
			if (r < 0)
				kite_error("machine %s: snapshot-delete: %s", x->name,
					   control_client_error(c));
			control_client_close(c);
		}
	} else {
		r = disk_snapshot_delete(&x->def, NULL, snap);
	}
	if (r == 0) {
		snapshot_forget(x->meta, snap);
		r = snapshot_store_save(x->dirs, x->name, x->meta);
	}
	return r;
}

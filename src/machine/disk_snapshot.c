#include "machine/disk_snapshot.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool has_snapshot(struct blk *b, const char *name)
{
	struct blk_snapshot *list;
	int n;
	if (blk_snapshot_list(b, &list, &n) < 0)
		return false;
	bool found = false;
	for (int i = 0; i < n && !found; i++)
		found = !strcmp(list[i].name, name);
	free(list);
	return found;
}

static bool takes_part(const struct machine_config *m, int i)
{
	return !m->disks[i].readonly;
}

/* Everything that would make the snapshot fail, before anything is written. */
static int check_disks(const struct machine_config *m, struct blk **blks, const char *name,
		       bool full, int *state_disk)
{
	*state_disk = -1;
	for (int i = 0; i < m->ndisks; i++) {
		const struct disk_config *d = &m->disks[i];
		if (!takes_part(m, i))
			continue;
		if (!blk_format_can(blk_format_name(blks[i]), BLK_CAP_SNAPSHOTS) ||
		    (full && !blk_can_vmstate(blks[i])))
			return kite_error(
			    "disk %s (%s) is %s: internal snapshots need qcow2 disks%s", d->target,
			    d->path, blk_format_name(blks[i]),
			    full ? " (--disk-only takes an external overlay of a raw disk)" : "");
		if (has_snapshot(blks[i], name))
			return kite_error("disk %s (%s) already has a snapshot named '%s'",
					  d->target, d->path, name);
		if (*state_disk < 0)
			*state_disk = i;
	}
	if (full && *state_disk < 0)
		return kite_error("the machine has no writable qcow2 disk to hold its VM state");
	return 0;
}

static json_t *result(const struct machine_config *m, int state_disk, uint64_t size)
{
	json_t *disks = json_array();
	for (int i = 0; i < m->ndisks; i++)
		json_array_append_new(disks,
				      json_pack("{s:s, s:s, s:s}", "target", m->disks[i].target,
						"path", m->disks[i].path, "snapshot",
						takes_part(m, i) ? "internal" : "no"));
	return json_pack("{s:I, s:s?, s:o}", "vm_state_size", (json_int_t)size, "vmstate_disk",
			 state_disk >= 0 ? m->disks[state_disk].target : NULL, "disks", disks);
}

int disk_snapshot_create(const struct machine_config *m, struct blk **blks, const char *name,
			 const char *statefile, uint64_t vm_clock_nsec, json_t **out)
{
	int state_disk;
	if (check_disks(m, blks, name, statefile != NULL, &state_disk) < 0)
		return -1;
	int fd = -1;
	uint64_t size = 0;
	if (statefile) {
		struct stat st;
		fd = open(statefile, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (fd >= 0)
				close(fd);
			return kite_error_errno(errno, "%s", statefile);
		}
		size = (uint64_t)st.st_size;
	} else {
		state_disk = -1;
	}
	int done = 0, r = 0;
	for (; r == 0 && done < m->ndisks; done++) {
		if (!takes_part(m, done))
			continue;
		if (done == state_disk)
			r = blk_snapshot_create_vmstate(blks[done], name, fd, size, vm_clock_nsec);
		else
			r = blk_snapshot_create(blks[done], name);
		if (r < 0)
			break;
	}
	if (fd >= 0)
		close(fd);
	if (r < 0) { /* all or nothing: the disks done so far let go of it */
		for (int i = 0; i < done; i++)
			if (takes_part(m, i))
				blk_snapshot_delete(blks[i], name);
		return -1;
	}
	*out = result(m, state_disk, size);
	return *out ? 0 : kite_error("out of memory");
}

static int open_disks(const struct machine_config *m, struct blk **blks)
{
	for (int i = 0; i < m->ndisks; i++) {
		const struct disk_config *d = &m->disks[i];
		if (!takes_part(m, i))
			continue;
		blks[i] = blk_open(d->path, d->format[0] ? d->format : NULL, BLK_O_RDWR);
		if (!blks[i])
			return -1;
	}
	return 0;
}

static void close_disks(const struct machine_config *m, struct blk **blks)
{
	for (int i = 0; i < m->ndisks; i++)
		if (blks[i])
			blk_close(blks[i]);
}

static int write_state(struct blk *b, const char *name, const char *statefile)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", statefile) >= (int)sizeof(tmp))
		return kite_error("%s: path too long", statefile);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return kite_error_errno(errno, "%s: cannot create it", statefile);
	uint64_t size;
	int r = blk_snapshot_read_vmstate(b, name, fd, &size);
	if (r == 0 && fsync(fd) < 0)
		r = kite_error_errno(errno, "%s", tmp);
	close(fd);
	if (r == 0 && rename(tmp, statefile) < 0)
		r = kite_error_errno(errno, "%s", statefile);
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Every writable disk has snapshot `name`: checked before anything changes. */
static int check_has(const struct machine_config *m, struct blk **blks, const char *name)
{
	for (int i = 0; i < m->ndisks; i++)
		if (blks[i] && !has_snapshot(blks[i], name))
			return kite_error("disk %s (%s) has no snapshot named '%s'",
					  m->disks[i].target, m->disks[i].path, name);
	return 0;
}

int disk_snapshot_read_state(const struct machine_config *m, const char *name,
			     const char *vmstate_target, const char *statefile)
{
	struct blk *blks[MACHINE_MAX_DISKS] = {0};
	int r = open_disks(m, blks), at = -1;
	for (int i = 0; r == 0 && i < m->ndisks; i++)
		if (blks[i] && vmstate_target && !strcmp(m->disks[i].target, vmstate_target))
			at = i;
	if (r == 0 && at < 0)
		r = kite_error("the machine has no writable disk %s, which holds the VM state",
			       vmstate_target ? vmstate_target : "(none)");
	if (r == 0)
		r = check_has(m, blks, name);
	if (r == 0)
		r = write_state(blks[at], name, statefile);
	close_disks(m, blks);
	return r;
}

int disk_snapshot_revert(const struct machine_config *m, const char *name)
{
	struct blk *blks[MACHINE_MAX_DISKS] = {0};
	int r = open_disks(m, blks);
	if (r == 0)
		r = check_has(m, blks, name);
	for (int i = 0; r == 0 && i < m->ndisks; i++)
		if (blks[i])
			r = blk_snapshot_apply(blks[i], name);
	close_disks(m, blks);
	return r;
}

int disk_snapshot_delete(const struct machine_config *m, struct blk **running, const char *name)
{
	struct blk *own[MACHINE_MAX_DISKS] = {0};
	struct blk **blks = running ? running : own;
	int r = running ? 0 : open_disks(m, own);
	for (int i = 0; r == 0 && i < m->ndisks; i++)
		if (blks[i] && takes_part(m, i) &&
		    blk_format_can(blk_format_name(blks[i]), BLK_CAP_SNAPSHOTS) &&
		    has_snapshot(blks[i], name))
			r = blk_snapshot_delete(blks[i], name);
	if (!running)
		close_disks(m, own);
	return r;
}

static int overlay_path(const char *disk, const char *snap, char *buf, size_t size)
{
	const char *slash = strrchr(disk, '/'), *dot = strrchr(disk, '.');
	size_t stem = dot && (!slash || dot > slash + 1) ? (size_t)(dot - disk) : strlen(disk);
	if (snprintf(buf, size, "%.*s.%s", (int)stem, disk, snap) >= (int)size)
		return kite_error("%s: the overlay's name is too long", disk);
	return 0;
}

/* The disk's format and size: from its open image, or opened here read-only. */
static int disk_facts(const struct disk_config *d, struct blk *open_blk, char *fmt, size_t fsize,
		      uint64_t *size)
{
	struct blk *b =
	    open_blk ? open_blk : blk_open(d->path, d->format[0] ? d->format : NULL, BLK_O_RDONLY);
	if (!b)
		return -1;
	snprintf(fmt, fsize, "%s", blk_format_name(b));
	*size = blk_size(b);
	if (!open_blk)
		blk_close(b);
	return 0;
}

static int make_overlay(const struct disk_config *d, struct blk *open_blk, const char *path)
{
	char fmt[16];
	uint64_t size;
	if (disk_facts(d, open_blk, fmt, sizeof(fmt), &size) < 0)
		return -1;
	if (access(path, F_OK) == 0)
		return kite_error("disk %s: %s exists already: no overlay made over it", d->target,
				  path);
	struct blk_create_opts o = {0};
	o.size = size;
	o.size_set = true;
	o.backing_file = d->path;
	o.backing_fmt = fmt;
	return blk_create(path, "qcow2", &o);
}

int disk_snapshot_create_overlays(const struct machine_config *m, struct blk **blks,
				  const char *name, char (*paths)[PATH_MAX], json_t **out)
{
	int made = 0, r = 0;
	for (int i = 0; i < m->ndisks; i++)
		paths[i][0] = '\0';
	for (; r == 0 && made < m->ndisks; made++) {
		if (!takes_part(m, made))
			continue;
		r = overlay_path(m->disks[made].path, name, paths[made], PATH_MAX);
		if (r == 0)
			r = make_overlay(&m->disks[made], blks ? blks[made] : NULL, paths[made]);
		if (r < 0)
			paths[made][0] = '\0';
	}
	if (r < 0) {
		for (int i = 0; i < m->ndisks; i++)
			if (paths[i][0])
				unlink(paths[i]);
		return -1;
	}
	json_t *disks = json_array();
	for (int i = 0; i < m->ndisks; i++)
		json_array_append_new(
		    disks, paths[i][0] ? json_pack("{s:s, s:s, s:s, s:s}", "target",
						   m->disks[i].target, "path", m->disks[i].path,
						   "snapshot", "external", "file", paths[i])
				       : json_pack("{s:s, s:s, s:s}", "target", m->disks[i].target,
						   "path", m->disks[i].path, "snapshot", "no"));
	*out = json_pack("{s:I, s:n, s:o}", "vm_state_size", (json_int_t)0, "vmstate_disk", "disks",
			 disks);
	return *out ? 0 : kite_error("out of memory");
}

int disk_snapshot_switch(struct machine_config *m, struct blk **blks, char (*paths)[PATH_MAX])
{
	for (int i = 0; i < m->ndisks; i++) {
		struct disk_config *d = &m->disks[i];
		if (!paths[i][0])
			continue;
		unsigned flags = BLK_O_RDWR | (d->nocache ? BLK_O_NOCACHE : 0);
		blk_close(blks[i]); /* the overlay opens it again, as its backing file */
		blks[i] = blk_open(paths[i], "qcow2", flags);
		if (!blks[i]) {
			blks[i] = blk_open(d->path, d->format[0] ? d->format : NULL, flags);
			return -1;
		}
		char *p = strdup(paths[i]);
		if (!p)
			return kite_error("out of memory");
		free(d->path);
		d->path = p;
		snprintf(d->format, sizeof(d->format), "qcow2");
	}
	return 0;
}

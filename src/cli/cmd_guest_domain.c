/* kite guest -d DOMAIN: a machine's disks, from its definition, instead of an IMAGE operand.
 * The disks are guestfish's /dev/sda, /dev/sdb, ... in the definition's order (vda first).
 * A running (or paused) machine holds its disks' locks: verbs that write are refused, and
 * verbs that read need --ro, which opens the images with force-share (nothing is written,
 * no lock conflict) and warns that the view may be mid-write. A machine that is not running
 * is opened as an IMAGE is, with the usual locks. */
#include "cli/cmd_guest.h"
#include "mgmt/def_store.h"
#include "mgmt/runstate.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

/* The machine of this process's -d (one per verb; a later -d replaces it). Kept in static
 * storage so that every return path of a verb may leave it. */
static struct {
	bool loaded;
	struct machine_config def;
	struct gfs_disk disks[MACHINE_MAX_DISKS];
	bool running;
} dom;

static int load(const struct guest_common *c)
{
	struct mgmt_dirs dirs;
	struct machine_status st;
	if (dom.loaded) {
		machine_config_free(&dom.def);
		dom.loaded = false;
	}
	if (mgmt_dirs_init(c->state_dir, c->runtime_dir, &dirs) < 0 ||
	    def_load(&dirs, c->domain, false, &dom.def, NULL) != DEF_OK)
		return -1;
	dom.loaded = true;
	if (machine_status_get(&dirs, c->domain, false, &st) < 0)
		return -1;
	dom.running = st.state == MACHINE_RUNNING || st.state == MACHINE_PAUSED;
	if (!dom.def.ndisks)
		return kite_error("machine '%s' has no disks", c->domain);
	for (int i = 0; i < dom.def.ndisks; i++) {
		const struct disk_config *d = &dom.def.disks[i];
		dom.disks[i].path = d->path;
		dom.disks[i].format = c->format ? c->format : d->format[0] ? d->format : NULL;
	}
	return 0;
}

/* What the machine's state allows: sets c->share for a running machine read with --ro. */
static int policy(struct guest_common *c, bool write)
{
	if (!dom.running)
		return 0;
	if (write)
		return kite_error("machine '%s' is running: kite guest does not write the disks "
				  "of a running machine (shut it down first)",
				  c->domain);
	if (!c->ro)
		return kite_error("machine '%s' is running: add --ro to read its disks as they "
				  "are now (the view may be mid-write)",
				  c->domain);
	kite_warn("machine '%s' is running: its disks are read as they are now, and what it is "
		  "writing may be seen half done",
		  c->domain);
	c->share = true;
	return 0;
}

int guest_resolve(struct guest_common *c, bool write)
{
	if (write && c->ro)
		return kite_error("--ro: this verb writes");
	if (write && c->share)
		return kite_error("-U (--force-share) is for verbs that only read");
	if (!c->domain) {
		c->one.path = c->image;
		c->one.format = c->format;
		c->disks = &c->one;
		c->ndisks = 1;
		return 0;
	}
	if (load(c) < 0 || policy(c, write) < 0)
		return -1;
	c->disks = dom.disks;
	c->ndisks = dom.def.ndisks;
	return 0;
}

/* A machine definition: what `kite define` stores as STATE/NAME.json and `kite start` turns
 * into a `kite run` command line. The JSON form (docs in docs/control-protocol.md, section
 * "Definitions") is parsed strictly: an unknown field or a wrong type is an error that names
 * the field, so a typo never silently drops a setting. */
#ifndef KITE_MGMT_MACHINE_DEF_H
#define KITE_MGMT_MACHINE_DEF_H

#include "config/machine_config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MACHINE_MAX_DEVICES 64

struct machine_disk {
	char *path;
	char *format; /* NULL: probe */
	char *target; /* vda, vdb, ... */
	bool readonly;
};

struct machine_nic {
	char *type;   /* "user" (NAT) or "tap" */
	char *ifname; /* tap only */
	char mac[18];
	char *model;	/* "virtio" */
	char **hostfwd; /* user only: "tcp::2222-:22" rules, as kite run --net takes them */
	size_t nhostfwd;
};

struct machine_share {
	char *path;
	char *tag;
	bool readonly;
};

struct machine_def {
	char *name;
	char uuid[37];
	uint64_t memory;	 /* bytes of RAM at boot: virsh's "Max memory" */
	uint64_t current_memory; /* balloon target: virsh's "Used memory" */
	unsigned vcpus;
	char *kernel, *initrd, *append;
	struct machine_disk *disks;
	size_t ndisks;
	struct machine_nic *nics;
	size_t nnics;
	struct machine_share *shares;
	size_t nshares;
	char *console; /* "serial" or "none" */
	bool autostart;
};

/* Fills `def` from JSON. `where` prefixes error messages (a file name). A missing uuid is
 * generated, a missing MAC too; memory defaults to 512 MiB, vcpus to 1. Returns 0 or -1
 * (reported, def left empty). */
int machine_def_from_json(json_t *root, const char *where, struct machine_def *def);

/* Checks the cross-field rules (current_memory <= memory, unique targets, ...). Returns 0 or
 * -1 (reported). machine_def_from_json calls it; edits through the CLI call it again. */
int machine_def_validate(const struct machine_def *def, const char *where);

/* The JSON form, with every field written out. NULL on allocation failure. */
json_t *machine_def_to_json(const struct machine_def *def);

void machine_def_free(struct machine_def *def);

/* Device list edits for attach/detach --config. Return 0 or -1 (reported). */
int machine_def_add_disk(struct machine_def *def, const char *path, const char *target,
			 const char *format, bool readonly);
int machine_def_remove_disk(struct machine_def *def, const char *target_or_path);
int machine_def_add_nic(struct machine_def *def, const char *type, const char *ifname,
			const char *mac, const char *model);
/* Adds a port forward (kite run's hostfwd syntax, checked) to a user NIC. 0 or -1. */
int machine_nic_add_hostfwd(struct machine_nic *nic, const char *rule);
int machine_def_remove_nic(struct machine_def *def, const char *mac_or_type);

/* Random identifiers. */
int mac_generate_str(char out[18]);
bool mac_valid(const char *s);

#endif

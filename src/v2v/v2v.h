/* kite guest v2v: another hypervisor's machine into a kite machine, as virt-v2v -i ova does.
 * The OVA's OVF says what the machine is (ovf.h), its manifest is checked (manifest.h), each
 * disk is unpacked next to its output and converted through the block layer's convert
 * engine (block/convert.h: what kite img convert writes), and a struct machine_config
 * describes the result. Nothing is written outside the output directory. */
#ifndef KITE_V2V_V2V_H
#define KITE_V2V_V2V_H

#include "config/machine_config.h"

#include <stdbool.h>
#include <stdint.h>

/* The largest virtual disk imported: an OVA claiming more is refused, not converted. */
#define V2V_MAX_DISK_SIZE (64ULL << 40)

struct v2v_opts {
	const char *input;  /* the OVA */
	const char *outdir; /* -os: the disks go there */
	const char *format; /* -of: "qcow2" or "raw" */
	const char *name;   /* -on: the machine's name; NULL: the OVF's */
	bool progress;
};

/* Imports an OVA: its disks become OUTDIR/NAME-sda.FMT, NAME-sdb.FMT, ... and `m` (set up
 * by the caller with machine_config_init_definition, perhaps with a kernel) gets the name,
 * vCPUs, memory, disks (absolute paths) and NICs (user networking, the OVF's MACs). Output
 * files that exist already are refused, not replaced. On failure, what it created is
 * removed again. Returns 0 or -1 (reported). */
int v2v_import_ova(const struct v2v_opts *o, struct machine_config *m);

/* Writes `m` as OUTDIR/NAME.json (the JSON kite define reads), refusing to replace a file.
 * Sets *path (to free) to where it went. Returns 0 or -1. */
int v2v_write_definition(const struct machine_config *m, const char *outdir, char **path);

/* A machine name from an OVF's (spaces and other characters a kite name does not take
 * become '-'). */
void v2v_name_from(const char *ovf_name, char *out, size_t size);

#endif

/* The OVF descriptor of an OVA (DMTF DSP0243, 1.x and 2.x, as VMware and VirtualBox export
 * it), read with libxml2: the virtual system's name, vCPUs, memory, disks (in the order of
 * the virtual hardware section, each with its file from References) and NICs. */
#ifndef KITE_V2V_OVF_H
#define KITE_V2V_OVF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OVF_MAX_DISKS 16
#define OVF_MAX_NICS  8

struct ovf_disk {
	char href[256];	   /* the file in the OVA */
	char format[256];  /* the DiskSection's format URI ("...vmdk.html#streamOptimized") */
	uint64_t capacity; /* bytes; 0 when not said */
	bool compressed;   /* References' ovf:compression="gzip" */
};

struct ovf_nic {
	uint8_t mac[6];
	bool mac_set;
	char model[32]; /* ResourceSubType: E1000, VmxNet3, PCNet32, ... */
};

struct ovf_vm {
	char name[256];
	unsigned vcpus;	 /* 0 when not said */
	uint64_t memory; /* bytes; 0 when not said */
	int ndisks;
	struct ovf_disk disks[OVF_MAX_DISKS];
	int nnics;
	struct ovf_nic nics[OVF_MAX_NICS];
};

/* Parses `len` bytes of OVF XML. `where` (the file's name) begins messages: malformed XML,
 * a DTD (refused: entities are not expanded for anyone), a disk item naming no disk,
 * quantities that are not numbers or out of range. Returns 0 or -1 (reported). */
int ovf_parse(const char *xml, size_t len, const char *where, struct ovf_vm *vm);

/* "byte * 2^20", "MegaBytes", "byte", "GB", ...: the unit in bytes; 0 when unknown. */
uint64_t ovf_unit_bytes(const char *units);

#endif

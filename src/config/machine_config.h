/* A machine, described once: what `kite run` options and `kite create` options parse to, what
 * a definition file holds (docs/control-protocol.md, "Definitions"), and what the VMM boots
 * (the real `kite run` and the test stand-in `kite _fake-run` alike).
 *
 * This folder sits below every layer that uses the description: net/ and virtio/ take their
 * device entries, machine/ assembles the machine, mgmt/ stores and starts it, cli/ parses
 * options into it. It depends on util/ only.
 *
 * Each option grammar has one parser, whatever the description comes from:
 *   - a disk: `--disk PATH[,key=value]...` and a JSON disk object go through the same table
 *     of keys (path, format, target, readonly, cache, serial; disk_config.c);
 *   - a NIC: `--net user[,...]` / `--net tap=IF[,...]` and a JSON NIC object likewise (type,
 *     ifname, mac, model, hostfwd; nic_config.c);
 *   - the machine's own fields (memory, vcpus, console, ...): machine_config_set(), which the
 *     options and the JSON reader both call with the field's text (machine_config.c).
 *
 *   struct machine_config m;
 *   machine_config_init(&m);                       // kite run's defaults
 *   machine_config_set(&m, "memory", "1G", "--memory");
 *   machine_config_set(&m, "disks", "/img/a.qcow2,format=qcow2", "--disk");
 *   machine_config_finish(&m);                     // defaults that depend on other fields
 *   machine_config_validate(&m, "run") ... machine_config_check_files(&m, "run") ...
 *   json_t *j = machine_config_to_json(&m);        // and machine_config_from_json()
 *   machine_config_free(&m);
 */
#ifndef KITE_CONFIG_MACHINE_CONFIG_H
#define KITE_CONFIG_MACHINE_CONFIG_H

#include "config/cpu_config.h"
#include "config/fw_cfg_config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MACHINE_NAME_MAX    64
#define MACHINE_MAX_VCPUS   254 /* xAPIC ids; the IOAPIC takes the id after the last vCPU */
#define MACHINE_MAX_DISKS   16
#define MACHINE_MAX_NICS    8
#define MACHINE_MAX_HOSTFWD 16
#define MACHINE_MIN_MEMORY  (4ULL << 20)
#define MACHINE_MAX_MEMORY  (1ULL << 50)  /* the host decides, at run time */
#define BALLOON_MIN_MEMORY  (16ULL << 20) /* the lowest balloon target a VMM takes */
#define DISK_SERIAL_MAX	    20		  /* virtio-blk's ID string */
#define DISK_TARGET_MAX	    4		  /* vda .. vdzz */
#define NIC_IFNAME_MAX	    15		  /* IFNAMSIZ - 1 */

/* --disk PATH[,format=raw|qcow2|vmdk][,target=vdX][,readonly=on|off][,cache=writeback|none]
 * [,serial=ID]; ",," stands for a comma. */
struct disk_config {
	char *path;
	char format[8];			  /* "" = probe */
	char target[DISK_TARGET_MAX + 1]; /* vda, vdb, ...: the disks' order on the bus */
	bool readonly;
	bool nocache; /* cache=none: O_DIRECT */
	char serial[DISK_SERIAL_MAX + 1];
};

/* hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (QEMU's syntax). */
struct net_hostfwd {
	bool udp;
	uint32_t host_addr; /* network order; 0 = any */
	uint16_t host_port;
	uint32_t guest_addr; /* network order; 0 = the NIC's DHCP address (.15) */
	uint16_t guest_port;
};

/* user: libslirp NAT; tap: an existing tap; bridge: a new tap on a host bridge; network: a
 * new tap on a named network's bridge (kite net-define), looked up when the machine starts. */
enum nic_kind { NIC_USER, NIC_TAP, NIC_BRIDGE, NIC_NETWORK };

#define NIC_HOSTNAME_MAX 63

/* A user (NAT) NIC's network, as QEMU's -netdev user options give it (config/nic_user.c).
 * Addresses in network order; 0 = not given (the NIC's default). */
struct nic_user {
	uint32_t net, mask; /* net=ADDR[/MASK]; mask 0 = not given: 10.0.(2 + index).0/24 */
	uint32_t host, dns, dhcpstart;
	bool restricted; /* restrict=on: the guest reaches nothing but hostfwd'd connections */
	char hostname[NIC_HOSTNAME_MAX + 1]; /* DHCP's host name option */
};

/* What a user NIC ends up with. Network order. */
struct nic_user_addrs {
	uint32_t net, mask, host, dns, dhcp;
};

/* --net user[,hostfwd=RULE]...[,mac=MAC] | tap=IFNAME[,mac=MAC] (or tap,ifname=IFNAME). */
struct nic_config {
	enum nic_kind kind;
	char ifname[NIC_IFNAME_MAX + 1]; /* tap */
	char bridge[NIC_IFNAME_MAX +
		    1]; /* bridge; network: its bridge once looked up (not stored) */
	char network[MACHINE_NAME_MAX + 1]; /* network */
	uint8_t mac[6];
	bool
	    mac_set; /* else kite run uses 52:54:00:12:34:56 + index; a stored definition has one */
	int nfwd;
	struct net_hostfwd fwd[MACHINE_MAX_HOSTFWD];
	struct nic_user user;
};

/* Which device carries the console: serial (COM1), virtio (hvc0), none, or COM1 into a file.
 * Where its host end goes (a terminal, the control socket) is the VMM's business. */
enum machine_console {
	MACHINE_CONSOLE_SERIAL,
	MACHINE_CONSOLE_VIRTIO,
	MACHINE_CONSOLE_NONE,
	MACHINE_CONSOLE_FILE,
};

struct machine_config {
	char name[MACHINE_NAME_MAX + 1]; /* "" for kite run without --name */
	char uuid[37];			 /* "" until the machine is stored */
	char *kernel, *initrd, *append;
	uint64_t memory;	 /* bytes of RAM at boot: virsh's "Max memory" */
	uint64_t current_memory; /* the balloon target after start: virsh's "Used memory" */
	unsigned vcpus;
	int ndisks;
	struct disk_config disks[MACHINE_MAX_DISKS]; /* in target order: vda first */
	int nnics;
	struct nic_config nics[MACHINE_MAX_NICS];
	bool rng, balloon;
	bool exit_device;   /* --exit-device port=N: the test exit device (devices/debug_exit.h) */
	uint16_t exit_port; /* its first port */
	bool testdev;	    /* --testdev: QEMU's pc-testdev (devices/pc_testdev.h) */
	struct cpu_config cpu; /* --cpu MODEL[,+FEAT,-FEAT] (config/cpu_config.h) */
	int nfw_cfg;	       /* --fw-cfg: files added to fw_cfg's directory, in order */
	struct fw_cfg_config fw_cfg[MACHINE_MAX_FW_CFG];
	enum machine_console console;
	char *console_path; /* MACHINE_CONSOLE_FILE */
	bool autostart;
};

/* kite run's defaults: 512 MiB, one vCPU, the console on COM1, no devices. */
void machine_config_init(struct machine_config *m);
/* A stored definition's defaults: the same, plus a balloon (as libvirt adds one, so that
 * `kite setmem` works on every machine). */
void machine_config_init_definition(struct machine_config *m);
/* Defaults that follow from other fields (current_memory = memory). Call after the last set. */
void machine_config_finish(struct machine_config *m);
void machine_config_free(struct machine_config *m);

/* Sets one field from its text, as an option or a JSON value gives it. Fields: name, uuid,
 * kernel, initrd, append, memory and current_memory (sizes, a bare number is MiB), vcpus,
 * console (serial|stdio|virtio|none|file:PATH), rng, balloon, autostart (on|off),
 * exit_device (port=N, N decimal or 0x hex, or off), testdev (on|off), cpu (host|max|base
 * with +FEAT/-FEAT words, config/cpu_config.h); disks, fw_cfg (--fw-cfg NAME,file=|string=)
 * and
 * nics add one device from its option grammar (--disk SPEC, --net SPEC); shares is refused
 * (no virtio-fs yet). `ctx` begins each error message ("--memory", "web.json: memory").
 * Returns 0 or -1 (reported). */
int machine_config_set(struct machine_config *m, const char *field, const char *value,
		       const char *ctx);
/* How the JSON form holds a field: the reader converts to text and calls machine_config_set. */
enum machine_field_type {
	FIELD_UNKNOWN,
	FIELD_STRING,
	FIELD_BOOL,  /* true/false, on/off as text */
	FIELD_SIZE,  /* a number of bytes, or a size string */
	FIELD_COUNT, /* an integer */
	FIELD_LIST,  /* a list of device objects (or option strings) */
};
enum machine_field_type machine_field_type(const char *field);

/* The rules every machine obeys, wherever it came from: a kernel, sizes and counts in range,
 * current_memory <= memory, distinct disk targets and paths, distinct MACs, NICs complete.
 * `where` begins messages. Returns 0 or -1 (reported). */
int machine_config_validate(const struct machine_config *m, const char *where);

/* What the VMM would find out by opening the files, found without KVM: the kernel and initrd
 * readable, each disk present, readable (and writable unless readonly=on) and attached once
 * (compared by inode, so two spellings of one file are caught). kite run, kite _fake-run and
 * kite create/define all call it. Returns 0 or -1 (reported). */
int machine_config_check_files(const struct machine_config *m);

/* Makes every path absolute (relative to the current directory), as a stored definition must
 * have them: `kite start` runs from anywhere. Returns 0 or -1. */
int machine_config_absolute_paths(struct machine_config *m);
/* True when every path is absolute; otherwise reports which one is not (for `where`). */
int machine_config_check_absolute(const struct machine_config *m, const char *where);
/* Gives a stored definition what it must have: a UUID, and a MAC for each NIC (random, in
 * QEMU's 52:54:00 prefix). Returns 0 or -1. */
int machine_config_fill_ids(struct machine_config *m);

/* Devices. add_disk takes over d->path (freed on failure too); an empty target gets the first
 * free vdX; the list stays in target order. Return 0 or -1 (reported, `ctx` first). */
int machine_config_add_disk(struct machine_config *m, struct disk_config *d, const char *ctx);
int machine_config_remove_disk(struct machine_config *m, const char *target_or_path);
int machine_config_add_nic(struct machine_config *m, const struct nic_config *n, const char *ctx);
/* By MAC, or by type or ifname when only one NIC matches. */
int machine_config_remove_nic(struct machine_config *m, const char *mac_type_or_ifname);

/* JSON, with every field written out; the reader is strict: an unknown field or a wrong type
 * is an error naming it. from_json starts from machine_config_init_definition's defaults and
 * validates. `where` begins messages. Return NULL / -1 (reported; m left empty). */
json_t *machine_config_to_json(const struct machine_config *m);
/* exit_device's text: "port=0xN", or "off". */
void machine_exit_device_format(const struct machine_config *m, char out[16]);
/* cpu's text ("max,-avx"); "host" for the default. */
#define MACHINE_CPU_TEXT_MAX 2048
void machine_cpu_format(const struct machine_config *m, char out[MACHINE_CPU_TEXT_MAX]);
int machine_config_from_json(json_t *root, const char *where, struct machine_config *m);

/* ---- disk_config.c ---- */
/* Parses a --disk SPEC. `ctx` begins messages. Returns 0 or -1 (d left empty). */
int disk_config_parse(const char *spec, struct disk_config *d, const char *ctx);
/* One key (path, format, target, readonly, cache, serial) from its text. */
int disk_config_set(struct disk_config *d, const char *key, const char *value, const char *ctx);
/* The --disk SPEC that parses back to d (commas in values doubled); NULL when out of memory. */
char *disk_config_format(const struct disk_config *d);
int disk_config_from_json(json_t *obj, struct disk_config *d, const char *ctx);
json_t *disk_config_to_json(const struct disk_config *d);
void disk_config_free(struct disk_config *d);
bool disk_target_valid(const char *target);

/* ---- nic_config.c ---- */
int nic_config_parse(const char *spec, struct nic_config *n, const char *ctx);
/* One key (type, ifname, mac, model, hostfwd: adds a rule) from its text. */
int nic_config_set(struct nic_config *n, const char *key, const char *value, const char *ctx);
/* The cross-key rules: a tap has an ifname, a user NIC none, hostfwd only on user. */
int nic_config_check(const struct nic_config *n, const char *ctx);
char *nic_config_format(const struct nic_config *n);
int nic_config_from_json(json_t *obj, struct nic_config *n, const char *ctx);
json_t *nic_config_to_json(const struct nic_config *n);
const char *nic_kind_name(enum nic_kind k); /* "user", "tap", "bridge", "network" */
/* "52:54:00:12:34:56" */
void mac_format(const uint8_t mac[6], char out[18]);
int mac_parse(const char *s, uint8_t mac[6]); /* 0, or -1 (not printed) */
/* "tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT". parse reports with `ctx`. */
int net_hostfwd_parse(const char *s, struct net_hostfwd *fwd, const char *ctx);
void net_hostfwd_format(const struct net_hostfwd *f, char *out, size_t size);
/* ---- nic_user.c ---- */
int nic_user_set_net(struct nic_config *n, const char *v, const char *ctx);
int nic_user_set_host(struct nic_config *n, const char *v, const char *ctx);
int nic_user_set_dns(struct nic_config *n, const char *v, const char *ctx);
int nic_user_set_dhcpstart(struct nic_config *n, const char *v, const char *ctx);
int nic_user_set_restrict(struct nic_config *n, const char *v, const char *ctx);
int nic_user_set_hostname(struct nic_config *n, const char *v, const char *ctx);
/* True when any of the options above is set. */
bool nic_user_any(const struct nic_config *n);
/* The addresses of user NIC number `index` (its default net is 10.0.(2 + index).0/24), checked
 * as QEMU checks them: host, dns and dhcpstart inside the net and distinct. 0 or -1. */
int nic_user_resolve(const struct nic_config *n, unsigned index, struct nic_user_addrs *a,
		     const char *ctx);
/* Appends the options set to a --net spec / sets them in a JSON NIC object. 0 or -1. */
int nic_user_format(const struct nic_config *n, char **spec);
int nic_user_to_json(const struct nic_config *n, json_t *o);
/* The default MAC of NIC `index`: 52:54:00:12:34:56 + index, as QEMU. */
void net_default_mac(unsigned index, uint8_t mac[6]);

/* ---- ids.c ---- */
/* [A-Za-z0-9._-], 1..64 characters, no leading dot. check reports what is wrong. */
int machine_name_check(const char *name);
bool machine_name_check_quiet(const char *name);
int uuid_generate_str(char out[37]);
bool uuid_valid(const char *s);
int mac_generate(uint8_t mac[6]);

#endif

/* kite setmem, setmaxmem, setvcpus, attach-disk, detach-disk, attach-interface,
 * detach-interface: changes to a definition (--config) and, where a running VM can take
 * them, to the VM itself (--live). As virsh: with neither flag, a running machine is changed
 * live and a shut off one in its definition. */
#include "cli/cmd_machine.h"
#include "mgmt/launch.h"
#include "mgmt/runstate.h"
#include "util/err.h"
#include "util/size.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	O_CONFIG = 1,
	O_LIVE,
	O_CURRENT,
	O_PERSISTENT,
	O_FORMAT,
	O_MODE,
	O_TARGETBUS,
	O_DRIVER,
	O_MAC,
	O_MODEL,
	O_TARGET,
	O_TYPE
};

#define SCOPE_OPTIONS                                                                              \
	{"config", no_argument, NULL, O_CONFIG}, {"live", no_argument, NULL, O_LIVE},              \
	    {"current", no_argument, NULL, O_CURRENT},                                             \
	    {"persistent", no_argument, NULL, O_CONFIG},

struct scope {
	bool config, live, current;
};

#define SCOPE_FLAGS(s)                                                                             \
	{O_CONFIG, &(s).config, NULL}, {O_LIVE, &(s).live, NULL},                                  \
	{                                                                                          \
		O_CURRENT, &(s).current, NULL                                                      \
	}

/* Decides what to change: returns 0 with s->config/s->live final, or -1. */
static int scope_resolve(struct machine_cli *cli, const char *name, struct scope *s)
{
	struct machine_status st;
	if (machine_status_get(&cli->dirs, name, false, &st) < 0)
		return -1;
	bool active = st.state == MACHINE_RUNNING || st.state == MACHINE_PAUSED;
	if (s->current && (s->config || s->live))
		return kite_error("%s: --current excludes --config and --live", cli->verb);
	if (!s->config && !s->live) {
		if (active)
			s->live = true;
		else
			s->config = true;
	}
	if (s->live && !active)
		return kite_error(
		    "machine %s is not running: use --config to change its definition", name);
	return 0;
}

typedef int (*def_edit_fn)(struct machine_config *def, void *arg);

/* Loads NAME under its lock, applies `fn`, validates and saves. */
static int modify_def(struct machine_cli *cli, const char *name, def_edit_fn fn, void *arg)
{
	if (machine_name_check(name) < 0)
		return -1;
	int lock = def_lock(&cli->dirs, name);
	if (lock < 0)
		return -1;
	struct machine_config def;
	int r = -1;
	if (machine_load(cli, name, &def) == 0) {
		if (fn(&def, arg) == 0)
			r = def_save(&cli->dirs, &def); /* validates */
		machine_config_free(&def);
	}
	close(lock);
	return r;
}

static int set_current_mem(struct machine_config *def, void *arg)
{
	uint64_t v = *(uint64_t *)arg;
	if (v > def->memory)
		return kite_error("%llu KiB is more than the machine's maximum memory (%llu KiB): "
				  "raise it with setmaxmem first",
				  (unsigned long long)(v >> 10),
				  (unsigned long long)(def->memory >> 10));
	def->current_memory = v;
	return 0;
}

static int set_max_mem(struct machine_config *def, void *arg)
{
	def->memory = *(uint64_t *)arg;
	if (def->current_memory > def->memory)
		def->current_memory = def->memory;
	return 0;
}

static int set_vcpus(struct machine_config *def, void *arg)
{
	return machine_config_set(def, "vcpus", arg, "setvcpus");
}

/* virsh reads a bare number as KiB (kite run -m: MiB); suffixes say which. */
static int parse_mem_arg(const char *verb, const char *s, uint64_t *out)
{
	if (parse_size(s, 1024, out) < 0 || *out == 0)
		return kite_error(
		    "%s: '%s' is not a size (a bare number is KiB, as in virsh; 512M, "
		    "2G)",
		    verb, s);
	return 0;
}

int cmd_setmem(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS SCOPE_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "setmem",
	    .usage = "usage: kite setmem NAME SIZE [--config] [--live] [--current]\n"
		     "Sets the memory the guest may use (live: through the balloon). A bare SIZE "
		     "is in KiB,\nas in virsh (kite run -m and kite create -m take MiB); "
		     "suffixes K, M, G (512M, 2G).\n"};
	struct scope s = {0};
	const struct machine_flag flags[] = {SCOPE_FLAGS(s), {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 2, 2, "NAME SIZE");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	uint64_t bytes;
	if (parse_mem_arg("setmem", argv[optind + 1], &bytes) < 0)
		return 1;
	struct machine_config def;
	if (machine_load(&cli, name, &def) < 0)
		return 1;
	uint64_t max = def.memory;
	machine_config_free(&def);
	if (scope_resolve(&cli, name, &s) < 0)
		return 1;
	if (s.live) {
		if (bytes > max) {
			kite_error("%llu KiB is more than the machine's maximum memory (%llu KiB)",
				   (unsigned long long)(bytes >> 10),
				   (unsigned long long)(max >> 10));
			return 1;
		}
		struct control_client *cc;
		if (machine_connect(&cli.dirs, name, &cc) < 0)
			return 1;
		int r = control_client_execute(cc, "balloon",
					       json_pack("{s:I}", "value", (json_int_t)bytes), NULL,
					       CONTROL_CLIENT_TIMEOUT_MS);
		if (r < 0) {
			if (!strcmp(control_client_error_class(cc), "DeviceNotActive"))
				kite_error("machine %s has no balloon device: its memory cannot "
					   "change live (%s)",
					   name, control_client_error(cc));
			else
				kite_error("machine %s: balloon: %s", name,
					   control_client_error(cc));
		}
		control_client_close(cc);
		if (r < 0)
			return 1;
	}
	if (s.config && modify_def(&cli, name, set_current_mem, &bytes) < 0)
		return 1;
	return 0;
}

int cmd_setmaxmem(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS SCOPE_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "setmaxmem",
				  .usage = "usage: kite setmaxmem NAME SIZE [--config]\n"
					   "Sets the machine's RAM size (its balloon ceiling) for "
					   "the next start. A bare SIZE\nis in KiB, as in virsh; "
					   "suffixes K, M, G (512M, 2G).\n"};
	struct scope s = {0};
	const struct machine_flag flags[] = {SCOPE_FLAGS(s), {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 2, 2, "NAME SIZE");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	uint64_t bytes;
	if (parse_mem_arg("setmaxmem", argv[optind + 1], &bytes) < 0)
		return 1;
	if (scope_resolve(&cli, name, &s) < 0)
		return 1;
	if (s.live) {
		kite_error("the maximum memory of running machine %s cannot change: use --config "
			   "(it takes effect at the next start)",
			   name);
		return 1;
	}
	return modify_def(&cli, name, set_max_mem, &bytes) < 0;
}

int cmd_setvcpus(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS SCOPE_OPTIONS{"maximum", no_argument, NULL, O_CONFIG},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "setvcpus",
				  .usage = "usage: kite setvcpus NAME N [--config]\n"
					   "Sets the number of vCPUs for the next start.\n"};
	struct scope s = {0};
	const struct machine_flag flags[] = {SCOPE_FLAGS(s), {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 2, 2, "NAME N");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	/* The count is checked by the same rule kite run and kite create apply. */
	struct machine_config check;
	machine_config_init(&check);
	if (machine_config_set(&check, "vcpus", argv[optind + 1], "setvcpus") < 0)
		return 1;
	if (scope_resolve(&cli, name, &s) < 0)
		return 1;
	if (s.live) {
		kite_error("machine %s is running: live vCPU hot-plug comes in a later issue; use "
			   "--config (it takes effect at the next start)",
			   name);
		return 1;
	}
	return modify_def(&cli, name, set_vcpus, argv[optind + 1]) < 0;
}

static int hotplug_refused(struct machine_cli *cli, const char *name, struct scope *s,
			   const char *what)
{
	if (scope_resolve(cli, name, s) < 0)
		return -1;
	if (s->live)
		return kite_error("machine %s is running: live %s hot-plug comes in a later issue; "
				  "use --config (it takes effect at the next start)",
				  name, what);
	return 0;
}

/* The new disk goes through the --disk grammar's keys; its path is made absolute from here,
 * and its file must exist and be no disk the machine has already (by inode), as for kite
 * create. */
static int do_attach_disk(struct machine_config *def, void *arg)
{
	struct disk_config *d = arg;
	struct disk_config copy = *d;
	if (!(copy.path = strdup(d->path)))
		return kite_error("out of memory");
	if (machine_config_add_disk(def, &copy, "attach-disk") < 0)
		return -1;
	return machine_config_absolute_paths(def) < 0 ? -1 : def_check_disks(def);
}

static int do_detach_disk(struct machine_config *def, void *arg)
{
	return machine_config_remove_disk(def, arg);
}

int cmd_attach_disk(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS SCOPE_OPTIONS{"subdriver", required_argument, NULL, O_FORMAT},
	    {"format", required_argument, NULL, O_FORMAT},
	    {"driver", required_argument, NULL, O_DRIVER},
	    {"mode", required_argument, NULL, O_MODE},
	    {"targetbus", required_argument, NULL, O_TARGETBUS},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "attach-disk",
	    .usage = "usage: kite attach-disk NAME SOURCE TARGET --config [--subdriver FORMAT]\n"
		     "         [--mode readonly]\n"
		     "Adds disk image SOURCE as TARGET (vdb, ...) to the definition.\n"};
	struct scope s = {0};
	const char *format = NULL, *mode = NULL, *bus = NULL, *driver = NULL;
	const struct machine_flag flags[] = {
	    SCOPE_FLAGS(s),	   {O_FORMAT, NULL, &format}, {O_DRIVER, NULL, &driver},
	    {O_MODE, NULL, &mode}, {O_TARGETBUS, NULL, &bus}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 3, 3, "NAME SOURCE TARGET");
	if (pr >= 0)
		return pr;
	if (mode && strcmp(mode, "readonly") && strcmp(mode, "shareable")) {
		kite_error("--mode %s: expected readonly", mode);
		return 1;
	}
	if (bus && strcmp(bus, "virtio")) {
		kite_error("--targetbus %s: only virtio disks exist here", bus);
		return 1;
	}
	const char *name = machine_resolve(&cli, argv[optind]);
	struct disk_config d = {0};
	int r = disk_config_set(&d, "path", argv[optind + 1], "attach-disk: SOURCE");
	if (r == 0)
		r = disk_config_set(&d, "target", argv[optind + 2], "attach-disk: TARGET");
	if (r == 0 && format)
		r = disk_config_set(&d, "format", format, "--subdriver");
	if (r == 0 && mode && !strcmp(mode, "readonly"))
		r = disk_config_set(&d, "readonly", "on", "--mode");
	if (r == 0)
		r = hotplug_refused(&cli, name, &s, "disk") < 0 ||
		    modify_def(&cli, name, do_attach_disk, &d) < 0;
	disk_config_free(&d);
	if (r)
		return 1;
	printf("Disk attached successfully\n\n");
	return 0;
}

int cmd_detach_disk(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS SCOPE_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "detach-disk",
				  .usage = "usage: kite detach-disk NAME TARGET --config\n"
					   "Removes the disk with TARGET (or SOURCE path) from the "
					   "definition.\n"};
	struct scope s = {0};
	const struct machine_flag flags[] = {SCOPE_FLAGS(s), {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 2, 2, "NAME TARGET");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	if (hotplug_refused(&cli, name, &s, "disk") < 0 ||
	    modify_def(&cli, name, do_detach_disk, argv[optind + 1]) < 0)
		return 1;
	printf("Disk detached successfully\n\n");
	return 0;
}

struct nic_args {
	const char *type, *ifname, *mac, *source;
};

/* The new NIC goes through the --net grammar's keys, and gets a MAC when it has none. */
static int do_attach_nic(struct machine_config *def, void *arg)
{
	struct nic_args *a = arg;
	struct nic_config n = {0};
	/* SOURCE is the bridge of a bridge NIC, the network of a network NIC, a tap's name. */
	const char *source_key = !strcmp(a->type, "bridge")    ? "bridge"
				 : !strcmp(a->type, "network") ? "network"
							       : "ifname";
	if (nic_config_set(&n, "type", a->type, "attach-interface: TYPE") < 0 ||
	    (a->source && nic_config_set(&n, source_key, a->source, "attach-interface") < 0) ||
	    (a->ifname && nic_config_set(&n, "ifname", a->ifname, "attach-interface") < 0) ||
	    (a->mac && nic_config_set(&n, "mac", a->mac, "--mac") < 0) ||
	    machine_config_add_nic(def, &n, "attach-interface") < 0)
		return -1;
	return machine_config_fill_ids(def);
}

static int do_detach_nic(struct machine_config *def, void *arg)
{
	struct nic_args *a = arg;
	if (a->mac)
		return machine_config_remove_nic(def, a->mac);
	return machine_config_remove_nic(def, a->type);
}

static const char *nic_type(const char *t)
{
	/* virsh calls a host tap device "ethernet". */
	return !strcmp(t, "ethernet") ? "tap" : t;
}

int cmd_attach_interface(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS SCOPE_OPTIONS{"mac", required_argument, NULL, O_MAC},
	    {"model", required_argument, NULL, O_MODEL},
	    {"target", required_argument, NULL, O_TARGET},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "attach-interface",
	    .usage =
		"usage: kite attach-interface NAME user|tap|bridge|network [SOURCE] --config\n"
		"         [--mac MAC] [--target IFNAME] [--model virtio]\n"
		"Adds a NIC to the definition: user (NAT), a host tap device (SOURCE: its name),\n"
		"a new tap on the host bridge SOURCE, or on the named network SOURCE.\n"};
	struct scope s = {0};
	struct nic_args a = {0};
	const char *model = NULL;
	const struct machine_flag flags[] = {SCOPE_FLAGS(s),
					     {O_MAC, NULL, &a.mac},
					     {O_TARGET, NULL, &a.ifname},
					     {O_MODEL, NULL, &model},
					     {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 2, 3, "NAME TYPE [SOURCE]");
	if (pr >= 0)
		return pr;
	if (model && strcmp(model, "virtio")) {
		kite_error("--model %s: only virtio NICs exist here", model);
		return 1;
	}
	int npos = argc - optind;
	const char *name = machine_resolve(&cli, argv[optind]);
	a.type = nic_type(argv[optind + 1]);
	if (npos == 3) {
		if (!strcmp(a.type, "user")) {
			kite_error("attach-interface: a user interface has no SOURCE");
			return 1;
		}
		a.source = argv[optind + 2];
	}
	if (hotplug_refused(&cli, name, &s, "interface") < 0 ||
	    modify_def(&cli, name, do_attach_nic, &a) < 0)
		return 1;
	printf("Interface attached successfully\n\n");
	return 0;
}

int cmd_detach_interface(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS SCOPE_OPTIONS{"mac", required_argument, NULL, O_MAC},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "detach-interface",
				  .usage = "usage: kite detach-interface NAME TYPE --config [--mac "
					   "MAC]\n"
					   "Removes a NIC (the only one of TYPE, or the one with "
					   "MAC) from the definition.\n"};
	struct scope s = {0};
	struct nic_args a = {0};
	const struct machine_flag flags[] = {
	    SCOPE_FLAGS(s), {O_MAC, NULL, &a.mac}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 2, 2, "NAME TYPE");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	a.type = nic_type(argv[optind + 1]);
	if (hotplug_refused(&cli, name, &s, "interface") < 0 ||
	    modify_def(&cli, name, do_detach_nic, &a) < 0)
		return 1;
	printf("Interface detached successfully\n\n");
	return 0;
}

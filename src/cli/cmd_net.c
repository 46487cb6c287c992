/* kite net-*: libvirt's named-network verbs over mgmt/network.h. */
#include "cli/cmd_machine.h"
#include "mgmt/fileutil.h"
#include "mgmt/network.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { O_NAME = 1, O_MODE, O_BRIDGE, O_IP, O_DHCP, O_ALL, O_DISABLE };

/* Runs fn on NAME's definition under its lock. Returns the exit code. */
static int with_network(struct machine_cli *cli, const char *name,
			int (*fn)(struct machine_cli *, struct network_config *, void *), void *arg)
{
	int lock = network_lock(&cli->dirs, name);
	if (lock < 0)
		return 1;
	struct network_config n;
	int r = network_load(&cli->dirs, name, &n) < 0 ? -1 : fn(cli, &n, arg);
	close(lock);
	return r < 0 ? 1 : 0;
}

static int one_name(struct machine_cli *cli, int argc, char **argv, const char *verb,
		    const char *summary)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	static char usage[400];
	snprintf(usage, sizeof(usage), "usage: kite %s NETWORK\n%s\n", verb, summary);
	cli->verb = verb;
	cli->usage = usage;
	const struct machine_flag flags[] = {{0, NULL, NULL}};
	return machine_parse(cli, argc, argv, opts, flags, 1, 1, "NETWORK");
}

int cmd_net_define(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"name", required_argument, NULL, O_NAME},
	    {"mode", required_argument, NULL, O_MODE},
	    {"bridge", required_argument, NULL, O_BRIDGE},
	    {"ip", required_argument, NULL, O_IP},
	    {"dhcp", required_argument, NULL, O_DHCP},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "net-define",
	    .usage =
		"usage: kite net-define FILE\n"
		"       kite net-define --name NAME --mode hostonly|nat|internal|bridge\n"
		"                       [--bridge BR] [--ip ADDR/BITS|none] [--dhcp "
		"START,END|off]\n"
		"Defines a network from a JSON file (kite net-dumpjson's form) or from options.\n"
		"hostonly: a host bridge at 192.168.56.1/24 handing out 192.168.56.101 on by\n"
		"DHCP (VirtualBox's); internal: a bridge without address (guests see only each\n"
		"other); bridge: the existing host bridge --bridge BR; nat: libvirt's default\n"
		"network, 192.168.122.1/24 with DHCP and DNS, masqueraded to the host's uplink.\n"};
	const char *name = NULL, *mode = NULL, *bridge = NULL, *ip = NULL, *dhcp = NULL;
	const struct machine_flag flags[] = {{O_NAME, NULL, &name},	{O_MODE, NULL, &mode},
					     {O_BRIDGE, NULL, &bridge}, {O_IP, NULL, &ip},
					     {O_DHCP, NULL, &dhcp},	{0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 0, 1, "FILE");
	if (pr >= 0)
		return pr;
	struct network_config n;
	const char *file = optind < argc ? argv[optind] : NULL;
	if (file && (name || mode || bridge || ip || dhcp)) {
		kite_error("net-define: give a FILE or options, not both");
		return 1;
	}
	if (file) {
		char *data;
		size_t len;
		if (read_file_all(file, 64 << 10, &data, &len) < 0) {
			kite_error_errno(errno, "net-define: cannot read %s", file);
			return 1;
		}
		json_error_t je;
		json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
		free(data);
		if (!root) {
			kite_error("%s: line %d: %s", file, je.line, je.text);
			return 1;
		}
		int r = network_config_from_json(root, file, &n);
		json_decref(root);
		if (r < 0)
			return 1;
	} else {
		if (!name || !mode) {
			kite_error("net-define: --name and --mode are required without a FILE");
			return 1;
		}
		memset(&n, 0, sizeof(n));
		const char *fields[][2] = {
		    {"name", name}, {"mode", mode}, {"bridge", bridge}, {"ip", ip}, {"dhcp", dhcp}};
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (fields[i][1] &&
			    network_config_set(&n, fields[i][0], fields[i][1], "net-define") < 0)
				return 1;
		if (network_config_check(&n, "net-define") < 0)
			return 1;
	}
	int lock = network_lock(&cli.dirs, n.name);
	if (lock < 0)
		return 1;
	/* Redefining keeps the network's UUID and bridge unless the new text gives them. */
	struct network_config old;
	bool existed = network_load_quiet(&cli.dirs, n.name, &old) == 0;
	if (existed) {
		if (!n.uuid[0])
			memcpy(n.uuid, old.uuid, sizeof(n.uuid));
		if (!n.bridge[0] && n.mode == old.mode)
			memcpy(n.bridge, old.bridge, sizeof(n.bridge));
		if (network_is_active(&cli.dirs, &old)) {
			kite_error("network %s is active: kite net-destroy %s before redefining it",
				   n.name, n.name);
			close(lock);
			return 1;
		}
	}
	int r = network_define(&cli.dirs, &n);
	close(lock);
	if (r < 0)
		return 1;
	if (file)
		printf("Network %s defined from %s\n\n", n.name, file);
	else
		printf("Network %s defined\n\n", n.name);
	return 0;
}

int cmd_net_list(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"all", no_argument, NULL, O_ALL}, {NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "net-list",
				  .usage =
				      "usage: kite net-list [--all]\n"
				      "Lists the active networks (--all: inactive ones too).\n"};
	bool all = false;
	const struct machine_flag flags[] = {{O_ALL, &all, NULL}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 0, 0, "");
	if (pr >= 0)
		return pr;
	char **names;
	int count = network_list_names(&cli.dirs, &names);
	if (count < 0)
		return 1;
	static const char *const header[] = {"Name", "State", "Autostart", "Persistent"};
	struct table *t = table_new(4, header);
	for (int i = 0; t && i < count; i++) {
		struct network_config n;
		int lock = network_lock(&cli.dirs, names[i]);
		bool ok = lock >= 0 && network_load(&cli.dirs, names[i], &n) == 0;
		bool active = ok && network_is_active(&cli.dirs, &n);
		if (lock >= 0)
			close(lock);
		if (!ok) {
			const char *row[] = {names[i], "corrupt", "-", "yes"};
			table_add(t, row);
		} else if (active || all) {
			const char *row[] = {n.name, active ? "active" : "inactive",
					     n.autostart ? "yes" : "no", "yes"};
			table_add(t, row);
		}
	}
	def_free_names(names, count);
	if (!t) {
		kite_error("out of memory");
		return 1;
	}
	table_print(t, stdout);
	table_free(t);
	return 0;
}

static int info(struct machine_cli *cli, struct network_config *n, void *arg)
{
	char ip[24] = "-", range[40] = "-";
	if (n->addr)
		network_ip_text(n, ip);
	if (n->dhcp) {
		char a[16], b[16];
		network_addr_text(n->dhcp_start, a);
		network_addr_text(n->dhcp_end, b);
		snprintf(range, sizeof(range), "%s - %s", a, b);
	}
	printf("Name:           %s\n"
	       "UUID:           %s\n"
	       "Active:         %s\n"
	       "Persistent:     yes\n"
	       "Autostart:      %s\n"
	       "Bridge:         %s\n"
	       "Mode:           %s\n"
	       "Address:        %s\n"
	       "DHCP range:     %s\n\n",
	       n->name, n->uuid, network_is_active(&cli->dirs, n) ? "yes" : "no",
	       n->autostart ? "yes" : "no", n->bridge, network_mode_name(n->mode), ip, range);
	return 0;
}

int cmd_net_info(int argc, char **argv)
{
	struct machine_cli cli = {0};
	int pr = one_name(&cli, argc, argv, "net-info", "Prints a network's definition and state.");
	return pr >= 0 ? pr : with_network(&cli, argv[optind], info, NULL);
}

static int dumpjson(struct machine_cli *cli, struct network_config *n, void *arg)
{
	json_t *root = network_config_to_json(n);
	if (!root || json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
		return kite_error("out of memory");
	json_decref(root);
	printf("\n");
	return 0;
}

int cmd_net_dumpjson(int argc, char **argv)
{
	struct machine_cli cli = {0};
	int pr = one_name(&cli, argc, argv, "net-dumpjson",
			  "Prints a network's definition (what net-define FILE reads).");
	return pr >= 0 ? pr : with_network(&cli, argv[optind], dumpjson, NULL);
}

static int start(struct machine_cli *cli, struct network_config *n, void *arg)
{
	if (network_is_active(&cli->dirs, n))
		return kite_error("network %s is already active", n->name);
	if (network_start(&cli->dirs, n) < 0)
		return -1;
	printf("Network %s started\n\n", n->name);
	return 0;
}

int cmd_net_start(int argc, char **argv)
{
	struct machine_cli cli = {0};
	int pr = one_name(&cli, argc, argv, "net-start",
			  "Starts a network: its bridge, the host's address and DHCP server.");
	return pr >= 0 ? pr : with_network(&cli, argv[optind], start, NULL);
}

static int destroy(struct machine_cli *cli, struct network_config *n, void *arg)
{
	bool active = network_is_active(&cli->dirs, n);
	/* Not active may still mean leftovers of a start that was killed: remove them too. */
	if (network_stop(&cli->dirs, n) < 0)
		return -1;
	if (!active)
		return kite_error("network %s is not active", n->name);
	printf("Network %s destroyed\n\n", n->name);
	return 0;
}

int cmd_net_destroy(int argc, char **argv)
{
	struct machine_cli cli = {0};
	int pr = one_name(&cli, argc, argv, "net-destroy",
			  "Stops a network: its DHCP server and the bridge kite made.");
	return pr >= 0 ? pr : with_network(&cli, argv[optind], destroy, NULL);
}

static int undefine(struct machine_cli *cli, struct network_config *n, void *arg)
{
	if (network_undefine(&cli->dirs, n->name) < 0)
		return -1;
	printf("Network %s has been undefined\n\n", n->name);
	return 0;
}

int cmd_net_undefine(int argc, char **argv)
{
	struct machine_cli cli = {0};
	int pr =
	    one_name(&cli, argc, argv, "net-undefine", "Removes an inactive network's definition.");
	return pr >= 0 ? pr : with_network(&cli, argv[optind], undefine, NULL);
}

static int autostart(struct machine_cli *cli, struct network_config *n, void *arg)
{
	bool on = *(bool *)arg;
	n->autostart = on;
	if (network_save(&cli->dirs, n) < 0)
		return -1;
	printf("Network %s %s as autostarted\n\n", n->name, on ? "marked" : "unmarked");
	return 0;
}

int cmd_net_autostart(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"disable", no_argument, NULL, O_DISABLE}, {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "net-autostart",
	    .usage = "usage: kite net-autostart [--disable] NETWORK\n"
		     "Marks a network to start at host boot (--disable: unmarks it).\n"};
	bool disable = false;
	const struct machine_flag flags[] = {{O_DISABLE, &disable, NULL}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 1, 1, "NETWORK");
	if (pr >= 0)
		return pr;
	bool on = !disable;
	return with_network(&cli, argv[optind], autostart, &on);
}

static int leases(struct machine_cli *cli, struct network_config *n, void *arg)
{
	struct network_lease *l;
	int count = network_leases(&cli->dirs, n, &l);
	if (count < 0)
		return -1;
	static const char *const header[] = {"Expiry Time", "MAC address", "Protocol",
					     "IP address",  "Hostname",	   "Client ID or DUID"};
	struct table *t = table_new(6, header);
	for (int i = 0; t && i < count; i++) {
		char when[32] = "never", ip[24];
		time_t e = (time_t)l[i].expiry;
		struct tm tm;
		if (e && localtime_r(&e, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(ip, sizeof(ip), "%s/%d", l[i].ip, n->prefix);
		const char *host =
		    strcmp(l[i].hostname, "*") && l[i].hostname[0] ? l[i].hostname : "-";
		const char *id =
		    strcmp(l[i].client_id, "*") && l[i].client_id[0] ? l[i].client_id : "-";
		const char *row[] = {when, l[i].mac, "ipv4", ip, host, id};
		table_add(t, row);
	}
	free(l);
	if (!t)
		return kite_error("out of memory");
	table_print(t, stdout);
	table_free(t);
	return 0;
}

int cmd_net_dhcp_leases(int argc, char **argv)
{
	struct machine_cli cli = {0};
	int pr = one_name(&cli, argc, argv, "net-dhcp-leases",
			  "Lists the addresses the network's DHCP server has handed out.");
	return pr >= 0 ? pr : with_network(&cli, argv[optind], leases, NULL);
}

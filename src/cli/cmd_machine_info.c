/* kite list, dominfo, domstate, domblklist, domiflist: reading machines, as virsh prints
 * them. */
#include "cli/cmd_machine.h"
#include "mgmt/control_client.h"
#include "mgmt/fileutil.h"
#include "mgmt/launch.h"
#include "mgmt/runstate.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	O_ALL = 1,
	O_INACTIVE,
	O_NAME,
	O_UUID,
	O_RUNNING,
	O_SHUTOFF,
	O_PAUSED,
	O_OTHER,
	O_AUTOSTART,
	O_NO_AUTOSTART,
	O_OUTPUT,
	O_DETAILS,
	O_REASON
};

static int parse_output(const char *v, bool *json)
{
	if (!strcmp(v, "json"))
		*json = true;
	else if (!strcmp(v, "table") || !strcmp(v, "text"))
		*json = false;
	else
		return kite_error("--output %s: expected json or table", v);
	return 0;
}

static int print_json(json_t *j)
{
	if (!j)
		return kite_error("out of memory");
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text)
		return kite_error("out of memory");
	puts(text);
	free(text);
	return 0;
}

struct list_order {
	char *name;
	pid_t pid; /* 0 when not running */
};

static int cmp_order(const void *a, const void *b)
{
	const struct list_order *x = a, *y = b;
	if ((x->pid > 0) != (y->pid > 0))
		return x->pid > 0 ? -1 : 1;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* virsh's order: running machines by Id, then the others by name. */
static int sort_as_virsh(struct machine_cli *cli, char **names, int n)
{
	struct list_order *o = calloc((size_t)n + 1, sizeof(*o));
	if (!o)
		return kite_error("out of memory");
	for (int i = 0; i < n; i++) {
		struct machine_status st;
		o[i].name = names[i];
		if (machine_status_get(&cli->dirs, names[i], false, &st) == 0 &&
		    st.state == MACHINE_RUNNING)
			o[i].pid = st.pid;
	}
	qsort(o, (size_t)n, sizeof(*o), cmp_order);
	for (int i = 0; i < n; i++)
		names[i] = o[i].name;
	free(o);
	return 0;
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"all", no_argument, NULL, O_ALL},
	    {"inactive", no_argument, NULL, O_INACTIVE},
	    {"name", no_argument, NULL, O_NAME},
	    {"uuid", no_argument, NULL, O_UUID},
	    {"state-running", no_argument, NULL, O_RUNNING},
	    {"state-shutoff", no_argument, NULL, O_SHUTOFF},
	    {"state-paused", no_argument, NULL, O_PAUSED},
	    {"state-other", no_argument, NULL, O_OTHER},
	    {"autostart", no_argument, NULL, O_AUTOSTART},
	    {"no-autostart", no_argument, NULL, O_NO_AUTOSTART},
	    {"output", required_argument, NULL, O_OUTPUT},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "list",
	    .usage = "usage: kite list [--all] [--inactive] [--name|--uuid] [--state-running]\n"
		     "         [--state-shutoff] [--state-paused] [--state-other] [--autostart]\n"
		     "         [--no-autostart] [--output=json]\n"
		     "Lists running machines (--all: every defined one). --state-other selects\n"
		     "crashed machines. A definition that is corrupt on disk is listed as such.\n"};
	bool all = false, inactive = false, names_only = false, uuids_only = false, json = false;
	bool f_run = false, f_off = false, f_paused = false, f_other = false;
	bool only_auto = false, only_noauto = false;
	const char *output = NULL;
	const struct machine_flag flags[] = {{O_ALL, &all, NULL},
					     {O_INACTIVE, &inactive, NULL},
					     {O_NAME, &names_only, NULL},
					     {O_UUID, &uuids_only, NULL},
					     {O_RUNNING, &f_run, NULL},
					     {O_SHUTOFF, &f_off, NULL},
					     {O_PAUSED, &f_paused, NULL},
					     {O_OTHER, &f_other, NULL},
					     {O_AUTOSTART, &only_auto, NULL},
					     {O_NO_AUTOSTART, &only_noauto, NULL},
					     {O_OUTPUT, NULL, &output},
					     {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 0, 0, "no arguments");
	if (pr >= 0)
		return pr;
	if (output && parse_output(output, &json) < 0)
		return 1;
	int autostart_filter = only_auto ? 1 : only_noauto ? 0 : -1;
	bool state_filter = f_run || f_off || f_paused || f_other;
	char **names;
	int n = def_list_names(&cli.dirs, &names);
	if (n < 0)
		return 1;
	if (sort_as_virsh(&cli, names, n) < 0) {
		def_free_names(names, n);
		return 1;
	}
	static const char *const header[] = {"Id", "Name", "State"};
	struct table *t = table_new(3, header);
	json_t *arr = json_array();
	int rc = t && arr ? 0 : 1;
	for (int i = 0; i < n && rc == 0; i++) {
		struct machine_config def;
		char *why = NULL;
		enum def_load_result lr = def_load(&cli.dirs, names[i], true, &def, &why);
		if (lr == DEF_ERROR) {
			rc = 1;
			break;
		}
		if (lr == DEF_MISSING) /* undefined meanwhile */
			continue;
		struct machine_status st;
		if (machine_status_get(&cli.dirs, names[i], true, &st) < 0) {
			if (lr == DEF_OK)
				machine_config_free(&def);
			free(why);
			rc = 1;
			break;
		}
		bool active = st.state == MACHINE_RUNNING || st.state == MACHINE_PAUSED;
		bool corrupt = lr == DEF_CORRUPT;
		const char *state = machine_state_name(st.state);
		if (corrupt) {
			/* Never dropped silently: a warning whatever the filters. */
			kite_warn("definition of %s is corrupt: %s", names[i], why ? why : "?");
			if (!active)
				state = "corrupt";
		}
		bool show;
		if (state_filter)
			show = (f_run && st.state == MACHINE_RUNNING) ||
			       (f_paused && st.state == MACHINE_PAUSED) ||
			       (f_off && st.state == MACHINE_SHUTOFF && !corrupt) ||
			       (f_other && (st.state == MACHINE_CRASHED || (corrupt && !active)));
		else if (inactive)
			show = !active;
		else
			show = all || active;
		if (show && autostart_filter >= 0)
			show = !corrupt && def.autostart == (autostart_filter == 1);
		if (show) {
			char id[16] = "-";
			if (active)
				snprintf(id, sizeof(id), "%d", (int)st.pid);
			if (json) {
				json_t *o = json_pack(
				    "{s:s, s:s, s:o, s:s?, s:o}", "name", names[i], "state", state,
				    "id", active ? json_integer(st.pid) : json_null(), "uuid",
				    corrupt ? NULL : def.uuid, "autostart",
				    corrupt ? json_null() : json_boolean(def.autostart));
				if (o && st.state == MACHINE_CRASHED)
					json_object_set_new(o, "reason", json_string(st.reason));
				if (o && corrupt)
					json_object_set_new(o, "corrupt",
							    json_string(why ? why : "?"));
				if (!o || json_array_append_new(arr, o))
					rc = 1;
			} else if (names_only) {
				printf("%s\n", names[i]);
			} else if (uuids_only) {
				if (!corrupt)
					printf("%s\n", def.uuid);
			} else {
				const char *row[] = {id, names[i], state};
				if (table_add(t, row) < 0)
					rc = 1;
			}
		}
		if (lr == DEF_OK)
			machine_config_free(&def);
		free(why);
	}
	def_free_names(names, n);
	if (rc == 0) {
		if (json) {
			rc = print_json(json_incref(arr)) < 0;
		} else if (!names_only && !uuids_only) {
			table_print(t, stdout);
			putchar('\n');
		} else {
			putchar('\n');
		}
	}
	json_decref(arr);
	table_free(t);
	return rc;
}

/* CPU time the VMM process used (utime + stime from /proc), in seconds. */
static double cpu_seconds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *data;
	if (read_file_all(path, 4096, &data, NULL) < 0)
		return 0;
	double secs = 0;
	char *p = strrchr(data, ')');
	if (p) {
		char *save = NULL, *tok = strtok_r(p + 1, " ", &save);
		unsigned long long ut = 0, stime = 0;
		for (int field = 3; tok; field++, tok = strtok_r(NULL, " ", &save)) {
			if (field == 14)
				ut = strtoull(tok, NULL, 10);
			if (field == 15) {
				stime = strtoull(tok, NULL, 10);
				break;
			}
		}
		long hz = sysconf(_SC_CLK_TCK);
		secs = (double)(ut + stime) / (double)(hz > 0 ? hz : 100);
	}
	free(data);
	return secs;
}

int cmd_dominfo(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "dominfo",
				  .usage =
				      "usage: kite dominfo NAME\n"
				      "Basic information about a machine, as virsh dominfo.\n"};
	int pr = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	struct machine_config def;
	if (machine_load(&cli, name, &def) < 0)
		return 1;
	struct machine_status st;
	if (machine_status_get(&cli.dirs, name, true, &st) < 0) {
		machine_config_free(&def);
		return 1;
	}
	bool active = st.state == MACHINE_RUNNING || st.state == MACHINE_PAUSED;
	uint64_t used = def.current_memory;
	if (active) {
		struct control_client *cc;
		if (machine_connect(&cli.dirs, name, &cc) == 0) {
			json_t *ret = NULL;
			if (control_client_execute(cc, "query-balloon", NULL, &ret, 2000) == 0) {
				json_t *a = json_object_get(ret, "actual");
				if (json_is_integer(a) && json_integer_value(a) > 0)
					used = (uint64_t)json_integer_value(a);
			}
			json_decref(ret);
			control_client_close(cc);
		}
	}
	if (active)
		printf("%-15s %d\n", "Id:", (int)st.pid);
	else
		printf("%-15s %s\n", "Id:", "-");
	printf("%-15s %s\n", "Name:", def.name);
	printf("%-15s %s\n", "UUID:", def.uuid);
	printf("%-15s %s\n", "OS Type:", "hvm");
	printf("%-15s %s\n", "State:", machine_state_name(st.state));
	if (st.state == MACHINE_CRASHED)
		printf("%-15s %s\n", "Reason:", st.reason);
	printf("%-15s %u\n", "CPU(s):", def.vcpus);
	if (active)
		printf("%-15s %.1fs\n", "CPU time:", cpu_seconds(st.pid));
	printf("%-15s %llu KiB\n", "Max memory:", (unsigned long long)(def.memory >> 10));
	printf("%-15s %llu KiB\n", "Used memory:", (unsigned long long)(used >> 10));
	printf("%-15s %s\n", "Persistent:", "yes");
	printf("%-15s %s\n", "Autostart:", def.autostart ? "enable" : "disable");
	char save[PATH_MAX];
	bool managed =
	    managed_save_path(&cli.dirs, name, save, sizeof(save)) == 0 && access(save, F_OK) == 0;
	printf("%-15s %s\n", "Managed save:", managed ? "yes" : "no");
	printf("%-15s %s\n", "Security model:", "none");
	printf("%-15s %s\n", "Security DOI:", "0");
	putchar('\n');
	machine_config_free(&def);
	return 0;
}

int cmd_domstate(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"reason", no_argument, NULL, O_REASON}, {NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "domstate",
				  .usage = "usage: kite domstate NAME [--reason]\n"
					   "Prints running, paused, shut off or crashed.\n"};
	bool reason = false;
	const struct machine_flag flags[] = {{O_REASON, &reason, NULL}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	/* The machine must be defined; a corrupt definition still has a state. */
	struct machine_config def;
	char *why = NULL;
	enum def_load_result lr = def_load(&cli.dirs, name, true, &def, &why);
	free(why);
	if (lr == DEF_MISSING) {
		kite_error("no machine named '%s' (kite list --all shows them)", name);
		return 1;
	}
	if (lr == DEF_ERROR)
		return 1;
	if (lr == DEF_OK)
		machine_config_free(&def);
	struct machine_status st;
	if (machine_status_get(&cli.dirs, name, true, &st) < 0)
		return 1;
	const char *s = machine_state_name(st.state);
	if (!reason)
		printf("%s\n\n", s);
	else if (st.state == MACHINE_CRASHED || (st.state == MACHINE_SHUTOFF && st.reason[0]))
		printf("%s (%s)\n\n", s, st.reason);
	else
		printf("%s (%s)\n\n", s,
		       st.state == MACHINE_RUNNING  ? "booted"
		       : st.state == MACHINE_PAUSED ? "user"
						    : "unknown");
	return 0;
}

/* The end of domblklist and domiflist: the table (or, with --output=json, the definition's
 * `key` list). Frees `t` and `def`; returns the exit code. */
static int print_devices(struct machine_config *def, const char *key, bool json, struct table *t,
			 int rc)
{
	if (rc == 0 && json) {
		json_t *j = machine_config_to_json(def);
		rc = print_json(j ? json_incref(json_object_get(j, key)) : NULL) < 0;
		json_decref(j);
	} else if (rc == 0) {
		table_print(t, stdout);
		putchar('\n');
	}
	table_free(t);
	machine_config_free(def);
	return rc;
}

int cmd_domblklist(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"details", no_argument, NULL, O_DETAILS},
	    {"inactive", no_argument, NULL, O_INACTIVE},
	    {"output", required_argument, NULL, O_OUTPUT},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "domblklist",
				  .usage =
				      "usage: kite domblklist NAME [--details] [--output=json]\n"
				      "Lists a machine's disks.\n"};
	bool details = false, json = false, inactive = false;
	const char *output = NULL;
	const struct machine_flag flags[] = {{O_DETAILS, &details, NULL},
					     {O_INACTIVE, &inactive, NULL},
					     {O_OUTPUT, NULL, &output},
					     {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	if (output && parse_output(output, &json) < 0)
		return 1;
	struct machine_config def;
	if (machine_load(&cli, machine_resolve(&cli, argv[optind]), &def) < 0)
		return 1;
	static const char *const h1[] = {"Target", "Source"};
	static const char *const h2[] = {"Type", "Device", "Target", "Source"};
	struct table *t = details ? table_new(4, h2) : table_new(2, h1);
	int rc = t ? 0 : 1;
	for (int i = 0; t && i < def.ndisks; i++) {
		const char *r1[] = {def.disks[i].target, def.disks[i].path};
		const char *r2[] = {"file", "disk", def.disks[i].target, def.disks[i].path};
		if (table_add(t, details ? r2 : r1) < 0)
			rc = 1;
	}
	return print_devices(&def, "disks", json, t, rc);
}

int cmd_domiflist(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"inactive", no_argument, NULL, O_INACTIVE},
	    {"output", required_argument, NULL, O_OUTPUT},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "domiflist",
				  .usage = "usage: kite domiflist NAME [--output=json]\n"
					   "Lists a machine's network interfaces.\n"};
	bool json = false, inactive = false;
	const char *output = NULL;
	const struct machine_flag flags[] = {
	    {O_INACTIVE, &inactive, NULL}, {O_OUTPUT, NULL, &output}, {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	if (output && parse_output(output, &json) < 0)
		return 1;
	struct machine_config def;
	if (machine_load(&cli, machine_resolve(&cli, argv[optind]), &def) < 0)
		return 1;
	static const char *const h[] = {"Interface", "Type", "Source", "Model", "MAC"};
	struct table *t = table_new(5, h);
	int rc = t ? 0 : 1;
	for (int i = 0; t && i < def.nnics; i++) {
		const struct nic_config *n = &def.nics[i];
		char mac[18];
		mac_format(n->mac, mac);
		const char *source = n->kind == NIC_USER      ? "nat"
				     : n->kind == NIC_BRIDGE  ? n->bridge
				     : n->kind == NIC_NETWORK ? n->network
							      : "-";
		const char *row[] = {n->ifname[0] ? n->ifname : "-", nic_kind_name(n->kind), source,
				     "virtio", mac};
		if (table_add(t, row) < 0)
			rc = 1;
	}
	return print_devices(&def, "nics", json, t, rc);
}

/* domid, domuuid, domname: one field of a machine named any way (virsh's trio). */
static int print_field(int argc, char **argv, const char *verb, const char *usage, char field)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = verb, .usage = usage};
	int pr = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME, ID or UUID");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	struct machine_config def;
	if (machine_load(&cli, name, &def) < 0)
		return 1;
	struct machine_status st;
	int rc = machine_status_get(&cli.dirs, name, false, &st) < 0;
	if (rc == 0) {
		bool active = st.state == MACHINE_RUNNING || st.state == MACHINE_PAUSED;
		if (field == 'i' && active)
			printf("%d\n\n", (int)st.pid);
		else if (field == 'i')
			printf("-\n\n");
		else
			printf("%s\n\n", field == 'u' ? def.uuid : def.name);
	}
	machine_config_free(&def);
	return rc;
}

int cmd_domid(int argc, char **argv)
{
	return print_field(argc, argv, "domid",
			   "usage: kite domid NAME|UUID\nPrints a machine's Id ('-' when it is "
			   "not running).\n",
			   'i');
}

int cmd_domuuid(int argc, char **argv)
{
	return print_field(argc, argv, "domuuid",
			   "usage: kite domuuid NAME|ID\nPrints a machine's UUID.\n", 'u');
}

int cmd_domname(int argc, char **argv)
{
	return print_field(argc, argv, "domname",
			   "usage: kite domname ID|UUID\nPrints a machine's name.\n", 'n');
}

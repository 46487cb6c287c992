/* kite migrate, migrate-incoming, domjobinfo, domjobabort: moving a running machine to
 * another kite (machine/migrate.h is the stream), as virsh's verbs of those names. */
#include "cli/cmd_machine.h"
#include "mgmt/def_store.h"
#include "mgmt/launch.h"
#include "mgmt/runstate.h"
#include "util/err.h"
#include "machine/migrate.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	O_LIVE = 2000,
	O_OFFLINE,
	O_PERSISTENT,
	O_UNDEFINESOURCE,
	O_MAX_DOWNTIME,
};

static bool is_active(const struct machine_status *st)
{
	return st->state == MACHINE_RUNNING || st->state == MACHINE_PAUSED;
}

static int parse_ms(const char *text, uint32_t *ms)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (errno || end == text || *end || v == 0 || v > 3600000 || text[0] == '-')
		return kite_error("--max-downtime %s: want milliseconds, 1 to 3600000", text);
	*ms = (uint32_t)v;
	return 0;
}

/* --offline: the definition alone, sent from here. */
static int migrate_offline(const struct machine_config *def, const char *dest)
{
	struct migrate_job job;
	migrate_job_init(&job);
	struct migrate_params p = {.offline = true};
	snprintf(p.dest, sizeof(p.dest), "%s", dest);
	struct migrate_source src = {.def = def};
	int r = migrate_send(&job, &src, &p);
	pthread_mutex_destroy(&job.lock);
	return r;
}

/* Asks the VMM to migrate, then waits for its MIGRATION event. */
static int migrate_live(struct machine_cli *cli, const char *name, const char *dest, bool live,
			uint32_t downtime)
{
	struct control_client *c;
	if (machine_connect(&cli->dirs, name, &c) < 0)
		return -1;
	json_t *args = json_pack("{s:s, s:b, s:I}", "uri", dest, "live", live, "max-downtime",
				 (json_int_t)downtime);
	if (control_client_execute(c, "migrate", args, NULL, CONTROL_CLIENT_TIMEOUT_MS) < 0) {
		kite_error("machine %s: %s", name, control_client_error(c));
		control_client_close(c);
		return -1;
	}
	const char *status = NULL;
	json_t *ev = NULL;
	while (!status) {
		if (control_client_next_event(c, 1000, &ev) < 0) {
			struct machine_status st;
			if (machine_status_get(&cli->dirs, name, false, &st) == 0 &&
			    !is_active(&st)) {
				control_client_close(c);
				return kite_error("machine %s ended during the migration", name);
			}
			continue;
		}
		if (!strcmp(json_string_value(json_object_get(ev, "event")) ?: "", "MIGRATION"))
			status = json_string_value(
			    json_object_get(json_object_get(ev, "data"), "status"));
		if (!status)
			json_decref(ev);
	}
	int r = 0;
	if (strcmp(status, "completed")) {
		json_t *q = NULL;
		const char *why = NULL;
		if (control_client_execute(c, "query-migrate", NULL, &q,
					   CONTROL_CLIENT_TIMEOUT_MS) == 0)
			why = json_string_value(json_object_get(q, "error-desc"));
		const char *w = why && !strncmp(why, "kite: error: ", 13) ? why + 13 : why;
		r = kite_error("machine %s: migration %s%s%s; it runs on here", name, status,
			       w ? ": " : "", w ? w : "");
		json_decref(q);
	}
	json_decref(ev);
	control_client_close(c);
	if (r == 0 && machine_wait_stopped(&cli->dirs, name, 30000) != 0)
		kite_warn("machine %s: migrated, but its VMM here has not ended yet", name);
	return r;
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
	    MACHINE_COMMON_OPTIONS{"live", no_argument, NULL, O_LIVE},
	    {"offline", no_argument, NULL, O_OFFLINE},
	    {"persistent", no_argument, NULL, O_PERSISTENT},
	    {"undefinesource", no_argument, NULL, O_UNDEFINESOURCE},
	    {"max-downtime", required_argument, NULL, O_MAX_DOWNTIME},
	    {NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "migrate",
	    .usage =
		"usage: kite migrate [--live] [--offline] [--persistent] [--undefinesource]\n"
		"                    [--max-downtime MS] NAME DEST\n"
		"Moves machine NAME to the kite waiting at DEST (`kite migrate-incoming DEST`\n"
		"there): tcp:HOST:PORT or unix:PATH, or ssh://[user@]host[:port][/STATE_DIR],\n"
		"where ssh runs `kite migrate-incoming [--state-dir STATE_DIR] stdio` (env\n"
		"KITE_SSH_COMMAND: the ssh client's command; KITE_REMOTE_KITE: kite's path "
		"there).\n"
		"A running machine is sent with its RAM and device state, paused meanwhile; with\n"
		"--live it runs on while its RAM is copied and stops only for the last pages,\n"
		"which must fit --max-downtime MS (default 50) at the measured bandwidth (or\n"
		"after 30 rounds). Disks stay where they are (shared storage: the same paths\n"
		"there); their locks pass to the destination once it has everything. The machine\n"
		"ends shut off here; with --undefinesource its definition is removed too.\n"
		"--offline sends the definition only. --persistent is accepted: kite's\n"
		"definitions always persist. Any failure before the destination runs it leaves\n"
		"the machine running here.\n"
		"`kite domjobinfo NAME` shows the progress, `kite domjobabort NAME` cancels.\n"};
	bool live = false, offline = false, persistent = false, undefine = false;
	const char *downtime_text = NULL;
	const struct machine_flag flags[] = {{O_LIVE, &live, NULL},
					     {O_OFFLINE, &offline, NULL},
					     {O_PERSISTENT, &persistent, NULL},
					     {O_UNDEFINESOURCE, &undefine, NULL},
					     {O_MAX_DOWNTIME, NULL, &downtime_text},
					     {0, NULL, NULL}};
	int pr = machine_parse(&cli, argc, argv, opts, flags, 2, 2, "NAME DEST");
	if (pr >= 0)
		return pr;
	uint32_t downtime = MIGRATE_DEFAULT_DOWNTIME;
	if (downtime_text && parse_ms(downtime_text, &downtime) < 0)
		return 1;
	if (live && offline) {
		kite_error("migrate: --live and --offline exclude each other");
		return 1;
	}
	const char *name = machine_resolve(&cli, argv[optind]), *dest = argv[optind + 1];
	struct machine_config def;
	if (machine_load(&cli, name, &def) < 0)
		return 1;
	struct machine_status st;
	int r = machine_status_get(&cli.dirs, name, false, &st);
	if (r == 0 && offline)
		r = migrate_offline(&def, dest);
	else if (r == 0 && !is_active(&st))
		r = kite_error("machine %s is not running (--offline moves its definition only)",
			       name);
	else if (r == 0)
		r = migrate_live(&cli, name, dest, live, downtime);
	machine_config_free(&def);
	if (r == 0 && undefine) {
		int lock = def_lock(&cli.dirs, name);
		if (lock < 0 || machine_status_get(&cli.dirs, name, false, &st) < 0)
			r = -1;
		else if (is_active(&st))
			r = kite_error("machine %s runs here: its definition stays", name);
		else
			r = def_remove(&cli.dirs, name);
		if (lock >= 0)
			close(lock);
	}
	if (r < 0)
		return 1;
	printf("Migration: machine '%s' %s to %s%s\n", name, offline ? "defined" : "moved", dest,
	       undefine ? " (undefined here)" : "");
	return 0;
}

/* ---- the destination ---- */

struct incoming {
	struct machine_cli *cli;
	int lock;
	bool was_defined;
};

/* The header arrived: may this machine come here? */
static int accept_def(void *opaque, const struct machine_config *def)
{
	struct incoming *in = opaque;
	if (machine_name_check(def->name) < 0)
		return -1;
	in->lock = def_lock(&in->cli->dirs, def->name);
	if (in->lock < 0)
		return -1;
	struct machine_status st;
	if (machine_status_get(&in->cli->dirs, def->name, false, &st) < 0)
		return -1;
	if (is_active(&st))
		return kite_error("machine %s is already running here (pid %d)", def->name,
				  (int)st.pid);
	struct machine_config old;
	char *why = NULL;
	enum def_load_result lr = def_load(&in->cli->dirs, def->name, true, &old, &why);
	free(why);
	if (lr == DEF_OK)
		machine_config_free(&old);
	in->was_defined = lr != DEF_MISSING;
	/* Shared storage: its disks must be here, at the same paths. */
	return def_check_disks(def);
}

static int finish_incoming(struct incoming *inc, struct migrate_incoming *in, int fd)
{
	if (migrate_wait_go(fd) < 0)
		return -1;
	/* A machine of `kite run --name` has no UUID yet: stored here, it gets one. */
	if (!in->def.uuid[0] && uuid_generate_str(in->def.uuid) < 0)
		return -1;
	if (def_save(&inc->cli->dirs, &in->def) < 0)
		return -1;
	if (in->offline)
		return 0;
	if (machine_start(&inc->cli->dirs, &in->def, in->path, start_timeout_ms()) < 0) {
		if (!inc->was_defined)
			(void)def_remove(&inc->cli->dirs, in->def.name);
		return -1;
	}
	return 0;
}

int cmd_migrate_incoming(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "migrate-incoming",
	    .usage =
		"usage: kite migrate-incoming [--state-dir DIR] DEST\n"
		"Waits at DEST (tcp:HOST:PORT or unix:PATH) for one `kite migrate`, receives\n"
		"(DEST stdio: the stream on stdin and stdout, as `kite migrate NAME ssh://...`\n"
		"runs it over ssh)\n"
		"the machine (definition, RAM, device state; every field checked), defines it in\n"
		"this state directory and starts it, as `kite restore` resumes a save. A stream\n"
		"that is cut short, corrupt or refused (the machine runs here already, a disk is\n"
		"missing) leaves nothing behind here, and the machine runs on at the source.\n"};
	int pr = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "DEST");
	if (pr >= 0)
		return pr;
	const char *dest = argv[optind];
	/* stdio: the stream on stdin/stdout (ssh:// runs us so); what we say goes to stderr. */
	bool stdio = !strcmp(dest, "stdio");
	FILE *say = stdio ? stderr : stdout;
	int fd = 0, wfd = 1;
	if (!stdio) {
		int lfd = migrate_listen(dest);
		if (lfd < 0)
			return 1;
		printf("Waiting for a migration on %s\n", dest);
		fflush(stdout);
		fd = wfd = migrate_accept(lfd);
		close(lfd);
		if (!strncmp(dest, "unix:", 5))
			(void)unlink(dest + 5);
		if (fd < 0)
			return 1;
	}
	struct incoming inc = {.cli = &cli, .lock = -1};
	struct migrate_incoming in;
	int r = migrate_receive(fd, wfd, cli.dirs.state, &in, accept_def, &inc);
	if (r == 0) {
		r = finish_incoming(&inc, &in, fd);
		if (r == 0)
			r = migrate_send_token(wfd, "DONE") < 0
				? kite_error("migration: the source went away at the end")
				: 0;
		else
			(void)migrate_send_fail(wfd, kite_last_error());
		if (r == 0)
			fprintf(say, "Machine '%s' %s\n", in.def.name,
				in.offline ? "defined here" : "migrated here, running");
		migrate_incoming_free(&in);
	}
	if (inc.lock >= 0)
		close(inc.lock);
	if (!stdio)
		close(fd);
	return r < 0;
}

/* ---- the job ---- */

static int query(struct machine_cli *cli, const char *name, json_t **ret)
{
	struct control_client *c;
	if (machine_connect(&cli->dirs, name, &c) < 0)
		return -1;
	int r = control_client_execute(c, "query-migrate", NULL, ret, CONTROL_CLIENT_TIMEOUT_MS);
	if (r < 0)
		kite_error("machine %s: %s", name, control_client_error(c));
	control_client_close(c);
	return r;
}

static uint64_t jint(json_t *o, const char *k)
{
	return (uint64_t)json_integer_value(json_object_get(o, k));
}

int cmd_domjobinfo(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {
	    .verb = "domjobinfo",
	    .usage = "usage: kite domjobinfo NAME\n"
		     "The running machine's migration: progress, data transferred and remaining,\n"
		     "dirty rate, expected downtime, iteration (`Job type: None` when there is\n"
		     "none).\n"};
	int pr = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	json_t *q = NULL;
	if (query(&cli, name, &q) < 0)
		return 1;
	const char *st = json_string_value(json_object_get(q, "status")) ?: "none";
	const char *type = !strcmp(st, "active") || !strcmp(st, "setup") ? "Unbounded"
			   : !strcmp(st, "completed")			 ? "Completed"
			   : !strcmp(st, "failed")			 ? "Failed"
			   : !strcmp(st, "cancelled")			 ? "Cancelled"
									 : "None";
	printf("%-22s %s\n", "Job type:", type);
	if (strcmp(type, "None")) {
		json_t *ram = json_object_get(q, "ram");
		uint64_t total = jint(ram, "total"), rem = jint(ram, "remaining");
		printf("%-22s %s\n", "Operation:", "Outgoing migration");
		printf("%-22s %llu ms\n",
		       "Time elapsed:", (unsigned long long)jint(q, "total-time"));
		printf("%-22s %.3f MiB\n", "Data processed:", jint(ram, "transferred") / 1048576.0);
		printf("%-22s %.3f MiB\n", "Data remaining:", rem / 1048576.0);
		printf("%-22s %.3f MiB\n", "Data total:", total / 1048576.0);
		printf(
		    "%-22s %llu %%\n", "Progress:",
		    (unsigned long long)(total ? (total - (rem < total ? rem : total)) * 100 / total
					       : 0));
		printf("%-22s %llu\n",
		       "Constant pages:", (unsigned long long)jint(ram, "duplicate"));
		printf("%-22s %llu\n", "Normal pages:", (unsigned long long)jint(ram, "normal"));
		printf("%-22s %llu pages/s\n",
		       "Dirty rate:", (unsigned long long)jint(ram, "dirty-pages-rate"));
		printf("%-22s %.3f MiB/s\n", "Bandwidth:", jint(ram, "bandwidth") / 1048576.0);
		printf("%-22s %llu ms\n",
		       "Expected downtime:", (unsigned long long)jint(q, "expected-downtime"));
		printf("%-22s %llu\n", "Iteration:", (unsigned long long)jint(q, "iteration"));
		if (json_object_get(q, "downtime"))
			printf("%-22s %llu ms\n",
			       "Total downtime:", (unsigned long long)jint(q, "downtime"));
		const char *err = json_string_value(json_object_get(q, "error-desc"));
		if (err)
			printf("%-22s %s\n", "Error message:", err);
	}
	json_decref(q);
	return 0;
}

int cmd_domjobabort(int argc, char **argv)
{
	static const struct option opts[] = {MACHINE_COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct machine_cli cli = {.verb = "domjobabort",
				  .usage = "usage: kite domjobabort NAME\n"
					   "Cancels the machine's migration: it runs on here, the "
					   "destination drops what it received.\n"};
	int pr = machine_parse(&cli, argc, argv, opts, NULL, 1, 1, "NAME");
	if (pr >= 0)
		return pr;
	const char *name = machine_resolve(&cli, argv[optind]);
	json_t *q = NULL;
	if (query(&cli, name, &q) < 0)
		return 1;
	const char *st = json_string_value(json_object_get(q, "status")) ?: "none";
	bool running = !strcmp(st, "active") || !strcmp(st, "setup");
	json_decref(q);
	if (!running) {
		kite_error("machine %s: no migration is running", name);
		return 1;
	}
	struct control_client *c;
	if (machine_connect(&cli.dirs, name, &c) < 0)
		return 1;
	int r = control_client_execute(c, "migrate_cancel", NULL, NULL, CONTROL_CLIENT_TIMEOUT_MS);
	if (r < 0)
		kite_error("machine %s: %s", name, control_client_error(c));
	control_client_close(c);
	return r < 0;
}

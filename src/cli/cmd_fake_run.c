/* kite _fake-run: a stand-in for `kite run` that speaks the control protocol and pretends
 * to be a VM, so that the machine verbs can be tested end to end on hosts without /dev/kvm
 * (KITE_RUNNER="kite _fake-run"). It parses its command line with kite run's own parser into
 * the same struct machine_config, and makes the same checks before any guest would run
 * (kernel readable, disks present, distinct, and opened through the block layer with their
 * locks), so it cannot accept a machine the real one refuses. Then it behaves like a tiny
 * guest: prints a boot line on its console, echoes console input, powers off on the ACPI
 * power button, "reboots" on reset, and has a balloon when the machine has one. Hidden: not
 * in `kite --help`.
 *
 * Test knobs (environment): KITE_FAKE_IGNORE_POWERDOWN=1 (a guest without ACPI support),
 * KITE_FAKE_NO_BALLOON=1 (no balloon driver), KITE_FAKE_HANG=CMD (that handler never
 * returns: the server must answer Timeout), KITE_FAKE_LAUNCH_LOG=FILE (appends one line per
 * launch, to count starts), KITE_FAKE_FAIL="message" (exits 1 with that error at once). */
#include "block/block.h"
#include "cli/cmd_machine.h"
#include "cli/run_options.h"
#include "mgmt/control_server.h"
#include "util/err.h"
#include "machine/disk_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fake_vm {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool paused, quit;
	int exit_code;
	uint64_t memory, balloon;
	const char *name;
	const struct machine_config *machine;
	struct blk **blks; /* the machine's disks, open */
	const char *hang;
	bool ignore_powerdown;
	bool has_balloon;
	struct control_server *server;
	char line[256];
	size_t linelen;
};

static void hang_if(struct fake_vm *vm, const char *cmd)
{
	if (vm->hang && !strcmp(vm->hang, cmd))
		for (;;)
			pause();
}

static void guest_print(struct fake_vm *vm, const char *text)
{
	control_server_console_output(vm->server, text, strlen(text));
}

static int fake_query_status(void *opaque, json_t *args, json_t **out)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "query-status");
	pthread_mutex_lock(&vm->lock);
	bool paused = vm->paused;
	pthread_mutex_unlock(&vm->lock);
	*out = json_pack("{s:s, s:b}", "status", paused ? "paused" : "running", "running", !paused);
	return *out ? 0 : -1;
}

static int fake_stop(void *opaque, json_t *args, json_t **ret)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "stop");
	pthread_mutex_lock(&vm->lock);
	vm->paused = true;
	pthread_mutex_unlock(&vm->lock);
	control_server_emit_event(vm->server, "STOP", NULL);
	return 0;
}

static int fake_cont(void *opaque, json_t *args, json_t **ret)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "cont");
	pthread_mutex_lock(&vm->lock);
	vm->paused = false;
	pthread_mutex_unlock(&vm->lock);
	control_server_emit_event(vm->server, "RESUME", NULL);
	return 0;
}

static void end_vm(struct fake_vm *vm, int code)
{
	pthread_mutex_lock(&vm->lock);
	vm->quit = true;
	vm->exit_code = code;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

static int fake_powerdown(void *opaque, json_t *args, json_t **ret)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "system_powerdown");
	control_server_emit_event(vm->server, "POWERDOWN", NULL);
	if (vm->ignore_powerdown) {
		guest_print(vm, "fake guest: power button pressed: ignored\n");
		return 0;
	}
	guest_print(vm, "fake guest: power button pressed: powering off\n");
	end_vm(vm, 0);
	return 0;
}

static int fake_reset(void *opaque, json_t *args, json_t **ret)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "system_reset");
	control_server_emit_event(vm->server, "RESET", NULL);
	char text[160];
	snprintf(text, sizeof(text), "fake guest: reset\nfake guest %s booted\n", vm->name);
	guest_print(vm, text);
	return 0;
}

static int fake_quit(void *opaque, json_t *args, json_t **ret)
{
	end_vm(opaque, 0);
	return 0;
}

/* As the real VMM answers: no device, or a target out of range, is an error. */
static int no_balloon(struct fake_vm *vm)
{
	if (vm->has_balloon)
		return 0;
	control_set_error("DeviceNotActive", "this machine has no balloon (--balloon)");
	return -1;
}

static int fake_balloon(void *opaque, json_t *args, json_t **ret)
{
	struct fake_vm *vm = opaque;
	uint64_t bytes = (uint64_t)json_integer_value(json_object_get(args, "value"));
	hang_if(vm, "balloon");
	if (no_balloon(vm) < 0)
		return -1;
	if (bytes > vm->memory || bytes < BALLOON_MIN_MEMORY) {
		control_set_error(NULL, "balloon target must be between 16 MiB and the RAM size");
		return -1;
	}
	pthread_mutex_lock(&vm->lock);
	vm->balloon = bytes;
	pthread_mutex_unlock(&vm->lock);
	char text[120];
	snprintf(text, sizeof(text), "fake guest: balloon: MemTotal %llu kB\n",
		 (unsigned long long)(bytes >> 10));
	guest_print(vm, text);
	control_server_emit_event(vm->server, "BALLOON_CHANGE",
				  json_pack("{s:I}", "actual", (json_int_t)bytes));
	return 0;
}

static int fake_query_balloon(void *opaque, json_t *args, json_t **ret)
{
	struct fake_vm *vm = opaque;
	if (no_balloon(vm) < 0)
		return -1;
	pthread_mutex_lock(&vm->lock);
	uint64_t bytes = vm->balloon;
	pthread_mutex_unlock(&vm->lock);
	*ret = json_pack("{s:I}", "actual", (json_int_t)bytes);
	return 0;
}

/* A save file as the real VMM writes it, with no device state and RAM all zeros (holes):
 * `kite restore` and `kite start` after `kite managedsave` check it as they check a real one,
 * and hand it to the runner. */
static int fake_save(void *opaque, json_t *args, json_t **ret)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "save");
	struct state_buf none = {0};
	if (savefile_write(json_string_value(json_object_get(args, "file")), vm->machine, &none,
			   NULL) < 0) {
		control_set_error(NULL, "%s", kite_last_error());
		return -1;
	}
	guest_print(vm, "fake guest: saved\n");
	end_vm(vm, 0);
	return 0;
}

/* The disks' snapshot as the real VMM takes it; the VM state a save file as fake_save's. */
static int fake_snapshot_create(void *opaque, json_t *args, json_t **ret)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "snapshot-create");
	const char *state = json_string_value(json_object_get(args, "state"));
	if (json_is_true(json_object_get(args, "external"))) {
		char(*paths)[PATH_MAX] = calloc(MACHINE_MAX_DISKS, PATH_MAX);
		int r = paths ? 0 : kite_error("out of memory");
		if (r == 0)
			r = disk_snapshot_create_overlays(
			    vm->machine, vm->blks, json_string_value(json_object_get(args, "name")),
			    paths, ret);
		/* run_options' machine is this process's own: it follows the disks */
		if (r == 0)
			r = disk_snapshot_switch((struct machine_config *)vm->machine, vm->blks,
						 paths);
		free(paths);
		if (r < 0)
			control_set_error(NULL, "%s", kite_last_error());
		return r;
	}
	struct state_buf none = {0};
	int r = state ? savefile_write(state, vm->machine, &none, NULL) : 0;
	if (r == 0)
		r = disk_snapshot_create(vm->machine, vm->blks,
					 json_string_value(json_object_get(args, "name")), state, 0,
					 ret);
	if (state)
		unlink(state);
	if (r < 0)
		control_set_error(NULL, "%s", kite_last_error());
	return r;
}

static int fake_snapshot_delete(void *opaque, json_t *args, json_t **ret)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "snapshot-delete");
	if (disk_snapshot_delete(vm->machine, vm->blks,
				 json_string_value(json_object_get(args, "name"))) < 0) {
		control_set_error(NULL, "%s", kite_last_error());
		return -1;
	}
	return 0;
}

const control_handler_fn fake_run_handlers[CONTROL_VMM_COMMANDS] = {
    [CONTROL_QUERY_STATUS] = fake_query_status,
    [CONTROL_STOP] = fake_stop,
    [CONTROL_CONT] = fake_cont,
    [CONTROL_SYSTEM_POWERDOWN] = fake_powerdown,
    [CONTROL_SYSTEM_RESET] = fake_reset,
    [CONTROL_QUIT] = fake_quit,
    [CONTROL_BALLOON] = fake_balloon,
    [CONTROL_QUERY_BALLOON] = fake_query_balloon,
    [CONTROL_SAVE] = fake_save,
    [CONTROL_SNAPSHOT_CREATE] = fake_snapshot_create,
    [CONTROL_SNAPSHOT_DELETE] = fake_snapshot_delete,
};

/* A line discipline of sorts: echo, and answer each complete line. */
static int fake_console_input(void *opaque, const void *data, size_t len)
{
	struct fake_vm *vm = opaque;
	const char *p = data;
	for (size_t i = 0; i < len; i++) {
		char ch = p[i] == '\r' ? '\n' : p[i];
		char echo[2] = {ch, 0};
		guest_print(vm, echo);
		if (ch != '\n') {
			if (vm->linelen + 1 < sizeof(vm->line))
				vm->line[vm->linelen++] = ch;
			continue;
		}
		vm->line[vm->linelen] = '\0';
		char reply[320];
		snprintf(reply, sizeof(reply), "fake guest: you typed '%s'\n", vm->line);
		guest_print(vm, reply);
		vm->linelen = 0;
	}
	return 0;
}

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static void usage(FILE *out)
{
	fputs("usage: kite _fake-run [kite run's options]   (a stand-in VM for tests)\n", out);
}

/* The disks, opened as the real VMM opens them (locks included), for the life of the run. */
static int open_disks(const struct machine_config *m, struct blk **blks)
{
	for (int i = 0; i < m->ndisks; i++) {
		const struct disk_config *d = &m->disks[i];
		unsigned flags =
		    (d->readonly ? BLK_O_RDONLY : BLK_O_RDWR) | (d->nocache ? BLK_O_NOCACHE : 0);
		if (!(blks[i] = blk_open(d->path, d->format[0] ? d->format : NULL, flags)))
			return -1;
	}
	return 0;
}

static void close_disks(struct blk **blks)
{
	for (int i = 0; i < MACHINE_MAX_DISKS; i++)
		blk_close(blks[i]);
}

/* The tiny guest, until it powers off or is told to end. Returns the exit code. */
static int fake_guest(const struct machine_config *m, struct blk **blks, const char *sock,
		      bool restored)
{
	const char *name = m->name[0] ? m->name : "fake";
	const char *launch_log = getenv("KITE_FAKE_LAUNCH_LOG");
	if (launch_log && *launch_log) {
		int fd = open(launch_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0)
			return kite_error_errno(errno, "%s", launch_log) < 0;
		dprintf(fd, "%d %s\n", (int)getpid(), name);
		close(fd);
	}
	struct fake_vm vm = {
	    .memory = m->memory, .balloon = m->memory, .name = name, .machine = m, .blks = blks};
	vm.hang = getenv("KITE_FAKE_HANG");
	vm.ignore_powerdown = getenv("KITE_FAKE_IGNORE_POWERDOWN") != NULL;
	/* The machine's balloon device; KITE_FAKE_NO_BALLOON: a guest without its driver. */
	vm.has_balloon = m->balloon && getenv("KITE_FAKE_NO_BALLOON") == NULL;
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.cond, NULL);
	struct control_handlers h = {.console_input = fake_console_input, .opaque = &vm};
	memcpy(h.cmd, fake_run_handlers, sizeof(h.cmd));
	if (control_server_start(sock, name, &h, &vm.server) < 0)
		return 1;
	const char *t = getenv("KITE_FAKE_TIMEOUT_MS");
	if (t && atoi(t) > 0)
		control_server_set_timeout(vm.server, atoi(t));
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	char banner[160];
	snprintf(banner, sizeof(banner), "fake guest %s %s\n", name,
		 restored ? "restored" : "booted");
	guest_print(&vm, banner);
	fprintf(stderr, "kite: fake VM %s running (pid %d)\n", name, (int)getpid());
	pthread_mutex_lock(&vm.lock);
	while (!vm.quit && !got_term) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&vm.cond, &vm.lock, &ts);
	}
	int code = vm.exit_code;
	pthread_mutex_unlock(&vm.lock);
	control_server_emit_event(vm.server, "SHUTDOWN", NULL);
	control_server_stop(vm.server);
	pthread_mutex_destroy(&vm.lock);
	pthread_cond_destroy(&vm.cond);
	return code;
}

static int fake_run(struct run_options *o)
{
	const char *fail = getenv("KITE_FAKE_FAIL");
	if (fail && *fail)
		return kite_error("%s", fail) < 0;
	if (!o->control_socket)
		return kite_error("_fake-run: --control-socket is required") < 0;
	struct blk *blks[MACHINE_MAX_DISKS] = {0};
	int code = open_disks(&o->machine, blks) < 0
		       ? 1
		       : fake_guest(&o->machine, blks, o->control_socket, o->run.restore != NULL);
	close_disks(blks);
	return code;
}

int cmd_fake_run(int argc, char **argv)
{
	static struct run_options o; /* large (device tables): not on the stack */
	int r = run_options_parse(argc, argv, "_fake-run", usage, &o);
	if (r == 0)
		r = fake_run(&o);
	else
		r = r < 0 ? 1 : 0;
	run_options_free(&o);
	return r;
}

/* kite _fake-run: a stand-in for `kite run` that speaks the control protocol and pretends
 * to be a VM, so that the machine verbs can be tested end to end on hosts without /dev/kvm
 * (KITE_RUNNER="kite _fake-run"). It takes the options `kite start` passes to `kite run`,
 * checks that the kernel is readable (as kite run does), and then behaves like a tiny
 * guest: prints a boot line on its console, echoes console input, powers off on the ACPI
 * power button, "reboots" on reset, and has a balloon with --balloon. Hidden: not in
 * `kite --help`.
 *
 * Test knobs (environment): KITE_FAKE_IGNORE_POWERDOWN=1 (a guest without ACPI support),
 * KITE_FAKE_NO_BALLOON=1 (no balloon driver), KITE_FAKE_HANG=CMD (that handler never
 * returns: the server must answer Timeout), KITE_FAKE_LAUNCH_LOG=FILE (appends one line per
 * launch, to count starts), KITE_FAKE_FAIL="message" (exits 1 with that error at once). */
#include "cli/cmd_machine.h"
#include "mgmt/control_server.h"
#include "util/err.h"
#include "util/size.h"

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
	const char *hang;
	bool ignore_powerdown;
	int console_log;
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
	size_t len = strlen(text);
	control_server_console_output(vm->server, text, len);
	if (vm->console_log >= 0 && write(vm->console_log, text, len) < 0) {
		/* The console log is best effort, as a full disk must not stop the VM. */
	}
}

static int fake_query_status(void *opaque, json_t **out)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "query-status");
	pthread_mutex_lock(&vm->lock);
	bool paused = vm->paused;
	pthread_mutex_unlock(&vm->lock);
	*out = json_pack("{s:s, s:b}", "status", paused ? "paused" : "running", "running", !paused);
	return *out ? 0 : -1;
}

static int fake_stop(void *opaque)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "stop");
	pthread_mutex_lock(&vm->lock);
	vm->paused = true;
	pthread_mutex_unlock(&vm->lock);
	control_server_emit_event(vm->server, "STOP", NULL);
	return 0;
}

static int fake_cont(void *opaque)
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

static int fake_powerdown(void *opaque)
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

static int fake_reset(void *opaque)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "system_reset");
	control_server_emit_event(vm->server, "RESET", NULL);
	char text[160];
	snprintf(text, sizeof(text), "fake guest: reset\nfake guest %s booted\n", vm->name);
	guest_print(vm, text);
	return 0;
}

static int fake_quit(void *opaque)
{
	end_vm(opaque, 0);
	return 0;
}

static int fake_balloon(void *opaque, uint64_t bytes)
{
	struct fake_vm *vm = opaque;
	hang_if(vm, "balloon");
	if (bytes > vm->memory) {
		control_set_error("GenericError", "balloon target %llu is above the VM's memory",
				  (unsigned long long)bytes);
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

static int fake_query_balloon(void *opaque, uint64_t *bytes)
{
	struct fake_vm *vm = opaque;
	pthread_mutex_lock(&vm->lock);
	*bytes = vm->balloon;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

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

int cmd_fake_run(int argc, char **argv)
{
	enum {
		O_CONSOLE = 1,
		O_NAME,
		O_SOCK,
		O_CLOG,
		O_DISK,
		O_NET,
		O_SHARE,
		O_NOREBOOT,
		O_BALLOON,
		O_RNG
	};
	static const struct option opts[] = {{"kernel", required_argument, NULL, 'k'},
					     {"initrd", required_argument, NULL, 'i'},
					     {"append", required_argument, NULL, 'p'},
					     {"memory", required_argument, NULL, 'm'},
					     {"cpus", required_argument, NULL, 'c'},
					     {"console", required_argument, NULL, O_CONSOLE},
					     {"name", required_argument, NULL, O_NAME},
					     {"control-socket", required_argument, NULL, O_SOCK},
					     {"console-log", required_argument, NULL, O_CLOG},
					     {"disk", required_argument, NULL, O_DISK},
					     {"net", required_argument, NULL, O_NET},
					     {"share", required_argument, NULL, O_SHARE},
					     {"no-reboot", no_argument, NULL, O_NOREBOOT},
					     {"balloon", no_argument, NULL, O_BALLOON},
					     {"rng", no_argument, NULL, O_RNG},
					     {NULL, 0, NULL, 0}};
	const char *kernel = NULL, *sock = NULL, *clog = NULL, *name = "fake";
	uint64_t memory = 512ULL << 20;
	bool balloon = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "k:i:p:m:c:", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			kernel = optarg;
			break;
		case 'm':
			if (parse_size(optarg, 1ULL << 20, &memory) < 0) {
				kite_error("--memory %s: not a size", optarg);
				return 1;
			}
			break;
		case O_NAME:
			name = optarg;
			break;
		case O_SOCK:
			sock = optarg;
			break;
		case O_CLOG:
			clog = optarg;
			break;
		case O_BALLOON:
			balloon = true;
			break;
		case 'i':
		case 'p':
		case 'c':
		case O_RNG:
		case O_CONSOLE:
		case O_DISK:
		case O_NET:
		case O_SHARE:
		case O_NOREBOOT:
			break;
		default:
			kite_error("_fake-run: unknown option %s", argv[optind - 1]);
			return 1;
		}
	}
	const char *fail = getenv("KITE_FAKE_FAIL");
	if (fail && *fail) {
		kite_error("%s", fail);
		return 1;
	}
	if (!kernel || !sock) {
		kite_error("_fake-run: --kernel and --control-socket are required");
		return 1;
	}
	if (access(kernel, R_OK) < 0) {
		kite_error("kernel %s: cannot read it: %s", kernel, strerror(errno));
		return 1;
	}
	const char *launch_log = getenv("KITE_FAKE_LAUNCH_LOG");
	if (launch_log && *launch_log) {
		int fd = open(launch_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0) {
			kite_error_errno(errno, "%s", launch_log);
			return 1;
		}
		dprintf(fd, "%d %s\n", (int)getpid(), name);
		close(fd);
	}
	struct fake_vm vm = {.memory = memory, .balloon = memory, .name = name, .console_log = -1};
	vm.hang = getenv("KITE_FAKE_HANG");
	vm.ignore_powerdown = getenv("KITE_FAKE_IGNORE_POWERDOWN") != NULL;
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.cond, NULL);
	if (clog) {
		vm.console_log =
		    open(clog, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
		if (vm.console_log < 0) {
			kite_error_errno(errno, "cannot create %s", clog);
			return 1;
		}
	}
	/* A balloon as kite run has one: with --balloon (a guest without the driver: the
	 * KITE_FAKE_NO_BALLOON knob). */
	balloon = balloon && getenv("KITE_FAKE_NO_BALLOON") == NULL;
	struct control_handlers h = {
	    .query_status = fake_query_status,
	    .stop = fake_stop,
	    .cont = fake_cont,
	    .powerdown = fake_powerdown,
	    .reset = fake_reset,
	    .quit = fake_quit,
	    .balloon = balloon ? fake_balloon : NULL,
	    .query_balloon = balloon ? fake_query_balloon : NULL,
	    .console_input = fake_console_input,
	    .opaque = &vm,
	};
	if (control_server_start(sock, name, &h, &vm.server) < 0)
		return 1;
	const char *t = getenv("KITE_FAKE_TIMEOUT_MS");
	if (t && atoi(t) > 0)
		control_server_set_timeout(vm.server, atoi(t));
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	char banner[160];
	snprintf(banner, sizeof(banner), "fake guest %s booted\n", name);
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
	if (vm.console_log >= 0)
		close(vm.console_log);
	pthread_mutex_destroy(&vm.lock);
	pthread_cond_destroy(&vm.cond);
	return code;
}

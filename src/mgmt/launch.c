#include "mgmt/launch.h"
#include "mgmt/console_log.h"
#include "mgmt/network.h"
#include "mgmt/runstate.h"
#include "mgmt/fileutil.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

void argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

struct argv_builder {
	char **v;
	size_t n, cap;
	bool failed;
};

static void push(struct argv_builder *b, char *s)
{
	if (!s || b->failed) {
		free(s);
		b->failed = true;
		return;
	}
	if (b->n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		char **nv = realloc(b->v, cap * sizeof(*nv));
		if (!nv) {
			free(s);
			b->failed = true;
			return;
		}
		b->v = nv;
		b->cap = cap;
	}
	b->v[b->n++] = s;
	b->v[b->n] = NULL;
}

char **machine_runner_argv(const struct mgmt_dirs *d, const char *name, const char *restore)
{
	struct argv_builder b = {0};
	char def[PATH_MAX], sock[PATH_MAX];
	if (runtime_path(d, name, "json", def, sizeof(def)) < 0 ||
	    runtime_path(d, name, "sock", sock, sizeof(sock)) < 0)
		return NULL;
	const char *runner = getenv("KITE_RUNNER");
	if (runner && *runner) {
		char *copy = strdup(runner), *save = NULL;
		if (!copy) {
			kite_error("out of memory");
			return NULL;
		}
		for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
			push(&b, strdup(w));
		free(copy);
		if (b.n == 0) {
			kite_error("KITE_RUNNER is blank");
			return NULL;
		}
	} else {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0) {
			kite_error_errno(errno, "cannot find the kite binary (/proc/self/exe)");
			return NULL;
		}
		self[n] = '\0';
		push(&b, strdup(self));
		push(&b, strdup("run"));
	}
	/* The console is on the socket (and in NAME.console), not on the supervisor's stdio. */
	const char *const rest[] = {restore ? "--restore" : "--definition", restore ? restore : def,
				    "--control-socket", sock, "--detached"};
	for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
		push(&b, strdup(rest[i]));
	if (b.failed) {
		argv_free(b.v);
		kite_error("out of memory");
		return NULL;
	}
	return b.v;
}

int start_timeout_ms(void)
{
	const char *env = getenv("KITE_START_TIMEOUT");
	char *end;
	long s = env && *env ? strtol(env, &end, 10) : 0;
	if (s > 0 && s <= 86400 && !*end)
		return (int)s * 1000;
	return 30000;
}

/* RUNTIME/NAME.json: the definition this run of the VMM boots (kept after it ends, as the
 * record of the last start). */
static int write_run_definition(const struct mgmt_dirs *d, const struct machine_config *def)
{
	char path[PATH_MAX];
	if (runtime_path(d, def->name, "json", path, sizeof(path)) < 0)
		return -1;
	json_t *j = machine_config_to_json(def);
	char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!text)
		return kite_error("out of memory");
	int r = write_file_atomic(path, text, strlen(text), 0640);
	free(text);
	return r;
}

/* Replaces the status file atomically with {"state", "reason", "time"}; best effort. */
static void write_status(const char *statuspath, const char *state, const char *reason)
{
	json_t *j = json_pack("{s:s, s:s, s:I}", "state", state, "reason", reason, "time",
			      (json_int_t)time(NULL));
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text) {
		unlink(statuspath);
		return;
	}
	char tmp[PATH_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s.tmp", statuspath);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		bool ok = write_all(fd, text, strlen(text)) == 0 && fsync(fd) == 0;
		close(fd);
		if (!ok || rename(tmp, statuspath) < 0)
			unlink(tmp);
	}
	free(text);
}

/* Why the VMM ended, from its wait status and the last error line of its log. */
static void end_reason(int ws, const char *logpath, char *reason, size_t size)
{
	char last[400];
	log_last_error(logpath, last, sizeof(last));
	if (WIFSIGNALED(ws)) {
		int sig = WTERMSIG(ws);
		snprintf(reason, size, "VM process killed by signal %d (SIG%s)", sig,
			 sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	} else if (WEXITSTATUS(ws) == 2) {
		snprintf(reason, size, "guest crashed%s%s", last[0] ? ": " : "", last);
	} else {
		snprintf(reason, size, "VM process exited with code %d%s%s", WEXITSTATUS(ws),
			 last[0] ? ": " : "", last);
	}
}

/* The supervisor's record of how the VMM ended: a clean end is "shut off" for virsh's reason
 * "destroyed" or "shutdown"; a VMM that ended before `kite start` saw it answer did not start,
 * which virsh shows as "shut off" for reason "failed"; anything else is "crashed" with why. */
static void record_end(const char *name, int ws, bool was_up, const char *statuspath,
		       const char *destroying, const char *saving, const char *logpath)
{
	if (access(destroying, F_OK) == 0) {
		write_status(statuspath, "shut off", "destroyed");
		return;
	}
	if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && access(saving, F_OK) == 0) {
		write_status(statuspath, "shut off", "saved");
		return;
	}
	if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
		write_status(statuspath, "shut off", "shutdown");
		return;
	}
	char reason[600], status[620];
	end_reason(ws, logpath, reason, sizeof(reason));
	/* The reason also goes to the log, where `kite list` users will look. */
	fprintf(stderr, "kite: machine %s %s: %s\n", name, was_up ? "crashed" : "failed to start",
		reason);
	fflush(stderr);
	if (was_up) {
		write_status(statuspath, "crashed", reason);
	} else {
		snprintf(status, sizeof(status), "failed: %s", reason);
		write_status(statuspath, "shut off", status);
	}
}

/* The supervisor's end of the socket to `kite start`: 'U' arrived once start saw the VMM
 * answer. */
static bool start_saw_it_up(int fd)
{
	char byte = 0;
	ssize_t n;
	do {
		n = recv(fd, &byte, 1, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	return n == 1 && byte == 'U';
}

/* Runs in the supervisor: never returns. fd 3 is a socket to `kite start`: the supervisor sends
 * 'R' once the VMM runs, start sends 'U' once the VMM answered on its control socket. */
static void supervise(const struct mgmt_dirs *d, const char *name, char **argv, bool console)
{
	char pidpath[PATH_MAX], statuspath[PATH_MAX], logpath[PATH_MAX], destroying[PATH_MAX],
	    sockpath[PATH_MAX], saving[PATH_MAX];
	if (runtime_path(d, name, "saving", saving, sizeof(saving)) < 0 ||
	    runtime_path(d, name, "pid", pidpath, sizeof(pidpath)) < 0 ||
	    runtime_path(d, name, "status", statuspath, sizeof(statuspath)) < 0 ||
	    runtime_path(d, name, "log", logpath, sizeof(logpath)) < 0 ||
	    runtime_path(d, name, "destroying", destroying, sizeof(destroying)) < 0 ||
	    runtime_path(d, name, "sock", sockpath, sizeof(sockpath)) < 0)
		_exit(1);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	pid_t c = fork();
	if (c < 0) {
		kite_error_errno(errno, "machine %s: fork", name);
		_exit(1);
	}
	if (c == 0) {
		signal(SIGHUP, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		kite_error_errno(errno, "cannot execute %s", argv[0]);
		_exit(127);
	}
	uint64_t cstart = process_start_time(c);
	char line[128];
	int n =
	    snprintf(line, sizeof(line), "%d %llu %d %llu\n", (int)c, (unsigned long long)cstart,
		     (int)getpid(), (unsigned long long)process_start_time(getpid()));
	char consolepath[PATH_MAX];
	if (console && runtime_path(d, name, "console", consolepath, sizeof(consolepath)) == 0)
		console_log_start(sockpath, consolepath, c, cstart);
	char tmp[PATH_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s.tmp", pidpath);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, line, (size_t)n) < 0 || close(fd) < 0 ||
	    rename(tmp, pidpath) < 0) {
		kite_error_errno(errno, "machine %s: cannot write %s", name, pidpath);
		kill(c, SIGKILL);
	}
	if (send(3, "R", 1, MSG_NOSIGNAL) < 0) {
		/* `kite start` went away; the machine runs on regardless. */
	}
	int ws;
	while (waitpid(c, &ws, 0) < 0) {
		if (errno != EINTR) {
			ws = 0;
			break;
		}
	}
	record_end(name, ws, start_saw_it_up(3), statuspath, destroying, saving, logpath);
	close(3);
	unlink(sockpath); /* stale after a crash; already gone after a clean end */
	unlink(pidpath);
	unlink(destroying);
	unlink(saving);
	_exit(0);
}

static int status_now(const struct mgmt_dirs *d, const char *name, struct machine_status *st)
{
	return machine_status_get(d, name, false, st);
}

/* Polls until the VMM answers query-status (0), ends (-1, reported) or the deadline passes
 * (1). */
static int wait_until_up(const struct mgmt_dirs *d, const char *name, int64_t deadline,
			 const char *logpath, const char *sockpath)
{
	while (mono_ms() < deadline) {
		struct machine_status st;
		if (status_now(d, name, &st) < 0)
			return -1;
		if (st.state == MACHINE_CRASHED)
			return kite_error("machine %s failed to start: %s (log: %s)", name,
					  st.reason, logpath);
		if (st.state == MACHINE_SHUTOFF && !strncmp(st.reason, "failed: ", 8))
			return kite_error("machine %s failed to start: %s (log: %s)", name,
					  st.reason + 8, logpath);
		if (st.state == MACHINE_SHUTOFF)
			return kite_error("machine %s stopped right after starting (log: %s)", name,
					  logpath);
		struct control_client *c;
		if (control_client_connect(sockpath, 1000, &c, NULL) == 0) {
			json_t *ret = NULL;
			int q = control_client_execute(c, "query-status", NULL, &ret, 2000);
			json_decref(ret);
			control_client_close(c);
			if (q == 0)
				return 0;
		}
		sleep_ms(10);
	}
	return 1;
}

int machine_start(const struct mgmt_dirs *d, const struct machine_config *def, const char *restore,
		  int timeout_ms)
{
	const char *name = def->name;
	char statuspath[PATH_MAX], logpath[PATH_MAX], destroying[PATH_MAX], sockpath[PATH_MAX];
	if (runtime_path(d, name, "status", statuspath, sizeof(statuspath)) < 0 ||
	    runtime_path(d, name, "log", logpath, sizeof(logpath)) < 0 ||
	    runtime_path(d, name, "destroying", destroying, sizeof(destroying)) < 0 ||
	    runtime_path(d, name, "sock", sockpath, sizeof(sockpath)) < 0)
		return -1;
	/* Named networks are looked up now: the VMM is given their bridges. */
	struct machine_config run = *def;
	if (network_resolve_nics(d, &run) < 0 || write_run_definition(d, &run) < 0)
		return -1;
	char **argv = machine_runner_argv(d, name, restore);
	if (!argv)
		return -1;
	char pidpath[PATH_MAX];
	if (runtime_path(d, name, "pid", pidpath, sizeof(pidpath)) < 0) {
		argv_free(argv);
		return -1;
	}
	/* Leftovers of a run that ended badly (the caller checked that nothing runs), including
	 * the temp files of a supervisor killed while it wrote them. */
	static const char *const temps[] = {"status.tmp", "pid.tmp"};
	for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++) {
		char tmp[PATH_MAX];
		if (runtime_path(d, name, temps[i], tmp, sizeof(tmp)) == 0 && unlink(tmp) < 0 &&
		    errno != ENOENT)
			kite_warn("cannot remove %s: %s", tmp, strerror(errno));
	}
	if ((unlink(statuspath) < 0 && errno != ENOENT) ||
	    (unlink(pidpath) < 0 && errno != ENOENT) ||
	    (unlink(destroying) < 0 && errno != ENOENT) ||
	    (unlink(sockpath) < 0 && errno != ENOENT)) {
		kite_error_errno(errno, "machine %s: cannot clear old runtime files", name);
		argv_free(argv);
		return -1;
	}
	int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
	if (logfd < 0) {
		kite_error_errno(errno, "cannot create %s", logpath);
		argv_free(argv);
		return -1;
	}
	int ready[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ready) < 0) {
		kite_error_errno(errno, "socketpair");
		close(logfd);
		argv_free(argv);
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t a = fork();
	if (a < 0) {
		kite_error_errno(errno, "fork");
		close(logfd);
		close(ready[0]);
		close(ready[1]);
		argv_free(argv);
		return -1;
	}
	if (a == 0) {
		/* Detach: a new session, and stdio that is the log, not the caller's terminal
		 * or pipes (a caller waiting for EOF on our stdout must not wait for the VM). */
		if (setsid() < 0)
			_exit(1);
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 ||
		    dup2(logfd, 2) < 0 || dup2(ready[1], 3) < 0 ||
		    fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
			_exit(1);
		/* Drop every other descriptor, the machine's lock above all: a lock held by the
		 * VM's process would outlive this command. */
		if (close_range(4, ~0U, 0) < 0)
			for (int fd = 4; fd < 1024; fd++)
				close(fd);
		pid_t b = fork();
		if (b != 0)
			_exit(b < 0 ? 1 : 0);
		supervise(d, name, argv, def->console != MACHINE_CONSOLE_NONE);
	}
	close(ready[1]);
	close(logfd);
	argv_free(argv);
	int ws;
	while (waitpid(a, &ws, 0) < 0 && errno == EINTR)
		;
	/* Wait for the pid file (the supervisor writes it right after forking the VMM). */
	struct pollfd p = {.fd = ready[0], .events = POLLIN};
	int64_t deadline = mono_ms() + timeout_ms;
	int r;
	do {
		r = poll(&p, 1, 5000);
	} while (r < 0 && errno == EINTR);
	char byte = 0;
	if (r <= 0 || read(ready[0], &byte, 1) != 1 || byte != 'R') {
		close(ready[0]);
		char last[400];
		log_last_error(logpath, last, sizeof(last));
		return kite_error("machine %s: the supervisor did not start%s%s", name,
				  last[0] ? ": " : "", last);
	}
	int r2 = wait_until_up(d, name, deadline, logpath, sockpath);
	if (r2 == 0 && send(ready[0], "U", 1, MSG_NOSIGNAL) < 0) {
		/* The VMM already ended: the supervisor records it as it finds it. */
	}
	close(ready[0]);
	if (r2 == 1) {
		kite_error("machine %s did not answer on %s within %d s: stopping it (log: %s)",
			   name, sockpath, timeout_ms / 1000, logpath);
		machine_destroy(d, name);
		return -1;
	}
	return r2;
}

int machine_wait_stopped(const struct mgmt_dirs *d, const char *name, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	for (;;) {
		struct machine_status st;
		if (status_now(d, name, &st) < 0)
			return -1;
		if (st.state == MACHINE_SHUTOFF || st.state == MACHINE_CRASHED)
			return 0;
		if (mono_ms() >= deadline)
			return 1;
		sleep_ms(10);
	}
}

int machine_destroy(const struct mgmt_dirs *d, const char *name)
{
	char pidpath[PATH_MAX], destroying[PATH_MAX], sockpath[PATH_MAX];
	if (runtime_path(d, name, "pid", pidpath, sizeof(pidpath)) < 0 ||
	    runtime_path(d, name, "destroying", destroying, sizeof(destroying)) < 0 ||
	    runtime_path(d, name, "sock", sockpath, sizeof(sockpath)) < 0)
		return -1;
	pid_t runner, sup;
	uint64_t rstart, sstart;
	if (pidfile_read(pidpath, &runner, &rstart, &sup, &sstart) < 0)
		return kite_error("machine %s is not running", name);
	int fd = open(destroying, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return kite_error_errno(errno, "cannot create %s", destroying);
	close(fd);
	/* One deadline for the whole polite attempt, connect and quit included: a VMM that is
	 * slow to accept or to answer must not push the SIGKILL past it (destroy ends a machine
	 * within a second, whatever state its VMM is in). */
	int64_t kill_at = mono_ms() + DESTROY_KILL_MS;
	struct control_client *c;
	if (control_client_connect(sockpath, DESTROY_KILL_MS, &c, NULL) == 0) {
		int64_t left = kill_at - mono_ms();
		if (left > 0)
			control_client_execute(c, "quit", NULL, NULL, (int)left);
		control_client_close(c);
	}
	while (process_alive(runner, rstart) && mono_ms() < kill_at)
		sleep_ms(5);
	if (process_alive(runner, rstart) && kill(runner, SIGKILL) < 0 && errno != ESRCH)
		return kite_error_errno(errno, "cannot kill VM process %d", (int)runner);
	/* The supervisor removes the pid file once it has reaped the VMM. */
	int64_t deadline = mono_ms() + 2000;
	while (access(pidpath, F_OK) == 0 && mono_ms() < deadline) {
		if (!process_alive(sup, sstart) && !process_alive(runner, rstart)) {
			/* No supervisor left to clean up: do it here. */
			unlink(sockpath);
			unlink(pidpath);
			break;
		}
		sleep_ms(5);
	}
	unlink(destroying);
	if (access(pidpath, F_OK) == 0)
		return kite_error("machine %s: VM process %d did not go away", name, (int)runner);
	return 0;
}

int machine_connect(const struct mgmt_dirs *d, const char *name, struct control_client **c)
{
	struct machine_status st;
	if (machine_status_get(d, name, false, &st) < 0)
		return -1;
	if (st.state != MACHINE_RUNNING && st.state != MACHINE_PAUSED)
		return kite_error("machine %s is not running (%s)", name,
				  machine_state_name(st.state));
	char sockpath[PATH_MAX];
	if (runtime_path(d, name, "sock", sockpath, sizeof(sockpath)) < 0)
		return -1;
	char *err = NULL;
	if (control_client_connect(sockpath, CONTROL_CLIENT_TIMEOUT_MS, c, &err) < 0) {
		kite_error("machine %s: %s", name, err);
		free(err);
		return -1;
	}
	return 0;
}

int managed_save_path(const struct mgmt_dirs *d, const char *name, char *buf, size_t size)
{
	return mgmt_path(buf, size, d->state, name, ".save");
}

int machine_save(const struct mgmt_dirs *d, const char *name, const char *file)
{
	char saving[PATH_MAX];
	if (runtime_path(d, name, "saving", saving, sizeof(saving)) < 0)
		return -1;
	struct control_client *c;
	if (machine_connect(d, name, &c) < 0)
		return -1;
	/* Before the request: the supervisor may record the end before the reply is read. */
	int fd = open(saving, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		control_client_close(c);
		return kite_error_errno(errno, "cannot create %s", saving);
	}
	close(fd);
	int r = control_client_execute(c, "save", json_pack("{s:s}", "file", file), NULL,
				       SAVE_TIMEOUT_MS);
	if (r < 0) {
		kite_error("machine %s: save: %s", name, control_client_error(c));
		unlink(saving);
		control_client_close(c);
		return -1;
	}
	control_client_close(c);
	if (machine_wait_stopped(d, name, start_timeout_ms()) != 0)
		return kite_error("machine %s: saved to %s, but its VMM has not ended", name, file);
	return 0;
}

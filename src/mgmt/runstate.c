#include "mgmt/runstate.h"
#include "mgmt/control_client.h"
#include "mgmt/fileutil.h"
#include "util/err.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STATUS_QUERY_TIMEOUT_MS 2000

const char *machine_state_name(enum machine_state s)
{
	switch (s) {
	case MACHINE_RUNNING:
		return "running";
	case MACHINE_PAUSED:
		return "paused";
	case MACHINE_CRASHED:
		return "crashed";
	case MACHINE_SHUTOFF:
		break;
	}
	return "shut off";
}

int runtime_path(const struct mgmt_dirs *d, const char *name, const char *what, char *buf,
		 size_t size)
{
	char suffix[32];
	snprintf(suffix, sizeof(suffix), ".%s", what);
	return mgmt_path(buf, size, d->run, name, suffix);
}

uint64_t process_start_time(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *data;
	if (read_file_all(path, 4096, &data, NULL) < 0)
		return 0;
	/* The command name (field 2) may hold spaces and parentheses: fields 3.. follow its
	 * last ')'. Field 3 is the state, field 22 the start time. */
	uint64_t start = 0;
	char *p = strrchr(data, ')');
	if (p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X') { /* a zombie is not a live VM */
		char *save = NULL;
		char *tok = strtok_r(p + 1, " ", &save);
		for (int field = 3; tok && field < 22; field++)
			tok = strtok_r(NULL, " ", &save);
		if (tok)
			start = strtoull(tok, NULL, 10);
	}
	free(data);
	return start;
}

bool process_alive(pid_t pid, uint64_t start)
{
	if (pid <= 0)
		return false;
	uint64_t now = process_start_time(pid);
	return now != 0 && now == start;
}

int pidfile_read(const char *path, pid_t *runner, uint64_t *runner_start, pid_t *sup,
		 uint64_t *sup_start)
{
	char *data;
	if (read_file_all(path, 4096, &data, NULL) < 0)
		return -1;
	int r1, s1;
	unsigned long long rs, ss;
	int n = sscanf(data, "%d %llu %d %llu", &r1, &rs, &s1, &ss);
	free(data);
	if (n != 4 || r1 <= 0 || s1 <= 0) {
		errno = EINVAL;
		return -1;
	}
	*runner = r1;
	*runner_start = rs;
	*sup = s1;
	*sup_start = ss;
	return 0;
}

void log_last_error(const char *log_path, char *out, size_t size)
{
	char *data;
	out[0] = '\0';
	if (read_file_all(log_path, 16 << 20, &data, NULL) < 0)
		return;
	char *best = NULL, *last = NULL;
	for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
		if (!*line)
			continue;
		last = line;
		if (strstr(line, "error") || strstr(line, "crash") || strstr(line, "signal") ||
		    strstr(line, "ERROR"))
			best = line;
	}
	const char *pick = best ? best : last;
	if (pick)
		snprintf(out, size, "%s", pick);
	free(data);
}

static void read_status_file(const char *path, struct machine_status *st)
{
	char *data;
	if (read_file_all(path, 65536, &data, NULL) < 0)
		return;
	json_t *j = json_loads(data, 0, NULL);
	free(data);
	const char *state = json_string_value(json_object_get(j, "state"));
	const char *reason = json_string_value(json_object_get(j, "reason"));
	if (!j || (state && !strcmp(state, "crashed"))) {
		st->state = MACHINE_CRASHED;
		snprintf(st->reason, sizeof(st->reason), "%s",
			 reason ? reason : "status file unreadable");
	} else if (state && !strcmp(state, "shut off") && reason) {
		snprintf(st->reason, sizeof(st->reason), "%s", reason); /* shutdown, destroyed */
	}
	json_decref(j);
}

int machine_status_get(const struct mgmt_dirs *d, const char *name, bool query,
		       struct machine_status *st)
{
	char pidpath[PATH_MAX], statuspath[PATH_MAX], logpath[PATH_MAX], sockpath[PATH_MAX];
	memset(st, 0, sizeof(*st));
	if (runtime_path(d, name, "pid", pidpath, sizeof(pidpath)) < 0 ||
	    runtime_path(d, name, "status", statuspath, sizeof(statuspath)) < 0 ||
	    runtime_path(d, name, "log", logpath, sizeof(logpath)) < 0 ||
	    runtime_path(d, name, "sock", sockpath, sizeof(sockpath)) < 0)
		return -1;
	/* The supervisor writes the status file before it removes the pid file; when the VMM
	 * is gone but its supervisor is still alive, give it a moment to record why. */
	for (int attempt = 0; attempt < 50; attempt++) {
		pid_t runner, sup;
		uint64_t rstart, sstart;
		if (pidfile_read(pidpath, &runner, &rstart, &sup, &sstart) < 0) {
			if (errno != ENOENT && errno != EINVAL)
				return kite_error_errno(errno, "cannot read %s", pidpath);
			st->state = MACHINE_SHUTOFF;
			read_status_file(statuspath, st);
			return 0;
		}
		if (process_alive(runner, rstart)) {
			st->state = MACHINE_RUNNING;
			st->pid = runner;
			st->supervisor_pid = sup;
			if (!query)
				return 0;
			struct control_client *c;
			char *err = NULL;
			json_t *ret = NULL;
			if (control_client_connect(sockpath, STATUS_QUERY_TIMEOUT_MS, &c, &err) <
			    0) {
				snprintf(st->reason, sizeof(st->reason), "%s", err);
				free(err);
				return 0;
			}
			if (control_client_execute(c, "query-status", NULL, &ret,
						   STATUS_QUERY_TIMEOUT_MS) == 0) {
				const char *s = json_string_value(json_object_get(ret, "status"));
				if (s && !strcmp(s, "paused"))
					st->state = MACHINE_PAUSED;
				json_decref(ret);
			} else {
				snprintf(st->reason, sizeof(st->reason), "%s",
					 control_client_error(c));
			}
			control_client_close(c);
			return 0;
		}
		if (!process_alive(sup, sstart)) {
			/* Both gone and nobody recorded why (the supervisor was killed too). */
			st->state = MACHINE_CRASHED;
			char last[400];
			log_last_error(logpath, last, sizeof(last));
			snprintf(st->reason, sizeof(st->reason),
				 "VM process %d and its supervisor are gone%s%s", (int)runner,
				 last[0] ? "; log: " : "", last);
			return 0;
		}
		sleep_ms(20);
	}
	st->state = MACHINE_CRASHED;
	snprintf(st->reason, sizeof(st->reason), "VM process gone; supervisor did not report");
	return 0;
}

#include "mgmt/console_log.h"
#include "mgmt/control_client.h"
#include "mgmt/fileutil.h"
#include "mgmt/launch.h"
#include "mgmt/runstate.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct console_log {
	char sock[PATH_MAX];
	char path[PATH_MAX];
	pid_t pid;
	uint64_t start;
};

static int open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		kite_error_errno(errno, "cannot create %s", path);
	return fd;
}

static void *logger(void *arg)
{
	struct console_log *cl = arg;
	struct control_client *c = NULL;
	int fd = open_log(cl->path);
	int64_t deadline = mono_ms() + start_timeout_ms();
	/* The socket appears once the VMM has set up its machine. */
	while (fd >= 0 && process_alive(cl->pid, cl->start) && mono_ms() < deadline) {
		if (control_client_connect(cl->sock, 1000, &c, NULL) == 0)
			break;
		sleep_ms(20);
	}
	if (c && control_client_execute(c, "console", json_pack("{s:b}", "replay", 1), NULL,
					CONTROL_CLIENT_TIMEOUT_MS) == 0) {
		char buf[4096];
		size_t size = 0;
		ssize_t n;
		while ((n = control_client_read_raw(c, buf, sizeof(buf))) > 0) {
			if (size + (size_t)n > CONSOLE_LOG_MAX) {
				char old[PATH_MAX + 8];
				snprintf(old, sizeof(old), "%s.old", cl->path);
				close(fd);
				if (rename(cl->path, old) < 0)
					kite_warn("cannot rename %s: %s", cl->path,
						  strerror(errno));
				if ((fd = open_log(cl->path)) < 0)
					break;
				size = 0;
			}
			if (write_all(fd, buf, (size_t)n) < 0) {
				kite_warn("console log %s: %s", cl->path, strerror(errno));
				break;
			}
			size += (size_t)n;
		}
	}
	control_client_close(c);
	if (fd >= 0)
		close(fd);
	free(cl);
	return NULL;
}

int console_log_start(const char *sockpath, const char *logpath, pid_t pid, uint64_t start)
{
	struct console_log *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return kite_error("out of memory");
	snprintf(cl->sock, sizeof(cl->sock), "%s", sockpath);
	snprintf(cl->path, sizeof(cl->path), "%s", logpath);
	cl->pid = pid;
	cl->start = start;
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &attr, logger, cl);
	pthread_attr_destroy(&attr);
	if (e) {
		free(cl);
		return kite_error_errno(e, "cannot start the console logger");
	}
	return 0;
}

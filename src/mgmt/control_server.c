#include "mgmt/control_server.h"
#include "mgmt/console_ring.h"
#include "mgmt/peercred.h"
#include "mgmt/fileutil.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define OUT_MAX (1 << 20) /* a client that lets this much pile up is dropped */

struct request;

struct client {
	int fd;
	char *in;
	size_t inlen;
	char *out;
	size_t outlen, outcap;
	struct request *req; /* the request being handled; further lines wait */
	bool stream;	     /* console mode: raw bytes both ways */
	uint64_t ring_pos;
	bool closing; /* close once `out` is flushed */
	bool eof;     /* the peer shut down its sending side: answer what it sent, then close */
	bool dead;
	struct client *next;
};

struct request {
	struct control_server *s;
	struct client *client; /* NULL once abandoned (timeout, disconnect) or fire-and-forget */
	const struct control_command *cmd;
	json_t *id;
	json_t *args;
	int64_t deadline;
	bool done;
	json_t *reply;
	int timeout_ms; /* the command's, or the server's when longer */
};

struct control_server {
	pthread_mutex_t lock;
	pthread_cond_t idle; /* signalled when a worker ends */
	pthread_t thread;
	int listen_fd;
	int wake[2];
	atomic_int nstream;
	bool quit;
	int workers;
	int timeout_ms;
	int nclients;
	struct client *clients;
	struct control_handlers h;
	struct console_ring ring;
	char *name;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static __thread const char *tls_err_class;
static __thread char tls_err_desc[512];

void control_set_error(const char *cls, const char *fmt, ...)
{
	va_list ap;
	tls_err_class = cls ? cls : "GenericError";
	va_start(ap, fmt);
	vsnprintf(tls_err_desc, sizeof(tls_err_desc), fmt, ap);
	va_end(ap);
}

/* Always writes: a "wake-up already pending" flag can be cleared after the server drained
 * the byte that belonged to a later wake-up, and then every wake-up is lost (seen as a hang
 * in control_server_stop). The server re-reads its state after each drain, and a full pipe
 * (EAGAIN) already guarantees a wake-up. */
static void wake(struct control_server *s)
{
	char b = 1;
	/* EAGAIN means a wake-up is already queued, which is all we need. */
	if (write(s->wake[1], &b, 1) < 0 && errno != EAGAIN)
		kite_warn("control socket: wake-up write: %s", strerror(errno));
}

static json_t *error_reply(const char *cls, const char *desc, json_t *id)
{
	json_t *r = json_pack("{s:{s:s, s:s}}", "error", "class", cls, "desc", desc);
	if (r && id)
		json_object_set(r, "id", id);
	return r;
}

/* Queues one JSON line for a client; steals `msg`. */
static void send_json(struct client *c, json_t *msg)
{
	if (!msg) {
		c->dead = true;
		return;
	}
	char *text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text) {
		c->dead = true;
		return;
	}
	size_t len = strlen(text);
	if (c->outlen + len + 1 > OUT_MAX) {
		free(text);
		c->dead = true;
		return;
	}
	if (c->outlen + len + 1 > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;
		while (cap < c->outlen + len + 1)
			cap *= 2;
		char *nb = realloc(c->out, cap);
		if (!nb) {
			free(text);
			c->dead = true;
			return;
		}
		c->out = nb;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, text, len);
	c->out[c->outlen + len] = '\n';
	c->outlen += len + 1;
	free(text);
}

static void flush_out(struct client *c)
{
	while (c->outlen > 0 && !c->dead) {
		ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			c->dead = true;
			return;
		}
		memmove(c->out, c->out + n, c->outlen - (size_t)n);
		c->outlen -= (size_t)n;
	}
}

/* Console mode: moves ring bytes into the socket while it accepts them. */
static void flush_stream(struct control_server *s, struct client *c)
{
	char buf[4096];
	while (!c->dead && c->outlen == 0) {
		uint64_t pos = c->ring_pos;
		size_t n = console_ring_read(&s->ring, &pos, buf, sizeof(buf));
		if (n == 0)
			return;
		ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w <= 0) {
			c->dead = true;
			return;
		}
		c->ring_pos = pos - (n - (size_t)w);
	}
}

/* query-status must say running or paused: a VMM that returns anything else gets an error. */
static int check_return(const struct control_command *cmd, json_t **ret)
{
	if (cmd->vmm != CONTROL_QUERY_STATUS ||
	    (json_is_object(*ret) && json_is_string(json_object_get(*ret, "status"))))
		return 0;
	json_decref(*ret);
	*ret = NULL;
	control_set_error("GenericError", "the VMM returned no status");
	return -1;
}

static void *worker(void *arg)
{
	struct request *req = arg;
	struct control_server *s = req->s;
	const struct control_handlers *h = &s->h;
	json_t *ret = NULL;
	tls_err_class = NULL;
	tls_err_desc[0] = '\0';
	int r = h->cmd[req->cmd->vmm](h->opaque, req->args, &ret);
	if (r == 0)
		r = check_return(req->cmd, &ret);
	json_t *reply;
	if (r == 0)
		reply = json_pack("{s:o}", "return", ret ? ret : json_object());
	else
		reply = error_reply(tls_err_class ? tls_err_class : "GenericError",
				    tls_err_desc[0] ? tls_err_desc : "command failed", NULL);
	if (reply && req->id)
		json_object_set(reply, "id", req->id);

	pthread_mutex_lock(&s->lock);
	if (req->client) {
		req->reply = reply;
		req->done = true;
	} else {
		json_decref(reply);
		json_decref(req->id);
		json_decref(req->args);
		free(req);
	}
	s->workers--;
	pthread_cond_broadcast(&s->idle);
	/* Under the lock: once it is released, control_server_stop may free the server (it
	 * waits for workers == 0), so nothing of `s` may be touched after the unlock. The pipe
	 * is non-blocking. */
	wake(s);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static bool start_worker(struct control_server *s, struct request *req)
{
	pthread_t t;
	pthread_attr_t attr;
	if (pthread_attr_init(&attr))
		return false;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	s->workers++;
	int e = pthread_create(&t, &attr, worker, req);
	pthread_attr_destroy(&attr);
	if (e) {
		s->workers--;
		return false;
	}
	return true;
}

static bool handler_present(const struct control_handlers *h, const struct control_command *cmd)
{
	return !cmd->by_vmm || h->cmd[cmd->vmm];
}

static json_t *version_json(void)
{
	return json_pack("{s:i, s:i, s:i, s:s}", "major", 0, "minor", 1, "micro", 0, "string",
			 "0.1");
}

/* The commands the server answers itself (lock held). */
static void serve(struct control_server *s, struct client *c, const struct control_command *cmd,
		  json_t *args, json_t *id)
{
	json_t *ret = NULL;
	switch ((enum control_server_cmd)cmd->server) {
	case CONTROL_SERVER_QMP_CAPABILITIES:
		ret = json_object();
		break;
	case CONTROL_SERVER_QUERY_VERSION:
		ret = version_json();
		break;
	case CONTROL_SERVER_QUERY_COMMANDS:
		ret = json_array();
		for (size_t i = 0; ret && i < control_ncommands; i++)
			if (handler_present(&s->h, &control_commands[i]))
				json_array_append_new(
				    ret, json_pack("{s:s}", "name", control_commands[i].name));
		break;
	case CONTROL_SERVER_CONSOLE:
		ret = json_object();
		break;
	}
	json_t *reply = json_pack("{s:o}", "return", ret);
	if (reply && id)
		json_object_set(reply, "id", id);
	send_json(c, reply);
	if (cmd->server == CONTROL_SERVER_CONSOLE) {
		json_t *replay = json_object_get(args, "replay");
		c->stream = true;
		atomic_fetch_add(&s->nstream, 1);
		c->ring_pos = (replay && json_is_false(replay)) ? console_ring_head(&s->ring)
								: console_ring_oldest(&s->ring);
	}
}

/* Handles one request line (lock held). */
static void handle_line(struct control_server *s, struct client *c, const char *line, size_t len)
{
	json_error_t je;
	json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!msg) {
		char desc[300];
		snprintf(desc, sizeof(desc), "JSON parse error: %s", je.text);
		send_json(c, error_reply("GenericError", desc, NULL));
		return;
	}
	json_t *id = json_object_get(msg, "id");
	json_t *exec = json_object_get(msg, "execute");
	json_t *args = json_object_get(msg, "arguments");
	if (!json_is_object(msg) || !json_is_string(exec)) {
		send_json(c,
			  error_reply("GenericError",
				      "a request is an object with \"execute\": \"command\"", id));
		goto out;
	}
	const char *key;
	json_t *v;
	json_object_foreach(msg, key, v)
	{
		(void)v;
		if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
			char desc[200];
			snprintf(desc, sizeof(desc), "unknown request member '%.64s'", key);
			send_json(c, error_reply("GenericError", desc, id));
			goto out;
		}
	}
	if (args && !json_is_object(args)) {
		send_json(c, error_reply("GenericError", "\"arguments\" must be an object", id));
		goto out;
	}
	const char *name = json_string_value(exec);
	const struct control_command *cmd = control_command_find(name);
	if (!cmd) {
		char desc[200];
		snprintf(desc, sizeof(desc), "The command %.64s has not been found", name);
		send_json(c, error_reply("CommandNotFound", desc, id));
		goto out;
	}
	if (!handler_present(&s->h, cmd)) {
		char desc[200];
		snprintf(desc, sizeof(desc), "this VM does not support %s", cmd->name);
		send_json(
		    c, error_reply(cmd->missing ? cmd->missing : "CommandNotAvailable", desc, id));
		goto out;
	}
	char why[200];
	if (control_command_check_args(cmd, args, why, sizeof(why))) {
		send_json(c, error_reply("GenericError", why, id));
		goto out;
	}
	if (!cmd->by_vmm) {
		serve(s, c, cmd, args, id);
		goto out;
	}
	struct request *req = calloc(1, sizeof(*req));
	if (!req) {
		send_json(c, error_reply("GenericError", "out of memory", id));
		goto out;
	}
	req->s = s;
	req->cmd = cmd;
	req->id = id ? json_incref(id) : NULL;
	req->args = args ? json_incref(args) : NULL;
	req->timeout_ms = cmd->timeout_ms > s->timeout_ms ? cmd->timeout_ms : s->timeout_ms;
	req->deadline = mono_ms() + req->timeout_ms;
	if (cmd->reply_first) {
		/* The reply goes out before the VMM is asked to end, as QMP does. */
		json_t *reply = json_pack("{s:{}}", "return");
		if (reply && id)
			json_object_set(reply, "id", id);
		send_json(c, reply);
		flush_out(c);
	} else {
		req->client = c;
	}
	/* Hung handlers keep their threads: a client retrying a command that hangs must not
	 * pile them up without end. */
	bool busy = s->workers >= CONTROL_MAX_WORKERS;
	if (busy || !start_worker(s, req)) {
		req->client = NULL;
		json_decref(req->id);
		json_decref(req->args);
		free(req);
		send_json(c, error_reply("GenericError",
					 busy ? "too many commands still running in this VM"
					      : "cannot start a handler thread",
					 id));
		goto out;
	}
	if (req->client)
		c->req = req;
out:
	json_decref(msg);
}

/* Runs the complete lines a client has sent, stopping while a request is in flight. */
static void process_input(struct control_server *s, struct client *c)
{
	while (!c->req && !c->stream && !c->dead && !c->closing && c->inlen > 0) {
		char *nl = memchr(c->in, '\n', c->inlen);
		if (!nl) {
			if (c->inlen >= CONTROL_LINE_MAX) {
				char desc[100];
				snprintf(desc, sizeof(desc),
					 "request line longer than %d bytes: closing",
					 CONTROL_LINE_MAX);
				send_json(c, error_reply("GenericError", desc, NULL));
				c->closing = true;
			}
			return;
		}
		size_t len = (size_t)(nl - c->in);
		/* Blank lines (and a trailing \r) are tolerated, as with telnet/socat. */
		size_t l = len;
		if (l > 0 && c->in[l - 1] == '\r')
			l--;
		if (l > 0)
			handle_line(s, c, c->in, l);
		memmove(c->in, nl + 1, c->inlen - len - 1);
		c->inlen -= len + 1;
	}
	if (c->stream && c->inlen > 0 && s->h.console_input) {
		/* Bytes that followed the console request in the same read. */
		s->h.console_input(s->h.opaque, c->in, c->inlen);
		c->inlen = 0;
	}
	if (c->eof && !c->stream && !c->req && !memchr(c->in, '\n', c->inlen))
		c->closing = true;
}

static void read_client(struct control_server *s, struct client *c)
{
	if (c->stream) {
		char buf[4096];
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			c->dead = true;
			return;
		}
		if (s->h.console_input)
			s->h.console_input(s->h.opaque, buf, (size_t)n);
		return;
	}
	if (c->inlen >= CONTROL_LINE_MAX)
		return;
	ssize_t n = recv(c->fd, c->in + c->inlen, CONTROL_LINE_MAX - c->inlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		c->dead = true;
		return;
	}
	if (n == 0)
		c->eof = true; /* `echo '{...}' | socat - UNIX:...` still gets its answers */
	c->inlen += (size_t)n;
	process_input(s, c);
}

static void refuse(int fd, const char *cls, const char *desc)
{
	json_t *r = error_reply(cls, desc, NULL);
	char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
	json_decref(r);
	if (text) {
		/* Best effort: the socket buffer of a fresh connection takes a short line. */
		size_t len = strlen(text);
		text[len] = '\n';
		if (send(fd, text, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* Nothing more to do: the peer sees the connection close. */
		}
		free(text);
	}
	close(fd);
}

static void accept_client(struct control_server *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			kite_warn("control socket: accept: %s", strerror(errno));
		return;
	}
	char why[160];
	if (!peer_allowed(fd, why, sizeof(why))) {
		refuse(fd, "PermissionDenied", why);
		return;
	}
	if (s->nclients >= CONTROL_MAX_CLIENTS) {
		refuse(fd, "GenericError", "too many connections to this VM");
		return;
	}
	struct client *c = calloc(1, sizeof(*c));
	if (c)
		c->in = malloc(CONTROL_LINE_MAX);
	if (!c || !c->in) {
		if (c)
			free(c);
		refuse(fd, "GenericError", "out of memory");
		return;
	}
	c->fd = fd;
	c->next = s->clients;
	s->clients = c;
	s->nclients++;
	json_t *g = json_pack("{s:{s:o, s:i, s:s?, s:[ss]}}", "kite", "version", version_json(),
			      "protocol", CONTROL_PROTOCOL_VERSION, "name", s->name, "capabilities",
			      "events", "console");
	send_json(c, g);
	flush_out(c);
}

static void free_client(struct control_server *s, struct client *c)
{
	if (c->req)
		c->req->client = NULL; /* the worker frees it */
	if (c->stream)
		atomic_fetch_sub(&s->nstream, 1);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
	s->nclients--;
}

/* Replies of finished requests and Timeout errors of late ones. Returns the nearest
 * deadline still pending, or -1. */
static int64_t settle_requests(struct control_server *s)
{
	int64_t now = mono_ms(), next = -1;
	for (struct client *c = s->clients; c; c = c->next) {
		struct request *req = c->req;
		if (!req)
			continue;
		if (req->done) {
			send_json(c, req->reply);
			json_decref(req->id);
			json_decref(req->args);
			free(req);
			c->req = NULL;
			process_input(s, c);
		} else if (now >= req->deadline) {
			char desc[160];
			snprintf(desc, sizeof(desc), "%s did not complete within %d ms",
				 req->cmd->name, req->timeout_ms);
			send_json(c, error_reply("Timeout", desc, req->id));
			req->client = NULL; /* the worker frees it when the handler returns */
			c->req = NULL;
			process_input(s, c);
		} else if (next < 0 || req->deadline < next) {
			next = req->deadline;
		}
	}
	return next;
}

static void *server_thread(void *arg)
{
	struct control_server *s = arg;
	struct pollfd *pfd = NULL;
	struct client **map = NULL;
	size_t cap = 0;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		int64_t deadline = settle_requests(s);
		if (s->quit) {
			/* Last replies (to "system_powerdown" that ended the VM, say) go out. */
			for (struct client *c = s->clients; c; c = c->next)
				flush_out(c);
			break;
		}
		size_t need = (size_t)s->nclients + 2;
		if (need > cap) {
			struct pollfd *np = realloc(pfd, need * sizeof(*pfd));
			struct client **nm = np ? realloc(map, need * sizeof(*map)) : NULL;
			if (np)
				pfd = np;
			if (!nm) {
				kite_warn("control socket: out of memory; stopping");
				break;
			}
			map = nm;
			cap = need;
		}
		size_t n = 0;
		pfd[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
		for (struct client *c = s->clients; c; c = c->next) {
			if (c->stream)
				flush_stream(s, c);
			short ev = 0;
			if (c->stream ||
			    (!c->req && !c->closing && !c->eof && c->inlen < CONTROL_LINE_MAX))
				ev |= POLLIN;
			if (c->outlen > 0)
				ev |= POLLOUT;
			if (c->stream && c->outlen == 0 &&
			    console_ring_head(&s->ring) != c->ring_pos)
				ev |= POLLOUT;
			map[n] = c;
			pfd[n++] = (struct pollfd){.fd = c->fd, .events = ev};
		}
		int timeout = -1;
		if (deadline >= 0) {
			int64_t d = deadline - mono_ms();
			timeout = d < 0 ? 0 : (int)d + 1;
		}
		pthread_mutex_unlock(&s->lock);
		int r = poll(pfd, n, timeout);
		int perr = errno;
		pthread_mutex_lock(&s->lock);
		if (r < 0) {
			if (perr == EINTR)
				continue;
			kite_warn("control socket: poll: %s", strerror(perr));
			break;
		}
		if (pfd[0].revents & POLLIN) {
			char buf[64];
			while (read(s->wake[0], buf, sizeof(buf)) > 0)
				;
		}
		if (pfd[1].revents & POLLIN)
			accept_client(s);
		for (size_t i = 2; i < n; i++) {
			struct client *c = map[i];
			/* POLLHUP: both directions are gone, nothing more can be said to it. */
			if (pfd[i].revents & (POLLERR | POLLNVAL | POLLHUP))
				c->dead = true;
			if (!c->dead && (pfd[i].revents & POLLIN))
				read_client(s, c);
			if (!c->dead && (pfd[i].revents & POLLOUT))
				flush_out(c);
		}
		/* Drop finished connections (new ones from accept_client are at the head and
		 * were not polled yet: they are kept). */
		for (struct client **pp = &s->clients; *pp;) {
			struct client *c = *pp;
			flush_out(c);
			if (c->dead || (c->closing && c->outlen == 0)) {
				*pp = c->next;
				free_client(s, c);
			} else {
				pp = &c->next;
			}
		}
	}
	pthread_mutex_unlock(&s->lock);
	free(pfd);
	free(map);
	return NULL;
}

static int bind_socket(struct control_server *s, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return kite_error("control socket %s: path longer than %zu bytes", path,
				  sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	snprintf(s->path, sizeof(s->path), "%s", path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return kite_error("control socket %s: exists and is not a socket", path);
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return kite_error_errno(errno, "socket");
		int r = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
		close(probe);
		if (r == 0)
			return kite_error("control socket %s: another VM is listening on it", path);
		if (unlink(path) < 0)
			return kite_error_errno(errno, "cannot remove stale socket %s", path);
	}
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		return kite_error_errno(errno, "socket");
	if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return kite_error_errno(errno, "cannot bind control socket %s", path);
	/* Permissions are set before listen(): until then, connects are refused. */
	if (chmod(path, 0660) < 0)
		return kite_error_errno(errno, "chmod %s", path);
	gid_t gid;
	if (kite_group(&gid) && chown(path, (uid_t)-1, gid) < 0)
		return kite_error_errno(errno, "chown %s to group kite", path);
	if (listen(s->listen_fd, 16) < 0)
		return kite_error_errno(errno, "listen %s", path);
	return 0;
}

int control_server_start(const char *path, const char *name, const struct control_handlers *h,
			 struct control_server **out)
{
	struct control_server *s = calloc(1, sizeof(*s));
	if (!s)
		return kite_error("out of memory");
	s->listen_fd = -1;
	s->wake[0] = s->wake[1] = -1;
	s->h = *h;
	s->timeout_ms = CONTROL_DEFAULT_TIMEOUT_MS;
	if (name && !(s->name = strdup(name)))
		goto fail;
	if (console_ring_init(&s->ring, CONTROL_CONSOLE_RING_SIZE) < 0)
		goto fail_ring;
	if (pipe2(s->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
		kite_error_errno(errno, "pipe");
		goto fail_pipe;
	}
	if (bind_socket(s, path) < 0)
		goto fail_sock;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	int e = pthread_create(&s->thread, NULL, server_thread, s);
	if (e) {
		kite_error_errno(e, "cannot start the control socket thread");
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->idle);
		unlink(path);
		goto fail_sock;
	}
	*out = s;
	return 0;
fail_sock:
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	close(s->wake[0]);
	close(s->wake[1]);
fail_pipe:
	console_ring_destroy(&s->ring);
fail_ring:
	free(s->name);
	free(s);
	return -1;
fail:
	free(s);
	return kite_error("out of memory");
}

void control_server_stop(struct control_server *s)
{
	if (!s)
		return;
	/* Handlers still running (the one that asked the VMM to end, often) finish first, so
	 * that their replies are sent; a handler that hangs is given up on after 2 s. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	pthread_mutex_lock(&s->lock);
	while (s->workers > 0)
		if (pthread_cond_timedwait(&s->idle, &s->lock, &until) == ETIMEDOUT)
			break;
	bool stuck = s->workers > 0;
	s->quit = true;
	pthread_mutex_unlock(&s->lock);
	wake(s);
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&s->lock);
	while (s->clients) {
		struct client *c = s->clients;
		s->clients = c->next;
		flush_out(c);
		free_client(s, c);
	}
	pthread_mutex_unlock(&s->lock);
	close(s->listen_fd);
	unlink(s->path);
	if (stuck) {
		/* A handler never returned: the server stays allocated under it (the process is
		 * ending anyway) rather than being freed while it still runs. */
		kite_warn("control socket: a command handler is still running; not waiting");
		return;
	}
	close(s->wake[0]);
	close(s->wake[1]);
	console_ring_destroy(&s->ring);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->idle);
	free(s->name);
	free(s);
}

void control_server_emit_event(struct control_server *s, const char *name, json_t *data)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&s->lock);
	for (struct client *c = s->clients; c; c = c->next) {
		if (c->stream || c->dead)
			continue;
		json_t *ev = json_pack("{s:s, s:{s:I, s:I}}", "event", name, "timestamp", "seconds",
				       (json_int_t)ts.tv_sec, "microseconds",
				       (json_int_t)(ts.tv_nsec / 1000));
		if (ev && data)
			json_object_set(ev, "data", data);
		send_json(c, ev);
	}
	pthread_mutex_unlock(&s->lock);
	json_decref(data);
	wake(s);
}

void control_server_console_output(struct control_server *s, const void *data, size_t len)
{
	console_ring_write(&s->ring, data, len);
	if (atomic_load(&s->nstream) > 0)
		wake(s);
}

void control_server_set_timeout(struct control_server *s, int timeout_ms)
{
	pthread_mutex_lock(&s->lock);
	s->timeout_ms = timeout_ms > 0 ? timeout_ms : CONTROL_DEFAULT_TIMEOUT_MS;
	pthread_mutex_unlock(&s->lock);
}

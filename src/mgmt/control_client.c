#include "mgmt/control_client.h"
#include "mgmt/control_server.h"
#include "mgmt/fileutil.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_LINE_MAX (1 << 20)

struct control_client {
	int fd;
	char *in;
	size_t inlen;
	json_t *greeting;
	json_t *events; /* array of queued events */
	json_int_t next_id;
	char err[512];
	char err_class[64];
};

static int set_err(struct control_client *c, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(struct control_client *c, const char *cls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	snprintf(c->err_class, sizeof(c->err_class), "%s", cls);
	return -1;
}

/* Reads until a full line is buffered or the deadline passes. */
static int read_line(struct control_client *c, int64_t deadline, json_t **msg)
{
	for (;;) {
		char *nl = c->inlen ? memchr(c->in, '\n', c->inlen) : NULL;
		if (nl) {
			size_t len = (size_t)(nl - c->in);
			json_error_t je;
			json_t *m = json_loadb(c->in, len, 0, &je);
			memmove(c->in, nl + 1, c->inlen - len - 1);
			c->inlen -= len + 1;
			if (!m || !json_is_object(m)) {
				json_decref(m);
				return set_err(c, "ProtocolError",
					       "the VM sent a line that is not a JSON object");
			}
			*msg = m;
			return 0;
		}
		if (c->inlen >= CLIENT_LINE_MAX)
			return set_err(c, "ProtocolError", "the VM sent a line over 1 MiB");
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return set_err(c, "Timeout", "no answer from the VM");
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return set_err(c, "ProtocolError", "poll: %s", strerror(errno));
		if (r == 0)
			continue;
		ssize_t n = recv(c->fd, c->in + c->inlen, CLIENT_LINE_MAX - c->inlen, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return set_err(c, "Disconnected", "connection to the VM failed: %s",
				       strerror(errno));
		if (n == 0)
			return set_err(c, "Disconnected", "the VM closed the connection");
		c->inlen += (size_t)n;
	}
}

static int send_all(struct control_client *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return set_err(c, "Disconnected", "cannot send to the VM: %s",
				       strerror(errno));
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static void error_from_reply(struct control_client *c, json_t *msg)
{
	json_t *e = json_object_get(msg, "error");
	const char *cls = json_string_value(json_object_get(e, "class"));
	const char *desc = json_string_value(json_object_get(e, "desc"));
	set_err(c, cls ? cls : "GenericError", "%s", desc ? desc : "the VM reported an error");
}

int control_client_connect(const char *path, int timeout_ms, struct control_client **out,
			   char **err)
{
	struct control_client *c = calloc(1, sizeof(*c));
	char *reason = NULL;
	if (err)
		*err = NULL;
	if (!c || !(c->in = malloc(CLIENT_LINE_MAX)) || !(c->events = json_array())) {
		reason = strdup("out of memory");
		goto fail;
	}
	c->fd = -1;
	c->next_id = 1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		if (asprintf(&reason, "socket path %s is too long", path) < 0)
			reason = NULL;
		goto fail;
	}
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		if (asprintf(&reason, "socket: %s", strerror(errno)) < 0)
			reason = NULL;
		goto fail;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		const char *what = e == ENOENT	       ? "no control socket (is it running?)"
				   : e == ECONNREFUSED ? "nothing listens on the control socket"
				   : e == EACCES       ? "permission denied on the control socket"
						       : strerror(e);
		if (asprintf(&reason, "%s: %s", path, what) < 0)
			reason = NULL;
		goto fail;
	}
	json_t *g;
	if (read_line(c, mono_ms() + timeout_ms, &g) < 0) {
		reason = strdup(c->err);
		goto fail;
	}
	if (json_object_get(g, "error")) {
		error_from_reply(c, g);
		json_decref(g);
		if (asprintf(&reason, "refused: %s", c->err) < 0)
			reason = NULL;
		goto fail;
	}
	json_t *k = json_object_get(g, "kite");
	json_t *proto = json_object_get(k, "protocol");
	if (!json_is_integer(proto) || json_integer_value(proto) != CONTROL_PROTOCOL_VERSION) {
		json_decref(g);
		if (asprintf(&reason, "%s: unsupported protocol (expected version %d)", path,
			     CONTROL_PROTOCOL_VERSION) < 0)
			reason = NULL;
		goto fail;
	}
	c->greeting = g;
	*out = c;
	return 0;
fail:
	if (err)
		*err = reason ? reason : strdup("out of memory");
	else
		free(reason);
	control_client_close(c);
	return -1;
}

int control_client_send_raw(struct control_client *c, const void *data, size_t len)
{
	return send_all(c, data, len);
}

int control_client_read_message(struct control_client *c, int timeout_ms, json_t **msg)
{
	return read_line(c, mono_ms() + timeout_ms, msg);
}

int control_client_execute(struct control_client *c, const char *cmd, json_t *args, json_t **ret,
			   int timeout_ms)
{
	json_int_t id = c->next_id++;
	json_t *req = json_pack("{s:s, s:I}", "execute", cmd, "id", id);
	if (!req) {
		json_decref(args);
		return set_err(c, "GenericError", "out of memory");
	}
	if (args)
		json_object_set_new(req, "arguments", args);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return set_err(c, "GenericError", "out of memory");
	size_t len = strlen(text);
	char *line = realloc(text, len + 2);
	if (!line) {
		free(text);
		return set_err(c, "GenericError", "out of memory");
	}
	line[len] = '\n';
	int r = send_all(c, line, len + 1);
	free(line);
	if (r < 0)
		return -1;
	int64_t deadline = mono_ms() + timeout_ms;
	for (;;) {
		json_t *msg;
		if (read_line(c, deadline, &msg) < 0) {
			if (!strcmp(c->err_class, "Timeout"))
				set_err(c, "Timeout", "%s: no answer from the VM within %d ms", cmd,
					timeout_ms);
			return -1;
		}
		if (json_object_get(msg, "event")) {
			json_array_append_new(c->events, msg);
			continue;
		}
		json_t *mid = json_object_get(msg, "id");
		if (mid && !(json_is_integer(mid) && json_integer_value(mid) == id)) {
			json_decref(msg); /* a late answer to an earlier, timed-out request */
			continue;
		}
		if (json_object_get(msg, "error")) {
			error_from_reply(c, msg);
			json_decref(msg);
			return -1;
		}
		json_t *rv = json_object_get(msg, "return");
		if (!rv) {
			json_decref(msg);
			return set_err(c, "ProtocolError", "reply without return or error");
		}
		if (ret)
			*ret = json_incref(rv);
		json_decref(msg);
		return 0;
	}
}

int control_client_next_event(struct control_client *c, int timeout_ms, json_t **event)
{
	if (json_array_size(c->events) > 0) {
		*event = json_incref(json_array_get(c->events, 0));
		json_array_remove(c->events, 0);
		return 0;
	}
	int64_t deadline = mono_ms() + timeout_ms;
	for (;;) {
		json_t *msg;
		if (read_line(c, deadline, &msg) < 0)
			return -1;
		if (json_object_get(msg, "event")) {
			*event = msg;
			return 0;
		}
		json_decref(msg);
	}
}

int control_client_console(struct control_client *c, int in_fd, int out_fd, int linger_ms)
{
	/* Bytes that arrived with the reply to "console" are console output already. */
	if (c->inlen && write_all(out_fd, c->in, c->inlen) < 0)
		return set_err(c, "GenericError", "write: %s", strerror(errno));
	c->inlen = 0;
	bool in_open = true;
	char buf[4096];
	for (;;) {
		struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
				      {.fd = in_open ? in_fd : -1, .events = POLLIN}};
		int r = poll(p, 2, in_open ? -1 : linger_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return set_err(c, "GenericError", "poll: %s", strerror(errno));
		if (r == 0)
			return 0; /* input ended and the output has gone quiet */
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return 1;
			if (write_all(out_fd, buf, (size_t)n) < 0)
				return set_err(c, "GenericError", "write: %s", strerror(errno));
		}
		if (in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(in_fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				in_open = false;
				continue;
			}
			char *esc = memchr(buf, CONSOLE_ESCAPE, (size_t)n);
			size_t len = esc ? (size_t)(esc - buf) : (size_t)n;
			if (len && send_all(c, buf, len) < 0)
				return -1;
			if (esc)
				return 0;
		}
	}
}

ssize_t control_client_read_raw(struct control_client *c, void *buf, size_t len)
{
	if (c->inlen > 0) {
		size_t n = c->inlen < len ? c->inlen : len;
		memcpy(buf, c->in, n);
		memmove(c->in, c->in + n, c->inlen - n);
		c->inlen -= n;
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			set_err(c, "Disconnected", "connection to the VM failed: %s",
				strerror(errno));
		return n;
	}
}

json_t *control_client_greeting(struct control_client *c)
{
	return c->greeting;
}

const char *control_client_error(struct control_client *c)
{
	return c->err;
}

const char *control_client_error_class(struct control_client *c)
{
	return c->err_class;
}

void control_client_close(struct control_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	json_decref(c->greeting);
	json_decref(c->events);
	free(c);
}

#include "devices/console.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#define CTRL_A 0x01

/* Hands pending input to the attached device. Called with the lock held. */
static void deliver(struct console *c)
{
	if (!c->input || c->npending == 0)
		return;
	size_t took = c->input(c->opaque, c->pending, c->npending);
	if (took > c->npending)
		took = c->npending;
	memmove(c->pending, c->pending + took, c->npending - took);
	c->npending -= took;
}

/* Filters the Ctrl-A escape sequences out of fresh input. Returns true to quit. */
static bool filter_keys(struct console *c, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = buf[i];
		if (c->raw_tty && c->escape) {
			c->escape = false;
			if (ch == 'x' || ch == 'X')
				return true;
			if (ch != CTRL_A)
				continue;
		} else if (c->raw_tty && ch == CTRL_A) {
			c->escape = true;
			continue;
		}
		if (c->npending < sizeof(c->pending))
			c->pending[c->npending++] = ch;
	}
	return false;
}

static void *reader_main(void *arg)
{
	struct console *c = arg;
	bool eof = false;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		bool stop = c->stopping;
		deliver(c);
		bool room = c->npending < sizeof(c->pending) / 2;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
		struct pollfd p[2] = {{c->wake_pipe[0], POLLIN, 0}, {c->in_fd, POLLIN, 0}};
		int n = poll(p, (room && !eof) ? 2 : 1, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			kite_error_errno(errno, "console: poll");
			break;
		}
		if (p[0].revents) {
			uint8_t drain[64];
			if (read(c->wake_pipe[0], drain, sizeof(drain)) < 0 && errno != EAGAIN)
				break;
		}
		if (room && !eof && p[1].revents) {
			uint8_t buf[128];
			ssize_t r = read(c->in_fd, buf, sizeof(buf));
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				eof = true; /* input closed: the guest keeps running */
				continue;
			}
			pthread_mutex_lock(&c->lock);
			bool quit = filter_keys(c, buf, (size_t)r);
			console_quit_fn qf = c->quit;
			void *op = c->quit_opaque;
			pthread_mutex_unlock(&c->lock);
			if (quit && qf)
				qf(op);
		}
	}
	return NULL;
}

int console_open(struct console *c, enum console_kind kind, const char *path)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->in_fd = -1;
	c->out_fd = -1;
	c->wake_pipe[0] = c->wake_pipe[1] = -1;
	pthread_mutex_init(&c->lock, NULL);
	if (kind == CONSOLE_NONE)
		return 0;
	if (kind == CONSOLE_FILE) {
		c->out_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (c->out_fd < 0)
			return kite_error_errno(errno, "--console: cannot open %s", path);
		return 0;
	}
	c->out_fd = STDOUT_FILENO;
	c->in_fd = STDIN_FILENO;
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &c->saved_tty) == 0) {
		struct termios raw = c->saved_tty;
		cfmakeraw(&raw);
		raw.c_oflag |= OPOST | ONLCR; /* keep the host terminal's newline handling */
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
			c->raw_tty = true;
	}
	if (pipe2(c->wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return kite_error_errno(errno, "console: pipe");
	int err = pthread_create(&c->reader, NULL, reader_main, c);
	if (err)
		return kite_error_errno(err, "console: cannot start the input thread");
	c->reader_started = true;
	return 0;
}

void console_attach(struct console *c, console_input_fn input, void *opaque)
{
	pthread_mutex_lock(&c->lock);
	c->input = input;
	c->opaque = opaque;
	pthread_mutex_unlock(&c->lock);
	console_kick(c);
}

void console_on_quit(struct console *c, console_quit_fn quit, void *opaque)
{
	pthread_mutex_lock(&c->lock);
	c->quit = quit;
	c->quit_opaque = opaque;
	pthread_mutex_unlock(&c->lock);
}

void console_inject(struct console *c, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&c->lock);
	if (c->input)
		c->input(c->opaque, buf, len);
	pthread_mutex_unlock(&c->lock);
}

void console_kick(struct console *c)
{
	if (c->wake_pipe[1] >= 0) {
		uint8_t one = 1;
		/* A full pipe already means a wake-up is pending. */
		if (write(c->wake_pipe[1], &one, 1) < 0 && errno != EAGAIN)
			kite_warn("console: cannot wake the input thread: %s", strerror(errno));
	}
}

int console_add_observer(struct console *c, console_observer_fn fn, void *opaque)
{
	if (c->nobservers == CONSOLE_MAX_OBSERVERS)
		return kite_error("console: too many output observers");
	c->observers[c->nobservers].fn = fn;
	c->observers[c->nobservers].opaque = opaque;
	c->nobservers++;
	return 0;
}

void console_write(struct console *c, const uint8_t *buf, size_t len)
{
	for (int i = 0; i < c->nobservers; i++)
		c->observers[i].fn(c->observers[i].opaque, buf, len);
	while (c->out_fd >= 0 && len > 0) {
		ssize_t w = write(c->out_fd, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = {c->out_fd, POLLOUT, 0};
				(void)poll(&p, 1, 100);
				continue;
			}
			return; /* output gone (closed pipe): the guest keeps running */
		}
		buf += w;
		len -= (size_t)w;
	}
}

void console_close(struct console *c)
{
	if (c->reader_started) {
		pthread_mutex_lock(&c->lock);
		c->stopping = true;
		pthread_mutex_unlock(&c->lock);
		console_kick(c);
		pthread_join(c->reader, NULL);
	}
	if (c->raw_tty)
		(void)tcsetattr(STDIN_FILENO, TCSANOW, &c->saved_tty);
	if (c->kind == CONSOLE_FILE && c->out_fd >= 0)
		close(c->out_fd);
	for (int i = 0; i < 2; i++)
		if (c->wake_pipe[i] >= 0)
			close(c->wake_pipe[i]);
	pthread_mutex_destroy(&c->lock);
	c->out_fd = -1;
}

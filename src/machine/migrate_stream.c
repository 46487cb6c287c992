/* The migration stream's transport and framing (machine/migrate.h). */
#include "util/err.h"
#include "machine/migrate.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define FAIL_MSG_MAX 4096

/* tcp:HOST:PORT (HOST may be [v6]) or unix:PATH into its parts. */
static int parse_dest(const char *dest, bool *is_unix, char *host, size_t hsize, char *port,
		      size_t psize)
{
	if (!strncmp(dest, "unix:", 5)) {
		*is_unix = true;
		if (!dest[5] || strlen(dest + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return kite_error("%s: unix:PATH needs a path of at most 107 bytes", dest);
		snprintf(host, hsize, "%s", dest + 5);
		return 0;
	}
	if (strncmp(dest, "tcp:", 4))
		return kite_error("%s: the destination must be tcp:HOST:PORT, unix:PATH or "
				  "ssh://[user@]host[:port][/STATE_DIR]",
				  dest);
	*is_unix = false;
	const char *h = dest + 4, *colon = strrchr(h, ':');
	if (!colon || colon == h || !colon[1])
		return kite_error("%s: tcp:HOST:PORT needs a host and a port", dest);
	size_t hl = (size_t)(colon - h);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= hsize || strlen(colon + 1) >= psize)
		return kite_error("%s: host or port too long", dest);
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, psize, "%s", colon + 1);
	return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	size_t n = strlen(path);
	if (n >= sizeof(sa->sun_path))
		return kite_error("%s: socket path too long", path);
	memcpy(sa->sun_path, path, n + 1);
	return 0;
}

static void tune(int fd)
{
	int one = 1, buf = 4 << 20;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

/* One shell word, single-quoted (ssh runs its command through the remote user's shell). */
static int quote(char *out, size_t size, const char *w)
{
	size_t n = 0;
	if (n + 1 >= size)
		return -1;
	out[n++] = '\'';
	for (; *w; w++) {
		if (*w == '\'') {
			if (n + 4 >= size)
				return -1;
			memcpy(out + n, "'\\''", 4);
			n += 4;
		} else {
			if (n + 1 >= size)
				return -1;
			out[n++] = *w;
		}
	}
	if (n + 2 > size)
		return -1;
	out[n++] = '\'';
	out[n] = '\0';
	return 0;
}

/* ssh://[user@]host[:port][/STATE_DIR]: `ssh host kite migrate-incoming [--state-dir DIR]
 * stdio` (Debian's OpenSSH client; KITE_REMOTE_KITE names kite there, default "kite"), the
 * stream over its standard input and output. The fd is one end of a socketpair. */
static int connect_ssh(const char *dest)
{
	const char *rest = dest + 6, *slash = strchr(rest, '/');
	char auth[512], port[32] = "", dir[PATH_MAX] = "";
	size_t al = slash ? (size_t)(slash - rest) : strlen(rest);
	if (al == 0 || al >= sizeof(auth))
		return kite_error("%s: ssh://[user@]host[:port][/STATE_DIR] needs a host", dest);
	memcpy(auth, rest, al);
	auth[al] = '\0';
	char *colon = strrchr(auth, ':');
	if (colon && !strchr(colon, ']')) {
		*colon = '\0';
		snprintf(port, sizeof(port), "%s", colon + 1);
		if (!port[0] || strspn(port, "0123456789") != strlen(port))
			return kite_error("%s: the ssh port must be a number", dest);
	}
	if (auth[0] == '-' || strchr(auth, '@') == auth + strlen(auth) - 1)
		return kite_error("%s: not a host", dest);
	if (slash && slash[1] && snprintf(dir, sizeof(dir), "%s", slash) >= (int)sizeof(dir))
		return kite_error("%s: path too long", dest);
	const char *kite = getenv("KITE_REMOTE_KITE");
	char cmd[4 * PATH_MAX], qk[PATH_MAX + 64], qd[2 * PATH_MAX];
	if (quote(qk, sizeof(qk), kite && *kite ? kite : "kite") < 0 ||
	    quote(qd, sizeof(qd), dir) < 0)
		return kite_error("%s: path too long", dest);
	snprintf(cmd, sizeof(cmd), "%s migrate-incoming%s%s stdio", qk,
		 dir[0] ? " --state-dir " : "", dir[0] ? qd : "");
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return kite_error_errno(errno, "socketpair");
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return kite_error_errno(errno, "fork");
	}
	if (pid == 0) {
		/* Twice: ssh is init's child, never our zombie. */
		if (fork() != 0)
			_exit(0);
		if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0)
			_exit(127);
		/* KITE_SSH_COMMAND: the client and its first options (words), as git's
		 * GIT_SSH_COMMAND; default "ssh". */
		const char *argv[48];
		int n = 0;
		char words[1024];
		const char *sc = getenv("KITE_SSH_COMMAND");
		snprintf(words, sizeof(words), "%s", sc && *sc ? sc : "ssh");
		for (char *save = NULL, *w = strtok_r(words, " ", &save); w && n < 32;
		     w = strtok_r(NULL, " ", &save))
			argv[n++] = w;
		argv[n++] = "-o";
		argv[n++] = "BatchMode=yes";
		if (port[0]) {
			argv[n++] = "-p";
			argv[n++] = port;
		}
		argv[n++] = "--";
		argv[n++] = auth;
		argv[n++] = cmd;
		argv[n] = NULL;
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(sv[1]);
	int ws;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	return sv[0];
}

/* A unix stream socket and the address of `path`, for connect or bind. The fd, or -1. */
static int unix_socket(const char *path, struct sockaddr_un *sa)
{
	if (unix_addr(path, sa) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kite_error_errno(errno, "socket");
	return fd;
}

int migrate_connect(const char *dest)
{
	if (!strncmp(dest, "ssh://", 6))
		return connect_ssh(dest);
	bool is_unix;
	char host[PATH_MAX], port[32];
	if (parse_dest(dest, &is_unix, host, sizeof(host), port, sizeof(port)) < 0)
		return -1;
	if (is_unix) {
		struct sockaddr_un sa;
		int fd = unix_socket(host, &sa);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			int e = errno;
			close(fd);
			return kite_error_errno(e, "%s: cannot connect", dest);
		}
		return fd;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	int e = getaddrinfo(host, port, &hints, &res);
	if (e)
		return kite_error("%s: %s", dest, gai_strerror(e));
	int fd = -1, err = 0;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return kite_error_errno(err, "%s: cannot connect", dest);
	tune(fd);
	return fd;
}

int migrate_listen(const char *dest)
{
	bool is_unix;
	char host[PATH_MAX], port[32];
	if (parse_dest(dest, &is_unix, host, sizeof(host), port, sizeof(port)) < 0)
		return -1;
	if (is_unix) {
		struct sockaddr_un sa;
		int fd = unix_socket(host, &sa);
		if (fd < 0)
			return -1;
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
			int e = errno;
			close(fd);
			return kite_error_errno(e, "%s: cannot listen", dest);
		}
		return fd;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	int e = getaddrinfo(host, port, &hints, &res);
	if (e)
		return kite_error("%s: %s", dest, gai_strerror(e));
	int fd = -1, err = 0, one = 1;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return kite_error_errno(err, "%s: cannot listen", dest);
	return fd;
}

int migrate_accept(int lfd)
{
	int fd;
	do {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return kite_error_errno(errno, "accept");
	tune(fd);
	return fd;
}

int migrate_write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int migrate_read_all(int fd, void *p, size_t len)
{
	uint8_t *b = p;
	while (len) {
		ssize_t n = read(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EIO;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int migrate_send_frame(int fd, uint32_t type, const void *p1, size_t l1, const void *p2, size_t l2)
{
	uint32_t head[2] = {type, (uint32_t)(l1 + l2)};
	uLong c = crc32(0L, Z_NULL, 0);
	if (l1)
		c = crc32(c, p1, (uInt)l1);
	if (l2)
		c = crc32(c, p2, (uInt)l2);
	uint32_t crc = (uint32_t)c;
	if (migrate_write_all(fd, head, sizeof(head)) < 0 ||
	    (l1 && migrate_write_all(fd, p1, l1) < 0) ||
	    (l2 && migrate_write_all(fd, p2, l2) < 0) || migrate_write_all(fd, &crc, 4) < 0)
		return -1;
	return 0;
}

int migrate_send_token(int fd, const char *token)
{
	return migrate_write_all(fd, token, 4);
}

int migrate_send_fail(int fd, const char *msg)
{
	uint32_t len = (uint32_t)strnlen(msg, FAIL_MSG_MAX);
	if (migrate_write_all(fd, "FAIL", 4) < 0 || migrate_write_all(fd, &len, 4) < 0)
		return -1;
	return migrate_write_all(fd, msg, len);
}

int migrate_expect_token(int fd, const char *want, const char *what)
{
	char tok[4];
	if (migrate_read_all(fd, tok, 4) < 0)
		return kite_error("%s: the destination went away", what);
	if (!memcmp(tok, want, 4))
		return 0;
	if (memcmp(tok, "FAIL", 4))
		return kite_error("%s: the destination answered garbage", what);
	uint32_t len;
	char msg[FAIL_MSG_MAX + 1];
	if (migrate_read_all(fd, &len, 4) < 0 || len > FAIL_MSG_MAX ||
	    migrate_read_all(fd, msg, len) < 0)
		return kite_error("%s: the destination failed", what);
	msg[len] = '\0';
	for (char *c = msg; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	/* Its own "kite: error: " prefix is ours already. */
	const char *m = !strncmp(msg, "kite: error: ", 13) ? msg + 13 : msg;
	return kite_error("%s: the destination refused: %s", what, m);
}

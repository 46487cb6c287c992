/* The migration stream's transport and framing (vmm/migrate.h). */
#include "util/err.h"
#include "vmm/migrate.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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
		return kite_error("%s: the destination must be tcp:HOST:PORT or unix:PATH", dest);
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

int migrate_connect(const char *dest)
{
	bool is_unix;
	char host[PATH_MAX], port[32];
	if (parse_dest(dest, &is_unix, host, sizeof(host), port, sizeof(port)) < 0)
		return -1;
	if (is_unix) {
		struct sockaddr_un sa;
		if (unix_addr(host, &sa) < 0)
			return -1;
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return kite_error_errno(errno, "socket");
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
		if (unix_addr(host, &sa) < 0)
			return -1;
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return kite_error_errno(errno, "socket");
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

/* A tap interface by name (IFF_TAP | IFF_NO_PI: plain Ethernet frames). Opening an existing
 * persistent tap needs only access to it; naming one that does not exist creates it, which
 * needs CAP_NET_ADMIN. One thread reads the fd while the guest has receive buffers. */
#include "net/bridge.h"
#include "net/net.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct net_tap {
	struct net_backend be;
	int fd, wake_fd;
	pthread_t thread;
	bool started;
	bool stop; /* atomic */
	char name[IFNAMSIZ];
	uint8_t buf[NET_MAX_FRAME];
};

static void wake_write(struct net_tap *t)
{
	uint64_t one = 1;
	if (write(t->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		kite_error_errno(errno, "tap %s: eventfd", t->name);
}

static void *tap_thread(void *arg)
{
	struct net_tap *t = arg;
	const struct net_frontend *fe = &t->be.fe;
	while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
		bool rx = !fe->can_receive || fe->can_receive(fe->opaque);
		struct pollfd p[2] = {{.fd = t->wake_fd, .events = POLLIN},
				      {.fd = t->fd, .events = rx ? POLLIN : 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			kite_error_errno(errno, "tap %s: poll", t->name);
			break;
		}
		if (p[0].revents & POLLIN) {
			uint64_t n;
			if (read(t->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
				kite_error_errno(errno, "tap %s: eventfd", t->name);
			if (fe->flush_tx)
				fe->flush_tx(fe->opaque);
		}
		if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			kite_error("tap %s: the interface went away", t->name);
			break;
		}
		/* Read while the guest can take frames. */
		while ((p[1].revents & POLLIN) &&
		       (!fe->can_receive || fe->can_receive(fe->opaque))) {
			ssize_t n = read(t->fd, t->buf, sizeof(t->buf));
			if (n < 0) {
				if (errno != EAGAIN && errno != EINTR)
					kite_error_errno(errno, "tap %s: read", t->name);
				break;
			}
			if (fe->receive)
				fe->receive(fe->opaque, t->buf, n);
		}
	}
	return NULL;
}

static int tap_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	struct net_tap *t = (struct net_tap *)be;
	ssize_t n = write(t->fd, frame, len);
	/* A full queue drops the frame, as a busy wire would. */
	return n == (ssize_t)len ? 0 : -1;
}

static void tap_wake(struct net_backend *be)
{
	wake_write((struct net_tap *)be);
}

static int tap_start(struct net_backend *be, const struct net_frontend *fe)
{
	struct net_tap *t = (struct net_tap *)be;
	t->be.fe = *fe;
	int err = pthread_create(&t->thread, NULL, tap_thread, t);
	if (err)
		return kite_error_errno(err, "tap %s: cannot start its thread", t->name);
	t->started = true;
	return 0;
}

static void tap_destroy(struct net_backend *be)
{
	struct net_tap *t = (struct net_tap *)be;
	if (!t)
		return;
	if (t->started) {
		__atomic_store_n(&t->stop, true, __ATOMIC_RELEASE);
		wake_write(t);
		pthread_join(t->thread, NULL);
	}
	if (t->fd >= 0)
		close(t->fd);
	if (t->wake_fd >= 0)
		close(t->wake_fd);
	free(t);
}

static const struct net_backend_ops tap_ops = {tap_send, tap_wake, tap_start, tap_destroy};

/* Opens tap `name` ("kitetap%d": the kernel picks a free one, which needs CAP_NET_ADMIN). */
static struct net_tap *tap_open(const char *name)
{
	struct net_tap *t = calloc(1, sizeof(*t));
	if (!t) {
		kite_error("tap: out of memory");
		return NULL;
	}
	t->be.ops = &tap_ops;
	t->wake_fd = -1;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		kite_error_errno(errno, "tap %s: cannot open /dev/net/tun", t->name);
		tap_destroy(&t->be);
		return NULL;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	memcpy(ifr.ifr_name, t->name, sizeof(ifr.ifr_name));
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		kite_error_errno(errno, "tap %s: cannot attach (does it exist, may we use it?)",
				 t->name);
		tap_destroy(&t->be);
		return NULL;
	}
	memcpy(t->name, ifr.ifr_name, sizeof(t->name)); /* the name the kernel gave it */
	t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->wake_fd < 0) {
		kite_error_errno(errno, "tap %s: eventfd", t->name);
		tap_destroy(&t->be);
		return NULL;
	}
	return t;
}

struct net_backend *net_tap_create(const struct nic_config *o)
{
	struct net_tap *t = tap_open(o->ifname);
	return t ? &t->be : NULL;
}

struct net_backend *net_bridge_create(const struct nic_config *o)
{
	if (!o->bridge[0]) {
		kite_error("network %s: its bridge was not looked up", o->network);
		return NULL;
	}
	if (!host_if_is_bridge(o->bridge)) {
		if (o->kind == NIC_NETWORK)
			kite_error("network %s: its bridge %s is not there: is the network active "
				   "(kite net-start %s)?",
				   o->network, o->bridge, o->network);
		else
			kite_error("--net bridge=%s: there is no bridge %s on this host", o->bridge,
				   o->bridge);
		return NULL;
	}
	/* The tap is not persistent: it goes away with the VMM, taking its port with it. */
	struct net_tap *t = tap_open("kitetap%d");
	if (!t)
		return NULL;
	if (host_bridge_add_port(o->bridge, t->name) < 0 || host_if_up(t->name) < 0) {
		tap_destroy(&t->be);
		return NULL;
	}
	return &t->be;
}

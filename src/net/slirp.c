/* User-mode NAT through libslirp, with VirtualBox's addressing: NIC n sits on
 * 10.0.(2+n).0/24, the gateway .2 reaches the host's loopback, .3 is the DNS proxy and
 * DHCP hands out .15. One thread polls slirp's sockets, its timers and an eventfd that the
 * NIC writes when the guest queued frames. */
#include "net/net.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <slirp/libslirp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct slirp_timer {
	SlirpTimerCb cb;
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
	struct slirp_timer *next;
};

struct net_slirp {
	struct net_backend be;
	Slirp *slirp;
	int wake_fd;
	pthread_t thread;
	bool started;
	bool stop; /* atomic */
	struct slirp_timer *timers;
	struct pollfd *pfds;
	int npfds, cap_pfds;
	unsigned guest_errors; /* slirp thread only */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- libslirp callbacks (all on the slirp thread, or during creation) ---- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct net_slirp *s = opaque;
	if (s->be.fe.receive)
		s->be.fe.receive(s->be.fe.opaque, buf, len);
	return (ssize_t)len; /* dropped frames are the guest's TCP's business */
}

static void cb_guest_error(const char *msg, void *opaque)
{
	/* The guest controls how often this happens: log the first few only. */
	struct net_slirp *s = opaque;
	if (s->guest_errors < 8)
		kite_warn("user network: %s%s", msg,
			  s->guest_errors == 7 ? " (further guest errors not shown)" : "");
	s->guest_errors++;
}

static int64_t cb_clock_get_ns(void *opaque)
{
	return now_ns();
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct net_slirp *s = opaque;
	struct slirp_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cb = cb;
	t->cb_opaque = cb_opaque;
	t->expire_ms = -1;
	t->next = s->timers;
	s->timers = t;
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct net_slirp *s = opaque;
	for (struct slirp_timer **p = &s->timers; *p; p = &(*p)->next) {
		if (*p == timer) {
			*p = (*p)->next;
			free(timer);
			return;
		}
	}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	((struct slirp_timer *)timer)->expire_ms = expire_ms;
}

static void cb_register_poll_fd(int fd, void *opaque)
{
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
}

static void wake_fd_write(struct net_slirp *s)
{
	uint64_t one = 1;
	/* A full counter (EAGAIN) already means "wake up". */
	if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		kite_error_errno(errno, "user network: eventfd");
}

static void cb_notify(void *opaque)
{
	wake_fd_write(opaque);
}

static const SlirpCb slirp_callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_new = cb_timer_new,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_register_poll_fd,
    .unregister_poll_fd = cb_unregister_poll_fd,
    .notify = cb_notify,
};

/* ---- poll loop ---- */

static int add_poll(int fd, int events, void *opaque)
{
	struct net_slirp *s = opaque;
	if (s->npfds == s->cap_pfds) {
		int cap = s->cap_pfds ? 2 * s->cap_pfds : 32;
		struct pollfd *p = realloc(s->pfds, cap * sizeof(*p));
		if (!p)
			return -1;
		s->pfds = p;
		s->cap_pfds = cap;
	}
	short ev = 0;
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	s->pfds[s->npfds] = (struct pollfd){.fd = fd, .events = ev};
	return s->npfds++;
}

static int get_revents(int idx, void *opaque)
{
	struct net_slirp *s = opaque;
	if (idx < 0 || idx >= s->npfds)
		return 0;
	short re = s->pfds[idx].revents;
	int ev = 0;
	if (re & POLLIN)
		ev |= SLIRP_POLL_IN;
	if (re & POLLOUT)
		ev |= SLIRP_POLL_OUT;
	if (re & POLLPRI)
		ev |= SLIRP_POLL_PRI;
	if (re & POLLERR)
		ev |= SLIRP_POLL_ERR;
	if (re & POLLHUP)
		ev |= SLIRP_POLL_HUP;
	return ev;
}

static void run_timers(struct net_slirp *s)
{
	int64_t now = now_ns() / 1000000;
	/* A callback may re-arm or free timers: restart the walk after each one fires. */
	for (bool fired = true; fired;) {
		fired = false;
		for (struct slirp_timer *t = s->timers; t; t = t->next) {
			if (t->expire_ms >= 0 && t->expire_ms <= now) {
				t->expire_ms = -1;
				t->cb(t->cb_opaque);
				fired = true;
				break;
			}
		}
	}
}

static void *slirp_thread(void *arg)
{
	struct net_slirp *s = arg;
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		s->npfds = 0;
		add_poll(s->wake_fd, SLIRP_POLL_IN, s);
		uint32_t timeout = 1000;
		slirp_pollfds_fill(s->slirp, &timeout, add_poll, s);
		int64_t now = now_ns() / 1000000;
		for (struct slirp_timer *t = s->timers; t; t = t->next) {
			if (t->expire_ms < 0)
				continue;
			int64_t left = t->expire_ms > now ? t->expire_ms - now : 0;
			if (left < timeout)
				timeout = (uint32_t)left;
		}
		int r = poll(s->pfds, s->npfds, (int)timeout);
		if (r < 0 && errno != EINTR) {
			kite_error_errno(errno, "user network: poll");
			break;
		}
		slirp_pollfds_poll(s->slirp, r < 0, get_revents, s);
		run_timers(s);
		if (r > 0 && (s->pfds[0].revents & POLLIN)) {
			uint64_t n;
			if (read(s->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
				kite_error_errno(errno, "user network: eventfd");
			if (s->be.fe.flush_tx)
				s->be.fe.flush_tx(s->be.fe.opaque);
		}
	}
	return NULL;
}

/* ---- backend ops ---- */

static int slirp_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	struct net_slirp *s = (struct net_slirp *)be;
	if (len > NET_MAX_FRAME)
		return -1;
	slirp_input(s->slirp, frame, (int)len);
	return 0;
}

static void slirp_wake(struct net_backend *be)
{
	wake_fd_write((struct net_slirp *)be);
}

static int slirp_start(struct net_backend *be, const struct net_frontend *fe)
{
	struct net_slirp *s = (struct net_slirp *)be;
	s->be.fe = *fe;
	int err = pthread_create(&s->thread, NULL, slirp_thread, s);
	if (err)
		return kite_error_errno(err, "user network: cannot start its thread");
	s->started = true;
	return 0;
}

static void slirp_destroy(struct net_backend *be)
{
	struct net_slirp *s = (struct net_slirp *)be;
	if (!s)
		return;
	if (s->started) {
		__atomic_store_n(&s->stop, true, __ATOMIC_RELEASE);
		wake_fd_write(s);
		pthread_join(s->thread, NULL);
	}
	if (s->slirp)
		slirp_cleanup(s->slirp);
	while (s->timers) {
		struct slirp_timer *t = s->timers;
		s->timers = t->next;
		free(t);
	}
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	free(s->pfds);
	free(s);
}

static const struct net_backend_ops slirp_ops = {slirp_send, slirp_wake, slirp_start,
						 slirp_destroy};

struct net_backend *net_slirp_create(const struct nic_config *o, unsigned index)
{
	struct net_slirp *s = calloc(1, sizeof(*s));
	if (!s) {
		kite_error("user network: out of memory");
		return NULL;
	}
	s->be.ops = &slirp_ops;
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wake_fd < 0) {
		kite_error_errno(errno, "user network: eventfd");
		slirp_destroy(&s->be);
		return NULL;
	}
	struct nic_user_addrs a;
	if (nic_user_resolve(o, index, &a, "user network") < 0) {
		slirp_destroy(&s->be);
		return NULL;
	}
	SlirpConfig cfg = {
	    .version = 3,
	    .restricted = o->user.restricted,
	    .in_enabled = true,
	    .vnetwork = {a.net},
	    .vnetmask = {a.mask},
	    .vhost = {a.host},
	    .in6_enabled = false,
	    .vhostname = o->user.hostname[0] ? o->user.hostname : "kite",
	    .vdhcp_start = {a.dhcp},
	    .vnameserver = {a.dns},
	};
	s->slirp = slirp_new(&cfg, &slirp_callbacks, s);
	if (!s->slirp) {
		kite_error("user network: libslirp refused its configuration");
		slirp_destroy(&s->be);
		return NULL;
	}
	for (int i = 0; i < o->nfwd; i++) {
		const struct net_hostfwd *f = &o->fwd[i];
		struct in_addr host = {f->host_addr};
		struct in_addr guest = {f->guest_addr ? f->guest_addr : a.dhcp};
		if (slirp_add_hostfwd(s->slirp, f->udp, host, f->host_port, guest, f->guest_port) <
		    0) {
			kite_error("user network: cannot forward host %s port %u (in use?)",
				   f->udp ? "udp" : "tcp", f->host_port);
			slirp_destroy(&s->be);
			return NULL;
		}
	}
	return &s->be;
}

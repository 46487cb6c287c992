/* Network backends (user-mode NAT through libslirp, tap) and the NIC frontend they feed.
 * A backend owns one thread that polls its host side; every frontend callback runs on it,
 * so host network I/O never runs on a vCPU thread. */
#ifndef KITE_NET_NET_H
#define KITE_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_MAX_HOSTFWD 16
#define NET_MAX_FRAME	65550 /* largest Ethernet frame handed either way */

/* The NIC as its backend sees it. Called on the backend thread. */
struct net_frontend {
	/* One frame for the guest. Returns 0, or -1 when it was dropped (no buffer). */
	int (*receive)(void *opaque, const uint8_t *frame, size_t len);
	/* True when the guest has posted receive buffers (a tap backend stops reading
	 * its fd otherwise). */
	bool (*can_receive)(void *opaque);
	/* Sends every frame the guest has queued, through net_backend_send(). */
	void (*flush_tx)(void *opaque);
	void *opaque;
};

struct net_backend;

struct net_backend_ops {
	/* Backend thread only. Returns 0 or -1 (the frame is lost, as on a wire). */
	int (*send)(struct net_backend *be, const uint8_t *frame, size_t len);
	/* Any thread: the backend thread calls flush_tx and re-checks can_receive soon. */
	void (*wake)(struct net_backend *be);
	/* Attaches the frontend and starts the backend thread. Returns 0 or -1. */
	int (*start)(struct net_backend *be, const struct net_frontend *fe);
	/* Stops the thread, frees everything. */
	void (*destroy)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	struct net_frontend fe;
};

static inline int net_backend_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
	return be->ops->send(be, frame, len);
}

/* ---- options: -n/--net user[,hostfwd=...]...[,mac=..] | tap=IFNAME[,mac=..] ---- */

struct net_hostfwd {
	bool udp;
	uint32_t host_addr; /* network order; 0 = any */
	uint16_t host_port;
	uint32_t guest_addr; /* network order; 0 = the NIC's DHCP address (.15) */
	uint16_t guest_port;
};

enum net_kind { NET_USER, NET_TAP };

struct net_opts {
	enum net_kind kind;
	char ifname[16]; /* tap */
	uint8_t mac[6];
	bool mac_set;
	int nfwd;
	struct net_hostfwd fwd[NET_MAX_HOSTFWD];
};

/* Parses one -n argument. Returns 0, or -1 with an error printed. */
int net_opts_parse(const char *arg, struct net_opts *o);
/* "tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" (QEMU's hostfwd syntax). */
int net_hostfwd_parse(const char *s, struct net_hostfwd *fwd);
/* The default MAC of NIC `index`: 52:54:00:12:34:56 + index, as QEMU. */
void net_default_mac(unsigned index, uint8_t mac[6]);

/* ---- backends ---- */
/* User-mode NAT for NIC `index` (0-based): 10.0.(2 + index).0/24, gateway .2 (the host's
 * loopback), DNS .3, guest .15 by DHCP; hostfwd rules from `o`. */
struct net_backend *net_slirp_create(const struct net_opts *o, unsigned index);
/* An existing tap interface by name (IFF_TAP | IFF_NO_PI). */
struct net_backend *net_tap_create(const struct net_opts *o);
/* Either, from parsed options. */
struct net_backend *net_backend_create(const struct net_opts *o, unsigned index);

#endif

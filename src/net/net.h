/* Network backends (user-mode NAT through libslirp, tap) and the NIC frontend they feed.
 * A backend owns one thread that polls its host side; every frontend callback runs on it,
 * so host network I/O never runs on a vCPU thread. */
#ifndef KITE_NET_NET_H
#define KITE_NET_NET_H

#include "config/machine_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_MAX_FRAME 65550 /* largest Ethernet frame handed either way */

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

/* ---- backends, from a machine's NIC (config/machine_config.h: --net's grammar) ---- */
/* User-mode NAT for NIC `index` (0-based): 10.0.(2 + index).0/24, gateway .2 (the host's
 * loopback), DNS .3, guest .15 by DHCP; hostfwd rules from `o`. */
struct net_backend *net_slirp_create(const struct nic_config *o, unsigned index);
/* An existing tap interface by name (IFF_TAP | IFF_NO_PI). */
struct net_backend *net_tap_create(const struct nic_config *o);
/* A new tap on the NIC's bridge (--net bridge=BR, or network=NAME once its bridge is looked
 * up); needs CAP_NET_ADMIN. */
struct net_backend *net_bridge_create(const struct nic_config *o);
/* Any of them, as the NIC says. */
struct net_backend *net_backend_create(const struct nic_config *o, unsigned index);

#endif

/* Host bridges and taps for named networks, through the kernel's ioctls (bridge module; needs
 * CAP_NET_ADMIN). Errors are reported; every function returns 0 or -1. */
#ifndef KITE_NET_BRIDGE_H
#define KITE_NET_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

bool host_if_exists(const char *name);
/* True when `name` exists and is a bridge. */
bool host_if_is_bridge(const char *name);
/* Creates the bridge (an existing one is an error: it is not ours). */
int host_bridge_add(const char *name);
/* Takes the interface down and deletes the bridge; a missing bridge is not an error. */
int host_bridge_del(const char *name);
/* Gives `name` the IPv4 address (network order) with `prefix` bits, and brings it up. */
int host_if_set_addr_up(const char *name, uint32_t addr, int prefix);
int host_if_up(const char *name);
/* Enslaves interface `port` to `bridge`. */
int host_bridge_add_port(const char *bridge, const char *port);

#endif

/* A named network (kite net-define): VirtualBox's host-only and internal networks and an
 * existing host bridge, described once: this struct, its JSON form and its option text. */
#ifndef KITE_CONFIG_NETWORK_CONFIG_H
#define KITE_CONFIG_NETWORK_CONFIG_H

#include "config/machine_config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum network_mode {
	NETWORK_HOSTONLY, /* a host bridge with an address, DHCP, no forwarding */
	NETWORK_INTERNAL, /* a host bridge without an address: guests see only each other */
	NETWORK_BRIDGE,	  /* an existing host bridge, the LAN's DHCP */
	NETWORK_NAT, /* host-only plus DNS and masquerade to the host's uplink (libvirt's default)
		      */
};

struct network_config {
	char name[MACHINE_NAME_MAX + 1];
	char uuid[37];
	enum network_mode mode;
	char bridge[NIC_IFNAME_MAX + 1]; /* "" until defined: the store picks kitebrN */
	uint32_t addr; /* the host's address on the bridge, network order; 0 = none */
	int prefix;
	bool dhcp;
	uint32_t dhcp_start, dhcp_end; /* network order */
	bool autostart;
};

/* The mode's defaults: host-only 192.168.56.1/24 with DHCP from .101 to .254 (VirtualBox's),
 * nat 192.168.122.1/24 with DHCP from .2 to .254 (libvirt's default network), internal and
 * bridge without address or DHCP. */
void network_config_init(struct network_config *n, enum network_mode mode);
int network_mode_parse(const char *s, enum network_mode *mode, const char *ctx);
const char *network_mode_name(enum network_mode mode);

/* One field from its text: name, uuid, mode (resets the defaults), bridge, ip
 * (ADDR/BITS or "none"), dhcp (START,END or "off"), autostart (on|off). 0 or -1. */
int network_config_set(struct network_config *n, const char *field, const char *value,
		       const char *ctx);
/* The cross-field rules: host-only has an address, DHCP inside its subnet and not on it,
 * internal/bridge have no DHCP, bridge names a bridge. 0 or -1 (reported with `ctx`). */
int network_config_check(const struct network_config *n, const char *ctx);
/* True when the two networks' subnets overlap. */
bool network_subnets_overlap(const struct network_config *a, const struct network_config *b);

json_t *network_config_to_json(const struct network_config *n);
int network_config_from_json(json_t *root, const char *where, struct network_config *n);

/* "192.168.56.1/24" / "192.168.56.101": for output. */
void network_ip_text(const struct network_config *n, char out[24]);
void network_addr_text(uint32_t addr, char out[16]);

#endif

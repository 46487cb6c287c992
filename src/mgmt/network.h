/* Named networks, kept daemonless like machines: STATE/networks/NAME.json (one struct
 * network_config, config/network_config.h) and, while a network is active, RUN/networks/NAME/
 * with dnsmasq's pid and lease files. Every verb takes STATE/networks/NAME.lock. Starting and
 * stopping are idempotent: a kite killed half-way leaves pieces that the next net-start or
 * net-destroy finds and removes. */
#ifndef KITE_MGMT_NETWORK_H
#define KITE_MGMT_NETWORK_H

#include "config/network_config.h"
#include "mgmt/paths.h"

/* Loads NAME. Returns 0, or -1 (reported; "no network named" when missing). */
int network_load(const struct mgmt_dirs *d, const char *name, struct network_config *n);
/* The same, printing nothing (a missing or corrupt definition is just -1). */
int network_load_quiet(const struct mgmt_dirs *d, const char *name, struct network_config *n);
/* Defines (or redefines) `n` after the checks: valid, no other network with its bridge or an
 * overlapping subnet; a UUID and, for host-only and internal networks, a free kitebrN bridge
 * name given when missing. The caller holds the lock. 0 or -1. */
int network_define(const struct mgmt_dirs *d, struct network_config *n);
/* Removes the definition; refuses an active network. Caller holds the lock. */
int network_undefine(const struct mgmt_dirs *d, const char *name);
int network_lock(const struct mgmt_dirs *d, const char *name);
/* Sorted names of the defined networks; the count or -1. Free with def_free_names. */
int network_list_names(const struct mgmt_dirs *d, char ***names);
/* Writes the definition back (autostart changed). Caller holds the lock. */
int network_save(const struct mgmt_dirs *d, const struct network_config *n);

/* Active: its bridge exists and, with DHCP, its dnsmasq runs. */
bool network_is_active(const struct mgmt_dirs *d, const struct network_config *n);
/* Creates what the network needs (bridge, address, dnsmasq) after removing any leftovers of
 * an earlier start. A bridge network only checks that its bridge exists. 0 or -1 (and
 * nothing left behind). */
int network_start(const struct mgmt_dirs *d, const struct network_config *n);
/* Stops dnsmasq and deletes the bridge kite made; whatever is already gone is skipped. */
int network_stop(const struct mgmt_dirs *d, const struct network_config *n);

/* Fills in the bridge of each of m's network=NAME NICs that has none, from the network's
 * definition; the network must be active. 0 or -1 (reported). */
int network_resolve_nics(const struct mgmt_dirs *d, struct machine_config *m);

/* network_nat.c: a nat network's masquerade (nftables, `script` keeps the rules) and IPv4
 * forwarding; stop removes the rules, whether there or not. */
int network_nat_start(const struct network_config *n, const char *script);
void network_nat_stop(const struct network_config *n);

struct network_lease {
	long long expiry; /* seconds since the epoch; 0 = infinite */
	char mac[18];
	char ip[16];
	char hostname[64];
	char client_id[96];
};
/* dnsmasq's current leases for the network. Returns the count (0 when none or inactive) or
 * -1; free *out. */
int network_leases(const struct mgmt_dirs *d, const struct network_config *n,
		   struct network_lease **out);

#endif

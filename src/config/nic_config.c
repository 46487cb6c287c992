/* One NIC: the --net grammar and the JSON NIC object, both through one table of keys. */
#include "config/machine_config.h"
#include "config/option_text.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void net_default_mac(unsigned index, uint8_t mac[6])
{
	const uint8_t base[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	memcpy(mac, base, 6);
	mac[5] = (uint8_t)(0x56 + index);
}

void mac_format(const uint8_t m[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

int mac_parse(const char *s, uint8_t mac[6])
{
	if (strlen(s) != 17)
		return -1;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)strtoul(s + 3 * i, NULL, 16);
	return 0;
}

static const char *const kind_names[] = {"user", "tap", "bridge", "network"};

const char *nic_kind_name(enum nic_kind k)
{
	return kind_names[k];
}

static int parse_port(const char *s, size_t n, uint16_t *port)
{
	char buf[8];
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	char *end;
	errno = 0;
	unsigned long v = strtoul(buf, &end, 10);
	if (errno || *end || v == 0 || v > 65535 || buf[0] == '-' || buf[0] == '+')
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int parse_addr(const char *s, size_t n, uint32_t *addr)
{
	char buf[INET_ADDRSTRLEN];
	if (n == 0) {
		*addr = 0;
		return 0;
	}
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	struct in_addr a;
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -1;
	*addr = a.s_addr;
	return 0;
}

int net_hostfwd_parse(const char *s, struct net_hostfwd *fwd, const char *ctx)
{
	memset(fwd, 0, sizeof(*fwd));
	const char *p = s;
	if (!strncmp(p, "tcp:", 4)) {
		p += 4;
	} else if (!strncmp(p, "udp:", 4)) {
		fwd->udp = true;
		p += 4;
	} else if (*p == ':') {
		p += 1; /* protocol omitted: tcp */
	} else {
		return kite_error("%s: hostfwd '%s': expected tcp: or udp:", ctx, s);
	}
	/* [HOSTADDR]:HOSTPORT */
	const char *colon = strchr(p, ':'), *dash = strchr(p, '-');
	if (!colon || !dash || colon > dash || parse_addr(p, colon - p, &fwd->host_addr) < 0 ||
	    parse_port(colon + 1, dash - colon - 1, &fwd->host_port) < 0)
		return kite_error(
		    "%s: hostfwd '%s': expected [HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", ctx, s);
	/* [GUESTADDR]:GUESTPORT */
	p = dash + 1;
	colon = strchr(p, ':');
	if (!colon || parse_addr(p, colon - p, &fwd->guest_addr) < 0 ||
	    parse_port(colon + 1, strlen(colon + 1), &fwd->guest_port) < 0)
		return kite_error(
		    "%s: hostfwd '%s': expected [HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", ctx, s);
	return 0;
}

static void addr_format(uint32_t addr, char out[INET_ADDRSTRLEN])
{
	out[0] = '\0';
	if (addr) {
		struct in_addr a = {.s_addr = addr};
		inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
	}
}

void net_hostfwd_format(const struct net_hostfwd *f, char *out, size_t size)
{
	char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];
	addr_format(f->host_addr, host);
	addr_format(f->guest_addr, guest);
	snprintf(out, size, "%s:%s:%u-%s:%u", f->udp ? "udp" : "tcp", host, f->host_port, guest,
		 f->guest_port);
}

static int set_type(struct nic_config *n, const char *v, const char *ctx)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (!strcmp(v, kind_names[i])) {
			n->kind = (enum nic_kind)i;
			return 0;
		}
	if (!strcmp(v, "ethernet")) { /* virsh's name for a tap */
		n->kind = NIC_TAP;
		return 0;
	}
	return kite_error("%s: '%s' is not user, tap, bridge or network", ctx, v);
}

static int check_ifname(const char *v, const char *what, const char *ctx)
{
	/* The kernel's rules for an interface name (dev_valid_name). */
	size_t len = strlen(v);
	if (len == 0 || len > NIC_IFNAME_MAX || !strcmp(v, ".") || !strcmp(v, ".."))
		return kite_error("%s: '%s' is not %s (1 to %d characters)", ctx, v, what,
				  NIC_IFNAME_MAX);
	for (const char *c = v; *c; c++)
		if (*c == '/' || *c == ':' || isspace((unsigned char)*c))
			return kite_error("%s: '%s' is not %s ('%c' is not allowed)", ctx, v, what,
					  *c);
	return 0;
}

static int set_bridge(struct nic_config *n, const char *v, const char *ctx)
{
	if (check_ifname(v, "a bridge name", ctx) < 0)
		return -1;
	snprintf(n->bridge, sizeof(n->bridge), "%s", v);
	return 0;
}

static int set_network(struct nic_config *n, const char *v, const char *ctx)
{
	if (!machine_name_check_quiet(v))
		return kite_error("%s: '%s' is not a network name (kite net-list --all)", ctx, v);
	snprintf(n->network, sizeof(n->network), "%s", v);
	return 0;
}

static int set_ifname(struct nic_config *n, const char *v, const char *ctx)
{
	if (check_ifname(v, "an interface name", ctx) < 0)
		return -1;
	snprintf(n->ifname, sizeof(n->ifname), "%s", v);
	return 0;
}

static int set_mac(struct nic_config *n, const char *v, const char *ctx)
{
	uint8_t mac[6];
	if (mac_parse(v, mac) < 0)
		return kite_error("%s: '%s' is not a MAC address like 52:54:00:12:34:56", ctx, v);
	if (mac[0] & 1)
		return kite_error("%s: '%s' is a multicast address: it cannot name a NIC", ctx, v);
	memcpy(n->mac, mac, 6);
	n->mac_set = true;
	return 0;
}

static int set_model(struct nic_config *n, const char *v, const char *ctx)
{
	if (strcmp(v, "virtio"))
		return kite_error("%s: '%s' is not supported (only virtio)", ctx, v);
	return 0;
}

static int add_hostfwd(struct nic_config *n, const char *v, const char *ctx)
{
	if (n->nfwd == MACHINE_MAX_HOSTFWD)
		return kite_error("%s: more than %d hostfwd rules", ctx, MACHINE_MAX_HOSTFWD);
	if (net_hostfwd_parse(v, &n->fwd[n->nfwd], ctx) < 0)
		return -1;
	n->nfwd++;
	return 0;
}

struct nic_key {
	const char *key;
	int (*set)(struct nic_config *n, const char *value, const char *ctx);
	bool repeated; /* a list in JSON, the key repeated in --net */
};

static const struct nic_key nic_keys[] = {
    {"type", set_type, false},
    {"ifname", set_ifname, false},
    {"mac", set_mac, false},
    {"model", set_model, false},
    {"hostfwd", add_hostfwd, true},
    {"net", nic_user_set_net, false},
    {"host", nic_user_set_host, false},
    {"dns", nic_user_set_dns, false},
    {"dhcpstart", nic_user_set_dhcpstart, false},
    {"restrict", nic_user_set_restrict, false},
    {"hostname", nic_user_set_hostname, false},
    {"bridge", set_bridge, false},
    {"network", set_network, false},
};
#define NKEYS (sizeof(nic_keys) / sizeof(nic_keys[0]))

static const struct nic_key *find_key(const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(nic_keys[i].key, key))
			return &nic_keys[i];
	return NULL;
}

int nic_config_set(struct nic_config *n, const char *key, const char *value, const char *ctx)
{
	const struct nic_key *k = find_key(key);
	if (!k)
		return kite_error(
		    "%s: unknown option '%s' (mac=, hostfwd=, ifname=, model=, net=, host=, "
		    "dns=, dhcpstart=, restrict=, hostname=, bridge=, network=)",
		    ctx, key);
	if (!value)
		return kite_error("%s: '%s' needs a value (%s=...)", ctx, key, key);
	return k->set(n, value, ctx);
}

int nic_config_check(const struct nic_config *n, const char *ctx)
{
	if (n->kind == NIC_TAP && !n->ifname[0])
		return kite_error("%s: a tap interface needs ifname (the host's tap device)", ctx);
	if (n->kind != NIC_TAP && n->ifname[0])
		return kite_error("%s: ifname is only for tap interfaces", ctx);
	if (n->kind != NIC_USER && n->nfwd)
		return kite_error("%s: hostfwd needs a user (NAT) interface", ctx);
	if (n->kind == NIC_BRIDGE && !n->bridge[0])
		return kite_error("%s: a bridge interface needs bridge=BR (the host's bridge)",
				  ctx);
	if (n->kind == NIC_NETWORK && !n->network[0])
		return kite_error("%s: a network interface needs network=NAME", ctx);
	if (n->kind != NIC_BRIDGE && n->kind != NIC_NETWORK && n->bridge[0])
		return kite_error("%s: bridge= is for bridge interfaces", ctx);
	if (n->kind != NIC_NETWORK && n->network[0])
		return kite_error("%s: network= is for network interfaces", ctx);
	if (n->kind != NIC_USER && nic_user_any(n))
		return kite_error("%s: net=, host=, dns=, dhcpstart=, restrict= and hostname= are "
				  "for user (NAT) interfaces",
				  ctx);
	/* With net= given the addresses do not depend on the NIC's place: check them now. */
	struct nic_user_addrs a;
	if (n->kind == NIC_USER && n->user.mask && nic_user_resolve(n, 0, &a, ctx) < 0)
		return -1;
	return 0;
}

int nic_config_parse(const char *spec, struct nic_config *n, const char *ctx)
{
	memset(n, 0, sizeof(*n));
	char where[600];
	snprintf(where, sizeof(where), "%s %.500s", ctx, spec);
	const char *p = spec;
	int r = 0;
	for (bool first = true; r == 0 && (first || *p); first = false) {
		char *item = option_next_item(&p);
		if (!item)
			return -1;
		char *eq = strchr(item, '=');
		if (eq)
			*eq = '\0';
		if (first && !strcmp(item, "tap") && eq)
			r = set_type(n, "tap", where) ?: set_ifname(n, eq + 1, where);
		else if (first && !strcmp(item, "bridge") && eq)
			r = set_type(n, "bridge", where) ?: set_bridge(n, eq + 1, where);
		else if (first && !strcmp(item, "network") && eq)
			r = set_type(n, "network", where) ?: set_network(n, eq + 1, where);
		else if (first && !eq && (!strcmp(item, "user") || !strcmp(item, "tap")))
			r = set_type(n, item, where);
		else if (first)
			r = kite_error(
			    "%s: expected user, tap=IFNAME, bridge=BR or network=NAME first",
			    where);
		else
			r = nic_config_set(n, item, eq ? eq + 1 : NULL, where);
		free(item);
	}
	if (r == 0)
		r = nic_config_check(n, where);
	return r;
}

char *nic_config_format(const struct nic_config *n)
{
	char *s = NULL;
	if (n->kind == NIC_BRIDGE || n->kind == NIC_NETWORK) {
		/* bridge=BR / network=NAME first (names without commas); a network's looked-up
		 * bridge is not written. */
		char first[80];
		snprintf(first, sizeof(first), "%s=%s", nic_kind_name(n->kind),
			 n->kind == NIC_BRIDGE ? n->bridge : n->network);
		if (option_append(&s, NULL, first) < 0)
			return NULL;
	} else if (option_append(&s, NULL, nic_kind_name(n->kind)) < 0 ||
		   (n->ifname[0] && option_append(&s, "ifname", n->ifname) < 0)) {
		return NULL;
	}
	if (n->mac_set) {
		char mac[18];
		mac_format(n->mac, mac);
		if (option_append(&s, "mac", mac) < 0)
			return NULL;
	}
	for (int i = 0; i < n->nfwd; i++) {
		char rule[64];
		net_hostfwd_format(&n->fwd[i], rule, sizeof(rule));
		if (option_append(&s, "hostfwd", rule) < 0)
			return NULL;
	}
	if (nic_user_format(n, &s) < 0)
		return NULL;
	return s;
}

static int set_from_json(struct nic_config *n, const struct nic_key *k, json_t *v,
			 const char *where)
{
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return kite_error("%s must be a string", where);
	return k->set(n, json_string_value(v), where);
}

int nic_config_from_json(json_t *obj, struct nic_config *n, const char *ctx)
{
	memset(n, 0, sizeof(*n));
	if (!json_is_object(obj))
		return kite_error("%s must be an object (or a --net string)", ctx);
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		char where[600];
		snprintf(where, sizeof(where), "%s.%s", ctx, key);
		const struct nic_key *k = find_key(key);
		if (!k)
			return kite_error("%s: unknown field '%s'", ctx, key);
		if (json_is_null(v))
			continue;
		if (!k->repeated) {
			if (set_from_json(n, k, v, where) < 0)
				return -1;
			continue;
		}
		if (!json_is_array(v))
			return kite_error("%s must be a list of strings", where);
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e)
		{
			char at[640];
			snprintf(at, sizeof(at), "%.600s[%zu]", where, i);
			if (set_from_json(n, k, e, at) < 0)
				return -1;
		}
	}
	return nic_config_check(n, ctx);
}

json_t *nic_config_to_json(const struct nic_config *n)
{
	json_t *o = json_pack("{s:s}", "type", nic_kind_name(n->kind));
	if (!o)
		return NULL;
	if (n->mac_set) {
		char mac[18];
		mac_format(n->mac, mac);
		if (json_object_set_new(o, "mac", json_string(mac)))
			goto fail;
	}
	if (json_object_set_new(o, "model", json_string("virtio")))
		goto fail;
	if (n->ifname[0] && json_object_set_new(o, "ifname", json_string(n->ifname)))
		goto fail;
	/* A network NIC's bridge only once looked up: in the definition a VMM is started with. */
	if (n->bridge[0] && json_object_set_new(o, "bridge", json_string(n->bridge)))
		goto fail;
	if (n->kind == NIC_NETWORK && json_object_set_new(o, "network", json_string(n->network)))
		goto fail;
	if (n->nfwd) {
		json_t *fwd = json_array();
		if (!fwd || json_object_set_new(o, "hostfwd", fwd))
			goto fail;
		for (int i = 0; i < n->nfwd; i++) {
			char rule[64];
			net_hostfwd_format(&n->fwd[i], rule, sizeof(rule));
			if (json_array_append_new(fwd, json_string(rule)))
				goto fail;
		}
	}
	if (nic_user_to_json(n, o) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

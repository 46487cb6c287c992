#include "config/network_config.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mode_names[] = {"hostonly", "internal", "bridge", "nat"};

const char *network_mode_name(enum network_mode mode)
{
	return mode_names[mode];
}

int network_mode_parse(const char *s, enum network_mode *mode, const char *ctx)
{
	for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (!strcmp(s, mode_names[i])) {
			*mode = (enum network_mode)i;
			return 0;
		}
	return kite_error("%s: '%s' is not a network mode (hostonly, internal, bridge, nat)", ctx,
			  s);
}

static uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d)
{
	return htonl(a << 24 | b << 16 | c << 8 | d);
}

static uint32_t mask_of(int prefix)
{
	return prefix ? htonl(0xffffffffu << (32 - prefix)) : 0;
}

void network_config_init(struct network_config *n, enum network_mode mode)
{
	char name[sizeof(n->name)], uuid[sizeof(n->uuid)];
	memcpy(name, n->name, sizeof(name));
	memcpy(uuid, n->uuid, sizeof(uuid));
	bool autostart = n->autostart;
	memset(n, 0, sizeof(*n));
	memcpy(n->name, name, sizeof(name));
	memcpy(n->uuid, uuid, sizeof(uuid));
	n->autostart = autostart;
	n->mode = mode;
	if (mode == NETWORK_HOSTONLY) {
		n->addr = ip4(192, 168, 56, 1);
		n->prefix = 24;
		n->dhcp = true;
		n->dhcp_start = ip4(192, 168, 56, 101);
		n->dhcp_end = ip4(192, 168, 56, 254);
	} else if (mode == NETWORK_NAT) {
		n->addr = ip4(192, 168, 122, 1);
		n->prefix = 24;
		n->dhcp = true;
		n->dhcp_start = ip4(192, 168, 122, 2);
		n->dhcp_end = ip4(192, 168, 122, 254);
	}
}

void network_addr_text(uint32_t addr, char out[16])
{
	struct in_addr a = {.s_addr = addr};
	inet_ntop(AF_INET, &a, out, 16);
}

void network_ip_text(const struct network_config *n, char out[24])
{
	char a[16];
	network_addr_text(n->addr, a);
	snprintf(out, 24, "%s/%d", a, n->prefix);
}

static int parse_addr(const char *s, uint32_t *out)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*out = a.s_addr;
	return 0;
}

static int set_ip(struct network_config *n, const char *v, const char *ctx)
{
	if (!strcmp(v, "none")) {
		n->addr = 0;
		n->prefix = 0;
		return 0;
	}
	char buf[24];
	const char *slash = strchr(v, '/');
	char *end;
	long bits;
	if (!slash || (size_t)(slash - v) >= sizeof(buf))
		goto bad;
	memcpy(buf, v, (size_t)(slash - v));
	buf[slash - v] = '\0';
	errno = 0;
	bits = strtol(slash + 1, &end, 10);
	if (parse_addr(buf, &n->addr) < 0 || !isdigit((unsigned char)slash[1]) || *end || errno ||
	    bits < 8 || bits > 30)
		goto bad;
	n->prefix = (int)bits;
	if (n->dhcp) {
		/* The range follows the address (dhcp=, set after ip=, overrides it): from .101
		 * as VirtualBox where the subnet is large enough, else from the host's address
		 * on; up to the last address before the broadcast. */
		uint32_t h = ntohl(n->addr), m = ntohl(mask_of(n->prefix));
		uint32_t net = h & m, last = (h | ~m) - 1;
		uint32_t start = net + 101 <= last && net + 101 > h ? net + 101 : h + 1;
		n->dhcp_start = htonl(start);
		n->dhcp_end = htonl(last);
	}
	return 0;
bad:
	return kite_error("%s: ip '%s': expected ADDRESS/BITS such as 192.168.56.1/24 (8 to 30 "
			  "bits), or none",
			  ctx, v);
}

static int set_dhcp(struct network_config *n, const char *v, const char *ctx)
{
	if (!strcmp(v, "off")) {
		n->dhcp = false;
		n->dhcp_start = n->dhcp_end = 0;
		return 0;
	}
	char buf[40];
	const char *comma = strchr(v, ',');
	if (!comma || strlen(v) >= sizeof(buf))
		goto bad;
	memcpy(buf, v, (size_t)(comma - v));
	buf[comma - v] = '\0';
	if (parse_addr(buf, &n->dhcp_start) < 0 || parse_addr(comma + 1, &n->dhcp_end) < 0)
		goto bad;
	n->dhcp = true;
	return 0;
bad:
	return kite_error("%s: dhcp '%s': expected START,END such as "
			  "192.168.56.101,192.168.56.254, or off",
			  ctx, v);
}

static int set_bridge(struct network_config *n, const char *v, const char *ctx)
{
	size_t len = strlen(v);
	if (len == 0 || len > NIC_IFNAME_MAX || !strcmp(v, ".") || !strcmp(v, ".."))
		return kite_error("%s: bridge '%s' is not an interface name (1 to %d characters)",
				  ctx, v, NIC_IFNAME_MAX);
	for (const char *c = v; *c; c++)
		if (*c == '/' || *c == ':' || isspace((unsigned char)*c))
			return kite_error(
			    "%s: bridge '%s': '%c' is not allowed in an interface name", ctx, v,
			    *c);
	memcpy(n->bridge, v, len + 1);
	return 0;
}

static int set_bool(bool *out, const char *v, const char *ctx)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
		*out = false;
	else
		return kite_error("%s: '%s': expected on or off", ctx, v);
	return 0;
}

int network_config_set(struct network_config *n, const char *field, const char *value,
		       const char *ctx)
{
	char where[200];
	snprintf(where, sizeof(where), "%s: %s", ctx, field);
	if (!strcmp(field, "name")) {
		if (!machine_name_check_quiet(value))
			return kite_error(
			    "%s: '%s' is not a network name (letters, digits, '.', '_', "
			    "'-', 1 to %d characters, no leading dot)",
			    where, value, MACHINE_NAME_MAX);
		snprintf(n->name, sizeof(n->name), "%s", value);
		return 0;
	}
	if (!strcmp(field, "uuid")) {
		if (!uuid_valid(value))
			return kite_error("%s: '%s' is not a UUID", where, value);
		snprintf(n->uuid, sizeof(n->uuid), "%s", value);
		return 0;
	}
	if (!strcmp(field, "mode")) {
		enum network_mode m = NETWORK_HOSTONLY;
		if (network_mode_parse(value, &m, where) < 0)
			return -1;
		network_config_init(n, m);
		return 0;
	}
	if (!strcmp(field, "bridge"))
		return set_bridge(n, value, where);
	if (!strcmp(field, "ip"))
		return set_ip(n, value, where);
	if (!strcmp(field, "dhcp"))
		return set_dhcp(n, value, where);
	if (!strcmp(field, "autostart"))
		return set_bool(&n->autostart, value, where);
	return kite_error("%s: unknown field '%s'", ctx, field);
}

static bool in_subnet(const struct network_config *n, uint32_t a)
{
	uint32_t m = mask_of(n->prefix);
	return (a & m) == (n->addr & m) && a != (n->addr & m) && (a | m) != 0xffffffffu;
}

int network_config_check(const struct network_config *n, const char *ctx)
{
	if (!n->name[0])
		return kite_error("%s: a network needs a name", ctx);
	switch (n->mode) {
	case NETWORK_HOSTONLY:
	case NETWORK_NAT:
		if (!n->addr)
			return kite_error("%s: a %s network needs the host's address (ip)", ctx,
					  n->mode == NETWORK_NAT ? "nat" : "host-only");
		if (!in_subnet(n, n->addr))
			return kite_error("%s: ip: the host's address is the subnet's network or "
					  "broadcast address",
					  ctx);
		break;
	case NETWORK_INTERNAL:
	case NETWORK_BRIDGE:
		if (n->addr || n->dhcp)
			return kite_error("%s: a%s network has no host address and no DHCP of its "
					  "own",
					  ctx,
					  n->mode == NETWORK_BRIDGE ? " bridge" : "n internal");
		if (n->mode == NETWORK_BRIDGE && !n->bridge[0])
			return kite_error(
			    "%s: a bridge network names the host's bridge (bridge=BR)", ctx);
		break;
	}
	if (n->dhcp) {
		if (!in_subnet(n, n->dhcp_start) || !in_subnet(n, n->dhcp_end))
			return kite_error("%s: dhcp: the range must lie in the network's subnet",
					  ctx);
		if (ntohl(n->dhcp_start) > ntohl(n->dhcp_end))
			return kite_error("%s: dhcp: the range ends before it starts", ctx);
		if (ntohl(n->addr) >= ntohl(n->dhcp_start) && ntohl(n->addr) <= ntohl(n->dhcp_end))
			return kite_error("%s: dhcp: the range holds the host's address", ctx);
	}
	return 0;
}

bool network_subnets_overlap(const struct network_config *a, const struct network_config *b)
{
	if (!a->addr || !b->addr)
		return false;
	uint32_t m = mask_of(a->prefix < b->prefix ? a->prefix : b->prefix);
	return (a->addr & m) == (b->addr & m);
}

json_t *network_config_to_json(const struct network_config *n)
{
	char ip[24], start[16], end[16];
	network_ip_text(n, ip);
	network_addr_text(n->dhcp_start, start);
	network_addr_text(n->dhcp_end, end);
	json_t *dhcp = n->dhcp ? json_pack("{s:s, s:s}", "start", start, "end", end) : json_null();
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:b}", "name", n->name, "uuid", n->uuid,
			 "mode", network_mode_name(n->mode), "bridge", n->bridge, "ip",
			 n->addr ? json_string(ip) : json_null(), "dhcp", dhcp, "autostart",
			 n->autostart);
}

static int string_field(json_t *root, const char *key, const char **out, const char *where)
{
	json_t *v = json_object_get(root, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return kite_error("%s: %s must be a string", where, key);
	*out = json_string_value(v);
	return 0;
}

int network_config_from_json(json_t *root, const char *where, struct network_config *n)
{
	memset(n, 0, sizeof(*n));
	if (!json_is_object(root))
		return kite_error("%s: a network definition is a JSON object", where);
	static const char *const known[] = {"name", "uuid", "mode",	"bridge",
					    "ip",   "dhcp", "autostart"};
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		size_t i = 0;
		while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], key))
			i++;
		if (i == sizeof(known) / sizeof(known[0]))
			return kite_error("%s: unknown field '%s'", where, key);
	}
	const char *s;
	/* mode first: it sets the defaults the other fields change. */
	if (string_field(root, "mode", &s, where) < 0)
		return -1;
	network_config_init(n, NETWORK_HOSTONLY);
	if (s && network_config_set(n, "mode", s, where) < 0)
		return -1;
	static const char *const text_fields[] = {"name", "uuid", "bridge"};
	for (size_t i = 0; i < sizeof(text_fields) / sizeof(text_fields[0]); i++) {
		if (string_field(root, text_fields[i], &s, where) < 0 ||
		    (s && network_config_set(n, text_fields[i], s, where) < 0))
			return -1;
	}
	v = json_object_get(root, "ip");
	if (v) {
		if (string_field(root, "ip", &s, where) < 0 ||
		    network_config_set(n, "ip", s ? s : "none", where) < 0)
			return -1;
	}
	v = json_object_get(root, "dhcp");
	if (v && json_is_null(v)) {
		n->dhcp = false;
	} else if (v) {
		const char *start, *end;
		char range[40];
		if (!json_is_object(v) || string_field(v, "start", &start, where) < 0 ||
		    string_field(v, "end", &end, where) < 0 || !start || !end)
			return kite_error("%s: dhcp must be {\"start\": ADDRESS, \"end\": ADDRESS} "
					  "or null",
					  where);
		snprintf(range, sizeof(range), "%s,%s", start, end);
		if (network_config_set(n, "dhcp", range, where) < 0)
			return -1;
	}
	v = json_object_get(root, "autostart");
	if (v) {
		if (!json_is_boolean(v))
			return kite_error("%s: autostart must be true or false", where);
		n->autostart = json_is_true(v);
	}
	return network_config_check(n, where);
}

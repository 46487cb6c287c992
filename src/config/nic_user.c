/* The options of a user-mode (NAT) NIC that QEMU's -netdev user takes: net=, host=, dns=,
 * dhcpstart=, restrict=, hostname=; and the addresses they leave the NIC with. QEMU's rules:
 * a net= without a mask gets its class's, host/dns/dhcpstart default to .2/.3/.15 of the net,
 * and all three must lie in it and differ. */
#include "config/machine_config.h"
#include "config/option_text.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_ip(const char *s, uint32_t *out)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*out = a.s_addr;
	return 0;
}

static void ip_text(uint32_t addr, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = {.s_addr = addr};
	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

/* The mask QEMU gives a net= written without one: the address's class. */
static uint32_t class_mask(uint32_t net)
{
	uint32_t a = ntohl(net), m;
	if (!(a & 0x80000000))
		m = 0xff000000; /* class A */
	else if ((a & 0xfff00000) == 0xac100000)
		m = 0xfff00000; /* 172.16.0.0/12 */
	else if ((a & 0xc0000000) == 0x80000000)
		m = 0xffff0000; /* class B */
	else if ((a & 0xffff0000) == 0xc0a80000)
		m = 0xffff0000; /* 192.168.0.0/16 */
	else if ((a & 0xffff0000) == 0xc6120000)
		m = 0xfffe0000; /* 198.18.0.0/15 */
	else if ((a & 0xe0000000) == 0xe0000000)
		m = 0xffffff00; /* class C */
	else
		m = 0xfffffff0;
	return htonl(m);
}

static int prefix_of(uint32_t mask)
{
	uint32_t m = ntohl(mask);
	int n = __builtin_popcount(m);
	return n && m == 0xffffffffu << (32 - n) ? n : -1;
}

int nic_user_set_net(struct nic_config *n, const char *v, const char *ctx)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(v, '/');
	size_t len = slash ? (size_t)(slash - v) : strlen(v);
	uint32_t net, mask;
	if (len >= sizeof(addr))
		goto bad;
	memcpy(addr, v, len);
	addr[len] = '\0';
	if (parse_ip(addr, &net) < 0)
		goto bad;
	if (!slash) {
		mask = class_mask(net);
	} else if (strchr(slash + 1, '.')) {
		if (parse_ip(slash + 1, &mask) < 0 || prefix_of(mask) < 0)
			goto bad;
	} else {
		char *end;
		errno = 0;
		long bits = strtol(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || !isdigit((unsigned char)slash[1]))
			goto bad;
		if (bits < 4 || bits > 32)
			return kite_error("%s: net=%s: the mask must be 4 to 32 bits", ctx, v);
		mask = htonl(0xffffffffu << (32 - bits));
	}
	if (prefix_of(mask) > 30)
		return kite_error("%s: net=%s: a /%d leaves no room for the host, DNS and guest",
				  ctx, v, prefix_of(mask));
	n->user.net = net & mask;
	n->user.mask = mask;
	return 0;
bad:
	return kite_error("%s: net=%s: expected ADDRESS[/BITS|/MASK] such as 10.0.2.0/24", ctx, v);
}

static int set_addr(uint32_t *field, const char *key, const char *v, const char *ctx)
{
	if (parse_ip(v, field) < 0 || !*field)
		return kite_error("%s: %s=%s is not an IPv4 address", ctx, key, v);
	return 0;
}

int nic_user_set_host(struct nic_config *n, const char *v, const char *ctx)
{
	return set_addr(&n->user.host, "host", v, ctx);
}

int nic_user_set_dns(struct nic_config *n, const char *v, const char *ctx)
{
	return set_addr(&n->user.dns, "dns", v, ctx);
}

int nic_user_set_dhcpstart(struct nic_config *n, const char *v, const char *ctx)
{
	return set_addr(&n->user.dhcpstart, "dhcpstart", v, ctx);
}

int nic_user_set_restrict(struct nic_config *n, const char *v, const char *ctx)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "y"))
		n->user.restricted = true;
	else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "n"))
		n->user.restricted = false;
	else
		return kite_error("%s: restrict=%s: expected on or off", ctx, v);
	return 0;
}

int nic_user_set_hostname(struct nic_config *n, const char *v, const char *ctx)
{
	size_t len = strlen(v);
	if (len == 0 || len > NIC_HOSTNAME_MAX)
		return kite_error("%s: hostname=%s: 1 to %d characters", ctx, v, NIC_HOSTNAME_MAX);
	for (const char *c = v; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.')
			return kite_error("%s: hostname=%s: only letters, digits, '-' and '.'", ctx,
					  v);
	memcpy(n->user.hostname, v, len + 1);
	return 0;
}

bool nic_user_any(const struct nic_config *n)
{
	const struct nic_user *u = &n->user;
	return u->mask || u->host || u->dns || u->dhcpstart || u->restricted || u->hostname[0];
}

static int check_in(const struct nic_user_addrs *a, uint32_t addr, const char *key, const char *ctx,
		    bool by_default, unsigned index)
{
	if ((addr & a->mask) == a->net && addr != a->net && (addr | a->mask) != 0xffffffffu)
		return 0;
	char ip[INET_ADDRSTRLEN], net[INET_ADDRSTRLEN];
	ip_text(addr, ip);
	ip_text(a->net, net);
	if (by_default)
		return kite_error("%s: %s %s is not a host address in the network %s/%d (NIC %u's "
				  "default; net= sets another)",
				  ctx, key, ip, net, prefix_of(a->mask), index);
	return kite_error("%s: %s %s is not a host address in the network %s/%d", ctx, key, ip, net,
			  prefix_of(a->mask));
}

int nic_user_resolve(const struct nic_config *n, unsigned index, struct nic_user_addrs *a,
		     const char *ctx)
{
	const struct nic_user *u = &n->user;
	if (u->mask) {
		a->net = u->net;
		a->mask = u->mask;
	} else {
		if (index > 253)
			return kite_error("%s: user network %u has no default net= (give one)", ctx,
					  index);
		a->net = htonl(0x0a000000 | (2 + index) << 8); /* 10.0.(2 + index).0/24 */
		a->mask = htonl(0xffffff00);
	}
	a->host = u->host ?: a->net | (htonl(0x0202) & ~a->mask);
	a->dns = u->dns ?: a->net | (htonl(0x0203) & ~a->mask);
	a->dhcp = u->dhcpstart ?: a->net | (htonl(0x020f) & ~a->mask);
	bool dflt = !u->mask;
	if (check_in(a, a->host, "host", ctx, dflt, index) < 0 ||
	    check_in(a, a->dns, "dns", ctx, dflt, index) < 0 ||
	    check_in(a, a->dhcp, "dhcpstart", ctx, dflt, index) < 0)
		return -1;
	if (a->dns == a->host)
		return kite_error("%s: dns and host are the same address", ctx);
	if (a->dhcp == a->host || a->dhcp == a->dns)
		return kite_error("%s: dhcpstart must differ from host and dns", ctx);
	return 0;
}

/* The options set, as key and text, in the order --net writes them. Returns the count. */
struct user_item {
	const char *key;
	char text[NIC_HOSTNAME_MAX + 1];
};

static int user_items(const struct nic_user *u, struct user_item out[6])
{
	int k = 0;
	char ip[INET_ADDRSTRLEN];
	if (u->mask) {
		ip_text(u->net, ip);
		out[k].key = "net";
		snprintf(out[k++].text, sizeof(out->text), "%s/%d", ip, prefix_of(u->mask));
	}
	const struct {
		const char *key;
		uint32_t addr;
	} addrs[] = {{"host", u->host}, {"dns", u->dns}, {"dhcpstart", u->dhcpstart}};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
		if (addrs[i].addr) {
			out[k].key = addrs[i].key;
			ip_text(addrs[i].addr, out[k++].text);
		}
	if (u->restricted) {
		out[k].key = "restrict";
		strcpy(out[k++].text, "on");
	}
	if (u->hostname[0]) {
		out[k].key = "hostname";
		strcpy(out[k++].text, u->hostname);
	}
	return k;
}

int nic_user_format(const struct nic_config *n, char **s)
{
	struct user_item items[6];
	int k = user_items(&n->user, items);
	for (int i = 0; i < k; i++)
		if (option_append(s, items[i].key, items[i].text) < 0)
			return -1;
	return 0;
}

int nic_user_to_json(const struct nic_config *n, json_t *o)
{
	struct user_item items[6];
	int k = user_items(&n->user, items);
	for (int i = 0; i < k; i++)
		if (json_object_set_new(o, items[i].key, json_string(items[i].text)))
			return -1;
	return 0;
}

#include "net/net.h"
#include "util/err.h"

#include <arpa/inet.h>
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

int net_hostfwd_parse(const char *s, struct net_hostfwd *fwd)
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
		return kite_error("hostfwd '%s': expected tcp: or udp:", s);
	}
	/* [HOSTADDR]:HOSTPORT */
	const char *colon = strchr(p, ':'), *dash = strchr(p, '-');
	if (!colon || !dash || colon > dash || parse_addr(p, colon - p, &fwd->host_addr) < 0 ||
	    parse_port(colon + 1, dash - colon - 1, &fwd->host_port) < 0)
		return kite_error(
		    "hostfwd '%s': expected [HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", s);
	/* [GUESTADDR]:GUESTPORT */
	p = dash + 1;
	colon = strchr(p, ':');
	if (!colon || parse_addr(p, colon - p, &fwd->guest_addr) < 0 ||
	    parse_port(colon + 1, strlen(colon + 1), &fwd->guest_port) < 0)
		return kite_error(
		    "hostfwd '%s': expected [HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", s);
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &tail) != 6 ||
	    strlen(s) != 17)
		return kite_error("mac '%s': expected six hex bytes as 52:54:00:12:34:56", s);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	if (mac[0] & 1)
		return kite_error("mac '%s': a multicast address cannot name a NIC", s);
	return 0;
}

int net_opts_parse(const char *arg, struct net_opts *o)
{
	memset(o, 0, sizeof(*o));
	char *copy = strdup(arg);
	if (!copy)
		return kite_error("out of memory");
	int ret = 0;
	char *save = NULL;
	bool first = true;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (first) {
			first = false;
			if (!strcmp(tok, "user")) {
				o->kind = NET_USER;
				continue;
			}
			if (!strncmp(tok, "tap=", 4)) {
				o->kind = NET_TAP;
				size_t n = strlen(tok + 4);
				if (n == 0 || n >= sizeof(o->ifname)) {
					ret = kite_error("--net %s: bad tap interface name", arg);
					break;
				}
				memcpy(o->ifname, tok + 4, n + 1);
				continue;
			}
			ret = kite_error("--net %s: expected user or tap=IFNAME", arg);
			break;
		}
		if (!strncmp(tok, "hostfwd=", 8)) {
			if (o->kind != NET_USER) {
				ret = kite_error("--net %s: hostfwd needs the user network", arg);
				break;
			}
			if (o->nfwd == NET_MAX_HOSTFWD) {
				ret = kite_error("--net %s: more than %d hostfwd rules", arg,
						 NET_MAX_HOSTFWD);
				break;
			}
			if (net_hostfwd_parse(tok + 8, &o->fwd[o->nfwd]) < 0) {
				ret = -1;
				break;
			}
			o->nfwd++;
		} else if (!strncmp(tok, "mac=", 4)) {
			if (parse_mac(tok + 4, o->mac) < 0) {
				ret = -1;
				break;
			}
			o->mac_set = true;
		} else {
			ret = kite_error("--net %s: unknown option '%s'", arg, tok);
			break;
		}
	}
	if (first && !ret)
		ret = kite_error("--net: expected user or tap=IFNAME");
	free(copy);
	return ret;
}

struct net_backend *net_backend_create(const struct net_opts *o, unsigned index)
{
	return o->kind == NET_TAP ? net_tap_create(o) : net_slirp_create(o, index);
}

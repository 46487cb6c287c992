#include "net/bridge.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_bridge.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int ctl_socket(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		kite_error_errno(errno, "socket for interface ioctls");
	return fd;
}

bool host_if_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

bool host_if_is_bridge(const char *name)
{
	char path[96];
	struct stat st;
	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", name);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int if_ioctl(unsigned long req, struct ifreq *ifr, const char *what)
{
	int fd = ctl_socket();
	if (fd < 0)
		return -1;
	int rc = ioctl(fd, req, ifr);
	int err = errno;
	close(fd);
	if (rc < 0)
		return kite_error_errno(err, "%s %s", what, ifr->ifr_name);
	return 0;
}

static void ifr_named(struct ifreq *ifr, const char *name)
{
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, IFNAMSIZ, "%s", name);
}

static int set_flags(const char *name, bool up)
{
	struct ifreq ifr;
	ifr_named(&ifr, name);
	if (if_ioctl(SIOCGIFFLAGS, &ifr, "reading the flags of") < 0)
		return -1;
	if (up)
		ifr.ifr_flags |= IFF_UP;
	else
		ifr.ifr_flags &= ~IFF_UP;
	return if_ioctl(SIOCSIFFLAGS, &ifr, up ? "bringing up" : "taking down");
}

int host_if_up(const char *name)
{
	return set_flags(name, true);
}

int host_bridge_add(const char *name)
{
	int fd = ctl_socket();
	if (fd < 0)
		return -1;
	char buf[IFNAMSIZ];
	snprintf(buf, sizeof(buf), "%s", name);
	int rc = ioctl(fd, SIOCBRADDBR, buf);
	int err = errno;
	close(fd);
	if (rc < 0)
		return kite_error_errno(err, "creating bridge %s", name);
	return 0;
}

int host_bridge_del(const char *name)
{
	if (!host_if_exists(name))
		return 0;
	if (set_flags(name, false) < 0)
		return -1;
	int fd = ctl_socket();
	if (fd < 0)
		return -1;
	char buf[IFNAMSIZ];
	snprintf(buf, sizeof(buf), "%s", name);
	int rc = ioctl(fd, SIOCBRDELBR, buf);
	int err = errno;
	close(fd);
	if (rc < 0 && err != ENXIO)
		return kite_error_errno(err, "deleting bridge %s", name);
	return 0;
}

static int set_inet(const char *name, unsigned long req, uint32_t addr, const char *what)
{
	struct ifreq ifr;
	ifr_named(&ifr, name);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = addr};
	memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
	return if_ioctl(req, &ifr, what);
}

int host_if_set_addr_up(const char *name, uint32_t addr, int prefix)
{
	uint32_t mask = prefix ? htonl(0xffffffffu << (32 - prefix)) : 0;
	if (set_inet(name, SIOCSIFADDR, addr, "setting the address of") < 0 ||
	    set_inet(name, SIOCSIFNETMASK, mask, "setting the netmask of") < 0)
		return -1;
	return set_flags(name, true);
}

int host_bridge_add_port(const char *bridge, const char *port)
{
	struct ifreq ifr;
	ifr_named(&ifr, bridge);
	ifr.ifr_ifindex = (int)if_nametoindex(port);
	if (!ifr.ifr_ifindex)
		return kite_error("adding %s to bridge %s: no interface %s", port, bridge, port);
	return if_ioctl(SIOCBRADDIF, &ifr, "adding a port to bridge");
}

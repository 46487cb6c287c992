#include "net/net.h"

struct net_backend *net_backend_create(const struct nic_config *o, unsigned index)
{
	switch (o->kind) {
	case NIC_TAP:
		return net_tap_create(o);
	case NIC_BRIDGE:
	case NIC_NETWORK:
		return net_bridge_create(o);
	case NIC_USER:
		break;
	}
	return net_slirp_create(o, index);
}

#include "net/net.h"

struct net_backend *net_backend_create(const struct nic_config *o, unsigned index)
{
	return o->kind == NIC_TAP ? net_tap_create(o) : net_slirp_create(o, index);
}

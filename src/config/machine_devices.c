/* A machine's disk and NIC lists: disks kept in target order (a new one without a target
 * takes the first free vdX, as virsh names it), each file and each MAC once. */
#include "config/machine_config.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

/* vda < vdb < ... < vdz < vdaa. */
static int target_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	return la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
}

static bool target_used(const struct machine_config *m, const char *t)
{
	for (int i = 0; i < m->ndisks; i++)
		if (!strcmp(m->disks[i].target, t))
			return true;
	return false;
}

int machine_config_add_disk(struct machine_config *m, struct disk_config *d, const char *ctx)
{
	int r = 0;
	if (m->ndisks == MACHINE_MAX_DISKS)
		r = kite_error("%s: at most %d disks", ctx, MACHINE_MAX_DISKS);
	for (int i = 0; r == 0 && i < m->ndisks; i++) {
		if (d->target[0] && !strcmp(m->disks[i].target, d->target))
			r = kite_error("%s: disk target %s is already used by %s", ctx, d->target,
				       m->disks[i].path);
		else if (!strcmp(m->disks[i].path, d->path))
			r = kite_error("%s: disk %s is already attached (as %s): a disk can be "
				       "attached once",
				       ctx, d->path, m->disks[i].target);
	}
	/* No target: the first free vdX, as virsh names a new disk. */
	for (int c = 'a'; r == 0 && !d->target[0] && c <= 'z'; c++) {
		char t[4] = {'v', 'd', (char)c, 0};
		if (!target_used(m, t))
			memcpy(d->target, t, sizeof(t));
	}
	if (r == 0 && !d->target[0])
		r = kite_error("%s: no free disk target vda..vdz: name one (target=)", ctx);
	if (r < 0) {
		disk_config_free(d);
		return -1;
	}
	int at = m->ndisks;
	while (at > 0 && target_cmp(m->disks[at - 1].target, d->target) > 0)
		at--;
	memmove(&m->disks[at + 1], &m->disks[at], (size_t)(m->ndisks - at) * sizeof(*d));
	m->disks[at] = *d;
	m->ndisks++;
	memset(d, 0, sizeof(*d)); /* the path belongs to m now */
	return 0;
}

int machine_config_remove_disk(struct machine_config *m, const char *target_or_path)
{
	for (int i = 0; i < m->ndisks; i++) {
		if (strcmp(m->disks[i].target, target_or_path) &&
		    strcmp(m->disks[i].path, target_or_path))
			continue;
		disk_config_free(&m->disks[i]);
		memmove(&m->disks[i], &m->disks[i + 1],
			(size_t)(m->ndisks - i - 1) * sizeof(m->disks[0]));
		m->ndisks--;
		return 0;
	}
	return kite_error("no disk with target or path '%s'", target_or_path);
}

int machine_config_add_nic(struct machine_config *m, const struct nic_config *n, const char *ctx)
{
	if (m->nnics == MACHINE_MAX_NICS)
		return kite_error("%s: at most %d network cards", ctx, MACHINE_MAX_NICS);
	struct nic_user_addrs a;
	if (nic_config_check(n, ctx) < 0 ||
	    (n->kind == NIC_USER && nic_user_resolve(n, (unsigned)m->nnics, &a, ctx) < 0))
		return -1;
	for (int i = 0; n->mac_set && i < m->nnics; i++)
		if (m->nics[i].mac_set && !memcmp(m->nics[i].mac, n->mac, 6)) {
			char mac[18];
			mac_format(n->mac, mac);
			return kite_error("%s: two NICs use MAC %s", ctx, mac);
		}
	m->nics[m->nnics++] = *n;
	return 0;
}

int machine_config_remove_nic(struct machine_config *m, const char *which)
{
	int match = -1, count = 0;
	uint8_t mac[6];
	bool by_mac = mac_parse(which, mac) == 0;
	for (int i = 0; i < m->nnics; i++) {
		const struct nic_config *n = &m->nics[i];
		if (by_mac && n->mac_set && !memcmp(n->mac, mac, 6)) {
			match = i;
			count = 1;
			break;
		}
		if (!strcmp(nic_kind_name(n->kind), which) ||
		    (n->kind == NIC_TAP && !strcmp(which, "ethernet")) ||
		    (n->ifname[0] && !strcmp(n->ifname, which))) {
			match = i;
			count++;
		}
	}
	if (count == 0)
		return kite_error("no interface with MAC, type or ifname '%s'", which);
	if (count > 1)
		return kite_error("%d interfaces match '%s': name one by its MAC", count, which);
	memmove(&m->nics[match], &m->nics[match + 1],
		(size_t)(m->nnics - match - 1) * sizeof(m->nics[0]));
	m->nnics--;
	return 0;
}

#include "virtio/virtio_devices.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int plug(struct virtio_devices *v, struct virtio_dev *vd)
{
	struct virtio_pci *vp = calloc(1, sizeof(*vp));
	if (!vp)
		return kite_error("out of memory");
	if (virtio_pci_init(vp, &v->bus, vd) < 0) {
		free(vp);
		return -1;
	}
	v->pci[v->npci++] = vp;
	return 0;
}

int virtio_devices_create(struct virtio_devices *v, const struct machine_config *cfg,
			  const struct virtio_console_backend *console, const struct guest_mem *mem,
			  struct iobus *iobus, const struct pci_bus_ops *ops)
{
	memset(v, 0, sizeof(*v));
	if (cfg->ndisks > VIRTIO_MAX_DISKS || cfg->nnics > VIRTIO_MAX_NICS)
		return kite_error("too many virtio devices");
	if (pci_bus_init(&v->bus, ops) < 0)
		return -1;
	v->bus_ready = true;
	for (int i = 0; i < cfg->ndisks; i++) {
		const struct disk_config *d = &cfg->disks[i];
		unsigned flags =
		    (d->readonly ? BLK_O_RDONLY : BLK_O_RDWR) | (d->nocache ? BLK_O_NOCACHE : 0);
		v->blks[i] = blk_open(d->path, d->format[0] ? d->format : NULL, flags);
		v->ndisks = i + 1;
		if (!v->blks[i])
			goto fail;
		v->disks[i] = virtio_blk_create(mem, v->blks[i], d->readonly, d->serial);
		if (!v->disks[i] || plug(v, virtio_blk_dev(v->disks[i])) < 0)
			goto fail;
	}
	for (int i = 0; i < cfg->nnics; i++) {
		const struct nic_config *n = &cfg->nics[i];
		uint8_t mac[6];
		if (n->mac_set)
			memcpy(mac, n->mac, 6);
		else
			net_default_mac(i, mac);
		struct net_backend *be = net_backend_create(n, i);
		if (!be)
			goto fail;
		v->nics[i] = virtio_net_create(mem, be, mac);
		v->nnets = i + 1;
		if (!v->nics[i] || plug(v, virtio_net_dev(v->nics[i])) < 0)
			goto fail;
	}
	if (cfg->rng && (!(v->rng = virtio_rng_create(mem)) || plug(v, virtio_rng_dev(v->rng)) < 0))
		goto fail;
	if (cfg->balloon && (!(v->balloon = virtio_balloon_create(mem)) ||
			     plug(v, virtio_balloon_dev(v->balloon)) < 0))
		goto fail;
	if (console && (!(v->console = virtio_console_create(mem, console)) ||
			plug(v, virtio_console_dev(v->console)) < 0))
		goto fail;
	if (pci_bus_register(&v->bus, iobus) < 0)
		goto fail;
	return 0;
fail:
	virtio_devices_destroy(v);
	return -1;
}

void virtio_devices_destroy(struct virtio_devices *v)
{
	/* Device threads first (they call into the bus), then the transports, then disks. */
	for (int i = 0; i < v->ndisks; i++)
		virtio_blk_destroy(v->disks[i]);
	for (int i = 0; i < v->nnets; i++)
		virtio_net_destroy(v->nics[i]);
	virtio_rng_destroy(v->rng);
	virtio_balloon_destroy(v->balloon);
	virtio_console_destroy(v->console);
	for (int i = 0; i < v->npci; i++) {
		virtio_pci_destroy(v->pci[i]);
		free(v->pci[i]);
	}
	for (int i = 0; i < v->ndisks; i++)
		blk_close(v->blks[i]);
	if (v->bus_ready)
		pci_bus_destroy(&v->bus);
	memset(v, 0, sizeof(*v));
}

/* ---- state ---- */

/* Every virtio device, each function in slot order (the order they were plugged). */
static struct virtio_dev *dev_at(struct virtio_devices *v, int i)
{
	return v->pci[i]->vd;
}

void virtio_devices_quiesce(struct virtio_devices *v, bool stop)
{
	for (int i = 0; i < v->npci; i++)
		virtio_dev_quiesce(dev_at(v, i), stop);
}

int virtio_devices_save(struct virtio_devices *v, struct state_buf *out)
{
	if (pci_bus_save(&v->bus, out) < 0 || pci_device_save(&v->bus.host_bridge, out) < 0)
		return -1;
	struct state_writer w;
	state_begin(&w, out, "virtio-devices", 1);
	state_put_u32(&w, "functions", (uint32_t)v->npci);
	state_end(&w);
	if (state_buf_check(out) < 0)
		return -1;
	for (int i = 0; i < v->npci; i++)
		if (virtio_pci_save(v->pci[i], out) < 0)
			return -1;
	return 0;
}

int virtio_devices_load(struct virtio_devices *v, struct state_stream *s)
{
	struct state_reader r;
	uint32_t n;
	if (state_next(s, &r, "pci-bus", 1, 1) < 0 || pci_bus_load(&v->bus, &r) < 0 ||
	    state_next(s, &r, "pci-dev", 1, 1) < 0 ||
	    pci_device_load(&v->bus.host_bridge, &r) < 0 ||
	    state_next(s, &r, "virtio-devices", 1, 1) < 0 || state_get_u32(&r, "functions", &n) < 0)
		return -1;
	if (n != (uint32_t)v->npci)
		return kite_error(
		    "device state: %u virtio functions were saved, this machine has %d", n,
		    v->npci);
	for (int i = 0; i < v->npci; i++)
		if (virtio_pci_load(v->pci[i], s) < 0)
			return -1;
	pci_bus_load_done(&v->bus);
	return 0;
}

void virtio_devices_kick_all(struct virtio_devices *v)
{
	for (int i = 0; i < v->npci; i++)
		virtio_dev_kick_all(dev_at(v, i));
}

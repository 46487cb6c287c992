/* The PCI bus with every virtio device of a machine, as its description says
 * (config/machine_config.h: disks, NICs, rng, balloon). This is what vm.c calls:
 *
 *   struct pci_bus_ops ops = {.msi_send = ..., .set_irq = ..., .opaque = vm};
 *   virtio_devices_create(&vm->virtio, machine, &console_backend_or_NULL, &vm->mem,
 *                         &vm->bus, &ops);
 *   ...
 *   virtio_devices_destroy(&vm->virtio);                 // after the vCPUs stopped
 *
 * Devices take PCI slots in order: 00.0 host bridge, then disks (vda, vdb, ...), NICs,
 * rng, balloon, console. */
#ifndef KITE_VIRTIO_VIRTIO_DEVICES_H
#define KITE_VIRTIO_VIRTIO_DEVICES_H

#include "block/block.h"
#include "config/machine_config.h"
#include "devices/pci.h"
#include "net/net.h"
#include "virtio/virtio_balloon.h"
#include "virtio/virtio_blk.h"
#include "virtio/virtio_console.h"
#include "virtio/virtio_net.h"
#include "virtio/virtio_pci.h"
#include "virtio/virtio_rng.h"

#define VIRTIO_MAX_DISKS MACHINE_MAX_DISKS
#define VIRTIO_MAX_NICS	 MACHINE_MAX_NICS

struct virtio_devices {
	struct pci_bus bus;
	bool bus_ready;
	int ndisks, nnets;
	struct blk *blks[VIRTIO_MAX_DISKS];
	struct virtio_blk *disks[VIRTIO_MAX_DISKS];
	struct virtio_net *nics[VIRTIO_MAX_NICS];
	struct virtio_rng *rng;
	struct virtio_balloon *balloon;
	struct virtio_console *console;
	int npci;
	struct virtio_pci *pci[VIRTIO_MAX_DISKS + VIRTIO_MAX_NICS + 3];
};

/* Opens the disks, starts the network backends, adds a virtio console port when `console`
 * is not NULL, builds the bus and registers its ranges
 * (CF8, CFC, ECAM, MMIO window) on `iobus`. Returns 0, or -1 with an error printed and
 * nothing left allocated (the iobus may keep ranges: discard it with the vm). */
int virtio_devices_create(struct virtio_devices *v, const struct machine_config *m,
			  const struct virtio_console_backend *console, const struct guest_mem *mem,
			  struct iobus *iobus, const struct pci_bus_ops *ops);
/* State: the bus, the host bridge, then every function in slot order (virtio_pci_save).
 * Quiesce (virtio_device_ops.quiesce) before saving, with the vCPUs parked; a load checks
 * that the saved machine has the same functions. After a load and once the vCPUs run,
 * kick_all notifies every enabled queue once. Return 0 or -1 (printed). */
void virtio_devices_quiesce(struct virtio_devices *v, bool stop);
int virtio_devices_save(struct virtio_devices *v, struct state_buf *out);
int virtio_devices_load(struct virtio_devices *v, struct state_stream *s);
void virtio_devices_kick_all(struct virtio_devices *v);
/* Stops the device threads, closes the disks (flushing them). */
void virtio_devices_destroy(struct virtio_devices *v);

#endif

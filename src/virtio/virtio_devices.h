/* The PCI bus with every virtio device of a machine, from command-line options. This is
 * what vm.c calls:
 *
 *   struct virtio_devices_config cfg = {0};          // filled by cmd_run.c:
 *   disk_opts_parse(optarg, &cfg.disks[cfg.ndisks++]);   // -d/--disk, repeatable
 *   net_opts_parse(optarg, &cfg.nets[cfg.nnets++]);      // -n/--net, repeatable
 *   cfg.rng = true; cfg.balloon = true;                  // --rng, --balloon
 *   ...
 *   struct pci_bus_ops ops = {.msi_send = ..., .set_irq = ..., .opaque = vm};
 *   virtio_devices_create(&vm->virtio, &cfg, &vm->mem, &vm->bus, &ops);
 *   ...
 *   virtio_devices_destroy(&vm->virtio);                 // after the vCPUs stopped
 *
 * Devices take PCI slots in order: 00.0 host bridge, then disks (vda, vdb, ...), NICs,
 * rng, balloon, console. */
#ifndef KITE_VIRTIO_VIRTIO_DEVICES_H
#define KITE_VIRTIO_VIRTIO_DEVICES_H

#include "block/block.h"
#include "devices/pci.h"
#include "net/net.h"
#include "virtio/virtio_balloon.h"
#include "virtio/virtio_blk.h"
#include "virtio/virtio_console.h"
#include "virtio/virtio_net.h"
#include "virtio/virtio_pci.h"
#include "virtio/virtio_rng.h"

#define VIRTIO_MAX_DISKS 16
#define VIRTIO_MAX_NICS	 8

/* -d/--disk FILE[,format=raw|qcow2|vmdk][,readonly=on|off][,cache=writeback|none]
 * [,serial=STRING]; ",," in FILE stands for a comma. */
struct disk_opts {
	char path[4096];
	char format[16]; /* "" = probe */
	bool readonly;
	bool nocache; /* cache=none */
	char serial[VIRTIO_BLK_SERIAL_LEN + 1];
};
int disk_opts_parse(const char *arg, struct disk_opts *o);

struct virtio_devices_config {
	int ndisks;
	struct disk_opts disks[VIRTIO_MAX_DISKS];
	int nnets;
	struct net_opts nets[VIRTIO_MAX_NICS];
	bool rng;
	bool balloon;
	bool console; /* a virtio console port with `console_be` as its output */
	struct virtio_console_backend console_be;
};

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

/* Opens the disks, starts the network backends, builds the bus and registers its ranges
 * (CF8, CFC, ECAM, MMIO window) on `iobus`. Returns 0, or -1 with an error printed and
 * nothing left allocated (the iobus may keep ranges: discard it with the vm). */
int virtio_devices_create(struct virtio_devices *v, const struct virtio_devices_config *cfg,
			  const struct guest_mem *mem, struct iobus *iobus,
			  const struct pci_bus_ops *ops);
/* Stops the device threads, closes the disks (flushing them). */
void virtio_devices_destroy(struct virtio_devices *v);

#endif

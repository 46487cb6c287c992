/* MSI-X through KVM irq routing and irqfds. Each MSI-X vector that fires gets, the first
 * time, a GSI of its own (24 and up) with an MSI route to the vector's message and an
 * eventfd bound to that GSI with KVM_IRQFD; from then on an interrupt is a write(2) to that
 * eventfd, from whatever thread raises it. pci.c still decides *whether* to send (enable,
 * function and vector masks, pending bits); this only carries the message. When the guest
 * rewrites the vector's table entry, the next send updates the route first (the routes are
 * one table with the PC's, kvm/irq_routing.h, re-installed whole).
 *
 * KVM_SIGNAL_MSI is the fallback: without irqfd support, past the GSI range, or when KVM
 * refuses a route or an irqfd. */
#ifndef KITE_MACHINE_IRQFD_H
#define KITE_MACHINE_IRQFD_H

#include "devices/pci.h"
#include "util/state.h"
#include "kvm/irq_routing.h"
#include "kvm/kvm.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct irqfd_vector {
	int fd;	      /* eventfd bound to gsi, -1 before the first send */
	bool failed;  /* KVM refused it: this vector uses KVM_SIGNAL_MSI */
	unsigned gsi; /* its MSI route */
};

struct irqfds {
	int vm_fd;
	bool usable; /* KVM has irqfds and MSI routing */
	pthread_mutex_t lock;
	struct irq_routes routes; /* PC routes + the MSI routes of every vector below */
	unsigned next_gsi;
	struct irqfd_vector *slots[PCI_MAX_SLOTS]; /* PCI_MSIX_MAX_VECTORS each, on demand */
	uint64_t via_irqfd, via_ioctl;		   /* messages sent each way, for --stats */
};

/* Installs the PC routing (fatal when KVM refuses it) and checks for irqfd support. Call
 * after KVM_CREATE_IRQCHIP. Returns 0 or -1 with an error printed. */
int irqfds_init(struct irqfds *f, const struct kvm_host *kvm, int vm_fd);
/* Sends MSI-X `vector` of the function in `slot` with message addr/data. Any thread. */
void irqfds_send(struct irqfds *f, unsigned slot, unsigned vector, uint64_t addr, uint32_t data);
/* State: the MSI route of every vector that has one (section "msi-routes": slot, vector,
 * message address and data). Loading sets them up before the first message, as the sends
 * that made them did. Return 0 or -1 (printed). */
int irqfds_save(struct irqfds *f, struct state_buf *out);
int irqfds_load(struct irqfds *f, const struct state_reader *r);
/* Unbinds and closes the eventfds. After every thread that sends has stopped. */
void irqfds_destroy(struct irqfds *f);

#endif

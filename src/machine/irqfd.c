#include "machine/irqfd.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

int irqfds_init(struct irqfds *f, const struct kvm_host *kvm, int vm_fd)
{
	memset(f, 0, sizeof(*f));
	f->vm_fd = vm_fd;
	f->next_gsi = IRQ_ROUTING_MSI_BASE;
	int err = pthread_mutex_init(&f->lock, NULL);
	if (err)
		return kite_error_errno(err, "irqfd: mutex");
	if (irq_routes_init(&f->routes) < 0) {
		pthread_mutex_destroy(&f->lock);
		return -1;
	}
	int rc = irq_routes_install(&f->routes, vm_fd);
	if (rc < 0) {
		irqfds_destroy(f);
		return kite_error_errno(-rc, "KVM_SET_GSI_ROUTING");
	}
	f->usable = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) > 0 &&
		    ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING) > 0;
	return 0;
}

static void warn_fallback(const char *what, int err)
{
	static bool warned; /* once per process: the reason is the host's, not the guest's */
	if (!__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
		kite_warn("irqfd: %s: %s; MSI-X goes through KVM_SIGNAL_MSI", what, strerror(err));
}

/* The vector's eventfd, bound to a GSI of its own, or NULL to fall back (lock held). */
static struct irqfd_vector *vector_locked(struct irqfds *f, unsigned slot, unsigned vector)
{
	if (!f->slots[slot]) {
		f->slots[slot] = calloc(PCI_MSIX_MAX_VECTORS, sizeof(struct irqfd_vector));
		if (!f->slots[slot])
			return NULL;
		for (unsigned v = 0; v < PCI_MSIX_MAX_VECTORS; v++)
			f->slots[slot][v].fd = -1;
	}
	struct irqfd_vector *iv = &f->slots[slot][vector];
	if (iv->fd >= 0 || iv->failed)
		return iv->failed ? NULL : iv;
	iv->failed = true; /* until it works */
	if (f->next_gsi > IRQ_ROUTING_MAX_GSI)
		return NULL;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0) {
		warn_fallback("eventfd", errno);
		return NULL;
	}
	/* Bound before it has a route: nothing writes it until the route is in. */
	struct kvm_irqfd req = {.fd = (uint32_t)fd, .gsi = f->next_gsi};
	if (ioctl(f->vm_fd, KVM_IRQFD, &req) < 0) {
		warn_fallback("KVM_IRQFD", errno);
		close(fd);
		return NULL;
	}
	iv->fd = fd;
	iv->gsi = f->next_gsi++;
	iv->failed = false;
	return iv;
}

/* Points the vector's route at addr/data if it does not already (lock held). */
static int update_route_locked(struct irqfds *f, struct irqfd_vector *iv, uint64_t addr,
			       uint32_t data)
{
	int changed = irq_routes_set_msi(&f->routes, iv->gsi, addr, data);
	if (changed <= 0)
		return changed;
	int rc = irq_routes_install(&f->routes, f->vm_fd);
	if (rc == 0)
		return 0;
	/* KVM kept the old table: forget the entry so the next send tries again. */
	irq_routes_remove_msi(&f->routes, iv->gsi);
	warn_fallback("KVM_SET_GSI_ROUTING", -rc);
	return -1;
}

static void signal_msi(struct irqfds *f, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
	    .address_lo = (uint32_t)addr,
	    .address_hi = (uint32_t)(addr >> 32),
	    .data = data,
	};
	if (ioctl(f->vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
		kite_warn("KVM_SIGNAL_MSI: %s", strerror(errno));
}

void irqfds_send(struct irqfds *f, unsigned slot, unsigned vector, uint64_t addr, uint32_t data)
{
	pthread_mutex_lock(&f->lock);
	struct irqfd_vector *iv = NULL;
	if (f->usable && slot < PCI_MAX_SLOTS && vector < PCI_MSIX_MAX_VECTORS)
		iv = vector_locked(f, slot, vector);
	if (iv && update_route_locked(f, iv, addr, data) == 0) {
		uint64_t one = 1;
		if (write(iv->fd, &one, sizeof(one)) == (ssize_t)sizeof(one)) {
			f->via_irqfd++;
			pthread_mutex_unlock(&f->lock);
			return;
		}
		warn_fallback("eventfd write", errno);
	}
	f->via_ioctl++;
	signal_msi(f, addr, data);
	pthread_mutex_unlock(&f->lock);
}

void irqfds_destroy(struct irqfds *f)
{
	for (unsigned s = 0; s < PCI_MAX_SLOTS; s++) {
		for (unsigned v = 0; f->slots[s] && v < PCI_MSIX_MAX_VECTORS; v++) {
			struct irqfd_vector *iv = &f->slots[s][v];
			if (iv->fd < 0)
				continue;
			struct kvm_irqfd req = {.fd = (uint32_t)iv->fd,
						.gsi = iv->gsi,
						.flags = KVM_IRQFD_FLAG_DEASSIGN};
			if (ioctl(f->vm_fd, KVM_IRQFD, &req) < 0)
				kite_warn("KVM_IRQFD deassign: %s", strerror(errno));
			close(iv->fd);
		}
		free(f->slots[s]);
		f->slots[s] = NULL;
	}
	irq_routes_free(&f->routes);
	pthread_mutex_destroy(&f->lock);
}

/* ---- state ---- */

#define ROUTE_BYTES 16 /* u8 slot, u8 vector, u16 0, u32 data, u64 address */

int irqfds_save(struct irqfds *f, struct state_buf *out)
{
	struct state_writer w;
	/* At most one route per vector of every slot; raw bytes, a field each would be longer. */
	size_t cap = (size_t)PCI_MAX_SLOTS * PCI_MSIX_MAX_VECTORS * ROUTE_BYTES, len = 0;
	uint8_t *routes = malloc(cap);
	if (!routes)
		return kite_error("out of memory");
	pthread_mutex_lock(&f->lock);
	for (unsigned s = 0; s < PCI_MAX_SLOTS; s++) {
		for (unsigned v = 0; f->slots[s] && v < PCI_MSIX_MAX_VECTORS; v++) {
			const struct irqfd_vector *iv = &f->slots[s][v];
			const struct kvm_irq_routing_entry *e =
			    iv->fd >= 0 ? irq_routes_find_msi(&f->routes, iv->gsi) : NULL;
			if (!e)
				continue;
			uint8_t *rec = routes + len;
			uint64_t addr = e->u.msi.address_lo | (uint64_t)e->u.msi.address_hi << 32;
			memset(rec, 0, ROUTE_BYTES);
			rec[0] = (uint8_t)s;
			rec[1] = (uint8_t)v;
			memcpy(rec + 4, &e->u.msi.data, 4);
			memcpy(rec + 8, &addr, 8);
			len += ROUTE_BYTES;
		}
	}
	pthread_mutex_unlock(&f->lock);
	state_begin(&w, out, "msi-routes", 1);
	state_put_bytes(&w, "routes", routes, len);
	state_end(&w);
	free(routes);
	return state_buf_check(out);
}

int irqfds_load(struct irqfds *f, const struct state_reader *r)
{
	const uint8_t *p;
	size_t len;
	if (state_get_blob(r, "routes", &p, &len) < 0)
		return -1;
	if (len % ROUTE_BYTES)
		return kite_error("device state: msi-routes: %zu bytes", len);
	for (size_t off = 0; off < len; off += ROUTE_BYTES) {
		unsigned slot = p[off], vector = p[off + 1];
		uint32_t data;
		uint64_t addr;
		memcpy(&data, p + off + 4, 4);
		memcpy(&addr, p + off + 8, 8);
		if (slot >= PCI_MAX_SLOTS || vector >= PCI_MSIX_MAX_VECTORS)
			return kite_error("device state: msi-routes: slot %u vector %u", slot,
					  vector);
		pthread_mutex_lock(&f->lock);
		struct irqfd_vector *iv = f->usable ? vector_locked(f, slot, vector) : NULL;
		if (iv)
			(void)update_route_locked(f, iv, addr, data);
		pthread_mutex_unlock(&f->lock);
	}
	return 0;
}

#include "virtio/virtio_net.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define VIRTIO_NET_F_MAC       5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS    16
#define VIRTIO_NET_S_LINK_UP   1

#define RX_Q	      0
#define TX_Q	      1
#define HDR_LEN	      12 /* struct virtio_net_hdr with num_buffers: always, with VERSION_1 */
#define CONFIG_SIZE   10 /* mac[6], status, max_virtqueue_pairs */
#define MAX_RX_CHAINS 64 /* chains one received frame may take with MRG_RXBUF */

struct virtio_net {
	struct virtio_dev vd;
	struct net_backend *be;
	uint8_t config[CONFIG_SIZE];
	pthread_mutex_t rx_lock, tx_lock;
	struct virtq_elem rx_elem, tx_elem;
	uint8_t tx_buf[NET_MAX_FRAME];
};

/* ---- frontend callbacks: backend thread ---- */

/* Without VIRTIO_NET_F_MRG_RXBUF: the frame and its header in one chain. */
static int receive_one(struct virtio_net *n, struct virtq *q, const uint8_t *frame, size_t len)
{
	int got = virtq_pop(q, &n->rx_elem);
	if (got < 0)
		virtio_dev_fail(&n->vd, q->error);
	if (got <= 0)
		return -1;
	int ret = -1;
	uint32_t used = 0;
	if (n->rx_elem.in_len >= HDR_LEN + len) {
		uint8_t hdr[HDR_LEN] = {0}; /* no checksum offload, GSO_NONE */
		hdr[10] = 1;		    /* num_buffers */
		virtq_elem_write(&n->rx_elem, 0, hdr, HDR_LEN);
		virtq_elem_write(&n->rx_elem, HDR_LEN, frame, len);
		used = HDR_LEN + len;
		ret = 0;
	} /* else: a buffer too small for the frame is returned empty; the driver drops it */
	virtq_push(q, n->rx_elem.head, used);
	return ret;
}

/* With VIRTIO_NET_F_MRG_RXBUF: as many chains as the frame needs (5.1.6.4.2), the header's
 * num_buffers saying how many. Nothing is returned to the driver unless all of it fits. */
static int receive_merged(struct virtio_net *n, struct virtq *q, const uint8_t *frame, size_t len)
{
	uint16_t heads[MAX_RX_CHAINS];
	uint32_t lens[MAX_RX_CHAINS];
	uint8_t *num_buffers[2] = {NULL, NULL}; /* where header bytes 10 and 11 landed */
	uint8_t hdr[HDR_LEN] = {0};
	size_t total = HDR_LEN + len, done = 0;
	unsigned nb = 0;
	while (done < total) {
		int got = nb < MAX_RX_CHAINS ? virtq_pop(q, &n->rx_elem) : 0;
		if (got < 0)
			virtio_dev_fail(&n->vd, q->error);
		if (got <= 0) {
			virtq_unpop(q, nb); /* not enough room: the frame is dropped */
			return -1;
		}
		const struct virtq_elem *e = &n->rx_elem;
		uint32_t w = 0;
		/* The header first (it may straddle buffers), then frame bytes. */
		while (w < e->in_len && done < total) {
			size_t chunk = e->in_len - w;
			if (done < HDR_LEN) {
				if (chunk > HDR_LEN - done)
					chunk = HDR_LEN - done;
				for (size_t i = 0; i < chunk; i++) {
					size_t hb = done + i;
					if (hb == 10 || hb == 11)
						num_buffers[hb - 10] = virtq_elem_ptr(e, w + i);
				}
				virtq_elem_write(e, w, hdr + done, chunk);
			} else {
				if (chunk > total - done)
					chunk = total - done;
				virtq_elem_write(e, w, frame + (done - HDR_LEN), chunk);
			}
			w += chunk;
			done += chunk;
		}
		heads[nb] = e->head;
		lens[nb] = w;
		nb++;
	}
	*num_buffers[0] = nb & 0xff;
	*num_buffers[1] = nb >> 8;
	for (unsigned i = 0; i < nb; i++)
		virtq_push(q, heads[i], lens[i]);
	return 0;
}

static int net_receive(void *opaque, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = opaque;
	struct virtq *q = &n->vd.vqs[RX_Q];
	int ret = -1;
	pthread_mutex_lock(&n->rx_lock);
	if (virtio_dev_live(&n->vd)) {
		uint16_t before = q->used_idx;
		ret = virtio_dev_has_feature(&n->vd, VIRTIO_NET_F_MRG_RXBUF)
			  ? receive_merged(n, q, frame, len)
			  : receive_one(n, q, frame, len);
		if (q->used_idx != before)
			virtio_dev_queue_done(&n->vd, RX_Q);
	}
	pthread_mutex_unlock(&n->rx_lock);
	return ret;
}

static bool net_can_receive(void *opaque)
{
	struct virtio_net *n = opaque;
	pthread_mutex_lock(&n->rx_lock);
	bool ok = virtio_dev_live(&n->vd) && virtq_has_avail(&n->vd.vqs[RX_Q]);
	pthread_mutex_unlock(&n->rx_lock);
	return ok;
}

static void net_flush_tx(void *opaque)
{
	struct virtio_net *n = opaque;
	struct virtq *q = &n->vd.vqs[TX_Q];
	bool pushed = false;
	pthread_mutex_lock(&n->tx_lock);
	while (virtio_dev_live(&n->vd)) {
		int got = virtq_pop(q, &n->tx_elem);
		if (got == 0)
			break;
		if (got < 0) {
			virtio_dev_fail(&n->vd, q->error);
			break;
		}
		uint64_t len = n->tx_elem.out_len;
		if (len > HDR_LEN && len - HDR_LEN <= sizeof(n->tx_buf)) {
			size_t flen =
			    virtq_elem_read(&n->tx_elem, HDR_LEN, n->tx_buf, len - HDR_LEN);
			net_backend_send(n->be, n->tx_buf, flen);
		} /* else: runt or oversized frame, dropped */
		virtq_push(q, n->tx_elem.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_dev_queue_done(&n->vd, TX_Q);
	pthread_mutex_unlock(&n->tx_lock);
}

/* ---- device ops: the io event thread, or vCPU threads whose notify trapped ---- */

static void net_notify(void *dev, unsigned q)
{
	struct virtio_net *n = dev;
	/* TX: frames to send; RX: fresh buffers, a tap backend may resume reading. */
	n->be->ops->wake(n->be);
}

static void net_start(void *dev)
{
	struct virtio_net *n = dev;
	n->be->ops->wake(n->be);
}

static void net_reset(void *dev)
{
	struct virtio_net *n = dev;
	/* tx before rx: sending a frame can deliver a reply (slirp answers inside
	 * slirp_input), so the transmit path takes rx_lock while holding tx_lock. */
	pthread_mutex_lock(&n->tx_lock);
	pthread_mutex_lock(&n->rx_lock);
	pthread_mutex_unlock(&n->rx_lock);
	pthread_mutex_unlock(&n->tx_lock);
}

static void net_config_read(void *dev, uint32_t off, uint8_t *data, unsigned len)
{
	struct virtio_net *n = dev;
	memcpy(data, n->config + off, len);
}

/* Both paths stop under their locks (transmit first, as the transmit path takes them). */
static void net_quiesce(void *dev, bool stop)
{
	struct virtio_net *n = dev;
	if (stop) {
		pthread_mutex_lock(&n->tx_lock);
		pthread_mutex_lock(&n->rx_lock);
	} else {
		pthread_mutex_unlock(&n->rx_lock);
		pthread_mutex_unlock(&n->tx_lock);
	}
}

/* The MAC and link status; the backend's connections (slirp's NAT table) are not saved: a
 * restored guest's TCP connections through user networking are gone. */
static int net_save(void *dev, struct state_buf *out)
{
	struct virtio_net *n = dev;
	struct state_writer w;
	state_begin(&w, out, "virtio-net", 1);
	state_put_bytes(&w, "mac", n->config, 6);
	state_put_u8(&w, "status", n->config[6]);
	state_end(&w);
	return state_buf_check(out);
}

static int net_load(void *dev, const struct state_reader *r)
{
	struct virtio_net *n = dev;
	uint8_t mac[6], status;
	if (state_get_bytes(r, "mac", mac, 6) < 0 || state_get_u8(r, "status", &status) < 0)
		return -1;
	if (memcmp(mac, n->config, 6))
		return kite_error("device state: virtio-net: saved MAC "
				  "%02x:%02x:%02x:%02x:%02x:%02x is not this card's",
				  mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	n->config[6] = status & VIRTIO_NET_S_LINK_UP;
	return 0;
}

static const struct state_ops net_state = {"virtio-net", 1, net_save, net_load};

static const struct virtio_device_ops net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .pci_class = 0x020000, /* Ethernet controller */
    .config_size = CONFIG_SIZE,
    .nqueues = 2,
    .queue_max_size = 256,
    .config_read = net_config_read,
    .queue_notify = net_notify,
    .start = net_start,
    .reset = net_reset,
    .state = &net_state,
    .quiesce = net_quiesce,
};

struct virtio_net *virtio_net_create(const struct guest_mem *mem, struct net_backend *be,
				     const uint8_t mac[6])
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	if (!n) {
		kite_error("virtio-net: out of memory");
		return NULL;
	}
	n->be = be;
	memcpy(n->config, mac, 6);
	n->config[6] = VIRTIO_NET_S_LINK_UP;
	n->config[8] = 1; /* max_virtqueue_pairs */
	if (pthread_mutex_init(&n->rx_lock, NULL) || pthread_mutex_init(&n->tx_lock, NULL)) {
		kite_error("virtio-net: mutex");
		free(n);
		be->ops->destroy(be);
		return NULL;
	}
	if (virtio_dev_init(&n->vd, &net_ops, n, mem,
			    1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_STATUS |
				1ull << VIRTIO_NET_F_MRG_RXBUF) < 0)
		goto fail;
	struct net_frontend fe = {net_receive, net_can_receive, net_flush_tx, n};
	if (be->ops->start(be, &fe) < 0) {
		virtio_dev_destroy(&n->vd);
		goto fail;
	}
	return n;
fail:
	be->ops->destroy(be);
	pthread_mutex_destroy(&n->rx_lock);
	pthread_mutex_destroy(&n->tx_lock);
	free(n);
	return NULL;
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (!n)
		return;
	/* The backend's thread calls into the NIC: it goes first. */
	n->be->ops->destroy(n->be);
	virtio_dev_destroy(&n->vd);
	pthread_mutex_destroy(&n->rx_lock);
	pthread_mutex_destroy(&n->tx_lock);
	free(n);
}

struct virtio_dev *virtio_net_dev(struct virtio_net *n)
{
	return &n->vd;
}

/* Tiny IPv4 over virtio-net; see net.h. Receive buffers are one page each, one descriptor
 * per buffer (no mergeable buffers), so a frame always fits. */
#include "net.h"
#include "libguest.h"

#define VIRTIO_NET_F_MAC 5
#define NET_HDR_LEN	 12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define RXQ		 0
#define TXQ		 1
#define RX_BUFS		 32
#define TX_BUFS		 16
#define ETH_ARP		 0x0806
#define ETH_IP		 0x0800

const uint8_t net_broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static uint8_t *rx_of_desc[VIRTQ_MAX_SIZE];
static uint8_t *tx_of_desc[VIRTQ_MAX_SIZE], *tx_free[TX_BUFS];
static int ntx_free;
static uint8_t frame[2048]; /* the frame net_recv() returns data from */
static uint16_t ip_ident;

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* One's-complement sum of big-endian 16-bit words, added to `sum`. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, uint32_t len)
{
	for (uint32_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static bool post_rx(struct net *n, uint8_t *buf)
{
	struct vbuf b = {buf, PAGE_SIZE, true};
	int id = virtq_add(&n->vd.vq[RXQ], &b, 1);
	if (id < 0)
		return false;
	rx_of_desc[id] = buf;
	return true;
}

bool net_init(struct net *n, int index)
{
	return net_init_features(n, index, 0);
}

bool net_init_features(struct net *n, int index, uint64_t features)
{
	memset(n, 0, sizeof(*n));
	if (!virtio_find(VIRTIO_ID_NET, index, &n->vd))
		return false;
	if (!virtio_negotiate(&n->vd, 1ull << VIRTIO_NET_F_MAC | features) ||
	    !virtio_queue_setup(&n->vd, RXQ, 64, VIRTIO_MSI_NO_VECTOR) ||
	    !virtio_queue_setup(&n->vd, TXQ, TX_BUFS, VIRTIO_MSI_NO_VECTOR))
		return false;
	if (virtio_has(&n->vd, VIRTIO_NET_F_MAC)) {
		for (int i = 0; i < 6; i++)
			n->mac[i] = virtio_cfg8(&n->vd, (unsigned)i);
	} else {
		static const uint8_t def[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
		memcpy(n->mac, def, 6);
	}
	virtio_driver_ok(&n->vd);
	ntx_free = 0;
	for (int i = 0; i < n->vd.vq[TXQ].size; i++) {
		if (!(tx_free[ntx_free++] = page_alloc()))
			return false;
	}
	for (int i = 0; i < RX_BUFS; i++) {
		uint8_t *b = page_alloc();
		if (!b || !post_rx(n, b))
			return false;
	}
	virtq_kick(&n->vd, &n->vd.vq[RXQ]);
	return true;
}

/* Takes back the transmit buffers the device has used. */
static void reclaim_tx(struct net *n)
{
	struct virtq *vq = &n->vd.vq[TXQ];
	uint32_t id, len;
	while (virtq_get_used(vq, &id, &len)) {
		if (id < vq->size && tx_of_desc[id]) {
			tx_free[ntx_free++] = tx_of_desc[id];
			tx_of_desc[id] = NULL;
		}
	}
}

bool net_send_eth(struct net *n, const uint8_t dst[6], uint16_t type, const void *payload,
		  uint32_t len)
{
	if (len > ETH_MTU - 14)
		return false;
	struct virtq *vq = &n->vd.vq[TXQ];
	uint64_t end = deadline_ms(5000);
	for (reclaim_tx(n); !ntx_free; reclaim_tx(n)) {
		if (deadline_passed(end))
			return false;
		cpu_relax();
	}
	uint8_t *txbuf = tx_free[--ntx_free];
	memset(txbuf, 0, NET_HDR_LEN + 60);
	uint8_t *eth = txbuf + NET_HDR_LEN;
	memcpy(eth, dst, 6);
	memcpy(eth + 6, n->mac, 6);
	put16(eth + 12, type);
	memcpy(eth + 14, payload, len);
	uint32_t flen = 14 + len < 60 ? 60 : 14 + len; /* minimum frame, zero padded */
	struct vbuf b = {txbuf, NET_HDR_LEN + flen, false};
	uint16_t old = vq->avail->idx;
	int head = virtq_add(vq, &b, 1);
	if (head < 0) {
		tx_free[ntx_free++] = txbuf;
		return false;
	}
	tx_of_desc[head] = txbuf;
	if (!n->tx_nowait) {
		virtq_kick(&n->vd, vq);
		while (tx_of_desc[head] == txbuf) { /* until the device has sent it */
			if (deadline_passed(end))
				return false;
			cpu_relax();
			reclaim_tx(n);
		}
	} else if (virtq_kick_needed(vq, old)) {
		virtq_kick(&n->vd, vq);
	}
	return true;
}

static bool send_ip(struct net *n, const uint8_t dst_mac[6], uint32_t src, uint32_t dst,
		    uint8_t proto, const uint8_t *l4, uint32_t l4len)
{
	static uint8_t pkt[ETH_MTU];
	if (l4len > ETH_MTU - 14 - 20)
		return false;
	uint8_t *ip = pkt;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4len));
	put16(ip + 4, ++ip_ident);
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	memcpy(ip + 20, l4, l4len);
	return net_send_eth(n, dst_mac, ETH_IP, pkt, 20 + l4len);
}

/* The TCP/UDP checksum: pseudo-header, then the segment (its checksum field zero). */
static uint16_t l4_csum(uint32_t src, uint32_t dst, uint8_t proto, const uint8_t *l4, uint32_t len)
{
	uint8_t ph[12];
	put32(ph, src);
	put32(ph + 4, dst);
	ph[8] = 0;
	ph[9] = proto;
	put16(ph + 10, (uint16_t)len);
	return csum_fold(csum_add(csum_add(0, ph, 12), l4, len));
}

bool net_send_udp(struct net *n, const uint8_t dst_mac[6], uint32_t src_ip, uint32_t dst_ip,
		  uint16_t sport, uint16_t dport, const void *data, uint32_t len)
{
	static uint8_t seg[ETH_MTU];
	if (len > ETH_MTU - 14 - 20 - 8)
		return false;
	put16(seg, sport);
	put16(seg + 2, dport);
	put16(seg + 4, (uint16_t)(8 + len));
	put16(seg + 6, 0);
	memcpy(seg + 8, data, len);
	uint16_t c = l4_csum(src_ip, dst_ip, IPPROTO_UDP, seg, 8 + len);
	put16(seg + 6, c ? c : 0xffff);
	return send_ip(n, dst_mac, src_ip, dst_ip, IPPROTO_UDP, seg, 8 + len);
}

bool net_send_tcp(struct net *n, const uint8_t dst_mac[6], uint32_t dst_ip, uint16_t sport,
		  uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags, const void *data,
		  uint32_t len)
{
	static uint8_t seg[ETH_MTU];
	if (len > ETH_MTU - 14 - 20 - 20)
		return false;
	memset(seg, 0, 20);
	put16(seg, sport);
	put16(seg + 2, dport);
	put32(seg + 4, seq);
	put32(seg + 8, ack);
	seg[12] = 5 << 4; /* 20-byte header, no options */
	seg[13] = flags;
	put16(seg + 14, 8192); /* window */
	memcpy(seg + 20, data, len);
	put16(seg + 16, l4_csum(n->ip, dst_ip, IPPROTO_TCP, seg, 20 + len));
	return send_ip(n, dst_mac, n->ip, dst_ip, IPPROTO_TCP, seg, 20 + len);
}

/* ARP request or reply: who-has `tip` (tell us), or `tip`/`tmac` is-at us. */
static bool send_arp(struct net *n, uint16_t op, const uint8_t tmac[6], uint32_t tip)
{
	uint8_t a[28];
	put16(a, 1); /* Ethernet */
	put16(a + 2, ETH_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, n->mac, 6);
	put32(a + 14, n->ip);
	memcpy(a + 18, tmac, 6);
	put32(a + 24, tip);
	return net_send_eth(n, op == 1 ? net_broadcast : tmac, ETH_ARP, a, sizeof(a));
}

/* Takes the next received frame into `frame`; returns its length, 0 when none is there. */
static uint32_t take_frame(struct net *n)
{
	struct virtq *vq = &n->vd.vq[RXQ];
	uint32_t id, len;
	if (!virtq_get_used(vq, &id, &len))
		return 0;
	if (id >= vq->size || !rx_of_desc[id])
		return 0; /* the device returned a chain we never posted */
	uint8_t *b = rx_of_desc[id];
	rx_of_desc[id] = NULL;
	uint32_t flen = 0;
	if (len > NET_HDR_LEN && len <= PAGE_SIZE) {
		flen = len - NET_HDR_LEN;
		if (flen > sizeof(frame))
			flen = sizeof(frame);
		memcpy(frame, b + NET_HDR_LEN, flen);
	}
	uint16_t old = vq->avail->idx;
	post_rx(n, b);
	if (!n->tx_nowait || virtq_kick_needed(vq, old))
		virtq_kick(&n->vd, vq);
	return flen ? flen : 1; /* 1: a runt, skipped by the callers' length checks */
}

static uint8_t arp_reply_mac[6];
static uint32_t arp_wanted;
static bool arp_answered;

/* ARP: answers requests for our address, notes the reply we wait for. */
static void handle_arp(struct net *n, const uint8_t *a, uint32_t len)
{
	if (len < 28 || get16(a) != 1 || get16(a + 2) != ETH_IP)
		return;
	uint16_t op = get16(a + 6);
	uint32_t sip = get32(a + 14), tip = get32(a + 24);
	if (op == 1 && n->ip && tip == n->ip)
		send_arp(n, 2, a + 8, sip);
	else if (op == 2 && sip == arp_wanted) {
		memcpy(arp_reply_mac, a + 8, 6);
		arp_answered = true;
	}
}

/* Parses frame[] as IPv4 UDP/TCP into p; false for anything else (ARP handled here). */
static bool parse(struct net *n, uint32_t flen, struct net_pkt *p)
{
	if (flen < 14)
		return false;
	uint16_t type = get16(frame + 12);
	if (type == ETH_ARP) {
		handle_arp(n, frame + 14, flen - 14);
		return false;
	}
	if (type != ETH_IP || flen < 14 + 20)
		return false;
	const uint8_t *ip = frame + 14;
	uint32_t ihl = (ip[0] & 0xf) * 4u, tot = get16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl || tot > flen - 14)
		return false;
	memset(p, 0, sizeof(*p));
	memcpy(p->src_mac, frame + 6, 6);
	p->src_ip = get32(ip + 12);
	p->dst_ip = get32(ip + 16);
	p->proto = ip[9];
	const uint8_t *l4 = ip + ihl;
	uint32_t l4len = tot - ihl;
	if (p->proto == IPPROTO_UDP && l4len >= 8) {
		p->sport = get16(l4);
		p->dport = get16(l4 + 2);
		uint32_t ulen = get16(l4 + 4);
		if (ulen < 8 || ulen > l4len)
			return false;
		p->data = l4 + 8;
		p->len = ulen - 8;
		return true;
	}
	if (p->proto == IPPROTO_TCP && l4len >= 20) {
		uint32_t doff = (l4[12] >> 4) * 4u;
		if (doff < 20 || doff > l4len)
			return false;
		p->sport = get16(l4);
		p->dport = get16(l4 + 2);
		p->seq = get32(l4 + 4);
		p->ack = get32(l4 + 8);
		p->flags = l4[13];
		p->window = get16(l4 + 14);
		p->data = l4 + doff;
		p->len = l4len - doff;
		return true;
	}
	return false;
}

bool net_recv(struct net *n, struct net_pkt *p, uint64_t ms)
{
	uint64_t end = deadline_ms(ms);
	for (;;) {
		uint32_t flen = take_frame(n);
		if (flen && parse(n, flen, p))
			return true;
		if (!flen) {
			if (deadline_passed(end))
				return false;
			cpu_relax();
		}
	}
}

bool net_arp(struct net *n, uint32_t ip, uint8_t mac[6], uint64_t ms)
{
	static const uint8_t zero[6];
	arp_wanted = ip;
	arp_answered = false;
	for (int attempt = 0; attempt < 3 && !arp_answered; attempt++) {
		send_arp(n, 1, zero, ip);
		uint64_t end = deadline_ms(ms / 3 + 1);
		struct net_pkt p;
		while (!arp_answered && !deadline_passed(end))
			net_recv(n, &p, 10); /* other traffic is dropped while we wait */
	}
	if (arp_answered)
		memcpy(mac, arp_reply_mac, 6);
	return arp_answered;
}

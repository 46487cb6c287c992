/* virtio-net on the libslirp backend: a DHCP discover built here gets an offer of 10.0.2.15
 * (10.0.3.15 on the second NIC), and a hostfwd port makes slirp look for the guest. */
#include "unit.h"
#include "vpci_driver.h"
#include "virtio/virtio_net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define RXBUF_GPA 0x400000
#define RXBUF_LEN 2048
#define NRX	  16
#define TX_GPA	  0x300000

static const uint8_t MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

struct fx {
	struct vdrv d;
	struct virtio_pci vp;
	struct virtio_net *net;
	uint16_t rx_seen;
	uint64_t features;
};

#define F_MRG_RXBUF (1ull << 15)

/* The NIC with features `want` (masked by what it offers) and `nrx` receive buffers of
 * `rxlen` bytes posted. */
static void start_with(struct fx *f, const char *opts, unsigned index, uint64_t want, int nrx,
		       uint32_t rxlen)
{
	vd_init(&f->d);
	struct nic_config o;
	assert_int_equal(nic_config_parse(opts, &o, "--net"), 0);
	struct net_backend *be = net_backend_create(&o, index);
	assert_non_null(be);
	f->net = virtio_net_create(&f->d.mem, be, MAC);
	assert_non_null(f->net);
	assert_int_equal(virtio_pci_init(&f->vp, &f->d.bus, virtio_net_dev(f->net)), 1);
	assert_int_equal(vd_probe(&f->d, 1), 1);
	vd_enable_msix(&f->d);
	f->features = vd_negotiate(&f->d, want);
	assert_true(f->features >> 5 & 1); /* VIRTIO_NET_F_MAC */
	vd_setup_queue(&f->d, 0, 64, 0x10000);
	vd_setup_queue(&f->d, 1, 64, 0x20000);
	vd_driver_ok(&f->d);
	for (int i = 0; i < 6; i++) /* the MAC in config space */
		assert_int_equal(vd_rd(&f->d, IOBUS_MMIO, f->d.device + i, 1), MAC[i]);
	assert_int_equal(vd_rd(&f->d, IOBUS_MMIO, f->d.device + 6, 2), 1); /* link up */
	for (int i = 0; i < nrx; i++) {
		tq_desc(&f->d.q[0], i, RXBUF_GPA + RXBUF_LEN * i, rxlen, VIRTQ_DESC_F_WRITE, 0);
		tq_avail(&f->d.q[0], i);
	}
	vd_kick(&f->d, 0);
}

static void start(struct fx *f, const char *opts, unsigned index)
{
	start_with(f, opts, index, ~0ull, NRX, RXBUF_LEN);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	virtio_net_destroy(f->net);
	virtio_pci_destroy(&f->vp);
	vd_fini(&f->d);
	free(f);
	return 0;
}

static int setup(void **state)
{
	*state = calloc(1, sizeof(struct fx));
	return 0;
}

static void send_frame(struct fx *f, const uint8_t *frame, size_t len)
{
	struct tq *tx = &f->d.q[1];
	uint16_t slot = tx->avail_idx % tx->size;
	uint64_t gpa = TX_GPA + 2048 * slot;
	memset(f->d.ram + gpa, 0, 12); /* virtio_net_hdr */
	memcpy(f->d.ram + gpa + 12, frame, len);
	tq_desc(tx, slot, gpa, 12 + len, 0, 0);
	tq_avail(tx, slot);
	vd_kick(&f->d, 1);
}

/* Next received frame (without the virtio header) matching `want`, or NULL after 5 s. */
static const uint8_t *recv_frame(struct fx *f, bool (*want)(const uint8_t *, uint32_t),
				 uint32_t *len)
{
	for (int tries = 0; tries < 5000; tries++) {
		while (f->rx_seen != tq_used_idx(&f->d.q[0])) {
			uint32_t id, ulen;
			tq_used_elem(&f->d.q[0], f->rx_seen++, &id, &ulen);
			assert_true(id < NRX && ulen <= RXBUF_LEN);
			if (ulen == 0)
				continue; /* a buffer too small for the frame, returned empty */
			assert_true(ulen >= 12);
			const uint8_t *fr = f->d.ram + RXBUF_GPA + RXBUF_LEN * id + 12;
			if (want(fr, ulen - 12)) {
				*len = ulen - 12;
				return fr;
			}
		}
		usleep(1000);
	}
	return NULL;
}

static uint16_t ip_checksum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += p[i] << 8 | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* Ethernet + IPv4 + UDP 68->67 + BOOTP DHCPDISCOVER. Returns the frame length. */
static size_t build_discover(uint8_t *fr, uint32_t xid)
{
	size_t bootp_len = 300, udp_len = 8 + bootp_len, ip_len = 20 + udp_len;
	memset(fr, 0, 14 + ip_len);
	memset(fr, 0xff, 6);
	memcpy(fr + 6, MAC, 6);
	fr[12] = 0x08;
	uint8_t *ip = fr + 14;
	ip[0] = 0x45;
	ip[2] = ip_len >> 8;
	ip[3] = ip_len & 0xff;
	ip[8] = 64;
	ip[9] = 17;
	memset(ip + 16, 0xff, 4); /* to 255.255.255.255 from 0.0.0.0 */
	uint16_t cs = ip_checksum(ip, 20);
	ip[10] = cs >> 8;
	ip[11] = cs & 0xff;
	uint8_t *udp = ip + 20;
	udp[1] = 68;
	udp[3] = 67;
	udp[4] = udp_len >> 8;
	udp[5] = udp_len & 0xff;
	uint8_t *b = udp + 8;
	b[0] = 1; /* BOOTREQUEST */
	b[1] = 1; /* Ethernet */
	b[2] = 6;
	memcpy(b + 4, &xid, 4);
	memcpy(b + 28, MAC, 6);
	const uint8_t opts[] = {0x63, 0x82, 0x53, 0x63, 53, 1, 1 /* DISCOVER */, 255};
	memcpy(b + 236, opts, sizeof(opts));
	return 14 + ip_len;
}

static uint32_t want_xid;
static bool is_dhcp_reply(const uint8_t *fr, uint32_t len)
{
	if (len < 14 + 20 + 8 + 240 || fr[12] != 0x08 || fr[13] != 0x00 || fr[14 + 9] != 17)
		return false;
	const uint8_t *udp = fr + 14 + (fr[14] & 15) * 4;
	const uint8_t *b = udp + 8;
	return udp[3] == 68 && b[0] == 2 && !memcmp(b + 4, &want_xid, 4);
}

static void expect_offer(struct fx *f, const char *addr)
{
	uint8_t fr[1500];
	want_xid = 0x4b495445;
	size_t n = build_discover(fr, want_xid);
	send_frame(f, fr, n);
	uint32_t len;
	const uint8_t *r = recv_frame(f, is_dhcp_reply, &len);
	assert_non_null(r);
	const uint8_t *b = r + 14 + (r[14] & 15) * 4 + 8;
	char got[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, b + 16, got, sizeof(got)); /* yiaddr */
	assert_string_equal(got, addr);
	assert_memory_equal(b + 28, MAC, 6); /* for our MAC (chaddr) */
	/* option 53 = 2 (DHCPOFFER) */
	const uint8_t *o = b + 240, *end = r + len;
	bool offer = false;
	while (o + 2 <= end && *o != 255) {
		if (*o == 0) {
			o++;
			continue;
		}
		if (o[0] == 53 && o[1] == 1 && o + 3 <= end)
			offer = o[2] == 2;
		o += 2 + o[1];
	}
	assert_true(offer);
	/* the transmitted chain came back used */
	assert_int_equal(vd_wait_used(&f->d, 1, f->d.q[1].avail_idx), 0);
}

static void test_dhcp_offer(void **state)
{
	struct fx *f = *state;
	start(f, "user", 0);
	expect_offer(f, "10.0.2.15");
}

static void test_dhcp_second_nic(void **state)
{
	struct fx *f = *state;
	start(f, "user", 1);
	expect_offer(f, "10.0.3.15");
}

static bool is_arp_for_guest(const uint8_t *fr, uint32_t len)
{
	static const uint8_t guest[4] = {10, 0, 2, 15};
	return len >= 42 && fr[12] == 0x08 && fr[13] == 0x06 && fr[21] == 1 /* request */ &&
	       !memcmp(fr + 38, guest, 4);
}

static bool is_syn_to_guest_22(const uint8_t *fr, uint32_t len)
{
	if (len < 54 || fr[12] != 0x08 || fr[13] != 0x00 || fr[14 + 9] != 6)
		return false;
	const uint8_t *tcp = fr + 14 + (fr[14] & 15) * 4;
	return tcp[2] == 0 && tcp[3] == 22 && (tcp[13] & 0x02);
}

static uint16_t free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t al = sizeof(a);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
	close(s);
	return ntohs(a.sin_port);
}

static void test_hostfwd_reaches_guest(void **state)
{
	struct fx *f = *state;
	uint16_t port = free_port();
	char opts[96];
	snprintf(opts, sizeof(opts), "user,hostfwd=tcp:127.0.0.1:%u-:22", port);
	start(f, opts, 0);
	expect_offer(f, "10.0.2.15"); /* slirp learns our MAC */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	/* slirp accepts and opens the guest side: a SYN to 10.0.2.15:22 (or an ARP first) */
	uint32_t len;
	const uint8_t *r = recv_frame(f, is_syn_to_guest_22, &len);
	if (!r)
		r = recv_frame(f, is_arp_for_guest, &len);
	assert_non_null(r);
	close(s);
}

/* A receive buffer too small for a frame comes back empty (the next one gets the frame);
 * a transmit chain that loops breaks the device (NEEDS_RESET), nothing else. */
static void test_hostile_buffers(void **state)
{
	struct fx *f = *state;
	start_with(f, "user", 0, ~F_MRG_RXBUF, NRX, RXBUF_LEN);
	expect_offer(f, "10.0.2.15");
	/* the next posted receive buffer shrinks to 8 bytes: the offer cannot fit */
	uint16_t next = tq_used_idx(&f->d.q[0]);
	tq_desc(&f->d.q[0], next % NRX, RXBUF_GPA + RXBUF_LEN * (next % NRX), 8, VIRTQ_DESC_F_WRITE,
		0);
	uint8_t fr[1500];
	send_frame(f, fr, build_discover(fr, 0x12345678));
	assert_int_equal(vd_wait_used(&f->d, 0, next + 1), 0);
	uint32_t id, len;
	tq_used_elem(&f->d.q[0], next, &id, &len);
	assert_int_equal(id, next % NRX);
	assert_int_equal(len, 0);
	f->rx_seen = next + 1;
	/* the next frame lands in the next buffer as usual */
	expect_offer(f, "10.0.2.15");
	/* a looping transmit chain */
	struct tq *tx = &f->d.q[1];
	uint16_t a = tx->avail_idx % tx->size, b = (a + 1) % tx->size;
	tq_desc(tx, a, TX_GPA, 64, VIRTQ_DESC_F_NEXT, b);
	tq_desc(tx, b, TX_GPA, 64, VIRTQ_DESC_F_NEXT, a);
	tq_avail(tx, a);
	vd_kick(&f->d, 1);
	for (int i = 0; i < 5000 && !(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET);
}

/* Ethernet + IPv4 + UDP from the guest (10.0.2.15) to `dst`:`dport`, via the gateway's MAC
 * (slirp's 52:55:0a:00:02:02). */
static size_t build_udp(uint8_t *fr, const uint8_t dst[4], uint16_t sport, uint16_t dport,
			const char *payload)
{
	size_t plen = strlen(payload), udp_len = 8 + plen, ip_len = 20 + udp_len;
	static const uint8_t gw_mac[6] = {0x52, 0x55, 10, 0, 2, 2};
	memset(fr, 0, 14 + ip_len);
	memcpy(fr, gw_mac, 6);
	memcpy(fr + 6, MAC, 6);
	fr[12] = 0x08;
	uint8_t *ip = fr + 14;
	ip[0] = 0x45;
	ip[2] = ip_len >> 8;
	ip[3] = ip_len & 0xff;
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, (uint8_t[]){10, 0, 2, 15}, 4);
	memcpy(ip + 16, dst, 4);
	uint16_t cs = ip_checksum(ip, 20);
	ip[10] = cs >> 8;
	ip[11] = cs & 0xff;
	uint8_t *udp = ip + 20;
	udp[0] = sport >> 8;
	udp[1] = sport & 0xff;
	udp[2] = dport >> 8;
	udp[3] = dport & 0xff;
	udp[4] = udp_len >> 8;
	udp[5] = udp_len & 0xff;
	memcpy(udp + 8, payload, plen); /* UDP checksum 0: none */
	return 14 + ip_len;
}

static uint16_t want_dport;
static bool is_udp_to_guest(const uint8_t *fr, uint32_t len)
{
	if (len < 42 || fr[12] != 0x08 || fr[13] != 0x00 || fr[14 + 9] != 17)
		return false;
	const uint8_t *udp = fr + 14 + (fr[14] & 15) * 4;
	return (udp[2] << 8 | udp[3]) == want_dport;
}

static int udp_socket(uint16_t *port)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(*port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t al = sizeof(a);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return s;
}

/* The gateway 10.0.2.2 is the host's loopback: a datagram to 10.0.2.2:P reaches a host
 * socket on 127.0.0.1:P, and its answer comes back to the guest. */
static void test_udp_to_host_via_gateway(void **state)
{
	struct fx *f = *state;
	uint16_t port = 0;
	int s = udp_socket(&port);
	start(f, "user", 0);
	expect_offer(f, "10.0.2.15");
	uint8_t fr[256];
	send_frame(f, fr, build_udp(fr, (uint8_t[]){10, 0, 2, 2}, 4444, port, "ping from guest"));
	char buf[64];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
	assert_int_equal(n, 15);
	assert_memory_equal(buf, "ping from guest", 15);
	assert_int_equal(sendto(s, "pong", 4, 0, (struct sockaddr *)&from, fl), 4);
	want_dport = 4444;
	uint32_t len;
	const uint8_t *r = recv_frame(f, is_udp_to_guest, &len);
	assert_non_null(r);
	const uint8_t *ip = r + 14;
	assert_memory_equal(ip + 12, ((uint8_t[]){10, 0, 2, 2}), 4); /* from the gateway */
	assert_memory_equal(ip + 16, ((uint8_t[]){10, 0, 2, 15}), 4);
	assert_memory_equal(ip + (ip[0] & 15) * 4 + 8, "pong", 4);
	close(s);
}

/* hostfwd=udp: a datagram to the host port arrives at the guest's port. */
static void test_udp_hostfwd(void **state)
{
	struct fx *f = *state;
	uint16_t port = 0;
	int probe = udp_socket(&port); /* find a free port, then free it for slirp */
	close(probe);
	char opts[96];
	snprintf(opts, sizeof(opts), "user,hostfwd=udp:127.0.0.1:%u-:5353", port);
	start(f, opts, 0);
	expect_offer(f, "10.0.2.15");
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(sendto(s, "to the guest", 12, 0, (struct sockaddr *)&a, sizeof(a)), 12);
	want_dport = 5353;
	uint32_t len;
	const uint8_t *r = recv_frame(f, is_udp_to_guest, &len);
	assert_non_null(r);
	const uint8_t *ip = r + 14;
	assert_memory_equal(ip + 16, ((uint8_t[]){10, 0, 2, 15}), 4);
	assert_memory_equal(ip + (ip[0] & 15) * 4 + 8, "to the guest", 12);
	close(s);
}

/* A TCP segment from the guest 10.0.2.15:40000 to 10.0.2.2:`dport`, checksummed. */
static size_t build_tcp(uint8_t *fr, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
			const char *payload)
{
	size_t plen = strlen(payload), tcp_len = 20 + plen, ip_len = 20 + tcp_len;
	static const uint8_t gw_mac[6] = {0x52, 0x55, 10, 0, 2, 2};
	memset(fr, 0, 14 + ip_len);
	memcpy(fr, gw_mac, 6);
	memcpy(fr + 6, MAC, 6);
	fr[12] = 0x08;
	uint8_t *ip = fr + 14;
	ip[0] = 0x45;
	ip[2] = ip_len >> 8;
	ip[3] = ip_len & 0xff;
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, (uint8_t[]){10, 0, 2, 15}, 4);
	memcpy(ip + 16, (uint8_t[]){10, 0, 2, 2}, 4);
	uint16_t cs = ip_checksum(ip, 20);
	ip[10] = cs >> 8;
	ip[11] = cs & 0xff;
	uint8_t *tcp = ip + 20;
	tcp[0] = 40000 >> 8;
	tcp[1] = 40000 & 0xff;
	tcp[2] = dport >> 8;
	tcp[3] = dport & 0xff;
	for (int i = 0; i < 4; i++) {
		tcp[4 + i] = seq >> (24 - 8 * i);
		tcp[8 + i] = ack >> (24 - 8 * i);
	}
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	tcp[14] = 0xff; /* window 65535 */
	tcp[15] = 0xff;
	memcpy(tcp + 20, payload, plen);
	/* checksum over the pseudo header (addresses, protocol, length) and the segment */
	uint8_t pseudo[12 + 1500];
	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = 6;
	pseudo[10] = tcp_len >> 8;
	pseudo[11] = tcp_len & 0xff;
	memcpy(pseudo + 12, tcp, tcp_len);
	size_t n = 12 + tcp_len;
	if (n & 1)
		pseudo[n++] = 0;
	cs = ip_checksum(pseudo, n);
	tcp[16] = cs >> 8;
	tcp[17] = cs & 0xff;
	return 14 + ip_len;
}

static uint8_t want_tcp_flags;
static bool is_tcp_to_guest(const uint8_t *fr, uint32_t len)
{
	if (len < 54 || fr[12] != 0x08 || fr[13] != 0x00 || fr[14 + 9] != 6)
		return false;
	const uint8_t *tcp = fr + 14 + (fr[14] & 15) * 4;
	return (tcp[2] << 8 | tcp[3]) == 40000 && (tcp[13] & want_tcp_flags) == want_tcp_flags;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/* A TCP connection from the guest to a host service on 127.0.0.1 through 10.0.2.2: the
 * handshake, bytes each way. */
static void test_tcp_to_host_via_gateway(void **state)
{
	struct fx *f = *state;
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(ls >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t al = sizeof(a);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
	assert_int_equal(listen(ls, 1), 0);
	uint16_t port = ntohs(a.sin_port);
	start(f, "user", 0);
	expect_offer(f, "10.0.2.15");

	uint8_t fr[256];
	send_frame(f, fr, build_tcp(fr, port, 1000, 0, 0x02 /* SYN */, ""));
	want_tcp_flags = 0x12; /* SYN+ACK */
	uint32_t len;
	const uint8_t *r = recv_frame(f, is_tcp_to_guest, &len);
	assert_non_null(r);
	const uint8_t *tcp = r + 14 + (r[14] & 15) * 4;
	uint32_t server_seq = be32(tcp + 4);
	assert_int_equal(be32(tcp + 8), 1001);

	send_frame(f, fr,
		   build_tcp(fr, port, 1001, server_seq + 1, 0x18 /* PSH+ACK */, "hello over NAT"));
	struct timeval tv = {.tv_sec = 5};
	setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int cs = accept(ls, NULL, NULL);
	assert_true(cs >= 0);
	setsockopt(cs, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char buf[64];
	assert_int_equal(recv(cs, buf, sizeof(buf), 0), 14);
	assert_memory_equal(buf, "hello over NAT", 14);
	assert_int_equal(send(cs, "reply", 5, 0), 5);
	want_tcp_flags = 0x10; /* ACK, with data */
	for (;;) {
		r = recv_frame(f, is_tcp_to_guest, &len);
		assert_non_null(r);
		const uint8_t *ip = r + 14;
		tcp = ip + (ip[0] & 15) * 4;
		size_t data = (ip[2] << 8 | ip[3]) - (ip[0] & 15) * 4 - (tcp[12] >> 4) * 4;
		if (data) {
			assert_int_equal(data, 5);
			assert_memory_equal(tcp + (tcp[12] >> 4) * 4, "reply", 5);
			break;
		}
	}
	close(cs);
	close(ls);
}

/* With MRG_RXBUF a frame spreads over several small buffers, num_buffers saying how many;
 * when too few are posted, nothing is used and the frame is dropped. */
static void test_mergeable_rx_buffers(void **state)
{
	struct fx *f = *state;
	start_with(f, "user", 0, ~0ull, 2, 256); /* 512 bytes posted: an offer needs more */
	assert_true(f->features & F_MRG_RXBUF);
	uint8_t fr[1500];
	send_frame(f, fr, build_discover(fr, 0x11111111));
	assert_int_equal(vd_wait_used(&f->d, 1, 1), 0); /* sent */
	usleep(200000);
	assert_int_equal(tq_used_idx(&f->d.q[0]), 0); /* dropped whole, no buffer used */
	for (int i = 2; i < 8; i++) {
		tq_desc(&f->d.q[0], i, RXBUF_GPA + RXBUF_LEN * i, 256, VIRTQ_DESC_F_WRITE, 0);
		tq_avail(&f->d.q[0], i);
	}
	vd_kick(&f->d, 0);
	want_xid = 0x22222222;
	send_frame(f, fr, build_discover(fr, want_xid));
	for (int i = 0; i < 5000 && tq_used_idx(&f->d.q[0]) < 3; i++)
		usleep(1000);
	uint16_t used = tq_used_idx(&f->d.q[0]);
	assert_true(used >= 3);
	/* first buffer: header with num_buffers, then the frame continues in the next ones */
	uint32_t id, len;
	tq_used_elem(&f->d.q[0], 0, &id, &len);
	const uint8_t *first = f->d.ram + RXBUF_GPA + RXBUF_LEN * id;
	uint16_t nbuf = first[10] | first[11] << 8;
	assert_true(nbuf >= 3 && nbuf <= used);
	uint8_t whole[2048];
	size_t n = 0;
	for (uint16_t k = 0; k < nbuf; k++) {
		tq_used_elem(&f->d.q[0], k, &id, &len);
		assert_true(len <= 256 && (k + 1 == nbuf || len == 256));
		memcpy(whole + n, f->d.ram + RXBUF_GPA + RXBUF_LEN * id, len);
		n += len;
	}
	assert_true(is_dhcp_reply(whole + 12, n - 12));
	const uint8_t *b = whole + 12 + 14 + ((whole[12 + 14] & 15) * 4) + 8;
	assert_memory_equal(b + 16, ((uint8_t[]){10, 0, 2, 15}), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_dhcp_offer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dhcp_second_nic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostfwd_reaches_guest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_buffers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_udp_to_host_via_gateway, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_udp_hostfwd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tcp_to_host_via_gateway, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mergeable_rx_buffers, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

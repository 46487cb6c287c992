/* virtio_net: a virtio-net card behind user-mode NAT (QEMU -netdev user, kite --net user;
 * both libslirp). DHCP discover/request gets 10.0.2.15 from 10.0.2.2; ARP finds the gateway;
 * a DNS query to 10.0.2.3 gets an answer; a TCP connection to the host service on
 * 127.0.0.1:tcp_port (reached as 10.0.2.2) exchanges lines; then the program listens on
 * echo_port, prints "READY: hostfwd", and echoes what arrives through the host's forwarded
 * port; with udp_port it then prints "READY: udp" and echoes one datagram. nic=N uses the Nth card
 * (from 0), subnet=S expects 10.0.S.0/24 instead of 10.0.2.0/24 (kite puts its second card
 * on 10.0.3.0/24); host=H, dns=D and ip=I expect the gateway, DNS and DHCP address at 10.0.S.H,
 * .D and .I instead of .2, .3 and .15 (--net user's host=, dns=, dhcpstart=); base=N (the /24's
 * address as a decimal number) replaces 10.0.S.0, for networks other than user NAT's. All of
 * it runs in ring 3 on a tiny IPv4 stack (lib/net.c). */
#include "libguest.h"
#include "net.h"

const char guest_name[] = "virtio_net";

static uint32_t base = IP4(10, 0, 2, 0);		      /* the /24 */
static unsigned host_octet = 2, dns_octet = 3, ip_octet = 15; /* base.octet */
#define GUEST_IP   (base | ip_octet)
#define GATEWAY_IP (base | host_octet)
#define DNS_IP	   (base | dns_octet)
#define DHCP_XID   0x6b697465 /* "kite" */
#define GUEST_MSG  "hello from the guest\n"

static struct net net;
static uint8_t gw_mac[6];

static void put_ip(char *buf, size_t size, uint32_t ip)
{
	snprintf(buf, size, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff,
		 ip & 0xff);
}

/* ---- DHCP ---- */

struct dhcp_reply {
	uint8_t type;
	uint32_t yiaddr, server;
};

static void dhcp_send(uint8_t type, uint32_t req_ip, uint32_t server)
{
	uint8_t m[300];
	memset(m, 0, sizeof(m));
	m[0] = 1; /* BOOTREQUEST */
	m[1] = 1;
	m[2] = 6;
	m[4] = DHCP_XID >> 24, m[5] = (DHCP_XID >> 16) & 0xff, m[6] = (DHCP_XID >> 8) & 0xff;
	m[7] = DHCP_XID & 0xff;
	m[10] = 0x80; /* broadcast reply: we have no address yet */
	memcpy(m + 28, net.mac, 6);
	uint8_t *o = m + 236;
	*o++ = 99, *o++ = 130, *o++ = 83, *o++ = 99; /* magic cookie */
	*o++ = 53, *o++ = 1, *o++ = type;
	if (req_ip) {
		*o++ = 50, *o++ = 4;
		for (int s = 24; s >= 0; s -= 8)
			*o++ = (uint8_t)(req_ip >> s);
	}
	if (server) {
		*o++ = 54, *o++ = 4;
		for (int s = 24; s >= 0; s -= 8)
			*o++ = (uint8_t)(server >> s);
	}
	*o++ = 55, *o++ = 3, *o++ = 1, *o++ = 3, *o++ = 6; /* want mask, router, DNS */
	*o++ = 255;
	net_send_udp(&net, net_broadcast, 0, 0xffffffff, 68, 67, m, sizeof(m));
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Waits for a BOOTREPLY to our xid; parses message type and server id. */
static bool dhcp_recv(struct dhcp_reply *r, uint64_t ms)
{
	uint64_t end = deadline_ms(ms);
	struct net_pkt p;
	while (!deadline_passed(end)) {
		if (!net_recv(&net, &p, 100) || p.proto != IPPROTO_UDP || p.dport != 68 ||
		    p.len < 240 || p.data[0] != 2 || be32(p.data + 4) != DHCP_XID ||
		    be32(p.data + 236) != 0x63825363)
			continue;
		memset(r, 0, sizeof(*r));
		r->yiaddr = be32(p.data + 16);
		for (uint32_t i = 240; i < p.len && p.data[i] != 255;) {
			uint8_t code = p.data[i];
			if (code == 0) {
				i++;
				continue;
			}
			if (i + 1 >= p.len || i + 2 + p.data[i + 1] > p.len)
				break;
			uint8_t len = p.data[i + 1];
			if (code == 53 && len >= 1)
				r->type = p.data[i + 2];
			if (code == 54 && len >= 4)
				r->server = be32(p.data + i + 2);
			i += 2u + len;
		}
		return true;
	}
	return false;
}

static bool dhcp(void)
{
	struct dhcp_reply offer = {0}, ack = {0};
	bool got = false;
	for (int attempt = 0; attempt < 3 && !got; attempt++) {
		dhcp_send(1, 0, 0); /* DISCOVER */
		got = dhcp_recv(&offer, 2000) && offer.type == 2;
	}
	char ip[16], srv[16];
	put_ip(ip, sizeof(ip), offer.yiaddr);
	put_ip(srv, sizeof(srv), offer.server);
	report(got && offer.yiaddr == GUEST_IP && offer.server == GATEWAY_IP,
	       "DHCP offer: %s from %s", ip, srv);
	if (!got)
		return false;
	dhcp_send(3, offer.yiaddr, offer.server); /* REQUEST */
	got = dhcp_recv(&ack, 3000) && ack.type == 5;
	put_ip(ip, sizeof(ip), ack.yiaddr);
	report(got && ack.yiaddr == GUEST_IP, "DHCP ack: %s (type %u)", ip, ack.type);
	net.ip = offer.yiaddr;
	return true;
}

/* ---- DNS ---- */

static void dns(void)
{
	uint8_t mac[6];
	if (!net_arp(&net, DNS_IP, mac, 3000)) {
		char ip[16];
		put_ip(ip, sizeof(ip), DNS_IP);
		report(false, "ARP: %s (DNS) answers", ip);
		return;
	}
	static const uint8_t q[] = {
	    0x4b, 0x54, 0x01, 0x00, 0,	 1,   0,   0,	0,   0,	  0, 0,		  /* id, RD */
	    9,	  'l',	'o',  'c',  'a', 'l', 'h', 'o', 's', 't', 0, 0, 1, 0, 1}; /* A, IN */
	struct net_pkt p;
	bool got = false;
	for (int attempt = 0; attempt < 3 && !got; attempt++) {
		net_send_udp(&net, mac, net.ip, DNS_IP, 5353, 53, q, sizeof(q));
		uint64_t end = deadline_ms(3000);
		while (!got && !deadline_passed(end)) {
			got = net_recv(&net, &p, 100) && p.proto == IPPROTO_UDP && p.sport == 53 &&
			      p.dport == 5353 && p.len >= 12 && p.data[0] == 0x4b &&
			      p.data[1] == 0x54 && (p.data[2] & 0x80);
		}
	}
	if (!got) {
		char ip[16];
		put_ip(ip, sizeof(ip), DNS_IP);
		report(false, "DNS: a reply from %s to a query for localhost", ip);
		return;
	}
	unsigned rcode = p.data[3] & 0xf, answers = (unsigned)(p.data[6] << 8 | p.data[7]);
	char ip[16];
	put_ip(ip, sizeof(ip), DNS_IP);
	report(true, "DNS: a reply from %s to a query for localhost (rcode %u, %u answers)", ip,
	       rcode, answers);
}

/* ---- TCP ---- */

struct tcb {
	uint8_t mac[6];
	uint32_t ip;
	uint16_t lport, rport;
	uint32_t snd_nxt, snd_una, rcv_nxt;
	bool peer_fin, reset;
};

static bool tcp_send(struct tcb *t, uint8_t flags, const void *data, uint32_t len)
{
	return net_send_tcp(&net, t->mac, t->ip, t->lport, t->rport, t->snd_nxt, t->rcv_nxt, flags,
			    data, len);
}

/* Next segment of this connection within `ms`; in-order data goes to `in` (up to `cap`,
 * counted in *got) and is acknowledged; FIN is acknowledged. False on timeout or RST. */
static bool tcp_step(struct tcb *t, struct net_pkt *p, uint64_t ms, uint8_t *in, uint32_t cap,
		     uint32_t *got)
{
	uint64_t end = deadline_ms(ms);
	while (!deadline_passed(end)) {
		if (!net_recv(&net, p, 50) || p->proto != IPPROTO_TCP || p->src_ip != t->ip ||
		    p->sport != t->rport || p->dport != t->lport)
			continue;
		if (p->flags & TCP_RST) {
			t->reset = true;
			return false;
		}
		if (p->flags & TCP_ACK && (int32_t)(p->ack - t->snd_una) > 0)
			t->snd_una = p->ack;
		bool ack_needed = false;
		if (p->len && p->seq == t->rcv_nxt) {
			uint32_t take = p->len;
			if (in && *got + take > cap)
				take = cap - *got;
			if (in) {
				memcpy(in + *got, p->data, take);
				*got += take;
			}
			t->rcv_nxt += p->len;
			ack_needed = true;
		} else if (p->len) {
			ack_needed = true; /* out of order or repeated: say where we are */
		}
		if (p->flags & TCP_FIN && p->seq + p->len == t->rcv_nxt && !t->peer_fin) {
			t->rcv_nxt++;
			t->peer_fin = true;
			ack_needed = true;
		}
		if (ack_needed)
			tcp_send(t, TCP_ACK, NULL, 0);
		return true;
	}
	return false;
}

/* Sends data and waits until it is acknowledged, retransmitting each second. */
static bool tcp_write(struct tcb *t, const void *data, uint32_t len, uint8_t *in, uint32_t cap,
		      uint32_t *got)
{
	uint32_t start = t->snd_nxt;
	for (int attempt = 0; attempt < 5; attempt++) {
		t->snd_nxt = start;
		tcp_send(t, TCP_PSH | TCP_ACK, data, len);
		t->snd_nxt = start + len;
		uint64_t end = deadline_ms(1000);
		struct net_pkt p;
		while (!deadline_passed(end)) {
			if (!tcp_step(t, &p, 100, in, cap, got) && !deadline_passed(end))
				continue;
			if ((int32_t)(t->snd_una - t->snd_nxt) >= 0)
				return true;
		}
	}
	return false;
}

/* Sends FIN (with what we acknowledge) and waits for its ACK. */
static bool tcp_close(struct tcb *t)
{
	uint32_t fin_seq = t->snd_nxt;
	for (int attempt = 0; attempt < 5; attempt++) {
		t->snd_nxt = fin_seq;
		tcp_send(t, TCP_FIN | TCP_ACK, NULL, 0);
		t->snd_nxt = fin_seq + 1;
		uint64_t end = deadline_ms(1000);
		struct net_pkt p;
		while (!deadline_passed(end)) {
			tcp_step(t, &p, 100, NULL, 0, NULL);
			if ((int32_t)(t->snd_una - t->snd_nxt) >= 0)
				return true;
		}
	}
	return false;
}

static void tcp_client(uint16_t port)
{
	struct tcb t = {.ip = GATEWAY_IP, .lport = 40000, .rport = port};
	memcpy(t.mac, gw_mac, 6);
	t.snd_una = 0x1000;
	struct net_pkt p;
	bool est = false;
	for (int attempt = 0; attempt < 5 && !est; attempt++) {
		t.snd_nxt = t.snd_una;
		tcp_send(&t, TCP_SYN, NULL, 0);
		t.snd_nxt = t.snd_una + 1;
		uint64_t end = deadline_ms(1000);
		while (!est && !deadline_passed(end)) {
			if (!net_recv(&net, &p, 50) || p.proto != IPPROTO_TCP || p.sport != port ||
			    p.dport != t.lport)
				continue;
			if (p.flags & TCP_RST)
				break;
			est = (p.flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK) &&
			      p.ack == t.snd_nxt;
			if (est) {
				t.snd_una = p.ack;
				t.rcv_nxt = p.seq + 1;
				tcp_send(&t, TCP_ACK, NULL, 0);
			}
		}
	}
	char gw[16];
	put_ip(gw, sizeof(gw), GATEWAY_IP);
	report(est, "TCP: connected to %s:%u (the host's 127.0.0.1)", gw, port);
	if (!est)
		return;
	static uint8_t in[512];
	uint32_t got = 0;
	bool sent = tcp_write(&t, GUEST_MSG, sizeof(GUEST_MSG) - 1, in, sizeof(in) - 1, &got);
	report(sent, "TCP: %u bytes sent and acknowledged", (unsigned)sizeof(GUEST_MSG) - 1);
	/* The host answers one line and closes. */
	uint64_t end = deadline_ms(5000);
	while (!t.peer_fin && !t.reset && !deadline_passed(end))
		tcp_step(&t, &p, 100, in, sizeof(in) - 1, &got);
	in[got] = '\0';
	if (got && in[got - 1] == '\n')
		in[got - 1] = '\0';
	static const char want[] = "hello from the host: hello from the guest";
	report(strcmp((char *)in, want) == 0, "TCP: the host's reply \"%s\"", (char *)in);
	report(t.peer_fin, "TCP: the host closed (FIN)");
	report(tcp_close(&t), "TCP: our FIN acknowledged");
}

/* Accepts one connection on `port` and echoes until the peer closes. */
static void tcp_echo_server(uint16_t port)
{
	printf("READY: hostfwd\n");
	struct tcb t = {.lport = port};
	struct net_pkt p;
	bool syn = false;
	uint64_t end = deadline_ms(30000);
	while (!syn && !deadline_passed(end)) {
		syn = net_recv(&net, &p, 100) && p.proto == IPPROTO_TCP && p.dport == port &&
		      (p.flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	}
	report(syn, "hostfwd: a SYN for port %u arrived", port);
	if (!syn)
		return;
	memcpy(t.mac, p.src_mac, 6);
	t.ip = p.src_ip;
	t.rport = p.sport;
	t.rcv_nxt = p.seq + 1;
	t.snd_una = 0x2000;
	t.snd_nxt = t.snd_una;
	tcp_send(&t, TCP_SYN | TCP_ACK, NULL, 0);
	t.snd_nxt++;
	static uint8_t in[512];
	uint32_t got = 0, echoed = 0;
	end = deadline_ms(15000);
	while (!deadline_passed(end) && !t.peer_fin && !t.reset) {
		if (!tcp_step(&t, &p, 100, in, sizeof(in), &got))
			continue;
		if (got > echoed) {
			tcp_write(&t, in + echoed, got - echoed, in, sizeof(in), &got);
			echoed = got;
		}
	}
	report(echoed > 0, "hostfwd: echoed %u bytes", echoed);
	report(t.peer_fin, "hostfwd: the host closed (FIN)");
	report(tcp_close(&t), "hostfwd: our FIN acknowledged");
}

/* Echoes one UDP datagram that arrives on `port` through the host's forwarded port. */
static void udp_echo(uint16_t port)
{
	printf("READY: udp\n");
	struct net_pkt p;
	bool got = false;
	uint64_t end = deadline_ms(30000);
	while (!got && !deadline_passed(end)) {
		got = net_recv(&net, &p, 100) && p.proto == IPPROTO_UDP && p.dport == port &&
		      p.dst_ip == net.ip;
	}
	report(got, "UDP hostfwd: a datagram for port %u arrived (%u bytes)", port,
	       got ? p.len : 0);
	if (!got)
		return;
	static uint8_t data[ETH_MTU];
	uint32_t len = p.len < sizeof(data) ? p.len : (uint32_t)sizeof(data);
	memcpy(data, p.data, len);
	uint8_t mac[6];
	memcpy(mac, p.src_mac, 6);
	report(net_send_udp(&net, mac, net.ip, p.src_ip, port, p.sport, data, len),
	       "UDP hostfwd: echoed %u bytes", len);
}

static uint64_t body(uint64_t arg)
{
	base = (uint32_t)cmdline_u64("base", IP4(10, 0, cmdline_u64("subnet", 2), 0));
	host_octet = (unsigned)cmdline_u64("host", 2);
	dns_octet = (unsigned)cmdline_u64("dns", 3);
	ip_octet = (unsigned)cmdline_u64("ip", 15);
	int nic = (int)cmdline_u64("nic", 0);
	bool up = net_init(&net, nic);
	report(up, "virtio-net: VERSION_1 negotiated, receive and transmit queues ready");
	if (!up)
		return 0;
	printf("virtio_net: MAC %02x:%02x:%02x:%02x:%02x:%02x\n", net.mac[0], net.mac[1],
	       net.mac[2], net.mac[3], net.mac[4], net.mac[5]);
	if (!dhcp())
		return 0;
	bool gw = net_arp(&net, GATEWAY_IP, gw_mac, 3000);
	char gw_ip[16];
	put_ip(gw_ip, sizeof(gw_ip), GATEWAY_IP);
	report(gw, "ARP: gateway %s is at %02x:%02x:%02x:%02x:%02x:%02x", gw_ip, gw_mac[0],
	       gw_mac[1], gw_mac[2], gw_mac[3], gw_mac[4], gw_mac[5]);
	dns();
	uint64_t port = cmdline_u64("tcp_port", 0);
	if (gw && port)
		tcp_client((uint16_t)port);
	else if (!port)
		report_skip("TCP to the host (no tcp_port=)");
	port = cmdline_u64("echo_port", 0);
	if (port)
		tcp_echo_server((uint16_t)port);
	else
		report_skip("hostfwd echo (no echo_port=)");
	port = cmdline_u64("udp_port", 0);
	if (port)
		udp_echo((uint16_t)port);
	return 0;
}

void guest_main(void)
{
	run_user(body, 0);
}

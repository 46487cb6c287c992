/* A tiny IPv4 stack over virtio-net for guest programs: Ethernet frames in and out of the
 * device's queues, ARP (answers requests for our address, resolves others), IPv4 with UDP
 * and TCP framing and checksums. Single-threaded and polled: call it from ring 3. Addresses
 * and ports are in host byte order in the API. */
#pragma once
#include "virtio.h"
#include <stdbool.h>
#include <stdint.h>

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
#define ETH_MTU		1514
#define IPPROTO_TCP	6
#define IPPROTO_UDP	17

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* A received IPv4 packet, its transport header parsed. Points into the stack's buffer: valid
 * until the next net_recv(). */
struct net_pkt {
	uint8_t src_mac[6];
	uint32_t src_ip, dst_ip;
	uint8_t proto;
	uint16_t sport, dport;
	uint32_t seq, ack;   /* TCP */
	uint8_t flags;	     /* TCP */
	uint16_t window;     /* TCP, unscaled (we never offer window scaling) */
	const uint8_t *data; /* UDP/TCP payload */
	uint32_t len;
};

struct net {
	struct virtio_dev vd;
	uint8_t mac[6];
	uint32_t ip; /* 0 until configured */
	/* false: net_send_*() return once the device has taken the frame, and every buffer
	 * handed back is notified. true (bulk senders): they return once the frame is queued,
	 * and both queues notify only when the device asks (virtq_kick_needed). */
	bool tx_nowait;
};

/* Finds virtio-net card `index` (0 = first), negotiates (MAC when offered), fills the
 * receive queue. One card per program. */
bool net_init(struct net *n, int index);
/* The same, also negotiating `features` (e.g. 1 << VIRTIO_F_EVENT_IDX) when offered. */
bool net_init_features(struct net *n, int index, uint64_t features);
/* Sends an Ethernet frame whose 14-byte header we build: payload of `len` bytes. */
bool net_send_eth(struct net *n, const uint8_t dst[6], uint16_t type, const void *payload,
		  uint32_t len);
bool net_send_udp(struct net *n, const uint8_t dst_mac[6], uint32_t src_ip, uint32_t dst_ip,
		  uint16_t sport, uint16_t dport, const void *data, uint32_t len);
bool net_send_tcp(struct net *n, const uint8_t dst_mac[6], uint32_t dst_ip, uint16_t sport,
		  uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags, const void *data,
		  uint32_t len);
/* Waits up to `ms` for an IPv4 UDP or TCP packet (answering ARP requests meanwhile). */
bool net_recv(struct net *n, struct net_pkt *p, uint64_t ms);
/* ARP who-has `ip`; false when nobody answers within `ms`. */
bool net_arp(struct net *n, uint32_t ip, uint8_t mac[6], uint64_t ms);
extern const uint8_t net_broadcast[6];

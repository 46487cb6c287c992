/* virtio_bench: virtio-blk and virtio-net throughput as this driver sees it, for bench/io
 * (kite and QEMU side by side, same program). Everything after PCI setup, the data-path loops
 * included, runs in ring 3, so the figures are the device models' and not the cost of a
 * host emulating guest kernel code.
 *
 * mode=blk: on the first disk, sequential writes then sequential reads of `bs`-byte requests
 * over the first `mib` MiB, then `rops` 4 KiB reads at LCG offsets in that range; each at
 * queue depth 1 and at `qd` requests in flight (refilled and kicked once per harvest of the
 * used ring). Every sector written carries its number in its first 8 bytes and every read
 * checks it, so a small run is a correctness check too (one PASS/FAIL line per row).
 * mode=net: a TCP connection to 10.0.2.2:`port` (the host's 127.0.0.1 through user-mode NAT;
 * static address 10.0.2.15, no DHCP), `mib` MiB sent in 1460-byte segments inside the peer's
 * window (go-back-N after 500 ms without progress), then FIN.
 * Each row prints "BENCH: <dev> <row> ... kBps=K iops=I", timed with the TSC.
 *
 * The driver behaves as Linux's does with polled queues: it negotiates VIRTIO_F_EVENT_IDX,
 * notifies only when the device asks (avail_event), keeps interrupts off (used_event 0), and
 * the network sender does not wait for each frame to go out. kick=always instead notifies for
 * every batch and sends one frame at a time, waiting for each (the lib's default). */
#include "libguest.h"
#include "net.h"
#include "virtio.h"

const char guest_name[] = "virtio_bench";

#define T_IN	   0
#define T_OUT	   1
#define S_OK	   0
#define S_NONE	   0xff
#define MAX_QD	   64
#define STAMP	   0x6b6974650000000ull /* "kite" above the sector number */
#define TIMEOUT_MS 600000
#define NET_MSS	   1460
#define GUEST_IP   IP4(10, 0, 2, 15)
#define GATEWAY_IP IP4(10, 0, 2, 2)
#define LOCAL_PORT 40001

#define CALIBRATIONS 5
#define CALIBRATE_MS 20

static uint64_t bench_khz;

/* The library's 10 ms calibration is off by whatever delay the host adds to one poll of the
 * PIT, and a busy host (nested KVM under TCG) adds a lot now and then: the rates would be off
 * by as much. Here: the median of several longer windows. */
static void calibrate(void)
{
	uint64_t w[CALIBRATIONS];
	for (int i = 0; i < CALIBRATIONS; i++) {
		w[i] = pit_tsc_window(CALIBRATE_MS);
		for (int j = i; j > 0 && w[j] < w[j - 1]; j--) {
			uint64_t x = w[j];
			w[j] = w[j - 1];
			w[j - 1] = x;
		}
	}
	bench_khz = w[CALIBRATIONS / 2] / CALIBRATE_MS;
	if (!bench_khz)
		bench_khz = tsc_khz();
	printf("virtio_bench: TSC %lu kHz (windows %lu..%lu ticks; the library's %lu kHz)\n",
	       bench_khz, w[0], w[CALIBRATIONS - 1], tsc_khz());
}

/* One rate line: kB/s (bytes per ms) and operations per second from TSC ticks. */
static void print_rate(const char *what, uint64_t ops, uint64_t bytes, uint64_t ticks)
{
	uint64_t khz = bench_khz;
	if (!ticks)
		ticks = 1;
	uint64_t kbps = bytes * khz / ticks, iops = ops * khz * 1000 / ticks;
	printf("BENCH: %s ops=%lu bytes=%lu us=%lu kBps=%lu iops=%lu\n", what, ops, bytes,
	       ticks * 1000 / khz, kbps, iops);
}

/* We poll: no interrupts, please. With EVENT_IDX used_event stays 0 (the ring page is zeroed),
 * so the device interrupts once per 65536 completions at most, as Linux's disable_cb does. */
static void quiet_queue(struct virtq *vq)
{
	if (!vq->event_idx)
		vq->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
}

/* ---- virtio-blk ---- */

struct req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct slot {
	struct req_hdr hdr;
	volatile uint8_t status;
	uint8_t *buf;
};

static struct virtio_dev vd;
static struct slot *slots;
static int16_t slot_of_head[VIRTQ_MAX_SIZE];
static int free_slots[MAX_QD], nfree;
static uint64_t region_sectors, lcg;
static bool kick_always; /* kick=always: notify for every batch, whatever the device wants */

static void stamp(uint8_t *buf, uint64_t sector, uint32_t len)
{
	for (uint32_t o = 0; o < len; o += 512)
		*(uint64_t *)(buf + o) = STAMP | (sector + o / 512);
}

static bool stamped(const uint8_t *buf, uint64_t sector, uint32_t len)
{
	for (uint32_t o = 0; o < len; o += 512) {
		if (*(const uint64_t *)(buf + o) != (STAMP | (sector + o / 512)))
			return false;
	}
	return true;
}

struct job {
	const char *name;
	uint32_t type, bs;
	unsigned qd;
	uint64_t nreq;
	bool random;
};

static uint64_t job_sector(const struct job *j, uint64_t i)
{
	if (!j->random)
		return (i * (j->bs / 512)) % region_sectors;
	lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
	uint64_t blocks = region_sectors / (j->bs / 512);
	return ((lcg >> 33) % blocks) * (j->bs / 512);
}

/* Adds one request on a free slot; false when the queue is full. */
static bool submit(const struct job *j, uint64_t i)
{
	int si = free_slots[nfree - 1];
	struct slot *s = &slots[si];
	uint64_t sector = job_sector(j, i);
	if (j->type == T_OUT)
		stamp(s->buf, sector, j->bs);
	s->hdr = (struct req_hdr){j->type, 0, sector};
	s->status = S_NONE;
	struct vbuf b[3] = {{&s->hdr, sizeof(s->hdr), false},
			    {s->buf, j->bs, j->type == T_IN},
			    {(void *)&s->status, 1, true}};
	int head = virtq_add(&vd.vq[0], b, 3);
	if (head < 0)
		return false;
	slot_of_head[head] = (int16_t)si;
	nfree--;
	return true;
}

static void run_job(const struct job *j)
{
	struct virtq *vq = &vd.vq[0];
	uint64_t submitted = 0, done = 0, bad = 0, broken = 0;
	lcg = 0x6b697465; /* the same offsets on every run */
	uint64_t end = deadline_ms(TIMEOUT_MS), t0 = rdtsc();
	while (done < j->nreq) {
		uint16_t old = vq->avail->idx;
		while (nfree > MAX_QD - (int)j->qd && submitted < j->nreq && submit(j, submitted))
			submitted++;
		if (vq->avail->idx != old && (kick_always || virtq_kick_needed(vq, old)))
			virtq_kick(&vd, vq);
		uint32_t id, len;
		bool got = false;
		while (virtq_get_used(vq, &id, &len)) {
			got = true;
			if (id >= vq->size || slot_of_head[id] < 0) {
				broken++; /* a chain we did not post: nothing to free */
				continue;
			}
			int si = slot_of_head[id];
			struct slot *s = &slots[si];
			slot_of_head[id] = -1;
			if (s->status != S_OK ||
			    (j->type == T_IN && !stamped(s->buf, s->hdr.sector, j->bs)))
				bad++;
			free_slots[nfree++] = si;
			done++;
		}
		if (broken || deadline_passed(end))
			break;
		if (!got)
			cpu_relax();
	}
	uint64_t ticks = rdtsc() - t0;
	char what[64];
	snprintf(what, sizeof(what), "blk %s qd=%u bs=%u", j->name, j->qd, j->bs);
	report(done == j->nreq && !bad && !broken,
	       "%s: %lu of %lu requests done, %lu bad (status or sector stamp), %lu unknown", what,
	       done, j->nreq, bad, broken);
	if (done == j->nreq)
		print_rate(what, done, done * j->bs, ticks);
}

static void bench_blk(void)
{
	if (!virtio_find(VIRTIO_ID_BLOCK, 0, &vd)) {
		report(false, "virtio-blk device found");
		return;
	}
	bool ok = virtio_negotiate(&vd, 1ull << VIRTIO_F_EVENT_IDX) &&
		  virtio_queue_setup(&vd, 0, VIRTQ_MAX_SIZE, VIRTIO_MSI_NO_VECTOR);
	report(ok, "virtio-blk: VERSION_1 negotiated, request queue ready (EVENT_IDX %s)",
	       vd.vq[0].event_idx ? "on" : "off");
	if (!ok)
		return;
	quiet_queue(&vd.vq[0]);
	virtio_driver_ok(&vd);
	uint64_t mib = cmdline_u64("mib", 16), bs = cmdline_u64("bs", 128 * 1024);
	uint64_t rops = cmdline_u64("rops", 1024), qd = cmdline_u64("qd", 16);
	uint64_t capacity = virtio_cfg64(&vd, 0);
	if (qd < 1 || qd > MAX_QD || 3 * qd > vd.vq[0].size || bs < 4096 || bs % 4096 ||
	    bs > 1 * MiB || mib * MiB % bs || mib * MiB / 512 > capacity) {
		report(false,
		       "parameters: qd=%lu (1-%u) bs=%lu (4K multiple, <= 1M) mib=%lu "
		       "(a bs multiple, within %lu sectors)",
		       qd, MAX_QD, bs, mib, capacity);
		return;
	}
	region_sectors = mib * MiB / 512;
	slots = page_alloc();
	for (int i = 0; i < MAX_QD; i++) {
		slots[i].buf = i < (int)qd ? pages_alloc(bs / PAGE_SIZE) : NULL;
		free_slots[i] = MAX_QD - 1 - i; /* slot 0 on top */
	}
	nfree = MAX_QD;
	if (!slots || !slots[qd - 1].buf) {
		report(false, "blk: memory for %lu buffers of %lu bytes", qd, bs);
		return;
	}
	for (int i = 0; i < VIRTQ_MAX_SIZE; i++)
		slot_of_head[i] = -1;
	uint64_t seq = mib * MiB / bs;
	const struct job jobs[] = {
	    {"seqwrite", T_OUT, (uint32_t)bs, 1, seq, false},
	    {"seqwrite", T_OUT, (uint32_t)bs, (unsigned)qd, seq, false},
	    {"seqread", T_IN, (uint32_t)bs, 1, seq, false},
	    {"seqread", T_IN, (uint32_t)bs, (unsigned)qd, seq, false},
	    {"randread", T_IN, 4096, 1, rops, true},
	    {"randread", T_IN, 4096, (unsigned)qd, rops, true},
	};
	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++)
		run_job(&jobs[i]);
	report(!(virtio_status(&vd) & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)),
	       "blk: device status %#x: no NEEDS_RESET or FAILED", virtio_status(&vd));
}

/* ---- virtio-net: TCP bulk send ---- */

static struct net net;

struct conn {
	uint8_t mac[6];
	uint16_t port;
	uint32_t iss, irs; /* our and the peer's initial sequence numbers */
	uint16_t window;
	bool reset;
};

static bool send_seg(struct conn *c, uint32_t seq, uint8_t flags, const void *data, uint32_t len)
{
	return net_send_tcp(&net, c->mac, GATEWAY_IP, LOCAL_PORT, c->port, seq, c->irs + 1, flags,
			    data, len);
}

/* The next segment of the connection, without waiting; false when none is there. */
static bool next_seg(struct conn *c, struct net_pkt *p)
{
	while (net_recv(&net, p, 0)) {
		if (p->proto != IPPROTO_TCP || p->src_ip != GATEWAY_IP || p->sport != c->port ||
		    p->dport != LOCAL_PORT)
			continue;
		if (p->flags & TCP_RST)
			c->reset = true;
		return true;
	}
	return false;
}

static bool tcp_connect(struct conn *c)
{
	c->iss = 0x10000;
	for (int attempt = 0; attempt < 5; attempt++) {
		send_seg(c, c->iss, TCP_SYN, NULL, 0);
		uint64_t end = deadline_ms(1000);
		struct net_pkt p;
		while (!deadline_passed(end)) {
			if (!next_seg(c, &p)) {
				cpu_relax();
				continue;
			}
			if (c->reset)
				return false;
			if ((p.flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK) &&
			    p.ack == c->iss + 1) {
				c->irs = p.seq;
				c->window = p.window;
				send_seg(c, c->iss + 1, TCP_ACK, NULL, 0);
				return true;
			}
		}
	}
	return false;
}

/* Sends `total` bytes of the pattern (stream byte o is (o % NET_MSS) % 251); returns the
 * bytes acknowledged. */
static uint32_t bulk_send(struct conn *c, uint32_t total, uint64_t *ticks, unsigned *rexmit)
{
	static uint8_t pat[2 * NET_MSS];
	for (unsigned i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)((i % NET_MSS) % 251);
	uint32_t start = c->iss + 1, sent = 0, acked = 0, high = 0; /* high: the most ever sent */
	uint64_t stall = tsc_khz() * 500, t0 = rdtsc(), last = t0, end = deadline_ms(TIMEOUT_MS);
	while (acked < total && !c->reset && !deadline_passed(end)) {
		uint32_t wnd = c->window > NET_MSS ? c->window : NET_MSS;
		while (sent < total && sent - acked < wnd) {
			uint32_t len = total - sent < NET_MSS ? total - sent : NET_MSS;
			if (len > wnd - (sent - acked) && sent != acked)
				break;
			send_seg(c, start + sent, TCP_ACK | TCP_PSH, pat + sent % NET_MSS, len);
			sent += len;
			if (sent > high)
				high = sent;
		}
		struct net_pkt p;
		bool got = false;
		while (next_seg(c, &p)) {
			got = true;
			uint32_t off = p.ack - start;
			if ((p.flags & TCP_ACK) && off <= high && off >= acked) {
				if (off > acked)
					last = rdtsc();
				acked = off;
				if (sent < acked)
					sent = acked; /* an ACK from before a go-back-N */
				c->window = p.window;
			}
		}
		if (rdtsc() - last > stall && sent > acked) {
			sent = acked; /* go back N */
			last = rdtsc();
			(*rexmit)++;
		}
		if (!got)
			cpu_relax();
	}
	*ticks = rdtsc() - t0;
	return acked;
}

/* FIN, and its ACK; then the peer's FIN, acknowledged. */
static bool tcp_close(struct conn *c, uint32_t seq)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		send_seg(c, seq, TCP_FIN | TCP_ACK, NULL, 0);
		uint64_t end = deadline_ms(1000);
		struct net_pkt p;
		while (!deadline_passed(end) && !c->reset) {
			if (!next_seg(c, &p)) {
				cpu_relax();
				continue;
			}
			if (p.flags & TCP_FIN) {
				net_send_tcp(&net, c->mac, GATEWAY_IP, LOCAL_PORT, c->port, seq + 1,
					     p.seq + p.len + 1, TCP_ACK, NULL, 0);
				return true;
			}
			if ((p.flags & TCP_ACK) && p.ack == seq + 1)
				end = deadline_ms(2000); /* ours is acknowledged: wait for theirs */
		}
	}
	return false;
}

static void bench_net(void)
{
	struct conn c = {.port = (uint16_t)cmdline_u64("port", 0)};
	uint64_t mib = cmdline_u64("mib", 16);
	if (!c.port || !mib || mib > 1024) {
		report(false, "parameters: port=N (the host's sink) and mib=1-1024");
		return;
	}
	bool up = net_init_features(&net, 0, 1ull << VIRTIO_F_EVENT_IDX);
	report(up,
	       "virtio-net: VERSION_1 negotiated, receive and transmit queues ready "
	       "(EVENT_IDX %s)",
	       net.vd.vq[0].event_idx ? "on" : "off");
	if (!up)
		return;
	quiet_queue(&net.vd.vq[0]);
	quiet_queue(&net.vd.vq[1]);
	net.tx_nowait = !kick_always;
	net.ip = GUEST_IP;
	bool gw = net_arp(&net, GATEWAY_IP, c.mac, 3000);
	report(gw, "net: ARP: gateway 10.0.2.2 answers");
	if (!gw)
		return;
	bool est = tcp_connect(&c);
	report(est, "net: TCP connected to 10.0.2.2:%u (window %u)", c.port, c.window);
	if (!est)
		return;
	printf("READY: sending\n");
	uint32_t total = (uint32_t)(mib * MiB);
	uint64_t ticks = 0;
	unsigned rexmit = 0;
	uint32_t acked = bulk_send(&c, total, &ticks, &rexmit);
	report(acked == total, "net: %u of %u bytes acknowledged (%u go-back-N restarts%s)", acked,
	       total, rexmit, c.reset ? ", reset" : "");
	if (acked == total)
		print_rate("net tcpsend mss=1460", (total + NET_MSS - 1) / NET_MSS, total, ticks);
	report(tcp_close(&c, c.iss + 1 + total), "net: FIN exchanged");
}

static uint64_t body(uint64_t arg)
{
	char mode[8] = "", kick[8] = "";
	cmdline_get("mode", mode, sizeof(mode));
	cmdline_get("kick", kick, sizeof(kick));
	kick_always = strcmp(kick, "always") == 0;
	if (strcmp(mode, "blk") == 0)
		bench_blk();
	else if (strcmp(mode, "net") == 0)
		bench_net();
	else
		report(false, "mode=blk or mode=net on the command line (got \"%s\")", mode);
	return 0;
}

void guest_main(void)
{
	calibrate(); /* before timing anything */
	run_user(body, 0);
}

/* virtio_blk: the first virtio-blk disk through the modern virtio-pci transport. Reads a
 * pattern the host wrote, writes one the host checks afterwards, reads it back, flushes,
 * compares the serial (get-id) with serial=, discards a range the host then finds to be a
 * hole, and sees requests past the end fail with IOERR. With ro=1 the disk is read-only: a
 * write must fail with IOERR and leave the data as it was. Everything after PCI setup runs in
 * ring 3. The layout below is mirrored by tests/integration/test_guest_virtio.py. */
#include "libguest.h"
#include "virtio.h"

const char guest_name[] = "virtio_blk";

#define HOST_SECTOR	2048 /* 1 MiB: the host wrote pattern HOST_SEED here */
#define GUEST_SECTOR	4096 /* 2 MiB: the guest writes pattern GUEST_SEED here */
#define IO_SECTORS	16
#define DISCARD_SECTOR	8192 /* 4 MiB, 1 MiB long: the host filled it; the guest discards */
#define DISCARD_SECTORS 2048
#define HOST_SEED	0x11
#define GUEST_SEED	0x22
#define RO_SEED		0x33 /* what the host left in GUEST_SECTOR for the read-only run */

#define VIRTIO_BLK_F_RO	     5
#define VIRTIO_BLK_F_FLUSH   9
#define VIRTIO_BLK_F_DISCARD 13

#define T_IN	  0
#define T_OUT	  1
#define T_FLUSH	  4
#define T_GET_ID  8
#define T_DISCARD 11

#define S_OK	 0
#define S_IOERR	 1
#define S_UNSUPP 2
#define S_NONE	 0xff /* our marker: the device never wrote the status byte */

struct req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct discard_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

static struct virtio_dev vd;
static struct req_hdr *hdr;
static volatile uint8_t *status;
static uint8_t *buf, *check;

static uint8_t pattern(uint64_t off, uint8_t seed)
{
	return (uint8_t)((off >> 9) * 31 + (off & 511) * 7 + seed);
}

static void fill(uint8_t *p, uint64_t sector, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pattern(sector * 512 + i, seed);
}

/* Index of the first byte that differs from the pattern, or -1. */
static int64_t mismatch(const uint8_t *p, uint64_t sector, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != pattern(sector * 512 + i, seed))
			return (int64_t)i;
	}
	return -1;
}

/* One request: header, optional data buffer, status byte. Returns the status. */
static uint8_t request(uint32_t type, uint64_t sector, void *data, uint32_t len, bool dev_writes)
{
	hdr->type = type;
	hdr->reserved = 0;
	hdr->sector = sector;
	*status = S_NONE;
	struct vbuf b[3];
	int n = 0;
	b[n++] = (struct vbuf){hdr, sizeof(*hdr), false};
	if (len)
		b[n++] = (struct vbuf){data, len, dev_writes};
	b[n++] = (struct vbuf){(void *)status, 1, true};
	if (virtq_transfer(&vd, &vd.vq[0], b, n, 10000) < 0) {
		printf("virtio_blk: request type %u sector %lu timed out\n", type, sector);
		return S_NONE;
	}
	return *status;
}

static void read_host_pattern(void)
{
	memset(buf, 0, IO_SECTORS * 512);
	uint8_t s = request(T_IN, HOST_SECTOR, buf, IO_SECTORS * 512, true);
	int64_t bad = mismatch(buf, HOST_SECTOR, IO_SECTORS * 512, HOST_SEED);
	report(s == S_OK && bad < 0,
	       "read: the host's pattern at sector %u (status %u, first bad %ld)", HOST_SECTOR, s,
	       bad);
}

static void write_read_back(void)
{
	fill(buf, GUEST_SECTOR, IO_SECTORS * 512, GUEST_SEED);
	uint8_t ws = request(T_OUT, GUEST_SECTOR, buf, IO_SECTORS * 512, false);
	report(ws == S_OK, "write: %u sectors at sector %u (status %u)", IO_SECTORS, GUEST_SECTOR,
	       ws);
	memset(check, 0, IO_SECTORS * 512);
	uint8_t rs = request(T_IN, GUEST_SECTOR, check, IO_SECTORS * 512, true);
	int64_t bad = mismatch(check, GUEST_SECTOR, IO_SECTORS * 512, GUEST_SEED);
	report(rs == S_OK && bad < 0, "read back: the written pattern (status %u, first bad %ld)",
	       rs, bad);
	if (virtio_has(&vd, VIRTIO_BLK_F_FLUSH)) {
		uint8_t fs = request(T_FLUSH, 0, NULL, 0, false);
		report(fs == S_OK, "flush (status %u)", fs);
	} else {
		report(false, "flush: the device does not offer VIRTIO_BLK_F_FLUSH");
	}
}

static void get_id(void)
{
	char want[32] = "", got[21];
	cmdline_get("serial", want, sizeof(want));
	memset(got, 0, sizeof(got));
	uint8_t s = request(T_GET_ID, 0, got, 20, true);
	got[20] = '\0';
	report(s == S_OK && strcmp(got, want) == 0,
	       "get-id: serial \"%s\" (expected \"%s\", status %u)", got, want, s);
}

static void discard(void)
{
	if (!virtio_has(&vd, VIRTIO_BLK_F_DISCARD)) {
		report_skip("discard: not offered");
		return;
	}
	struct discard_seg *seg = (struct discard_seg *)check;
	*seg = (struct discard_seg){DISCARD_SECTOR, DISCARD_SECTORS, 0};
	uint8_t s = request(T_DISCARD, 0, seg, sizeof(*seg), false);
	report(s == S_OK, "discard: %u sectors at sector %u (status %u)", DISCARD_SECTORS,
	       DISCARD_SECTOR, s);
}

static void past_end(uint64_t capacity)
{
	uint8_t s = request(T_IN, capacity, buf, 512, true);
	report(s == S_IOERR, "read at sector %lu (the capacity) fails with IOERR (status %u)",
	       capacity, s);
	s = request(T_IN, capacity - 1, buf, 1024, true);
	report(s == S_IOERR,
	       "read across the end (sector %lu, 2 sectors) fails with IOERR (status %u)",
	       capacity - 1, s);
	s = request(T_OUT, capacity, buf, 512, false);
	report(s == S_IOERR, "write at sector %lu fails with IOERR (status %u)", capacity, s);
}

static void read_only(void)
{
	report(virtio_has(&vd, VIRTIO_BLK_F_RO), "read-only: the device offers VIRTIO_BLK_F_RO");
	fill(buf, GUEST_SECTOR, IO_SECTORS * 512, GUEST_SEED);
	uint8_t ws = request(T_OUT, GUEST_SECTOR, buf, IO_SECTORS * 512, false);
	report(ws == S_IOERR, "read-only: a write fails with IOERR (status %u)", ws);
	memset(check, 0, IO_SECTORS * 512);
	uint8_t rs = request(T_IN, GUEST_SECTOR, check, IO_SECTORS * 512, true);
	int64_t bad = mismatch(check, GUEST_SECTOR, IO_SECTORS * 512, RO_SEED);
	report(rs == S_OK && bad < 0, "read-only: the data is unchanged (status %u, first bad %ld)",
	       rs, bad);
}

static uint64_t body(uint64_t arg)
{
	bool ro = cmdline_u64("ro", 0) != 0;
	if (!virtio_find(VIRTIO_ID_BLOCK, 0, &vd)) {
		report(false, "virtio-blk device found");
		return 0;
	}
	uint64_t want =
	    1ull << VIRTIO_BLK_F_RO | 1ull << VIRTIO_BLK_F_FLUSH | 1ull << VIRTIO_BLK_F_DISCARD;
	bool ok =
	    virtio_negotiate(&vd, want) && virtio_queue_setup(&vd, 0, 64, VIRTIO_MSI_NO_VECTOR);
	report(ok, "virtio-blk: VERSION_1 negotiated, request queue ready");
	if (!ok)
		return 0;
	virtio_driver_ok(&vd);
	hdr = page_alloc();
	status = (volatile uint8_t *)(hdr + 1);
	buf = pages_alloc(IO_SECTORS * 512 / PAGE_SIZE);
	check = pages_alloc(IO_SECTORS * 512 / PAGE_SIZE);
	uint64_t capacity = virtio_cfg64(&vd, 0);
	uint64_t want_cap = cmdline_u64("sectors", 0);
	report(capacity == want_cap, "capacity %lu sectors (expected %lu)", capacity, want_cap);
	read_host_pattern();
	if (ro) {
		read_only();
	} else {
		write_read_back();
		get_id();
		discard();
	}
	if (capacity)
		past_end(capacity);
	report(!(virtio_status(&vd) & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)),
	       "device status %#x: no NEEDS_RESET or FAILED", virtio_status(&vd));
	return 0;
}

void guest_main(void)
{
	run_user(body, 0);
}

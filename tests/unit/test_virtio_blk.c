/* virtio-blk through the PCI transport, driven as Linux's virtio_blk does, on a raw file. */
#include "unit.h"
#include "vpci_driver.h"
#include "block/block_int.h"
#include "virtio/virtio_blk.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define DISK_SIZE (1u << 20)
#define HDR_GPA	  0x100000
#define STAT_GPA  0x100100
#define DATA_GPA  0x200000

#define T_IN	       0
#define T_OUT	       1
#define T_FLUSH	       4
#define T_GET_ID       8
#define T_DISCARD      11
#define T_WRITE_ZEROES 13

struct fx {
	struct vdrv d;
	char path[64];
	uint8_t orig[DISK_SIZE];
	struct blk *blk;
	struct virtio_blk *vb;
	struct virtio_pci vp;
	uint64_t features;
};

/* A format driver for these tests: a raw file whose reads wait at a gate, which opens when
 * `want` reads are inside at once (the device overlaps requests) or when the test opens
 * it. A read still waiting after 5 s fails, so a device that serves one request at a time
 * sees I/O errors. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	unsigned inside, most_inside, want;
	bool open;
	unsigned hold_ms;	 /* how long each request stays inside once through */
	pthread_t passed_by[16]; /* the threads that passed, in turn (the first 16) */
	unsigned passes;
} gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void gate_set(unsigned want, bool open)
{
	pthread_mutex_lock(&gate.lock);
	gate.want = want;
	gate.open = open;
	gate.hold_ms = 0;
	gate.most_inside = 0;
	gate.passes = 0;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.lock);
}

static unsigned gate_inside(void)
{
	pthread_mutex_lock(&gate.lock);
	unsigned n = gate.inside;
	pthread_mutex_unlock(&gate.lock);
	return n;
}

static int gate_file_open(struct blk *b, struct blk_open_ctx *ctx)
{
	(void)ctx;
	return blk_file_size(b->fd, &b->size, b->filename);
}

/* Waits at the gate; false after 5 s. */
static bool gate_pass(void)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	int err = 0;
	pthread_mutex_lock(&gate.lock);
	if (gate.passes < 16)
		gate.passed_by[gate.passes] = pthread_self();
	gate.passes++;
	if (++gate.inside > gate.most_inside)
		gate.most_inside = gate.inside;
	if (gate.inside >= gate.want)
		gate.open = true;
	pthread_cond_broadcast(&gate.cv);
	while (!gate.open && !err)
		err = pthread_cond_timedwait(&gate.cv, &gate.lock, &until);
	if (gate.hold_ms) {
		pthread_mutex_unlock(&gate.lock);
		usleep(gate.hold_ms * 1000);
		pthread_mutex_lock(&gate.lock);
	}
	gate.inside--;
	pthread_mutex_unlock(&gate.lock);
	return !err;
}

static int gate_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	if (!gate_pass())
		return -1;
	return blk_file_pread(b->fd, buf, len, off, b->filename);
}

static int gate_write(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	if (!gate_pass())
		return -1;
	return blk_file_pwrite(b->fd, buf, len, off, b->filename);
}

static const struct blk_driver gate_driver = {
    .name = "test-gate",
    .thread_safe = true,
    .open = gate_file_open,
    .read = gate_read,
    .write = gate_write,
};
BLK_DRIVER(gate_driver)

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed + (i >> 9));
}

static void file_contents(struct fx *f, uint8_t *buf)
{
	int fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, DISK_SIZE, 0), DISK_SIZE);
	close(fd);
}

static int open_disk_fmt(void **state, unsigned flags, bool readonly, const char *fmt)
{
	struct fx *f = calloc(1, sizeof(*f));
	strcpy(f->path, "/tmp/kite-vblk-XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	if (!strcmp(fmt, "raw") || !strcmp(fmt, "test-gate")) {
		fill_pattern(f->orig, DISK_SIZE, 7);
		assert_int_equal(pwrite(fd, f->orig, DISK_SIZE, 0), DISK_SIZE);
	} else { /* an empty image made by the referee */
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "qemu-img create -q -f %s %s %u", fmt, f->path,
			 DISK_SIZE);
		assert_int_equal(system(cmd), 0);
	}
	close(fd);
	vd_init(&f->d);
	f->blk = blk_open(f->path, fmt, flags);
	assert_non_null(f->blk);
	f->vb = virtio_blk_create(&f->d.mem, f->blk, readonly, "kite-serial-0001");
	assert_non_null(f->vb);
	int slot = virtio_pci_init(&f->vp, &f->d.bus, virtio_blk_dev(f->vb));
	assert_int_equal(slot, 1);
	assert_int_equal(vd_probe(&f->d, slot), 2);
	vd_enable_msix(&f->d);
	f->features = vd_negotiate(&f->d, ~0ull);
	assert_true(f->features >> 32 & 1); /* VERSION_1 */
	vd_setup_queue(&f->d, 0, 128, 0x10000);
	vd_driver_ok(&f->d);
	assert_true(vd_status(&f->d) & VIRTIO_STATUS_DRIVER_OK);
	*state = f;
	return 0;
}

static int open_disk(void **state, unsigned flags, bool readonly)
{
	return open_disk_fmt(state, flags, readonly, "raw");
}

static int setup_qcow2(void **state)
{
	return open_disk_fmt(state, BLK_O_RDWR, false, "qcow2");
}

static int setup_gate(void **state)
{
	gate_set(1, true);
	return open_disk_fmt(state, BLK_O_RDWR, false, "test-gate");
}

static int setup_rw(void **state)
{
	return open_disk(state, BLK_O_RDWR, false);
}
static int setup_ro(void **state)
{
	return open_disk(state, BLK_O_RDONLY, false);
}
static int setup_ro_flag(void **state)
{
	return open_disk(state, BLK_O_RDWR, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	virtio_blk_destroy(f->vb);
	virtio_pci_destroy(&f->vp);
	blk_close(f->blk);
	vd_fini(&f->d);
	unlink(f->path);
	free(f);
	return 0;
}

/* One request: header, optional data buffer, status byte; three descriptors as Linux lays
 * them. Returns the status byte (0xee if the device never wrote it). */
static int request(struct fx *f, uint32_t type, uint64_t sector, uint32_t len, bool data_writable,
		   uint32_t *used_len)
{
	struct tq *q = &f->d.q[0];
	uint8_t hdr[16] = {0};
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	assert_int_equal(gmem_write(&f->d.mem, HDR_GPA, hdr, 16), 0);
	f->d.ram[STAT_GPA] = 0xee;
	uint16_t head = (q->avail_idx * 3) % q->size;
	uint16_t dd = (head + 1) % q->size, sd = (head + 2) % q->size;
	if (len) {
		tq_desc(q, head, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, dd);
		tq_desc(q, dd, DATA_GPA, len,
			VIRTQ_DESC_F_NEXT | (data_writable ? VIRTQ_DESC_F_WRITE : 0), sd);
	} else {
		tq_desc(q, head, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, sd);
	}
	tq_desc(q, sd, STAT_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	uint16_t want = tq_used_idx(q) + 1;
	tq_avail(q, head);
	vd_kick(&f->d, 0);
	assert_int_equal(vd_wait_used(&f->d, 0, want), 0);
	uint32_t id, ulen;
	tq_used_elem(q, want - 1, &id, &ulen);
	assert_int_equal(id, head);
	if (used_len)
		*used_len = ulen;
	return f->d.ram[STAT_GPA];
}

static void test_write_lands_in_file(void **state)
{
	struct fx *f = *state;
	uint8_t data[8192], file[DISK_SIZE];
	fill_pattern(data, sizeof(data), 99);
	memcpy(f->d.ram + DATA_GPA, data, sizeof(data));
	int msis = f->d.msis;
	assert_int_equal(request(f, T_OUT, 40, sizeof(data), false, NULL), 0);
	assert_int_equal(request(f, T_FLUSH, 0, 0, false, NULL), 0);
	file_contents(f, file);
	assert_memory_equal(file + 40 * 512, data, sizeof(data));
	assert_memory_equal(file, f->orig, 40 * 512); /* nothing else changed */
	assert_memory_equal(file + 40 * 512 + sizeof(data), f->orig + 40 * 512 + sizeof(data),
			    DISK_SIZE - 40 * 512 - sizeof(data));
	assert_true(f->d.msis > msis);		     /* used-buffer interrupt */
	assert_int_equal(f->d.last_msi_data, 0x101); /* queue 0 -> vector 1 */
}

static void test_read_returns_file(void **state)
{
	struct fx *f = *state;
	uint32_t used;
	memset(f->d.ram + DATA_GPA, 0, 16384);
	assert_int_equal(request(f, T_IN, 3, 16384, true, &used), 0);
	assert_int_equal(used, 16384 + 1);
	assert_memory_equal(f->d.ram + DATA_GPA, f->orig + 3 * 512, 16384);
	/* the last sector of the disk */
	assert_int_equal(request(f, T_IN, DISK_SIZE / 512 - 1, 512, true, NULL), 0);
	assert_memory_equal(f->d.ram + DATA_GPA, f->orig + DISK_SIZE - 512, 512);
}

static void test_out_of_range(void **state)
{
	struct fx *f = *state;
	uint8_t file[DISK_SIZE];
	memset(f->d.ram + DATA_GPA, 0x5a, 4096);
	assert_int_equal(request(f, T_OUT, DISK_SIZE / 512 - 1, 1024, false, NULL), 1);
	assert_int_equal(request(f, T_IN, DISK_SIZE / 512, 512, true, NULL), 1);
	assert_int_equal(request(f, T_OUT, 0xffffffffffffffffull, 512, false, NULL), 1);
	assert_int_equal(request(f, T_OUT, 0x0080000000000000ull, 512, false, NULL), 1);
	assert_int_equal(request(f, T_OUT, 0, 100, false, NULL), 1); /* not whole sectors */
	file_contents(f, file);
	assert_memory_equal(file, f->orig, DISK_SIZE);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, DISK_SIZE);
}

static void test_get_id_and_unknown(void **state)
{
	struct fx *f = *state;
	uint32_t used;
	memset(f->d.ram + DATA_GPA, 0xff, 64);
	assert_int_equal(request(f, T_GET_ID, 0, 20, true, &used), 0);
	assert_int_equal(used, 21);
	assert_memory_equal(f->d.ram + DATA_GPA, "kite-serial-0001\0\0\0\0", 20);
	assert_int_equal(request(f, 12345, 0, 0, false, NULL), 2); /* UNSUPP */
}

static void test_discard_and_write_zeroes(void **state)
{
	struct fx *f = *state;
	uint8_t file[DISK_SIZE];
	/* write-zeroes sectors 16..31, discard 256 KiB at 512 KiB */
	uint8_t seg[16] = {0};
	uint64_t sector = 16;
	uint32_t num = 16, flags = 0;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	memcpy(seg + 12, &flags, 4);
	memcpy(f->d.ram + DATA_GPA, seg, 16);
	assert_int_equal(request(f, T_WRITE_ZEROES, 0, 16, false, NULL), 0);
	sector = 1024;
	num = 512;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	memcpy(f->d.ram + DATA_GPA, seg, 16);
	assert_int_equal(request(f, T_DISCARD, 0, 16, false, NULL), 0);
	file_contents(f, file);
	uint8_t zeros[256 * 1024] = {0};
	assert_memory_equal(file + 16 * 512, zeros, 16 * 512);
	assert_memory_equal(file, f->orig, 16 * 512);
	assert_memory_equal(file + 32 * 512, f->orig + 32 * 512, (1024 - 32) * 512);
	/* the discarded range is a hole in the host file now */
	int fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 512 * 1024, SEEK_HOLE), 512 * 1024);
	close(fd);
	assert_memory_equal(file + 512 * 1024, zeros, 256 * 1024);
	/* a segment past the end is refused, nothing done */
	sector = DISK_SIZE / 512 - 8;
	num = 16;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	memcpy(f->d.ram + DATA_GPA, seg, 16);
	assert_int_equal(request(f, T_WRITE_ZEROES, 0, 16, false, NULL), 1);
	uint8_t after[DISK_SIZE];
	file_contents(f, after);
	assert_memory_equal(after, file, DISK_SIZE);
}

static void readonly_refuses(struct fx *f)
{
	uint8_t file[DISK_SIZE];
	assert_true(f->features >> 5 & 1);   /* VIRTIO_BLK_F_RO */
	assert_false(f->features >> 13 & 1); /* no DISCARD */
	memset(f->d.ram + DATA_GPA, 0xa5, 4096);
	assert_int_equal(request(f, T_OUT, 0, 4096, false, NULL), 1);
	assert_int_equal(request(f, T_DISCARD, 0, 16, false, NULL), 2); /* not negotiated */
	assert_int_equal(request(f, T_IN, 0, 4096, true, NULL), 0);	/* reads still work */
	assert_memory_equal(f->d.ram + DATA_GPA, f->orig, 4096);
	file_contents(f, file);
	assert_memory_equal(file, f->orig, DISK_SIZE);
}

static void test_readonly_image(void **state)
{
	readonly_refuses(*state);
}

static void test_readonly_flag(void **state)
{
	readonly_refuses(*state);
}

/* A read whose data buffer the driver marked device-readable: the device must not write
 * into it. */
static void test_read_into_readable_buffer(void **state)
{
	struct fx *f = *state;
	memset(f->d.ram + DATA_GPA, 0x3c, 4096);
	assert_int_equal(request(f, T_IN, 0, 4096, false, NULL), 1);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(f->d.ram[DATA_GPA + i], 0x3c);
	/* a write whose data buffer is device-writable is refused too */
	uint8_t file[DISK_SIZE];
	assert_int_equal(request(f, T_OUT, 0, 4096, true, NULL), 1);
	file_contents(f, file);
	assert_memory_equal(file, f->orig, DISK_SIZE);
}

/* Waits for NEEDS_RESET, then checks that a reset brings the device back. */
static void expect_broken_then_recover(struct fx *f)
{
	for (int i = 0; i < 5000 && !(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(vd_negotiate(&f->d, ~0ull));
	vd_setup_queue(&f->d, 0, 128, 0x10000);
	vd_driver_ok(&f->d);
	assert_int_equal(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_int_equal(request(f, T_IN, 1, 512, true, NULL), 0);
	assert_memory_equal(f->d.ram + DATA_GPA, f->orig + 512, 512);
}

static void test_hostile_loop(void **state)
{
	struct fx *f = *state;
	struct tq *q = &f->d.q[0];
	tq_desc(q, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	tq_desc(q, 1, DATA_GPA, 512, VIRTQ_DESC_F_NEXT, 0); /* back to 0: a loop */
	tq_avail(q, 0);
	vd_kick(&f->d, 0);
	expect_broken_then_recover(f);
}

static void test_hostile_past_ram(void **state)
{
	struct fx *f = *state;
	struct tq *q = &f->d.q[0];
	uint8_t hdr[16] = {0}; /* T_IN, sector 0 */
	memcpy(f->d.ram + HDR_GPA, hdr, 16);
	tq_desc(q, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	tq_desc(q, 1, VD_RAM - 4096, 0x100000, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	tq_desc(q, 2, STAT_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	tq_avail(q, 0);
	vd_kick(&f->d, 0);
	expect_broken_then_recover(f);
}

static void test_hostile_no_status(void **state)
{
	struct fx *f = *state;
	struct tq *q = &f->d.q[0];
	tq_desc(q, 0, HDR_GPA, 16, 0, 0); /* header only: nowhere to put a status */
	tq_avail(q, 0);
	vd_kick(&f->d, 0);
	expect_broken_then_recover(f);
}

static void test_many_requests_indirect(void **state)
{
	struct fx *f = *state;
	struct tq *q = &f->d.q[0];
	assert_true(f->features >> 28 & 1);
	/* 64 writes of one sector each, each an indirect table of 3 */
	for (int i = 0; i < 64; i++) {
		uint64_t tbl = 0x300000 + 64 * i, hdr = 0x310000 + 16 * i,
			 data = 0x320000 + 512 * i, st = 0x340000 + i;
		uint32_t type = T_OUT;
		uint64_t sector = 100 + i;
		memcpy(f->d.ram + hdr, &type, 4);
		memset(f->d.ram + hdr + 4, 0, 4);
		memcpy(f->d.ram + hdr + 8, &sector, 8);
		memset(f->d.ram + data, i, 512);
		f->d.ram[st] = 0xee;
		tq_desc_at(&f->d.mem, tbl, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
		tq_desc_at(&f->d.mem, tbl, 1, data, 512, VIRTQ_DESC_F_NEXT, 2);
		tq_desc_at(&f->d.mem, tbl, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
		tq_desc(q, i, tbl, 48, VIRTQ_DESC_F_INDIRECT, 0);
		tq_avail(q, i);
	}
	vd_kick(&f->d, 0);
	assert_int_equal(vd_wait_used(&f->d, 0, 64), 0);
	uint8_t file[DISK_SIZE];
	file_contents(f, file);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(f->d.ram[0x340000 + i], 0);
		assert_int_equal(file[(100 + i) * 512], (uint8_t)i);
		assert_int_equal(file[(100 + i) * 512 + 511], (uint8_t)i);
	}
}

/* Random well-formed chains with random requests: every status is OK, IOERR or UNSUPP, the
 * file never grows, and a read-only disk never changes. */
static void random_requests(struct fx *f, bool readonly)
{
	uint32_t seed = 777;
	const uint32_t types[] = {T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES, 99};
	for (int i = 0; i < 300; i++) {
		seed = seed * 1103515245 + 12345;
		uint32_t type = types[(seed >> 8) % 7];
		seed = seed * 1103515245 + 12345;
		uint64_t sector = (seed >> 4) % 4 == 0 ? ~0ull - (seed >> 20) : (seed >> 12) % 2100;
		seed = seed * 1103515245 + 12345;
		uint32_t len = (seed >> 8) % 3 ? 512 * ((seed >> 12) % 20) : (seed >> 12) % 9000;
		bool writable = (seed >> 3) & 1;
		if (type == T_DISCARD || type == T_WRITE_ZEROES) { /* random segments */
			for (uint32_t b = 0; b < len && b < 4096; b += 4)
				memcpy(f->d.ram + DATA_GPA + b, &(uint32_t){seed * (b + 1)}, 4);
			if ((seed >> 5) & 1)
				memcpy(f->d.ram + DATA_GPA, &sector, 8);
		} else {
			memset(f->d.ram + DATA_GPA, (uint8_t)i, len);
		}
		int st = request(f, type, sector, len, writable, NULL);
		assert_true(st == 0 || st == 1 || st == 2);
	}
	struct stat sb;
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_size, DISK_SIZE);
	if (readonly) {
		uint8_t file[DISK_SIZE];
		file_contents(f, file);
		assert_memory_equal(file, f->orig, DISK_SIZE);
	}
	assert_int_equal(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_random_requests_rw(void **state)
{
	random_requests(*state, false);
}

static void test_random_requests_ro(void **state)
{
	random_requests(*state, true);
}

/* Through a qcow2 image: what the guest wrote is what qemu-io reads back, and qemu-img
 * check finds the image clean. */
static void test_qcow2_refereed_by_qemu(void **state)
{
	struct fx *f = *state;
	memset(f->d.ram + DATA_GPA, 0x5a, 65536);
	assert_int_equal(request(f, T_OUT, 8, 65536, false, NULL), 0); /* 4 KiB..68 KiB */
	memset(f->d.ram + DATA_GPA, 0xc3, 512);
	assert_int_equal(request(f, T_OUT, 2047, 512, false, NULL), 0); /* the last sector */
	uint8_t seg[16] = {0};
	uint64_t sector = 16;
	uint32_t num = 8;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	memcpy(f->d.ram + DATA_GPA, seg, 16);
	assert_int_equal(request(f, T_WRITE_ZEROES, 0, 16, false, NULL), 0); /* 8..12 KiB */
	assert_int_equal(request(f, T_FLUSH, 0, 0, false, NULL), 0);
	/* read back through the device */
	assert_int_equal(request(f, T_IN, 8, 4096, true, NULL), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(f->d.ram[DATA_GPA + i], 0x5a);
	virtio_blk_destroy(f->vb);
	f->vb = NULL;
	blk_close(f->blk);
	f->blk = NULL;
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", f->path);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd),
		 "qemu-io -f qcow2 -c 'read -q -P 0x5a 4096 4096' -c 'read -q -P 0 8192 4096' "
		 "-c 'read -q -P 0x5a 12288 57344' -c 'read -q -P 0 69632 974336' "
		 "-c 'read -q -P 0xc3 1048064 512' %s | grep -q 'verification failed'",
		 f->path);
	assert_int_not_equal(system(cmd), 0); /* no pattern mismatch */
	snprintf(cmd, sizeof(cmd),
		 "qemu-io -f qcow2 -c 'read -P 0xc3 1048064 512' %s | grep -q "
		 "'read 512/512 bytes'",
		 f->path);
	assert_int_equal(system(cmd), 0);
}

/* Posts `n` 4 KiB requests of `type` at once, the i-th at sector `stride` * i, each with
 * its own header, buffer (a write's filled with 0x40 + i) and status, and kicks once.
 * Returns the used index to wait for. */
#define PAR_HDR(i)  (0x400000 + 16 * (uint64_t)(i))
#define PAR_ST(i)   (0x401000 + (uint64_t)(i))
#define PAR_DATA(i) (0x410000 + 4096 * (uint64_t)(i))
static uint16_t post_requests(struct fx *f, unsigned n, uint32_t type, uint64_t stride)
{
	struct tq *q = &f->d.q[0];
	bool in = type == T_IN;
	for (unsigned i = 0; i < n; i++) {
		uint64_t sector = stride * i;
		memset(f->d.ram + PAR_HDR(i), 0, 16);
		memcpy(f->d.ram + PAR_HDR(i), &type, 4);
		memcpy(f->d.ram + PAR_HDR(i) + 8, &sector, 8);
		f->d.ram[PAR_ST(i)] = 0xee;
		memset(f->d.ram + PAR_DATA(i), in ? 0 : 0x40 + i, 4096);
		uint16_t head = 3 * i;
		tq_desc(q, head, PAR_HDR(i), 16, VIRTQ_DESC_F_NEXT, head + 1);
		tq_desc(q, head + 1, PAR_DATA(i), 4096,
			VIRTQ_DESC_F_NEXT | (in ? VIRTQ_DESC_F_WRITE : 0), head + 2);
		tq_desc(q, head + 2, PAR_ST(i), 1, VIRTQ_DESC_F_WRITE, 0);
		tq_avail(q, head);
	}
	uint16_t want = tq_used_idx(q) + n;
	vd_kick(&f->d, 0);
	return want;
}

/* The first `n` reads posted by post_requests() with `stride` completed with the file's
 * bytes, each used length the 4 KiB and the status byte. */
static void assert_reads_done(struct fx *f, unsigned n, uint64_t stride)
{
	struct tq *q = &f->d.q[0];
	uint16_t first = tq_used_idx(q) - n;
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(f->d.ram[PAR_ST(i)], 0);
		assert_memory_equal(f->d.ram + PAR_DATA(i), f->orig + stride * 512 * i, 4096);
		uint32_t id, len;
		tq_used_elem(q, (uint16_t)(first + i), &id, &len);
		assert_int_equal(len, 4097);
	}
}

/* A guest's queue depth reaches the disk: 8 scattered reads posted together are all in
 * the block layer at the same time (each waits at the gate until the 8th arrives). */
static void test_requests_overlap(void **state)
{
	struct fx *f = *state;
	gate_set(8, false);
	uint16_t want = post_requests(f, 8, T_IN, 16);
	assert_int_equal(vd_wait_used(&f->d, 0, want), 0);
	assert_reads_done(f, 8, 16);
	assert_int_equal(gate.most_inside, 8);
}

/* Reads whose chains put the status byte in the same buffer as the last data bytes (the
 * spec allows any split): the data lands, the status byte is the status. */
static void test_reads_with_status_in_a_data_buffer(void **state)
{
	struct fx *f = *state;
	struct tq *q = &f->d.q[0];
	for (unsigned i = 0; i < 4; i++) {
		uint32_t type = T_IN;
		uint64_t sector = 100 + 2 * i;
		memset(f->d.ram + PAR_HDR(i), 0, 16);
		memcpy(f->d.ram + PAR_HDR(i), &type, 4);
		memcpy(f->d.ram + PAR_HDR(i) + 8, &sector, 8);
		memset(f->d.ram + PAR_DATA(i), 0xee, 4096);
		uint16_t head = 3 * i;
		tq_desc(q, head, PAR_HDR(i), 16, VIRTQ_DESC_F_NEXT, head + 1);
		tq_desc(q, head + 1, PAR_DATA(i), 300, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
			head + 2);
		tq_desc(q, head + 2, PAR_DATA(i) + 300, 1024 - 300 + 1, VIRTQ_DESC_F_WRITE, 0);
		tq_avail(q, head);
	}
	uint16_t want = tq_used_idx(q) + 4;
	vd_kick(&f->d, 0);
	assert_int_equal(vd_wait_used(&f->d, 0, want), 0);
	for (unsigned i = 0; i < 4; i++) {
		assert_memory_equal(f->d.ram + PAR_DATA(i), f->orig + (100 + 2 * i) * 512, 1024);
		assert_int_equal(f->d.ram[PAR_DATA(i) + 1024], 0); /* the status */
		assert_int_equal(f->d.ram[PAR_DATA(i) + 1025], 0xee);
		uint32_t id, len; /* in any order: requests complete as they finish */
		tq_used_elem(q, (uint16_t)(want - 4 + i), &id, &len);
		assert_true(id % 3 == 0 && id < 12);
		assert_int_equal(len, 1025);
	}
}

/* The writes of `n` requests posted by post_requests(f, n, T_OUT, 8) (4 KiB each, back to
 * back) completed and landed in the file, each at its place. */
static void assert_writes_landed(struct fx *f, unsigned n)
{
	uint8_t file[DISK_SIZE];
	file_contents(f, file);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(f->d.ram[PAR_ST(i)], 0);
		assert_int_equal(file[8 * 512 * i], 0x40 + i);
		assert_int_equal(file[8 * 512 * i + 4095], 0x40 + i);
	}
}

/* Writes that follow each other on the disk (a sequential stream within one run) go out
 * together on one thread; scattered writes run at once, as reads do. */
static void test_sequential_writes_stay_in_order(void **state)
{
	struct fx *f = *state;
	gate_set(1, true);
	gate.hold_ms = 20; /* time enough to overlap, were they spread */
	uint16_t want = post_requests(f, 8, T_OUT, 8); /* 4 KiB each, 8 sectors apart */
	assert_int_equal(vd_wait_used(&f->d, 0, want), 0);
	assert_int_equal(gate.most_inside, 1);
	assert_writes_landed(f, 8);
	gate_set(8, false);
	want = post_requests(f, 8, T_OUT, 16); /* with gaps: all 8 in the block layer at once */
	assert_int_equal(vd_wait_used(&f->d, 0, want), 0);
	assert_int_equal(gate.most_inside, 8);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(f->d.ram[PAR_ST(i)], 0);
}

/* A sequential stream longer than one run (32 writes) goes on in a second run on another
 * thread at the same time (each run waits at the gate until the other arrives), and every
 * write lands where it belongs. */
static void test_long_stream_runs_in_parallel(void **state)
{
	struct fx *f = *state;
	gate_set(2, false);
	uint16_t want = post_requests(f, 40, T_OUT, 8); /* 4 KiB each, back to back */
	assert_int_equal(vd_wait_used(&f->d, 0, want), 0);
	assert_int_equal(gate.most_inside, 2);
	assert_writes_landed(f, 40);
}

/* The device looks at the chain after a write (is it the next write?); when that chain is
 * broken, the device says so (NEEDS_RESET) and the write before it still completes. */
static void test_broken_chain_after_a_write(void **state)
{
	struct fx *f = *state;
	struct tq *q = &f->d.q[0];
	gate_set(1, true);
	uint32_t type = T_OUT;
	uint64_t sector = 40;
	memset(f->d.ram + PAR_HDR(0), 0, 16);
	memcpy(f->d.ram + PAR_HDR(0), &type, 4);
	memcpy(f->d.ram + PAR_HDR(0) + 8, &sector, 8);
	memset(f->d.ram + PAR_DATA(0), 0x77, 512);
	f->d.ram[PAR_ST(0)] = 0xee;
	tq_desc(q, 0, PAR_HDR(0), 16, VIRTQ_DESC_F_NEXT, 1);
	tq_desc(q, 1, PAR_DATA(0), 512, VIRTQ_DESC_F_NEXT, 2);
	tq_desc(q, 2, PAR_ST(0), 1, VIRTQ_DESC_F_WRITE, 0);
	tq_desc(q, 3, PAR_HDR(1), 16, VIRTQ_DESC_F_NEXT, 3); /* a loop */
	tq_avail(q, 0);
	tq_avail(q, 3);
	vd_kick(&f->d, 0);
	assert_int_equal(vd_wait_used(&f->d, 0, 1), 0);
	for (int i = 0; i < 5000 && !(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(f->d.ram[PAR_ST(0)], 0);
	uint8_t file[DISK_SIZE];
	file_contents(f, file);
	assert_int_equal(file[40 * 512], 0x77);
	assert_int_equal(file[40 * 512 + 511], 0x77);
}

struct reset_call {
	struct fx *f;
	bool done; /* atomic */
};

static void *reset_device(void *arg)
{
	struct reset_call *c = arg;
	vd_common_wr(&c->f->d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* Requests that come one at a time, each after the device went idle, are taken by the I/O
 * threads in turn, not always by the one that ran the last, and over more than two of
 * them: on a host CPU shared with the vCPU the scheduler runs a thread that slept sooner
 * than one that just ran (as QEMU's pool wakes its workers in turn). A thread still looking
 * at the ring when the next request comes may take it (the test's pause does not prove the
 * device idle): at most 2 of 7. */
static void test_threads_take_turns(void **state)
{
	struct fx *f = *state;
	gate_set(1, true);
	for (unsigned i = 0; i < 8; i++) {
		uint16_t want = post_requests(f, 1, T_IN, 0);
		assert_int_equal(vd_wait_used(&f->d, 0, want), 0);
		assert_reads_done(f, 1, 0);
		usleep(10 * 1000);
	}
	assert_int_equal(gate.passes, 8);
	unsigned same = 0, distinct = 0;
	for (unsigned i = 0; i < 8; i++) {
		unsigned seen = 0;
		for (unsigned j = 0; j < i; j++)
			seen += pthread_equal(gate.passed_by[i], gate.passed_by[j]) != 0;
		distinct += seen == 0;
		same += i && pthread_equal(gate.passed_by[i], gate.passed_by[i - 1]);
	}
	assert_in_range(same, 0, 2);
	assert_in_range(distinct, 4, 8);
}

/* A device reset returns only once the requests in progress have finished: after it, the
 * device never writes into guest memory the driver may be reusing. */
static void test_reset_waits_for_requests(void **state)
{
	struct fx *f = *state;
	gate_set(100, false); /* shut until the test opens it */
	uint16_t want = post_requests(f, 2, T_IN, 16);
	for (int i = 0; i < 5000 && gate_inside() < 2; i++)
		usleep(1000);
	assert_int_equal(gate_inside(), 2);
	struct reset_call c = {f, false};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, reset_device, &c), 0);
	usleep(200 * 1000);
	bool early = __atomic_load_n(&c.done, __ATOMIC_ACQUIRE);
	gate_set(100, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_false(early);
	assert_int_equal(tq_used_idx(&f->d.q[0]), want); /* both completed before the reset */
	assert_reads_done(f, 2, 16);
	assert_int_equal(vd_status(&f->d), 0);
}

struct quiesce_call {
	struct fx *f;
	bool done; /* atomic */
};

static void *quiesce_device(void *arg)
{
	struct quiesce_call *c = arg;
	virtio_dev_quiesce(virtio_blk_dev(c->f->vb), true);
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* Saving a machine quiesces its disks: requests in flight complete first (quiesce returns
 * only then), nothing new is taken while quiesced, the record says none is in flight, and
 * the device goes on afterwards with the request the driver made meanwhile. */
static void test_quiesce_drains_requests_in_flight(void **state)
{
	struct fx *f = *state;
	gate_set(100, false);
	uint16_t want = post_requests(f, 2, T_IN, 16);
	for (int i = 0; i < 5000 && gate_inside() < 2; i++)
		usleep(1000);
	assert_int_equal(gate_inside(), 2);
	struct quiesce_call c = {f, false};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, quiesce_device, &c), 0);
	usleep(200 * 1000);
	bool early = __atomic_load_n(&c.done, __ATOMIC_ACQUIRE);
	gate_set(100, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_false(early);
	assert_int_equal(tq_used_idx(&f->d.q[0]), want);
	assert_reads_done(f, 2, 16);
	/* A request made while quiesced waits. */
	uint16_t more = post_requests(f, 1, T_IN, 16);
	usleep(100 * 1000);
	assert_int_equal(tq_used_idx(&f->d.q[0]), want);
	struct state_buf b = {0};
	assert_int_equal(virtio_dev_save(virtio_blk_dev(f->vb), &b), 0);
	struct state_stream st;
	struct state_reader r;
	state_stream_init(&st, b.data, b.len);
	assert_int_equal(state_next(&st, &r, "virtio", 1, 1), 0);
	assert_int_equal(state_next(&st, &r, "virtio-blk", 1, 1), 0);
	uint32_t inflight = 99;
	assert_int_equal(state_get_u32(&r, "inflight", &inflight), 0);
	assert_int_equal(inflight, 0);
	state_buf_free(&b);
	virtio_dev_quiesce(virtio_blk_dev(f->vb), false);
	assert_int_equal(vd_wait_used(&f->d, 0, more), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_write_lands_in_file, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_read_returns_file, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_range, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_get_id_and_unknown, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_discard_and_write_zeroes, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly_image, setup_ro, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly_flag, setup_ro_flag, teardown),
	    cmocka_unit_test_setup_teardown(test_read_into_readable_buffer, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_loop, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_past_ram, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_no_status, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_many_requests_indirect, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_qcow2_refereed_by_qemu, setup_qcow2, teardown),
	    cmocka_unit_test_setup_teardown(test_random_requests_rw, setup_rw, teardown),
	    cmocka_unit_test_setup_teardown(test_random_requests_ro, setup_ro_flag, teardown),
	    cmocka_unit_test_setup_teardown(test_requests_overlap, setup_gate, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_waits_for_requests, setup_gate, teardown),
	    cmocka_unit_test_setup_teardown(test_quiesce_drains_requests_in_flight, setup_gate,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_reads_with_status_in_a_data_buffer, setup_rw,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_sequential_writes_stay_in_order, setup_gate,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_broken_chain_after_a_write, setup_gate, teardown),
	    cmocka_unit_test_setup_teardown(test_threads_take_turns, setup_gate, teardown),
	    cmocka_unit_test_setup_teardown(test_long_stream_runs_in_parallel, setup_gate,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

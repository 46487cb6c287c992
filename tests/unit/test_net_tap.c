/* virtio-net on a tap interface: a frame the guest sends comes out of the host interface,
 * and one sent into the host interface reaches the guest's receive ring. Needs
 * CAP_NET_ADMIN to create the (transient) tap; skips, saying so, without it. */
#include "unit.h"
#include "vpci_driver.h"
#include "virtio/virtio_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define ETHERTYPE_TEST 0x88b5 /* IEEE local experimental */
#define RXBUF_GPA      0x400000
#define RXBUF_LEN      2048
#define NRX	       16
#define TX_GPA	       0x300000

static const uint8_t MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static bool can_admin_net(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return false;
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
	close(fd);
	return ok && access("/dev/net/tun", R_OK | W_OK) == 0;
}

static void set_up(const char *name)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
	close(fd);
}

static void test_tap_both_ways(void **state)
{
	if (!can_admin_net()) {
		fprintf(stderr, "skipped: needs CAP_NET_ADMIN and /dev/net/tun\n");
		skip();
	}
	struct vdrv d;
	vd_init(&d);
	char opts[32], name[16];
	snprintf(name, sizeof(name), "kitet%u", (unsigned)getpid() % 100000);
	snprintf(opts, sizeof(opts), "tap=%s", name);
	struct nic_config o;
	assert_int_equal(nic_config_parse(opts, &o, "--net"), 0);
	struct net_backend *be = net_backend_create(&o, 0);
	assert_non_null(be);
	struct virtio_net *n = virtio_net_create(&d.mem, be, MAC);
	assert_non_null(n);
	struct virtio_pci vp;
	assert_int_equal(virtio_pci_init(&vp, &d.bus, virtio_net_dev(n)), 1);
	assert_int_equal(vd_probe(&d, 1), 1);
	assert_true(vd_negotiate(&d, ~0ull));
	vd_setup_queue(&d, 0, 64, 0x10000);
	vd_setup_queue(&d, 1, 64, 0x20000);
	vd_driver_ok(&d);
	for (int i = 0; i < NRX; i++) {
		tq_desc(&d.q[0], i, RXBUF_GPA + RXBUF_LEN * i, RXBUF_LEN, VIRTQ_DESC_F_WRITE, 0);
		tq_avail(&d.q[0], i);
	}
	vd_kick(&d, 0);
	set_up(name);
	int ps = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_TEST));
	assert_true(ps >= 0);
	struct sockaddr_ll ll = {.sll_family = AF_PACKET,
				 .sll_protocol = htons(ETHERTYPE_TEST),
				 .sll_ifindex = (int)if_nametoindex(name)};
	assert_true(ll.sll_ifindex > 0);
	assert_int_equal(bind(ps, (struct sockaddr *)&ll, sizeof(ll)), 0);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(ps, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	/* guest -> host */
	uint8_t fr[60] = {0};
	memset(fr, 0xff, 6);
	memcpy(fr + 6, MAC, 6);
	fr[12] = ETHERTYPE_TEST >> 8;
	fr[13] = ETHERTYPE_TEST & 0xff;
	memcpy(fr + 14, "from the guest", 14);
	memset(d.ram + TX_GPA, 0, 12);
	memcpy(d.ram + TX_GPA + 12, fr, sizeof(fr));
	tq_desc(&d.q[1], 0, TX_GPA, 12 + sizeof(fr), 0, 0);
	tq_avail(&d.q[1], 0);
	vd_kick(&d, 1);
	uint8_t got[2048];
	ssize_t len = recv(ps, got, sizeof(got), 0);
	assert_int_equal(len, sizeof(fr));
	assert_memory_equal(got + 14, "from the guest", 14);
	assert_int_equal(vd_wait_used(&d, 1, 1), 0);

	/* host -> guest */
	uint8_t back[60] = {0};
	memcpy(back, MAC, 6);
	memcpy(back + 6, "\x02\x00\x00\x00\x00\x01", 6);
	back[12] = ETHERTYPE_TEST >> 8;
	back[13] = ETHERTYPE_TEST & 0xff;
	memcpy(back + 14, "from the host", 13);
	assert_int_equal(send(ps, back, sizeof(back), 0), sizeof(back));
	bool found = false;
	uint16_t seen = 0;
	for (int i = 0; i < 5000 && !found; i++) {
		while (seen != tq_used_idx(&d.q[0]) && !found) {
			uint32_t id, ulen;
			tq_used_elem(&d.q[0], seen++, &id, &ulen);
			const uint8_t *p = d.ram + RXBUF_GPA + RXBUF_LEN * id + 12;
			found = ulen == 12 + sizeof(back) && !memcmp(p, back, sizeof(back));
		}
		usleep(1000);
	}
	assert_true(found);
	close(ps);
	virtio_net_destroy(n);
	virtio_pci_destroy(&vp);
	vd_fini(&d);
	/* a transient tap disappears with its fd */
	assert_int_equal(if_nametoindex(name), 0);
}

static void test_tap_missing_device_name(void **state)
{
	/* The option grammar refuses such a name; the backend must too. */
	struct nic_config o = {.kind = NIC_TAP, .ifname = "kite/bad"};
	assert_int_equal(nic_config_parse("tap=kite/bad", &o, "--net"), -1);
	o = (struct nic_config){.kind = NIC_TAP, .ifname = "kite/bad"};
	assert_null(net_backend_create(&o, 0)); /* the kernel refuses the name */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tap_both_ways),
	    cmocka_unit_test(test_tap_missing_device_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

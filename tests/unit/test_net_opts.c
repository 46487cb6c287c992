/* -n/--net option parsing and hostfwd rules. */
#include "unit.h"
#include "net/net.h"

#include <arpa/inet.h>

static void test_user_defaults(void **state)
{
	struct net_opts o;
	assert_int_equal(net_opts_parse("user", &o), 0);
	assert_int_equal(o.kind, NET_USER);
	assert_int_equal(o.nfwd, 0);
	assert_false(o.mac_set);
	uint8_t mac[6];
	net_default_mac(1, mac);
	const uint8_t want[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x57};
	assert_memory_equal(mac, want, 6);
}

static void test_hostfwd_and_mac(void **state)
{
	struct net_opts o;
	assert_int_equal(net_opts_parse("user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-"
					"10.0.2.20:53,mac=52:54:00:aa:bb:cc",
					&o),
			 0);
	assert_int_equal(o.nfwd, 2);
	assert_false(o.fwd[0].udp);
	assert_int_equal(o.fwd[0].host_addr, 0);
	assert_int_equal(o.fwd[0].host_port, 2222);
	assert_int_equal(o.fwd[0].guest_addr, 0);
	assert_int_equal(o.fwd[0].guest_port, 22);
	assert_true(o.fwd[1].udp);
	assert_int_equal(o.fwd[1].host_addr, inet_addr("127.0.0.1"));
	assert_int_equal(o.fwd[1].host_port, 5353);
	assert_int_equal(o.fwd[1].guest_addr, inet_addr("10.0.2.20"));
	assert_int_equal(o.fwd[1].guest_port, 53);
	assert_true(o.mac_set);
	const uint8_t want[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
	assert_memory_equal(o.mac, want, 6);
}

static void test_tap(void **state)
{
	struct net_opts o;
	assert_int_equal(net_opts_parse("tap=tap0,mac=02:00:00:00:00:01", &o), 0);
	assert_int_equal(o.kind, NET_TAP);
	assert_string_equal(o.ifname, "tap0");
	assert_true(o.mac_set);
}

static void test_rejects(void **state)
{
	struct net_opts o;
	const char *bad[] = {
	    "",
	    "bridge",
	    "user,bogus=1",
	    "user,hostfwd=tcp::2222",
	    "user,hostfwd=tcp::0-:22",
	    "user,hostfwd=tcp::70000-:22",
	    "user,hostfwd=sctp::1-:2",
	    "user,hostfwd=tcp:300.1.1.1:22-:22",
	    "user,hostfwd=tcp::22-:x",
	    "user,mac=52:54:00:12:34",
	    "user,mac=01:00:00:00:00:01", /* multicast */
	    "tap=",
	    "tap=averyveryverylongname0",
	    "tap=tap0,hostfwd=tcp::1-:2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(net_opts_parse(bad[i], &o), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_user_defaults),
	    cmocka_unit_test(test_hostfwd_and_mac),
	    cmocka_unit_test(test_tap),
	    cmocka_unit_test(test_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

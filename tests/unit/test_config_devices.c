/* One parser per device grammar: --disk and --net strings, JSON device objects, and the
 * option strings written back. */
#include "unit.h"
#include "config/machine_config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static json_t *js(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	return j;
}

static void disk_grammar(void **state)
{
	struct disk_config d;
	assert_int_equal(disk_config_parse("/tmp/a.img", &d, "--disk"), 0);
	assert_string_equal(d.path, "/tmp/a.img");
	assert_string_equal(d.format, "");
	assert_string_equal(d.target, "");
	assert_false(d.readonly);
	assert_false(d.nocache);
	disk_config_free(&d);
	assert_int_equal(disk_config_parse("x,,y.img,format=raw,readonly=on,cache=none,"
					   "serial=ABC123,target=vdc",
					   &d, "--disk"),
			 0);
	assert_string_equal(d.path, "x,y.img");
	assert_string_equal(d.format, "raw");
	assert_string_equal(d.target, "vdc");
	assert_true(d.readonly);
	assert_true(d.nocache);
	assert_string_equal(d.serial, "ABC123");
	char *spec = disk_config_format(&d);
	assert_string_equal(spec, "x,,y.img,format=raw,target=vdc,readonly=on,cache=none,"
				  "serial=ABC123");
	struct disk_config again;
	assert_int_equal(disk_config_parse(spec, &again, "--disk"), 0);
	assert_string_equal(again.path, "x,y.img");
	assert_string_equal(again.serial, "ABC123");
	free(spec);
	disk_config_free(&again);
	disk_config_free(&d);
	/* A bare boolean key is on, as create took it. */
	assert_int_equal(disk_config_parse("a.img,readonly", &d, "--disk"), 0);
	assert_true(d.readonly);
	disk_config_free(&d);
	const char *bad[] = {
	    "",
	    ",format=raw",
	    "a.img,format=iso",
	    "a.img,readonly=yes",
	    "a.img,cache=unsafe",
	    "a.img,serial=123456789012345678901",
	    "a.img,bogus=1",
	    "a.img,format",
	    "a.img,target=sda",
	    "a.img,target=vd1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (disk_config_parse(bad[i], &d, "--disk") != -1)
			fail_msg("accepted --disk %s", bad[i]);
}

static void disk_json_uses_the_same_keys(void **state)
{
	json_t *j = js("{\"path\": \"/a,b\", \"format\": \"qcow2\", \"target\": \"vdb\","
		       " \"readonly\": true, \"cache\": \"none\", \"serial\": \"S1\"}");
	struct disk_config d;
	assert_int_equal(disk_config_from_json(j, &d, "t.json: disks[0]"), 0);
	assert_string_equal(d.path, "/a,b");
	assert_true(d.readonly && d.nocache);
	json_t *back = disk_config_to_json(&d);
	assert_true(json_equal(j, back));
	json_decref(back);
	json_decref(j);
	disk_config_free(&d);
	const char *bad[] = {
	    "{\"target\": \"vda\"}",
	    "{\"path\": \"/a\", \"target\": \"sda\"}",
	    "{\"path\": 5}",
	    "{\"path\": \"/a\", \"readonly\": \"on\"}",
	    "{\"path\": \"/a\", \"x\": 1}",
	    "[]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = js(bad[i]);
		if (disk_config_from_json(j, &d, "t") != -1)
			fail_msg("accepted %s", bad[i]);
		json_decref(j);
	}
}

static void nic_grammar(void **state)
{
	struct nic_config n;
	assert_int_equal(nic_config_parse("user", &n, "--net"), 0);
	assert_int_equal(n.kind, NIC_USER);
	assert_int_equal(n.nfwd, 0);
	assert_false(n.mac_set);
	uint8_t mac[6];
	net_default_mac(1, mac);
	const uint8_t want[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x57};
	assert_memory_equal(mac, want, 6);

	assert_int_equal(nic_config_parse("user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-"
					  "10.0.2.20:53,mac=52:54:00:aa:bb:cc",
					  &n, "--net"),
			 0);
	assert_int_equal(n.nfwd, 2);
	assert_false(n.fwd[0].udp);
	assert_int_equal(n.fwd[0].host_addr, 0);
	assert_int_equal(n.fwd[0].host_port, 2222);
	assert_int_equal(n.fwd[0].guest_port, 22);
	assert_true(n.fwd[1].udp);
	assert_int_equal(n.fwd[1].host_addr, inet_addr("127.0.0.1"));
	assert_int_equal(n.fwd[1].guest_addr, inet_addr("10.0.2.20"));
	assert_int_equal(n.fwd[1].guest_port, 53);
	const uint8_t want2[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
	assert_true(n.mac_set);
	assert_memory_equal(n.mac, want2, 6);
	char *spec = nic_config_format(&n);
	assert_string_equal(spec, "user,mac=52:54:00:aa:bb:cc,hostfwd=tcp::2222-:22,"
				  "hostfwd=udp:127.0.0.1:5353-10.0.2.20:53");
	free(spec);

	assert_int_equal(nic_config_parse("tap=tap0,mac=02:00:00:00:00:01", &n, "--net"), 0);
	assert_int_equal(n.kind, NIC_TAP);
	assert_string_equal(n.ifname, "tap0");
	assert_int_equal(nic_config_parse("tap,ifname=tap7", &n, "--net"), 0);
	assert_string_equal(n.ifname, "tap7");
	/* Protocol omitted: tcp, written out. */
	assert_int_equal(nic_config_parse("user,hostfwd=::8080-:80", &n, "--net"), 0);
	char rule[64];
	net_hostfwd_format(&n.fwd[0], rule, sizeof(rule));
	assert_string_equal(rule, "tcp::8080-:80");

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
	    "user,ifname=tap0",
	    "user,model=e1000",
	    "tap",
	    "tap=",
	    "tap=averyveryverylongname0",
	    "tap=kite/bad",
	    "tap=tap0,hostfwd=tcp::1-:2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (nic_config_parse(bad[i], &n, "--net") != -1)
			fail_msg("accepted --net %s", bad[i]);
}

static void nic_json_uses_the_same_keys(void **state)
{
	json_t *j = js("{\"type\": \"user\", \"mac\": \"52:54:00:00:00:07\", \"model\": "
		       "\"virtio\", \"hostfwd\": [\"tcp::2222-:22\"]}");
	struct nic_config n;
	assert_int_equal(nic_config_from_json(j, &n, "t"), 0);
	json_t *back = nic_config_to_json(&n);
	assert_true(json_equal(j, back));
	json_decref(back);
	json_decref(j);
	const char *bad[] = {
	    "{\"type\": \"tap\"}",
	    "{\"type\": \"user\", \"hostfwd\": \"tcp::1-:2\"}",
	    "{\"type\": \"user\", \"hostfwd\": [5]}",
	    "{\"type\": \"tap\", \"ifname\": \"t0\", \"hostfwd\": [\"tcp::1-:2\"]}",
	    "{\"type\": \"user\", \"speed\": 10}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = js(bad[i]);
		if (nic_config_from_json(j, &n, "t") != -1)
			fail_msg("accepted %s", bad[i]);
		json_decref(j);
	}
}

/* QEMU's -netdev user options: a net= without a mask gets its class's, host/dns/dhcpstart
 * default to .2/.3/.15 inside it, and everything round-trips through --net and JSON. */
static void nic_user_network_options(void **state)
{
	struct nic_config n;
	struct nic_user_addrs a;
	assert_int_equal(nic_config_parse("user", &n, "--net"), 0);
	assert_int_equal(nic_user_resolve(&n, 1, &a, "t"), 0);
	assert_int_equal(a.net, inet_addr("10.0.3.0"));
	assert_int_equal(a.host, inet_addr("10.0.3.2"));
	assert_int_equal(a.dns, inet_addr("10.0.3.3"));
	assert_int_equal(a.dhcp, inet_addr("10.0.3.15"));

	assert_int_equal(nic_config_parse("user,net=10.5.0.0/16", &n, "--net"), 0);
	assert_int_equal(nic_user_resolve(&n, 3, &a, "t"), 0);
	assert_int_equal(a.mask, inet_addr("255.255.0.0"));
	assert_int_equal(a.host, inet_addr("10.5.2.2"));
	assert_int_equal(a.dhcp, inet_addr("10.5.2.15"));
	/* Class masks: 192.168.x is a /16, 10.x a /8; the host bits are cleared. */
	assert_int_equal(nic_config_parse("user,net=192.168.7.9", &n, "--net"), 0);
	assert_int_equal(n.user.net, inet_addr("192.168.0.0"));
	assert_int_equal(n.user.mask, inet_addr("255.255.0.0"));
	assert_int_equal(nic_config_parse("user,net=10.0.9.0/255.255.255.0", &n, "--net"), 0);
	assert_int_equal(n.user.mask, inet_addr("255.255.255.0"));

	const char *spec = "user,net=10.0.9.0/24,host=10.0.9.9,dns=10.0.9.8,dhcpstart=10.0.9.50,"
			   "restrict=on,hostname=box-1";
	assert_int_equal(nic_config_parse(spec, &n, "--net"), 0);
	assert_int_equal(nic_user_resolve(&n, 0, &a, "t"), 0);
	assert_int_equal(a.host, inet_addr("10.0.9.9"));
	assert_int_equal(a.dns, inet_addr("10.0.9.8"));
	assert_int_equal(a.dhcp, inet_addr("10.0.9.50"));
	assert_true(n.user.restricted);
	assert_string_equal(n.user.hostname, "box-1");
	char *back = nic_config_format(&n);
	assert_string_equal(back, spec);
	free(back);
	json_t *j = nic_config_to_json(&n);
	struct nic_config m;
	assert_int_equal(nic_config_from_json(j, &m, "t"), 0);
	assert_memory_equal(&m.user, &n.user, sizeof(n.user));
	assert_string_equal(json_string_value(json_object_get(j, "net")), "10.0.9.0/24");
	json_decref(j);

	/* Without net=, the addresses must fit the NIC's own default net. */
	assert_int_equal(nic_config_parse("user,dhcpstart=10.0.2.20", &n, "--net"), 0);
	assert_int_equal(nic_user_resolve(&n, 0, &a, "t"), 0);
	assert_int_equal(nic_user_resolve(&n, 1, &a, "t"), -1);

	const char *bad[] = {
	    "user,net=10.0.9.0/33",
	    "user,net=10.0.9.0/3",
	    "user,net=10.0.9.0/31",
	    "user,net=10.0.9.0/x",
	    "user,net=10.0.9.0/255.0.255.0",
	    "user,net=10.0.9",
	    "user,net=10.0.9.0/24,host=10.0.8.2",
	    "user,net=10.0.9.0/24,dns=10.0.9.255",
	    "user,net=10.0.9.0/24,dhcpstart=10.0.9.0",
	    "user,net=10.0.9.0/24,dns=10.0.9.2",
	    "user,net=10.0.9.0/24,dhcpstart=10.0.9.3",
	    "user,host=0.0.0.0",
	    "user,restrict=maybe",
	    "user,hostname=",
	    "user,hostname=a_b",
	    "tap=tap0,restrict=on",
	    "tap=tap0,net=10.0.9.0/24",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (nic_config_parse(bad[i], &n, "--net") != -1)
			fail_msg("accepted --net %s", bad[i]);
}

/* --net bridge=BR and network=NAME: a new tap on a bridge; a network's bridge is looked up at
 * start and written only once set. */
static void nic_bridge_and_network(void **state)
{
	struct nic_config n;
	assert_int_equal(nic_config_parse("bridge=br0,mac=52:54:00:00:00:09", &n, "--net"), 0);
	assert_int_equal(n.kind, NIC_BRIDGE);
	assert_string_equal(n.bridge, "br0");
	char *spec = nic_config_format(&n);
	assert_string_equal(spec, "bridge=br0,mac=52:54:00:00:00:09");
	free(spec);
	assert_int_equal(nic_config_parse("network=vboxnet0", &n, "--net"), 0);
	assert_int_equal(n.kind, NIC_NETWORK);
	assert_string_equal(n.network, "vboxnet0");
	json_t *j = nic_config_to_json(&n);
	assert_null(json_object_get(j, "bridge"));
	assert_string_equal(json_string_value(json_object_get(j, "type")), "network");
	struct nic_config m;
	assert_int_equal(nic_config_from_json(j, &m, "t"), 0);
	assert_string_equal(m.network, "vboxnet0");
	json_decref(j);
	strcpy(n.bridge, "kitebr3");
	j = nic_config_to_json(&n);
	assert_string_equal(json_string_value(json_object_get(j, "bridge")), "kitebr3");
	json_decref(j);
	const char *bad[] = {"bridge=",
			     "bridge=a/b",
			     "bridge=averyveryverylongname0",
			     "network=",
			     "network=a/b",
			     "bridge=br0,hostfwd=tcp::1-:2",
			     "network=x,ifname=t0",
			     "user,bridge=br0",
			     "user,network=x",
			     "bridge=br0,network=x",
			     "bridge=br0,restrict=on"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (nic_config_parse(bad[i], &n, "--net") != -1)
			fail_msg("accepted --net %s", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(disk_grammar),
	    cmocka_unit_test(disk_json_uses_the_same_keys),
	    cmocka_unit_test(nic_grammar),
	    cmocka_unit_test(nic_json_uses_the_same_keys),
	    cmocka_unit_test(nic_user_network_options),
	    cmocka_unit_test(nic_bridge_and_network),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

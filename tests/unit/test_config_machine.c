/* The machine schema: fields, the JSON form (strict, old files still read), the rules, the
 * file checks, and the round trip every valid description makes: options -> struct -> JSON
 * -> struct, with nothing lost. */
#include "unit.h"
#include "config/machine_config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse(const char *text, struct machine_config *m)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	int r = machine_config_from_json(j, "test.json", m);
	json_decref(j);
	return r;
}

static void fields_take_option_text(void **state)
{
	struct machine_config m;
	machine_config_init(&m);
	assert_int_equal(m.memory, 512ULL << 20);
	assert_int_equal(m.vcpus, 1);
	assert_false(m.balloon);
	assert_int_equal(machine_config_set(&m, "memory", "1G", "--memory"), 0);
	assert_int_equal(m.memory, 1ULL << 30);
	assert_int_equal(machine_config_set(&m, "memory", "96", "--memory"), 0); /* MiB */
	assert_int_equal(m.memory, 96ULL << 20);
	assert_int_equal(machine_config_set(&m, "memory", "131072KiB", "--memory"), 0);
	assert_int_equal(m.memory, 128ULL << 20);
	assert_int_equal(machine_config_set(&m, "memory", "1M", "--memory"), -1);
	assert_int_equal(machine_config_set(&m, "memory", "4097K", "--memory"), -1);
	assert_int_equal(machine_config_set(&m, "memory", "lots", "--memory"), -1);
	assert_int_equal(machine_config_set(&m, "vcpus", "254", "--cpus"), 0);
	assert_int_equal(machine_config_set(&m, "vcpus", "255", "--cpus"), -1);
	assert_int_equal(machine_config_set(&m, "vcpus", "0", "--cpus"), -1);
	assert_int_equal(machine_config_set(&m, "console", "stdio", "--console"), 0);
	assert_int_equal(m.console, MACHINE_CONSOLE_SERIAL);
	assert_int_equal(machine_config_set(&m, "console", "file:/tmp/c.log", "--console"), 0);
	assert_int_equal(m.console, MACHINE_CONSOLE_FILE);
	assert_string_equal(m.console_path, "/tmp/c.log");
	assert_int_equal(machine_config_set(&m, "console", "vga", "--console"), -1);
	assert_int_equal(machine_config_set(&m, "rng", NULL, "--rng"), 0); /* bare: on */
	assert_true(m.rng);
	assert_int_equal(machine_config_set(&m, "balloon", "off", "--balloon"), 0);
	assert_int_equal(machine_config_set(&m, "exit_device", "port=0xf4", "--exit-device"), 0);
	assert_true(m.exit_device);
	assert_int_equal(m.exit_port, 0xf4);
	assert_int_equal(machine_config_set(&m, "exit_device", "port=65533", "--exit-device"), -1);
	assert_int_equal(machine_config_set(&m, "exit_device", "0xf4", "--exit-device"), -1);
	assert_int_equal(machine_config_set(&m, "exit_device", "off", "--exit-device"), 0);
	assert_false(m.exit_device);
	assert_int_equal(machine_config_set(&m, "fw_cfg", "opt/a,,b,string=x,,y", "--fw-cfg"), 0);
	assert_string_equal(m.fw_cfg[0].name, "opt/a,b");
	assert_string_equal(m.fw_cfg[0].string, "x,y");
	char *text = fw_cfg_config_format(&m.fw_cfg[0]);
	assert_string_equal(text, "name=opt/a,,b,string=x,,y");
	free(text);
	assert_int_equal(machine_config_set(&m, "fw_cfg", "name=opt/a,,b,file=/f", "--fw-cfg"), -1);
	assert_int_equal(machine_config_set(&m, "fw_cfg", "name=opt/c,file=/f", "--fw-cfg"), 0);
	assert_int_equal(m.nfw_cfg, 2);
	assert_int_equal(machine_config_set(&m, "fw_cfg", "name=opt/d", "--fw-cfg"), -1);
	assert_int_equal(m.nfw_cfg, 2);
	assert_int_equal(machine_config_set(&m, "shares", "/srv,tag=x", "--share"), -1);
	assert_int_equal(machine_config_set(&m, "disks", "/a.img", "--disk"), 0);
	assert_int_equal(machine_config_set(&m, "disks", "/b.img,target=vda", "--disk"), -1);
	assert_int_equal(machine_config_set(&m, "disks", "/a.img", "--disk"), -1); /* twice */
	assert_int_equal(machine_config_set(&m, "disks", "/c.img,target=vdc", "--disk"), 0);
	assert_int_equal(machine_config_set(&m, "disks", "/b.img", "--disk"), 0);
	/* Targets in order, the free one filled in. */
	assert_string_equal(m.disks[0].path, "/a.img");
	assert_string_equal(m.disks[1].path, "/b.img");
	assert_string_equal(m.disks[1].target, "vdb");
	assert_string_equal(m.disks[2].target, "vdc");
	assert_int_equal(machine_config_remove_disk(&m, "/b.img"), 0);
	assert_int_equal(machine_config_remove_disk(&m, "vdb"), -1);
	assert_int_equal(m.ndisks, 2);
	assert_int_equal(machine_config_set(&m, "nics", "user,mac=52:54:00:00:00:01", "--net"), 0);
	assert_int_equal(machine_config_set(&m, "nics", "user,mac=52:54:00:00:00:01", "--net"), -1);
	assert_int_equal(machine_config_set(&m, "nics", "user", "--net"), 0);
	assert_int_equal(machine_config_remove_nic(&m, "user"), -1); /* ambiguous */
	assert_int_equal(machine_config_remove_nic(&m, "52:54:00:00:00:01"), 0);
	assert_int_equal(machine_config_remove_nic(&m, "user"), 0);
	assert_int_equal(m.nnics, 0);
	machine_config_free(&m);
}

static void json_defaults_and_full_form(void **state)
{
	struct machine_config m;
	assert_int_equal(parse("{\"name\": \"vm\", \"kernel\": \"/k\"}", &m), 0);
	assert_int_equal(m.memory, 512ULL << 20);
	assert_int_equal(m.current_memory, 512ULL << 20);
	assert_int_equal(m.vcpus, 1);
	assert_int_equal(m.console, MACHINE_CONSOLE_SERIAL);
	assert_true(m.balloon); /* a definition has one unless it says no */
	assert_false(m.autostart);
	assert_string_equal(m.uuid, "");
	machine_config_free(&m);

	const char *full =
	    "{\"name\": \"db\", \"uuid\": \"0b7e4a9c-3f52-4c1e-9d0a-5a1c2b3d4e5f\","
	    " \"memory\": \"1G\", \"current_memory\": 268435456, \"vcpus\": 4,"
	    " \"kernel\": \"/boot/vmlinuz\", \"initrd\": \"/boot/initrd\", \"append\": \"quiet\","
	    " \"disks\": [{\"path\": \"/img/a.qcow2\", \"format\": \"qcow2\"},"
	    "             {\"path\": \"/img/b,c.raw\", \"target\": \"vdc\", \"readonly\": true,"
	    "              \"cache\": \"none\", \"serial\": \"B\"},"
	    "             \"/img/d.raw,format=raw\"],"
	    " \"nics\": [{\"type\": \"user\"}, {\"type\": \"tap\", \"ifname\": \"tap0\","
	    "            \"mac\": \"52:54:00:aa:bb:cc\"}, \"user,hostfwd=tcp::22-:22\"],"
	    " \"console\": \"virtio\", \"rng\": true, \"balloon\": true, \"autostart\": true}";
	assert_int_equal(parse(full, &m), 0);
	assert_int_equal(m.memory, 1ULL << 30);
	assert_int_equal(m.current_memory, 256ULL << 20);
	assert_int_equal(m.ndisks, 3);
	assert_string_equal(m.disks[0].target, "vda"); /* first free target */
	assert_string_equal(m.disks[1].path, "/img/d.raw");
	assert_string_equal(m.disks[1].target, "vdb");
	assert_string_equal(m.disks[2].target, "vdc");
	assert_true(m.disks[2].nocache);
	assert_int_equal(m.nnics, 3);
	assert_false(m.nics[0].mac_set);
	assert_int_equal(m.nics[2].nfwd, 1);
	assert_int_equal(machine_config_fill_ids(&m), 0);
	assert_true(m.nics[0].mac_set && m.nics[2].mac_set);
	json_t *j = machine_config_to_json(&m);
	struct machine_config again;
	assert_int_equal(machine_config_from_json(j, "again", &again), 0);
	json_t *j2 = machine_config_to_json(&again);
	assert_true(json_equal(j, j2));
	json_decref(j);
	json_decref(j2);
	machine_config_free(&again);
	machine_config_free(&m);
}

/* What the code before the one schema wrote: every field, "shares": [], NIC models. */
static void old_definitions_still_read(void **state)
{
	const char *old =
	    "{\n  \"name\": \"web\",\n  \"uuid\": \"0b7e4a9c-3f52-4c1e-9d0a-5a1c2b3d4e5f\",\n"
	    "  \"memory\": 536870912,\n  \"current_memory\": 268435456,\n  \"vcpus\": 2,\n"
	    "  \"kernel\": \"/boot/vmlinuz\",\n  \"append\": \"console=ttyS0\",\n"
	    "  \"disks\": [{\"path\": \"/img/web.qcow2\", \"target\": \"vda\", \"readonly\": "
	    "false, \"format\": \"qcow2\"}],\n"
	    "  \"nics\": [{\"type\": \"user\", \"mac\": \"52:54:00:12:34:56\", \"model\": "
	    "\"virtio\", \"hostfwd\": [\"tcp::2222-:22\"]}],\n"
	    "  \"shares\": [],\n  \"console\": \"serial\",\n  \"autostart\": false\n}\n";
	struct machine_config m;
	assert_int_equal(parse(old, &m), 0);
	assert_string_equal(m.name, "web");
	assert_true(m.balloon); /* kite start always added one */
	assert_int_equal(m.nics[0].fwd[0].host_port, 2222);
	machine_config_free(&m);
}

static void invalid_definitions_are_refused(void **state)
{
	const char *bad[] = {
	    "[]",
	    "{\"name\": \"vm\"}",
	    "{\"name\": \".vm\", \"kernel\": \"/k\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memroy\": 5}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memory\": \"lots\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memory\": -1}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memory\": \"4M\", \"current_memory\": "
	    "\"8M\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memory\": \"64M\", \"current_memory\": "
	    "\"8M\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memory\": \"64M\", \"current_memory\": "
	    "\"32M\", \"balloon\": false}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"vcpus\": 0}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"vcpus\": 255}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"vcpus\": \"2\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"uuid\": \"not-a-uuid\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"console\": \"vga\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"autostart\": \"yes\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"disks\": {}}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"disks\": [{\"target\": \"vda\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"disks\": [{\"path\": \"/a\", \"target\": "
	    "\"sda\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"disks\": [{\"path\": \"/a\"}, {\"path\": "
	    "\"/b\", \"target\": \"vda\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"disks\": [{\"path\": \"/a\"}, {\"path\": "
	    "\"/a\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"disks\": [{\"path\": \"/a\", \"format\": "
	    "\"vhd\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"disks\": [\"/a,cache=unsafe\"]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"nics\": [{\"type\": \"tap\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"nics\": [{\"type\": \"user\", \"mac\": "
	    "\"01:00:5e:00:00:01\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"shares\": [{\"path\": \"/s\", \"tag\": "
	    "\"s\"}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct machine_config m;
		if (parse(bad[i], &m) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void make_file(char *path)
{
	strcpy(path, "/tmp/kite-cfg-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
}

static void files_are_checked_and_made_absolute(void **state)
{
	char kernel[32], disk[32], link[48];
	make_file(kernel);
	make_file(disk);
	snprintf(link, sizeof(link), "%s.link", disk);
	assert_int_equal(symlink(disk, link), 0);
	struct machine_config m;
	machine_config_init(&m);
	assert_int_equal(machine_config_set(&m, "kernel", kernel, "--kernel"), 0);
	assert_int_equal(machine_config_set(&m, "disks", disk, "--disk"), 0);
	assert_int_equal(machine_config_check_files(&m), 0);
	/* The same file under another name is still the same disk. */
	assert_int_equal(machine_config_set(&m, "disks", link, "--disk"), 0);
	assert_int_equal(machine_config_check_files(&m), -1);
	assert_int_equal(machine_config_remove_disk(&m, link), 0);
	assert_int_equal(machine_config_set(&m, "disks", "/tmp/kite-cfg-missing", "--disk"), 0);
	assert_int_equal(machine_config_check_files(&m), -1);
	machine_config_free(&m);

	/* Relative paths become absolute from the current directory. */
	assert_int_equal(chdir("/tmp"), 0);
	machine_config_init(&m);
	assert_int_equal(machine_config_set(&m, "kernel", kernel + 5, "--kernel"), 0);
	assert_int_equal(machine_config_set(&m, "disks", "./sub//d.img", "--disk"), 0);
	assert_int_equal(machine_config_check_absolute(&m, "t"), -1);
	assert_int_equal(machine_config_absolute_paths(&m), 0);
	assert_string_equal(m.kernel, kernel);
	assert_string_equal(m.disks[0].path, "/tmp/sub/d.img");
	assert_int_equal(machine_config_check_absolute(&m, "t"), 0);
	machine_config_free(&m);
	unlink(link);
	unlink(disk);
	unlink(kernel);
}

/* ---- the round trip, on random descriptions ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

static void random_text(char *out, size_t n, const char *alphabet)
{
	size_t len = 1 + rnd((unsigned)n - 1);
	for (size_t i = 0; i < len; i++)
		out[i] = alphabet[rnd((unsigned)strlen(alphabet))];
	out[len] = '\0';
}

#define PATH_CHARS "abcXYZ019._-,/ ="

/* Sets a random valid machine through the option text; returns the number of options. */
static void random_machine(struct machine_config *m)
{
	char text[256], spec[1024];
	machine_config_init(m);
	if (rnd(2)) {
		random_text(text, 20, "abcdefgh01._-");
		text[0] = 'n';
		assert_int_equal(machine_config_set(m, "name", text, "--name"), 0);
	}
	snprintf(text, sizeof(text), "/k/");
	random_text(text + 3, 30, PATH_CHARS);
	assert_int_equal(machine_config_set(m, "kernel", text, "--kernel"), 0);
	if (rnd(2)) {
		random_text(text, 30, PATH_CHARS);
		assert_int_equal(machine_config_set(m, "initrd", text, "--initrd"), 0);
	}
	if (rnd(2)) {
		random_text(text, 60, "console=ttyS0 quiet,\"'x");
		assert_int_equal(machine_config_set(m, "append", text, "--append"), 0);
	}
	static const char *const units[] = {"", "M", "G", "K", "MiB"};
	unsigned u = rnd(5);
	unsigned v = u == 2 ? 1 + rnd(8) : u == 3 ? 4096 * (1 + rnd(1000)) : 4 + rnd(4000);
	snprintf(text, sizeof(text), "%u%s", v, units[u]);
	assert_int_equal(machine_config_set(m, "memory", text, "--memory"), 0);
	snprintf(text, sizeof(text), "%u", 1 + rnd(MACHINE_MAX_VCPUS));
	assert_int_equal(machine_config_set(m, "vcpus", text, "--cpus"), 0);
	static const char *const consoles[] = {"serial", "virtio", "none", "file:/var/log/c,x"};
	assert_int_equal(machine_config_set(m, "console", consoles[rnd(4)], "--console"), 0);
	assert_int_equal(machine_config_set(m, "rng", rnd(2) ? "on" : "off", "--rng"), 0);
	assert_int_equal(machine_config_set(m, "balloon", rnd(2) ? "on" : "off", "--balloon"), 0);
	if (rnd(2)) {
		snprintf(text, sizeof(text), rnd(2) ? "port=%u" : "port=0x%x", rnd(0xfffd));
		assert_int_equal(machine_config_set(m, "exit_device", text, "--exit-device"), 0);
	}
	assert_int_equal(machine_config_set(m, "testdev", rnd(2) ? "on" : "off", "--testdev"), 0);
	if (rnd(2)) {
		static const char *const models[] = {"host", "max", "base"};
		int n = snprintf(text, sizeof(text), "%s", models[rnd(3)]);
		for (unsigned i = rnd(5); i > 0; i--)
			n += snprintf(text + n, sizeof(text) - (size_t)n, ",%c%s",
				      rnd(2) ? '+' : '-',
				      cpu_features[rnd((unsigned)cpu_nfeatures)].name);
		assert_int_equal(machine_config_set(m, "cpu", text, "--cpu"), 0);
	}
	for (unsigned i = rnd(3); i > 0; i--) {
		char name[16], value[16];
		random_text(name, 8, "ab,=/");
		random_text(value, 8, "xy, =");
		snprintf(text, sizeof(text), "name=opt/%s%u,string=%s", name, i, value);
		/* the texts double no commas: parse what they mean, format it back */
		struct fw_cfg_config c;
		if (fw_cfg_config_parse(text, &c, "--fw-cfg") == 0) {
			char *canon = fw_cfg_config_format(&c);
			fw_cfg_config_free(&c);
			assert_int_equal(machine_config_set(m, "fw_cfg", canon, "--fw-cfg"), 0);
			free(canon);
		}
	}
	unsigned ndisks = rnd(6);
	for (unsigned i = 0; i < ndisks; i++) {
		struct disk_config d = {0};
		random_text(text, 40, PATH_CHARS);
		snprintf(spec, sizeof(spec), "/d%u/%s", i, text);
		d.path = spec;
		static const char *const formats[] = {"", "raw", "qcow2", "vmdk"};
		snprintf(d.format, sizeof(d.format), "%s", formats[rnd(4)]);
		if (rnd(2))
			snprintf(d.target, sizeof(d.target), "vd%c", 'e' + i);
		d.readonly = rnd(2);
		d.nocache = rnd(2);
		if (rnd(2))
			random_text(d.serial, DISK_SERIAL_MAX + 1, "ABC0123,=");
		char *s = disk_config_format(&d);
		assert_non_null(s);
		assert_int_equal(machine_config_set(m, "disks", s, "--disk"), 0);
		free(s);
	}
	unsigned nnics = rnd(5);
	for (unsigned i = 0; i < nnics; i++) {
		struct nic_config n = {0};
		n.kind = rnd(2) ? NIC_TAP : NIC_USER;
		if (n.kind == NIC_TAP)
			snprintf(n.ifname, sizeof(n.ifname), "tap%u", rnd(100));
		if (rnd(2)) {
			n.mac_set = true;
			uint8_t mac[6] = {0x52, 0x54, 0, 0, (uint8_t)rnd(256), (uint8_t)i};
			memcpy(n.mac, mac, 6);
		}
		for (unsigned k = 0; n.kind == NIC_USER && k < rnd(4); k++) {
			struct net_hostfwd *f = &n.fwd[n.nfwd++];
			f->udp = rnd(2);
			f->host_addr = rnd(2) ? htonl(0x7f000001) : 0;
			f->host_port = (uint16_t)(1 + rnd(65535));
			f->guest_addr = rnd(2) ? htonl(0x0a00020f) : 0;
			f->guest_port = (uint16_t)(1 + rnd(65535));
		}
		char *s = nic_config_format(&n);
		assert_non_null(s);
		assert_int_equal(machine_config_set(m, "nics", s, "--net"), 0);
		free(s);
	}
	machine_config_finish(m);
}

static void assert_same_string(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_same_machine(const struct machine_config *a, const struct machine_config *b)
{
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->uuid, b->uuid);
	assert_same_string(a->kernel, b->kernel);
	assert_same_string(a->initrd, b->initrd);
	assert_same_string(a->append, b->append);
	assert_int_equal(a->memory, b->memory);
	assert_int_equal(a->current_memory, b->current_memory);
	assert_int_equal(a->vcpus, b->vcpus);
	assert_int_equal(a->rng, b->rng);
	assert_int_equal(a->balloon, b->balloon);
	assert_int_equal(a->autostart, b->autostart);
	assert_int_equal(a->exit_device, b->exit_device);
	assert_int_equal(a->exit_port, b->exit_port);
	assert_int_equal(a->testdev, b->testdev);
	assert_int_equal(a->nfw_cfg, b->nfw_cfg);
	for (int i = 0; i < a->nfw_cfg; i++) {
		assert_string_equal(a->fw_cfg[i].name, b->fw_cfg[i].name);
		assert_same_string(a->fw_cfg[i].file, b->fw_cfg[i].file);
		assert_same_string(a->fw_cfg[i].string, b->fw_cfg[i].string);
	}
	assert_int_equal(a->cpu.model, b->cpu.model);
	assert_int_equal(a->cpu.nchanges, b->cpu.nchanges);
	assert_memory_equal(a->cpu.changes, b->cpu.changes,
			    a->cpu.nchanges * sizeof(a->cpu.changes[0]));
	assert_int_equal(a->console, b->console);
	assert_same_string(a->console_path, b->console_path);
	assert_int_equal(a->ndisks, b->ndisks);
	for (int i = 0; i < a->ndisks; i++) {
		const struct disk_config *x = &a->disks[i], *y = &b->disks[i];
		assert_string_equal(x->path, y->path);
		assert_string_equal(x->format, y->format);
		assert_string_equal(x->target, y->target);
		assert_string_equal(x->serial, y->serial);
		assert_int_equal(x->readonly, y->readonly);
		assert_int_equal(x->nocache, y->nocache);
	}
	assert_int_equal(a->nnics, b->nnics);
	for (int i = 0; i < a->nnics; i++)
		assert_memory_equal(&a->nics[i], &b->nics[i], sizeof(a->nics[i]));
}

static void every_valid_description_round_trips(void **state)
{
	for (int iter = 0; iter < 2000; iter++) {
		struct machine_config a, b, c;
		random_machine(&a);
		assert_int_equal(machine_config_validate(&a, "generated"), 0);
		json_t *j = machine_config_to_json(&a);
		assert_non_null(j);
		assert_int_equal(machine_config_from_json(j, "round trip", &b), 0);
		assert_same_machine(&a, &b);
		json_t *j2 = machine_config_to_json(&b);
		assert_true(json_equal(j, j2));
		/* And back through the option strings of each device. */
		machine_config_init(&c);
		for (int i = 0; i < b.ndisks; i++) {
			char *s = disk_config_format(&b.disks[i]);
			assert_int_equal(machine_config_set(&c, "disks", s, "--disk"), 0);
			free(s);
		}
		for (int i = 0; i < b.nnics; i++) {
			char *s = nic_config_format(&b.nics[i]);
			assert_int_equal(machine_config_set(&c, "nics", s, "--net"), 0);
			free(s);
		}
		assert_int_equal(c.ndisks, b.ndisks);
		for (int i = 0; i < c.ndisks; i++)
			assert_string_equal(c.disks[i].path, b.disks[i].path);
		assert_memory_equal(c.nics, b.nics, sizeof(c.nics[0]) * (size_t)c.nnics);
		json_decref(j);
		json_decref(j2);
		machine_config_free(&a);
		machine_config_free(&b);
		machine_config_free(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fields_take_option_text),
	    cmocka_unit_test(json_defaults_and_full_form),
	    cmocka_unit_test(old_definitions_still_read),
	    cmocka_unit_test(invalid_definitions_are_refused),
	    cmocka_unit_test(files_are_checked_and_made_absolute),
	    cmocka_unit_test(every_valid_description_round_trips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

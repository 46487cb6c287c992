/* Machine definitions: parsing and validation, the on-disk store, locks. */
#include "unit.h"
#include "mgmt/def_store.h"
#include "mgmt/fileutil.h"
#include "mgmt/machine_def.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse(const char *text, struct machine_def *def)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	int r = machine_def_from_json(j, "test.json", def);
	json_decref(j);
	return r;
}

static void names(void **state)
{
	assert_int_equal(machine_name_check("web-1.example_2"), 0);
	assert_int_equal(machine_name_check("A"), 0);
	assert_int_equal(machine_name_check(""), -1);
	assert_int_equal(machine_name_check(".hidden"), -1);
	assert_int_equal(machine_name_check("a/b"), -1);
	assert_int_equal(machine_name_check("../etc"), -1);
	assert_int_equal(machine_name_check("sp ace"), -1);
	assert_int_equal(machine_name_check("é"), -1);
	char longname[100];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[99] = '\0';
	assert_int_equal(machine_name_check(longname), -1);
}

static void defaults_and_round_trip(void **state)
{
	struct machine_def d;
	assert_int_equal(parse("{\"name\": \"vm\", \"kernel\": \"/k\"}", &d), 0);
	assert_int_equal(d.memory, 512ULL << 20);
	assert_int_equal(d.current_memory, 512ULL << 20);
	assert_int_equal(d.vcpus, 1);
	assert_string_equal(d.console, "serial");
	assert_true(uuid_valid(d.uuid));
	assert_false(d.autostart);
	machine_def_free(&d);

	const char *full =
	    "{\"name\": \"db\", \"uuid\": \"0b7e4a9c-3f52-4c1e-9d0a-5a1c2b3d4e5f\","
	    " \"memory\": \"1G\", \"current_memory\": 268435456, \"vcpus\": 4,"
	    " \"kernel\": \"/boot/vmlinuz\", \"initrd\": \"/boot/initrd\", \"append\": \"quiet\","
	    " \"disks\": [{\"path\": \"/img/a.qcow2\", \"format\": \"qcow2\"},"
	    "             {\"path\": \"/img/b,c.raw\", \"target\": \"vdc\", \"readonly\": true}],"
	    " \"nics\": [{\"type\": \"user\"}, {\"type\": \"tap\", \"ifname\": \"tap0\","
	    "            \"mac\": \"52:54:00:aa:bb:cc\"}],"
	    " \"shares\": [{\"path\": \"/srv\", \"tag\": \"srv\", \"readonly\": true}],"
	    " \"console\": \"none\", \"autostart\": true}";
	assert_int_equal(parse(full, &d), 0);
	assert_int_equal(d.memory, 1ULL << 30);
	assert_int_equal(d.current_memory, 256ULL << 20);
	assert_int_equal(d.ndisks, 2);
	assert_string_equal(d.disks[0].target, "vda"); /* first free target */
	assert_string_equal(d.disks[1].target, "vdc");
	assert_int_equal(d.nnics, 2);
	assert_true(mac_valid(d.nics[0].mac)); /* generated */
	assert_string_equal(d.nics[1].mac, "52:54:00:aa:bb:cc");
	json_t *j = machine_def_to_json(&d);
	struct machine_def again;
	assert_int_equal(machine_def_from_json(j, "again", &again), 0);
	json_t *j2 = machine_def_to_json(&again);
	assert_true(json_equal(j, j2));
	json_decref(j);
	json_decref(j2);
	machine_def_free(&again);
	machine_def_free(&d);
}

static void invalid_definitions_are_refused(void **state)
{
	const char *bad[] = {
	    "[]",
	    "{\"kernel\": \"/k\"}",
	    "{\"name\": \"vm\"}",
	    "{\"name\": \".vm\", \"kernel\": \"/k\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memroy\": 5}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memory\": \"lots\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memory\": -1}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"memory\": \"1M\", \"current_memory\": "
	    "\"2M\"}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"vcpus\": 0}",
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
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"disks\": [{\"path\": \"/a\", \"format\": "
	    "\"vhd\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"nics\": [{\"type\": \"tap\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"nics\": [{\"type\": \"user\", \"mac\": "
	    "\"01:00:5e:00:00:01\"}]}",
	    "{\"name\": \"vm\", \"kernel\": \"/k\", \"shares\": [{\"path\": \"/s\"}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct machine_def d;
		if (parse(bad[i], &d) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void device_edits(void **state)
{
	struct machine_def d;
	assert_int_equal(parse("{\"name\": \"vm\", \"kernel\": \"/k\"}", &d), 0);
	assert_int_equal(machine_def_add_disk(&d, "/a.img", NULL, NULL, false), 0);
	assert_int_equal(machine_def_add_disk(&d, "/b.img", "vdb", "raw", true), 0);
	assert_int_equal(machine_def_add_disk(&d, "/c.img", "vdb", NULL, false), -1);
	assert_int_equal(machine_def_remove_disk(&d, "vda"), 0);
	assert_int_equal(machine_def_remove_disk(&d, "vda"), -1);
	assert_int_equal(d.ndisks, 1);
	assert_string_equal(d.disks[0].path, "/b.img");
	assert_int_equal(machine_def_add_nic(&d, "user", NULL, NULL, NULL), 0);
	assert_int_equal(machine_def_add_nic(&d, "user", NULL, NULL, NULL), 0);
	assert_int_equal(machine_def_remove_nic(&d, "user"), -1); /* ambiguous */
	assert_int_equal(machine_def_remove_nic(&d, d.nics[1].mac), 0);
	assert_int_equal(machine_def_remove_nic(&d, "user"), 0);
	assert_int_equal(d.nnics, 0);
	machine_def_free(&d);
}

struct store_fx {
	char dir[64];
	struct mgmt_dirs dirs;
};

static int store_setup(void **state)
{
	struct store_fx *fx = calloc(1, sizeof(*fx));
	strcpy(fx->dir, "/tmp/kite-def-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	char run[128];
	snprintf(run, sizeof(run), "%s/run", fx->dir);
	assert_int_equal(mgmt_dirs_init(fx->dir, NULL, &fx->dirs), 0);
	assert_string_equal(fx->dirs.run, run);
	*state = fx;
	return 0;
}

static int store_teardown(void **state)
{
	struct store_fx *fx = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void store_save_load_list(void **state)
{
	struct store_fx *fx = *state;
	struct machine_def d;
	assert_int_equal(parse("{\"name\": \"b\", \"kernel\": \"/k\", \"vcpus\": 3}", &d), 0);
	assert_int_equal(def_save(&fx->dirs, &d), 0);
	machine_def_free(&d);
	assert_int_equal(parse("{\"name\": \"a\", \"kernel\": \"/k\"}", &d), 0);
	assert_int_equal(def_save(&fx->dirs, &d), 0);
	machine_def_free(&d);
	char **names;
	int n = def_list_names(&fx->dirs, &names);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "a");
	assert_string_equal(names[1], "b");
	def_free_names(names, n);
	assert_int_equal(def_load(&fx->dirs, "b", true, &d, NULL), DEF_OK);
	assert_int_equal(d.vcpus, 3);
	machine_def_free(&d);
	assert_int_equal(def_load(&fx->dirs, "zzz", true, &d, NULL), DEF_MISSING);
	/* No temp file is left behind by the atomic write. */
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s/b.json.tmp.%d", fx->dir, (int)getpid());
	assert_int_equal(access(tmp, F_OK), -1);
}

static void truncated_and_garbage_files_are_corrupt(void **state)
{
	struct store_fx *fx = *state;
	struct machine_def d;
	assert_int_equal(parse("{\"name\": \"t\", \"kernel\": \"/k\"}", &d), 0);
	assert_int_equal(def_save(&fx->dirs, &d), 0);
	machine_def_free(&d);
	char path[160];
	snprintf(path, sizeof(path), "%s/t.json", fx->dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size / 2), 0);
	char *why = NULL;
	assert_int_equal(def_load(&fx->dirs, "t", true, &d, &why), DEF_CORRUPT);
	assert_non_null(why);
	assert_non_null(strstr(why, "truncated"));
	free(why);
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(def_load(&fx->dirs, "t", true, &d, &why), DEF_CORRUPT);
	assert_string_equal(why, "the file is empty");
	free(why);
	const char *other = "{\"name\": \"other\", \"kernel\": \"/k\"}";
	assert_int_equal(write_file_atomic(path, other, strlen(other), 0644), 0);
	assert_int_equal(def_load(&fx->dirs, "t", true, &d, &why), DEF_CORRUPT);
	assert_non_null(strstr(why, "names machine 'other'"));
	free(why);
	assert_int_equal(
	    write_file_atomic(path, "{\"name\": \"t\"}", strlen("{\"name\": \"t\"}"), 0644), 0);
	assert_int_equal(def_load(&fx->dirs, "t", true, &d, &why), DEF_CORRUPT);
	free(why);
	/* Still listed: a corrupt file is never dropped from the list. */
	char **names;
	int n = def_list_names(&fx->dirs, &names);
	assert_int_equal(n, 1);
	def_free_names(names, n);
}

static void lock_excludes_a_second_holder(void **state)
{
	struct store_fx *fx = *state;
	int fd = def_lock(&fx->dirs, "vm");
	assert_true(fd >= 0);
	char path[160];
	snprintf(path, sizeof(path), "%s/vm.lock", fx->dir);
	int other = open(path, O_RDWR);
	assert_true(other >= 0);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1);
	close(fd);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
	close(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(names),
	    cmocka_unit_test(defaults_and_round_trip),
	    cmocka_unit_test(invalid_definitions_are_refused),
	    cmocka_unit_test(device_edits),
	    cmocka_unit_test_setup_teardown(store_save_load_list, store_setup, store_teardown),
	    cmocka_unit_test_setup_teardown(truncated_and_garbage_files_are_corrupt, store_setup,
					    store_teardown),
	    cmocka_unit_test_setup_teardown(lock_excludes_a_second_holder, store_setup,
					    store_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Machine definitions on disk: what may be stored, the store, locks. (The description itself
 * and its JSON form: test_config_machine.c.) */
#include "unit.h"
#include "mgmt/def_store.h"
#include "mgmt/fileutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* A definition as define stores it: parsed, with a UUID and MACs. */
static int parse(const char *text, struct machine_config *def)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	int r = def_from_json(j, "test.json", def);
	json_decref(j);
	if (r == 0)
		assert_int_equal(machine_config_fill_ids(def), 0);
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

static void what_may_be_stored(void **state)
{
	struct machine_config d;
	/* A definition names its machine. */
	json_t *j = json_loads("{\"kernel\": \"/k\"}", 0, NULL);
	assert_int_equal(def_from_json(j, "t", &d), -1);
	json_decref(j);
	/* Relative paths are made absolute and the files checked before storing. */
	char kernel[] = "/tmp/kite-defk-XXXXXX";
	int fd = mkstemp(kernel);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chdir("/tmp"), 0);
	char text[200];
	snprintf(text, sizeof(text), "{\"name\": \"vm\", \"kernel\": \"%s\"}", kernel + 5);
	j = json_loads(text, 0, NULL);
	assert_int_equal(def_from_json(j, "t", &d), 0);
	json_decref(j);
	assert_int_equal(def_prepare(&d, "t"), 0);
	assert_string_equal(d.kernel, kernel);
	assert_true(uuid_valid(d.uuid));
	machine_config_free(&d);
	unlink(kernel);
	snprintf(text, sizeof(text), "{\"name\": \"vm\", \"kernel\": \"%s\"}", kernel);
	j = json_loads(text, 0, NULL);
	assert_int_equal(def_from_json(j, "t", &d), 0);
	json_decref(j);
	assert_int_equal(def_prepare(&d, "t"), -1); /* the kernel is gone */
	machine_config_free(&d);
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
	struct machine_config d;
	assert_int_equal(parse("{\"name\": \"b\", \"kernel\": \"/k\", \"vcpus\": 3}", &d), 0);
	assert_int_equal(def_save(&fx->dirs, &d), 0);
	machine_config_free(&d);
	assert_int_equal(parse("{\"name\": \"a\", \"kernel\": \"/k\"}", &d), 0);
	assert_int_equal(def_save(&fx->dirs, &d), 0);
	machine_config_free(&d);
	char **names;
	int n = def_list_names(&fx->dirs, &names);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "a");
	assert_string_equal(names[1], "b");
	def_free_names(names, n);
	assert_int_equal(def_load(&fx->dirs, "b", true, &d, NULL), DEF_OK);
	assert_int_equal(d.vcpus, 3);
	/* What kite start could not use is not stored: a relative path, no UUID. */
	free(d.kernel);
	d.kernel = strdup("vmlinuz");
	assert_int_equal(def_save(&fx->dirs, &d), -1);
	free(d.kernel);
	d.kernel = strdup("/k");
	d.uuid[0] = '\0';
	assert_int_equal(def_save(&fx->dirs, &d), -1);
	machine_config_free(&d);
	assert_int_equal(def_load(&fx->dirs, "zzz", true, &d, NULL), DEF_MISSING);
	/* No temp file is left behind by the atomic write. */
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s/b.json.tmp.%d", fx->dir, (int)getpid());
	assert_int_equal(access(tmp, F_OK), -1);
}

static void truncated_and_garbage_files_are_corrupt(void **state)
{
	struct store_fx *fx = *state;
	struct machine_config d;
	assert_int_equal(parse("{\"name\": \"t\", \"kernel\": \"/k\"}", &d), 0);
	assert_int_equal(def_save(&fx->dirs, &d), 0);
	machine_config_free(&d);
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
	    cmocka_unit_test(what_may_be_stored),
	    cmocka_unit_test_setup_teardown(store_save_load_list, store_setup, store_teardown),
	    cmocka_unit_test_setup_teardown(truncated_and_garbage_files_are_corrupt, store_setup,
					    store_teardown),
	    cmocka_unit_test_setup_teardown(lock_excludes_a_second_holder, store_setup,
					    store_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

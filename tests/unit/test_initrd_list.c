/* --initrd as a multiboot module list (config/initrd_list.h): QEMU's grammar, and what the
 * machine's file checks and stored paths make of a list. */
#include "unit.h"
#include "config/initrd_list.h"
#include "config/machine_config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void parse_and_format(void **state)
{
	struct initrd_module l[INITRD_MAX_MODULES];
	int n = initrd_list_parse("a one two,b,c x,,y", l, INITRD_MAX_MODULES, "--initrd");
	assert_int_equal(n, 3);
	assert_string_equal(l[0].path, "a");
	assert_string_equal(l[0].string, "a one two");
	assert_string_equal(l[1].path, "b");
	assert_string_equal(l[1].string, "b");
	assert_string_equal(l[2].path, "c");
	assert_string_equal(l[2].string, "c x,y");
	char *s = initrd_list_format(l, n);
	assert_string_equal(s, "a one two,b,c x,,y");
	free(s);
	initrd_list_free(l, n);
	/* A file name with a comma. */
	n = initrd_list_parse("x,,y", l, INITRD_MAX_MODULES, "--initrd");
	assert_int_equal(n, 1);
	assert_string_equal(l[0].path, "x,y");
	initrd_list_free(l, n);
	/* Empty module names; too many. */
	assert_int_equal(initrd_list_parse("a,", l, INITRD_MAX_MODULES, "--initrd"), -1);
	assert_int_equal(initrd_list_parse("", l, INITRD_MAX_MODULES, "--initrd"), -1);
	assert_int_equal(initrd_list_parse(" arg", l, INITRD_MAX_MODULES, "--initrd"), -1);
	assert_int_equal(initrd_list_parse("a,b,c", l, 2, "--initrd"), -1);

	assert_false(initrd_list_is_list("/boot/initrd.img"));
	assert_false(initrd_list_is_list("a,,b"));
	assert_true(initrd_list_is_list("a,b"));
	assert_true(initrd_list_is_list("a arg"));
}

static char *temp_file(const char *dir)
{
	char *path;
	assert_true(asprintf(&path, "%s/kite-mod-XXXXXX", dir) > 0);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	return path;
}

static void machine_files_take_a_list(void **state)
{
	char *a = temp_file("/tmp"), *b = temp_file("/tmp");
	struct machine_config m;
	machine_config_init(&m);
	assert_int_equal(machine_config_set(&m, "kernel", a, "--kernel"), 0);
	char list[PATH_MAX * 3];
	snprintf(list, sizeof(list), "%s size=1,%s", a, b);
	assert_int_equal(machine_config_set(&m, "initrd", list, "--initrd"), 0);
	assert_int_equal(machine_config_check_files(&m), 0);
	assert_int_equal(machine_config_check_absolute(&m, "t"), 0);
	/* One module missing: named. */
	snprintf(list, sizeof(list), "%s size=1,/nonexistent/mod", a);
	assert_int_equal(machine_config_set(&m, "initrd", list, "--initrd"), 0);
	assert_int_equal(machine_config_check_files(&m), -1);
	/* Relative modules made absolute, their arguments kept. */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/tmp"), 0);
	snprintf(list, sizeof(list), "%s x=1,%s", strrchr(a, '/') + 1, b);
	assert_int_equal(machine_config_set(&m, "initrd", list, "--initrd"), 0);
	assert_int_equal(machine_config_check_absolute(&m, "t"), -1);
	assert_int_equal(machine_config_absolute_paths(&m), 0);
	snprintf(list, sizeof(list), "%s x=1,%s", a, b);
	assert_string_equal(m.initrd, list);
	assert_int_equal(machine_config_check_absolute(&m, "t"), 0);
	assert_int_equal(chdir(cwd), 0);
	machine_config_free(&m);
	unlink(a);
	unlink(b);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_and_format),
	    cmocka_unit_test(machine_files_take_a_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

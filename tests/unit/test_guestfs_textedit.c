/* The text edits behind `kite guest init`: results and idempotence. */
#include "unit.h"

#include "guestfs/textedit.h"

#include <stdlib.h>
#include <string.h>

static const char *const keys[] = {"Port", "PasswordAuthentication"};
static const char *const vals[] = {"2222", "no"};

static void sshd_sets_directives_at_the_top_once(void **state)
{
	const char *conf = "Include /etc/ssh/sshd_config.d/*.conf\n"
			   "#Port 22\n"
			   "Port 22\n"
			   "  passwordauthentication yes\n"
			   "UsePAM yes\n"
			   "Match User x\n"
			   "\tPasswordAuthentication yes\n";
	char *a = sshd_apply(conf, keys, vals, 2);
	assert_non_null(a);
	assert_string_equal(a, "# Set by kite guest init (the original is sshd_config.origin)\n"
			       "Port 2222\n"
			       "PasswordAuthentication no\n"
			       "Include /etc/ssh/sshd_config.d/*.conf\n"
			       "#Port 22\n"
			       "UsePAM yes\n"
			       "Match User x\n"
			       "\tPasswordAuthentication yes\n");
	char *b = sshd_apply(a, keys, vals, 2);
	assert_string_equal(a, b);
	/* a different later run replaces, never duplicates */
	const char *v2[] = {"2200", "yes"};
	char *c = sshd_apply(b, keys, v2, 2);
	assert_non_null(strstr(c, "Port 2200\n"));
	assert_null(strstr(c, "Port 2222"));
	assert_null(strstr(c, "PasswordAuthentication no"));
	free(a);
	free(b);
	free(c);
}

static void sshd_handles_empty_and_unterminated_files(void **state)
{
	char *a = sshd_apply("", keys, vals, 1);
	assert_string_equal(a, "# Set by kite guest init (the original is sshd_config.origin)\n"
			       "Port 2222\n");
	char *b = sshd_apply("UsePAM yes", keys, vals, 1);
	assert_non_null(strstr(b, "Port 2222\nUsePAM yes\n"));
	free(a);
	free(b);
}

static void hosts_line_replaced_or_added(void **state)
{
	char *a = hosts_set_hostname("127.0.0.1 localhost\n127.0.1.1\told\n::1 ip6\n", "new");
	assert_string_equal(a, "127.0.0.1 localhost\n127.0.1.1\tnew\n::1 ip6\n");
	char *b = hosts_set_hostname("127.0.0.1 localhost", "new");
	assert_string_equal(b, "127.0.0.1 localhost\n127.0.1.1\tnew\n");
	char *c = hosts_set_hostname(b, "new");
	assert_string_equal(b, c);
	free(a);
	free(b);
	free(c);
}

static void databases(void **state)
{
	const char *pw = "root:x:0:0::/root:/bin/sh\nbob:x:1000:1001::/home/bob:/bin/sh\n"
			 "broken-line\nnobody:x:65534:65534::/:/bin/false";
	uint32_t uid, gid;
	assert_true(db_find(pw, "bob", &uid, &gid));
	assert_int_equal(uid, 1000);
	assert_int_equal(gid, 1001);
	assert_false(db_find(pw, "bo", NULL, NULL));
	assert_false(db_find(pw, "broken-line", NULL, NULL));
	assert_int_equal(db_free_id(pw, 1000, 59999, false), 1001);
	assert_int_equal(db_free_id(pw, 100, 999, true), 999);
	assert_int_equal(db_free_id(pw, 0, 0, false), UINT32_MAX);
	char *a = db_append(pw, "eve:x:1001:1001::/home/eve:/bin/sh");
	assert_non_null(strstr(a, "/bin/false\neve:x:1001"));
	free(a);
	const char *grp = "wheel:x:10:root\nempty:x:11:\n";
	char *g1 = group_add_member(grp, "wheel", "alice");
	assert_string_equal(g1, "wheel:x:10:root,alice\nempty:x:11:\n");
	char *g2 = group_add_member(g1, "wheel", "alice");
	assert_string_equal(g1, g2);
	char *g3 = group_add_member(g2, "empty", "alice");
	assert_string_equal(g3, "wheel:x:10:root,alice\nempty:x:11:alice\n");
	free(g1);
	free(g2);
	free(g3);
	const char *sh = "root:$6$x:19000:0:99999:7:::\nbob:*:1::::::\n";
	char *s1 = shadow_lock(sh, "root");
	assert_string_equal(s1, "root:!$6$x:19000:0:99999:7:::\nbob:*:1::::::\n");
	char *s2 = shadow_lock(s1, "root");
	assert_string_equal(s1, s2);
	free(s1);
	free(s2);
}

static void authorized_keys(void **state)
{
	const char *k1 = "ssh-ed25519 AAAAC3Nza one@host\n";
	const char *k2 = "# comment\nssh-ed25519 AAAAC3Nza one@host\r\nssh-rsa AAAAB3 two\n";
	assert_true(keys_valid(k1));
	assert_true(keys_valid(k2));
	assert_false(keys_valid(""));
	assert_false(keys_valid("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
	assert_false(keys_valid("ssh-ed25519 AAAA\x1b[2J\n"));
	char *a = keys_merge("", k1);
	char *b = keys_merge(a, k2);
	assert_string_equal(b, "ssh-ed25519 AAAAC3Nza one@host\nssh-rsa AAAAB3 two\n");
	char *c = keys_merge(b, k2);
	assert_string_equal(b, c);
	free(a);
	free(b);
	free(c);
}

static void names(void **state)
{
	assert_true(valid_user_name("alice"));
	assert_true(valid_user_name("_svc-1"));
	assert_false(valid_user_name("Alice"));
	assert_false(valid_user_name("a:b"));
	assert_false(valid_user_name("../x"));
	assert_false(valid_user_name(""));
	assert_true(valid_hostname("web-1.example.org"));
	assert_false(valid_hostname("-web"));
	assert_false(valid_hostname("a..b"));
	assert_false(valid_hostname("a b"));
	assert_false(valid_hostname("x\n127.0.0.1 evil"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sshd_sets_directives_at_the_top_once),
	    cmocka_unit_test(sshd_handles_empty_and_unterminated_files),
	    cmocka_unit_test(hosts_line_replaced_or_added),
	    cmocka_unit_test(databases),
	    cmocka_unit_test(authorized_keys),
	    cmocka_unit_test(names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

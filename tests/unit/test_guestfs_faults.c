/* Fault injection over kite guest's write verbs: each read, write, flush and allocation of a
 * verb is made to fail in turn (guestfs/fault.h), and after each run e2fsck -fn must find the
 * filesystem clean and the files must read back either exactly as before the verb (it
 * failed) or exactly as after a run without faults (it succeeded). Then the image is made to
 * die at each write in turn (that write and all later ones fail, as in a crash): it must be
 * left marked as not clean and e2fsck -fy must repair it. The verbs run through cmd_guest(),
 * as the command line runs them. */
#include "unit.h"

#include "cli/commands.h"
#include "guestfs/fault.h"
#include "guestfs/fs.h"
#include "guestfs/fsread.h"
#include "guestfs/undo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

/* The fault plan: fail the n-th step of `kind` (and every later one when `sticky`). */
static struct {
	int kind;
	long n, count;
	bool sticky, hit;
} plan = {.kind = -1};

bool gfs_fault(enum gfs_fault_kind kind)
{
	if ((int)kind != plan.kind)
		return false;
	plan.count++;
	if (plan.count == plan.n || (plan.sticky && plan.count > plan.n)) {
		plan.hit = true;
		return true;
	}
	return false;
}

static void arm(int kind, long n, bool sticky)
{
	plan.kind = kind;
	plan.n = n;
	plan.count = 0;
	plan.sticky = sticky;
	plan.hit = false;
}

static void disarm(void)
{
	plan.kind = -1;
}

static char dir[64];
static char *base_data; /* the base image, copied before each run */
static size_t base_len;

static char *path_of(const char *name)
{
	static char buf[4][256];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void put_file(const char *name, const void *data, size_t len)
{
	char *p = path_of(name);
	char *slash = strrchr(p, '/');
	*slash = 0;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", p);
	assert_int_equal(system(cmd), 0);
	*slash = '/';
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void put_text(const char *name, const char *text)
{
	put_file(name, text, strlen(text));
}

static void put_random(const char *name, size_t len, unsigned seed)
{
	unsigned char *b = malloc(len);
	assert_non_null(b);
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (unsigned char)(seed >> 16);
	}
	put_file(name, b, len);
	free(b);
}

static int run_quiet(const char *cmd)
{
	char full[1024];
	snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
	int st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void load_base(void)
{
	FILE *f = fopen(path_of("base.img"), "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	base_len = (size_t)ftell(f);
	rewind(f);
	base_data = malloc(base_len);
	assert_non_null(base_data);
	assert_int_equal(fread(base_data, 1, base_len, f), base_len);
	fclose(f);
}

static void fresh_image(void)
{
	FILE *f = fopen(path_of("work.img"), "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(base_data, 1, base_len, f), base_len);
	assert_int_equal(fclose(f), 0);
}

static int fsck(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "e2fsck -fn '%s'", path_of("work.img"));
	return run_quiet(cmd);
}

/* Every name, type, mode, owner, link count, size and content crc of the tree, as the
 * library reads it back. Timestamps are left out: runs differ in them. */
static void walk(struct gfs *g, ext2_ino_t ino, const char *prefix, FILE *f)
{
	struct gfs_dirent *d;
	size_t n;
	assert_int_equal(gfs_list_dir(g, ino, &d, &n), 0);
	for (size_t i = 0; i < n; i++) {
		struct ext2_inode_large in;
		assert_int_equal(gfs_read_inode(g, d[i].ino, &in), 0);
		uLong crc = crc32(0, NULL, 0);
		if (LINUX_S_ISREG(in.i_mode)) {
			char *buf;
			size_t bl;
			assert_int_equal(gfs_read_file(g, d[i].ino, &buf, &bl, 64u << 20), 0);
			crc = crc32(crc, (const Bytef *)buf, (uInt)bl);
			free(buf);
		} else if (LINUX_S_ISLNK(in.i_mode)) {
			char t[4097];
			assert_int_equal(gfs_readlink(g, d[i].ino, t, sizeof(t)), 0);
			crc = crc32(crc, (const Bytef *)t, (uInt)strlen(t));
		}
		fprintf(f, "%s/%s %o %u:%u %u %llu %08lx\n", prefix, d[i].name, in.i_mode,
			gfs_uid(&in), gfs_gid(&in), in.i_links_count,
			(unsigned long long)gfs_size(&in), crc);
		if (LINUX_S_ISDIR(in.i_mode)) {
			char sub[1024];
			snprintf(sub, sizeof(sub), "%s/%s", prefix, d[i].name);
			walk(g, d[i].ino, sub, f);
		}
	}
	gfs_dirents_free(d, n);
}

static char *digest(void)
{
	struct gfs g;
	struct gfs_opts o = {.format = "raw"};
	assert_int_equal(gfs_open(&g, path_of("work.img"), &o), 0);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	walk(&g, EXT2_ROOT_INO, "", f);
	fclose(f);
	assert_int_equal(gfs_close(&g), 0);
	return out;
}

struct verb {
	const char *name;
	const char *argv[24]; /* after "guest VERB"; "IMG" is the work image */
	const char *input;    /* standard input, a file in the work directory */
	int expect;	      /* exit code without faults */
	bool no_sweep;	      /* too many steps to fail each in turn */
};

/* Runs the verb on the work image with stdout/stderr silenced; returns its exit code. */
static int run_verb(const struct verb *v)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = "guest";
	argv[argc++] = (char *)v->name;
	for (int i = 0; v->argv[i]; i++) {
		const char *a = v->argv[i];
		argv[argc++] = !strcmp(a, "IMG") ? path_of("work.img")
			       : a[0] == '@'	 ? path_of(a + 1)
						 : (char *)a;
	}
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	int saved_out = dup(1), saved_err = dup(2), saved_in = dup(0);
	int null = open("/dev/null", O_RDWR);
	int in = v->input ? open(path_of(v->input), O_RDONLY) : open("/dev/null", O_RDONLY);
	assert_true(saved_out >= 0 && saved_err >= 0 && saved_in >= 0 && null >= 0 && in >= 0);
	dup2(null, 1);
	dup2(null, 2);
	dup2(in, 0);
	int rc = cmd_guest(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	dup2(saved_in, 0);
	close(saved_out);
	close(saved_err);
	close(saved_in);
	close(null);
	close(in);
	return rc;
}

static const char *const kind_names[] = {"read", "write", "flush", "alloc"};

/* Fails each step of each kind in turn; counts the runs of each kind. */
static void each_fault(const struct verb *v, const char *before, const char *after, long *runs)
{
	for (int kind = 0; kind < GFS_FAULT_KINDS; kind++) {
		runs[kind] = 0;
		for (long n = 1;; n++) {
			fresh_image();
			arm(kind, n, false);
			int rc = run_verb(v);
			bool hit = plan.hit;
			disarm();
			runs[kind]++;
			int fk = fsck();
			char *now = digest();
			if (fk != 0 || (rc && strcmp(now, before)) || (!rc && strcmp(now, after)) ||
			    (hit && kind != GFS_FAULT_READ && !rc) || (!hit && rc != v->expect)) {
				fprintf(stderr,
					"%s: %s fault %ld: exit %d, e2fsck -fn %d, tree:\n%s"
					"expected (%s):\n%s",
					v->name, kind_names[kind], n, rc, fk, now,
					rc ? "as before" : "as after", rc ? before : after);
				fail();
			}
			free(now);
			if (!hit)
				break;
		}
	}
}

static int repair(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "e2fsck -fy '%s'", path_of("work.img"));
	return run_quiet(cmd);
}

/* The superblock's s_state: bit 0 set when the filesystem was cleanly unmounted. */
static unsigned fs_state(void)
{
	unsigned char b[2];
	FILE *f = fopen(path_of("work.img"), "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 1024 + 0x3a, SEEK_SET), 0);
	assert_int_equal(fread(b, 1, 2, f), 2);
	fclose(f);
	return b[0] | (unsigned)b[1] << 8;
}

/* The image dies at the n-th write: that write and every later one fail, so the change
 * cannot be taken back and the image keeps the writes before it (as after a crash). The
 * image must then say it was not cleanly unmounted (so that the next write refuses it and
 * e2fsck checks it) unless nothing reached it, and e2fsck -fy must make it clean. Returns
 * the number of runs. */
static long each_death(const struct verb *v, const char *before)
{
	long n = 1;
	for (;; n++) {
		fresh_image();
		arm(GFS_FAULT_WRITE, n, true);
		int rc = run_verb(v);
		bool hit = plan.hit;
		disarm();
		if (!hit)
			break;
		unsigned state = fs_state();
		char *now = n == 1 ? digest() : NULL;
		int fy = repair(), fk = fsck();
		if (rc != 1 || (n == 1 && (state & 1) == 0) || (n > 1 && (state & 1)) ||
		    (now && strcmp(now, before)) || fy > 1 || fk != 0) {
			fprintf(
			    stderr,
			    "%s: the image died at write %ld: exit %d, state %#x, e2fsck -fy %d, "
			    "then e2fsck -fn %d\n",
			    v->name, n, rc, state, fy, fk);
			fail();
		}
		free(now);
	}
	return n;
}

static void verb_test(const struct verb *v)
{
	fresh_image();
	char *before = digest();
	assert_int_equal(run_verb(v), v->expect);
	assert_int_equal(fsck(), 0);
	char *after = digest();
	if (v->expect)
		assert_string_equal(after, before);
	else
		assert_string_not_equal(after, before);
	if (!v->no_sweep) {
		long runs[GFS_FAULT_KINDS];
		each_fault(v, before, after, runs);
		long deaths = each_death(v, before);
		/* the last run of each kind passed every step: it hit no fault */
		printf("  %s: the image died at each of %ld writes: marked not clean, e2fsck -fy "
		       "repaired it\n",
		       v->name, deaths - 1);
		printf("  %s: %ld steps failed in turn (reads %ld, writes %ld, flushes %ld, "
		       "allocations %ld), e2fsck -fn clean after each\n",
		       v->name, runs[0] + runs[1] + runs[2] + runs[3] - 4, runs[0] - 1, runs[1] - 1,
		       runs[2] - 1, runs[3] - 1);
	}
	free(before);
	free(after);
}

#define VERB_TEST(fn, ...)                                                                         \
	static void fn(void **state)                                                               \
	{                                                                                          \
		static const struct verb v = __VA_ARGS__;                                          \
		verb_test(&v);                                                                     \
	}

VERB_TEST(copy_in_files_and_a_tree,
	  {.name = "copy-in",
	   .argv = {"IMG", "@src/hello.txt", "@src/tree", "@src/big.bin", "/data"}})
VERB_TEST(copy_in_replacing_a_file,
	  {.name = "copy-in", .argv = {"IMG", "@src/data/old.txt", "/data"}})
VERB_TEST(copy_in_more_than_fits, {.name = "copy-in",
				   .argv = {"IMG", "@src/hello.txt", "@src/huge.bin", "/data"},
				   .expect = 1,
				   .no_sweep = true})
VERB_TEST(write_a_new_file,
	  {.name = "write", .argv = {"IMG", "/data/new.bin"}, .input = "src/big.bin"})
VERB_TEST(write_over_a_file,
	  {.name = "write", .argv = {"IMG", "/data/f.bin"}, .input = "src/hello.txt"})
VERB_TEST(mkdir_with_parents, {.name = "mkdir", .argv = {"IMG", "-p", "/data/x/y", "/data/z"}})
VERB_TEST(rm_files_and_a_tree, {.name = "rm", .argv = {"IMG", "-r", "/data/d", "/data/f.bin"}})
VERB_TEST(ln_symbolic, {.name = "ln", .argv = {"IMG", "-s", "/data/old.txt", "/data/sym"}})
VERB_TEST(ln_hard, {.name = "ln", .argv = {"IMG", "/data/old.txt", "/data/hard"}})
VERB_TEST(init_a_user_with_keys,
	  {.name = "init",
	   .argv = {"IMG", "--hostname", "new-host", "--user", "alice", "--group", "sudo",
		    "--sudo-nopasswd", "alice", "--authorized-key", "@key.pub", "--ssh-port",
		    "2222", "--no-password-login", "--root-password-lock"}})

/* The undo device on its own, over memory: a rollback restores every changed unit, and
 * units the owner calls unused are neither kept nor restored. */
struct mem {
	unsigned char *b;
};

static int mem_read(void *o, void *buf, size_t len, uint64_t off)
{
	memcpy(buf, ((struct mem *)o)->b + off, len);
	return 0;
}

static int mem_write(void *o, const void *buf, size_t len, uint64_t off)
{
	memcpy(((struct mem *)o)->b + off, buf, len);
	return 0;
}

static int mem_flush(void *o)
{
	return 0;
}

static bool second_half_unused(void *o, uint64_t off, size_t len)
{
	return off >= 8 * GUNDO_UNIT;
}

static void undo_restores_what_it_kept(void **state)
{
	enum { SIZE = 16 * GUNDO_UNIT + 100 };
	static unsigned char disk[SIZE], orig[SIZE], junk[3 * GUNDO_UNIT];
	for (size_t i = 0; i < SIZE; i++)
		orig[i] = disk[i] = (unsigned char)(i * 7);
	memset(junk, 0xa5, sizeof(junk));
	struct mem m = {disk};
	struct gdev lower = {&m, mem_read, mem_write, mem_flush, SIZE}, up;
	struct gundo u;
	gundo_init(&up, &u, &lower);
	u.keep = true;
	u.unused = second_half_unused;
	u.last = 1024;
	assert_int_equal(gdev_write(&up, junk, 1500, 700), 0);		  /* units 0-2 */
	assert_int_equal(gdev_write(&up, junk, 10, 1000), 0);		  /* unit 0 again */
	assert_int_equal(gdev_write(&up, orig + 5000, 24, 5000), 0);	  /* unchanged */
	assert_int_equal(gdev_write(&up, junk, 2048, 9 * GUNDO_UNIT), 0); /* unused */
	assert_int_equal(gdev_write(&up, junk, 100, 16 * GUNDO_UNIT), 0); /* unused tail */
	assert_int_equal(gundo_kept(&u), 3);
	assert_int_equal(gundo_rollback(&u), 0);
	assert_memory_equal(disk, orig, 8 * GUNDO_UNIT);
	assert_memory_equal(disk + 9 * GUNDO_UNIT, junk, 2048);
	assert_int_equal(gundo_kept(&u), 0);
}

static int setup(void **state)
{
	char pathenv[4096];
	snprintf(pathenv, sizeof(pathenv), "/usr/sbin:/sbin:%s", getenv("PATH") ?: "/usr/bin");
	setenv("PATH", pathenv, 1);
	/* on tmpfs where there is one: each run flushes the image several times */
	strcpy(dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/kite-faults-XXXXXX"
						  : "/tmp/kite-faults-XXXXXX");
	assert_non_null(mkdtemp(dir));
	/* the image's tree */
	put_text("root/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
	put_text("root/etc/group", "root:x:0:\nsudo:x:27:\n");
	put_text("root/etc/shadow", "root:$6$abc$def:19000:0:99999:7:::\n");
	put_text("root/etc/hostname", "old-host\n");
	put_text("root/etc/hosts", "127.0.0.1 localhost\n127.0.1.1 old-host\n");
	put_text("root/etc/ssh/sshd_config", "Port 22\nPasswordAuthentication yes\n");
	put_text("root/data/old.txt", "the old text\n");
	put_random("root/data/f.bin", 100 * 1024, 1);
	put_random("root/data/d/one.bin", 30 * 1024, 2);
	put_text("root/data/d/two.txt", "two\n");
	put_text("root/data/d/e/three.txt", "three\n");
	assert_int_equal(symlink("two.txt", path_of("root/data/d/link")), 0);
	/* the host's files */
	put_text("src/hello.txt", "hello\n");
	put_text("src/data/old.txt", "a new text for the old file\n");
	put_text("src/tree/a.txt", "a\n");
	put_random("src/tree/sub/b.bin", 5 * 1024, 3);
	assert_int_equal(symlink("a.txt", path_of("src/tree/link")), 0);
	put_random("src/big.bin", 6 * 1024, 4);
	put_random("src/huge.bin", 6u << 20, 5);
	put_text("key.pub", "ssh-ed25519 "
			    "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl "
			    "user@host\n");
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "truncate -s 4M '%s' && mke2fs -q -F -t ext4 -d '%s' '%s'",
		 path_of("base.img"), path_of("root"), path_of("base.img"));
	assert_int_equal(run_quiet(cmd), 0);
	load_base();
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	free(base_data);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (getenv("TEST_FILTER")) /* runs the tests whose names match, e.g. "init*" */
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(undo_restores_what_it_kept),
	    cmocka_unit_test(copy_in_files_and_a_tree),
	    cmocka_unit_test(copy_in_replacing_a_file),
	    cmocka_unit_test(copy_in_more_than_fits),
	    cmocka_unit_test(write_a_new_file),
	    cmocka_unit_test(write_over_a_file),
	    cmocka_unit_test(mkdir_with_parents),
	    cmocka_unit_test(rm_files_and_a_tree),
	    cmocka_unit_test(ln_symbolic),
	    cmocka_unit_test(ln_hard),
	    cmocka_unit_test(init_a_user_with_keys),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

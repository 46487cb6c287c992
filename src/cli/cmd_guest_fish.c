/* kite guest fish: guestfish's shell over images. Its commands are kite guest's verbs (each
 * runs the verb's own code on the image and filesystem chosen with add and mount), plus the
 * session's own: add, run, mount, list-*, upload/download, edit. Interactive with line
 * editing, history and completion (libedit: BSD-licensed, Debian's readline-style library),
 * or a script from standard input or -f FILE, as guestfish. */
#include "cli/cmd_guest.h"
#include "guestfs/fsdetect.h"
#include "guestfs/image.h"
#include "guestfs/partition.h"
#include "guestfs/volume.h"
#include "util/err.h"

#include <editline/readline.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_DRIVES 16 /* /dev/sda .. /dev/sdp, as many as a machine has disks */
#define MAX_ARGS   64

struct fish {
	char *drives[MAX_DRIVES];
	char *formats[MAX_DRIVES]; /* each drive's (add's format:FMT, a machine's disk); NULL: probe
				    */
	int ndrives;
	const char *format; /* --format: for the drives added after it */
	bool ro;
	bool share; /* -d of a running machine with --ro: the drives open with force-share */
	bool launched;
	int root_drive;	     /* the drive whose filesystem is mounted at /, -1: none */
	char root_part[300]; /* its -a value ("" for the whole disk) */
};

struct fish_cmd {
	const char *name;
	int min, max; /* operands */
	int (*run)(struct fish *f, int argc, char **argv);
	const char *help;
};

static int need_launched(struct fish *f)
{
	if (!f->launched)
		return kite_error("call 'run' (or 'launch') before this command");
	return 0;
}

static int need_mounted(struct fish *f)
{
	if (need_launched(f) < 0)
		return -1;
	if (f->root_drive < 0)
		return kite_error("no filesystem is mounted on / (use 'mount DEVICE /')");
	return 0;
}

static int need_writable(struct fish *f)
{
	if (f->ro)
		return kite_error("the drives were added read-only (--ro)");
	return 0;
}

static int open_drive(struct fish *f, int i, struct gimage *im)
{
	return f->share ? gimage_open_shared(im, f->drives[i], f->formats[i])
			: gimage_open(im, f->drives[i], f->formats[i], false);
}

/* Runs a kite guest verb on the mounted filesystem: VERB IMAGE [-a PART] [--format F] [-U]
 * ARGS. */
static int run_verb(struct fish *f, int (*verb)(int, char **), const char *name, int argc,
		    char **argv)
{
	char *av[MAX_ARGS + 9];
	int n = 0;
	av[n++] = (char *)name;
	av[n++] = f->drives[f->root_drive];
	if (f->root_part[0]) {
		av[n++] = "-a";
		av[n++] = f->root_part;
	}
	if (f->formats[f->root_drive]) {
		av[n++] = "--format";
		av[n++] = f->formats[f->root_drive];
	}
	if (f->share)
		av[n++] = "-U";
	for (int i = 0; i < argc && n < MAX_ARGS + 8; i++)
		av[n++] = argv[i];
	av[n] = NULL;
	optind = 0; /* the verb parses its own options afresh */
	fflush(stdout);
	int rc = verb(n, av);
	fflush(stdout);
	return rc ? -1 : 0;
}

static int add_drive(struct fish *f, const char *path, const char *format)
{
	if (f->ndrives == MAX_DRIVES)
		return kite_error("at most %d drives", MAX_DRIVES);
	if (access(path, R_OK) < 0)
		return kite_error_errno(errno, "add: %s", path);
	int i = f->ndrives;
	f->drives[i] = strdup(path);
	f->formats[i] = format ? strdup(format) : NULL;
	if (!f->drives[i] || (format && !f->formats[i])) {
		free(f->drives[i]);
		free(f->formats[i]);
		return kite_error("out of memory");
	}
	f->ndrives++;
	return 0;
}

static int fish_add(struct fish *f, int argc, char **argv)
{
	if (f->launched)
		return kite_error("drives must be added before 'run'");
	const char *format = f->format;
	for (int i = 1; i < argc; i++) { /* guestfish's optional args: readonly:true format:F */
		if (!strcmp(argv[i], "readonly:true"))
			f->ro = true;
		else if (!strncmp(argv[i], "format:", 7))
			format = argv[i] + 7;
		else
			return kite_error("add: unknown optional argument '%s'", argv[i]);
	}
	return add_drive(f, argv[0], format);
}

/* -d DOMAIN: every disk of the machine, in its order (/dev/sda, /dev/sdb, ...). */
static int add_domain(struct fish *f, struct guest_common *c)
{
	c->ro = f->ro;
	c->format = f->format;
	if (guest_resolve(c, false) < 0)
		return -1;
	if (c->share && !f->ro)
		return kite_error("-U needs --ro here: the shell's commands may write");
	f->share = c->share;
	for (int i = 0; i < c->ndisks; i++)
		if (add_drive(f, c->disks[i].path, c->disks[i].format) < 0)
			return -1;
	return 0;
}

static int fish_run(struct fish *f, int argc, char **argv)
{
	if (!f->ndrives)
		return kite_error("no drives added (use 'add IMAGE' or -a IMAGE)");
	/* every drive opens (and is locked for a moment) now, as guestfish's appliance would */
	for (int i = 0; i < f->ndrives; i++) {
		struct gimage im;
		if (open_drive(f, i, &im) < 0)
			return -1;
		gimage_close(&im);
	}
	f->launched = true;
	return 0;
}

/* Calls fn(drive, device name, -a value, device) for each device of each drive: the whole
 * disk first, then its partitions and LVM2 logical volumes (guestfish's names: /dev/sdb3 for
 * the second drive's partition 3, /dev/VG/LV). `partitions_only` leaves out a disk that has
 * a partition table (it holds no filesystem of its own). */
typedef int (*device_fn)(struct fish *f, int drive, const char *dev, const char *part,
			 const struct gdev *d, void *arg);

static int each_device(struct fish *f, bool partitions_only, device_fn fn, void *arg)
{
	for (int i = 0; i < f->ndrives; i++) {
		struct gimage im;
		if (open_drive(f, i, &im) < 0)
			return -1;
		struct vol_list l;
		int r = vol_scan(&l, &im.dev, true);
		char disk[32];
		snprintf(disk, sizeof(disk), "/dev/sd%c", 'a' + i);
		if (r == 0 && (!partitions_only || !l.parts.count))
			r = fn(f, i, disk, "", &im.dev, arg);
		for (size_t k = 0; r == 0 && k < l.count; k++) {
			const struct volume *v = &l.v[k];
			if (v->kind == VOL_DISK)
				continue;
			char dev[320], part[300];
			if (v->kind == VOL_PART) {
				snprintf(dev, sizeof(dev), "%s%d", disk, v->part->number);
				snprintf(part, sizeof(part), "%d", v->part->number);
			} else {
				snprintf(dev, sizeof(dev), "%s", v->name);
				snprintf(part, sizeof(part), "%s", v->name);
			}
			struct gdev d;
			struct vol_dev vd;
			if (vol_open(&l, v, &im.dev, false, &d, &vd) < 0)
				continue; /* reported; the others still count */
			r = fn(f, i, dev, part, &d, arg);
			vol_close(&vd);
		}
		vol_list_free(&l);
		gimage_close(&im);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int print_device(struct fish *f, int drive, const char *dev, const char *part,
			const struct gdev *d, void *arg)
{
	bool want_parts = *(bool *)arg;
	if (want_parts == (part[0] != 0))
		printf("%s\n", dev);
	return 0;
}

static int fish_list_devices(struct fish *f, int argc, char **argv)
{
	bool parts = false;
	return need_launched(f) < 0 ? -1 : each_device(f, false, print_device, &parts);
}

static int fish_list_partitions(struct fish *f, int argc, char **argv)
{
	bool parts = true;
	return need_launched(f) < 0 ? -1 : each_device(f, false, print_device, &parts);
}

static int print_fs(struct fish *f, int drive, const char *dev, const char *part,
		    const struct gdev *d, void *arg)
{
	struct fsinfo fi;
	if (fs_detect(d, &fi) < 0)
		return -1;
	printf("%s: %s\n", dev, strcmp(fi.type, "none") ? fi.type : "unknown");
	return 0;
}

static int fish_list_filesystems(struct fish *f, int argc, char **argv)
{
	return need_launched(f) < 0 ? -1 : each_device(f, true, print_fs, NULL);
}

struct find_dev {
	const char *want;
	bool found;
};

static int match_device(struct fish *f, int drive, const char *dev, const char *part,
			const struct gdev *d, void *arg)
{
	struct find_dev *fd = arg;
	if (!fd->found && !strcmp(dev, fd->want)) {
		fd->found = true;
		f->root_drive = drive;
		snprintf(f->root_part, sizeof(f->root_part), "%s", part);
	}
	return 0;
}

static int fish_mount(struct fish *f, int argc, char **argv)
{
	if (need_launched(f) < 0)
		return -1;
	if (strcmp(argv[1], "/"))
		return kite_error("mount: only '/' can be a mount point here, not '%s'", argv[1]);
	struct find_dev fd = {.want = argv[0]};
	if (each_device(f, false, match_device, &fd) < 0)
		return -1;
	if (!fd.found)
		return kite_error("mount: %s: no such device", argv[0]);
	/* open it now, so that a device without a filesystem kite can read fails here */
	struct guest_common c = {.format = f->formats[f->root_drive],
				 .partition = f->root_part[0] ? f->root_part : NULL,
				 .image = f->drives[f->root_drive],
				 .share = f->share};
	struct gfs g;
	if (guest_open(&g, &c, false) < 0) {
		f->root_drive = -1;
		return -1;
	}
	return guest_finish(&g, 0) ? -1 : 0;
}

static int fish_umount(struct fish *f, int argc, char **argv)
{
	f->root_drive = -1;
	return 0;
}

/* ls, cat, ...: the verb of the same name on the mounted filesystem */
#define VERB_CMD(fn, verb, write, ...)                                                             \
	static int fn(struct fish *f, int argc, char **argv)                                       \
	{                                                                                          \
		char *extra[] = {__VA_ARGS__};                                                     \
		char *av[MAX_ARGS];                                                                \
		int n = 0;                                                                         \
		for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]) && extra[i]; i++)          \
			av[n++] = extra[i];                                                        \
		for (int i = 0; i < argc && n < MAX_ARGS - 1; i++)                                 \
			av[n++] = argv[i];                                                         \
		if (need_mounted(f) < 0 || (write && need_writable(f) < 0))                        \
			return -1;                                                                 \
		return run_verb(f, verb, #fn + 5, n, av);                                          \
	}

VERB_CMD(fish_ls, guest_ls, false, NULL)
VERB_CMD(fish_ll, guest_ls, false, "-l")
VERB_CMD(fish_cat, guest_cat, false, NULL)
VERB_CMD(fish_mkdir, guest_mkdir, true, NULL)
VERB_CMD(fish_mkdir_p, guest_mkdir, true, "-p")
VERB_CMD(fish_rm, guest_rm, true, NULL)
VERB_CMD(fish_rm_rf, guest_rm, true, "-r", "-f")
VERB_CMD(fish_chmod, guest_chmod, true, NULL)
VERB_CMD(fish_ln_s, guest_ln, true, "-s")
VERB_CMD(fish_ln, guest_ln, true, NULL)

/* df / df-h: every filesystem of every drive, as kite guest df reports them */
static int df_all(struct fish *f, bool human)
{
	if (need_launched(f) < 0)
		return -1;
	int rc = 0;
	for (int i = 0; i < f->ndrives; i++) {
		char *av[8] = {"df", f->drives[i]};
		int n = 2;
		if (f->formats[i]) {
			av[n++] = "--format";
			av[n++] = f->formats[i];
		}
		if (f->share)
			av[n++] = "-U";
		if (human)
			av[n++] = "-h";
		av[n] = NULL;
		optind = 0;
		fflush(stdout);
		if (guest_df(n, av) != 0)
			rc = -1;
		fflush(stdout);
	}
	return rc;
}

static int fish_df(struct fish *f, int argc, char **argv)
{
	return df_all(f, false);
}

static int fish_df_h(struct fish *f, int argc, char **argv)
{
	return df_all(f, true);
}

/* A temporary directory for upload/download/edit, removed with its one file afterwards. */
static char *temp_dir(void)
{
	const char *t = getenv("TMPDIR");
	char *d = NULL;
	if (asprintf(&d, "%s/kite-fish-XXXXXX", t && t[0] ? t : "/tmp") < 0)
		return NULL;
	if (!mkdtemp(d)) {
		kite_error_errno(errno, "%s", d);
		free(d);
		return NULL;
	}
	return d;
}

static void remove_temp(char *dir, const char *file)
{
	if (!dir)
		return;
	if (file) {
		char *p;
		if (asprintf(&p, "%s/%s", dir, file) >= 0) {
			unlink(p);
			free(p);
		}
	}
	rmdir(dir);
	free(dir);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static char *dir_name(const char *path)
{
	const char *s = strrchr(path, '/');
	if (!s)
		return strdup(".");
	return s == path ? strdup("/") : strndup(path, (size_t)(s - path));
}

static int copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb");
	if (!in)
		return kite_error_errno(errno, "%s", from);
	FILE *out = fopen(to, "wb");
	if (!out) {
		fclose(in);
		return kite_error_errno(errno, "%s", to);
	}
	char buf[65536];
	size_t n;
	int r = 0;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			r = kite_error_errno(errno, "%s", to);
	if (ferror(in))
		r = kite_error_errno(errno, "%s", from);
	fclose(in);
	if (fclose(out) != 0 && r == 0)
		r = kite_error_errno(errno, "%s", to);
	return r;
}

/* upload LOCAL REMOTE: the file goes in under REMOTE's name (copy-in keeps names) */
static int upload(struct fish *f, const char *local, const char *remote)
{
	char *tmp = temp_dir(), *dir = dir_name(remote), *staged = NULL;
	int r = -1;
	if (tmp && dir && asprintf(&staged, "%s/%s", tmp, base_name(remote)) >= 0 &&
	    copy_file(local, staged) == 0) {
		char *av[] = {staged, dir};
		r = run_verb(f, guest_copy_in, "copy-in", 2, av);
	}
	free(staged);
	free(dir);
	remove_temp(tmp, base_name(remote));
	return r;
}

/* download REMOTE LOCAL: copy-out into a temporary directory, then the file where asked */
static int download(struct fish *f, const char *remote, const char *local)
{
	char *tmp = temp_dir(), *got = NULL;
	int r = -1;
	if (tmp && asprintf(&got, "%s/%s", tmp, base_name(remote)) >= 0) {
		char *av[] = {(char *)remote, tmp};
		if (run_verb(f, guest_copy_out, "copy-out", 2, av) == 0)
			r = copy_file(got, local);
	}
	free(got);
	remove_temp(tmp, base_name(remote));
	return r;
}

static int fish_upload(struct fish *f, int argc, char **argv)
{
	if (need_mounted(f) < 0 || need_writable(f) < 0)
		return -1;
	return upload(f, argv[0], argv[1]);
}

static int fish_download(struct fish *f, int argc, char **argv)
{
	return need_mounted(f) < 0 ? -1 : download(f, argv[0], argv[1]);
}

/* write PATH CONTENT: the verb reads the content from standard input */
static int fish_write(struct fish *f, int argc, char **argv)
{
	if (need_mounted(f) < 0 || need_writable(f) < 0)
		return -1;
	char *tmp = temp_dir(), *staged = NULL;
	int r = -1;
	if (tmp && asprintf(&staged, "%s/content", tmp) >= 0) {
		FILE *o = fopen(staged, "wb");
		if (o && fwrite(argv[1], 1, strlen(argv[1]), o) == strlen(argv[1]) &&
		    fclose(o) == 0) {
			r = upload(f, staged, argv[0]);
		} else {
			if (o)
				fclose(o);
			kite_error_errno(errno, "%s", staged);
		}
	}
	free(staged);
	remove_temp(tmp, "content");
	return r;
}

/* edit PATH: $EDITOR (else vi) on a copy; the file goes back only if it changed */
static int fish_edit(struct fish *f, int argc, char **argv)
{
	if (need_mounted(f) < 0 || need_writable(f) < 0)
		return -1;
	char *tmp = temp_dir(), *local = NULL;
	int r = -1;
	if (!tmp || asprintf(&local, "%s/%s", tmp, base_name(argv[0])) < 0 ||
	    download(f, argv[0], local) < 0)
		goto out;
	struct stat before, after;
	if (stat(local, &before) < 0)
		goto out;
	const char *editor = getenv("EDITOR");
	pid_t pid = fork();
	if (pid == 0) {
		execlp(editor && editor[0] ? editor : "vi", editor && editor[0] ? editor : "vi",
		       local, (char *)NULL);
		_exit(127);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		kite_error("edit: the editor failed");
		goto out;
	}
	if (stat(local, &after) < 0)
		goto out;
	r = 0;
	if (after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
	    after.st_mtim.tv_nsec != before.st_mtim.tv_nsec || after.st_size != before.st_size)
		r = upload(f, local, argv[0]);
out:
	free(local);
	remove_temp(tmp, base_name(argv[0]));
	return r;
}

static int fish_help(struct fish *f, int argc, char **argv);

static int fish_quit(struct fish *f, int argc, char **argv)
{
	return 1; /* ends the shell */
}

static const struct fish_cmd commands[] = {
    {"add", 1, 3, fish_add, "IMAGE [readonly:true] [format:FMT]  add a drive (/dev/sda, sdb...)"},
    {"add-drive", 1, 3, fish_add, "IMAGE [readonly:true] [format:FMT]  = add"},
    {"run", 0, 0, fish_run, "open the drives (after add)"},
    {"launch", 0, 0, fish_run, "= run"},
    {"list-devices", 0, 0, fish_list_devices, "the drives"},
    {"list-partitions", 0, 0, fish_list_partitions, "their partitions"},
    {"list-filesystems", 0, 0, fish_list_filesystems, "each device's filesystem"},
    {"mount", 2, 2, fish_mount, "DEVICE /  the filesystem the commands below work on"},
    {"umount", 0, 1, fish_umount, "[/]"},
    {"ls", 1, 1, fish_ls, "DIR"},
    {"ll", 1, 1, fish_ll, "DIR  (long listing)"},
    {"cat", 1, 1, fish_cat, "FILE"},
    {"df", 0, 0, fish_df, "every filesystem's use"},
    {"df-h", 0, 0, fish_df_h, "the same in human sizes"},
    {"write", 2, 2, fish_write, "FILE CONTENT  (replaces the file)"},
    {"upload", 2, 2, fish_upload, "LOCALFILE FILE"},
    {"download", 2, 2, fish_download, "FILE LOCALFILE"},
    {"edit", 1, 1, fish_edit, "FILE  ($EDITOR on a copy)"},
    {"vi", 1, 1, fish_edit, "= edit"},
    {"mkdir", 1, MAX_ARGS - 2, fish_mkdir, "DIR..."},
    {"mkdir-p", 1, MAX_ARGS - 2, fish_mkdir_p, "DIR..."},
    {"rm", 1, MAX_ARGS - 2, fish_rm, "FILE..."},
    {"rm-rf", 1, MAX_ARGS - 2, fish_rm_rf, "PATH..."},
    {"chmod", 2, MAX_ARGS - 2, fish_chmod, "MODE PATH..."},
    {"ln", 2, 2, fish_ln, "TARGET LINKNAME"},
    {"ln-s", 2, 2, fish_ln_s, "TARGET LINKNAME"},
    {"help", 0, 1, fish_help, "[COMMAND]"},
    {"quit", 0, 0, fish_quit, ""},
    {"exit", 0, 0, fish_quit, "= quit"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static int fish_help(struct fish *f, int argc, char **argv)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!argc || !strcmp(argv[0], commands[i].name))
			printf("%-18s %s\n", commands[i].name, commands[i].help);
	return 0;
}

static char unescape(char c)
{
	switch (c) {
	case 'n':
		return '\n';
	case 't':
		return '\t';
	case 'r':
		return '\r';
	default:
		return c; /* \\, \", ... */
	}
}

/* Splits a line into words: blanks separate, "double" and 'single' quotes group, and in
 * double quotes \n, \t, \r, \\ and \" mean what they do in C. Returns the count, -1 on
 * an unterminated quote. */
static int split(char *line, char **argv, int max)
{
	int n = 0;
	char *out = line, *p = line;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			break;
		if (n == max)
			return kite_error("too many arguments");
		argv[n++] = out;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '"' || *p == '\'') {
				char q = *p++;
				while (*p && *p != q) {
					if (q == '"' && *p == '\\' && p[1]) {
						p++;
						*out++ = unescape(*p++);
						continue;
					}
					*out++ = *p++;
				}
				if (*p != q)
					return kite_error("unterminated quote");
				p++;
			} else {
				*out++ = *p++;
			}
		}
		if (*p)
			p++;
		*out++ = '\0';
	}
	return n;
}

/* One command line: 0 done, -1 it failed, 1 quit. A leading '-' keeps a failure from ending
 * a script, as in guestfish. */
static int execute(struct fish *f, char *line, bool *ignore_error)
{
	char *argv[MAX_ARGS];
	int argc = split(line, argv, MAX_ARGS);
	*ignore_error = false;
	if (argc <= 0)
		return argc;
	if (argv[0][0] == '-') {
		*ignore_error = true;
		argv[0]++;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct fish_cmd *c = &commands[i];
		if (strcmp(argv[0], c->name))
			continue;
		if (argc - 1 < c->min || argc - 1 > c->max)
			return kite_error("%s: wrong number of arguments (usage: %s %s)", c->name,
					  c->name, c->help);
		return c->run(f, argc - 1, argv + 1);
	}
	return kite_error("%s: unknown command (try 'help')", argv[0]);
}

static char *complete_command(const char *text, int state)
{
	static size_t i, len;
	if (!state) {
		i = 0;
		len = strlen(text);
	}
	while (i < NCOMMANDS) {
		const char *name = commands[i++].name;
		if (!strncmp(name, text, len))
			return strdup(name);
	}
	return NULL;
}

static char **complete(const char *text, int start, int end)
{
	if (start == 0)
		return rl_completion_matches(text, complete_command);
	return NULL; /* file names otherwise */
}

static int shell(struct fish *f, FILE *script)
{
	bool interactive = !script && isatty(STDIN_FILENO);
	if (interactive) {
		rl_attempted_completion_function = complete;
		printf("\nWelcome to kite guest fish, the guestfish shell of kite.\n"
		       "Type 'help' for the commands, 'quit' to leave.\n\n");
	}
	int rc = 0;
	for (;;) {
		char *line = NULL;
		size_t cap = 0;
		if (interactive) {
			line = readline("><fs> ");
			if (!line)
				break;
			if (line[0])
				add_history(line);
		} else if (getline(&line, &cap, script ? script : stdin) < 0) {
			free(line);
			break;
		}
		line[strcspn(line, "\n")] = '\0';
		bool ignore;
		int r = execute(f, line, &ignore);
		free(line);
		if (r > 0)
			break;
		if (r < 0 && !ignore && !interactive) {
			rc = 1; /* a script stops at its first failure, as guestfish's does */
			break;
		}
	}
	return rc;
}

#define FISH_USAGE "[-a IMAGE]... [-d DOMAIN] [--ro] [--format FMT] [-m DEVICE] [-i] [-f SCRIPT]"

int guest_fish(int argc, char **argv)
{
	enum { OPT_FORMAT = 1000, OPT_STATE_DIR, OPT_RUNTIME_DIR };
	static const struct option longopts[] = {
	    {"add", required_argument, NULL, 'a'},
	    {"domain", required_argument, NULL, 'd'},
	    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
	    {"runtime-dir", required_argument, NULL, OPT_RUNTIME_DIR},
	    {"ro", no_argument, NULL, 'r'},
	    {"format", required_argument, NULL, OPT_FORMAT},
	    {"mount", required_argument, NULL, 'm'},
	    {"inspector", no_argument, NULL, 'i'},
	    {"file", required_argument, NULL, 'f'},
	    {NULL, 0, NULL, 0}};
	struct fish f = {.root_drive = -1};
	struct guest_common dom = {0};
	const char *mount = NULL, *script_path = NULL;
	bool inspect = false;
	int opt, rc = 1;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "a:d:rm:if:", longopts, NULL)) != -1) {
		char *one[] = {optarg};
		switch (opt) {
		case 'a':
			if (fish_add(&f, 1, one) < 0)
				goto out;
			break;
		case 'd':
			dom.domain = optarg;
			break;
		case OPT_STATE_DIR:
			dom.state_dir = optarg;
			break;
		case OPT_RUNTIME_DIR:
			dom.runtime_dir = optarg;
			break;
		case 'r':
			f.ro = true;
			break;
		case OPT_FORMAT:
			f.format = optarg;
			break;
		case 'm':
			mount = optarg;
			break;
		case 'i':
			inspect = true;
			break;
		case 'f':
			script_path = optarg;
			break;
		default:
			return guest_usage_error("fish", FISH_USAGE);
		}
	}
	if (optind != argc)
		return guest_usage_error("fish", FISH_USAGE);
	if (dom.domain && add_domain(&f, &dom) < 0)
		goto out;
	if ((mount || inspect) && (fish_run(&f, 0, NULL) < 0))
		goto out;
	if (mount) {
		char *margs[] = {(char *)mount, "/"};
		if (fish_mount(&f, 2, margs) < 0)
			goto out;
	} else if (inspect) {
		/* -i: the filesystem kite guest's verbs pick by default (holding /etc/os-release,
		 * else the largest) */
		struct gfs_disk disks[MAX_DRIVES];
		for (int i = 0; i < f.ndrives; i++)
			disks[i] = (struct gfs_disk){f.drives[i], f.formats[i]};
		char part[300];
		int i = gfs_disks_pick(disks, f.ndrives, NULL, f.share, part, sizeof(part));
		if (i < 0)
			goto out;
		struct guest_common c = {.format = f.formats[i],
					 .partition = part[0] ? part : NULL,
					 .image = f.drives[i],
					 .share = f.share};
		struct gfs g;
		if (guest_open(&g, &c, false) < 0)
			goto out;
		f.root_drive = i;
		f.root_part[0] = '\0';
		if (part[0]) /* several drives: the volume on drive i */
			snprintf(f.root_part, sizeof(f.root_part), "%s", part);
		else if (strcmp(g.volname, "/dev/sda"))
			snprintf(f.root_part, sizeof(f.root_part), "%s", g.volname);
		if (guest_finish(&g, 0))
			goto out;
	}
	FILE *script = NULL;
	if (script_path && !(script = fopen(script_path, "r"))) {
		kite_error_errno(errno, "%s", script_path);
		goto out;
	}
	rc = shell(&f, script);
	if (script)
		fclose(script);
out:
	for (int i = 0; i < f.ndrives; i++) {
		free(f.drives[i]);
		free(f.formats[i]);
	}
	return rc;
}

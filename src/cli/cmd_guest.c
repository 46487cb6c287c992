/* `kite guest VERB IMAGE ...`: look inside and provision disk images without booting them. */
#include "cli/cmd_guest.h"
#include "cli/commands.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} verbs[] = {
    {"partitions", guest_partitions, "IMAGE [--output=json]"},
    {"filesystems", guest_filesystems, "IMAGE [--output=json]"},
    {"ls", guest_ls, "IMAGE PATH [-l] [-R]"},
    {"cat", guest_cat, "IMAGE PATH"},
    {"df", guest_df, "IMAGE [-a PARTITION] [-h] [-i] [--csv]"},
    {"copy-out", guest_copy_out, "IMAGE PATH... HOSTDIR"},
    {"copy-in", guest_copy_in, "IMAGE HOSTPATH... DIR"},
    {"write", guest_write, "IMAGE PATH < DATA"},
    {"mkdir", guest_mkdir, "IMAGE [-p] PATH..."},
    {"rm", guest_rm, "IMAGE [-r] [-f] PATH..."},
    {"chmod", guest_chmod, "IMAGE MODE PATH..."},
    {"chown", guest_chown, "IMAGE OWNER[:GROUP] PATH... (names from the image)"},
    {"ln", guest_ln, "IMAGE [-s] TARGET LINKPATH"},
    {"init", guest_init, "IMAGE [--ssh-port N] [--user NAME [--group G]] [...]"},
    {"mount", guest_mount, "IMAGE MOUNTPOINT [-m DEVICE] [--ro] [-f]"},
    {"fish", guest_fish, "[-a IMAGE]... [--ro] [-m DEVICE] [-i] [-f SCRIPT]  (guestfish)"},
};

#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

static void usage(FILE *out)
{
	fprintf(out, "usage: kite guest VERB IMAGE [ARGS]\n\nverbs:\n");
	for (size_t i = 0; i < NVERBS; i++)
		fprintf(out, "  %-12s %s\n", verbs[i].name, verbs[i].usage);
	fprintf(out, "\nOptions for verbs that open a filesystem:\n"
		     "  -a PARTITION   the partition (1, sda1, /dev/sda1) or LVM2 logical volume\n"
		     "                 (/dev/VG/LV, /dev/mapper/VG-LV); default: the one holding\n"
		     "                 /etc/os-release, else the largest ext2/3/4 filesystem\n"
		     "  --format FMT   image format (raw, qcow2, vmdk); default: probed\n");
}

int guest_usage_error(const char *verb, const char *use)
{
	kite_error("usage: kite guest %s %s", verb, use);
	return 1;
}

int guest_common_opt(struct guest_common *c, int opt, const char *arg)
{
	switch (opt) {
	case 'a':
		c->partition = arg;
		return 1;
	case GUEST_OPT_FORMAT:
		c->format = arg;
		return 1;
	default:
		return 0;
	}
}

int guest_open(struct gfs *g, const char *image, const struct guest_common *c, bool write)
{
	struct gfs_opts o = {.format = c->format, .partition = c->partition, .write = write};
	return gfs_open(g, image, &o);
}

int guest_open_session(struct gfs *g, const char *image, const struct guest_common *c, bool write)
{
	struct gfs_opts o = {
	    .format = c->format, .partition = c->partition, .write = write, .session = true};
	return gfs_open(g, image, &o);
}

int guest_finish(struct gfs *g, int rc)
{
	if (rc) {
		gfs_abort(g); /* a failed verb leaves the image as it was */
		return rc;
	}
	return gfs_close(g) < 0 ? 1 : 0;
}

int cmd_guest(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < NVERBS; i++) {
		if (!strcmp(argv[1], verbs[i].name)) {
			for (int a = 2; a < argc && strcmp(argv[a], "--"); a++) {
				if (!strcmp(argv[a], "--help")) {
					printf("usage: kite guest %s %s\n", verbs[i].name,
					       verbs[i].usage);
					return 0;
				}
			}
			optind = 0; /* each verb parses its own options with getopt_long */
			return verbs[i].fn(argc - 1, argv + 1);
		}
	}
	kite_error("unknown verb 'guest %s' (try 'kite guest --help')", argv[1]);
	return 1;
}

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
    {"fish", guest_fish, "[-a IMAGE | -d DOMAIN]... [--ro] [-m DEVICE] [-i] [-f SCRIPT]"},
    {"v2v", guest_v2v, "-i ova FILE.ova -o local|kite -os DIR [-of FMT] [-on NAME] --kernel F"},
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
		     "  --format FMT   image format (raw, qcow2, vmdk); default: probed\n"
		     "  -d DOMAIN      instead of IMAGE: the disks of machine DOMAIN (/dev/sda,\n"
		     "                 /dev/sdb, ... in its order); a running one only with --ro\n"
		     "  --ro           only read; a running machine's disks with force-share\n"
		     "  -U             (--force-share) read an IMAGE another process uses\n"
		     "  --state-dir DIR, --runtime-dir DIR   where -d finds machines\n");
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
	case 'd':
		c->domain = arg;
		return 1;
	case 'U':
		c->share = true;
		return 1;
	case GUEST_OPT_RO:
		c->ro = true;
		return 1;
	case GUEST_OPT_FORMAT:
		c->format = arg;
		return 1;
	case GUEST_OPT_STATE_DIR:
		c->state_dir = arg;
		return 1;
	case GUEST_OPT_RUNTIME_DIR:
		c->runtime_dir = arg;
		return 1;
	default:
		return 0;
	}
}

int guest_take_image(struct guest_common *c, int argc, char **argv)
{
	if (c->domain)
		return 0;
	if (optind >= argc)
		return -1;
	c->image = argv[optind++];
	return 0;
}

int guest_open_disk(const struct guest_common *c, int i, struct gimage *im)
{
	const struct gfs_disk *d = &c->disks[i];
	return c->share ? gimage_open_shared(im, d->path, d->format)
			: gimage_open(im, d->path, d->format, false);
}

static int open_fs(struct gfs *g, struct guest_common *c, bool write, bool session)
{
	char part[300];
	if (guest_resolve(c, write) < 0)
		return -1;
	int i = gfs_disks_pick(c->disks, c->ndisks, c->partition, c->share, part, sizeof(part));
	if (i < 0)
		return -1;
	struct gfs_opts o = {.format = c->disks[i].format,
			     .partition = part[0] ? part : NULL,
			     .write = write,
			     .session = session,
			     .share = c->share,
			     .disk_index = i};
	return gfs_open(g, c->disks[i].path, &o);
}

int guest_open(struct gfs *g, struct guest_common *c, bool write)
{
	return open_fs(g, c, write, false);
}

int guest_open_session(struct gfs *g, struct guest_common *c, bool write)
{
	return open_fs(g, c, write, true);
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

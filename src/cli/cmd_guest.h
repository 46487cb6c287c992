/* Shared pieces of the `kite guest` verbs (one file per group of verbs). */
#ifndef KITE_CLI_CMD_GUEST_H
#define KITE_CLI_CMD_GUEST_H

#include "guestfs/fs.h"

#include <getopt.h>
#include <stdbool.h>

/* Options every verb that opens a filesystem accepts: -a PARTITION, --format FMT, -d DOMAIN
 * (the machine's disks instead of IMAGE), --ro, -U (--force-share), --state-dir,
 * --runtime-dir. */
#define GUEST_COMMON_SHORT    "a:d:U"
#define GUEST_OPT_FORMAT      1000
#define GUEST_OPT_RO	      1001
#define GUEST_OPT_STATE_DIR   1002
#define GUEST_OPT_RUNTIME_DIR 1003
#define GUEST_COMMON_LONG                                                                          \
	{"format", required_argument, NULL, GUEST_OPT_FORMAT},                                     \
	    {"domain", required_argument, NULL, 'd'}, {"ro", no_argument, NULL, GUEST_OPT_RO},     \
	    {"force-share", no_argument, NULL, 'U'},                                               \
	    {"state-dir", required_argument, NULL, GUEST_OPT_STATE_DIR},                           \
	    {"runtime-dir", required_argument, NULL, GUEST_OPT_RUNTIME_DIR},                       \
	{                                                                                          \
		"help", no_argument, NULL, 'H'                                                     \
	}

struct guest_common {
	const char *format;
	const char *partition;
	const char *image;  /* the IMAGE operand (guest_take_image); NULL with -d */
	const char *domain; /* -d */
	const char *state_dir, *runtime_dir;
	bool ro;    /* --ro: only read; a running machine's disks are read with force-share */
	bool share; /* -U, or --ro on a running machine: images open read-only while in use */
	/* guest_resolve: the disks (IMAGE alone, or the machine's in order: /dev/sda, sdb...) */
	const struct gfs_disk *disks;
	int ndisks;
	struct gfs_disk one;
};

/* Handles a common option; returns 1 if `opt` was one, 0 if not. */
int guest_common_opt(struct guest_common *c, int opt, const char *arg);
/* After the options: takes the IMAGE operand (argv[optind], optind moves past it) unless -d
 * names a machine. Returns 0, or -1 (nothing printed) when there is none. */
int guest_take_image(struct guest_common *c, int argc, char **argv);
/* The disks a verb works on (c->disks), and with -d the machine's rules: a running machine's
 * disks are not written, and are read only with --ro (force-share). Returns 0 or -1. */
int guest_resolve(struct guest_common *c, bool write);
/* Opens disk `i` of c->disks (after guest_resolve) for a verb that reads whole disks. */
int guest_open_disk(const struct guest_common *c, int i, struct gimage *im);

/* Opens the filesystem the verb works on: IMAGE's, or the one chosen among the machine's
 * disks (gfs_disks_pick). */
int guest_open(struct gfs *g, struct guest_common *c, bool write);
/* For kite guest mount: writes reach the image as they come and cannot be taken back. */
int guest_open_session(struct gfs *g, struct guest_common *c, bool write);
/* Ends the verb and returns its exit code: with rc 0 the change is written back (1 if that
 * fails, and then the image is left as it was); otherwise the change is taken back whole
 * and rc is returned. */
int guest_finish(struct gfs *g, int rc);

int guest_usage_error(const char *verb, const char *usage);

int guest_partitions(int argc, char **argv);
int guest_filesystems(int argc, char **argv);
int guest_ls(int argc, char **argv);
int guest_cat(int argc, char **argv);
int guest_df(int argc, char **argv);
int guest_copy_out(int argc, char **argv);
int guest_copy_in(int argc, char **argv);
int guest_write(int argc, char **argv);
int guest_mkdir(int argc, char **argv);
int guest_rm(int argc, char **argv);
int guest_chmod(int argc, char **argv);
int guest_chown(int argc, char **argv);
int guest_ln(int argc, char **argv);
int guest_init(int argc, char **argv);
int guest_mount(int argc, char **argv);
int guest_fish(int argc, char **argv);
int guest_v2v(int argc, char **argv);

#endif

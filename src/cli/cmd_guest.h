/* Shared pieces of the `kite guest` verbs (one file per group of verbs). */
#ifndef KITE_CLI_CMD_GUEST_H
#define KITE_CLI_CMD_GUEST_H

#include "guestfs/fs.h"

#include <getopt.h>
#include <stdbool.h>

/* Options every verb that opens a filesystem accepts: -a PARTITION, --format FMT. */
#define GUEST_COMMON_SHORT "a:"
#define GUEST_OPT_FORMAT   1000
#define GUEST_COMMON_LONG                                                                          \
	{"format", required_argument, NULL, GUEST_OPT_FORMAT},                                     \
	{                                                                                          \
		"help", no_argument, NULL, 'H'                                                     \
	}

struct guest_common {
	const char *format;
	const char *partition;
};

/* Handles a common option; returns 1 if `opt` was one, 0 if not. */
int guest_common_opt(struct guest_common *c, int opt, const char *arg);

/* Opens the filesystem of `image` for the verb. */
int guest_open(struct gfs *g, const char *image, const struct guest_common *c, bool write);
/* For kite guest mount: writes reach the image as they come and cannot be taken back. */
int guest_open_session(struct gfs *g, const char *image, const struct guest_common *c, bool write);
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

#endif

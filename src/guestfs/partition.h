/* Partition tables: MBR (primary, extended and the chain of logical partitions) and GPT (primary
 * header, falling back to the backup header when the primary is damaged). Parsing only reads
 * through a struct gdev and treats every field as hostile. */
#ifndef KITE_GUESTFS_PARTITION_H
#define KITE_GUESTFS_PARTITION_H

#include "guestfs/dev.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum part_kind { PART_PRIMARY, PART_EXTENDED, PART_LOGICAL, PART_GPT };

struct part {
	int number; /* 1..4 primary, 5.. logical (as Linux names them); GPT: entry index + 1 */
	enum part_kind kind;
	uint64_t start; /* bytes from the start of the disk */
	uint64_t size;	/* bytes */
	bool bootable;	/* MBR active flag */
	uint8_t mbr_type;
	char type_guid[37]; /* GPT only */
	char uuid[37];	    /* GPT only */
	char name[109];	    /* GPT only: the UTF-16 name as UTF-8 */
};

struct part_table {
	char scheme[5]; /* "mbr", "gpt" or "none" (a filesystem on the whole disk) */
	unsigned sector_size;
	char disk_guid[37]; /* GPT only */
	bool used_backup;   /* GPT: the primary header was damaged, the backup was used */
	size_t count;
	struct part *parts;
};

/* Fills `t` (free with part_table_free). Returns -1 with an error for a damaged table that
 * cannot be read at all; a disk without a table is scheme "none" with no partitions. */
int part_scan(const struct gdev *dev, struct part_table *t);
void part_table_free(struct part_table *t);

/* The partition with Linux number `number`, or NULL. */
const struct part *part_find(const struct part_table *t, int number);

/* A human-readable name for the partition's type ("Linux filesystem", "EFI System", ...), or
 * NULL when unknown. */
const char *part_type_name(const struct part *p);

#endif

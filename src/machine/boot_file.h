/* Read-only views of the files kite boots (kernel, initrd): mapped, not copied. */
#ifndef KITE_MACHINE_BOOT_FILE_H
#define KITE_MACHINE_BOOT_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct boot_file {
	const uint8_t *data; /* NULL for an empty file */
	size_t len;
	struct stat st;
};

/* Maps `path` (a regular file). Returns 0, or -1 with "kite: error: <path>: <why>". */
int boot_file_map(const char *path, struct boot_file *f);
void boot_file_unmap(struct boot_file *f);

#endif

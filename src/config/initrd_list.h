/* `--initrd` as QEMU reads it for a multiboot kernel: a list of boot modules,
 *
 *     FILE[ ARGS][,FILE[ ARGS]]...        (",," stands for a comma)
 *
 * each module's string being "FILE ARGS" as written, its file the first word. A Linux kernel
 * takes the value as one file name. */
#ifndef KITE_CONFIG_INITRD_LIST_H
#define KITE_CONFIG_INITRD_LIST_H

#include <stdbool.h>

#define INITRD_MAX_MODULES 64

struct initrd_module {
	char *string; /* "FILE ARGS", commas undoubled */
	char *path;   /* FILE */
};

/* Splits `value` into `out` (room for `max`). Returns the count, or -1 with an error naming
 * `ctx` (an empty module, more than `max`, out of memory). */
int initrd_list_parse(const char *value, struct initrd_module *out, int max, const char *ctx);
void initrd_list_free(struct initrd_module *l, int n);
/* The value that parses back to `l` (commas doubled); NULL when out of memory. */
char *initrd_list_format(const struct initrd_module *l, int n);
/* True when the value names more than one file or gives a module arguments, so it can only be
 * a module list. */
bool initrd_list_is_list(const char *value);

#endif

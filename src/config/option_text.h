/* The text form the option grammars share: "FIRST,key=value,key=value" where ",," stands for
 * a comma inside an item (QEMU's escape), and on/off booleans. Private to config/. */
#ifndef KITE_CONFIG_OPTION_TEXT_H
#define KITE_CONFIG_OPTION_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* The next item of *p (unescaped), advancing *p past its comma. NULL when out of memory
 * (reported). An empty *p gives "". */
char *option_next_item(const char **p);
/* "on" or "off"; `value` NULL (a bare key) means on. Reports with `ctx`. 0 or -1. */
int option_parse_bool(const char *value, bool *out, const char *ctx);
/* Appends ",key=value" (or the item alone with key NULL) to *spec, doubling commas in the
 * value. Returns 0 or -1 (out of memory, reported; *spec freed and NULL). */
int option_append(char **spec, const char *key, const char *value);

#endif

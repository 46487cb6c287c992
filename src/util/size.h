#ifndef KITE_UTIL_SIZE_H
#define KITE_UTIL_SIZE_H

#include <stdint.h>

/* Parses a size such as "512M", "2G", "4096", "1.5G", "0x10000" (suffixes B, K, M, G, T, P,
 * E, case insensitive, optional "iB"/"B"), as qemu-img does. `default_unit` is the multiplier for a
 * bare number (1 for bytes, 1 << 20 for MiB as `kite run -m` takes). Returns 0 or -1 (bad
 * syntax or overflow). */
int parse_size(const char *s, uint64_t default_unit, uint64_t *out);

/* QEMU's qemu_strtosz() grammar, for options whose errors must read as qemu-img's (dd's
 * operands, bitmap -g): a decimal number (or 0x hex, without fraction or suffix), an
 * optional fraction that needs a suffix, one suffix letter B K M G T P E (either case, no
 * "iB"), nothing after it; leading blanks and '+' pass, '-' does not. Returns 0, -EINVAL
 * (not a size) or -ERANGE (does not fit in 64 bits). */
int parse_size_qemu(const char *s, uint64_t *out);

#endif

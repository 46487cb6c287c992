/* Error reporting. Library code prints what went wrong with kite_error() and returns an
 * error value; only main() decides to exit. */
#ifndef KITE_UTIL_ERR_H
#define KITE_UTIL_ERR_H

#include <stdarg.h>

/* Prints "kite: error: <formatted message>\n" to stderr. Returns -1 so that callers can
 * `return kite_error(...)`. */
int kite_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "kite: error: <formatted message>: <strerror(errnum)>\n"; returns -1. */
int kite_error_errno(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "kite: warning: <formatted message>\n". */
/* The message of the last kite_error()/kite_error_errno() on this thread (without the
 * "kite: error: " prefix), or "failed" when there was none. */
const char *kite_last_error(void);

void kite_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "kite: <formatted message>\n" (notices such as the PVM note). */
void kite_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

#include "util/err.h"

#include <stdio.h>
#include <string.h>

static void vprint(const char *prefix, const char *fmt, va_list ap, const char *suffix)
{
	fputs(prefix, stderr);
	vfprintf(stderr, fmt, ap);
	if (suffix) {
		fputs(": ", stderr);
		fputs(suffix, stderr);
	}
	fputc('\n', stderr);
}

int kite_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint("kite: error: ", fmt, ap, NULL);
	va_end(ap);
	return -1;
}

int kite_error_errno(int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint("kite: error: ", fmt, ap, strerror(errnum));
	va_end(ap);
	return -1;
}

void kite_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint("kite: warning: ", fmt, ap, NULL);
	va_end(ap);
}

void kite_notice(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint("kite: ", fmt, ap, NULL);
	va_end(ap);
}

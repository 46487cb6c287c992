#include "util/err.h"

#include <stdio.h>
#include <string.h>

/* The last error this thread printed, for callers that pass it on (a control reply). */
static __thread char last_error[512];

const char *kite_last_error(void)
{
	return last_error[0] ? last_error : "failed";
}

static void remember(const char *fmt, va_list ap, const char *suffix)
{
	va_list copy;
	va_copy(copy, ap);
	int n = vsnprintf(last_error, sizeof(last_error), fmt, copy);
	va_end(copy);
	if (suffix && n >= 0 && (size_t)n < sizeof(last_error))
		snprintf(last_error + n, sizeof(last_error) - (size_t)n, ": %s", suffix);
}

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
	remember(fmt, ap, NULL);
	vprint("kite: error: ", fmt, ap, NULL);
	va_end(ap);
	return -1;
}

int kite_error_errno(int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	remember(fmt, ap, strerror(errnum));
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

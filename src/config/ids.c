/* Names, random UUIDs (version 4) and locally administered MAC addresses for machines. */
#include "config/machine_config.h"
#include "util/err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

bool machine_name_check_quiet(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > MACHINE_NAME_MAX || name[0] == '.')
		return false;
	return strspn(name, NAME_CHARS) == len;
}

int machine_name_check(const char *name)
{
	if (machine_name_check_quiet(name))
		return 0;
	/* Say what is wrong with it. */
	size_t len = strlen(name);
	if (len == 0)
		return kite_error("machine name is empty");
	if (len > MACHINE_NAME_MAX)
		return kite_error("machine name '%.20s...' is longer than %d characters", name,
				  MACHINE_NAME_MAX);
	if (name[0] == '.')
		return kite_error("machine name '%s' starts with a dot", name);
	char c = name[strspn(name, NAME_CHARS)];
	return kite_error("machine name '%s': character '%c' is not allowed (use letters, digits, "
			  "'.', '_', '-')",
			  name, c);
}

static int random_bytes(void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = getrandom((char *)buf + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kite_error_errno(errno, "getrandom");
		got += (size_t)n;
	}
	return 0;
}

int uuid_generate_str(char out[37])
{
	uint8_t b[16];
	if (random_bytes(b, sizeof(b)) < 0)
		return -1;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

bool uuid_valid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

int mac_generate(uint8_t mac[6])
{
	/* 52:54:00 is the prefix QEMU and libvirt use for guests (locally administered). */
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	return random_bytes(mac + 3, 3);
}

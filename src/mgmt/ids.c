/* Random UUIDs (version 4) and locally administered MAC addresses for definitions. */
#include "mgmt/machine_def.h"
#include "util/err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

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

int mac_generate_str(char out[18])
{
	uint8_t b[3];
	if (random_bytes(b, sizeof(b)) < 0)
		return -1;
	/* 52:54:00 is the prefix QEMU and libvirt use for guests (locally administered). */
	snprintf(out, 18, "52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]);
	return 0;
}

bool mac_valid(const char *s)
{
	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	unsigned first;
	if (sscanf(s, "%2x", &first) != 1)
		return false;
	return (first & 1) == 0; /* a multicast address cannot be a NIC's */
}

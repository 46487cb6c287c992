/* Random UUIDs (version 4) and locally administered MAC addresses for definitions. */
#include "mgmt/machine_def.h"
#include "util/err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int mac_generate_str(char out[18])
{
	uint8_t mac[6];
	if (mac_generate(mac) < 0)
		return -1;
	mac_format(mac, out);
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

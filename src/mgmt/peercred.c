#include "mgmt/peercred.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool kite_group(gid_t *gid)
{
	struct group gr, *res = NULL;
	char buf[4096];
	if (getgrnam_r("kite", &gr, buf, sizeof(buf), &res) != 0 || !res)
		return false;
	*gid = res->gr_gid;
	return true;
}

/* Supplementary groups of a process, from /proc/PID/status ("Groups: 4 24 27"). */
static bool pid_in_group(pid_t pid, gid_t gid)
{
	char path[64], line[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool found = false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Groups:", 7))
			continue;
		char *p = line + 7, *end;
		for (;;) {
			errno = 0;
			unsigned long g = strtoul(p, &end, 10);
			if (end == p || errno)
				break;
			if ((gid_t)g == gid)
				found = true;
			p = end;
		}
		break;
	}
	fclose(f);
	return found;
}

bool peer_allowed(int fd, char *why, size_t why_size)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		snprintf(why, why_size, "cannot read peer credentials: %s", strerror(errno));
		return false;
	}
	if (cr.uid == 0 || cr.uid == geteuid())
		return true;
	gid_t gid;
	if (kite_group(&gid) && (cr.gid == gid || pid_in_group(cr.pid, gid)))
		return true;
	snprintf(why, why_size,
		 "uid %u may not control this VM (only uid %u, root and group kite may)",
		 (unsigned)cr.uid, (unsigned)geteuid());
	return false;
}

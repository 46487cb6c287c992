/* Who may talk to a machine's control socket: the same user as the VMM, root, or a member
 * of the group `kite` (checked with SO_PEERCRED, on top of the socket file's 0660 mode). */
#ifndef KITE_MGMT_PEERCRED_H
#define KITE_MGMT_PEERCRED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* True when group `kite` exists; its gid in *gid. */
bool kite_group(gid_t *gid);

/* True when the peer of connected unix socket `fd` may use it; otherwise `why` explains. */
bool peer_allowed(int fd, char *why, size_t why_size);

#endif

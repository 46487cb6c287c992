#include "cli/cmd_guest.h"
#include "util/err.h"
#define STUB(f)                                                                                    \
	int f(int argc, char **argv)                                                               \
	{                                                                                          \
		kite_error("not implemented yet");                                                 \
		return 1;                                                                          \
	}
STUB(guest_copy_in)
STUB(guest_write)
STUB(guest_mkdir)
STUB(guest_rm)
STUB(guest_chmod)
STUB(guest_chown)
STUB(guest_ln)
STUB(guest_init)
STUB(guest_mount)

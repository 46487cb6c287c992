#include "cli/cmd_guest.h"
#include "util/err.h"
#define STUB(f)                                                                                    \
	int f(int argc, char **argv)                                                               \
	{                                                                                          \
		kite_error("not implemented yet");                                                 \
		return 1;                                                                          \
	}
STUB(guest_mount)

#include "cli/commands.h"
#include "util/err.h"

int cmd_guest(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	kite_error("'kite guest' is not implemented yet");
	return 1;
}

#include "cli/commands.h"
#include "util/err.h"

int cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	kite_error("'kite run' is not implemented yet");
	return 1;
}

#include "cli/commands.h"
#include "util/err.h"

int cmd_img(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	kite_error("'kite img' is not implemented yet");
	return 1;
}

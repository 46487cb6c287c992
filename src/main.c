#include "cli/commands.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

static const struct kite_command commands[] = {
    {"run", cmd_run, "boot a virtual machine in the foreground"},
    {"img", cmd_img, "create, inspect and convert disk images (qemu-img verbs)"},
    {"guest", cmd_guest, "look inside and provision disk images without booting them"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: kite <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'kite <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("kite 0.1\n");
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].main(argc - 1, argv + 1);
	}
	kite_error("unknown command '%s' (try 'kite --help')", argv[1]);
	return 1;
}

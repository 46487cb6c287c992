/* kite run: one VM in the foreground. */
#include "cli/commands.h"
#include "util/err.h"
#include "util/size.h"
#include "vmm/machine.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
	fputs(
	    "usage: kite run --kernel FILE [options]\n"
	    "\n"
	    "  -k, --kernel FILE        kernel: bzImage, ELF vmlinux, or an ELF with a PVH note\n"
	    "  -i, --initrd FILE        initial ramdisk\n"
	    "  -p, --append CMDLINE     kernel command line (alias: --params)\n"
	    "  -m, --memory SIZE        guest RAM, K/M/G suffixes, bare number in MiB (default "
	    "512M)\n"
	    "  -c, --cpus N             number of vCPUs (default 1)\n"
	    "      --console KIND       stdio (default), none, or file:PATH\n"
	    "      --name NAME          machine name (shown in messages)\n"
	    "      --no-reboot          exit instead of rebooting when the guest resets\n"
	    "      --stats              print KVM exit counts when the VM ends\n"
	    "      --no-pvm-defaults    on a KVM-PVM host, do not add the kernel parameters that\n"
	    "                           avoid what its emulator lacks (see README)\n"
	    "  -h, --help               this help\n"
	    "\n"
	    "Ctrl-A x quits when the console is a terminal. Exit codes: 0 guest powered off (or\n"
	    "reset with --no-reboot, or quit), 1 bad input or VMM failure, 2 guest crashed.\n",
	    out);
}

static int check_readable(const char *what, const char *path)
{
	if (access(path, R_OK) < 0)
		return kite_error("%s %s: cannot read it: %m", what, path);
	return 0;
}

int cmd_run(int argc, char **argv)
{
	enum { OPT_CONSOLE = 256, OPT_NAME, OPT_NO_REBOOT, OPT_STATS, OPT_NO_PVM };
	static const struct option longopts[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"append", required_argument, NULL, 'p'},
	    {"params", required_argument, NULL, 'p'},
	    {"memory", required_argument, NULL, 'm'},
	    {"cpus", required_argument, NULL, 'c'},
	    {"console", required_argument, NULL, OPT_CONSOLE},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"no-reboot", no_argument, NULL, OPT_NO_REBOOT},
	    {"stats", no_argument, NULL, OPT_STATS},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct machine_options opt = {
	    .vm = {.mem_size = 512ULL << 20, .ncpus = 1, .append = ""},
	    .console = CONSOLE_STDIO,
	};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "k:i:p:m:c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			opt.vm.kernel = optarg;
			break;
		case 'i':
			opt.vm.initrd = optarg;
			break;
		case 'p':
			opt.vm.append = optarg;
			break;
		case 'm':
			if (parse_size(optarg, 1ULL << 20, &opt.vm.mem_size) < 0) {
				kite_error("--memory %s: not a size (examples: 512M, 2G)", optarg);
				return 1;
			}
			break;
		case 'c': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || n < 0 || n > INT_MAX) {
				kite_error("--cpus %s: not a number", optarg);
				return 1;
			}
			opt.vm.ncpus = (int)n;
			break;
		}
		case OPT_CONSOLE:
			if (console_parse(optarg, &opt.console, &opt.console_path) < 0)
				return 1;
			break;
		case OPT_NAME:
			opt.vm.name = optarg;
			break;
		case OPT_NO_REBOOT:
			opt.vm.no_reboot = true;
			break;
		case OPT_STATS:
			opt.vm.stats = true;
			break;
		case OPT_NO_PVM:
			opt.vm.pvm_defaults = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (optopt)
				kite_error("run: option -%c is unknown or needs a value", optopt);
			else
				kite_error("run: unknown option %s", argv[optind - 1]);
			return 1;
		}
	}
	if (optind < argc) {
		kite_error("run: unexpected argument '%s'", argv[optind]);
		return 1;
	}
	if (!opt.vm.kernel) {
		kite_error("run: --kernel FILE is required");
		return 1;
	}
	if (opt.vm.ncpus < 1) {
		kite_error("--cpus %d: a VM needs at least one vCPU", opt.vm.ncpus);
		return 1;
	}
	if (check_readable("kernel", opt.vm.kernel) < 0 ||
	    (opt.vm.initrd && check_readable("initrd", opt.vm.initrd) < 0))
		return 1;
	return machine_run(&opt);
}

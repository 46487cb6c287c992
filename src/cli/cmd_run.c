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
	    "  -d, --disk FILE[,format=raw|qcow2|vmdk][,readonly=on][,cache=writeback|none]\n"
	    "           [,serial=ID]    a virtio-blk disk (vda, vdb, ... in order); repeatable\n"
	    "  -n, --net user[,hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-:GUESTPORT][,mac=MAC]\n"
	    "      --net tap=IFNAME     a virtio-net card: NAT (guest 10.0.2.15, gateway "
	    "10.0.2.2,\n"
	    "                           DNS 10.0.2.3; card n on 10.0.(2+n).0/24) or a tap; "
	    "repeatable\n"
	    "      --rng                a virtio-rng entropy device\n"
	    "      --balloon            a virtio-balloon device\n"
	    "      --console KIND       stdio (default), virtio (hvc0), none, file:PATH\n"
	    "      --control-socket PATH  serve the control protocol (docs/control-protocol.md)\n"
	    "      --name NAME          machine name (shown in messages)\n"
	    "      --no-reboot          exit instead of rebooting when the guest resets\n"
	    "      --stats              print KVM exit counts, ioeventfd and irqfd use when the\n"
	    "                           VM ends\n"
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
	enum {
		OPT_CONSOLE = 256,
		OPT_NAME,
		OPT_NO_REBOOT,
		OPT_STATS,
		OPT_NO_PVM,
		OPT_RNG,
		OPT_BALLOON,
		OPT_CONTROL,
	};
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
	    {"no-pvm-defaults", no_argument, NULL, OPT_NO_PVM},
	    {"disk", required_argument, NULL, 'd'},
	    {"net", required_argument, NULL, 'n'},
	    {"rng", no_argument, NULL, OPT_RNG},
	    {"balloon", no_argument, NULL, OPT_BALLOON},
	    {"control-socket", required_argument, NULL, OPT_CONTROL},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct machine_options opt; /* large (disk paths): not on the stack */
	opt = (struct machine_options){
	    .vm = {.mem_size = 512ULL << 20, .ncpus = 1, .append = ""},
	    .console = CONSOLE_STDIO,
	};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "k:i:p:m:c:d:n:h", longopts, NULL)) != -1) {
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
			opt.vm.no_pvm_defaults = true;
			break;
		case 'd': {
			struct virtio_devices_config *dc = &opt.vm.devices;
			if (dc->ndisks == VIRTIO_MAX_DISKS) {
				kite_error("--disk: at most %d disks", VIRTIO_MAX_DISKS);
				return 1;
			}
			if (disk_opts_parse(optarg, &dc->disks[dc->ndisks]) < 0)
				return 1;
			dc->ndisks++;
			break;
		}
		case 'n': {
			struct virtio_devices_config *dc = &opt.vm.devices;
			if (dc->nnets == VIRTIO_MAX_NICS) {
				kite_error("--net: at most %d network cards", VIRTIO_MAX_NICS);
				return 1;
			}
			if (net_opts_parse(optarg, &dc->nets[dc->nnets]) < 0)
				return 1;
			dc->nnets++;
			break;
		}
		case OPT_CONTROL:
			opt.control_socket = optarg;
			break;
		case OPT_RNG:
			opt.vm.devices.rng = true;
			break;
		case OPT_BALLOON:
			opt.vm.devices.balloon = true;
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

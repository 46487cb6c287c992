/* The options that describe a machine, one table for `kite run`, `kite create` and the
 * stand-in `kite _fake-run`: each sets a field of struct machine_config through that field's
 * one parser (config/machine_config.h), so the verbs cannot disagree about what they take.
 *
 *   static const struct option longopts[] = {MACHINE_LONG_OPTIONS ... {NULL, 0, NULL, 0}};
 *   while ((c = getopt_long(argc, argv, MACHINE_SHORT_OPTIONS "...", longopts, NULL)) != -1)
 *           switch (machine_option(&m, c, optarg)) { case 1: continue; case -1: fail; }
 */
#ifndef KITE_CLI_MACHINE_OPTIONS_H
#define KITE_CLI_MACHINE_OPTIONS_H

#include "config/machine_config.h"

#include <getopt.h>

enum {
	MOPT_SHARE = 3000,
	MOPT_CONSOLE,
	MOPT_RNG,
	MOPT_BALLOON,
	MOPT_EXIT_DEVICE,
	MOPT_TESTDEV,
	MOPT_CPU,
	MOPT_FW_CFG,
};

#define MACHINE_SHORT_OPTIONS "k:i:p:m:c:d:n:"

#define MACHINE_LONG_OPTIONS                                                                       \
	{"kernel", required_argument, NULL, 'k'}, {"initrd", required_argument, NULL, 'i'},        \
	    {"append", required_argument, NULL, 'p'}, {"params", required_argument, NULL, 'p'},    \
	    {"memory", required_argument, NULL, 'm'}, {"cpus", required_argument, NULL, 'c'},      \
	    {"disk", required_argument, NULL, 'd'}, {"net", required_argument, NULL, 'n'},         \
	    {"share", required_argument, NULL, MOPT_SHARE},                                        \
	    {"console", required_argument, NULL, MOPT_CONSOLE},                                    \
	    {"rng", optional_argument, NULL, MOPT_RNG},                                            \
	    {"balloon", optional_argument, NULL, MOPT_BALLOON},                                    \
	    {"exit-device", required_argument, NULL, MOPT_EXIT_DEVICE},                            \
	    {"testdev", optional_argument, NULL, MOPT_TESTDEV},                                    \
	    {"cpu", required_argument, NULL, MOPT_CPU},                                            \
	    {"fw-cfg", required_argument, NULL, MOPT_FW_CFG},

#define MACHINE_OPTIONS_HELP                                                                       \
	"  -k, --kernel FILE        kernel: bzImage, ELF vmlinux, or an ELF with a PVH note\n"     \
	"  -i, --initrd FILE        initial ramdisk\n"                                             \
	"  -p, --append CMDLINE     kernel command line (alias: --params)\n"                       \
	"  -m, --memory SIZE        guest RAM: K/M/G suffixes, a bare number is MiB\n"             \
	"                           (default 512M)\n"                                              \
	"  -c, --cpus N             number of vCPUs, 1 to 254 (default 1)\n"                       \
	"  -d, --disk FILE[,format=raw|qcow2|vmdk][,target=vdX][,readonly=on]\n"                   \
	"           [,cache=writeback|none][,serial=ID]\n"                                         \
	"                           a virtio-blk disk, in target order (vda, vdb, ... as\n"        \
	"                           given); ',,' in FILE is a comma; repeatable\n"                 \
	"  -n, --net user[,hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-:GUESTPORT]...[,mac=MAC]\n"         \
	"      --net tap=IFNAME[,mac=MAC]\n"                                                       \
	"                           a virtio-net card: NAT (guest 10.0.2.15, gateway\n"            \
	"                           10.0.2.2, DNS 10.0.2.3; card n on 10.0.(2+n).0/24) or\n"       \
	"                           a tap; repeatable\n"                                           \
	"      --console KIND       serial (alias stdio), virtio (hvc0), none, file:PATH\n"        \
	"      --rng[=on|off]       a virtio-rng entropy device\n"                                 \
	"      --balloon[=on|off]   a virtio-balloon device\n"                                     \
	"      --exit-device port=N a test exit device (QEMU's isa-debug-exit): a write of\n"      \
	"                           CODE to port N ends the VM, exit code (CODE << 1) | 1\n"       \
	"      --testdev[=on|off]   QEMU's pc-testdev: IRQ lines at ports 0x2000+n, the latch\n"   \
	"                           at 0xe0, flush-page port 0xe4, 64 KiB at 0xff000000\n"         \
	"      --cpu MODEL[,+F,-F]  CPUID model host (default), max or base, with features\n"      \
	"                           added (+F, F=on) or removed (-F, F=off), QEMU's names\n"       \
	"      --fw-cfg [name=]NAME,file=PATH|string=TEXT\n"                                       \
	"                           a file in fw_cfg's directory, as QEMU's -fw_cfg; repeatable\n"

/* Applies getopt's `code` to m. Returns 1 when it was a machine option and it applied, 0 when
 * it is not a machine option, -1 after an error (reported). */
int machine_option(struct machine_config *m, int code, const char *arg);

#endif

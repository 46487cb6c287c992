#include "cli/machine_options.h"

#include <stddef.h>

static const struct {
	int code;
	const char *field;
	const char *option; /* for messages */
} machine_options[] = {
    {'k', "kernel", "--kernel"},
    {'i', "initrd", "--initrd"},
    {'p', "append", "--append"},
    {'m', "memory", "--memory"},
    {'c', "vcpus", "--cpus"},
    {'d', "disks", "--disk"},
    {'n', "nics", "--net"},
    {MOPT_SHARE, "shares", "--share"},
    {MOPT_CONSOLE, "console", "--console"},
    {MOPT_RNG, "rng", "--rng"},
    {MOPT_BALLOON, "balloon", "--balloon"},
    {MOPT_EXIT_DEVICE, "exit_device", "--exit-device"},
    {MOPT_TESTDEV, "testdev", "--testdev"},
    {MOPT_CPU, "cpu", "--cpu"},
    {MOPT_FW_CFG, "fw_cfg", "--fw-cfg"},
};

int machine_option(struct machine_config *m, int code, const char *arg)
{
	for (size_t i = 0; i < sizeof(machine_options) / sizeof(machine_options[0]); i++)
		if (machine_options[i].code == code)
			return machine_config_set(m, machine_options[i].field, arg,
						  machine_options[i].option) < 0
				   ? -1
				   : 1;
	return 0;
}

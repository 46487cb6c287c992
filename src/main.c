#include "cli/commands.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

static const struct kite_command commands[] = {
    {"run", cmd_run, "boot a virtual machine in the foreground"},
    {"img", cmd_img, "create, inspect and convert disk images (qemu-img verbs)"},
    {"guest", cmd_guest, "look inside and provision disk images without booting them"},
    {"list", cmd_list, "list machines (--all: shut off ones too)"},
    {"define", cmd_define, "define a machine from a JSON file"},
    {"create", cmd_create, "define a machine from kite run options"},
    {"undefine", cmd_undefine, "remove a machine's definition"},
    {"dumpjson", cmd_dumpjson, "print a machine's definition"},
    {"edit", cmd_edit, "edit a machine's definition in $EDITOR"},
    {"start", cmd_start, "boot a defined machine in the background"},
    {"save", cmd_save, "save a running machine's state and RAM to a file, and stop it"},
    {"restore", cmd_restore, "resume a machine from a file of kite save"},
    {"managedsave", cmd_managedsave, "save a running machine for its next start"},
    {"managedsave-remove", cmd_managedsave_remove, "discard a machine's managed save"},
    {"migrate", cmd_migrate, "move a machine, running or not, to another kite"},
    {"migrate-incoming", cmd_migrate_incoming, "wait for a machine that kite migrate sends"},
    {"domjobinfo", cmd_domjobinfo, "a running machine's migration progress"},
    {"domjobabort", cmd_domjobabort, "cancel a running machine's migration"},
    {"snapshot-create-as", cmd_snapshot_create_as, "take a snapshot of a machine (disks, state)"},
    {"snapshot-list", cmd_snapshot_list, "list a machine's snapshots (--tree)"},
    {"snapshot-current", cmd_snapshot_current, "a machine's current snapshot"},
    {"snapshot-info", cmd_snapshot_info, "information about a snapshot"},
    {"snapshot-dumpjson", cmd_snapshot_dumpjson, "a snapshot's metadata as JSON"},
    {"snapshot-delete", cmd_snapshot_delete, "delete a snapshot"},
    {"snapshot-revert", cmd_snapshot_revert, "put a machine back to a snapshot"},
    {"suspend", cmd_suspend, "pause a running machine"},
    {"resume", cmd_resume, "resume a paused machine"},
    {"reboot", cmd_reboot, "reset a running machine"},
    {"shutdown", cmd_shutdown, "press a machine's ACPI power button"},
    {"destroy", cmd_destroy, "stop a machine immediately"},
    {"console", cmd_console, "attach to a machine's serial console (Ctrl-] detaches)"},
    {"event", cmd_event, "print a running machine's events"},
    {"monitor", cmd_monitor, "send a control-protocol command to a running machine"},
    {"autostart", cmd_autostart, "mark a machine to start at host boot; --boot starts them"},
    {"dominfo", cmd_dominfo, "basic information about a machine"},
    {"domstate", cmd_domstate, "a machine's state"},
    {"domblklist", cmd_domblklist, "a machine's disks"},
    {"domiflist", cmd_domiflist, "a machine's network interfaces"},
    {"domid", cmd_domid, "a machine's Id"},
    {"domuuid", cmd_domuuid, "a machine's UUID"},
    {"domname", cmd_domname, "a machine's name, from its Id or UUID"},
    {"setmem", cmd_setmem, "change a machine's memory (live: balloon)"},
    {"setmaxmem", cmd_setmaxmem, "change a machine's maximum memory"},
    {"setvcpus", cmd_setvcpus, "change a machine's vCPU count (--config)"},
    {"attach-disk", cmd_attach_disk, "add a disk to a machine (--config)"},
    {"detach-disk", cmd_detach_disk, "remove a disk from a machine (--config)"},
    {"attach-interface", cmd_attach_interface, "add a NIC to a machine (--config)"},
    {"detach-interface", cmd_detach_interface, "remove a NIC from a machine (--config)"},
    {"net-define", cmd_net_define, "define a named network (hostonly, nat, internal, bridge)"},
    {"net-list", cmd_net_list, "list networks (--all: inactive ones too)"},
    {"net-info", cmd_net_info, "a network's definition and state"},
    {"net-dumpjson", cmd_net_dumpjson, "print a network's definition"},
    {"net-start", cmd_net_start, "start a network (bridge, address, DHCP)"},
    {"net-destroy", cmd_net_destroy, "stop a network"},
    {"net-undefine", cmd_net_undefine, "remove an inactive network's definition"},
    {"net-autostart", cmd_net_autostart, "mark a network to start at host boot"},
    {"net-dhcp-leases", cmd_net_dhcp_leases, "the addresses a network's DHCP handed out"},
    {"_fake-run", cmd_fake_run, NULL},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: kite <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].summary) /* hidden commands have none */
			fprintf(out, "  %-19s %s\n", commands[i].name, commands[i].summary);
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

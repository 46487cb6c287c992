#include "mgmt/control_commands.h"

#include <stdio.h>
#include <string.h>

static const struct control_arg balloon_args[] = {
    {"value", CONTROL_ARG_BYTES, true, NULL},
    {NULL, 0, false, NULL},
};

static const struct control_arg save_args[] = {
    {"file", CONTROL_ARG_PATH, true, NULL},
    {NULL, 0, false, NULL},
};

static const struct control_arg snapshot_create_args[] = {
    {"name", CONTROL_ARG_NAME, true, NULL},
    {"state", CONTROL_ARG_PATH, false, "absent: disk-only"},
    {"external", CONTROL_ARG_BOOL, false, "default false: qcow2 overlays, no state"},
    {NULL, 0, false, NULL},
};

static const struct control_arg snapshot_delete_args[] = {
    {"name", CONTROL_ARG_NAME, true, NULL},
    {NULL, 0, false, NULL},
};

static const struct control_arg console_args[] = {
    {"replay", CONTROL_ARG_BOOL, false, "default true"},
    {NULL, 0, false, NULL},
};

#define VMM(cmd)    .by_vmm = true, .vmm = (cmd)
#define SERVER(cmd) .by_vmm = false, .server = (cmd)

const struct control_command control_commands[] = {
    {.name = "query-status",
     VMM(CONTROL_QUERY_STATUS),
     .returns = "`{\"status\": \"running\" \\| \"paused\", \"running\": bool}`"},
    {.name = "stop", VMM(CONTROL_STOP), .returns = "`{}`: vCPUs paused (`kite suspend`)"},
    {.name = "cont", VMM(CONTROL_CONT), .returns = "`{}`: resumed (`kite resume`)"},
    {.name = "system_powerdown",
     VMM(CONTROL_SYSTEM_POWERDOWN),
     .returns = "`{}`: ACPI power button pressed (`kite shutdown`)"},
    {.name = "system_reset",
     VMM(CONTROL_SYSTEM_RESET),
     .returns = "`{}`: hard reset (`kite reboot`)"},
    {.name = "quit",
     VMM(CONTROL_QUIT),
     .reply_first = true,
     .returns = "`{}` is sent, then the VMM ends (`kite destroy`)"},
    {.name = "balloon",
     VMM(CONTROL_BALLOON),
     .args = balloon_args,
     .missing = "DeviceNotActive",
     .returns = "`{}`: new balloon target, guest RAM to BYTES (`kite setmem --live`)"},
    {.name = "query-balloon",
     VMM(CONTROL_QUERY_BALLOON),
     .missing = "DeviceNotActive",
     .returns = "`{\"actual\": BYTES}`"},
    {.name = "save",
     VMM(CONTROL_SAVE),
     .args = save_args,
     .timeout_ms = 600000, /* writing the RAM of a large guest */
     .returns = "`{}` once the machine's state and RAM are in PATH, a save file; then the "
		"VMM ends (`kite save`, `kite managedsave`)"},
    {.name = "snapshot-create",
     VMM(CONTROL_SNAPSHOT_CREATE),
     .args = snapshot_create_args,
     .timeout_ms = 600000, /* writing the RAM of a large guest */
     .returns = "`{\"vm_state_size\": BYTES, \"vmstate_disk\": TARGET, \"disks\": [...]}`: "
		"vCPUs paused, disk requests completed, the machine's state written to PATH (a "
		"save file) and from there into the first qcow2 disk's VM state area, every "
		"writable disk's internal snapshot NAME taken, PATH removed, vCPUs resumed; with "
		"`external`, every writable disk moved onto a new qcow2 overlay DISK.NAME "
		"instead (`kite snapshot-create-as`)"},
    {.name = "snapshot-delete",
     VMM(CONTROL_SNAPSHOT_DELETE),
     .args = snapshot_delete_args,
     .timeout_ms = 600000,
     .returns = "`{}`: internal snapshot NAME deleted from every disk that has it "
		"(`kite snapshot-delete`)"},
    {.name = "console",
     SERVER(CONTROL_SERVER_CONSOLE),
     .args = console_args,
     .returns = "`{}`, then console mode"},
    {.name = "query-version",
     SERVER(CONTROL_SERVER_QUERY_VERSION),
     .returns = "the version object"},
    {.name = "query-commands",
     SERVER(CONTROL_SERVER_QUERY_COMMANDS),
     .returns = "`[{\"name\": ...}, ...]`"},
    {.name = "qmp_capabilities",
     SERVER(CONTROL_SERVER_QMP_CAPABILITIES),
     .returns = "`{}` (accepted for QMP clients; does nothing)"},
};

const size_t control_ncommands = sizeof(control_commands) / sizeof(control_commands[0]);

/* Every VMM command has its row, and nothing else is in the table. */
_Static_assert(sizeof(control_commands) / sizeof(control_commands[0]) == CONTROL_VMM_COMMANDS + 4,
	       "control_commands[] needs a row for each enum control_cmd value");

const struct control_command *control_command_find(const char *name)
{
	for (size_t i = 0; i < control_ncommands; i++)
		if (!strcmp(control_commands[i].name, name))
			return &control_commands[i];
	return NULL;
}

bool control_snapshot_name_ok(const char *s)
{
	size_t n = strlen(s);
	return n && n < 256 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static const char *type_name(enum control_arg_type t)
{
	return t == CONTROL_ARG_BOOL   ? "bool"
	       : t == CONTROL_ARG_PATH ? "PATH"
	       : t == CONTROL_ARG_NAME ? "NAME"
				       : "BYTES";
}

static const char *type_want(enum control_arg_type t)
{
	return t == CONTROL_ARG_BOOL   ? "true or false"
	       : t == CONTROL_ARG_PATH ? "an absolute path"
	       : t == CONTROL_ARG_NAME ? "a snapshot name (1 to 255 bytes, no '/')"
				       : "a positive number of bytes";
}

static bool type_ok(enum control_arg_type t, json_t *v)
{
	switch (t) {
	case CONTROL_ARG_BOOL:
		return json_is_boolean(v);
	case CONTROL_ARG_PATH:
		return json_is_string(v) && json_string_value(v)[0] == '/';
	case CONTROL_ARG_NAME:
		return json_is_string(v) && control_snapshot_name_ok(json_string_value(v));
	case CONTROL_ARG_BYTES:
		break;
	}
	return json_is_integer(v) && json_integer_value(v) > 0;
}

const char *control_command_check_args(const struct control_command *cmd, json_t *args, char *buf,
				       size_t size)
{
	const char *key;
	json_t *v;
	json_object_foreach(args, key, v)
	{
		const struct control_arg *a = cmd->args;
		while (a && a->name && strcmp(a->name, key))
			a++;
		if (!a || !a->name) {
			snprintf(buf, size, "%s takes no argument '%.64s'", cmd->name, key);
			return buf;
		}
	}
	for (const struct control_arg *a = cmd->args; a && a->name; a++) {
		v = json_object_get(args, a->name);
		if (!v) {
			if (!a->required)
				continue;
			snprintf(buf, size, "%s needs \"%s\": %s", cmd->name, a->name,
				 type_want(a->type));
			return buf;
		}
		if (!type_ok(a->type, v)) {
			snprintf(buf, size, "'%s' must be %s", a->name, type_want(a->type));
			return buf;
		}
	}
	return NULL;
}

const char *control_command_args_doc(const struct control_command *cmd, char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = '\0';
	if (!cmd->args)
		return buf;
	n += (size_t)snprintf(buf + n, size - n, "`{");
	for (const struct control_arg *a = cmd->args; a->name && n < size; a++)
		n += (size_t)snprintf(buf + n, size - n, "%s\"%s\": %s", a == cmd->args ? "" : ", ",
				      a->name, type_name(a->type));
	if (n < size)
		n += (size_t)snprintf(buf + n, size - n, "}`");
	for (const struct control_arg *a = cmd->args; a->name && n < size; a++)
		if (a->note)
			n += (size_t)snprintf(buf + n, size - n, " (%s)", a->note);
	return buf;
}

/* The control protocol's commands, in one table (docs/control-protocol.md, "Commands"):
 * the server dispatches through it, checks each request's arguments against it and answers
 * query-commands from it, `kite monitor --help` lists it, and a unit test checks that the
 * docs list exactly it. A VMM handles the commands of enum control_cmd, one handler each
 * (struct control_handlers); the server answers the others itself.
 *
 * To add a command: a row here (control_commands.c), a value in enum control_cmd when a VMM
 * carries it out, a handler in every VMM (mgmt/machine_control.c, cli/cmd_fake_run.c: the
 * test_mgmt_control unit test fails while one is missing), a row in the docs. */
#ifndef KITE_MGMT_CONTROL_COMMANDS_H
#define KITE_MGMT_CONTROL_COMMANDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum control_cmd {
	CONTROL_QUERY_STATUS,
	CONTROL_STOP,
	CONTROL_CONT,
	CONTROL_SYSTEM_POWERDOWN,
	CONTROL_SYSTEM_RESET,
	CONTROL_QUIT,
	CONTROL_BALLOON,
	CONTROL_QUERY_BALLOON,
	CONTROL_SAVE,
	CONTROL_SNAPSHOT_CREATE,
	CONTROL_SNAPSHOT_DELETE,
	CONTROL_VMM_COMMANDS, /* how many a VMM handles */
};

/* A VMM's handler: returns 0 with *ret set (NULL: {}), or -1 after control_set_error().
 * `args` was checked against the command's argument schema (NULL when none were sent). */
typedef int (*control_handler_fn)(void *opaque, json_t *args, json_t **ret);

enum control_arg_type {
	CONTROL_ARG_BOOL,
	CONTROL_ARG_BYTES, /* a positive integer */
	CONTROL_ARG_PATH,  /* an absolute path (a string starting with /) */
	CONTROL_ARG_NAME,  /* a snapshot name: 1 to 255 bytes, no '/', not "." or ".." */
};

struct control_arg {
	const char *name;
	enum control_arg_type type;
	bool required;
	const char *note; /* docs: e.g. "default true" */
};

enum control_server_cmd {
	CONTROL_SERVER_QMP_CAPABILITIES,
	CONTROL_SERVER_QUERY_COMMANDS,
	CONTROL_SERVER_QUERY_VERSION,
	CONTROL_SERVER_CONSOLE,
};

struct control_command {
	const char *name;
	bool by_vmm; /* carried out by the VMM (`vmm`), else by the server (`server`) */
	int vmm;     /* enum control_cmd */
	int server;  /* enum control_server_cmd */
	const struct control_arg *args; /* ended by a NULL name; NULL: no arguments */
	bool reply_first;		/* the reply goes out before the handler runs (quit) */
	const char *missing; /* the error class without a handler (NULL: CommandNotAvailable) */
	const char *returns; /* docs: what a success returns, and what it does */
	int timeout_ms;	     /* the server's request timeout for it (0: the server's default) */
};

extern const struct control_command control_commands[];
extern const size_t control_ncommands;

const struct control_command *control_command_find(const char *name);
/* A snapshot name the protocol takes (and the state directory can file): CONTROL_ARG_NAME. */
bool control_snapshot_name_ok(const char *s);
/* Checks `args` (NULL: none) against cmd's schema. Returns NULL, or what is wrong, written to
 * `buf`. */
const char *control_command_check_args(const struct control_command *cmd, json_t *args, char *buf,
				       size_t size);
/* The arguments as the docs write them: {"value": BYTES} (value: ...). Into buf. */
const char *control_command_args_doc(const struct control_command *cmd, char *buf, size_t size);

#endif

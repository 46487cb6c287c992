/* The control socket of a running machine (protocol: docs/control-protocol.md). `kite run
 * --control-socket PATH` starts one; it runs on its own thread and calls the VMM through
 * `struct control_handlers`, each call on a worker thread of its own so that a handler that
 * hangs cannot stall the socket: the client gets a Timeout error after the server's request
 * timeout, and the other clients keep being served.
 *
 * The commands are one table (mgmt/control_commands.h). Handlers return 0 on success, or -1
 * after calling control_set_error() (without it the error is a GenericError "command
 * failed"). A NULL handler makes its command answer CommandNotAvailable (DeviceNotActive for
 * the balloon pair). Handlers run concurrently with the VMM's threads and with each other:
 * they must take whatever locks the VMM needs. */
#ifndef KITE_MGMT_CONTROL_SERVER_H
#define KITE_MGMT_CONTROL_SERVER_H

#include "mgmt/control_commands.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define CONTROL_PROTOCOL_VERSION   1
#define CONTROL_LINE_MAX	   (64 * 1024)
#define CONTROL_DEFAULT_TIMEOUT_MS 5000
#define CONTROL_CONSOLE_RING_SIZE  (64 * 1024)
#define CONTROL_MAX_CLIENTS	   64
/* Handlers running at once, hung ones included: beyond it, requests get an error. */
#define CONTROL_MAX_WORKERS 32

struct control_handlers {
	/* One per command a VMM carries out, indexed by enum control_cmd: query-status returns an
	 * object with at least "status": "running" | "paused"; balloon gets {"value": BYTES};
	 * query-balloon returns {"actual": BYTES}; quit is answered before it runs. */
	control_handler_fn cmd[CONTROL_VMM_COMMANDS];
	/* Bytes typed on an attached `kite console`, for the guest's console input. */
	int (*console_input)(void *opaque, const void *data, size_t len);
	void *opaque;
};

struct control_server;

/* Binds a unix socket at `path` (replacing a stale socket file), mode 0660 with group
 * `kite` when that group exists, and starts the server thread. `name` is the machine name
 * sent in the greeting (may be NULL). The handlers struct is copied. Returns 0 or -1. */
int control_server_start(const char *path, const char *name, const struct control_handlers *h,
			 struct control_server **out);

/* Stops the thread, closes every connection, removes the socket file and frees the server.
 * Waits up to 2 s for handlers still running (after that the server is left allocated). */
void control_server_stop(struct control_server *s);

/* Sends {"event": NAME, "data": DATA, "timestamp": ...} to every connected client not in
 * console mode. Steals `data` (may be NULL). Safe from any thread. */
void control_server_emit_event(struct control_server *s, const char *name, json_t *data);

/* Appends guest serial output to the console ring (and to attached consoles). Never blocks
 * on clients; safe from any thread (call it from the UART's transmit path). */
void control_server_console_output(struct control_server *s, const void *data, size_t len);

/* The per-request timeout (default CONTROL_DEFAULT_TIMEOUT_MS). */
void control_server_set_timeout(struct control_server *s, int timeout_ms);

/* Inside a handler: sets the error class (NULL: GenericError) and message. */
void control_set_error(const char *cls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

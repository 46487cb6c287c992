/* Client side of a machine's control socket (docs/control-protocol.md): connect and check
 * the greeting, run commands with a deadline, read events, attach to the console. */
#ifndef KITE_MGMT_CONTROL_CLIENT_H
#define KITE_MGMT_CONTROL_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#define CONTROL_CLIENT_TIMEOUT_MS 10000
#define CONSOLE_ESCAPE		  0x1d /* Ctrl-] */

struct control_client;

/* Connects to `path` and reads the greeting within `timeout_ms`. Returns 0, or -1 with
 * nothing printed and *err (when not NULL) set to a malloc'd one-line reason; callers
 * word the message ("machine web1: <reason>"). */
int control_client_connect(const char *path, int timeout_ms, struct control_client **out,
			   char **err);

/* Runs one command: steals `args` (may be NULL). On success returns 0 and, when `ret` is not
 * NULL, the "return" value (caller decrefs). On an error reply, a timeout or a broken
 * connection returns -1; control_client_error() then says why and control_client_error_class()
 * gives the protocol error class ("Timeout" when the client gave up waiting). Events that
 * arrive meanwhile are queued for control_client_next_event(). */
int control_client_execute(struct control_client *c, const char *cmd, json_t *args, json_t **ret,
			   int timeout_ms);

/* Sends `len` raw bytes (tests use it to send malformed or oversized lines). 0 or -1. */
int control_client_send_raw(struct control_client *c, const void *data, size_t len);

/* Reads the next JSON line (any kind) within timeout_ms: 0, or -1 on timeout/EOF. */
int control_client_read_message(struct control_client *c, int timeout_ms, json_t **msg);

/* The next queued or arriving event within timeout_ms. 0, or -1 on timeout/EOF. */
int control_client_next_event(struct control_client *c, int timeout_ms, json_t **event);

/* Console mode, after a successful "console" command: copies socket bytes to out_fd and
 * in_fd bytes to the socket until Ctrl-] is read from in_fd (returns 0), the VM closes the
 * connection (returns 1), or in_fd ends and output has been quiet for `linger_ms` (0). */
int control_client_console(struct control_client *c, int in_fd, int out_fd, int linger_ms);

/* Console mode, one chunk at a time: bytes the VM sent (those already buffered first).
 * Blocks. Returns the count, 0 when the VM closed the connection, -1 on error. */
ssize_t control_client_read_raw(struct control_client *c, void *buf, size_t len);

json_t *control_client_greeting(struct control_client *c);
const char *control_client_error(struct control_client *c);
const char *control_client_error_class(struct control_client *c);
void control_client_close(struct control_client *c);

#endif

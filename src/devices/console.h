/* The VM's console backend: where the serial port's output goes and where its input comes
 * from. `stdio` puts a terminal in raw mode and reads keys on a thread of its own; Ctrl-A x
 * quits (as in QEMU), Ctrl-A Ctrl-A sends a Ctrl-A. `none` drops output; `file:PATH` appends
 * output to PATH. The console outlives a guest reboot; the UART of each boot attaches to it. */
#ifndef KITE_DEVICES_CONSOLE_H
#define KITE_DEVICES_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

/* Where the console's host end is. Which guest device it feeds (the UART, a virtio-console
 * port) is up to whoever attaches (console_attach). */
enum console_kind { CONSOLE_STDIO, CONSOLE_NONE, CONSOLE_FILE };

/* Receives input bytes; returns how many it took (the rest is offered again later). */
typedef size_t (*console_input_fn)(void *opaque, const uint8_t *buf, size_t len);
typedef void (*console_quit_fn)(void *opaque);
/* Sees every byte the guest writes (a log ring, boot milestones). Called on vCPU threads. */
typedef void (*console_observer_fn)(void *opaque, const uint8_t *buf, size_t len);

#define CONSOLE_MAX_OBSERVERS 4

struct console {
	enum console_kind kind;
	int out_fd;
	int in_fd;
	bool raw_tty;
	struct termios saved_tty;
	pthread_t reader;
	bool reader_started;
	int wake_pipe[2]; /* wakes the reader: new room in the receiver, or stop */
	pthread_mutex_t lock;
	console_input_fn input;
	void *opaque;
	console_quit_fn quit;
	void *quit_opaque;
	bool stopping;
	bool escape; /* previous key was Ctrl-A */
	uint8_t pending[256];
	size_t npending;
	int nobservers;
	struct {
		console_observer_fn fn;
		void *opaque;
	} observers[CONSOLE_MAX_OBSERVERS];
};

int console_open(struct console *c, enum console_kind kind, const char *path);
/* Connects (or, with NULL, disconnects) the device that consumes input. */
void console_attach(struct console *c, console_input_fn input, void *opaque);
/* Sets what Ctrl-A x does (the machine ends the run). */
void console_on_quit(struct console *c, console_quit_fn quit, void *opaque);
/* Adds an observer of guest output; call before the guest runs. Returns 0 or -1 when full. */
int console_add_observer(struct console *c, console_observer_fn fn, void *opaque);
/* Input that does not come from the terminal (the control socket): handed to the attached
 * device at once; what it cannot take now is dropped, as on a serial line. Never blocks on
 * the guest. */
void console_inject(struct console *c, const uint8_t *buf, size_t len);
/* Tells the reader the receiver has room again. */
void console_kick(struct console *c);
void console_write(struct console *c, const uint8_t *buf, size_t len);
void console_close(struct console *c);

#endif

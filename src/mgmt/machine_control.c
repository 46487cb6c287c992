#include "mgmt/machine_control.h"
#include "mgmt/control_server.h"
#include "util/err.h"
#include "machine/vm_snapshot.h"

#include <string.h>
#include <unistd.h>

static struct {
	const char *path, *name;
	struct control_server *server;
	struct console *console;
} ctl;

/* Runs fn on the boot in progress, which cannot go away under it. */
static int with_vm(int (*fn)(struct vm *vm, void *arg), void *arg)
{
	int r = machine_with_current(fn, arg);
	if (r == MACHINE_BETWEEN_BOOTS) {
		control_set_error(NULL, "the machine is between boots; try again");
		r = -1;
	}
	return r;
}

static int status_of(struct vm *vm, void *arg)
{
	bool paused = vm_is_paused(vm);
	*(json_t **)arg =
	    json_pack("{s:s, s:b}", "status", paused ? "paused" : "running", "running", !paused);
	return 0;
}

static int h_query_status(void *opaque, json_t *args, json_t **ret)
{
	return with_vm(status_of, ret);
}

static int pause_vm(struct vm *vm, void *arg)
{
	if (!vm_is_paused(vm)) {
		vm_pause(vm);
		control_server_emit_event(ctl.server, "STOP", NULL);
	}
	return 0;
}

static int resume_vm(struct vm *vm, void *arg)
{
	if (vm_is_paused(vm)) {
		vm_resume(vm);
		control_server_emit_event(ctl.server, "RESUME", NULL);
	}
	return 0;
}

static int h_stop(void *opaque, json_t *args, json_t **ret)
{
	return with_vm(pause_vm, NULL);
}

static int h_cont(void *opaque, json_t *args, json_t **ret)
{
	return with_vm(resume_vm, NULL);
}

static int press_power_button(struct vm *vm, void *arg)
{
	acpi_pm_power_button(&vm->pm);
	control_server_emit_event(ctl.server, "POWERDOWN", NULL);
	return 0;
}

static int h_powerdown(void *opaque, json_t *args, json_t **ret)
{
	return with_vm(press_power_button, NULL);
}

static int reset_vm(struct vm *vm, void *arg)
{
	vm_request_exit(vm, VM_RESET);
	return 0;
}

static int h_reset(void *opaque, json_t *args, json_t **ret)
{
	return with_vm(reset_vm, NULL);
}

static int h_quit(void *opaque, json_t *args, json_t **ret)
{
	machine_request_quit();
	return 0;
}

static int set_balloon(struct vm *vm, void *arg)
{
	uint64_t bytes = *(uint64_t *)arg;
	struct virtio_balloon *b = vm->virtio_ready ? vm->virtio.balloon : NULL;
	if (!b) {
		control_set_error("DeviceNotActive", "this machine has no balloon (--balloon)");
		return -1;
	}
	if (bytes > vm->mem.ram_size || bytes < (16ULL << 20)) {
		control_set_error(NULL, "balloon target must be between 16 MiB and the RAM size");
		return -1;
	}
	/* The balloon holds what the guest gives up, in 4 KiB pages. */
	virtio_balloon_set_target(b, (uint32_t)((vm->mem.ram_size - bytes) >> 12));
	return 0;
}

static int h_balloon(void *opaque, json_t *args, json_t **ret)
{
	uint64_t bytes = (uint64_t)json_integer_value(json_object_get(args, "value"));
	return with_vm(set_balloon, &bytes);
}

static int get_balloon(struct vm *vm, void *arg)
{
	struct virtio_balloon *b = vm->virtio_ready ? vm->virtio.balloon : NULL;
	if (!b) {
		control_set_error("DeviceNotActive", "this machine has no balloon (--balloon)");
		return -1;
	}
	*(uint64_t *)arg = vm->mem.ram_size - ((uint64_t)virtio_balloon_actual(b) << 12);
	return 0;
}

static int h_query_balloon(void *opaque, json_t *args, json_t **ret)
{
	uint64_t bytes;
	if (with_vm(get_balloon, &bytes) < 0)
		return -1;
	*ret = json_pack("{s:I}", "actual", (json_int_t)bytes);
	return 0;
}

/* Everything into the file, then the run ends as `quit` ends it (exit code 0): the reply
 * goes out as the server stops (control_server_stop waits for this handler). An error
 * leaves the machine running as it was. */
static int save_vm(struct vm *vm, void *arg)
{
	const char *path = arg;
	if (vm_save(vm, path) < 0) {
		control_set_error(NULL, "%s", kite_last_error());
		return -1;
	}
	kite_notice("machine saved to %s", path);
	control_server_emit_event(ctl.server, "STOP", NULL);
	vm_request_exit(vm, VM_QUIT);
	return 0;
}

static int h_save(void *opaque, json_t *args, json_t **ret)
{
	return with_vm(save_vm, (void *)json_string_value(json_object_get(args, "file")));
}

struct snapshot_req {
	bool create, external;
	const char *name, *state;
	json_t *out;
};

static int snapshot_vm(struct vm *vm, void *arg)
{
	struct snapshot_req *q = arg;
	int r = !q->create    ? vm_snapshot_delete(vm, q->name)
		: q->external ? vm_snapshot_create_external(vm, q->name, &q->out)
			      : vm_snapshot_create(vm, q->name, q->state, &q->out);
	if (r < 0)
		control_set_error(NULL, "%s", kite_last_error());
	return r;
}

static int h_snapshot_create(void *opaque, json_t *args, json_t **ret)
{
	struct snapshot_req q = {true, json_is_true(json_object_get(args, "external")),
				 json_string_value(json_object_get(args, "name")),
				 json_string_value(json_object_get(args, "state")), NULL};
	if (q.external && q.state) {
		control_set_error(NULL, "snapshot-create: \"external\" takes no \"state\"");
		return -1;
	}
	int r = with_vm(snapshot_vm, &q);
	*ret = r == 0 ? q.out : NULL;
	return r;
}

static int h_snapshot_delete(void *opaque, json_t *args, json_t **ret)
{
	struct snapshot_req q = {false, false, json_string_value(json_object_get(args, "name")),
				 NULL, NULL};
	return with_vm(snapshot_vm, &q);
}

const control_handler_fn machine_control_handlers[CONTROL_VMM_COMMANDS] = {
    [CONTROL_QUERY_STATUS] = h_query_status,
    [CONTROL_STOP] = h_stop,
    [CONTROL_CONT] = h_cont,
    [CONTROL_SYSTEM_POWERDOWN] = h_powerdown,
    [CONTROL_SYSTEM_RESET] = h_reset,
    [CONTROL_QUIT] = h_quit,
    [CONTROL_BALLOON] = h_balloon,
    [CONTROL_QUERY_BALLOON] = h_query_balloon,
    [CONTROL_SAVE] = h_save,
    [CONTROL_SNAPSHOT_CREATE] = h_snapshot_create,
    [CONTROL_SNAPSHOT_DELETE] = h_snapshot_delete,
};

/* Bytes typed on an attached `kite console` go to whichever device the console feeds (the
 * UART, or hvc0 with console "virtio"); what it cannot take now is dropped, as on a line. */
static int h_console_input(void *opaque, const void *data, size_t len)
{
	console_inject(ctl.console, data, len);
	return 0;
}

static void forward_output(void *opaque, const uint8_t *buf, size_t len)
{
	control_server_console_output(opaque, buf, len);
}

static int monitor_start(void *opaque, struct console *console)
{
	ctl.console = console;
	struct control_handlers h = {.console_input = h_console_input};
	memcpy(h.cmd, machine_control_handlers, sizeof(h.cmd));
	struct control_server *s;
	if (control_server_start(ctl.path, ctl.name, &h, &s) < 0)
		return -1;
	ctl.server = s;
	if (console_add_observer(console, forward_output, s) < 0) {
		control_server_stop(s);
		ctl.server = NULL;
		return -1;
	}
	return 0;
}

/* The driver moved `actual`: BALLOON_CHANGE with the guest's memory in bytes, as QEMU. */
static void balloon_changed(void *opaque, uint32_t actual)
{
	struct vm *vm = opaque;
	uint64_t held = (uint64_t)actual << 12;
	uint64_t bytes = held < vm->mem.ram_size ? vm->mem.ram_size - held : 0;
	control_server_emit_event(ctl.server, "BALLOON_CHANGE",
				  json_pack("{s:I}", "actual", (json_int_t)bytes));
}

static void monitor_boot_started(void *opaque, struct vm *vm)
{
	if (vm->virtio_ready && vm->virtio.balloon)
		virtio_balloon_on_actual(vm->virtio.balloon, balloon_changed, vm);
}

static void monitor_boot_ended(void *opaque, enum vm_exit why)
{
	if (why == VM_RESET)
		control_server_emit_event(ctl.server, "RESET", NULL);
	else
		control_server_emit_event(ctl.server, "SHUTDOWN", NULL);
}

static void monitor_stop(void *opaque)
{
	control_server_stop(ctl.server);
	ctl.server = NULL;
}

void machine_control_monitor(struct machine_monitor *mon, const char *path, const char *name)
{
	ctl.path = path;
	ctl.name = name;
	*mon = (struct machine_monitor){.start = monitor_start,
					.boot_started = monitor_boot_started,
					.boot_ended = monitor_boot_ended,
					.stop = monitor_stop};
}

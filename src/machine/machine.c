#include "machine/machine.h"
#include "util/err.h"
#include "machine/milestones.h"
#include "kvm/pvm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The boot in progress, for the threads that end it from outside (signals, Ctrl-A x). */
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vm *current_vm;
static int quit_signal;

static void request_quit(int sig)
{
	pthread_mutex_lock(&current_lock);
	if (sig)
		quit_signal = sig;
	if (current_vm)
		vm_request_exit(current_vm, VM_QUIT);
	pthread_mutex_unlock(&current_lock);
}

void machine_request_quit(void)
{
	request_quit(0);
}

int machine_with_current(int (*fn)(struct vm *vm, void *arg), void *arg)
{
	pthread_mutex_lock(&current_lock);
	struct vm *vm = current_vm;
	int r = vm ? fn(vm, arg) : MACHINE_BETWEEN_BOOTS;
	pthread_mutex_unlock(&current_lock);
	return r;
}

static void console_quit(void *opaque)
{
	(void)opaque;
	request_quit(0);
}

static void set_current(struct vm *vm)
{
	pthread_mutex_lock(&current_lock);
	current_vm = vm;
	bool quitting = quit_signal != 0;
	pthread_mutex_unlock(&current_lock);
	if (vm && quitting)
		vm_request_exit(vm, VM_QUIT);
}

static void *signal_main(void *arg)
{
	sigset_t *set = arg;
	for (;;) {
		int sig;
		if (sigwait(set, &sig) != 0)
			continue;
		request_quit(sig);
	}
	return NULL;
}

/* SIGINT/SIGTERM/SIGHUP end the run cleanly (terminal restored) on a thread of their own. */
static int start_signal_thread(void)
{
	static sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* A console reader that goes away must not kill the VM: writes just fail. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return kite_error_errno(errno, "signal(SIGPIPE)");
	int err = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (err)
		return kite_error_errno(err, "pthread_sigmask");
	pthread_t t;
	err = pthread_create(&t, NULL, signal_main, &set);
	if (err)
		return kite_error_errno(err, "cannot start the signal thread");
	pthread_detach(t);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_stats(const struct vm_stats *st, double seconds)
{
	fprintf(stderr, "kite: stats: %.3f s, KVM exits by reason:\n", seconds);
	for (unsigned i = 0; i < VCPU_EXIT_COUNTERS; i++)
		if (st->exits[i])
			fprintf(stderr, "kite: stats:   %-16s %llu\n", kvm_exit_name(i),
				(unsigned long long)st->exits[i]);
	if (st->ioeventfd_notifies)
		fprintf(stderr, "kite: stats: virtio notifications through ioeventfd: %llu\n",
			(unsigned long long)st->ioeventfd_notifies);
	if (st->msix_irqfd || st->msix_ioctl)
		fprintf(stderr,
			"kite: stats: MSI-X messages through irqfd: %llu, through KVM_SIGNAL_MSI: "
			"%llu\n",
			(unsigned long long)st->msix_irqfd, (unsigned long long)st->msix_ioctl);
	if (st->pvm_fallbacks.total) {
		char by[512];
		pvm_stats_format(&st->pvm_fallbacks, by, sizeof(by));
		fprintf(stderr, "kite: stats:   PVM fallbacks    %llu (%s)\n",
			(unsigned long long)st->pvm_fallbacks.total, by);
	}
}

/* The console's host end: a terminal unless the run is detached; a file for file:PATH. */
static enum console_kind console_host_end(const struct machine_run_options *opt)
{
	switch (opt->machine->console) {
	case MACHINE_CONSOLE_FILE:
		return CONSOLE_FILE;
	case MACHINE_CONSOLE_NONE:
		return CONSOLE_NONE;
	case MACHINE_CONSOLE_SERIAL:
	case MACHINE_CONSOLE_VIRTIO:
		break;
	}
	return opt->detached ? CONSOLE_NONE : CONSOLE_STDIO;
}

int machine_run(const struct machine_run_options *opt)
{
	struct console console;
	struct kvm_host_facts host;
	struct kvm_host kvm = {.fd = -1};
	struct vm vm;
	struct vm_stats stats = {0};
	struct milestones milestones;
	double start = now_s();
	int code = KITE_EXIT_ERROR;

	/* The console's address is known before it opens: --console virtio wires it now. */
	struct vm_config cfg = {.machine = opt->machine,
				.no_pvm_defaults = opt->no_pvm_defaults,
				.restore = opt->restore};
	if (opt->machine->console == MACHINE_CONSOLE_VIRTIO)
		cfg.virtio_console = &console;
	/* The host is looked at once: every boot of this run sees the same facts. */
	kvm_host_probe(&host);
	/* Everything that can be wrong with the input is found before KVM is touched. */
	if (vm_prepare(&vm, &cfg, &host) < 0) {
		vm_destroy(&vm);
		return KITE_EXIT_ERROR;
	}
	if (kvm_host_open(&kvm, &host) < 0) {
		vm_destroy(&vm);
		return KITE_EXIT_ERROR;
	}
	if (kvm.pvm)
		kite_notice("KVM-PVM host: guest kernel code runs emulated here (slow), guest user "
			    "code natively%s",
			    vm.pvm_cmdline ? "; kernel command line + " PVM_LINUX_CMDLINE : "");
	if (start_signal_thread() < 0 ||
	    console_open(&console, console_host_end(opt), opt->machine->console_path) < 0) {
		vm_destroy(&vm);
		kvm_host_close(&kvm);
		return KITE_EXIT_ERROR;
	}
	console_on_quit(&console, console_quit, NULL);
	milestones_init(&milestones);
	if (opt->stats)
		(void)console_add_observer(&console, milestones_observe, &milestones);
	const struct machine_monitor *mon = opt->monitor;
	if (mon && mon->start && mon->start(mon->opaque, &console) < 0) {
		vm_destroy(&vm);
		console_close(&console);
		kvm_host_close(&kvm);
		milestones_destroy(&milestones);
		return KITE_EXIT_ERROR;
	}

	for (bool first = true;; first = false) {
		cfg.restore = first ? opt->restore : NULL; /* a reboot boots the kernel */
		if (!first && vm_prepare(&vm, &cfg, &host) < 0) {
			vm_destroy(&vm);
			break;
		}
		vm.stats = &stats;
		if (mon && mon->boot_started)
			mon->boot_started(mon->opaque, &vm);
		set_current(&vm);
		enum vm_exit why = VM_ERROR;
		if (vm_start(&vm, &kvm, &console) == 0)
			why = vm_wait(&vm);
		uint32_t guest_code = vm.guest_exit_code;
		set_current(NULL);
		vm_destroy(&vm);
		if (mon && mon->boot_ended)
			mon->boot_ended(mon->opaque, why);
		if (why == VM_RESET && !opt->no_reboot)
			continue;
		switch (why) {
		case VM_GUEST_EXIT:
			/* As QEMU's isa-debug-exit; the shell sees the low 8 bits. */
			code = (int)(((guest_code << 1) | 1) & 0xff);
			break;
		case VM_POWEROFF:
		case VM_RESET:
			code = KITE_EXIT_OK;
			break;
		case VM_QUIT:
			if (quit_signal)
				kite_notice("terminating on signal %d", quit_signal);
			code = KITE_EXIT_OK;
			break;
		case VM_CRASH:
			code = KITE_EXIT_CRASH;
			break;
		default:
			code = KITE_EXIT_ERROR;
			break;
		}
		break;
	}
	if (mon && mon->stop)
		mon->stop(mon->opaque);
	console_close(&console);
	kvm_host_close(&kvm);
	if (opt->stats) {
		print_stats(&stats, now_s() - start);
		milestones_print(&milestones, stderr);
	}
	milestones_destroy(&milestones);
	return code;
}

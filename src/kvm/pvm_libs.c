/* Unicorn and Capstone, loaded when the first PVM fallback needs them.
 *
 * They are 26 MB of shared objects with some 140,000 relocations: linked into kite, every
 * command (`kite img info` included) paid about 20 ms of dynamic loading and page-ins for
 * libraries only a KVM-PVM host ever uses. So kite is not linked against them: this file
 * defines the functions pvm_emulate.c calls, with the libraries' own prototypes (the
 * compiler checks them against the headers), each forwarding to the symbol dlsym found.
 * pvm_libs_load() must succeed before any of them is called; pvm_emu_new() does that. */
#include "kvm/pvm_libs.h"
#include "util/err.h"

#include <capstone/capstone.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unicorn/unicorn.h>

#ifndef KITE_UNICORN_SO
#define KITE_UNICORN_SO "libunicorn.so.2"
#endif
#ifndef KITE_CAPSTONE_SO
#define KITE_CAPSTONE_SO "libcapstone.so.4"
#endif

static struct {
	__typeof__(uc_open) *uc_open;
	__typeof__(uc_close) *uc_close;
	__typeof__(uc_strerror) *uc_strerror;
	__typeof__(uc_ctl) *uc_ctl;
	__typeof__(uc_reg_read) *uc_reg_read;
	__typeof__(uc_reg_write) *uc_reg_write;
	__typeof__(uc_mem_map_ptr) *uc_mem_map_ptr;
	__typeof__(uc_mem_unmap) *uc_mem_unmap;
	__typeof__(uc_emu_start) *uc_emu_start;
	__typeof__(uc_emu_stop) *uc_emu_stop;
	__typeof__(uc_hook_add) *uc_hook_add;
	__typeof__(uc_context_alloc) *uc_context_alloc;
	__typeof__(uc_context_free) *uc_context_free;
	__typeof__(uc_context_save) *uc_context_save;
	__typeof__(uc_context_restore) *uc_context_restore;
	__typeof__(cs_open) *cs_open;
	__typeof__(cs_close) *cs_close;
	__typeof__(cs_option) *cs_option;
	__typeof__(cs_disasm) *cs_disasm;
	__typeof__(cs_free) *cs_free;
} lib;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512]; /* empty: loaded */

static int resolve(void *handle, const char *so, const char *name, void **slot)
{
	*slot = dlsym(handle, name);
	if (*slot)
		return 0;
	snprintf(load_error, sizeof(load_error), "%s has no %s", so, name);
	return -1;
}

#define RESOLVE(h, so, name) resolve(h, so, #name, (void **)&lib.name)

static void load(void)
{
	void *uc = dlopen(KITE_UNICORN_SO, RTLD_NOW | RTLD_LOCAL);
	void *cs = uc ? dlopen(KITE_CAPSTONE_SO, RTLD_NOW | RTLD_LOCAL) : NULL;
	if (!uc || !cs) {
		snprintf(load_error, sizeof(load_error), "%s", dlerror());
		return;
	}
	const char *u = KITE_UNICORN_SO, *c = KITE_CAPSTONE_SO;
	if (RESOLVE(uc, u, uc_open) || RESOLVE(uc, u, uc_close) || RESOLVE(uc, u, uc_strerror) ||
	    RESOLVE(uc, u, uc_ctl) || RESOLVE(uc, u, uc_reg_read) || RESOLVE(uc, u, uc_reg_write) ||
	    RESOLVE(uc, u, uc_mem_map_ptr) || RESOLVE(uc, u, uc_mem_unmap) ||
	    RESOLVE(uc, u, uc_emu_start) || RESOLVE(uc, u, uc_emu_stop) ||
	    RESOLVE(uc, u, uc_hook_add) || RESOLVE(uc, u, uc_context_alloc) ||
	    RESOLVE(uc, u, uc_context_free) || RESOLVE(uc, u, uc_context_save) ||
	    RESOLVE(uc, u, uc_context_restore) || RESOLVE(cs, c, cs_open) ||
	    RESOLVE(cs, c, cs_close) || RESOLVE(cs, c, cs_option) || RESOLVE(cs, c, cs_disasm) ||
	    RESOLVE(cs, c, cs_free))
		return;
}

int pvm_libs_load(void)
{
	pthread_once(&load_once, load);
	if (load_error[0])
		return kite_error("PVM fallback: cannot load Unicorn and Capstone: %s", load_error);
	return 0;
}

uc_err uc_open(uc_arch arch, uc_mode mode, uc_engine **uc)
{
	return lib.uc_open(arch, mode, uc);
}

uc_err uc_close(uc_engine *uc)
{
	return lib.uc_close(uc);
}

const char *uc_strerror(uc_err code)
{
	return lib.uc_strerror(code);
}

/* Variadic: only the request kite makes, uc_ctl_remove_cache (two uint64_t), is passed on. */
uc_err uc_ctl(uc_engine *uc, uc_control_type control, ...)
{
	if (control != UC_CTL_WRITE(UC_CTL_TB_REMOVE_CACHE, 2))
		return UC_ERR_ARG;
	va_list ap;
	va_start(ap, control);
	uint64_t begin = va_arg(ap, uint64_t);
	uint64_t end = va_arg(ap, uint64_t);
	va_end(ap);
	return lib.uc_ctl(uc, control, begin, end);
}

uc_err uc_reg_read(uc_engine *uc, int regid, void *value)
{
	return lib.uc_reg_read(uc, regid, value);
}

uc_err uc_reg_write(uc_engine *uc, int regid, const void *value)
{
	return lib.uc_reg_write(uc, regid, value);
}

uc_err uc_mem_map_ptr(uc_engine *uc, uint64_t address, size_t size, uint32_t perms, void *ptr)
{
	return lib.uc_mem_map_ptr(uc, address, size, perms, ptr);
}

uc_err uc_mem_unmap(uc_engine *uc, uint64_t address, size_t size)
{
	return lib.uc_mem_unmap(uc, address, size);
}

uc_err uc_emu_start(uc_engine *uc, uint64_t begin, uint64_t until, uint64_t timeout, size_t count)
{
	return lib.uc_emu_start(uc, begin, until, timeout, count);
}

uc_err uc_emu_stop(uc_engine *uc)
{
	return lib.uc_emu_stop(uc);
}

/* Variadic for UC_HOOK_INSN's instruction id only, a hook kite does not add. */
uc_err uc_hook_add(uc_engine *uc, uc_hook *hh, int type, void *callback, void *user_data,
		   uint64_t begin, uint64_t end, ...)
{
	if (type & UC_HOOK_INSN)
		return UC_ERR_HOOK;
	return lib.uc_hook_add(uc, hh, type, callback, user_data, begin, end);
}

uc_err uc_context_alloc(uc_engine *uc, uc_context **context)
{
	return lib.uc_context_alloc(uc, context);
}

uc_err uc_context_free(uc_context *context)
{
	return lib.uc_context_free(context);
}

uc_err uc_context_save(uc_engine *uc, uc_context *context)
{
	return lib.uc_context_save(uc, context);
}

uc_err uc_context_restore(uc_engine *uc, uc_context *context)
{
	return lib.uc_context_restore(uc, context);
}

cs_err cs_open(cs_arch arch, cs_mode mode, csh *handle)
{
	return lib.cs_open(arch, mode, handle);
}

cs_err cs_close(csh *handle)
{
	return lib.cs_close(handle);
}

cs_err cs_option(csh handle, cs_opt_type type, size_t value)
{
	return lib.cs_option(handle, type, value);
}

size_t cs_disasm(csh handle, const uint8_t *code, size_t code_size, uint64_t address, size_t count,
		 cs_insn **insn)
{
	return lib.cs_disasm(handle, code, code_size, address, count, insn);
}

void cs_free(cs_insn *insn, size_t count)
{
	lib.cs_free(insn, count);
}

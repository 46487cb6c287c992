/* The machine's own fields (one table: the options and the JSON reader both set them through
 * machine_config_set) and the rules every machine obeys. The device lists: machine_devices.c. */
#include "config/machine_config.h"
#include "config/option_text.h"
#include "util/err.h"
#include "util/size.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void machine_config_init(struct machine_config *m)
{
	memset(m, 0, sizeof(*m));
	m->memory = 512ULL << 20;
	m->vcpus = 1;
	m->console = MACHINE_CONSOLE_SERIAL;
}

void machine_config_init_definition(struct machine_config *m)
{
	machine_config_init(m);
	m->balloon = true;
}

void machine_config_finish(struct machine_config *m)
{
	if (!m->current_memory)
		m->current_memory = m->memory;
}

void machine_config_free(struct machine_config *m)
{
	free(m->kernel);
	free(m->initrd);
	free(m->append);
	free(m->console_path);
	for (int i = 0; i < m->ndisks; i++)
		disk_config_free(&m->disks[i]);
	for (int i = 0; i < m->nfw_cfg; i++)
		fw_cfg_config_free(&m->fw_cfg[i]);
	memset(m, 0, sizeof(*m));
}

static int set_string(char **slot, const char *v, const char *ctx, bool may_be_empty)
{
	if (!*v && !may_be_empty)
		return kite_error("%s: is empty", ctx);
	char *s = strdup(v);
	if (!s)
		return kite_error("out of memory");
	free(*slot);
	*slot = s;
	return 0;
}

static int set_name(struct machine_config *m, const char *v, const char *ctx)
{
	if (machine_name_check(v) < 0)
		return -1;
	snprintf(m->name, sizeof(m->name), "%s", v);
	return 0;
}

static int set_uuid(struct machine_config *m, const char *v, const char *ctx)
{
	if (!uuid_valid(v))
		return kite_error(
		    "%s: '%s' is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", ctx, v);
	snprintf(m->uuid, sizeof(m->uuid), "%s", v);
	return 0;
}

static int set_kernel(struct machine_config *m, const char *v, const char *ctx)
{
	return set_string(&m->kernel, v, ctx, false);
}

static int set_initrd(struct machine_config *m, const char *v, const char *ctx)
{
	return set_string(&m->initrd, v, ctx, false);
}

static int set_append(struct machine_config *m, const char *v, const char *ctx)
{
	return set_string(&m->append, v, ctx, true);
}

/* A bare number is MiB, as `kite run -m` and QEMU's -m take it. */
static int parse_memory(const char *v, uint64_t *out, const char *ctx)
{
	if (parse_size(v, 1ULL << 20, out) < 0)
		return kite_error("%s: '%s' is not a size (a bare number is MiB; 512M, 2G)", ctx,
				  v);
	if (*out < MACHINE_MIN_MEMORY || *out > MACHINE_MAX_MEMORY)
		return kite_error("%s: %s is not between %llu MiB and %llu PiB", ctx, v,
				  MACHINE_MIN_MEMORY >> 20, MACHINE_MAX_MEMORY >> 50);
	if (*out & 0xfff)
		return kite_error("%s: %s is not a multiple of 4 KiB", ctx, v);
	return 0;
}

static int set_memory(struct machine_config *m, const char *v, const char *ctx)
{
	return parse_memory(v, &m->memory, ctx);
}

static int set_current_memory(struct machine_config *m, const char *v, const char *ctx)
{
	return parse_memory(v, &m->current_memory, ctx);
}

static int set_vcpus(struct machine_config *m, const char *v, const char *ctx)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (!*v || *end || n < 1 || n > MACHINE_MAX_VCPUS)
		return kite_error("%s: '%s' is not a number from 1 to %d", ctx, v,
				  MACHINE_MAX_VCPUS);
	m->vcpus = (unsigned)n;
	return 0;
}

static int set_console(struct machine_config *m, const char *v, const char *ctx)
{
	if (!strncmp(v, "file:", 5) && v[5]) {
		if (set_string(&m->console_path, v + 5, ctx, false) < 0)
			return -1;
		m->console = MACHINE_CONSOLE_FILE;
		return 0;
	}
	/* "stdio" is kite run's older name for the serial console on its terminal. */
	if (!strcmp(v, "serial") || !strcmp(v, "stdio"))
		m->console = MACHINE_CONSOLE_SERIAL;
	else if (!strcmp(v, "virtio"))
		m->console = MACHINE_CONSOLE_VIRTIO;
	else if (!strcmp(v, "none"))
		m->console = MACHINE_CONSOLE_NONE;
	else
		return kite_error("%s: '%s' is not serial, virtio, none or file:PATH", ctx, v);
	free(m->console_path);
	m->console_path = NULL;
	return 0;
}

static int set_rng(struct machine_config *m, const char *v, const char *ctx)
{
	return option_parse_bool(v, &m->rng, ctx);
}

static int set_balloon(struct machine_config *m, const char *v, const char *ctx)
{
	return option_parse_bool(v, &m->balloon, ctx);
}

static int set_autostart(struct machine_config *m, const char *v, const char *ctx)
{
	return option_parse_bool(v, &m->autostart, ctx);
}

#define EXIT_DEVICE_PORTS 4 /* devices/debug_exit.h: DEBUG_EXIT_LEN */

/* "port=N" (QEMU's isa-debug-exit iobase), or "off". */
static int set_exit_device(struct machine_config *m, const char *v, const char *ctx)
{
	if (!strcmp(v, "off")) {
		m->exit_device = false;
		m->exit_port = 0;
		return 0;
	}
	if (strncmp(v, "port=", 5) != 0)
		return kite_error("%s: '%s' is not port=N or off", ctx, v);
	const char *num = v + 5;
	char *end = NULL;
	errno = 0;
	unsigned long port = strtoul(num, &end, 0);
	if (!*num || *num == '-' || *end || errno || port > 0x10000 - EXIT_DEVICE_PORTS)
		return kite_error("%s: port '%s' is not an I/O port from 0 to 0x%x", ctx, num,
				  0x10000 - EXIT_DEVICE_PORTS);
	m->exit_device = true;
	m->exit_port = (uint16_t)port;
	return 0;
}

void machine_exit_device_format(const struct machine_config *m, char out[16])
{
	if (m->exit_device)
		snprintf(out, 16, "port=0x%x", m->exit_port);
	else
		snprintf(out, 16, "off");
}

void machine_cpu_format(const struct machine_config *m, char out[MACHINE_CPU_TEXT_MAX])
{
	cpu_config_format(&m->cpu, out, MACHINE_CPU_TEXT_MAX);
}

static int set_cpu(struct machine_config *m, const char *v, const char *ctx)
{
	return cpu_config_parse(v, &m->cpu, ctx);
}

static int set_testdev(struct machine_config *m, const char *v, const char *ctx)
{
	return option_parse_bool(v, &m->testdev, ctx);
}

static int add_fw_cfg(struct machine_config *m, const char *v, const char *ctx)
{
	struct fw_cfg_config c;
	if (fw_cfg_config_parse(v, &c, ctx) < 0)
		return -1;
	int r = 0;
	for (int i = 0; i < m->nfw_cfg && r == 0; i++)
		if (!strcmp(m->fw_cfg[i].name, c.name))
			r = kite_error("%s: fw_cfg file '%s' named twice", ctx, c.name);
	if (r == 0 && m->nfw_cfg == MACHINE_MAX_FW_CFG)
		r = kite_error("%s: more than %d fw_cfg files", ctx, MACHINE_MAX_FW_CFG);
	if (r < 0) {
		fw_cfg_config_free(&c);
		return -1;
	}
	m->fw_cfg[m->nfw_cfg++] = c;
	return 0;
}

static int add_disk_spec(struct machine_config *m, const char *v, const char *ctx)
{
	struct disk_config d;
	if (disk_config_parse(v, &d, ctx) < 0)
		return -1;
	return machine_config_add_disk(m, &d, ctx);
}

static int add_nic_spec(struct machine_config *m, const char *v, const char *ctx)
{
	struct nic_config n;
	if (nic_config_parse(v, &n, ctx) < 0)
		return -1;
	return machine_config_add_nic(m, &n, ctx);
}

static int refuse_share(struct machine_config *m, const char *v, const char *ctx)
{
	return kite_error("%s: shared directories are not supported yet (kite has no virtio-fs); "
			  "copy files in with 'kite guest copy-in' or use a disk",
			  ctx);
}

struct machine_field {
	const char *name; /* the JSON key */
	enum machine_field_type type;
	int (*set)(struct machine_config *m, const char *value, const char *ctx);
};

static const struct machine_field fields[] = {
    {"name", FIELD_STRING, set_name},
    {"uuid", FIELD_STRING, set_uuid},
    {"memory", FIELD_SIZE, set_memory},
    {"current_memory", FIELD_SIZE, set_current_memory},
    {"vcpus", FIELD_COUNT, set_vcpus},
    {"kernel", FIELD_STRING, set_kernel},
    {"initrd", FIELD_STRING, set_initrd},
    {"append", FIELD_STRING, set_append},
    {"disks", FIELD_LIST, add_disk_spec},
    {"nics", FIELD_LIST, add_nic_spec},
    {"shares", FIELD_LIST, refuse_share},
    {"console", FIELD_STRING, set_console},
    {"rng", FIELD_BOOL, set_rng},
    {"balloon", FIELD_BOOL, set_balloon},
    {"autostart", FIELD_BOOL, set_autostart},
    {"exit_device", FIELD_STRING, set_exit_device},
    {"testdev", FIELD_BOOL, set_testdev},
    {"cpu", FIELD_STRING, set_cpu},
    {"fw_cfg", FIELD_LIST, add_fw_cfg},
};

static const struct machine_field *find_field(const char *name)
{
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!strcmp(fields[i].name, name))
			return &fields[i];
	return NULL;
}

enum machine_field_type machine_field_type(const char *field)
{
	const struct machine_field *f = find_field(field);
	return f ? f->type : FIELD_UNKNOWN;
}

int machine_config_set(struct machine_config *m, const char *field, const char *value,
		       const char *ctx)
{
	const struct machine_field *f = find_field(field);
	if (!f)
		return kite_error("%s: unknown field '%s'", ctx, field);
	if (!value && f->type != FIELD_BOOL)
		return kite_error("%s: needs a value", ctx);
	return f->set(m, value, ctx);
}

int machine_config_validate(const struct machine_config *m, const char *where)
{
	if (m->name[0] && machine_name_check(m->name) < 0)
		return -1;
	if (!m->kernel || !*m->kernel)
		return kite_error("%s: kernel is required", where);
	if (m->memory < MACHINE_MIN_MEMORY || m->memory > MACHINE_MAX_MEMORY || m->memory & 0xfff)
		return kite_error("%s: memory must be a multiple of 4 KiB from %llu MiB to %llu "
				  "PiB",
				  where, MACHINE_MIN_MEMORY >> 20, MACHINE_MAX_MEMORY >> 50);
	if (m->current_memory > m->memory)
		return kite_error("%s: current_memory (%" PRIu64
				  " KiB) is more than memory (%" PRIu64 " KiB)",
				  where, m->current_memory >> 10, m->memory >> 10);
	if (m->current_memory < m->memory && m->current_memory < BALLOON_MIN_MEMORY)
		return kite_error("%s: current_memory (%" PRIu64 " KiB) is below the balloon's "
				  "floor: at least %llu MiB, or all of memory",
				  where, m->current_memory >> 10, BALLOON_MIN_MEMORY >> 20);
	if (m->current_memory < m->memory && !m->balloon)
		return kite_error("%s: current_memory below memory needs a balloon (balloon: on)",
				  where);
	if (m->vcpus < 1 || m->vcpus > MACHINE_MAX_VCPUS)
		return kite_error("%s: vcpus must be a number from 1 to %d", where,
				  MACHINE_MAX_VCPUS);
	if (m->console == MACHINE_CONSOLE_FILE && (!m->console_path || !*m->console_path))
		return kite_error("%s: console file:PATH needs a path", where);
	if (m->ndisks < 0 || m->ndisks > MACHINE_MAX_DISKS || m->nnics < 0 ||
	    m->nnics > MACHINE_MAX_NICS)
		return kite_error("%s: too many devices", where);
	for (int i = 0; i < m->ndisks; i++) {
		const struct disk_config *d = &m->disks[i];
		if (!d->path || !*d->path || !disk_target_valid(d->target))
			return kite_error("%s: disk %d has no path or no target", where, i);
		for (int j = 0; j < i; j++) {
			if (!strcmp(d->target, m->disks[j].target))
				return kite_error("%s: two disks use target %s", where, d->target);
			if (!strcmp(d->path, m->disks[j].path))
				return kite_error("%s: disk %s is attached twice (%s and %s)",
						  where, d->path, m->disks[j].target, d->target);
		}
	}
	for (int i = 0; i < m->nnics; i++) {
		struct nic_user_addrs a;
		if (nic_config_check(&m->nics[i], where) < 0 ||
		    (m->nics[i].kind == NIC_USER &&
		     nic_user_resolve(&m->nics[i], (unsigned)i, &a, where) < 0))
			return -1;
		for (int j = 0; j < i; j++)
			if (m->nics[i].mac_set && m->nics[j].mac_set &&
			    !memcmp(m->nics[i].mac, m->nics[j].mac, 6)) {
				char mac[18];
				mac_format(m->nics[i].mac, mac);
				return kite_error("%s: two NICs use MAC %s", where, mac);
			}
	}
	return 0;
}

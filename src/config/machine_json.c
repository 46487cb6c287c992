/* The JSON form of a machine (docs/control-protocol.md, "Definitions"). The reader turns each
 * value into the text its option takes and calls the same setters as the options, so a field
 * means the same thing in both. */
#include "config/machine_config.h"
#include "util/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_list_entry(struct machine_config *m, const char *key, json_t *e, const char *ctx)
{
	if (json_is_string(e))
		return machine_config_set(m, key, json_string_value(e), ctx);
	if (!strcmp(key, "disks")) {
		struct disk_config d;
		if (disk_config_from_json(e, &d, ctx) < 0)
			return -1;
		return machine_config_add_disk(m, &d, ctx);
	}
	if (!strcmp(key, "nics")) {
		struct nic_config n;
		if (nic_config_from_json(e, &n, ctx) < 0)
			return -1;
		return machine_config_add_nic(m, &n, ctx);
	}
	return machine_config_set(m, key, "", ctx); /* shares: refused with the reason */
}

static int read_field(struct machine_config *m, const char *key, json_t *v, const char *where)
{
	char ctx[600], text[32];
	snprintf(ctx, sizeof(ctx), "%s: %s", where, key);
	switch (machine_field_type(key)) {
	case FIELD_UNKNOWN:
		return kite_error("%s: unknown field '%s'", where, key);
	case FIELD_STRING:
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
			return kite_error("%s must be a string", ctx);
		return machine_config_set(m, key, json_string_value(v), ctx);
	case FIELD_BOOL:
		if (!json_is_boolean(v))
			return kite_error("%s must be true or false", ctx);
		return machine_config_set(m, key, json_is_true(v) ? "on" : "off", ctx);
	case FIELD_SIZE:
		if (json_is_string(v))
			return machine_config_set(m, key, json_string_value(v), ctx);
		if (!json_is_integer(v) || json_integer_value(v) <= 0)
			return kite_error("%s must be a number of bytes or a size like \"512M\"",
					  ctx);
		snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT "B", json_integer_value(v));
		return machine_config_set(m, key, text, ctx);
	case FIELD_COUNT:
		if (!json_is_integer(v))
			return kite_error("%s must be a number", ctx);
		snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return machine_config_set(m, key, text, ctx);
	case FIELD_LIST:
		break;
	}
	if (!json_is_array(v))
		return kite_error("%s must be a list", ctx);
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e)
	{
		snprintf(ctx, sizeof(ctx), "%s: %s[%zu]", where, key, i);
		if (read_list_entry(m, key, e, ctx) < 0)
			return -1;
	}
	return 0;
}

int machine_config_from_json(json_t *root, const char *where, struct machine_config *m)
{
	machine_config_init_definition(m);
	if (!json_is_object(root))
		return kite_error("%s: a definition must be a JSON object", where);
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		if (json_is_null(v) && machine_field_type(key) != FIELD_UNKNOWN)
			continue;
		if (read_field(m, key, v, where) < 0)
			goto fail;
	}
	machine_config_finish(m);
	if (machine_config_validate(m, where) < 0)
		goto fail;
	return 0;
fail:
	machine_config_free(m);
	return -1;
}

static const char *console_text(const struct machine_config *m, char **buf)
{
	*buf = NULL;
	switch (m->console) {
	case MACHINE_CONSOLE_VIRTIO:
		return "virtio";
	case MACHINE_CONSOLE_NONE:
		return "none";
	case MACHINE_CONSOLE_FILE:
		if (asprintf(buf, "file:%s", m->console_path) < 0)
			*buf = NULL;
		return *buf;
	case MACHINE_CONSOLE_SERIAL:
		break;
	}
	return "serial";
}

static json_t *devices_to_json(const struct machine_config *m, bool disks)
{
	json_t *a = json_array();
	int n = disks ? m->ndisks : m->nnics;
	for (int i = 0; a && i < n; i++) {
		json_t *o =
		    disks ? disk_config_to_json(&m->disks[i]) : nic_config_to_json(&m->nics[i]);
		if (json_array_append_new(a, o)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* The --fw-cfg option texts, or NULL (reported). */
static json_t *fw_cfg_to_json(const struct machine_config *m)
{
	json_t *a = json_array();
	for (int i = 0; a && i < m->nfw_cfg; i++) {
		char *text = fw_cfg_config_format(&m->fw_cfg[i]);
		if (!text || json_array_append_new(a, json_string(text)) < 0) {
			free(text);
			json_decref(a);
			return NULL;
		}
		free(text);
	}
	return a;
}

json_t *machine_config_to_json(const struct machine_config *m)
{
	json_t *root = json_object();
	char exit_device[16];
	machine_exit_device_format(m, exit_device);
	char cpu[MACHINE_CPU_TEXT_MAX];
	machine_cpu_format(m, cpu);
	char *console_buf;
	const char *console = console_text(m, &console_buf);
	if (!root || !console ||
	    (m->name[0] && json_object_set_new(root, "name", json_string(m->name))) ||
	    (m->uuid[0] && json_object_set_new(root, "uuid", json_string(m->uuid))) ||
	    json_object_set_new(root, "memory", json_integer((json_int_t)m->memory)) ||
	    json_object_set_new(
		root, "current_memory",
		json_integer((json_int_t)(m->current_memory ? m->current_memory : m->memory))) ||
	    json_object_set_new(root, "vcpus", json_integer(m->vcpus)) ||
	    (m->kernel && json_object_set_new(root, "kernel", json_string(m->kernel))) ||
	    (m->initrd && json_object_set_new(root, "initrd", json_string(m->initrd))) ||
	    (m->append && json_object_set_new(root, "append", json_string(m->append))) ||
	    json_object_set_new(root, "disks", devices_to_json(m, true)) ||
	    json_object_set_new(root, "nics", devices_to_json(m, false)) ||
	    json_object_set_new(root, "console", json_string(console)) ||
	    json_object_set_new(root, "rng", json_boolean(m->rng)) ||
	    json_object_set_new(root, "balloon", json_boolean(m->balloon)) ||
	    json_object_set_new(root, "autostart", json_boolean(m->autostart)) ||
	    (m->exit_device &&
	     json_object_set_new(root, "exit_device", json_string(exit_device))) ||
	    (m->testdev && json_object_set_new(root, "testdev", json_true())) ||
	    (!cpu_config_is_default(&m->cpu) &&
	     json_object_set_new(root, "cpu", json_string(cpu))) ||
	    (m->nfw_cfg && json_object_set_new(root, "fw_cfg", fw_cfg_to_json(m)))) {
		free(console_buf);
		json_decref(root);
		kite_error("out of memory");
		return NULL;
	}
	free(console_buf);
	return root;
}

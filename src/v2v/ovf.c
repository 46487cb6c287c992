/* OVF with libxml2 (Debian's libxml2: a complete, maintained XML parser; OVF's namespaces,
 * entities and encodings are not something to parse by hand). Elements are matched by their
 * local name inside the OVF envelope, as exporters differ in prefixes (rasd:, epasd:, sasd:). */
#include "v2v/ovf.h"
#include "config/machine_config.h"
#include "util/err.h"

#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OVF_NS_PREFIX "http://schemas.dmtf.org/ovf/envelope/"

static bool named(const xmlNode *n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static const xmlNode *child(const xmlNode *n, const char *name)
{
	for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (named(c, name))
			return c;
	return NULL;
}

/* An element's text, trimmed, into out (empty when absent). */
static void text_of(const xmlNode *n, char *out, size_t size)
{
	out[0] = '\0';
	if (!n)
		return;
	xmlChar *t = xmlNodeGetContent(n);
	if (!t)
		return;
	const char *s = (const char *)t;
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	snprintf(out, size, "%s", s);
	size_t l = strlen(out);
	while (l && (out[l - 1] == ' ' || out[l - 1] == '\t' || out[l - 1] == '\n' ||
		     out[l - 1] == '\r'))
		out[--l] = '\0';
	xmlFree(t);
}

/* An attribute by local name, whatever its namespace ("ovf:href", "href"). */
static void attr_of(const xmlNode *n, const char *name, char *out, size_t size)
{
	out[0] = '\0';
	for (const xmlAttr *a = n->properties; a; a = a->next) {
		if (strcmp((const char *)a->name, name))
			continue;
		xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
		if (v) {
			snprintf(out, size, "%s", (const char *)v);
			xmlFree(v);
		}
		return;
	}
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s[0] || s[0] == '-' || s[0] == '+')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static uint64_t mul_or_zero(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? 0 : a * b;
}

uint64_t ovf_unit_bytes(const char *units)
{
	static const struct {
		const char *name;
		uint64_t bytes;
	} named_units[] = {
	    {"byte", 1},	{"bytes", 1},
	    {"KB", 1ULL << 10}, {"KiloBytes", 1ULL << 10},
	    {"MB", 1ULL << 20}, {"MegaBytes", 1ULL << 20},
	    {"GB", 1ULL << 30}, {"GigaBytes", 1ULL << 30},
	    {"TB", 1ULL << 40}, {"TeraBytes", 1ULL << 40},
	};
	if (!units[0])
		return 1;
	for (size_t i = 0; i < sizeof(named_units) / sizeof(named_units[0]); i++)
		if (!strcasecmp(units, named_units[i].name))
			return named_units[i].bytes;
	/* DSP0004's programmatic units: "byte * 2^20", "byte * 10^6" */
	unsigned base, exp;
	char tail;
	if (sscanf(units, "byte * %u^%u%c", &base, &exp, &tail) != 2 || (base != 2 && base != 10))
		return 0;
	uint64_t v = 1;
	for (unsigned i = 0; i < exp && v; i++)
		v = mul_or_zero(v, base);
	return v;
}

/* A quantity with its units: bytes, 0 when out of range (reported). */
static int quantity(const char *where, const char *what, const char *value, const char *units,
		    uint64_t *out)
{
	uint64_t n, unit = ovf_unit_bytes(units);
	if (parse_u64(value, &n) < 0)
		return kite_error("%s: %s '%s' is not a number", where, what, value);
	if (!unit)
		return kite_error("%s: %s: unknown allocation units '%s'", where, what, units);
	*out = mul_or_zero(n, unit);
	if (n && !*out)
		return kite_error("%s: %s %s %s is too large", where, what, value, units);
	return 0;
}

struct refs {
	const xmlNode *references, *disks;
};

static const xmlNode *find_by_attr(const xmlNode *section, const char *elem, const char *attr,
				   const char *value)
{
	char v[256];
	for (const xmlNode *c = section ? section->children : NULL; c; c = c->next) {
		if (!named(c, elem))
			continue;
		attr_of(c, attr, v, sizeof(v));
		if (!strcmp(v, value))
			return c;
	}
	return NULL;
}

/* rasd:HostResource "ovf:/disk/ID" (or "/disk/ID") -> DiskSection's Disk -> References' File */
static int add_disk(struct ovf_vm *vm, const struct refs *r, const char *host, const char *where)
{
	const char *id = NULL;
	if (!strncmp(host, "ovf:/disk/", 10))
		id = host + 10;
	else if (!strncmp(host, "/disk/", 6))
		id = host + 6;
	if (!id || !id[0])
		return kite_error("%s: a disk item's HostResource '%s' names no disk of the "
				  "DiskSection",
				  where, host);
	if (vm->ndisks == OVF_MAX_DISKS)
		return kite_error("%s: more than %d disks", where, OVF_MAX_DISKS);
	const xmlNode *disk = find_by_attr(r->disks, "Disk", "diskId", id);
	if (!disk)
		return kite_error("%s: disk '%s' is not in the DiskSection", where, id);
	struct ovf_disk *d = &vm->disks[vm->ndisks];
	char ref[256], cap[64], units[64], compression[32];
	attr_of(disk, "fileRef", ref, sizeof(ref));
	attr_of(disk, "format", d->format, sizeof(d->format));
	attr_of(disk, "capacity", cap, sizeof(cap));
	attr_of(disk, "capacityAllocationUnits", units, sizeof(units));
	if (!ref[0])
		return kite_error("%s: disk '%s' has no file (an empty disk is not imported)",
				  where, id);
	const xmlNode *file = find_by_attr(r->references, "File", "id", ref);
	if (!file)
		return kite_error("%s: disk '%s' names file '%s', which References does not "
				  "list",
				  where, id, ref);
	attr_of(file, "href", d->href, sizeof(d->href));
	attr_of(file, "compression", compression, sizeof(compression));
	if (!d->href[0])
		return kite_error("%s: file '%s' has no href", where, ref);
	d->compressed = compression[0] && strcmp(compression, "identity");
	if (cap[0] && quantity(where, "disk capacity", cap, units, &d->capacity) < 0)
		return -1;
	for (int i = 0; i < vm->ndisks; i++)
		if (!strcmp(vm->disks[i].href, d->href))
			return kite_error("%s: file '%s' is attached twice", where, d->href);
	vm->ndisks++;
	return 0;
}

static int add_nic(struct ovf_vm *vm, const xmlNode *item, const char *where)
{
	char mac[64];
	if (vm->nnics == OVF_MAX_NICS)
		return kite_error("%s: more than %d network adapters (kite attaches at most %d)",
				  where, OVF_MAX_NICS, MACHINE_MAX_NICS);
	struct ovf_nic *n = &vm->nics[vm->nnics++];
	text_of(child(item, "ResourceSubType"), n->model, sizeof(n->model));
	text_of(child(item, "Address"), mac, sizeof(mac));
	if (strlen(mac) == 12) { /* VirtualBox writes the MAC without colons */
		char colons[18];
		snprintf(colons, sizeof(colons), "%.2s:%.2s:%.2s:%.2s:%.2s:%.2s", mac, mac + 2,
			 mac + 4, mac + 6, mac + 8, mac + 10);
		snprintf(mac, sizeof(mac), "%s", colons);
	}
	n->mac_set = mac[0] && mac_parse(mac, n->mac) == 0;
	if (n->mac_set && (n->mac[0] & 1)) /* a multicast address is no NIC's */
		n->mac_set = false;
	return 0;
}

static int hardware_item(struct ovf_vm *vm, const struct refs *r, const xmlNode *item,
			 const char *where)
{
	char type[16], qty[64], units[64], host[300];
	text_of(child(item, "ResourceType"), type, sizeof(type));
	text_of(child(item, "VirtualQuantity"), qty, sizeof(qty));
	text_of(child(item, "AllocationUnits"), units, sizeof(units));
	uint64_t v;
	switch (atoi(type)) {
	case 3: /* processor */
		if (parse_u64(qty, &v) < 0 || v < 1 || v > MACHINE_MAX_VCPUS)
			return kite_error("%s: %s vCPUs: kite gives a machine 1 to %d", where, qty,
					  MACHINE_MAX_VCPUS);
		vm->vcpus = (unsigned)v;
		return 0;
	case 4: /* memory; the default unit of memory is MiB in practice: say it */
		if (quantity(where, "memory", qty, units[0] ? units : "byte * 2^20", &v) < 0)
			return -1;
		if (v < MACHINE_MIN_MEMORY || v > MACHINE_MAX_MEMORY)
			return kite_error("%s: memory %s %s is out of range", where, qty, units);
		vm->memory = v;
		return 0;
	case 10: /* ethernet adapter */
		return add_nic(vm, item, where);
	case 17: /* disk drive */
		text_of(child(item, "HostResource"), host, sizeof(host));
		return host[0] ? add_disk(vm, r, host, where) : 0; /* an empty drive */
	default:
		return 0; /* controllers, CD-ROMs, USB, sound: not kite's */
	}
}

static int read_system(struct ovf_vm *vm, const xmlNode *env, const xmlNode *vs, const char *where)
{
	struct refs r = {child(env, "References"), child(env, "DiskSection")};
	if (!r.disks)
		r.disks = child(env, "VirtualDiskDesc"); /* OVF 0.9 */
	text_of(child(vs, "Name"), vm->name, sizeof(vm->name));
	if (!vm->name[0])
		attr_of(vs, "id", vm->name, sizeof(vm->name));
	const xmlNode *hw = child(vs, "VirtualHardwareSection");
	if (!hw)
		return kite_error("%s: the virtual system has no VirtualHardwareSection", where);
	for (const xmlNode *c = hw->children; c; c = c->next)
		if ((named(c, "Item") || named(c, "EthernetPortItem") || named(c, "StorageItem")) &&
		    hardware_item(vm, &r, c, where) < 0)
			return -1;
	if (!vm->ndisks)
		return kite_error("%s: the virtual system has no disk", where);
	return 0;
}

static int read_envelope(struct ovf_vm *vm, const xmlNode *env, const char *where)
{
	if (!named(env, "Envelope") || !env->ns ||
	    strncmp((const char *)env->ns->href, OVF_NS_PREFIX, strlen(OVF_NS_PREFIX)))
		return kite_error("%s: not an OVF descriptor (no Envelope in the OVF namespace)",
				  where);
	const xmlNode *vs = child(env, "VirtualSystem");
	if (!vs) {
		if (child(env, "VirtualSystemCollection"))
			return kite_error("%s: a collection of virtual systems: kite imports one "
					  "machine per OVA",
					  where);
		return kite_error("%s: no VirtualSystem", where);
	}
	return read_system(vm, env, vs, where);
}

int ovf_parse(const char *xml, size_t len, const char *where, struct ovf_vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	if (len > INT32_MAX)
		return kite_error("%s: too large", where);
	/* no network, no entity substitution, no DTD loading; errors are ours to word */
	int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
	xmlResetLastError();
	xmlDoc *doc = xmlReadMemory(xml, (int)len, where, NULL, opts);
	if (!doc) {
		const xmlError *e = xmlGetLastError();
		char msg[300] = "unknown error";
		if (e && e->message) {
			snprintf(msg, sizeof(msg), "%s", e->message);
			msg[strcspn(msg, "\n")] = '\0';
		}
		return kite_error("%s: not well-formed XML (line %d): %s", where, e ? e->line : 0,
				  msg);
	}
	int r;
	if (doc->intSubset || doc->extSubset)
		r = kite_error("%s: the OVF has a document type declaration (DTD): refused, so "
			       "that no entity is expanded",
			       where);
	else
		r = read_envelope(vm, xmlDocGetRootElement(doc), where);
	xmlFreeDoc(doc);
	return r;
}

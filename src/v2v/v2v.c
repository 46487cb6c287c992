#include "v2v/v2v.h"
#include "block/block.h"
#include "block/convert.h"
#include "util/err.h"
#include "v2v/manifest.h"
#include "v2v/ova.h"
#include "v2v/ovf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define OVF_MAX	     (16u << 20) /* an OVF or manifest larger than this is not read */
#define MANIFEST_MAX (1u << 20)

/* What an import has made so far: removed again if it fails. */
struct import {
	const struct v2v_opts *o;
	char dir[PATH_MAX];
	int dirfd;
	struct ova ova;
	struct manifest mf;
	bool have_mf;
	char name[MACHINE_NAME_MAX + 1];
	char *made[2 * OVF_MAX_DISKS];
	int nmade;
};

void v2v_name_from(const char *ovf_name, char *out, size_t size)
{
	size_t n = 0;
	for (const char *p = ovf_name; *p && n + 1 < size && n < MACHINE_NAME_MAX; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-' || (c == '.' && n);
		out[n++] = ok ? c : '-';
	}
	out[n] = '\0';
}

static int remember(struct import *im, const char *path)
{
	if (im->nmade == (int)(sizeof(im->made) / sizeof(im->made[0])))
		return kite_error("too many files");
	if (!(im->made[im->nmade] = strdup(path)))
		return kite_error("out of memory");
	im->nmade++;
	return 0;
}

static void forget(struct import *im, const char *path)
{
	for (int i = 0; i < im->nmade; i++)
		if (!strcmp(im->made[i], path)) {
			free(im->made[i]);
			im->made[i] = im->made[--im->nmade];
			return;
		}
}

/* DIR/NAME: a name kite made, inside the output directory. */
static int out_path(const struct import *im, const char *name, char *buf, size_t size)
{
	if (snprintf(buf, size, "%s/%s", im->dir, name) >= (int)size)
		return kite_error("%s/%s: path too long", im->dir, name);
	return 0;
}

/* Creates DIR/NAME new (never through a symlink, never replacing a file). */
static int create_new(struct import *im, const char *name, char *path, size_t size)
{
	if (out_path(im, name, path, size) < 0)
		return -1;
	int fd =
	    openat(im->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return kite_error_errno(errno, "%s%s", path,
					errno == EEXIST ? " exists already: not replacing it" : "");
	if (remember(im, path) < 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

struct unpack {
	int fd;
	const char *path;
	struct manifest_hash h;
	bool hash;
};

static int unpack_sink(void *ctx, const void *buf, size_t len)
{
	struct unpack *u = ctx;
	if (u->hash)
		manifest_hash_update(&u->h, buf, len);
	const char *p = buf;
	while (len) {
		ssize_t n = write(u->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kite_error_errno(errno, "%s", u->path);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int check_space(const struct import *im, const struct ova_entry *e)
{
	struct statvfs sv;
	if (fstatvfs(im->dirfd, &sv) < 0)
		return kite_error_errno(errno, "%s", im->dir);
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (e->size > avail)
		return kite_error("%s: '%s' is %llu bytes, and %s has %llu bytes free to unpack it",
				  im->ova.path, e->name, (unsigned long long)e->size, im->dir,
				  (unsigned long long)avail);
	return 0;
}

/* Unpacks entry `e` into DIR/.NAME-sdX.ova-part, checked against the manifest. */
static int unpack(struct import *im, const struct ova_entry *e, int index, char *tmp, size_t size)
{
	char name[NAME_MAX + 1];
	snprintf(name, sizeof(name), ".%s-sd%c.ova-part", im->name, 'a' + index);
	if (check_space(im, e) < 0)
		return -1;
	struct unpack u = {.path = tmp};
	if ((u.fd = create_new(im, name, tmp, size)) < 0)
		return -1;
	const struct manifest_line *l = im->have_mf ? manifest_find(&im->mf, e->name) : NULL;
	if (l) {
		u.hash = true;
		manifest_hash_init(&u.h, l->algo);
	}
	int r = ova_read(&im->ova, e->name, unpack_sink, &u);
	if (close(u.fd) < 0 && r == 0)
		r = kite_error_errno(errno, "%s", tmp);
	if (r == 0 && l)
		r = manifest_hash_check(&u.h, l, im->ova.path);
	return r;
}

static int check_size(const struct import *im, const struct ovf_disk *d, struct blk *b)
{
	uint64_t size = blk_size(b);
	if (size > V2V_MAX_DISK_SIZE)
		return kite_error("%s: disk '%s' claims %llu bytes: more than the %llu kite "
				  "imports",
				  im->ova.path, d->href, (unsigned long long)size,
				  (unsigned long long)V2V_MAX_DISK_SIZE);
	if (d->capacity && d->capacity != size)
		kite_warn("%s: the OVF says disk '%s' holds %llu bytes, the disk itself %llu: "
			  "kite converts what the disk holds",
			  im->ova.path, d->href, (unsigned long long)d->capacity,
			  (unsigned long long)size);
	return 0;
}

/* One disk: unpacked, checked, converted into DIR/NAME-sdX.FMT, added to `m`. */
static int import_disk(struct import *im, const struct ovf_disk *d, int index,
		       struct machine_config *m)
{
	const struct ova_entry *e = ova_find(&im->ova, d->href);
	if (!e)
		return kite_error("%s: the OVF names disk file '%s', which the OVA does not hold",
				  im->ova.path, d->href);
	if (d->compressed)
		return kite_error("%s: disk file '%s' is compressed (ovf:compression): kite "
				  "imports uncompressed disks",
				  im->ova.path, d->href);
	char tmp[PATH_MAX], out[PATH_MAX], name[NAME_MAX + 1];
	if (unpack(im, e, index, tmp, sizeof(tmp)) < 0)
		return -1;
	/* the OVF says which format; only a vmdk is taken as one, anything else is probed */
	const char *fmt = strstr(d->format, "vmdk") ? "vmdk" : NULL;
	struct blk *b = blk_open(tmp, fmt, BLK_O_RDONLY | BLK_O_NO_PROBE_WARN | BLK_O_NO_BACKING);
	if (!b)
		return kite_error("%s: disk file '%s' does not open as a disk image", im->ova.path,
				  d->href);
	snprintf(name, sizeof(name), "%s-sd%c.%s", im->name, 'a' + index, im->o->format);
	int fd = check_size(im, d, b) < 0 ? -1 : create_new(im, name, out, sizeof(out));
	int r = fd < 0 ? -1 : 0;
	if (fd >= 0)
		close(fd);
	if (r == 0)
		r = blk_convert_image(b, out, im->o->format, im->o->progress);
	blk_close(b);
	unlink(tmp);
	forget(im, tmp);
	if (r < 0)
		return -1;
	struct disk_config dc = {.path = strdup(out)};
	snprintf(dc.format, sizeof(dc.format), "%s", im->o->format);
	if (!dc.path)
		return kite_error("out of memory");
	return machine_config_add_disk(m, &dc, "v2v");
}

static int read_manifest(struct import *im, const struct ova_entry *ovf, const char *xml,
			 size_t len)
{
	char mfname[300];
	snprintf(mfname, sizeof(mfname), "%.*s.mf", (int)(strlen(ovf->name) - 4), ovf->name);
	const struct ova_entry *e = ova_find(&im->ova, mfname);
	if (!e) {
		int count;
		e = ova_find_suffix(&im->ova, ".mf", &count);
		if (count > 1)
			return kite_error("%s: several manifests (.mf), none named as the OVF",
					  im->ova.path);
	}
	if (!e)
		return 0; /* none: nothing to check */
	char *text;
	size_t tlen;
	if (ova_read_all(&im->ova, e->name, MANIFEST_MAX, &text, &tlen) < 0)
		return -1;
	int r = manifest_parse(text, tlen, e->name, &im->mf);
	free(text);
	if (r < 0)
		return -1;
	im->have_mf = true;
	for (size_t i = 0; i < im->mf.n; i++)
		if (!ova_find(&im->ova, im->mf.l[i].name))
			return kite_error(
			    "%s: the manifest lists '%s', which the OVA does not hold",
			    im->ova.path, im->mf.l[i].name);
	const struct manifest_line *l = manifest_find(&im->mf, ovf->name);
	if (!l)
		return 0;
	struct manifest_hash h;
	manifest_hash_init(&h, l->algo);
	manifest_hash_update(&h, xml, len);
	return manifest_hash_check(&h, l, im->ova.path);
}

static int set_machine(struct import *im, const struct ovf_vm *vm, struct machine_config *m)
{
	char text[32];
	if (machine_config_set(m, "name", im->name, "v2v") < 0)
		return -1;
	if (vm->vcpus) {
		snprintf(text, sizeof(text), "%u", vm->vcpus);
		if (machine_config_set(m, "vcpus", text, "OVF vCPUs") < 0)
			return -1;
	}
	if (vm->memory) {
		snprintf(text, sizeof(text), "%lluB", (unsigned long long)vm->memory);
		if (machine_config_set(m, "memory", text, "OVF memory") < 0)
			return -1;
		m->current_memory = 0;
		machine_config_finish(m);
	}
	for (int i = 0; i < vm->nnics; i++) {
		struct nic_config n = {.kind = NIC_USER, .mac_set = vm->nics[i].mac_set};
		memcpy(n.mac, vm->nics[i].mac, 6);
		if (machine_config_add_nic(m, &n, "OVF network adapter") < 0)
			return -1;
	}
	return 0;
}

static int choose_name(struct import *im, const struct ovf_vm *vm)
{
	if (im->o->name)
		snprintf(im->name, sizeof(im->name), "%.*s", MACHINE_NAME_MAX, im->o->name);
	else
		v2v_name_from(vm->name, im->name, sizeof(im->name));
	if (!im->o->name && !im->name[0])
		return kite_error("%s: the OVF names no machine: give one with -on NAME",
				  im->ova.path);
	if (machine_name_check(im->o->name ? im->o->name : im->name) < 0)
		return -1;
	if (!im->o->name && strcmp(im->name, vm->name))
		kite_notice("the machine '%s' is named '%s' here", vm->name, im->name);
	return 0;
}

static int run(struct import *im, struct machine_config *m)
{
	int count;
	const struct ova_entry *ovf = ova_find_suffix(&im->ova, ".ovf", &count);
	if (!ovf)
		return kite_error("%s: %s", im->ova.path,
				  count ? "several OVF descriptors: kite imports one machine"
					: "no OVF descriptor (.ovf) in the archive");
	char *xml;
	size_t len;
	struct ovf_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return kite_error("out of memory");
	int r = ova_read_all(&im->ova, ovf->name, OVF_MAX, &xml, &len);
	if (r == 0) {
		/* the manifest first: an OVF that does not match it is not parsed */
		r = read_manifest(im, ovf, xml, len);
		if (r == 0)
			r = ovf_parse(xml, len, ovf->name, vm);
		free(xml);
	}
	if (r == 0)
		r = choose_name(im, vm);
	for (int i = 0; r == 0 && i < vm->ndisks; i++)
		if (!ova_find(&im->ova, vm->disks[i].href))
			r = kite_error("%s: the OVF names disk file '%s', which the OVA does not "
				       "hold",
				       im->ova.path, vm->disks[i].href);
	for (int i = 0; r == 0 && i < vm->ndisks; i++)
		r = import_disk(im, &vm->disks[i], i, m);
	if (r == 0)
		r = set_machine(im, vm, m);
	free(vm);
	return r;
}

static int open_outdir(struct import *im)
{
	if (!realpath(im->o->outdir, im->dir))
		return kite_error_errno(errno, "output directory %s", im->o->outdir);
	im->dirfd = open(im->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (im->dirfd < 0)
		return kite_error_errno(errno, "output directory %s", im->o->outdir);
	return 0;
}

int v2v_import_ova(const struct v2v_opts *o, struct machine_config *m)
{
	struct import im = {.o = o, .dirfd = -1};
	if (strcmp(o->format, "qcow2") && strcmp(o->format, "raw"))
		return kite_error("-of %s: kite writes qcow2 or raw", o->format);
	int r = open_outdir(&im);
	if (r == 0)
		r = ova_open(&im.ova, o->input);
	if (r == 0)
		r = run(&im, m);
	for (int i = 0; i < im.nmade; i++) {
		if (r < 0)
			unlink(im.made[i]);
		free(im.made[i]);
	}
	if (im.dirfd >= 0)
		close(im.dirfd);
	manifest_free(&im.mf);
	ova_close(&im.ova);
	return r;
}

int v2v_write_definition(const struct machine_config *m, const char *outdir, char **path)
{
	struct import im = {.dirfd = -1};
	struct v2v_opts o = {.outdir = outdir};
	im.o = &o;
	char name[NAME_MAX + 1], full[PATH_MAX];
	snprintf(name, sizeof(name), "%s.json", m->name);
	if (open_outdir(&im) < 0)
		return -1;
	json_t *j = machine_config_to_json(m);
	char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	int fd = -1, r = -1;
	if (!text)
		kite_error("out of memory");
	else if ((fd = create_new(&im, name, full, sizeof(full))) >= 0) {
		size_t len = strlen(text);
		r = write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 ? 0 : -1;
		if (r < 0)
			kite_error_errno(errno, "%s", full);
		if (close(fd) < 0 && r == 0)
			r = kite_error_errno(errno, "%s", full);
		if (r < 0)
			unlink(full);
		else if (!(*path = strdup(full)))
			r = kite_error("out of memory");
	}
	free(text);
	for (int i = 0; i < im.nmade; i++)
		free(im.made[i]);
	close(im.dirfd);
	return r;
}

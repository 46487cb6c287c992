/* kite img amend: qemu-img 7.2's amend. This file reads the command line and the -o list
 * as qemu-img does (its option types, messages and order); which options a format takes
 * and the change itself are its driver's (blk_amend_options, blk_amend). */
#include "cli/cmd_img.h"
#include "util/err.h"
#include "util/progress.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A format's amend options (blk_amend_options). */
struct opt_table {
	const struct blk_opt_desc *d;
	size_t n;
};

static const struct blk_opt_desc *find_desc(const struct opt_table *t, const char *name,
					    bool create_too)
{
	for (size_t i = 0; i < t->n; i++)
		if ((create_too || t->d[i].help) && !strcmp(t->d[i].name, name))
			return &t->d[i];
	return NULL;
}

static const char *const type_names[] = {"str", "bool (on/off)", "num", "size"};

static void print_help(const char *fmt, const struct opt_table *t)
{
	printf("Amend options for '%s':\n", fmt);
	for (size_t i = 0; i < t->n && t->d[i].help; i++) {
		char left[64];
		int n = snprintf(left, sizeof(left), "  %s=<%s>", t->d[i].name,
				 type_names[t->d[i].type]);
		printf("%s%*s - %s\n", left, n < 24 ? 24 - n : 0, "", t->d[i].help);
	}
}

/* The image format drivers qemu-img 7.2 knows (for its "Unknown file format" message). */
static bool qemu_format(const char *fmt)
{
	static const char *const names[] = {"raw", "qcow2", "qcow",  "qed",  "vmdk",
					    "vdi", "vpc",   "vhdx",  "luks", "parallels",
					    "dmg", "cloop", "bochs", "vvfat"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(fmt, names[i]))
			return true;
	return false;
}

/* qemu-img's answer to -o help for format `fmt`: 0 when the options were listed. */
static int amend_help(const char *fmt)
{
	if (!qemu_format(fmt))
		return kite_error("Unknown file format '%s'", fmt);
	struct opt_table t;
	if (!(t.d = blk_amend_options(fmt, &t.n)))
		return kite_error("Format driver '%s' does not support option amendment", fmt);
	print_help(fmt, &t);
	return 0;
}

/* ---- the -o list, as QEMU's option parser reads it ---- */

/* Item i's name and value: a bare "name" is name=on, a bare "noname" name=off. */
static void item(const struct img_opts *o, size_t i, const char **name, const char **val)
{
	*name = o->keys[i];
	*val = o->vals[i];
	if (*val)
		return;
	bool no = !strncmp(*name, "no", 2);
	*name += no ? 2 : 0;
	*val = no ? "off" : "on";
}

static bool is_help(const struct img_opts *o)
{
	for (size_t i = 0; i < o->n; i++)
		if (!o->vals[i] && (!strcmp(o->keys[i], "help") || !strcmp(o->keys[i], "?")))
			return true;
	return false;
}

/* The fraction at *end ("1.k" has an empty one), no exponent. */
static int fraction(char **end, double *frac)
{
	char *f = *end;
	*frac = strtod(f, end);
	if (*end == f)
		*end = f + 1;
	else if (memchr(f, 'e', (size_t)(*end - f)) || memchr(f, 'E', (size_t)(*end - f)))
		return -1;
	return 0;
}

/* QEMU's qemu_strtosz() as its option parser uses it: decimal (or 0x hex, no fraction nor
 * suffix then), an optional fraction that needs a suffix, one suffix letter B K M G T P E
 * (any case). 0, -EINVAL or -ERANGE. */
static int option_size(const char *v, uint64_t *out, bool warn)
{
	static const char units[] = "BKMGTPE";
	char *end;
	errno = 0;
	unsigned long long whole = strtoull(v, &end, 10);
	if (errno || end == v || memchr(v, '-', (size_t)(end - v)))
		return errno == ERANGE ? -ERANGE : -EINVAL;
	double frac = 0;
	bool hex = whole == 0 && (*end == 'x' || *end == 'X');
	if (hex) {
		errno = 0;
		whole = strtoull(v, &end, 16);
		if (errno || *end == '.')
			return errno == ERANGE ? -ERANGE : -EINVAL;
	} else if (*end == '.' && fraction(&end, &frac) < 0) {
		return -EINVAL;
	}
	const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
	unsigned shift = u ? 10 * (unsigned)(u - units) : 0;
	end += u != NULL;
	if (*end || (!shift && frac != 0))
		return -EINVAL;
	if (hex && u && warn)
		kite_warn("Using a multiplier suffix on hex numbers is deprecated: %s", v);
	unsigned __int128 v128 = (unsigned __int128)whole << shift;
	v128 += (unsigned __int128)(frac * (double)(1ull << shift) + 0.5);
	if (v128 >> 64)
		return -ERANGE;
	*out = (uint64_t)v128;
	return 0;
}

static bool value_ok(const struct blk_opt_desc *d, const char *v, uint64_t *num, bool warn)
{
	static const char *const yes[] = {"on", "yes", "true", "y"};
	static const char *const no[] = {"off", "no", "false", "n"};
	char *end;
	switch (d->type) {
	case BLK_OPT_BOOL:
		for (size_t i = 0; i < 4; i++)
			if (!strcmp(v, yes[i]) || !strcmp(v, no[i])) {
				*num = !strcmp(v, yes[i]);
				return true;
			}
		return false;
	case BLK_OPT_NUM:
		errno = 0;
		*num = strtoull(v, &end, 0);
		return !errno && end != v && !*end;
	case BLK_OPT_SIZE:
		return option_size(v, num, warn) == 0;
	default:
		return true;
	}
}

static int value_error(const struct blk_opt_desc *d, const char *v)
{
	uint64_t n;
	if (d->type == BLK_OPT_SIZE && option_size(v, &n, false) == -ERANGE)
		return kite_error("Value '%s' is out of range for parameter '%s'", v, d->name);
	if (d->type == BLK_OPT_BOOL)
		return kite_error("Parameter '%s' expects 'on' or 'off'", d->name);
	if (d->type == BLK_OPT_NUM)
		return kite_error("Parameter '%s' expects a number", d->name);
	return kite_error("Parameter '%s' expects a non-negative number below 2^64\n"
			  "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, "
			  "peta-\nand exabytes, respectively.",
			  d->name);
}

/* qemu-img's hint: the whole list would be valid for image creation. */
static bool valid_for_create(const struct opt_table *t, const struct img_opts *o)
{
	for (size_t i = 0; i < o->n; i++) {
		const char *name, *val;
		uint64_t num;
		item(o, i, &name, &val);
		const struct blk_opt_desc *d = find_desc(t, name, true);
		if (!d || !value_ok(d, val, &num, false))
			return false;
	}
	return true;
}

/* Every item in order (the last of a name wins), each value checked by its type, into
 * out[] (o->n entries). */
static int read_opts(const struct opt_table *t, const struct img_opts *o, struct blk_amend_opt *out)
{
	for (size_t i = 0; i < o->n; i++) {
		const char *name, *val;
		uint64_t num = 0;
		item(o, i, &name, &val);
		const struct blk_opt_desc *d = find_desc(t, name, false);
		if (!d && strchr(name, ','))
			return kite_error(
			    "Invalid parameter '%.*s'", (int)strcspn(name, ","),
			    name); /* QEMU's names end at a comma, even a doubled one */
		if (!d)
			return kite_error("Invalid parameter '%s'%s", name,
					  valid_for_create(t, o)
					      ? "\nThis option is only supported "
						"for image creation"
					      : "");
		if (!value_ok(d, val, &num, true))
			return value_error(d, val);
		out[i] = (struct blk_amend_opt){.name = name, .val = val, .num = num};
	}
	return 0;
}

/* qemu-img's check of one -o argument: not empty, no leading comma, no odd trailing one. */
static int add_opts(struct img_opts *o, const char *arg)
{
	size_t len = strlen(arg), i = len;
	while (i > 0 && arg[i - 1] == ',')
		i--;
	if (!arg[0] || arg[0] == ',' || (len - i) % 2)
		return kite_error("Invalid option list: %s", arg);
	return img_opts_parse(o, arg);
}

/* ---- the command line ---- */

#define TRY_HELP "Try 'kite img --help' for more information"

struct amend_args {
	const char *fmt, *cache, *file;
	struct img_opts o;
	bool have_opts, quiet, progress;
};

/* qcow2 metadata I/O keeps the host page cache whatever the mode (see qcow2_open()):
 * only "unsafe", which skips the syncs, changes anything. */
static int parse_cache(const char *mode, unsigned *flags)
{
	static const char *const modes[] = {"none",	 "off",		 "directsync",
					    "writeback", "writethrough", "unsafe"};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(mode, modes[i]))
			continue;
		if (!strcmp(mode, "unsafe"))
			*flags |= BLK_O_UNSAFE;
		return 0;
	}
	return kite_error("Invalid cache option: %s", mode);
}

/* 0: go on; 1: done (exit 0); -1: error printed. */
static int parse_args(int argc, char **argv, struct amend_args *a)
{
	enum { OPT_OBJECT = 256, OPT_FORCE };
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
						 {"object", required_argument, NULL, OPT_OBJECT},
						 {"force", no_argument, NULL, OPT_FORCE},
						 {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ho:f:t:pq", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			printf(
			    "usage: kite img amend [--object objectdef] [--image-opts] [-p] [-q] "
			    "[-f fmt] [-t cache] [--force] -o options filename\n");
			return 1;
		case 'o':
			if (add_opts(&a->o, optarg) < 0)
				return -1;
			a->have_opts = true;
			break;
		case 'f':
			a->fmt = optarg;
			break;
		case 't':
			a->cache = optarg;
			break;
		case 'p':
			a->progress = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case OPT_OBJECT: /* secrets for encrypted images, which kite does not open */
		case OPT_FORCE:	 /* only LUKS key changes need it */
			break;
		case ':':
			return kite_error("missing argument for option '%s'\n%s", argv[optind - 1],
					  TRY_HELP);
		default:
			return kite_error("unrecognized option '%s'\n%s", argv[optind - 1],
					  TRY_HELP);
		}
	}
	a->file = optind == argc - 1 ? argv[argc - 1] : NULL;
	return 0;
}

static void report(void *ctx, uint64_t done, uint64_t total)
{
	progress_update(ctx, done, total);
}

/* The open image: -o help, or the options read and the change made. */
static int amend_image(struct blk *b, struct amend_args *a, bool *progress_shown)
{
	const char *fmt = blk_format_name(b);
	if (is_help(&a->o))
		return amend_help(fmt);
	struct opt_table t;
	if (!(t.d = blk_amend_options(fmt, &t.n)))
		return kite_error("Format driver '%s' does not support option amendment", fmt);
	struct blk_amend_opt *list = calloc(a->o.n ? a->o.n : 1, sizeof(*list));
	if (!list)
		return kite_error("out of memory");
	if (read_opts(&t, &a->o, list) < 0) {
		free(list);
		return -1;
	}
	struct progress prog;
	progress_init(&prog, a->progress);
	int r = blk_amend(b, list, a->o.n, report, &prog);
	progress_update(&prog, 1, 1); /* as qemu-img: 100% even when it failed */
	progress_finish(&prog);
	*progress_shown = a->progress;
	free(list);
	return r;
}

static int run(struct amend_args *a, bool *progress_shown)
{
	if (a->fmt && is_help(&a->o))
		return amend_help(a->fmt) < 0 ? 1 : 0;
	if (!a->file)
		return kite_error("Expecting one image file name"), 1;
	unsigned flags = BLK_O_RDWR | BLK_O_REPAIR_VERBOSE | img_source_flags();
	if (parse_cache(a->cache, &flags) < 0)
		return 1;
	struct blk *b = blk_open(a->file, a->fmt, flags);
	if (!b)
		return 1;
	int r = amend_image(b, a, progress_shown);
	if (r == 0 && blk_flush(b) < 0)
		r = -1;
	blk_close(b);
	return r < 0 ? 1 : 0;
}

int img_amend(int argc, char **argv)
{
	struct amend_args a = {.cache = "writeback"};
	int rc = parse_args(argc, argv, &a);
	if (rc) {
		img_opts_free(&a.o);
		return rc < 0 ? 1 : 0;
	}
	if (!a.have_opts) {
		kite_error("Must specify options (-o)\n%s", TRY_HELP);
		return 1;
	}
	a.progress = a.progress && !a.quiet;
	bool shown = false;
	rc = run(&a, &shown);
	if (a.progress && !shown) /* qemu-img ends its progress line even if none was drawn */
		printf("\n");
	img_opts_free(&a.o);
	return rc;
}

#include "cli/cmd_machine.h"
#include "mgmt/runstate.h"
#include "util/err.h"

#include <stdlib.h>
#include <strings.h>
#include <unistd.h>
#include <string.h>

int machine_getopt(struct machine_cli *cli, int argc, char **argv, const char *shortopts,
		   const struct option *longopts)
{
	char shorts[64];
	snprintf(shorts, sizeof(shorts), ":%sh", shortopts);
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, shorts, longopts, NULL);
		switch (c) {
		case OPT_STATE_DIR:
			cli->state_opt = optarg;
			continue;
		case OPT_RUNTIME_DIR:
			cli->run_opt = optarg;
			continue;
		case 'h':
		case OPT_HELP:
			fputs(cli->usage, stdout);
			fputs(MACHINE_COMMON_HELP, stdout);
			return 'H';
		case '?':
		case ':':
			if (optopt && optopt < 256)
				kite_error("%s: option -%c is unknown or needs a value", cli->verb,
					   optopt);
			else
				kite_error("%s: option %s is unknown or needs a value", cli->verb,
					   argv[optind - 1]);
			fputs(cli->usage, stderr);
			return '?';
		default:
			return c;
		}
	}
}

int machine_cli_dirs(struct machine_cli *cli)
{
	return mgmt_dirs_init(cli->state_opt, cli->run_opt, &cli->dirs);
}

int machine_positional(struct machine_cli *cli, int argc, char **argv, int n, const char *what)
{
	if (argc - optind != n) {
		if (argc - optind < n)
			kite_error("%s: expected %s", cli->verb, what);
		else
			kite_error("%s: unexpected argument '%s' (expected %s)", cli->verb,
				   argv[optind + n], what);
		fputs(cli->usage, stderr);
		return -1;
	}
	return 0;
}

int machine_parse(struct machine_cli *cli, int argc, char **argv, const struct option *opts,
		  const struct machine_flag *flags, int min, int max, const char *what)
{
	int c;
	optind = 1;
	while ((c = machine_getopt(cli, argc, argv, "", opts)) != -1) {
		const struct machine_flag *f = flags;
		while (f && f->code && f->code != c)
			f++;
		if (!f || !f->code)
			return c == 'H' ? 0 : 1;
		if (f->flag)
			*f->flag = true;
		if (f->value)
			*f->value = optarg;
	}
	int n = argc - optind;
	if (n < min || n > max) {
		machine_positional(cli, argc, argv, n < min ? min : max, what);
		return 1;
	}
	return machine_cli_dirs(cli) < 0 ? 1 : -1;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

const char *machine_resolve(struct machine_cli *cli, const char *arg)
{
	char path[PATH_MAX];
	bool by_uuid = uuid_valid(arg), by_id = all_digits(arg);
	/* A definition by that name wins (a machine may well be called "42"). */
	if (machine_name_check_quiet(arg) && (def_path(&cli->dirs, arg, path, sizeof(path)) < 0 ||
					      access(path, F_OK) == 0 || (!by_uuid && !by_id)))
		return arg;
	char **names;
	int n = def_list_names(&cli->dirs, &names);
	if (n < 0)
		return arg;
	const char *found = NULL;
	for (int i = 0; i < n && !found; i++) {
		if (by_id) {
			struct machine_status st;
			if (machine_status_get(&cli->dirs, names[i], false, &st) == 0 &&
			    st.state == MACHINE_RUNNING && st.pid == (pid_t)atol(arg))
				found = names[i];
		} else if (by_uuid) {
			struct machine_config def;
			if (def_load(&cli->dirs, names[i], true, &def, NULL) == DEF_OK) {
				if (!strcasecmp(def.uuid, arg))
					found = names[i];
				machine_config_free(&def);
			}
		}
	}
	if (found) {
		snprintf(cli->resolved, sizeof(cli->resolved), "%s", found);
		arg = cli->resolved;
	}
	def_free_names(names, n);
	return arg;
}

int machine_load(struct machine_cli *cli, const char *name, struct machine_config *def)
{
	enum def_load_result r = def_load(&cli->dirs, name, false, def, NULL);
	return r == DEF_OK ? 0 : -1;
}

struct table {
	int ncols;
	char **cells; /* row-major, row 0 the header */
	int nrows, cap;
};

struct table *table_new(int ncols, const char *const *header)
{
	struct table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ncols = ncols;
	if (table_add(t, header) < 0) {
		free(t);
		return NULL;
	}
	return t;
}

int table_add(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		int cap = t->cap ? t->cap * 2 : 8;
		char **nc = realloc(t->cells, (size_t)cap * (size_t)t->ncols * sizeof(*nc));
		if (!nc)
			return kite_error("out of memory");
		t->cells = nc;
		t->cap = cap;
	}
	for (int i = 0; i < t->ncols; i++) {
		char *s = strdup(cells[i] ? cells[i] : "-");
		if (!s) {
			for (int j = 0; j < i; j++)
				free(t->cells[t->nrows * t->ncols + j]);
			return kite_error("out of memory");
		}
		t->cells[t->nrows * t->ncols + i] = s;
	}
	t->nrows++;
	return 0;
}

/* As virsh prints it: " Id   Name   State", a rule as wide as every column plus three,
 * then the rows. */
void table_print(struct table *t, FILE *out)
{
	size_t width[16] = {0};
	int ncols = t->ncols < 16 ? t->ncols : 16;
	for (int r = 0; r < t->nrows; r++)
		for (int c = 0; c < ncols; c++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);
			if (l > width[c])
				width[c] = l;
		}
	for (int r = 0; r < t->nrows; r++) {
		fputc(' ', out);
		for (int c = 0; c < ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			fprintf(out, "%-*s", (int)width[c], s);
			if (c + 1 < ncols)
				fputs("   ", out);
		}
		fputc('\n', out);
		if (r == 0) {
			size_t rule = 0;
			for (int c = 0; c < ncols; c++)
				rule += width[c] + 3;
			for (size_t i = 0; i < rule; i++)
				fputc('-', out);
			fputc('\n', out);
		}
	}
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

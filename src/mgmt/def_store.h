/* Machine definitions on disk: STATE/NAME.json (a struct machine_config in its JSON form,
 * config/machine_config.h), replaced atomically, with STATE/NAME.lock serializing every
 * command that changes a machine (define, edit, start, ...). */
#ifndef KITE_MGMT_DEF_STORE_H
#define KITE_MGMT_DEF_STORE_H

#include "config/machine_config.h"
#include "mgmt/paths.h"

/* Definitions larger than this are refused as corrupt rather than read. */
#define DEF_FILE_MAX (1 << 20)

enum def_load_result {
	DEF_OK = 0,
	DEF_MISSING = -1, /* no such machine */
	DEF_CORRUPT = -2, /* the file exists but does not parse or validate */
	DEF_ERROR = -3,	  /* an I/O error */
};

/* A definition from its JSON: machine_config_from_json, and a name is required. Returns 0 or
 * -1 (reported, with `where` first). */
int def_from_json(json_t *root, const char *where, struct machine_config *m);

/* What create, define and edit do to a description before it is stored: paths made absolute
 * (from the current directory), the files checked as a VMM would find them (kernel readable,
 * disks present, distinct and readable as their format), a UUID and MACs given, the rules checked.
 * So a definition that is stored can start. Returns 0 or -1 (reported). */
int def_prepare(struct machine_config *m, const char *where);
/* The file checks of def_prepare: machine_config_check_files, and each disk opened (read-only,
 * shared) with its format, as the VMM will open it. Returns 0 or -1 (reported). */
int def_check_disks(const struct machine_config *m);

/* Loads NAME's definition. On DEF_CORRUPT, `why` (when not NULL) receives a one-line reason
 * (truncated, bad JSON at line N, invalid field) the caller frees. Nothing is printed for
 * DEF_MISSING and DEF_CORRUPT when `quiet`; otherwise a clear error is printed. */
enum def_load_result def_load(const struct mgmt_dirs *d, const char *name, bool quiet,
			      struct machine_config *def, char **why);

/* Validates (absolute paths, a UUID and MACs included) and writes `def` atomically. The caller
 * holds the machine's lock. */
int def_save(const struct mgmt_dirs *d, const struct machine_config *def);

/* Removes the definition file (the lock file stays: another command may hold it open). The
 * caller holds the lock. */
int def_remove(const struct mgmt_dirs *d, const char *name);

/* Takes NAME's lock (waiting for other holders). Returns the fd to close, or -1. */
int def_lock(const struct mgmt_dirs *d, const char *name);

/* Sorted names of all definition files (valid or not). Returns the count, or -1. The caller
 * frees each name and the array. */
int def_list_names(const struct mgmt_dirs *d, char ***names);
void def_free_names(char **names, int n);

/* The path of NAME's definition file. */
int def_path(const struct mgmt_dirs *d, const char *name, char *buf, size_t size);

#endif

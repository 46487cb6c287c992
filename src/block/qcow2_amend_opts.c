/* qemu-img amend's -o options for qcow2: QEMU's list (what `-o help` shows and what the
 * values are checked as), and the checked values into qcow2_amend(). */
#include "block/qcow2_int.h"

#include <string.h>

/* QEMU's qcow2 amend options, in the order qemu-img -o help lists them (sorted), then the
 * creation-only options (for qemu-img's hint when one is given). */
const struct blk_opt_desc qcow2_amend_opts[] = {
    {"backing_file", BLK_OPT_STR, "File name of a base image"},
    {"backing_fmt", BLK_OPT_STR, "Image format of the base image"},
    {"compat", BLK_OPT_STR, "Compatibility level (v2 [0.10] or v3 [1.1])"},
    {"data_file", BLK_OPT_STR, "File name of an external data file"},
    {"data_file_raw", BLK_OPT_BOOL, "The external data file must stay valid as a raw image"},
    {"encrypt.iter-time", BLK_OPT_NUM, "Time to spend in PBKDF in milliseconds"},
    {"encrypt.keyslot", BLK_OPT_NUM, "Select a single keyslot to modify explicitly"},
    {"encrypt.new-secret", BLK_OPT_STR,
     "New secret to set in the matching keyslots. Empty string to erase"},
    {"encrypt.old-secret", BLK_OPT_STR, "Select all keyslots that match this password"},
    {"encrypt.state", BLK_OPT_STR, "Select new state of affected keyslots (active/inactive)"},
    {"lazy_refcounts", BLK_OPT_BOOL, "Postpone refcount updates"},
    {"refcount_bits", BLK_OPT_NUM, "Width of a reference count entry in bits"},
    {"size", BLK_OPT_SIZE, "Virtual disk size"},
    {"encryption", BLK_OPT_BOOL, NULL},
    {"encrypt.format", BLK_OPT_STR, NULL},
    {"encrypt.key-secret", BLK_OPT_STR, NULL},
    {"encrypt.cipher-alg", BLK_OPT_STR, NULL},
    {"encrypt.cipher-mode", BLK_OPT_STR, NULL},
    {"encrypt.ivgen-alg", BLK_OPT_STR, NULL},
    {"encrypt.ivgen-hash-alg", BLK_OPT_STR, NULL},
    {"encrypt.hash-alg", BLK_OPT_STR, NULL},
    {"cluster_size", BLK_OPT_SIZE, NULL},
    {"extended_l2", BLK_OPT_BOOL, NULL},
    {"preallocation", BLK_OPT_STR, NULL},
    {"compression_type", BLK_OPT_STR, NULL},
    {NULL, BLK_OPT_STR, NULL},
};

static void set_opt(struct qcow2_amend_opts *a, const struct blk_amend_opt *o)
{
	const char *name = o->name;
	if (!strcmp(name, "compat"))
		a->compat = o->val;
	else if (!strcmp(name, "size"))
		a->size = o->num;
	else if (!strcmp(name, "backing_file"))
		a->backing_file = o->val;
	else if (!strcmp(name, "backing_fmt"))
		a->backing_fmt = o->val;
	else if (!strcmp(name, "data_file"))
		a->data_file = o->val;
	else if (!strcmp(name, "data_file_raw"))
		a->data_file_raw = (int)o->num;
	else if (!strcmp(name, "lazy_refcounts"))
		a->lazy_refcounts = (int)o->num;
	else if (!strcmp(name, "refcount_bits")) {
		a->refcount_bits = (int)o->num; /* QEMU's int, whatever the number */
		a->refcount_bits_set = true;
	} else
		a->encrypt = true; /* encrypt.* */
}

int qcow2_amend_blk(struct blk *b, const struct blk_amend_opt *opts, size_t n, blk_progress_fn cb,
		    void *ctx)
{
	struct qcow2_amend_opts a = {.data_file_raw = -1, .lazy_refcounts = -1};
	for (size_t i = 0; i < n; i++)
		set_opt(&a, &opts[i]);
	return qcow2_amend(b, &a, cb, ctx);
}

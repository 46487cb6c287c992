/* qcow2's creation options (-o) as qemu-img create takes, lists and echoes them. */
#include "block/qcow2_int.h"

static const char *const keys[] = {
    "size",	      "cluster_size",	"preallocation",    "compat",
    "lazy_refcounts", "refcount_bits",	"compression_type", "backing_file",
    "backing_fmt",    "extended_l2",	"extent_size_hint", "data_file",
    "data_file_raw",  "encrypt.format", "encryption",	    NULL};

static const char *const help[] = {
    "backing_file=<str>     - File name of a base image",
    "backing_fmt=<str>      - Image format of the base image",
    "cluster_size=<size>    - qcow2 cluster size",
    "compat=<str>           - Compatibility level (v2 [0.10] or v3 [1.1])",
    "compression_type=<str> - Compression method used for image cluster compression",
    "data_file=<str>        - File name of an external data file",
    "data_file_raw=<bool (on/off)> - The external data file must stay valid as a raw image",
    "encrypt.cipher-alg=<str> - Name of encryption cipher algorithm",
    "encrypt.cipher-mode=<str> - Name of encryption cipher mode",
    "encrypt.format=<str>   - Encrypt the image, format choices: 'aes', 'luks'",
    "encrypt.hash-alg=<str> - Name of encryption hash algorithm",
    "encrypt.iter-time=<num> - Time to spend in PBKDF in milliseconds",
    "encrypt.ivgen-alg=<str> - Name of IV generator algorithm",
    "encrypt.ivgen-hash-alg=<str> - Name of IV generator hash algorithm",
    "encrypt.key-secret=<str> - ID of secret providing qcow AES key or LUKS passphrase",
    "encryption=<bool (on/off)> - Encrypt the image with format 'aes'. (Deprecated in "
    "favor of encrypt.format=aes)",
    "extended_l2=<bool (on/off)> - Extended L2 tables",
    "lazy_refcounts=<bool (on/off)> - Postpone refcount updates",
    "preallocation=<str>    - Preallocation mode (allowed values: off, metadata, falloc, "
    "full)",
    "refcount_bits=<num>    - Width of a reference count entry in bits",
    "size=<size>            - Virtual disk size",
    NULL};

static void print(FILE *f, const struct blk_create_opts *c, bool prealloc_given)
{
	blk_print_encrypt(f, &c->encrypt, "encrypt.", true);
	fprintf(f, " cluster_size=%u extended_l2=%s", c->cluster_size ? c->cluster_size : 65536,
		c->extended_l2 ? "on" : "off");
	if (prealloc_given)
		fprintf(f, " preallocation=%s", blk_prealloc_name(c->prealloc));
	fprintf(f, " compression_type=%s size=%llu",
		c->compression_type == BLK_COMP_ZSTD ? "zstd" : "zlib",
		(unsigned long long)c->size);
	if (c->compat)
		fprintf(f, " compat=%s", c->compat == 2 ? "0.10" : "1.1");
	if (c->backing_file)
		fprintf(f, " backing_file=%s", c->backing_file);
	if (c->backing_fmt)
		fprintf(f, " backing_fmt=%s", c->backing_fmt);
	if (c->data_file)
		fprintf(f, " data_file=%s", c->data_file);
	if (c->data_file_raw_set)
		fprintf(f, " data_file_raw=%s", c->data_file_raw ? "on" : "off");
	fprintf(f, " lazy_refcounts=%s refcount_bits=%d", c->lazy_refcounts ? "on" : "off",
		c->refcount_bits ? c->refcount_bits : 16);
}

const struct blk_create_desc qcow2_create_desc = {
    .keys = keys,
    .help = help,
    .encrypt_prefix = "encrypt.",
    .print = print,
};

/* `--fw-cfg [name=]NAME,file=PATH` and `--fw-cfg [name=]NAME,string=TEXT`, as QEMU's -fw_cfg:
 * a file in fw_cfg's directory (devices/fw_cfg.h) holding PATH's bytes, read when the machine
 * starts, or TEXT without a NUL. NAME is 1-55 bytes (QEMU asks for an "opt/" prefix on names
 * of one's own); ",," in a value is a comma. */
#ifndef KITE_CONFIG_FW_CFG_CONFIG_H
#define KITE_CONFIG_FW_CFG_CONFIG_H

#define FW_CFG_CONFIG_NAME_MAX 56 /* with the NUL, as fw_cfg's directory */
#define MACHINE_MAX_FW_CFG     8

struct fw_cfg_config {
	char name[FW_CFG_CONFIG_NAME_MAX];
	char *file;   /* owned; NULL with string */
	char *string; /* owned; NULL with file */
};

/* Returns 0, or -1 with `kite: error: CTX: ...`. */
int fw_cfg_config_parse(const char *text, struct fw_cfg_config *out, const char *ctx);
/* The option's text (malloc'd), or NULL (reported). */
char *fw_cfg_config_format(const struct fw_cfg_config *c);
void fw_cfg_config_free(struct fw_cfg_config *c);

#endif

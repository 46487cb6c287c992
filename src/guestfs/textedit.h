/* Pure text edits behind `kite guest init`: sshd_config directives, /etc/hosts, the
 * passwd/group/shadow databases and authorized_keys. Each returns a new malloc'd string (or
 * NULL when out of memory) and applying an edit twice gives the same text as applying it
 * once, which makes `init` idempotent. */
#ifndef KITE_GUESTFS_TEXTEDIT_H
#define KITE_GUESTFS_TEXTEDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sets sshd directives: removes every active line for these keywords before the first
 * "Match" block and puts "Key value" lines at the top, under a marker comment (sshd uses the
 * first value it reads, so they win over later lines and Include files). */
char *sshd_apply(const char *conf, const char *const *keys, const char *const *vals, size_t n);

/* Points the 127.0.1.1 line at `hostname` (adds it if missing). */
char *hosts_set_hostname(const char *hosts, const char *hostname);

/* Finds `name` in a colon database (passwd, group, shadow): fields 3 and 4 as numbers when
 * asked (NULL to skip). Returns true if found. */
bool db_find(const char *db, const char *name, uint32_t *f3, uint32_t *f4);
/* Lowest free id in [lo, hi] (field 3 of every line), or highest when `down`; UINT32_MAX if
 * none is free. */
uint32_t db_free_id(const char *db, uint32_t lo, uint32_t hi, bool down);
/* Appends a line (adding the missing final newline of `db` first). */
char *db_append(const char *db, const char *line);
/* Adds `user` to the member list (last field) of group `group`; unchanged if already there. */
char *group_add_member(const char *db, const char *group, const char *user);
/* Locks `user`'s password in a shadow database ("!" prefix, as passwd -l). */
char *shadow_lock(const char *db, const char *user);

/* Appends the keys of `add` (one per line) that `existing` does not hold yet. */
char *keys_merge(const char *existing, const char *add);
/* True if every non-empty, non-comment line of `keys` looks like an OpenSSH public key. */
bool keys_valid(const char *keys);

/* Names as useradd accepts them: [a-z_][a-z0-9_-]{0,31}. */
bool valid_user_name(const char *s);
/* RFC 1123 host name. */
bool valid_hostname(const char *s);

#endif

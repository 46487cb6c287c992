/* The secret objects of qemu-img's --object (QEMU's crypto/secret*.c behaviour: data= or
 * file=, format=raw|base64, optionally AES-256-CBC encrypted with another secret through
 * keyid= and iv=), kept in memory for the process and wiped when cleared. */
#include "block/secret.h"
#include "block/crypto.h"
#include "util/err.h"

#include <ctype.h>
#include <errno.h>
#include <nettle/aes.h>
#include <nettle/cbc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SECRETS	64
#define MAX_SECRET_FILE (64u << 20)

struct secret {
	char *id;
	uint8_t *data;
	size_t len;
};

static struct secret secrets[MAX_SECRETS];
static int nb_secrets;

static struct secret *find(const char *id)
{
	for (int i = 0; i < nb_secrets; i++)
		if (!strcmp(secrets[i].id, id))
			return &secrets[i];
	return NULL;
}

void blk_secrets_clear(void)
{
	for (int i = 0; i < nb_secrets; i++) {
		crypto_free_secret(secrets[i].data, secrets[i].len);
		free(secrets[i].id);
	}
	nb_secrets = 0;
}

/* ---- "key=value,..." with ",," for a comma, the first bare word naming the type ---- */
struct objdef {
	char *type, *id, *data, *file, *format, *keyid, *iv;
};

static void objdef_free(struct objdef *o)
{
	char **fields[] = {&o->type, &o->id, &o->data, &o->file, &o->format, &o->keyid, &o->iv};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (*fields[i])
			explicit_bzero(*fields[i], strlen(*fields[i]));
		free(*fields[i]);
		*fields[i] = NULL;
	}
}

static char **field(struct objdef *o, const char *key)
{
	static const char *const names[] = {"qom-type", "id",	 "data", "file",
					    "format",	"keyid", "iv"};
	char **fields[] = {&o->type, &o->id, &o->data, &o->file, &o->format, &o->keyid, &o->iv};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i], key))
			return fields[i];
	return NULL;
}

/* One item from *p (commas doubled inside), malloc'd; *p moves past it and its comma. */
static char *next_item(const char **p)
{
	const char *s = *p;
	char *out = malloc(strlen(s) + 1);
	size_t n = 0;
	if (!out)
		return NULL;
	while (*s) {
		if (*s == ',' && s[1] == ',') {
			out[n++] = ',';
			s += 2;
		} else if (*s == ',') {
			s++;
			break;
		} else {
			out[n++] = *s++;
		}
	}
	out[n] = '\0';
	*p = s;
	return out;
}

static int objdef_parse(const char *def, struct objdef *o)
{
	const char *p = def;
	bool first = true;
	while (*p) {
		char *item = next_item(&p);
		if (!item)
			return kite_error("out of memory");
		size_t itemlen = strlen(item);
		char *eq = strchr(item, '=');
		const char *key = eq ? item : "qom-type";
		char *val = eq ? eq + 1 : item;
		if (eq)
			*eq = '\0';
		char **f = (eq || first) ? field(o, key) : NULL;
		first = false;
		if (!f) {
			int r = kite_error("Parameter '%s' is unexpected", eq ? key : item);
			crypto_free_secret(item, itemlen);
			return r;
		}
		free(*f);
		*f = strdup(val);
		crypto_free_secret(item, itemlen);
		if (!*f)
			return kite_error("out of memory");
	}
	return 0;
}

static bool is_identifier(const char *s)
{
	if (!isalpha((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-._", *s))
			return false;
	return true;
}

static int check_objdef(const struct objdef *o)
{
	if (!o->type)
		return kite_error("Parameter 'qom-type' is missing");
	if (strcmp(o->type, "secret"))
		return kite_error("Parameter 'qom-type' does not accept value '%s'", o->type);
	if (!o->id)
		return kite_error("Parameter 'id' is missing");
	if (!is_identifier(o->id))
		return kite_error("Parameter 'id' expects an identifier\nIdentifiers consist of "
				  "letters, digits, '-', '.', '_', starting with a letter.");
	if (o->format && strcmp(o->format, "raw") && strcmp(o->format, "base64"))
		return kite_error("Parameter 'format' does not accept value '%s'", o->format);
	if (find(o->id))
		return kite_error("attempt to add duplicate property '%s' to object (type "
				  "'container')",
				  o->id);
	if (o->data && o->file)
		return kite_error("'file' and 'data' are mutually exclusive");
	if (!o->data && !o->file)
		return kite_error("Either 'file' or 'data' must be provided");
	return 0;
}

/* ---- base64 (RFC 4648, as QEMU's qcrypto_base64_decode takes it) ---- */
static int b64_value(char c)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(alphabet, c) : NULL;
	return p ? (int)(p - alphabet) : -1;
}

static int b64_decode(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
	if (memchr(in, '\0', len))
		return kite_error("Base64 data contains embedded NUL characters");
	for (size_t i = 0; i < len; i++)
		if (in[i] != '=' && b64_value((char)in[i]) < 0)
			return kite_error("Base64 data contains invalid characters");
	uint8_t *o = malloc(len / 4 * 3 + 3);
	if (!o)
		return kite_error("out of memory");
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len && in[i] != '='; i++) {
		acc = acc << 6 | (uint32_t)b64_value((char)in[i]);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (uint8_t)(acc >> bits);
		}
	}
	acc = 0;
	*out = o;
	*outlen = n;
	return 0;
}

/* ---- the data ---- */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return kite_error("Unable to read %s: Failed to open file \u201c%s\u201d: %s", path,
				  path, strerror(errno));
	uint8_t *buf = malloc(MAX_SECRET_FILE + 1);
	size_t n = buf ? fread(buf, 1, MAX_SECRET_FILE + 1, f) : 0;
	bool err = ferror(f);
	fclose(f);
	if (!buf)
		return kite_error("out of memory");
	if (err || n > MAX_SECRET_FILE) {
		crypto_free_secret(buf, MAX_SECRET_FILE + 1);
		return kite_error("Unable to read %s: %s", path,
				  err ? "read error" : "file too large for a secret");
	}
	uint8_t *data = malloc(n ? n : 1);
	if (data)
		memcpy(data, buf, n);
	crypto_free_secret(buf, MAX_SECRET_FILE + 1);
	if (!data)
		return kite_error("out of memory");
	*out = data;
	*len = n;
	return 0;
}

/* data= (keyid=): base64 of AES-256-CBC ciphertext under the 32-byte secret `keyid`, the
 * plaintext padded as PKCS#7 (QEMU's qcrypto_secret_decrypt). */
static int decrypt_with_key(const struct objdef *o, uint8_t *in, size_t inlen, uint8_t **out,
			    size_t *outlen)
{
	struct secret *k = find(o->keyid);
	if (!k)
		return kite_error("No secret with id '%s'", o->keyid);
	if (k->len != 32)
		return kite_error("Cipher key length %zu should be 32", k->len);
	if (!o->iv)
		return kite_error("IV is required to decrypt secret");
	uint8_t *iv = NULL, *ct = NULL;
	size_t ivlen = 0, ctlen = 0;
	if (b64_decode((const uint8_t *)o->iv, strlen(o->iv), &iv, &ivlen) < 0)
		return -1;
	if (ivlen != 16) {
		free(iv);
		return kite_error("IV should be 16 bytes in length not %zu", ivlen);
	}
	if (b64_decode(in, inlen, &ct, &ctlen) < 0) {
		free(iv);
		return -1;
	}
	int r = 0;
	if (!ctlen || ctlen % 16) {
		r = kite_error("Length %zu must be a multiple of block size 16", ctlen);
	} else {
		struct aes256_ctx ctx;
		aes256_set_decrypt_key(&ctx, k->data);
		cbc_decrypt(&ctx, (nettle_cipher_func *)aes256_decrypt, 16, iv, ctlen, ct, ct);
		explicit_bzero(&ctx, sizeof(ctx));
		uint8_t pad = ct[ctlen - 1];
		if (pad > 16 || pad > ctlen)
			r = kite_error("Incorrect number of padding bytes (%d) found on decrypted "
				       "data",
				       pad);
		ctlen -= r ? 0 : pad;
	}
	crypto_free_secret(iv, ivlen);
	if (r < 0) {
		crypto_free_secret(ct, ctlen);
		return -1;
	}
	*out = ct;
	*outlen = ctlen;
	return 0;
}

static int load_data(const struct objdef *o, uint8_t **out, size_t *len)
{
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	if (o->file) {
		if (read_file(o->file, &raw, &rawlen) < 0)
			return -1;
	} else {
		rawlen = strlen(o->data);
		raw = (uint8_t *)strdup(o->data);
		if (!raw)
			return kite_error("out of memory");
	}
	bool b64 = o->format && !strcmp(o->format, "base64");
	int r = 0;
	if (o->keyid) {
		uint8_t *plain = NULL;
		size_t plen = 0;
		r = decrypt_with_key(o, raw, rawlen, &plain, &plen);
		crypto_free_secret(raw, rawlen);
		if (r < 0)
			return -1;
		raw = plain;
		rawlen = plen;
	}
	if (b64) {
		r = b64_decode(raw, rawlen, out, len);
		crypto_free_secret(raw, rawlen);
		return r;
	}
	*out = raw;
	*len = rawlen;
	return 0;
}

int blk_object_add(const char *def)
{
	struct objdef o = {0};
	int r = objdef_parse(def, &o);
	if (r == 0)
		r = check_objdef(&o);
	if (r == 0 && nb_secrets == MAX_SECRETS)
		r = kite_error("too many secrets (at most %d)", MAX_SECRETS);
	uint8_t *data = NULL;
	size_t len = 0;
	if (r == 0)
		r = load_data(&o, &data, &len);
	if (r == 0) {
		char *id = strdup(o.id);
		if (!id) {
			crypto_free_secret(data, len);
			r = kite_error("out of memory");
		} else {
			secrets[nb_secrets++] = (struct secret){id, data, len};
		}
	}
	objdef_free(&o);
	return r;
}

/* UTF-8 as GLib's g_utf8_validate takes it: shortest forms, no surrogates, no NUL. */
static bool valid_utf8(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint8_t c = s[i];
		size_t n = c < 0x80		? 1
			   : (c & 0xe0) == 0xc0 ? 2
			   : (c & 0xf0) == 0xe0 ? 3
			   : (c & 0xf8) == 0xf0 ? 4
						: 0;
		if (!c || !n || n > len - i)
			return false;
		uint32_t cp = n == 1 ? c : c & (0x7f >> n);
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

char *blk_secret_passphrase(const char *id)
{
	struct secret *s = find(id);
	if (!s) {
		crypto_error("No secret with id '%s'", id);
		return NULL;
	}
	if (!valid_utf8(s->data, s->len)) {
		crypto_error("Data from secret %s is not valid UTF-8", id);
		return NULL;
	}
	char *p = malloc(s->len + 1);
	if (!p) {
		crypto_error("out of memory");
		return NULL;
	}
	memcpy(p, s->data, s->len);
	p[s->len] = '\0';
	return p;
}

void blk_secret_free(char *passphrase)
{
	if (passphrase)
		crypto_free_secret(passphrase, strlen(passphrase) + 1);
}

/* Disk encryption: the primitives against published vectors (RFC 6070/7914 PBKDF2, IEEE 1619
 * XTS-AES), the AF splitter and a LUKS header in memory, secrets (base64, keyid), and an
 * encrypted qcow2 image taking unaligned writes through the block layer. */
#include "unit.h"
#include "block/block.h"
#include "block/crypto.h"
#include "block/crypto_luks.h"
#include "block/secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void hex(const char *s, uint8_t *out)
{
	for (size_t i = 0; s[2 * i]; i++)
		sscanf(s + 2 * i, "%2hhx", &out[i]);
}

static void pbkdf2_vectors(void **state)
{
	uint8_t out[64], want[64];
	assert_int_equal(crypto_pbkdf2(CRYPTO_HASH_SHA256, (const uint8_t *)"passwd", 6,
				       (const uint8_t *)"salt", 4, 1, out, 64),
			 0);
	hex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b6"
	    "45991664b39d77ef317c71b845b1e30bd509112041d3a19783",
	    want);
	assert_memory_equal(out, want, 64);
	assert_int_equal(crypto_pbkdf2(CRYPTO_HASH_SHA1, (const uint8_t *)"password", 8,
				       (const uint8_t *)"salt", 4, 2, out, 20),
			 0);
	hex("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957", want);
	assert_memory_equal(out, want, 20);
}

static void xts_vector(void **state)
{
	/* IEEE 1619 vector 1: both keys and the tweak zero; XTS blocks depend on their index
	 * only, so the first 32 bytes of a zero sector are the vector's. */
	struct crypto_spec spec = {CRYPTO_CIPHER_AES_128, CRYPTO_MODE_XTS, CRYPTO_IVGEN_PLAIN64,
				   -1};
	uint8_t key[32] = {0}, sector[512] = {0}, want[32];
	struct crypto_sectors *c = crypto_sectors_new(&spec, key, sizeof(key));
	assert_non_null(c);
	crypto_sectors_encrypt(c, 0, sector, sizeof(sector));
	hex("917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e", want);
	assert_memory_equal(sector, want, 32);
	crypto_sectors_decrypt(c, 0, sector, sizeof(sector));
	assert_true(sector[0] == 0 && !memcmp(sector, sector + 1, sizeof(sector) - 1));
	crypto_sectors_free(c);
}

static void afsplit_roundtrip(void **state)
{
	uint8_t key[64], back[64];
	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)(i * 13);
	uint8_t *split = malloc(64 * 4000);
	assert_int_equal(crypto_afsplit_encode(CRYPTO_HASH_SHA256, 64, 4000, key, split), 0);
	assert_int_equal(crypto_afsplit_decode(CRYPTO_HASH_SHA256, 64, 4000, split, back), 0);
	assert_memory_equal(key, back, 64);
	split[1000] ^= 1; /* any stripe changed: another key */
	assert_int_equal(crypto_afsplit_decode(CRYPTO_HASH_SHA256, 64, 4000, split, back), 0);
	assert_memory_not_equal(key, back, 64);
	free(split);
}

/* ---- a LUKS header in a memory buffer ---- */
static uint8_t *mem;
static uint64_t memlen;

static int mem_init(void *opaque, uint64_t len)
{
	mem = calloc(1, len);
	memlen = len;
	return mem ? 0 : -1;
}

static int mem_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	assert_true(off + len <= memlen);
	memcpy(mem + off, buf, len);
	return 0;
}

static int mem_read(void *opaque, uint64_t off, void *buf, size_t len)
{
	if (off + len > memlen)
		return -1;
	memcpy(buf, mem + off, len);
	return 0;
}

static void luks_in_memory(void **state)
{
	struct blk_encrypt_opts o = {
	    .cipher_mode = "cbc", .ivgen_alg = "essiv", .iter_time = 1, .iter_time_set = true};
	assert_int_equal(luks_create(&o, "pw", mem_init, mem_write, NULL), 0);
	uint64_t size;
	assert_int_equal(luks_header_size(&o, &size), 0);
	assert_int_equal(size, memlen);
	assert_null(luks_open(mem_read, NULL, "wrong"));
	struct luks *l = luks_open(mem_read, NULL, "pw");
	assert_non_null(l);
	struct blk_crypto_info in = {0};
	luks_info(l, &in);
	assert_string_equal(in.cipher_alg, "aes-256");
	assert_string_equal(in.ivgen_hash_alg, "sha256");
	assert_true(in.slots[0].active && !in.slots[1].active);
	uint8_t buf[1024], orig[1024];
	for (int i = 0; i < 1024; i++)
		orig[i] = buf[i] = (uint8_t)i;
	luks_encrypt(l, 7, buf, sizeof(buf));
	assert_memory_not_equal(buf, orig, sizeof(buf));
	luks_decrypt(l, 7, buf, sizeof(buf));
	assert_memory_equal(buf, orig, sizeof(buf));
	luks_close(l);
	free(mem);
}

static void secrets(void **state)
{
	assert_int_equal(blk_object_add("secret,id=a,data=aGVsbG8=,format=base64"), 0);
	assert_int_equal(blk_object_add("secret,id=k,data=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBka"
					"GxwdHh8=,format=base64"),
			 0);
	assert_int_equal(blk_object_add("secret,id=e,data=BGjxpSaepyRbuExk1FbpTQ==,keyid=k,"
					"iv=EBESExQVFhcYGRobHB0eHw=="),
			 0);
	assert_int_equal(blk_object_add("secret,id=c,data=a,,b"), 0);
	assert_int_equal(blk_object_add("secret,id=a,data=x"), -1); /* a duplicate */
	assert_int_equal(blk_object_add("secret,id=z,data=x,keyid=k"), -1);
	char *p = blk_secret_passphrase("a");
	assert_string_equal(p, "hello");
	blk_secret_free(p);
	p = blk_secret_passphrase("e");
	assert_string_equal(p, "hello");
	blk_secret_free(p);
	p = blk_secret_passphrase("c");
	assert_string_equal(p, "a,b");
	blk_secret_free(p);
	assert_null(blk_secret_passphrase("k")); /* binary: not UTF-8 */
	assert_null(blk_secret_passphrase("nope"));
	blk_secrets_clear();
	assert_null(blk_secret_passphrase("a"));
}

/* Unaligned writes into an encrypted qcow2 image read back, also after a reopen. */
static void qcow2_unaligned_io(void **state)
{
	char path[] = "/tmp/kite-test-luks-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(blk_object_add("secret,id=s,data=pw"), 0);
	struct blk_create_opts o = {.size = 4 << 20, .size_set = true, .cluster_size = 4096};
	o.encrypt = (struct blk_encrypt_opts){
	    .format = "luks", .key_secret = "s", .iter_time = 1, .iter_time_set = true};
	assert_int_equal(blk_create(path, "qcow2", &o), 0);
	struct blk *b = blk_open_keyed(path, "qcow2", BLK_O_RDWR, "s");
	assert_non_null(b);
	static uint8_t want[4 << 20], got[4 << 20];
	static const struct {
		uint64_t off;
		size_t len;
	} w[] = {{1, 10}, {511, 2}, {4000, 9000}, {65535, 70000}, {(4 << 20) - 3, 3}};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		for (size_t k = 0; k < w[i].len; k++)
			want[w[i].off + k] = (uint8_t)(i * 31 + k);
		assert_int_equal(blk_pwrite(b, want + w[i].off, w[i].len, w[i].off), 0);
	}
	assert_int_equal(blk_pread(b, got, sizeof(got), 0), 0);
	assert_memory_equal(got, want, sizeof(got));
	blk_close(b);
	b = blk_open(path, "qcow2", BLK_O_RDONLY); /* no key */
	assert_null(b);
	b = blk_open_keyed(path, "qcow2", BLK_O_RDONLY, "s");
	assert_non_null(b);
	memset(got, 0, sizeof(got));
	assert_int_equal(blk_pread(b, got + 3, 7777, 3), 0);
	assert_memory_equal(got + 3, want + 3, 7777);
	struct blk_info in;
	assert_int_equal(blk_get_info(b, &in), 0);
	assert_true(in.encrypted);
	assert_string_equal(in.crypto.format, "luks");
	blk_close(b);
	blk_secrets_clear();
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pbkdf2_vectors),	 cmocka_unit_test(xts_vector),
	    cmocka_unit_test(afsplit_roundtrip), cmocka_unit_test(luks_in_memory),
	    cmocka_unit_test(secrets),		 cmocka_unit_test(qcow2_unaligned_io),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

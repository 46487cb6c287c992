/* Hashes, PBKDF2 and the iteration benchmark LUKS creation uses (nettle). */
#include "block/crypto.h"
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <nettle/hmac.h>
#include <nettle/md5.h>
#include <nettle/nettle-meta.h>
#include <nettle/pbkdf2.h>
#include <nettle/ripemd160.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const struct {
	const char *name;
	const struct nettle_hash *h;
} hashes[CRYPTO_HASH__MAX] = {
    [CRYPTO_HASH_MD5] = {"md5", &nettle_md5},
    [CRYPTO_HASH_SHA1] = {"sha1", &nettle_sha1},
    [CRYPTO_HASH_SHA224] = {"sha224", &nettle_sha224},
    [CRYPTO_HASH_SHA256] = {"sha256", &nettle_sha256},
    [CRYPTO_HASH_SHA384] = {"sha384", &nettle_sha384},
    [CRYPTO_HASH_SHA512] = {"sha512", &nettle_sha512},
    [CRYPTO_HASH_RIPEMD160] = {"ripemd160", &nettle_ripemd160},
};

/* room for the state of any hash above */
union hash_ctx {
	struct md5_ctx md5;
	struct sha1_ctx sha1;
	struct sha256_ctx sha256;
	struct sha512_ctx sha512;
	struct ripemd160_ctx ripemd160;
};

int crypto_hash_lookup(const char *name)
{
	for (int i = 0; i < CRYPTO_HASH__MAX; i++)
		if (!strcmp(hashes[i].name, name))
			return i;
	return -1;
}

const char *crypto_hash_name(int alg)
{
	return hashes[alg].name;
}

size_t crypto_hash_len(int alg)
{
	return hashes[alg].h->digest_size;
}

static __thread const char *error_prefix;

void crypto_set_error_prefix(const char *prefix)
{
	error_prefix = prefix;
}

int crypto_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return kite_error("%s%s", error_prefix ? error_prefix : "", msg);
}

void crypto_free_secret(void *p, size_t len)
{
	if (!p)
		return;
	explicit_bzero(p, len);
	free(p);
}

void crypto_hash2(int alg, const void *a, size_t alen, const void *b, size_t blen, uint8_t *out)
{
	const struct nettle_hash *h = hashes[alg].h;
	union hash_ctx ctx;
	h->init(&ctx);
	h->update(&ctx, alen, a);
	if (blen)
		h->update(&ctx, blen, b);
	h->digest(&ctx, h->digest_size, out);
	explicit_bzero(&ctx, sizeof(ctx));
}

/* HMAC over any nettle hash, in the shape nettle's generic pbkdf2() drives. */
struct hmac_any {
	const struct nettle_hash *h;
	union hash_ctx outer, inner, state;
};

static void hmac_any_update(void *ctx, size_t len, const uint8_t *data)
{
	struct hmac_any *m = ctx;
	hmac_update(&m->state, m->h, len, data);
}

static void hmac_any_digest(void *ctx, size_t len, uint8_t *out)
{
	struct hmac_any *m = ctx;
	hmac_digest(&m->outer, &m->inner, &m->state, m->h, len, out);
}

int crypto_pbkdf2(int alg, const uint8_t *pw, size_t pwlen, const uint8_t *salt, size_t saltlen,
		  uint32_t iters, uint8_t *out, size_t outlen)
{
	if (!iters)
		return crypto_error("PBKDF iterations must be at least 1");
	struct hmac_any *m = malloc(sizeof(*m));
	if (!m)
		return crypto_error("out of memory");
	m->h = hashes[alg].h;
	hmac_set_key(&m->outer, &m->inner, &m->state, m->h, pwlen, pw);
	pbkdf2(m, hmac_any_update, hmac_any_digest, m->h->digest_size, iters, saltlen, salt, outlen,
	       out);
	crypto_free_secret(m, sizeof(*m));
	return 0;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* As QEMU: from 2^15 iterations, grow until a run takes over half a second of CPU time,
 * then scale to one second. kite's clock counts nanoseconds, so it never fails for a
 * coarse clock as QEMU's millisecond one can ("Unable to get accurate CPU usage"). */
uint64_t crypto_pbkdf2_count_iters(int alg, const uint8_t *pw, size_t pwlen, const uint8_t *salt,
				   size_t saltlen, size_t outlen)
{
	uint8_t *out = malloc(outlen);
	if (!out) {
		crypto_error("out of memory");
		return 0;
	}
	uint64_t iters = 1u << 15, delta;
	for (;;) {
		uint64_t start = thread_cpu_ns();
		if (crypto_pbkdf2(alg, pw, pwlen, salt, saltlen, (uint32_t)iters, out, outlen) <
		    0) {
			crypto_free_secret(out, outlen);
			return 0;
		}
		delta = thread_cpu_ns() - start;
		if (delta == 0)
			delta = 1;
		if (delta > 500000000u || iters >= UINT32_MAX / 10)
			break;
		iters = delta < 100000000u ? iters * 10 : iters * 1000000000u / delta;
		if (iters > UINT32_MAX)
			iters = UINT32_MAX;
	}
	crypto_free_secret(out, outlen);
	return iters * 1000000000u / delta;
}

int crypto_random(void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return crypto_error("getrandom: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * verifycache.c
 *		Signatures that verified, remembered per backend.
 *
 * An RSA, ECDSA or EdDSA verification costs 25 to 150 microseconds; an
 * application that presents the same bearer token on every request pays
 * that each time.  What is remembered is only the outcome of the pure
 * function verify(public key, algorithm, signing input, signature) = yes,
 * under SHA-256(token text) XOR SHA-256(key's public part, DER SPKI).  The
 * token text fixes the algorithm (its header names it).  The token's digest
 * is computed once per call, the key's once per key, so a lookup costs one
 * SHA-256 of the token whatever the number of candidate keys.  For a token
 * t' and key k' to find the entry of (t, k), SHA-256(t') must equal
 * SHA-256(t) XOR SHA-256(k) XOR SHA-256(k'): a preimage of a given value
 * (for k' = k, a second preimage of t), which SHA-256 does not allow.
 * Nothing that can change is cached: the token's
 * claims (exp, nbf, aud, ...), the key's state in the key table and the
 * revocation tables are checked on every call exactly as without the memo.
 * A different token text -- another signature for the same claims, as
 * ECDSA allows -- is a different entry.  Failures are not remembered.
 *
 * The table is 4-way set associative with least-recently-used replacement
 * in each set: jwt.verify_cache_size entries of 48 bytes, no more.
 */
#include "postgres.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "utils/memutils.h"

#include "verifycache.h"

#define WAYS	4

typedef struct MemoEntry
{
	unsigned char digest[JWT_VERIFY_DIGEST_LEN];
	uint64		last_used;		/* 0: empty */
} MemoEntry;

int			jwt_verify_cache_size = 4096;

static MemoEntry *table = NULL;
static int	nsets = 0;
static uint64 use_clock = 0;

JwtCacheStats jwt_verify_cache_stats;

EVP_MD *
jwt_sha256(void)
{
	static EVP_MD *md = NULL;

	if (md == NULL && (md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		elog(ERROR, "could not fetch SHA-256");
	return md;
}

/* The table for the current jwt.verify_cache_size; false when off. */
static bool
ensure_table(void)
{
	int			want = 0;

	if (jwt_verify_cache_size > 0)
	{
		want = 1;
		while (want * WAYS < jwt_verify_cache_size)
			want <<= 1;
	}
	if (want != nsets)
	{
		if (table != NULL)
			pfree(table);
		table = want > 0 ?
			MemoryContextAllocZero(TopMemoryContext, sizeof(MemoEntry) * want * WAYS) : NULL;
		nsets = want;
		jwt_verify_cache_stats.entries = 0;
		jwt_verify_cache_stats.capacity = want * WAYS;
		jwt_verify_cache_stats.bytes = sizeof(MemoEntry) * want * WAYS;
	}
	return nsets > 0;
}

void
jwt_verify_cache_fill_stats(void)
{
	(void) ensure_table();
}

/* SHA-256 of the key's public part, computed once per key */
static bool
key_id(JwtKey *key)
{
	unsigned char *der = NULL;
	int			len;
	bool		ok;

	if (key->has_id)
		return true;
	if (key->jws.pkey == NULL || (len = i2d_PUBKEY(key->jws.pkey, &der)) <= 0)
		return false;
	ok = EVP_Digest(der, len, key->id, NULL, jwt_sha256(), NULL) == 1;
	OPENSSL_free(der);
	key->has_id = ok;
	return ok;
}

bool
jwt_verify_cache_token_digest(const JwsAlg *alg, const char *token, size_t len,
							  unsigned char *token_digest)
{
	static EVP_MD_CTX *ctx = NULL;	/* kept: one less allocation per call */

	if (alg->family == JWS_HMAC || !ensure_table())
		return false;
	if (ctx == NULL && (ctx = EVP_MD_CTX_new()) == NULL)
		return false;
	if (EVP_DigestInit_ex(ctx, jwt_sha256(), NULL) == 1 &&
		EVP_DigestUpdate(ctx, token, len) == 1 &&
		EVP_DigestFinal_ex(ctx, token_digest, NULL) == 1)
		return true;
	ERR_clear_error();
	return false;
}

bool
jwt_verify_cache_key_digest(JwtKey *key, const unsigned char *token_digest,
							unsigned char *digest)
{
	if (!key_id(key))
		return false;
	for (int i = 0; i < JWT_VERIFY_DIGEST_LEN; i++)
		digest[i] = token_digest[i] ^ key->id[i];
	return true;
}

static MemoEntry *
set_of(const unsigned char *digest)
{
	uint32		h;

	memcpy(&h, digest, sizeof(h));
	return &table[(h & (nsets - 1)) * WAYS];
}

bool
jwt_verify_cache_hit(const unsigned char *digest)
{
	MemoEntry  *set;

	if (!ensure_table())
		return false;
	set = set_of(digest);
	for (int i = 0; i < WAYS; i++)
	{
		if (set[i].last_used != 0 &&
			memcmp(set[i].digest, digest, JWT_VERIFY_DIGEST_LEN) == 0)
		{
			set[i].last_used = ++use_clock;
			jwt_verify_cache_stats.hits++;
			return true;
		}
	}
	jwt_verify_cache_stats.misses++;
	return false;
}

void
jwt_verify_cache_add(const unsigned char *digest)
{
	MemoEntry  *set;
	MemoEntry  *victim;

	if (!ensure_table())
		return;
	set = set_of(digest);
	victim = &set[0];
	for (int i = 1; i < WAYS; i++)
	{
		if (set[i].last_used < victim->last_used)
			victim = &set[i];
	}
	if (victim->last_used == 0)
		jwt_verify_cache_stats.entries++;
	memcpy(victim->digest, digest, JWT_VERIFY_DIGEST_LEN);
	victim->last_used = ++use_clock;
}

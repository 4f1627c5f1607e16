/*
 * verifycache.h
 *		A per-backend memo of signatures that verified: (key, algorithm,
 *		token) -> yes, so that a token presented again skips the public-key
 *		operation.  Only the signature is memoized; every claim, the key's
 *		state and revocation are checked on every call as before.
 */
#ifndef JWT_VERIFYCACHE_H
#define JWT_VERIFYCACHE_H

#include "postgres.h"

#include <openssl/evp.h>

#include "jws.h"
#include "keys.h"

#define JWT_VERIFY_DIGEST_LEN	32

/* What jwt_cache_stats() shows of a cache, since the backend started */
typedef struct JwtCacheStats
{
	int64		entries;
	int64		capacity;
	int64		bytes;
	int64		hits;
	int64		misses;
} JwtCacheStats;

extern JwtCacheStats jwt_verify_cache_stats;
extern void jwt_verify_cache_fill_stats(void);

/* SHA-256, fetched once per backend */
extern EVP_MD *jwt_sha256(void);

/* Entries kept (jwt.verify_cache_size); 0 turns the memo off. */
extern int	jwt_verify_cache_size;

/*
 * The memo's key for a token is made in two steps: the token's digest, once
 * per call (false when the memo does not apply: it is off, or the algorithm
 * is HMAC, whose MAC costs no more than the lookup), then, per candidate
 * key, that digest combined with the key's (false for a key without a
 * public part).
 */
extern bool jwt_verify_cache_token_digest(const JwsAlg *alg, const char *token,
										  size_t len, unsigned char *token_digest);
extern bool jwt_verify_cache_key_digest(JwtKey *key,
										const unsigned char *token_digest,
										unsigned char *digest);
extern bool jwt_verify_cache_hit(const unsigned char *digest);
extern void jwt_verify_cache_add(const unsigned char *digest);

#endif							/* JWT_VERIFYCACHE_H */

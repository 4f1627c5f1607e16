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

/* Entries kept (jwt.verify_cache_size); 0 turns the memo off. */
extern int	jwt_verify_cache_size;

/*
 * Whether this key verified this token's signature before.  digest receives
 * what jwt_verify_cache_add needs to remember it; false without one when the
 * memo does not apply (off, an HMAC key: recomputing a MAC costs no more).
 */
extern bool jwt_verify_cache_applies(JwtKey *key, const JwsAlg *alg,
									 const char *token, size_t len,
									 unsigned char *digest);
extern bool jwt_verify_cache_hit(const unsigned char *digest);
extern void jwt_verify_cache_add(const unsigned char *digest);

#endif							/* JWT_VERIFYCACHE_H */

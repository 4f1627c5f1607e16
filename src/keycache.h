/*
 * keycache.h
 *		A per-backend cache of parsed key arguments, by a digest of their
 *		text, so that a PEM or JWK passed on every call is parsed once.
 */
#ifndef JWT_KEYCACHE_H
#define JWT_KEYCACHE_H

#include "postgres.h"
#include "fmgr.h"

#include "keys.h"
#include "verifycache.h"

/* Entries kept (jwt.key_cache_size); 0 turns the cache off. */
extern int	jwt_key_cache_size;
extern int	jwt_key_cache_memory;

/*
 * jwt_key_arg_from_text for the key argument of one call site, through the
 * cache: PEM, JWK and JWKS arguments come back marked cached
 * (jwt_key_arg_release leaves them alone), found by the digest of their
 * text; a key passed again on the next row of the query is recognised
 * without hashing its text, and a secret is kept only for that query (see
 * keycache.c).
 */
extern JwtKeyArg *jwt_key_arg_for_call(FmgrInfo *flinfo, const char *data,
									   size_t len);

/* Its counters for jwt_cache_stats(); fill_stats brings them up to date. */
extern JwtCacheStats jwt_key_cache_stats;
extern void jwt_key_cache_fill_stats(void);

#endif							/* JWT_KEYCACHE_H */

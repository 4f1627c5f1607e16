/*
 * keycache.h
 *		A per-backend cache of parsed key arguments, by a digest of their
 *		text, so that a PEM or JWK passed on every call is parsed once.
 */
#ifndef JWT_KEYCACHE_H
#define JWT_KEYCACHE_H

#include "postgres.h"

#include "keys.h"

/* Entries kept (jwt.key_cache_size); 0 turns the cache off. */
extern int	jwt_key_cache_size;

/*
 * jwt_key_arg_from_text, through the cache: PEM and JWK arguments come back
 * marked cached (jwt_key_arg_release leaves them alone); secrets and key
 * sets are not cached, as they cost nothing to "parse" or are parsed lazily.
 */
extern JwtKeyArg *jwt_key_arg_cached(const char *data, size_t len);

#endif							/* JWT_KEYCACHE_H */

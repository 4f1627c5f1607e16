/*
 * keystore.h
 *		The key and issuer tables (jwt_keys, jwt_issuers) as verification
 *		sees them: a per-backend cache of one entry per issuer (its rules and
 *		keys, read by index when a token of it is first seen), bounded in
 *		bytes and dropped per issuer when its rows change, and the choice of
 *		keys and rules for a token from its "iss" and "kid".
 *
 * The tables are read with the rights of their owner, so that any role can
 * verify without being able to SELECT the keys.  A row trigger on each
 * table sends an invalidation for the issuer of each changed row;
 * invalidations travel in the commit record, so backends on a hot standby
 * drop the entry when they replay the change.  Nothing here writes.
 */
#ifndef JWT_KEYSTORE_H
#define JWT_KEYSTORE_H

#include "postgres.h"
#include "access/htup.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

#include "token.h"
#include "verifycache.h"

/* jwt.issuer_cache_memory, kB: the entries' bound per backend */
extern int	jwt_issuer_cache_memory;

/* Its counters for jwt_cache_stats(); fill_stats brings them up to date. */
extern JwtCacheStats jwt_store_cache_stats;
extern void jwt_store_fill_stats(void);

/*
 * Verify a token against the tables: the token's "iss" picks the issuer
 * (own_issuer, or none, means our own keys), its "kid" or algorithm the
 * keys; the issuer's rules fill in what params left to defaults.
 */
extern bool jwt_store_verify(const char *token, size_t len,
							 JwtVerifyParams *params, const char *own_issuer,
							 JwtClaims *claims, JwtFailure *f);

/* The snapshot to read the extension's tables with (see keystore.c). */
extern Snapshot jwt_read_snapshot(void);

/* The schema extension extoid lives in (pg_extension.extnamespace). */
extern Oid	jwt_extension_schema(Oid extoid);

/* Drops the entries read with a parallel query's snapshot (transaction end). */
extern void jwt_store_end_of_xact(void);

/* The extension's owner (pg_extension.extowner). */
extern Oid	jwt_extension_owner(Oid extoid);

/* Called by the tables' trigger: every backend drops its cache at commit. */
extern void jwt_store_changed(Oid relid);

/* the relcache invalidation that drops one issuer's entry ("": our own) */
extern uint32 jwt_issuer_tag(const char *iss, int len);

/*
 * Called by the row trigger of a table whose column col holds the issuer
 * (NULL: our own keys): every backend drops the entries of the old and new
 * row's issuers at commit.
 */
extern void jwt_store_rows_changed(Relation rel, HeapTuple oldtup,
								   HeapTuple newtup, int col);

#endif							/* JWT_KEYSTORE_H */

/*
 * keystore.h
 *		The key and issuer tables (jwt_keys, jwt_issuers) as verification
 *		sees them: a per-backend cache of their rows and parsed keys, dropped
 *		whenever either table changes, and the choice of keys and rules for a
 *		token from its "iss" and "kid".
 *
 * The tables are read with the rights of their owner, so that any role can
 * verify without being able to SELECT the keys.  A statement trigger on each
 * table sends a relcache invalidation for it; invalidations travel in the
 * commit record, so backends on a hot standby drop their cache when they
 * replay the change.  Nothing here writes.
 */
#ifndef JWT_KEYSTORE_H
#define JWT_KEYSTORE_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/snapshot.h"

#include "token.h"

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

/* Drops a cache read with a parallel query's snapshot (transaction end). */
extern void jwt_store_end_of_xact(void);

/* The extension's owner (pg_extension.extowner). */
extern Oid	jwt_extension_owner(Oid extoid);

/* Called by the tables' trigger: every backend drops its cache at commit. */
extern void jwt_store_changed(Oid relid);

#endif							/* JWT_KEYSTORE_H */

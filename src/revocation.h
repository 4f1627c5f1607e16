/*
 * revocation.h
 *		Revoked tokens (jwt_revoked by jti, jwt_revoked_subjects by sub and
 *		iat) as verification sees them, and the autonomous revocation of a
 *		refresh token family.
 */
#ifndef JWT_REVOCATION_H
#define JWT_REVOCATION_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "token.h"

/* At transaction end: forget what a parallel query's snapshot showed. */
extern void jwt_revocation_end_of_xact(void);

/* false, and JW010 in *f, when verified claims belong to a revoked token */
extern bool jwt_revocation_check(const JwtClaims *claims, JwtFailure *f);

/*
 * A jti or sub as the key of its revocation table: a string as it is, a
 * number in the text form ->> gives it (what jwt_revoke stores); false for
 * anything else.  The login snapshot (login.c) keys its lists the same way.
 */
extern bool jwt_revocation_key(const JsonbValue *v, const char **s, int *len);

/*
 * Mark the family revoked in a transaction of its own (a background
 * worker); true once the row shows it.  When no worker could do it, it
 * records the family as pending (durably, see revocation.c), warns and
 * returns false.
 */
extern bool jwt_family_revoke(pg_uuid_t *family, const char *reason);

/*
 * Whether a family's revocation is recorded but not yet in the table (no
 * worker could write it): jwt_refresh refuses such a family.
 */
extern bool jwt_family_pending(const pg_uuid_t *family);

#endif							/* JWT_REVOCATION_H */

/*
 * session.h
 *		The identity a verified token gives a transaction (or a session):
 *		the claims jwt_claims() and jwt_claim() read, and the role switch.
 *
 * The claims are held in a GUC that only this module and superusers can
 * set (jwt.identity, hidden), set with SET LOCAL semantics.  That buys the
 * scoping rules PostgreSQL already has for settings: the identity ends with
 * the transaction, a rolled-back subtransaction restores the one before, and
 * parallel workers receive it with the other settings, so that a policy
 * evaluated in a worker sees what the leader sees.  The parsed jsonb is
 * cached per backend and rebuilt only when the setting changes.
 */
#ifndef JWT_SESSION_H
#define JWT_SESSION_H

#include "postgres.h"
#include "fmgr.h"
#include "utils/jsonb.h"

/* Define the session GUCs; called from _PG_init. */
extern void jwt_session_init(void);

/*
 * Make claims the identity (NULL: anonymous) for the transaction, or for
 * the session, and switch role as jwt.role_claim and jwt.anon_role say.
 */
extern void jwt_session_begin(Jsonb *claims, bool session_scope);

/*
 * The current identity, or NULL: it points into a cache that the next
 * change of identity or the end of the transaction frees, so callers copy
 * it.
 */
extern Jsonb *jwt_session_claims(void);
extern void jwt_session_login(Jsonb *claims);
extern const char *jwt_role_claim_name(void);

/*
 * One claim of it as text (as ->> gives it), or NULL, for the call site
 * flinfo: the answer lives in flinfo->fn_mcxt, as long as the expression
 * that asked, and is not to be modified.
 */
extern text *jwt_session_claim_for_call(FmgrInfo *flinfo, const char *name, int len);

/*
 * One claim by name, or by path into nested objects ("app_metadata.role");
 * false when absent.  Raises 22023 for a malformed path.
 */
extern bool jwt_claim_lookup(Jsonb *claims, const char *name, int len,
							 JsonbValue *out);

#endif							/* JWT_SESSION_H */

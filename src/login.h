/*
 * login.h
 *		Logging in with a token (PostgreSQL 18 and later): the key snapshot
 *		a worker keeps, and the OAuth validator that reads it.
 *
 * A validator runs while a connection authenticates, before the backend
 * is connected to a database: it cannot read jwt_keys.  So a worker
 * connected to jwt.database writes the keys and rules of the issuers that
 * pg_hba.conf's oauth lines name (and of our own issuer, when a line
 * names jwt.issuer), with the live revocations, into one file in the data
 * directory, and tells the validator through shared memory which file is
 * current and when it last looked for changes.  Nothing here exists
 * before 18: the functions are defined, and do nothing, so callers need
 * no version tests of their own.
 */
#ifndef JWT_LOGIN_H
#define JWT_LOGIN_H

/* the snapshot, in the data directory (every backend's working directory) */
#define JWT_LOGIN_SNAPSHOT_FILE		"pg_jwt_login_snapshot"

/* its first line: this tag, a space, the nonce in 16 hex digits */
#define JWT_LOGIN_SNAPSHOT_TAG		"jwt login snapshot 1"

/* from jwt.c: jwt.issuer, and the checks a call without arguments makes */
extern char *jwt_issuer;
struct JwtVerifyParams;
extern void jwt_default_params(struct JwtVerifyParams *p);

/* jwt.login_claim: the claim that becomes the connection's authn_id */
extern char *jwt_login_claim;

/*
 * From _PG_init: defines jwt.login_claim and, while shared_preload_libraries
 * is being processed, the worker and its shared memory.
 */
extern void jwt_login_init(void);

/* what the validator knows of the worker (shared memory) */
typedef struct JwtLoginState
{
	bool		attached;		/* shared memory is there (preloaded) */
	uint64		nonce;			/* of the current file; 0: none */
	int64		checked_ms;		/* age of the worker's last look, ms */
	char		reason[160];	/* why there is no file, when nonce is 0 */
} JwtLoginState;

extern void jwt_login_state(JwtLoginState *st);

#endif							/* JWT_LOGIN_H */

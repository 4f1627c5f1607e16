/*
 * token.h
 *		JWS compact tokens: split, decode header and payload into jsonb,
 *		verify the signature with a caller's key, check the claims; and the
 *		reverse, signing claims into a token.
 *
 * Token failures are returned as a JwtFailure rather than raised, so that
 * jwt_is_valid() can answer false without a subtransaction and jwt_verify()
 * raises exactly one error of class JW.  Mistakes in the call itself (a key
 * that does not parse, a bad argument) are raised at once with 22023.
 */
#ifndef JWT_TOKEN_H
#define JWT_TOKEN_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "jsonutil.h"
#include "jws.h"
#include "keys.h"

/* Tokens longer than this are refused before any decoding. */
#define JWT_MAX_TOKEN_LEN	(1024 * 1024)

typedef struct JwtFailure
{
	int			sqlerrcode;		/* ERRCODE_JWT_* */
	const char *message;		/* primary message, static */
	const char *detail;			/* NULL or a full sentence, never token text */
} JwtFailure;

/* What kind of token a verification expects (RFC 8725 §3.11, explicit typing) */
typedef enum JwtTokenType
{
	JWT_TOKEN_ACCESS = 0,		/* anything but a refresh token */
	JWT_TOKEN_REFRESH,			/* header "typ": "refresh+jwt", ours */
	JWT_TOKEN_ANY
} JwtTokenType;

/* The "typ" of the refresh tokens jwt_issue_pair and jwt_refresh make */
#define JWT_REFRESH_TYP		"refresh+jwt"

typedef struct JwtVerifyParams
{
	JwtTokenType token_type;
	bool		signature_only; /* only decode the claims, check none */
	bool		own_keys_only;	/* key table: our own keys, never an issuer's */
	bool		restrict_algs;	/* false: whatever the key allows */
	const JwsAlg *allowed[16];
	int			nallowed;
	const char **audiences;		/* "aud" must hold one of these */
	int		   *audience_lens;
	int			naudiences;		/* 0: no audience expected */
	const char *audience_slot;	/* where audiences point for just one */
	int			audience_slot_len;
	bool		audience_given; /* by the caller, not from jwt.audience */
	const char *issuer;			/* NULL: issuer not checked */
	int			issuer_len;
	int64		leeway;			/* microseconds, >= 0 */
	bool		leeway_given;	/* by the caller, not from jwt.leeway */
	char	  **require;		/* claim names that must be present */
	int			nrequire;
	TimestampTz now;
} JwtVerifyParams;

/* Byte ranges of the three segments inside the token text. */
typedef struct JwtParts
{
	const char *token;
	size_t		header_len;
	size_t		payload_off;
	size_t		payload_len;
	size_t		sig_off;
	size_t		sig_len;
} JwtParts;

/* A token split, its header decoded and its algorithm allowed. */
typedef struct JwtOpened
{
	JwtParts	parts;
	JsonbValue	header;			/* a jbvObject tree (json_parse_tree_strict) */
	const JwsAlg *alg;
	JsonbValue *kid;			/* header "kid" (a string), or NULL */
} JwtOpened;

extern bool jwt_split(const char *token, size_t len, JwtParts *parts,
					  JwtFailure *f);
extern Jsonb *jwt_decode_header(const JwtParts *parts, JwtFailure *f);
extern Jsonb *jwt_decode_payload(const JwtParts *parts, JwtFailure *f);

/*
 * A token's claims: the payload parsed into a tree, which the checks read;
 * the jsonb a caller returns is built from the tree only when asked for
 * (jwt_is_valid never asks).  The tree points into the decoded payload, in
 * the memory context of the call.
 */
typedef struct JwtClaims
{
	bool		decoded;		/* false until the payload is parsed */
	JsonbValue	tree;			/* jbvObject, members in jsonb order */
	JsonFastInts ints;			/* its plain-integer members, for dates */
	Jsonb	   *jsonb;			/* NULL until jwt_claims_jsonb */
} JwtClaims;

extern bool jwt_decode_claims(const JwtParts *parts, JwtClaims *claims,
							  JwtFailure *f);
/* A claim (containers are jbvObject/jbvArray), or NULL when absent */
extern JsonbValue *jwt_claim_value(const JwtClaims *claims, const char *name);
extern Jsonb *jwt_claims_jsonb(JwtClaims *claims);

/* claims: zeroed by the caller; filled in when the token verifies */
extern bool jwt_verify_token(const char *token, size_t len, JwtKeyArg *key,
							 const JwtVerifyParams *params, JwtClaims *claims,
							 JwtFailure *f);

/*
 * The two halves of jwt_verify_token, for callers that choose keys
 * themselves (the key store): open the token, then check it with the keys
 * chosen.  claims may hold the payload already decoded.
 */
extern bool jwt_token_open(const char *token, size_t len,
						   const JwtVerifyParams *params, JwtOpened *t,
						   JwtFailure *f);
extern bool jwt_alg_allowed(const JwtVerifyParams *params, const JwsAlg *alg);
extern bool jwt_token_check(const JwtOpened *t, JwtKey **keys, int nkeys,
							const JwtVerifyParams *params, JwtClaims *claims,
							JwtFailure *f);
extern bool jwt_fail(JwtFailure *f, int code, const char *message,
					 const char *detail);

/* A NumericDate claim as a timestamp; false when it is not one. */
extern bool jwt_numeric_date(JsonbValue *v, TimestampTz *ts);

/* Most keys one token is tried against when it names no kid. */
#define JWT_MAX_CANDIDATES	8

extern text *jwt_sign_token(Jsonb *claims, JwtKeyArg *key, const JwsAlg *alg,
							Jsonb *header);

#endif							/* JWT_TOKEN_H */

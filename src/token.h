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

typedef struct JwtVerifyParams
{
	bool		restrict_algs;	/* false: whatever the key allows */
	const JwsAlg *allowed[16];
	int			nallowed;
	const char *audience;		/* NULL: no audience expected */
	int			audience_len;
	const char *issuer;			/* NULL: issuer not checked */
	int			issuer_len;
	int64		leeway;			/* microseconds, >= 0 */
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

extern bool jwt_split(const char *token, size_t len, JwtParts *parts,
					  JwtFailure *f);
extern Jsonb *jwt_decode_header(const JwtParts *parts, JwtFailure *f);
extern Jsonb *jwt_decode_payload(const JwtParts *parts, JwtFailure *f);

extern bool jwt_verify_token(const char *token, size_t len, JwtKeyArg *key,
							 const JwtVerifyParams *params, Jsonb **claims,
							 JwtFailure *f);

extern text *jwt_sign_token(Jsonb *claims, JwtKeyArg *key, const JwsAlg *alg,
							Jsonb *header);

#endif							/* JWT_TOKEN_H */

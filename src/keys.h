/*
 * keys.h
 *		Keys as callers give them -- HMAC secret, PEM, JWK, JWKS -- turned into
 *		what the JWS layer signs and verifies with.
 *
 * Every JwtKey owns its OpenSSL object and its copy of any secret.  Both are
 * released by jwt_key_release(), or, if an error unwinds first, by a reset
 * callback on the memory context the key was made in: no EVP_PKEY leaks and
 * no secret survives in freed memory whichever way a call ends.
 */
#ifndef JWT_KEYS_H
#define JWT_KEYS_H

#include "postgres.h"
#include "utils/jsonb.h"

#include "jws.h"

typedef enum JwtKeyType
{
	JWT_KEY_OCT,				/* HMAC secret */
	JWT_KEY_RSA,
	JWT_KEY_EC,
	JWT_KEY_OKP					/* Ed25519, Ed448 */
} JwtKeyType;

typedef struct JwtKey
{
	JwtKeyType	type;
	JwsKey		jws;			/* pkey or secret, for the JWS layer */
	bool		has_private;	/* can sign */
	const JwsAlg *alg;			/* JWK "alg": the one algorithm allowed, or NULL */
	char	   *kid;			/* JWK "kid", or NULL */
	unsigned char *secret_copy; /* owned secret bytes, wiped on release */
	size_t		secret_copy_len;
	bool		has_id;			/* id computed (verifycache.c) */
	unsigned char id[32];		/* SHA-256 of the public key, DER SPKI */
	MemoryContextCallback cleanup;
} JwtKey;

/* What a key argument turned out to be. */
typedef enum JwtKeyArgKind
{
	JWT_KEYARG_SECRET,
	JWT_KEYARG_PEM,
	JWT_KEYARG_JWK,
	JWT_KEYARG_JWKS
} JwtKeyArgKind;

typedef struct JwtKeyArg
{
	JwtKeyArgKind kind;
	JwtKey	   *key;			/* SECRET, PEM, JWK */
	Jsonb	   *jwks;			/* JWKS: entries are parsed when selected */
	bool		cached;			/* owned by the key cache: never released */
} JwtKeyArg;

/*
 * Interpret a text key argument: a JSON object is a JWK (or a JWKS when it
 * has "keys"), text holding a PEM armor line is PEM, anything else is an
 * HMAC secret.  JSON or PEM that does not parse raises 22023: it never falls
 * back to being used as a secret.
 */
extern JwtKeyArg *jwt_key_arg_from_text(const char *data, size_t len);

/* Would jwt_key_arg_from_text read this text as an HMAC secret (no parse)? */
extern bool jwt_key_text_is_secret(const char *data, size_t len);

/* A bytea key argument: an HMAC secret (DER-encoded key material refused). */
extern JwtKeyArg *jwt_key_arg_from_bytes(const unsigned char *data, size_t len);

/*
 * Keys of a JWKS that could verify (want_private = false) or sign a token
 * of this algorithm and kid (kid NULL: any kid).  Entries for other uses or
 * of unsupported types are skipped.  *kid_seen tells whether any entry had
 * the kid at all.  Returns the number written to out (at most max).
 */
extern int	jwt_jwks_select(Jsonb *jwks, const JwsAlg *alg,
							const char *kid, int kidlen, bool want_private,
							JwtKey **out, int max, bool *kid_seen);

/* A new, empty key, released with the current memory context. */
extern JwtKey *jwt_key_new(JwtKeyType type);

/*
 * One JWK object as a key.  NULL for a key we do not handle (type, curve,
 * "use" other than "sig", unknown "alg"); a malformed key raises 22023.
 */
extern JwtKey *jwt_key_from_jwk(JsonbContainer *jwk);

/* Does the key's own type (and JWK "alg", if any) allow this algorithm? */
extern bool jwt_key_allows(const JwtKey *key, const JwsAlg *alg);

extern void jwt_key_release(JwtKey *key);
extern void jwt_key_arg_release(JwtKeyArg *arg);

#endif							/* JWT_KEYS_H */

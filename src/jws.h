/*
 * jws.h
 *		JWS algorithms (RFC 7518 §3, RFC 8037): the algorithm table, the
 *		binding of algorithms to key types, and sign/verify over bytes.
 *
 * Server-independent: OpenSSL only, no PostgreSQL headers, no allocation
 * that outlives a call and no non-local exit.  Every function frees what it
 * made before returning and reports failure as a JwsStatus, so a caller
 * inside the server can raise an error afterwards without leaking.
 */
#ifndef JWT_JWS_H
#define JWT_JWS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

typedef enum JwsFamily
{
	JWS_HMAC,					/* HS256/384/512: shared secret */
	JWS_RSA_PKCS1,				/* RS256/384/512: RSASSA-PKCS1-v1_5 */
	JWS_RSA_PSS,				/* PS256/384/512: RSASSA-PSS, salt = hash length */
	JWS_ECDSA,					/* ES256/384/512: raw R||S */
	JWS_EDDSA					/* EdDSA: Ed25519 or Ed448 */
} JwsFamily;

typedef struct JwsAlg
{
	const char *name;			/* JWS "alg" value, case-sensitive */
	JwsFamily	family;
	const char *digest;			/* OpenSSL digest name; NULL for EdDSA */
	int			hash_len;		/* digest output bytes; 0 for EdDSA */
	int			digest_index;	/* slot in the per-process digest cache */
	const char *curve;			/* ECDSA: JWK "crv" ("P-256", ...) */
	const char *group;			/* ECDSA: OpenSSL group name */
	int			coord_len;		/* ECDSA: bytes of r, s, x, y */
	const unsigned char *order; /* ECDSA: group order, coord_len bytes BE */
} JwsAlg;

typedef enum JwsStatus
{
	JWS_OK = 0,
	JWS_BAD_SIGNATURE,			/* signature does not verify */
	JWS_BAD_SIGNATURE_FORMAT,	/* wrong length, r or s out of range */
	JWS_KEY_TYPE_MISMATCH,		/* key is not of the algorithm's family */
	JWS_KEY_WEAK,				/* RSA < 2048 bits, bad exponent or ROCA
								 * modulus; empty secret */
	JWS_CRYPTO_ERROR			/* OpenSSL failed for another reason */
} JwsStatus;

/* A key as the JWS layer sees it: a secret for HMAC, an EVP_PKEY otherwise. */
typedef struct JwsKey
{
	EVP_PKEY   *pkey;
	const unsigned char *secret;
	size_t		secret_len;
	int			rsa_status;		/* memo of the RSA key check: 0 not yet, else
								 * JwsStatus + 1 (a key never changes) */

	/*
	 * With keep_verify_ctx set, an RSA or ECDSA verification leaves behind a
	 * public-key context prepared for its algorithm, and the next one with
	 * the same algorithm verifies the digest with it: setting up a context
	 * per call (EVP_DigestVerifyInit and its provider look-ups) cost RS256
	 * a quarter of its time.  Whoever sets the flag must call
	 * jws_key_forget() before freeing the key.
	 */
	bool		keep_verify_ctx;
	EVP_PKEY_CTX *verify_ctx;	/* NULL, or prepared for verify_alg */
	const JwsAlg *verify_alg;
} JwsKey;

/* Free what a key keeps between calls (its prepared verify context). */
extern void jws_key_forget(JwsKey *key);

#define JWS_RSA_MIN_BITS	2048
#define JWS_MAX_SIGNATURE	2048	/* bytes: RSA-16384; larger keys refused */

extern const JwsAlg *jws_alg_find(const char *name, size_t len);
extern int	jws_alg_count(void);
extern const JwsAlg *jws_alg_at(int i);

/*
 * Whether the key may be used with the algorithm: right family (an RSA, EC
 * or OKP key never serves as an HMAC secret, nor the reverse), right curve,
 * and strong enough.  Sign and verify call it themselves.
 */
extern JwsStatus jws_key_fits(const JwsAlg *alg, const JwsKey *key);

/* Largest signature jws_sign can write for this algorithm and key. */
extern size_t jws_signature_max(const JwsAlg *alg, const JwsKey *key);

extern JwsStatus jws_sign(const JwsAlg *alg, const JwsKey *key,
						  const unsigned char *msg, size_t msglen,
						  unsigned char *sig, size_t *siglen);
extern JwsStatus jws_verify(const JwsAlg *alg, const JwsKey *key,
							const unsigned char *msg, size_t msglen,
							const unsigned char *sig, size_t siglen);

/*
 * Whether two byte strings of len bytes are equal, in time that depends on
 * len only (eight bytes a step: CRYPTO_memcmp goes one byte at a time).
 */
extern bool jws_equal_ct(const void *a, const void *b, size_t len);

/*
 * HMAC contexts stay keyed with the last secret used (per digest), beside a
 * copy of it; this re-keys them with a dummy key and wipes the copies.
 */
extern void jws_hmac_forget(void);

/*
 * ECDSA signature format: JWS carries R||S, each exactly coord_len bytes
 * (RFC 7518 §3.4); OpenSSL speaks DER.  raw_to_der refuses a raw signature
 * of the wrong length or with r or s outside [1, n-1].
 */
#define JWS_ECDSA_DER_MAX	160
extern JwsStatus jws_ecdsa_raw_to_der(const JwsAlg *alg,
									  const unsigned char *raw, size_t rawlen,
									  unsigned char *der, size_t *derlen);
extern JwsStatus jws_ecdsa_der_to_raw(const JwsAlg *alg,
									  const unsigned char *der, size_t derlen,
									  unsigned char *raw);

#endif							/* JWT_JWS_H */

/*
 * jwk.h
 *		Keys out: a JwtKey written as a JWK (RFC 7517, 7518 §6, RFC 8037),
 *		its RFC 7638 thumbprint, and new keys from OpenSSL's generator.
 *
 * The other direction, JWK text into a JwtKey, is in keys.c.
 */
#ifndef JWT_JWK_H
#define JWT_JWK_H

#include "postgres.h"
#include "utils/jsonb.h"

#include "jws.h"
#include "keys.h"

/*
 * The key as a JWK object with "kty" and its key members, the private ones
 * only when with_private (an HMAC key has nothing public: "kty" alone), and
 * "alg" and "kid" when given.
 */
extern Jsonb *jwt_key_to_jwk(const JwtKey *key, const JwsAlg *alg,
							 const char *kid, bool with_private);

/* RFC 7638 JWK thumbprint (SHA-256, base64url) of the key. */
extern char *jwt_key_thumbprint(const JwtKey *key);

/* The algorithm a key is for when none is named: RS256, ES*, EdDSA, HS256. */
extern const JwsAlg *jwt_key_default_alg(const JwtKey *key);

/*
 * A new key for the algorithm: an RSA key of rsa_bits (2048, 3072, 4096),
 * an EC key on the algorithm's curve, an Ed25519 key, or an HMAC secret as
 * long as the hash output (RFC 7518 §3.2), from OpenSSL's CSPRNG.
 */
extern JwtKey *jwt_key_generate(const JwsAlg *alg, int rsa_bits);

#endif							/* JWT_JWK_H */

/*
 * roca.h
 *		Fingerprint test for RSA moduli made by Infineon's RSALib, whose
 *		primes can be recovered from the public key (ROCA, CVE-2017-15361).
 *
 * Server-independent: OpenSSL only, no PostgreSQL headers, no allocation
 * and no non-local exit.
 */
#ifndef JWT_ROCA_H
#define JWT_ROCA_H

#include <stdbool.h>

#include <openssl/bn.h>

/*
 * Does the modulus n carry the ROCA fingerprint?  True means the key must
 * be treated as broken.  A random modulus is flagged with probability
 * about 2^-27.  The sign of n is ignored.
 */
extern bool jws_rsa_roca_vulnerable(const BIGNUM *n);

#endif							/* JWT_ROCA_H */

/*
 * base64url.h
 *		Strict base64url (RFC 4648 §5, no padding) as JWS compact form uses it.
 *
 * Server-independent: no PostgreSQL headers, so it is unit-tested and fuzzed
 * as plain C.  The caller owns every buffer.
 */
#ifndef JWT_BASE64URL_H
#define JWT_BASE64URL_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes needed to encode n bytes (no terminator counted). */
#define B64URL_ENCODED_LEN(n)	(((n) / 3) * 4 + (((n) % 3) ? ((n) % 3) + 1 : 0))

/* Upper bound of bytes produced by decoding n characters. */
#define B64URL_DECODED_MAX(n)	(((n) / 4) * 3 + 2)

/* Encode; writes exactly B64URL_ENCODED_LEN(len) characters, no NUL. */
extern size_t b64url_encode(const unsigned char *src, size_t len, char *dst);

/*
 * Decode strictly: only [A-Za-z0-9_-], no padding, no length of 4k+1, and the
 * unused bits of the last character must be zero, so each byte string has
 * exactly one encoding.  Returns false on any violation.
 */
extern bool b64url_decode(const char *src, size_t len,
						  unsigned char *dst, size_t *dstlen);

/* True if every character is in the base64url alphabet. */
extern bool b64url_is_alphabet(const char *src, size_t len);

#endif							/* JWT_BASE64URL_H */

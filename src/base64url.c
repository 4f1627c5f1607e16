/*
 * base64url.c
 *		Strict base64url encoding and decoding (RFC 4648 §5, unpadded).
 *
 * JWS compact serialization (RFC 7515 §2) uses base64url without padding.
 * Decoding is strict so that each byte string has exactly one spelling: a
 * decoder that ignores trailing bits or accepts '=' lets the same header,
 * payload or signature bytes be written several ways.  (That does not make
 * a token text unique: ECDSA signatures are malleable, (r, s) and (r, n-s)
 * both verify.  Anything keyed on a token must key on what it proves.)
 */
#include "base64url.h"

#include <stdint.h>

static const char enc_table[64] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* -1 for bytes outside the alphabet */
static const signed char dec_table[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

size_t
b64url_encode(const unsigned char *src, size_t len, char *dst)
{
	char	   *p = dst;
	size_t		i = 0;

	for (; i + 3 <= len; i += 3)
	{
		uint32_t	v = ((uint32_t) src[i] << 16) |
			((uint32_t) src[i + 1] << 8) | src[i + 2];

		*p++ = enc_table[(v >> 18) & 0x3f];
		*p++ = enc_table[(v >> 12) & 0x3f];
		*p++ = enc_table[(v >> 6) & 0x3f];
		*p++ = enc_table[v & 0x3f];
	}
	if (len - i == 1)
	{
		uint32_t	v = (uint32_t) src[i] << 16;

		*p++ = enc_table[(v >> 18) & 0x3f];
		*p++ = enc_table[(v >> 12) & 0x3f];
	}
	else if (len - i == 2)
	{
		uint32_t	v = ((uint32_t) src[i] << 16) | ((uint32_t) src[i + 1] << 8);

		*p++ = enc_table[(v >> 18) & 0x3f];
		*p++ = enc_table[(v >> 12) & 0x3f];
		*p++ = enc_table[(v >> 6) & 0x3f];
	}
	return (size_t) (p - dst);
}

bool
b64url_is_alphabet(const char *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		if (dec_table[(unsigned char) src[i]] < 0)
			return false;
	}
	return true;
}

bool
b64url_decode(const char *src, size_t len, unsigned char *dst, size_t *dstlen)
{
	unsigned char *p = dst;
	size_t		i = 0;
	size_t		rem = len % 4;

	/* one leftover character carries only 6 bits: never a whole byte */
	if (rem == 1)
		return false;

	for (; i + 4 <= len; i += 4)
	{
		int			a = dec_table[(unsigned char) src[i]];
		int			b = dec_table[(unsigned char) src[i + 1]];
		int			c = dec_table[(unsigned char) src[i + 2]];
		int			d = dec_table[(unsigned char) src[i + 3]];
		uint32_t	v;

		if ((a | b | c | d) < 0)
			return false;
		v = ((uint32_t) a << 18) | ((uint32_t) b << 12) | ((uint32_t) c << 6) | (uint32_t) d;
		*p++ = (unsigned char) (v >> 16);
		*p++ = (unsigned char) (v >> 8);
		*p++ = (unsigned char) v;
	}

	if (rem == 2)
	{
		int			a = dec_table[(unsigned char) src[i]];
		int			b = dec_table[(unsigned char) src[i + 1]];

		if ((a | b) < 0 || (b & 0x0f) != 0)
			return false;
		*p++ = (unsigned char) ((a << 2) | (b >> 4));
	}
	else if (rem == 3)
	{
		int			a = dec_table[(unsigned char) src[i]];
		int			b = dec_table[(unsigned char) src[i + 1]];
		int			c = dec_table[(unsigned char) src[i + 2]];

		if ((a | b | c) < 0 || (c & 0x03) != 0)
			return false;
		*p++ = (unsigned char) ((a << 2) | (b >> 4));
		*p++ = (unsigned char) (((b & 0x0f) << 4) | (c >> 2));
	}

	*dstlen = (size_t) (p - dst);
	return true;
}

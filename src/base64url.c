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
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char enc_table[64 + 1] =	/* + 1: the literal's NUL, unused */
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

/* Two characters for each 12 bits, built on first use */
static char enc_pairs[4096][2];
static bool enc_pairs_ready = false;

static void
build_enc_pairs(void)
{
	for (int v = 0; v < 4096; v++)
	{
		enc_pairs[v][0] = enc_table[v >> 6];
		enc_pairs[v][1] = enc_table[v & 0x3f];
	}
	enc_pairs_ready = true;
}

size_t
b64url_encode(const unsigned char *src, size_t len, char *dst)
{
	char	   *p = dst;
	size_t		i = 0;

	if (!enc_pairs_ready)
		build_enc_pairs();
	for (; i + 3 <= len; i += 3)
	{
		uint32_t	v = ((uint32_t) src[i] << 16) |
			((uint32_t) src[i + 1] << 8) | src[i + 2];

		memcpy(p, enc_pairs[v >> 12], 2);
		memcpy(p + 2, enc_pairs[v & 0xfff], 2);
		p += 4;
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

/*
 * Eight characters at a time: each byte of w is checked against the ranges
 * of the alphabet with carry-free byte arithmetic (every byte below 0x80,
 * so adding at most 0x80 cannot carry into the next one).
 */
#define BYTES(x)	(UINT64_C(0x0101010101010101) * (x))
#define HIGH_BITS	BYTES(0x80)

/* high bit of each byte of w (all < 0x80) set when lo <= byte <= hi */
static inline uint64_t
bytes_in_range(uint64_t w, unsigned lo, unsigned hi)
{
	return (w + BYTES(0x80 - lo)) & ~(w + BYTES(0x7F - hi)) & HIGH_BITS;
}

static inline bool
word_is_alphabet(uint64_t w)
{
	uint64_t	ok;

	if (w & HIGH_BITS)
		return false;
	ok = bytes_in_range(w, 'A', 'Z') | bytes_in_range(w, 'a', 'z') |
		bytes_in_range(w, '0', '9') | bytes_in_range(w, '-', '-') |
		bytes_in_range(w, '_', '_');
	return ok == HIGH_BITS;
}

#ifdef __SSE2__
/* sixteen characters at a time; bytes of 0x80 and above compare as negative */
static inline bool
block_is_alphabet(const char *src)
{
	__m128i		v = _mm_loadu_si128((const __m128i *) src);
	__m128i		upper = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('A' - 1)),
									  _mm_cmplt_epi8(v, _mm_set1_epi8('Z' + 1)));
	__m128i		lower = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('a' - 1)),
									  _mm_cmplt_epi8(v, _mm_set1_epi8('z' + 1)));
	__m128i		digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
									  _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
	__m128i		other = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('-')),
									 _mm_cmpeq_epi8(v, _mm_set1_epi8('_')));

	return _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(upper, lower),
										  _mm_or_si128(digit, other))) == 0xFFFF;
}
#endif

bool
b64url_is_alphabet(const char *src, size_t len)
{
	size_t		i = 0;

#ifdef __SSE2__
	for (; i + 16 <= len; i += 16)
	{
		if (!block_is_alphabet(src + i))
			return false;
	}
#endif

	for (; i + 8 <= len; i += 8)
	{
		uint64_t	w;

		memcpy(&w, src + i, 8);
		if (!word_is_alphabet(w))
			return false;
	}
	for (; i < len; i++)
	{
		if (dec_table[(unsigned char) src[i]] < 0)
			return false;
	}
	return true;
}

/*
 * dec_table shifted into place for each of the four characters of a
 * quantum, so that one OR assembles its 24 bits; a character outside the
 * alphabet sets bits above them.  Built on first use.
 */
#define QUANTUM_BAD 0xFF000000u

static uint32_t quantum_table[4][256];
static bool quantum_table_ready = false;

static void
build_quantum_table(void)
{
	for (int c = 0; c < 256; c++)
	{
		int			v = dec_table[c];

		for (int k = 0; k < 4; k++)
			quantum_table[k][c] = v < 0 ? QUANTUM_BAD : (uint32_t) v << (18 - 6 * k);
	}
	quantum_table_ready = true;
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

	if (!quantum_table_ready)
		build_quantum_table();
	/* two quanta a step; a bad character anywhere shows in "bad" at the end */
	{
		uint32_t	bad = 0;

		for (; i + 8 <= len; i += 8)
		{
			const unsigned char *q = (const unsigned char *) src + i;
			uint32_t	v = quantum_table[0][q[0]] | quantum_table[1][q[1]] |
				quantum_table[2][q[2]] | quantum_table[3][q[3]];
			uint32_t	w = quantum_table[0][q[4]] | quantum_table[1][q[5]] |
				quantum_table[2][q[6]] | quantum_table[3][q[7]];

			bad |= v | w;
			p[0] = (unsigned char) (v >> 16);
			p[1] = (unsigned char) (v >> 8);
			p[2] = (unsigned char) v;
			p[3] = (unsigned char) (w >> 16);
			p[4] = (unsigned char) (w >> 8);
			p[5] = (unsigned char) w;
			p += 6;
		}
		for (; i + 4 <= len; i += 4)
		{
			const unsigned char *q = (const unsigned char *) src + i;
			uint32_t	v = quantum_table[0][q[0]] | quantum_table[1][q[1]] |
				quantum_table[2][q[2]] | quantum_table[3][q[3]];

			bad |= v;
			*p++ = (unsigned char) (v >> 16);
			*p++ = (unsigned char) (v >> 8);
			*p++ = (unsigned char) v;
		}
		if (bad & QUANTUM_BAD)
			return false;
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

/*
 * test_jws.c
 *		Standalone unit test of the server-independent layers:
 *		src/base64url.c (strict unpadded base64url), src/jws.c (algorithm
 *		table, binding of algorithms to keys, sign/verify over bytes, and the
 *		ECDSA raw R||S <-> DER conversion) and src/roca.c (the ROCA
 *		fingerprint of RSA moduli, CVE-2017-15361).
 *
 * Plain C against OpenSSL 3: no PostgreSQL, no test framework.  Keys are
 * generated at run time, except those of the published RFC examples
 * (test/vectors/rfc-jws.json), which are built here from their JWK
 * members, and the RSA fixtures of the ROCA tests, read from
 * ../fixtures/keys (the binary runs in test/unit).  Signatures made by
 * jws_sign are also checked with OpenSSL directly, so that sign and verify
 * cannot agree on a wrong format.
 *
 * Prints one line per failed check (file:line) and, last,
 * "N passed, M failed"; exits 1 if any check failed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "base64url.h"
#include "jws.h"
#include "roca.h"

static int	n_passed = 0;
static int	n_failed = 0;
static const char *label = "";	/* current case, shown in failure lines */

#define CHECK(cond) \
	do { \
		if (cond) \
			n_passed++; \
		else \
		{ \
			n_failed++; \
			printf("%s:%d: [%s] check failed: %s\n", \
				   __FILE__, __LINE__, label, #cond); \
		} \
	} while (0)

/* Expect an exact JwsStatus; name both values on failure. */
#define CHECK_ST(expr, want) \
	do { \
		JwsStatus	got_ = (expr); \
		JwsStatus	want_ = (want); \
		if (got_ == want_) \
			n_passed++; \
		else \
		{ \
			n_failed++; \
			printf("%s:%d: [%s] %s: got %s, want %s\n", \
				   __FILE__, __LINE__, label, #expr, \
				   st_name(got_), st_name(want_)); \
		} \
	} while (0)

/*
 * Inside a loop that ends in one CHECK(bad == 0): count a failed case and
 * describe the first one, so a broken loop prints one line, not hundreds.
 */
#define LOOP_FAIL(bad, ...) \
	do { \
		if ((bad)++ == 0) \
		{ \
			printf("%s:%d: [%s] ", __FILE__, __LINE__, label); \
			printf(__VA_ARGS__); \
			printf("\n"); \
		} \
	} while (0)

static const char *
st_name(JwsStatus st)
{
	switch (st)
	{
		case JWS_OK:
			return "JWS_OK";
		case JWS_BAD_SIGNATURE:
			return "JWS_BAD_SIGNATURE";
		case JWS_BAD_SIGNATURE_FORMAT:
			return "JWS_BAD_SIGNATURE_FORMAT";
		case JWS_KEY_TYPE_MISMATCH:
			return "JWS_KEY_TYPE_MISMATCH";
		case JWS_KEY_WEAK:
			return "JWS_KEY_WEAK";
		case JWS_CRYPTO_ERROR:
			return "JWS_CRYPTO_ERROR";
	}
	return "(unknown status)";
}

/* A fixture could not be set up: report it as a failure and stop. */
static void
fatal(const char *what)
{
	printf("fatal: %s\n", what);
	ERR_print_errors_fp(stdout);
	printf("%d passed, %d failed\n", n_passed, n_failed + 1);
	exit(1);
}

/* xorshift64*: reproducible test data, not for keys */
static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint32_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t) ((rng_state * UINT64_C(0x2545f4914f6cdd1d)) >> 32);
}

static void
rng_fill(unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char) rng_next();
}

static void *
xmalloc(size_t len)
{
	/* exact sizes, so that ASan catches a write one byte too far */
	void	   *p = malloc(len > 0 ? len : 1);

	if (p == NULL)
		fatal("out of memory");
	return p;
}

static const JwsAlg *
alg_get(const char *name)
{
	const JwsAlg *alg = jws_alg_find(name, strlen(name));

	if (alg == NULL)
	{
		printf("algorithm %s is not in the table\n", name);
		fatal("algorithm missing");
	}
	return alg;
}

static JwsKey
pkey_key(EVP_PKEY *pkey)
{
	JwsKey		key = {.pkey = pkey};

	return key;
}

static JwsKey
secret_key(const void *secret, size_t len)
{
	JwsKey		key = {.secret = (const unsigned char *) secret, .secret_len = len};

	return key;
}

/* Decode a base64url constant of the test itself; it must be valid. */
static size_t
b64d(const char *text, unsigned char *out, size_t outsize)
{
	size_t		len = strlen(text);
	size_t		outlen = 0;

	if (B64URL_DECODED_MAX(len) > outsize)
		fatal("b64d: output buffer too small");
	CHECK(b64url_decode(text, len, out, &outlen));
	return outlen;
}

/* ------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------
 */

static EVP_PKEY *rsa2048;		/* generated once, used by every RSA test */
static EVP_PKEY *rsa1024;
static EVP_PKEY *ec256;
static EVP_PKEY *ec256b;
static EVP_PKEY *ec384;
static EVP_PKEY *ec384b;
static EVP_PKEY *ec521;
static EVP_PKEY *ec521b;
static EVP_PKEY *ec256k1;
static EVP_PKEY *ed25519;
static EVP_PKEY *ed25519b;
static EVP_PKEY *ed448;
static EVP_PKEY *ed448b;
static EVP_PKEY *x25519;
static EVP_PKEY *rfc_rsa;		/* public key of RFC 7515 A.2: another RSA key */

static EVP_PKEY *
keygen(const char *type, const char *param, size_t bits)
{
	EVP_PKEY   *pkey;

	if (strcmp(type, "RSA") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, type, bits);
	else if (strcmp(type, "EC") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, type, param);
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, type);
	if (pkey == NULL)
		fatal("key generation failed");
	return pkey;
}

/* Build a public key from OSSL_PARAMs (an RSA or EC JWK's members). */
static EVP_PKEY *
pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY   *pkey = NULL;

	if (params == NULL || ctx == NULL ||
		EVP_PKEY_fromdata_init(ctx) != 1 ||
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	if (pkey == NULL)
		fatal("EVP_PKEY_fromdata failed");
	return pkey;
}

static EVP_PKEY *
rsa_public_bn(const BIGNUM *n, const BIGNUM *e)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();

	if (bld == NULL ||
		!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		fatal("OSSL_PARAM_BLD (RSA)");
	return pkey_fromdata("RSA", bld);
}

/* RSA public key from the JWK members n and e (base64url). */
static EVP_PKEY *
rsa_public_jwk(const char *n_b64, const char *e_b64)
{
	unsigned char nbuf[1024];
	unsigned char ebuf[16];
	size_t		nlen = b64d(n_b64, nbuf, sizeof(nbuf));
	size_t		elen = b64d(e_b64, ebuf, sizeof(ebuf));
	BIGNUM	   *n = BN_bin2bn(nbuf, (int) nlen, NULL);
	BIGNUM	   *e = BN_bin2bn(ebuf, (int) elen, NULL);
	EVP_PKEY   *pkey;

	if (n == NULL || e == NULL)
		fatal("BN_bin2bn");
	pkey = rsa_public_bn(n, e);
	BN_free(n);
	BN_free(e);
	return pkey;
}

/* EC public key from the JWK members crv, x and y (base64url). */
static EVP_PKEY *
ec_public_jwk(const char *crv, const char *x_b64, const char *y_b64)
{
	unsigned char point[1 + 2 * 72];
	size_t		xlen;
	size_t		ylen;
	unsigned char x[72];
	unsigned char y[72];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();

	xlen = b64d(x_b64, x, sizeof(x));
	ylen = b64d(y_b64, y, sizeof(y));
	if (xlen != ylen || xlen > 66)
		fatal("EC JWK: bad coordinate length");
	point[0] = 0x04;			/* uncompressed */
	memcpy(point + 1, x, xlen);
	memcpy(point + 1 + xlen, y, ylen);
	if (bld == NULL ||
		!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
										 crv, 0) ||
		!OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
										  point, 1 + xlen + ylen))
		fatal("OSSL_PARAM_BLD (EC)");
	return pkey_fromdata("EC", bld);
}

/* OKP public key from the JWK members crv and x (base64url). */
static EVP_PKEY *
okp_public_jwk(const char *crv, const char *x_b64)
{
	unsigned char x[64];
	size_t		xlen = b64d(x_b64, x, sizeof(x));
	int			type;
	EVP_PKEY   *pkey;

	type = strcmp(crv, "Ed25519") == 0 ? EVP_PKEY_ED25519 : EVP_PKEY_ED448;
	pkey = EVP_PKEY_new_raw_public_key(type, NULL, x, xlen);

	if (pkey == NULL)
		fatal("EVP_PKEY_new_raw_public_key");
	return pkey;
}

static const char rfc7515_a2_n[] =
"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp"
"-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOW"
"vG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUs"
"LA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9k"
"G4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2"
"PAcDTW9gb54h4FRWyuXpoQ";

static void
keys_setup(void)
{
	rsa2048 = keygen("RSA", NULL, 2048);
	rsa1024 = keygen("RSA", NULL, 1024);
	ec256 = keygen("EC", "P-256", 0);
	ec256b = keygen("EC", "P-256", 0);
	ec384 = keygen("EC", "P-384", 0);
	ec384b = keygen("EC", "P-384", 0);
	ec521 = keygen("EC", "P-521", 0);
	ec521b = keygen("EC", "P-521", 0);
	ec256k1 = keygen("EC", "secp256k1", 0);
	ed25519 = keygen("ED25519", NULL, 0);
	ed25519b = keygen("ED25519", NULL, 0);
	ed448 = keygen("ED448", NULL, 0);
	ed448b = keygen("ED448", NULL, 0);
	x25519 = keygen("X25519", NULL, 0);
	rfc_rsa = rsa_public_jwk(rfc7515_a2_n, "AQAB");
}

static void
keys_free(void)
{
	EVP_PKEY_free(rsa2048);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(ec256);
	EVP_PKEY_free(ec256b);
	EVP_PKEY_free(ec384);
	EVP_PKEY_free(ec384b);
	EVP_PKEY_free(ec521);
	EVP_PKEY_free(ec521b);
	EVP_PKEY_free(ec256k1);
	EVP_PKEY_free(ed25519);
	EVP_PKEY_free(ed25519b);
	EVP_PKEY_free(ed448);
	EVP_PKEY_free(ed448b);
	EVP_PKEY_free(x25519);
	EVP_PKEY_free(rfc_rsa);
}

/* ------------------------------------------------------------------------
 * base64url
 * ------------------------------------------------------------------------
 */

/* Does text decode (strictly) to exactly the len bytes at want? */
static bool
decodes_to(const char *text, size_t textlen, const void *want, size_t len)
{
	unsigned char *buf = xmalloc(len);
	size_t		outlen = (size_t) -1;
	bool		ok;

	ok = b64url_decode(text, textlen, buf, &outlen) &&
		outlen == len && memcmp(buf, want, len) == 0;
	free(buf);
	return ok;
}

/* Is text rejected?  The buffer is large enough for any output. */
static bool
rejected(const char *text, size_t textlen)
{
	unsigned char buf[64];
	size_t		outlen = 12345;

	if (B64URL_DECODED_MAX(textlen) > sizeof(buf))
		fatal("rejected: input too long");
	return !b64url_decode(text, textlen, buf, &outlen) && outlen == 12345;
}

static void
test_b64url_vectors(void)
{
	/* RFC 4648 §10, in the url alphabet without padding */
	static const struct
	{
		const char *plain;
		const char *encoded;
	}			rfc4648[] = {
		{"", ""},
		{"f", "Zg"},
		{"fo", "Zm8"},
		{"foo", "Zm9v"},
		{"foob", "Zm9vYg"},
		{"fooba", "Zm9vYmE"},
		{"foobar", "Zm9vYmFy"},
	};
	/* bytes whose encoding needs the two url-specific characters */
	static const unsigned char dash[] = {0xfb, 0xef, 0xbe};
	static const unsigned char under[] = {0xff, 0xff, 0xff};
	static const unsigned char mixed[] = {0xfb, 0xff};
	char		out[16];

	label = "b64url RFC 4648";
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++)
	{
		const char *plain = rfc4648[i].plain;
		const char *enc = rfc4648[i].encoded;
		size_t		n;

		memset(out, '#', sizeof(out));
		n = b64url_encode((const unsigned char *) plain, strlen(plain), out);
		CHECK(n == strlen(enc) && memcmp(out, enc, n) == 0);
		CHECK(out[n] == '#');	/* no terminator, nothing beyond */
		CHECK(B64URL_ENCODED_LEN(strlen(plain)) == strlen(enc));
		CHECK(decodes_to(enc, strlen(enc), plain, strlen(plain)));
	}

	label = "b64url url alphabet";
	CHECK(b64url_encode(dash, 3, out) == 4 && memcmp(out, "----", 4) == 0);
	CHECK(b64url_encode(under, 3, out) == 4 && memcmp(out, "____", 4) == 0);
	CHECK(b64url_encode(mixed, 2, out) == 3 && memcmp(out, "-_8", 3) == 0);
	CHECK(decodes_to("----", 4, dash, 3));
	CHECK(decodes_to("____", 4, under, 3));
	CHECK(decodes_to("-_8", 3, mixed, 2));
}

static void
test_b64url_roundtrip(void)
{
	int			bad = 0;

	label = "b64url round trip";
	for (size_t len = 0; len <= 300; len++)
	{
		unsigned char *src = xmalloc(len);
		size_t		enclen = B64URL_ENCODED_LEN(len);
		char	   *enc = xmalloc(enclen);
		unsigned char *dec = xmalloc(len);
		size_t		declen = (size_t) -1;
		size_t		n;

		rng_fill(src, len);
		n = b64url_encode(src, len, enc);
		if (n != enclen)
			LOOP_FAIL(bad, "len %zu: encoded %zu chars, want %zu", len, n, enclen);
		else if (!b64url_is_alphabet(enc, n))
			LOOP_FAIL(bad, "len %zu: output outside the alphabet", len);
		else if (B64URL_DECODED_MAX(n) < len)
			LOOP_FAIL(bad, "len %zu: B64URL_DECODED_MAX too small", len);
		/* dec has exactly len bytes: ASan sees any write beyond */
		else if (!b64url_decode(enc, n, dec, &declen))
			LOOP_FAIL(bad, "len %zu: own encoding rejected", len);
		else if (declen != len || memcmp(dec, src, len) != 0)
			LOOP_FAIL(bad, "len %zu: decoded bytes differ", len);
		free(src);
		free(enc);
		free(dec);
	}
	CHECK(bad == 0);
}

static void
test_b64url_strict(void)
{
	static const struct
	{
		const char *text;
		size_t		len;		/* 0: use strlen */
	}			bad_inputs[] = {
		/* padding */
		{"Zg==", 0}, {"Zg=", 0}, {"Zm8=", 0}, {"Zm9v====", 0}, {"====", 0},
		{"=", 0}, {"Zm9v=", 0},
		/* standard-alphabet characters */
		{"Zm+v", 0}, {"Zm/v", 0}, {"+/+/", 0}, {"Zm9vYg+", 0},
		/* whitespace */
		{"Zm9 v", 0}, {" Zm9v", 0}, {"Zm9v ", 0}, {"Zm9v\n", 0},
		{"Zm\t9v", 0}, {"Zm9v\r\n", 0}, {"Zm9v\nZm9v", 0},
		/* NUL inside: length given explicitly */
		{"Zm\0v", 4}, {"Zm9v\0\0\0\0", 8}, {"\0\0\0\0", 4}, {"Zg\0", 3},
		/* length 4k+1 */
		{"Z", 0}, {"A", 0}, {"Zm9vY", 0}, {"Zm9vYmFyZ", 0}, {"AAAAA", 0},
		/* non-zero unused bits in the last character */
		{"QR", 0},				/* "QQ" is "A" */
		{"AB", 0}, {"AP", 0}, {"A_", 0}, {"Zh", 0},
		{"QUJ", 0}, {"QUK", 0}, {"QUL", 0}, /* "QUI" is "AB" */
		{"AAB", 0}, {"AAD", 0}, {"Zm9", 0}, {"Zm9vYh", 0}, {"Zm9vYmF", 0},
		/* bytes >= 0x80 and other non-alphabet characters */
		{"Zm9\x80", 0}, {"\xffm9v", 0}, {"Zm9v\xc3\xa9", 0}, {"\xc3\xa9", 0},
		{"Zm9v.Zg", 0}, {"Zm9v!", 0}, {"Zm*v", 0}, {"Zm9~", 0}, {"Zm9v\"", 0},
	};
	/* canonical spellings next to the rejected ones */
	static const unsigned char one_a[] = {'A'};
	static const unsigned char ab[] = {'A', 'B'};
	static const unsigned char zero_one[] = {0x00, 0x01};
	static const unsigned char one[] = {0x01};
	static const unsigned char zeros[] = {0, 0, 0};

	label = "b64url strict rejection";
	for (size_t i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++)
	{
		const char *t = bad_inputs[i].text;
		size_t		len = bad_inputs[i].len ? bad_inputs[i].len : strlen(t);

		bool		ok = rejected(t, len);

		if (!ok)
			printf("  strict input #%zu was accepted\n", i);
		CHECK(ok);
	}

	label = "b64url canonical accepted";
	CHECK(decodes_to("QQ", 2, one_a, 1));
	CHECK(decodes_to("QUI", 3, ab, 2));
	CHECK(decodes_to("AAE", 3, zero_one, 2));
	CHECK(decodes_to("AQ", 2, one, 1));
	CHECK(decodes_to("AAAA", 4, zeros, 3));
	CHECK(decodes_to("", 0, "", 0));
}

/*
 * Every string of 2 or 3 characters: accepted exactly when it is the
 * encoding of what it decodes to, and each byte string has one spelling
 * (so the counts are 2^8 and 2^16).
 */
static void
test_b64url_unique(void)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	int			bad = 0;
	long		accepted2 = 0;
	long		accepted3 = 0;

	label = "b64url one spelling";
	for (int a = 0; a < 64; a++)
		for (int b = 0; b < 64; b++)
		{
			char		t[3] = {alphabet[a], alphabet[b], 0};
			unsigned char d[2];
			char		re[4];
			size_t		dl = 0;

			if (!b64url_decode(t, 2, d, &dl))
				continue;
			accepted2++;
			if (dl != 1 || b64url_encode(d, dl, re) != 2 ||
				memcmp(re, t, 2) != 0)
				LOOP_FAIL(bad, "\"%s\" accepted but not canonical", t);
		}
	CHECK(bad == 0);
	CHECK(accepted2 == 256);

	bad = 0;
	for (int a = 0; a < 64; a++)
		for (int b = 0; b < 64; b++)
			for (int c = 0; c < 64; c++)
			{
				char		t[4] = {alphabet[a], alphabet[b], alphabet[c], 0};
				unsigned char d[4];
				char		re[4];
				size_t		dl = 0;

				if (!b64url_decode(t, 3, d, &dl))
					continue;
				accepted3++;
				if (dl != 2 || b64url_encode(d, dl, re) != 3 ||
					memcmp(re, t, 3) != 0)
					LOOP_FAIL(bad, "\"%s\" accepted but not canonical", t);
			}
	CHECK(bad == 0);
	CHECK(accepted3 == 65536);
}

/* Each of the 256 byte values, alone and inside a 4-character group. */
static void
test_b64url_alphabet(void)
{
	int			in_alphabet = 0;
	int			bad = 0;

	label = "b64url alphabet";
	for (int c = 0; c < 256; c++)
	{
		char		ch = (char) c;
		char		group[4] = {'A', 'A', 'A', ch};
		bool		expect = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_';
		unsigned char d[3];
		size_t		dl = 0;

		if (b64url_is_alphabet(&ch, 1))
			in_alphabet++;
		if (b64url_is_alphabet(&ch, 1) != expect)
			LOOP_FAIL(bad, "b64url_is_alphabet(0x%02x) wrong", c);
		if (b64url_decode(group, 4, d, &dl) != expect)
			LOOP_FAIL(bad, "decoding \"AAA\" + 0x%02x wrong", c);
	}
	CHECK(bad == 0);
	CHECK(in_alphabet == 64);

	/* every byte at every place of strings long enough for the 8- and 16-at-a-time scans */
	for (int c = 0; c < 256; c++)
	{
		bool		expect = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_';

		for (size_t len = 8; len <= 35; len++)
			for (size_t at = 0; at < len; at++)
			{
				char		s[35];

				memset(s, (at % 2) ? 'z' : '_', sizeof(s));
				s[at] = (char) c;
				if (b64url_is_alphabet(s, len) != expect)
					LOOP_FAIL(bad, "b64url_is_alphabet: 0x%02x at %zu of %zu wrong", c, at, len);
				/* whole quanta: the decoder, two quanta a step, agrees */
				if (len % 4 == 0)
				{
					unsigned char out[27];
					size_t		outlen = 0;

					if (b64url_decode(s, len, out, &outlen) != expect)
						LOOP_FAIL(bad, "b64url_decode: 0x%02x at %zu of %zu wrong", c, at, len);
				}
			}
	}
	CHECK(bad == 0);

	CHECK(b64url_is_alphabet("", 0));
	CHECK(b64url_is_alphabet("Zm9v-_09azAZ", 12));
	CHECK(!b64url_is_alphabet("Zm9v=", 5));
	CHECK(!b64url_is_alphabet("Zm9v.Zm9v", 9));
	CHECK(!b64url_is_alphabet("Zm\0v", 4));
	CHECK(!b64url_is_alphabet("Zm9v\xc3\xa9", 6));
	/* the length bounds the scan: the '=' past it is not looked at */
	CHECK(b64url_is_alphabet("Zm9v=", 4));
}

/* ------------------------------------------------------------------------
 * Algorithm table
 * ------------------------------------------------------------------------
 */

static void
test_alg_table(void)
{
	static const struct
	{
		const char *name;
		JwsFamily	family;
		const char *digest;
		int			hash_len;
	}			want[] = {
		{"HS256", JWS_HMAC, "SHA256", 32},
		{"HS384", JWS_HMAC, "SHA384", 48},
		{"HS512", JWS_HMAC, "SHA512", 64},
		{"RS256", JWS_RSA_PKCS1, "SHA256", 32},
		{"RS384", JWS_RSA_PKCS1, "SHA384", 48},
		{"RS512", JWS_RSA_PKCS1, "SHA512", 64},
		{"PS256", JWS_RSA_PSS, "SHA256", 32},
		{"PS384", JWS_RSA_PSS, "SHA384", 48},
		{"PS512", JWS_RSA_PSS, "SHA512", 64},
		{"ES256", JWS_ECDSA, "SHA256", 32},
		{"ES384", JWS_ECDSA, "SHA384", 48},
		{"ES512", JWS_ECDSA, "SHA512", 64},
		{"EdDSA", JWS_EDDSA, NULL, 0},
	};
	static const struct
	{
		const char *name;
		size_t		len;		/* 0: use strlen */
	}			unknown[] = {
		{"hs256", 0}, {"Hs256", 0}, {"none", 0}, {"None", 0}, {"NONE", 0},
		{"", 0}, {"HS256 ", 0}, {" HS256", 0}, {"HS25", 0}, {"HS2560", 0},
		{"HS256\0", 6}, {"HS1", 0}, {"RS1", 0}, {"ES256K", 0}, {"es256", 0},
		{"eddsa", 0}, {"EDDSA", 0}, {"Ed25519", 0}, {"ED25519", 0},
		{"Ed448", 0}, {"ps256", 0}, {"RSA-OAEP", 0}, {"HS256\n", 0},
	};
	const int	nwant = (int) (sizeof(want) / sizeof(want[0]));

	label = "alg table";
	CHECK(jws_alg_count() == 13);
	CHECK(jws_alg_count() == nwant);
	CHECK(jws_alg_at(-1) == NULL);
	CHECK(jws_alg_at(jws_alg_count()) == NULL);

	for (int i = 0; i < nwant; i++)
	{
		const JwsAlg *alg = jws_alg_find(want[i].name, strlen(want[i].name));

		label = want[i].name;
		CHECK(alg != NULL);
		if (alg == NULL)
			continue;
		CHECK(strcmp(alg->name, want[i].name) == 0);
		CHECK(alg->family == want[i].family);
		CHECK(alg->hash_len == want[i].hash_len);
		if (want[i].digest == NULL)
			CHECK(alg->digest == NULL);
		else
		{
			EVP_MD	   *md = EVP_MD_fetch(NULL, alg->digest, NULL);

			CHECK(alg->digest != NULL &&
				  strcmp(alg->digest, want[i].digest) == 0);
			CHECK(md != NULL && EVP_MD_get_size(md) == alg->hash_len);
			EVP_MD_free(md);
		}

		/* the table and the search agree */
		{
			bool		listed = false;

			for (int j = 0; j < jws_alg_count(); j++)
				if (jws_alg_at(j) == alg)
					listed = true;
			CHECK(listed);
		}
		if (alg->family != JWS_ECDSA)
			CHECK(alg->coord_len == 0 && alg->order == NULL &&
				  alg->curve == NULL && alg->group == NULL);
	}

	/* every table entry can be found by its name, and names are distinct */
	label = "alg table";
	{
		int			bad = 0;

		for (int i = 0; i < jws_alg_count(); i++)
		{
			const JwsAlg *alg = jws_alg_at(i);

			if (alg == NULL ||
				jws_alg_find(alg->name, strlen(alg->name)) != alg)
				LOOP_FAIL(bad, "entry %d not found by name", i);
		}
		CHECK(bad == 0);
	}

	/* case-sensitive, exact length */
	label = "alg lookup";
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
	{
		size_t		len = unknown[i].len ? unknown[i].len : strlen(unknown[i].name);
		bool		ok = jws_alg_find(unknown[i].name, len) == NULL;

		if (!ok)
			printf("  \"%s\" (length %zu) was found\n", unknown[i].name, len);
		CHECK(ok);
	}
	/* the name need not be NUL-terminated: the length bounds it */
	CHECK(jws_alg_find("HS256.eyJ", 5) == jws_alg_find("HS256", 5));
	CHECK(jws_alg_find("HS256.eyJ", 5) != NULL);
	CHECK(jws_alg_find("EdDSA", 4) == NULL);
}

/* ES*: order, coordinate length and names against OpenSSL's curve data. */
static void
test_alg_curves(void)
{
	static const struct
	{
		const char *alg;
		const char *crv;
		int			nid;
		int			coord_len;
	}			want[] = {
		{"ES256", "P-256", NID_X9_62_prime256v1, 32},
		{"ES384", "P-384", NID_secp384r1, 48},
		{"ES512", "P-521", NID_secp521r1, 66},
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
	{
		const JwsAlg *alg = alg_get(want[i].alg);
		EC_GROUP   *group = EC_GROUP_new_by_curve_name(want[i].nid);
		const BIGNUM *order;
		unsigned char buf[66];

		label = want[i].alg;
		if (group == NULL)
			fatal("EC_GROUP_new_by_curve_name");
		order = EC_GROUP_get0_order(group);

		CHECK(alg->coord_len == want[i].coord_len);
		CHECK(alg->coord_len == (EC_GROUP_get_degree(group) + 7) / 8);
		CHECK(BN_num_bytes(order) == alg->coord_len);
		CHECK(BN_bn2binpad(order, buf, alg->coord_len) == alg->coord_len);
		CHECK(alg->order != NULL &&
			  memcmp(alg->order, buf, (size_t) alg->coord_len) == 0);
		CHECK(alg->curve != NULL && strcmp(alg->curve, want[i].crv) == 0);
		CHECK(alg->curve != NULL && EC_curve_nist2nid(alg->curve) == want[i].nid);
		CHECK(alg->group != NULL && OBJ_sn2nid(alg->group) == want[i].nid);
		EC_GROUP_free(group);
	}
}

/* ------------------------------------------------------------------------
 * Key binding
 * ------------------------------------------------------------------------
 */

/* RSA public key with the modulus of rsa2048 and exponent e. */
static EVP_PKEY *
rsa2048_with_exponent(unsigned long e_value)
{
	BIGNUM	   *n = NULL;
	BIGNUM	   *e = BN_new();
	EVP_PKEY   *pkey;

	if (e == NULL || !BN_set_word(e, e_value) ||
		!EVP_PKEY_get_bn_param(rsa2048, OSSL_PKEY_PARAM_RSA_N, &n))
		fatal("rsa2048_with_exponent");
	pkey = rsa_public_bn(n, e);
	BN_free(n);
	BN_free(e);
	return pkey;
}

/* RSA public key with a random odd modulus of exactly bits bits. */
static EVP_PKEY *
rsa_public_of_bits(int bits)
{
	BIGNUM	   *n = BN_new();
	BIGNUM	   *e = BN_new();
	EVP_PKEY   *pkey;

	if (n == NULL || e == NULL || !BN_set_word(e, 65537) ||
		!BN_rand(n, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD))
		fatal("rsa_public_of_bits");
	pkey = rsa_public_bn(n, e);
	BN_free(n);
	BN_free(e);
	return pkey;
}

static void
test_key_fits(void)
{
	const JwsAlg *hs256 = alg_get("HS256");
	const JwsAlg *hs512 = alg_get("HS512");
	const JwsAlg *rs256 = alg_get("RS256");
	const JwsAlg *ps256 = alg_get("PS256");
	const JwsAlg *es256 = alg_get("ES256");
	const JwsAlg *es384 = alg_get("ES384");
	const JwsAlg *es512 = alg_get("ES512");
	const JwsAlg *eddsa = alg_get("EdDSA");
	JwsKey		secret = secret_key("k", 1);
	JwsKey		empty = secret_key("", 0);
	JwsKey		nothing = secret_key(NULL, 0);
	JwsKey		both = {.pkey = rsa2048, .secret = (const unsigned char *) "k", .secret_len = 1};
	EVP_PKEY   *e1 = rsa2048_with_exponent(1);
	EVP_PKEY   *e3 = rsa2048_with_exponent(3);
	EVP_PKEY   *e_even = rsa2048_with_exponent(65536);
	EVP_PKEY   *big_ok = rsa_public_of_bits(16384);
	EVP_PKEY   *too_big = rsa_public_of_bits(16392);
	EVP_PKEY   *k2047 = rsa_public_of_bits(2047);
	JwsKey		k;

	label = "key fits: HMAC";
	CHECK_ST(jws_key_fits(hs256, &secret), JWS_OK);
	k = pkey_key(rsa2048);
	CHECK_ST(jws_key_fits(hs256, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(ec256);
	CHECK_ST(jws_key_fits(hs256, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(ed25519);
	CHECK_ST(jws_key_fits(hs512, &k), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(hs256, &both), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(hs256, &nothing), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(hs256, &empty), JWS_KEY_WEAK);
	CHECK_ST(jws_key_fits(hs512, &empty), JWS_KEY_WEAK);

	label = "key fits: RSA";
	k = pkey_key(rsa2048);
	CHECK_ST(jws_key_fits(rs256, &k), JWS_OK);
	CHECK_ST(jws_key_fits(ps256, &k), JWS_OK);
	CHECK_ST(jws_key_fits(rs256, &secret), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(ps256, &secret), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(rs256, &both), JWS_OK);	/* the secret is ignored */
	k = pkey_key(ec256);
	CHECK_ST(jws_key_fits(rs256, &k), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(ps256, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(ed25519);
	CHECK_ST(jws_key_fits(rs256, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(rsa1024);
	CHECK_ST(jws_key_fits(rs256, &k), JWS_KEY_WEAK);
	CHECK_ST(jws_key_fits(ps256, &k), JWS_KEY_WEAK);
	k = pkey_key(k2047);
	CHECK_ST(jws_key_fits(rs256, &k), JWS_KEY_WEAK);
	k = pkey_key(e1);
	CHECK_ST(jws_key_fits(rs256, &k), JWS_KEY_WEAK);
	k = pkey_key(e_even);
	CHECK_ST(jws_key_fits(rs256, &k), JWS_KEY_WEAK);
	k = pkey_key(e3);
	CHECK_ST(jws_key_fits(rs256, &k), JWS_OK);
	k = pkey_key(big_ok);		/* RSA-16384: signature of 2048 bytes */
	CHECK_ST(jws_key_fits(rs256, &k), JWS_OK);
	k = pkey_key(too_big);		/* larger than JWS_MAX_SIGNATURE */
	CHECK_ST(jws_key_fits(rs256, &k), JWS_KEY_WEAK);

	label = "key fits: ECDSA";
	k = pkey_key(ec256);
	CHECK_ST(jws_key_fits(es256, &k), JWS_OK);
	CHECK_ST(jws_key_fits(es384, &k), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(es512, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(ec384);
	CHECK_ST(jws_key_fits(es256, &k), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(es384, &k), JWS_OK);
	k = pkey_key(ec521);
	CHECK_ST(jws_key_fits(es512, &k), JWS_OK);
	CHECK_ST(jws_key_fits(es256, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(ec256k1);
	CHECK_ST(jws_key_fits(es256, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(rsa2048);
	CHECK_ST(jws_key_fits(es256, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(ed25519);
	CHECK_ST(jws_key_fits(es256, &k), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(es256, &secret), JWS_KEY_TYPE_MISMATCH);

	label = "key fits: EdDSA";
	k = pkey_key(ed25519);
	CHECK_ST(jws_key_fits(eddsa, &k), JWS_OK);
	k = pkey_key(ed448);
	CHECK_ST(jws_key_fits(eddsa, &k), JWS_OK);
	k = pkey_key(x25519);
	CHECK_ST(jws_key_fits(eddsa, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(ec256);
	CHECK_ST(jws_key_fits(eddsa, &k), JWS_KEY_TYPE_MISMATCH);
	k = pkey_key(rsa2048);
	CHECK_ST(jws_key_fits(eddsa, &k), JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_key_fits(eddsa, &secret), JWS_KEY_TYPE_MISMATCH);

	/* sign and verify apply the same binding before touching the key */
	label = "key fits: sign/verify";
	{
		unsigned char sig[JWS_MAX_SIGNATURE];
		size_t		siglen = 0;
		unsigned char zero[512] = {0};

		k = pkey_key(rsa1024);
		CHECK_ST(jws_sign(rs256, &k, (const unsigned char *) "m", 1, sig, &siglen),
				 JWS_KEY_WEAK);
		CHECK_ST(jws_verify(rs256, &k, (const unsigned char *) "m", 1, zero, 128),
				 JWS_KEY_WEAK);
		k = pkey_key(rsa2048);
		CHECK_ST(jws_sign(hs256, &k, (const unsigned char *) "m", 1, sig, &siglen),
				 JWS_KEY_TYPE_MISMATCH);
		CHECK_ST(jws_verify(hs256, &k, (const unsigned char *) "m", 1, zero, 32),
				 JWS_KEY_TYPE_MISMATCH);
		CHECK_ST(jws_sign(rs256, &secret, (const unsigned char *) "m", 1, sig, &siglen),
				 JWS_KEY_TYPE_MISMATCH);
		k = pkey_key(ec384);
		CHECK_ST(jws_sign(es256, &k, (const unsigned char *) "m", 1, sig, &siglen),
				 JWS_KEY_TYPE_MISMATCH);
		CHECK_ST(jws_verify(es256, &k, (const unsigned char *) "m", 1, zero, 64),
				 JWS_KEY_TYPE_MISMATCH);
		CHECK_ST(jws_sign(hs256, &empty, (const unsigned char *) "m", 1, sig, &siglen),
				 JWS_KEY_WEAK);
		CHECK_ST(jws_verify(hs256, &empty, (const unsigned char *) "m", 1, zero, 32),
				 JWS_KEY_WEAK);
	}

	EVP_PKEY_free(e1);
	EVP_PKEY_free(e3);
	EVP_PKEY_free(e_even);
	EVP_PKEY_free(big_ok);
	EVP_PKEY_free(too_big);
	EVP_PKEY_free(k2047);
}

/* ------------------------------------------------------------------------
 * Sign and verify
 * ------------------------------------------------------------------------
 */

/* Raw R||S to DER, done here with OpenSSL alone (not jws.c). */
static int
raw_to_der_ossl(const unsigned char *raw, int n, unsigned char *der)
{
	ECDSA_SIG  *esig = ECDSA_SIG_new();
	BIGNUM	   *r = BN_bin2bn(raw, n, NULL);
	BIGNUM	   *s = BN_bin2bn(raw + n, n, NULL);
	unsigned char *p = der;
	int			len;

	if (esig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(esig, r, s))
		fatal("raw_to_der_ossl");
	len = i2d_ECDSA_SIG(esig, &p);
	ECDSA_SIG_free(esig);
	return len;
}

/*
 * Verify a JWS signature with OpenSSL directly, with the parameters RFC 7518
 * prescribes: an independent check that jws_sign's output is standard.
 */
static bool
ossl_verify(const JwsAlg *alg, const JwsKey *key,
			const unsigned char *msg, size_t msglen,
			const unsigned char *sig, size_t siglen)
{
	EVP_MD	   *md = NULL;
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char der[200];
	bool		ok = false;

	if (alg->family == JWS_HMAC)
	{
		unsigned char mac[EVP_MAX_MD_SIZE];
		size_t		maclen = 0;

		ok = EVP_Q_mac(NULL, "HMAC", NULL, alg->digest, NULL,
					   key->secret, key->secret_len, msg, msglen,
					   mac, sizeof(mac), &maclen) != NULL &&
			maclen == siglen && memcmp(mac, sig, siglen) == 0;
		ERR_clear_error();
		return ok;
	}

	if (alg->family == JWS_ECDSA)
	{
		if (siglen != (size_t) alg->coord_len * 2)
			return false;
		siglen = (size_t) raw_to_der_ossl(sig, alg->coord_len, der);
		sig = der;
	}
	if (alg->digest != NULL)
		md = EVP_MD_fetch(NULL, alg->digest, NULL);
	mctx = EVP_MD_CTX_new();
	if (mctx != NULL &&
		EVP_DigestVerifyInit(mctx, &pctx, md, NULL, key->pkey) == 1)
	{
		ok = true;
		if (alg->family == JWS_RSA_PKCS1)
			ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
		else if (alg->family == JWS_RSA_PSS)
			ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
				EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, alg->hash_len) == 1 &&
				EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1;
		ok = ok && EVP_DigestVerify(mctx, sig, siglen, msg, msglen) == 1;
	}
	EVP_MD_CTX_free(mctx);
	EVP_MD_free(md);
	ERR_clear_error();
	return ok;
}

typedef struct SignCase
{
	const char *alg;
	EVP_PKEY   *pkey;			/* NULL: HMAC, use the secret */
	EVP_PKEY   *other;			/* a different key of the same kind */
	size_t		siglen;			/* expected signature length */
	bool		deterministic;
	const char *what;			/* label */
} SignCase;

static const unsigned char hmac_secret[] = "a secret of thirty-two bytes....";
static const unsigned char hmac_other[] = "another secret of 32 bytes......";

static void
run_sign_case(const SignCase *c)
{
	const JwsAlg *alg = alg_get(c->alg);
	JwsKey		key;
	JwsKey		other;
	unsigned char msg[200];
	unsigned char sig[JWS_MAX_SIGNATURE + 1];
	unsigned char sig2[JWS_MAX_SIGNATURE];
	unsigned char *heap;
	size_t		siglen = 0;
	size_t		siglen2 = 0;
	int			bad;

	label = c->what;
	if (c->pkey == NULL)
	{
		key = secret_key(hmac_secret, sizeof(hmac_secret) - 1);
		other = secret_key(hmac_other, sizeof(hmac_other) - 1);
	}
	else
	{
		key = pkey_key(c->pkey);
		other = pkey_key(c->other);
	}
	rng_fill(msg, sizeof(msg));

	CHECK_ST(jws_sign(alg, &key, msg, sizeof(msg), sig, &siglen), JWS_OK);
	CHECK(siglen == c->siglen);
	CHECK(siglen <= jws_signature_max(alg, &key));
	if (siglen != c->siglen)
		return;
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), sig, siglen), JWS_OK);
	CHECK(ossl_verify(alg, &key, msg, sizeof(msg), sig, siglen));

	/* the signature in a heap block of exactly its size */
	heap = xmalloc(siglen);
	memcpy(heap, sig, siglen);
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), heap, siglen), JWS_OK);
	free(heap);

	/* deterministic algorithms repeat; PSS and ECDSA must not */
	CHECK_ST(jws_sign(alg, &key, msg, sizeof(msg), sig2, &siglen2), JWS_OK);
	CHECK(siglen2 == siglen);
	if (c->deterministic)
		CHECK(memcmp(sig, sig2, siglen) == 0);
	else
		CHECK(memcmp(sig, sig2, siglen) != 0);
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), sig2, siglen2), JWS_OK);

	/* another key of the same kind does not verify it */
	CHECK_ST(jws_verify(alg, &other, msg, sizeof(msg), sig, siglen),
			 JWS_BAD_SIGNATURE);

	/* tampered message: one bit anywhere, one byte more or less */
	msg[0] ^= 0x01;
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), sig, siglen),
			 JWS_BAD_SIGNATURE);
	msg[0] ^= 0x01;
	msg[sizeof(msg) - 1] ^= 0x80;
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), sig, siglen),
			 JWS_BAD_SIGNATURE);
	msg[sizeof(msg) - 1] ^= 0x80;
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg) - 1, sig, siglen),
			 JWS_BAD_SIGNATURE);
	CHECK_ST(jws_verify(alg, &key, msg, 0, sig, siglen), JWS_BAD_SIGNATURE);
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), sig, siglen), JWS_OK);

	/* the lowest bit of the last byte: still a well-formed signature */
	sig[siglen - 1] ^= 0x01;
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), sig, siglen),
			 JWS_BAD_SIGNATURE);
	sig[siglen - 1] ^= 0x01;

	/* one flipped bit in every byte position in turn */
	bad = 0;
	for (size_t i = 0; i < siglen; i++)
	{
		JwsStatus	st;

		sig[i] ^= (unsigned char) (1 << (i % 8));
		st = jws_verify(alg, &key, msg, sizeof(msg), sig, siglen);
		sig[i] ^= (unsigned char) (1 << (i % 8));
		if (st != JWS_BAD_SIGNATURE && st != JWS_BAD_SIGNATURE_FORMAT)
			LOOP_FAIL(bad, "bit flip in byte %zu: %s", i, st_name(st));
	}
	CHECK(bad == 0);

	/* truncated, extended, empty */
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), sig, siglen - 1),
			 JWS_BAD_SIGNATURE_FORMAT);
	sig[siglen] = 0;
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), sig, siglen + 1),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), sig, 0),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_verify(alg, &key, msg, sizeof(msg), NULL, 0),
			 JWS_BAD_SIGNATURE_FORMAT);
	/* a valid signature with its last byte dropped and a zero prepended */
	memmove(sig + 1, sig, siglen - 1);
	sig[0] = 0;
	CHECK(jws_verify(alg, &key, msg, sizeof(msg), sig, siglen) != JWS_OK);

	/* an empty message signs and verifies too */
	CHECK_ST(jws_sign(alg, &key, (const unsigned char *) "", 0, sig, &siglen),
			 JWS_OK);
	CHECK_ST(jws_verify(alg, &key, (const unsigned char *) "", 0, sig, siglen),
			 JWS_OK);
	CHECK(ossl_verify(alg, &key, (const unsigned char *) "", 0, sig, siglen));
}

static void
test_sign_verify(void)
{
	const SignCase cases[] = {
		{"HS256", NULL, NULL, 32, true, "HS256"},
		{"HS384", NULL, NULL, 48, true, "HS384"},
		{"HS512", NULL, NULL, 64, true, "HS512"},
		{"RS256", rsa2048, rfc_rsa, 256, true, "RS256"},
		{"RS384", rsa2048, rfc_rsa, 256, true, "RS384"},
		{"RS512", rsa2048, rfc_rsa, 256, true, "RS512"},
		{"PS256", rsa2048, rfc_rsa, 256, false, "PS256"},
		{"PS384", rsa2048, rfc_rsa, 256, false, "PS384"},
		{"PS512", rsa2048, rfc_rsa, 256, false, "PS512"},
		{"ES256", ec256, ec256b, 64, false, "ES256"},
		{"ES384", ec384, ec384b, 96, false, "ES384"},
		{"ES512", ec521, ec521b, 132, false, "ES512"},
		{"EdDSA", ed25519, ed25519b, 64, true, "EdDSA Ed25519"},
		{"EdDSA", ed448, ed448b, 114, true, "EdDSA Ed448"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_sign_case(&cases[i]);
}

/*
 * Sign under each of algs[] with one key and verify under each: only the
 * same algorithm may pass; a sibling must give want_other.
 */
static void
cross_check(const char *name, const char *const *algs, int nalgs,
			const JwsKey *key, JwsStatus want_other)
{
	const unsigned char *msg = (const unsigned char *) "eyJhbGciOiJub25lIn0.e30";
	size_t		msglen = strlen((const char *) msg);
	unsigned char sig[JWS_MAX_SIGNATURE];
	size_t		siglen = 0;
	int			bad = 0;

	label = name;
	for (int i = 0; i < nalgs; i++)
	{
		if (jws_sign(alg_get(algs[i]), key, msg, msglen, sig, &siglen) != JWS_OK)
		{
			LOOP_FAIL(bad, "%s: sign failed", algs[i]);
			continue;
		}
		for (int j = 0; j < nalgs; j++)
		{
			JwsStatus	st = jws_verify(alg_get(algs[j]), key, msg, msglen,
										sig, siglen);
			JwsStatus	want = (i == j) ? JWS_OK : want_other;

			if (st != want)
				LOOP_FAIL(bad, "%s signature verified as %s: %s",
						  algs[i], algs[j], st_name(st));
		}
	}
	CHECK(bad == 0);
}

/* A signature under one algorithm does not pass for a sibling. */
static void
test_cross_algorithm(void)
{
	static const char *const rsa_algs[] = {
		"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"
	};
	static const char *const hmac_algs[] = {"HS256", "HS384", "HS512"};
	const unsigned char *msg = (const unsigned char *) "eyJhbGciOiJub25lIn0.e30";
	size_t		msglen = strlen((const char *) msg);
	unsigned char sig[JWS_MAX_SIGNATURE];
	size_t		siglen = 0;
	JwsKey		rsa = pkey_key(rsa2048);
	JwsKey		sec = secret_key(hmac_secret, sizeof(hmac_secret) - 1);
	JwsKey		k;

	cross_check("cross-algorithm RSA", rsa_algs, 6, &rsa, JWS_BAD_SIGNATURE);
	/* HMAC outputs differ in length, so a sibling fails on the format */
	cross_check("cross-algorithm HMAC", hmac_algs, 3, &sec, JWS_BAD_SIGNATURE_FORMAT);

	/* HMAC: a prefix of a longer MAC is not a shorter one */
	CHECK_ST(jws_sign(alg_get("HS512"), &sec, msg, msglen, sig, &siglen), JWS_OK);
	CHECK_ST(jws_verify(alg_get("HS256"), &sec, msg, msglen, sig, 32),
			 JWS_BAD_SIGNATURE);
	CHECK_ST(jws_sign(alg_get("HS256"), &sec, msg, msglen, sig, &siglen), JWS_OK);
	CHECK_ST(jws_verify(alg_get("HS256"), &sec, msg, msglen, sig, 31),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_verify(alg_get("HS256"), &sec, msg, msglen, sig, 33),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_verify(alg_get("HS256"), &sec, msg, msglen, sig, 16),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_verify(alg_get("HS384"), &sec, msg, msglen, sig, 32),
			 JWS_BAD_SIGNATURE_FORMAT);

	/* ES256 and ES384 signatures under the other curve's key */
	label = "cross-algorithm ECDSA";
	k = pkey_key(ec256);
	CHECK_ST(jws_sign(alg_get("ES256"), &k, msg, msglen, sig, &siglen), JWS_OK);
	k = pkey_key(ec384);
	CHECK_ST(jws_verify(alg_get("ES256"), &k, msg, msglen, sig, siglen),
			 JWS_KEY_TYPE_MISMATCH);
	CHECK_ST(jws_verify(alg_get("ES384"), &k, msg, msglen, sig, siglen),
			 JWS_BAD_SIGNATURE_FORMAT);
}

/* Sign with RSASSA-PSS through OpenSSL with the given parameters. */
static size_t
pss_sign_ossl(const char *digest, int saltlen, const char *mgf1,
			  const unsigned char *msg, size_t msglen, unsigned char *sig)
{
	EVP_MD	   *md = EVP_MD_fetch(NULL, digest, NULL);
	EVP_MD	   *mgf = EVP_MD_fetch(NULL, mgf1, NULL);
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	size_t		siglen = JWS_MAX_SIGNATURE;

	if (md == NULL || mgf == NULL || mctx == NULL ||
		EVP_DigestSignInit(mctx, &pctx, md, NULL, rsa2048) != 1 ||
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, saltlen) != 1 ||
		EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, mgf) != 1 ||
		EVP_DigestSign(mctx, sig, &siglen, msg, msglen) != 1)
		fatal("pss_sign_ossl");
	EVP_MD_CTX_free(mctx);
	EVP_MD_free(md);
	EVP_MD_free(mgf);
	return siglen;
}

/* PS*: the salt length must be the hash length on verify, never "auto". */
static void
test_pss_salt(void)
{
	static const struct
	{
		const char *alg;
		const char *digest;
		int			saltlen;
		const char *mgf1;
		JwsStatus	want;
	}			cases[] = {
		{"PS256", "SHA256", 32, "SHA256", JWS_OK},
		{"PS256", "SHA256", 20, "SHA256", JWS_BAD_SIGNATURE},
		{"PS256", "SHA256", 0, "SHA256", JWS_BAD_SIGNATURE},
		{"PS256", "SHA256", 33, "SHA256", JWS_BAD_SIGNATURE},
		{"PS256", "SHA256", RSA_PSS_SALTLEN_MAX, "SHA256", JWS_BAD_SIGNATURE},
		{"PS256", "SHA256", 32, "SHA1", JWS_BAD_SIGNATURE},
		{"PS384", "SHA384", 48, "SHA384", JWS_OK},
		{"PS384", "SHA384", 32, "SHA384", JWS_BAD_SIGNATURE},
		{"PS384", "SHA384", RSA_PSS_SALTLEN_MAX, "SHA384", JWS_BAD_SIGNATURE},
		{"PS512", "SHA512", 64, "SHA512", JWS_OK},
		{"PS512", "SHA512", 32, "SHA512", JWS_BAD_SIGNATURE},
		{"PS512", "SHA512", RSA_PSS_SALTLEN_MAX, "SHA512", JWS_BAD_SIGNATURE},
		{"PS512", "SHA512", 64, "SHA256", JWS_BAD_SIGNATURE},
	};
	const unsigned char *msg = (const unsigned char *) "eyJhbGciOiJQUzI1NiJ9.e30";
	size_t		msglen = strlen((const char *) msg);
	JwsKey		key = pkey_key(rsa2048);

	label = "PSS salt length";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		unsigned char sig[JWS_MAX_SIGNATURE];
		size_t		siglen = pss_sign_ossl(cases[i].digest, cases[i].saltlen,
										   cases[i].mgf1, msg, msglen, sig);
		JwsStatus	st = jws_verify(alg_get(cases[i].alg), &key, msg, msglen,
									sig, siglen);

		if (st != cases[i].want)
			printf("  %s, salt %d, MGF1 %s: %s\n", cases[i].alg,
				   cases[i].saltlen, cases[i].mgf1, st_name(st));
		CHECK(st == cases[i].want);
	}
}

/* ------------------------------------------------------------------------
 * ECDSA signature format
 * ------------------------------------------------------------------------
 */

static void
ecdsa_format_case(const char *name, EVP_PKEY *pkey)
{
	const JwsAlg *alg = alg_get(name);
	const int	n = alg->coord_len;
	const unsigned char *order = alg->order;
	unsigned char raw[132];
	unsigned char back[132];
	unsigned char der[JWS_ECDSA_DER_MAX];
	unsigned char der2[JWS_ECDSA_DER_MAX];
	unsigned char sig[132];
	unsigned char forged[132 + 1];
	unsigned char n_minus_1[66];
	unsigned char n_plus_1[66];
	unsigned char all_ff[66];
	unsigned char zero[66];
	unsigned char one[66];
	size_t		derlen = 0;
	size_t		siglen = 0;
	const unsigned char *msg = (const unsigned char *) "eyJhbGciOiJFUzI1NiJ9.e30";
	size_t		msglen = strlen((const char *) msg);
	JwsKey		key = pkey_key(pkey);
	int			bad = 0;

	label = name;

	/* round trip of in-range values, some with leading zero bytes */
	for (int iter = 0; iter < 200; iter++)
	{
		rng_fill(raw, (size_t) n * 2);
		raw[0] %= order[0];		/* r < n, s < n: the first byte is smaller */
		raw[n] %= order[0];
		if (iter % 4 == 0)
			memset(raw, 0, (size_t) (iter % n));
		if (iter % 4 == 1)
			memset(raw + n, 0, (size_t) (iter % n));
		raw[n - 1] |= 1;		/* r, s > 0 */
		raw[2 * n - 1] |= 1;
		memset(back, 0xa5, sizeof(back));
		if (jws_ecdsa_raw_to_der(alg, raw, (size_t) n * 2, der, &derlen) != JWS_OK)
			LOOP_FAIL(bad, "iteration %d: raw_to_der failed", iter);
		else if (derlen > JWS_ECDSA_DER_MAX ||
				 (int) derlen != raw_to_der_ossl(raw, n, der2) ||
				 memcmp(der, der2, derlen) != 0)
			LOOP_FAIL(bad, "iteration %d: DER differs from OpenSSL's", iter);
		else if (jws_ecdsa_der_to_raw(alg, der, derlen, back) != JWS_OK)
			LOOP_FAIL(bad, "iteration %d: der_to_raw failed", iter);
		else if (memcmp(back, raw, (size_t) n * 2) != 0)
			LOOP_FAIL(bad, "iteration %d: round trip differs", iter);
	}
	CHECK(bad == 0);

	/* boundary scalars */
	memset(zero, 0, sizeof(zero));
	memset(one, 0, sizeof(one));
	one[n - 1] = 1;
	memset(all_ff, 0xff, sizeof(all_ff));
	memcpy(n_minus_1, order, (size_t) n);
	n_minus_1[n - 1]--;			/* no borrow: n is odd */
	memcpy(n_plus_1, order, (size_t) n);
	n_plus_1[n - 1]++;			/* no carry: the last byte is below 0xff */
	CHECK(order[n - 1] != 0 && order[n - 1] != 0xff);

#define RAW(r, s) \
	(memcpy(raw, (r), (size_t) n), memcpy(raw + n, (s), (size_t) n), raw)

	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(one, one), n * 2, der, &derlen), JWS_OK);
	CHECK(jws_ecdsa_der_to_raw(alg, der, derlen, back) == JWS_OK &&
		  memcmp(back, raw, (size_t) n * 2) == 0);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(n_minus_1, n_minus_1), n * 2, der, &derlen),
			 JWS_OK);
	CHECK(jws_ecdsa_der_to_raw(alg, der, derlen, back) == JWS_OK &&
		  memcmp(back, raw, (size_t) n * 2) == 0);

	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(zero, zero), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(zero, one), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(one, zero), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(order, one), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(one, order), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(order, order), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(n_plus_1, one), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(one, n_plus_1), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(all_ff, one), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, RAW(one, all_ff), n * 2, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	RAW(one, one);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, raw, n * 2 - 1, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, raw, n * 2 + 1, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg, raw, 0, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);

	/* the same through jws_verify with a real signature and key */
	CHECK_ST(jws_sign(alg, &key, msg, msglen, sig, &siglen), JWS_OK);
	if (siglen != (size_t) n * 2)
		return;
	CHECK_ST(jws_verify(alg, &key, msg, msglen, sig, siglen), JWS_OK);

	/* CVE-2022-21449 ("psychic signatures"): r = s = 0 */
	memset(forged, 0, sizeof(forged));
	CHECK_ST(jws_verify(alg, &key, msg, msglen, forged, siglen),
			 JWS_BAD_SIGNATURE_FORMAT);
	memcpy(forged, sig, siglen);
	memset(forged, 0, (size_t) n);	/* r = 0, genuine s */
	CHECK_ST(jws_verify(alg, &key, msg, msglen, forged, siglen),
			 JWS_BAD_SIGNATURE_FORMAT);
	memcpy(forged, sig, siglen);
	memset(forged + n, 0, (size_t) n);	/* genuine r, s = 0 */
	CHECK_ST(jws_verify(alg, &key, msg, msglen, forged, siglen),
			 JWS_BAD_SIGNATURE_FORMAT);
	memcpy(forged, sig, siglen);
	memcpy(forged, order, (size_t) n);	/* r = n */
	CHECK_ST(jws_verify(alg, &key, msg, msglen, forged, siglen),
			 JWS_BAD_SIGNATURE_FORMAT);
	memcpy(forged, sig, siglen);
	memcpy(forged + n, order, (size_t) n);	/* s = n */
	CHECK_ST(jws_verify(alg, &key, msg, msglen, forged, siglen),
			 JWS_BAD_SIGNATURE_FORMAT);
	memcpy(forged, sig, siglen);
	memcpy(forged, n_plus_1, (size_t) n);	/* r > n */
	CHECK_ST(jws_verify(alg, &key, msg, msglen, forged, siglen),
			 JWS_BAD_SIGNATURE_FORMAT);
	memcpy(forged, sig, siglen);
	memcpy(forged + n, all_ff, (size_t) n);	/* s > n */
	CHECK_ST(jws_verify(alg, &key, msg, msglen, forged, siglen),
			 JWS_BAD_SIGNATURE_FORMAT);

	/* wrong lengths */
	CHECK_ST(jws_verify(alg, &key, msg, msglen, sig, siglen - 1),
			 JWS_BAD_SIGNATURE_FORMAT);
	memcpy(forged, sig, siglen);
	forged[siglen] = 0;
	CHECK_ST(jws_verify(alg, &key, msg, msglen, forged, siglen + 1),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_verify(alg, &key, msg, msglen, sig, 0),
			 JWS_BAD_SIGNATURE_FORMAT);

	/* the DER form of the very same signature is not a JWS signature */
	CHECK_ST(jws_ecdsa_raw_to_der(alg, sig, siglen, der, &derlen), JWS_OK);
	CHECK(derlen != siglen);
	CHECK_ST(jws_verify(alg, &key, msg, msglen, der, derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
#undef RAW
}

static void
test_ecdsa_format(void)
{
	const JwsAlg *es256 = alg_get("ES256");
	unsigned char raw[64];
	unsigned char want[64];
	unsigned char der[JWS_ECDSA_DER_MAX];
	size_t		derlen = 0;
	static const unsigned char small[] = {
		0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02
	};
	static const unsigned char small_trailing[] = {
		0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02, 0x00
	};
	static const unsigned char not_sequence[] = {
		0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02
	};
	unsigned char big_r[2 + 2 + 33 + 3];

	ecdsa_format_case("ES256", ec256);
	ecdsa_format_case("ES384", ec384);
	ecdsa_format_case("ES512", ec521);

	label = "ECDSA DER";
	/* small integers are left-padded to the coordinate length */
	memset(want, 0, sizeof(want));
	want[31] = 1;
	want[63] = 2;
	CHECK_ST(jws_ecdsa_der_to_raw(es256, small, sizeof(small), raw), JWS_OK);
	CHECK(memcmp(raw, want, 64) == 0);
	CHECK_ST(jws_ecdsa_der_to_raw(es256, small_trailing, sizeof(small_trailing), raw),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_der_to_raw(es256, small, sizeof(small) - 1, raw),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_der_to_raw(es256, small, 0, raw),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_der_to_raw(es256, not_sequence, sizeof(not_sequence), raw),
			 JWS_BAD_SIGNATURE_FORMAT);

	/* r = 2^256 needs 33 bytes: does not fit ES256 */
	big_r[0] = 0x30;
	big_r[1] = 2 + 33 + 3;
	big_r[2] = 0x02;
	big_r[3] = 33;
	big_r[4] = 0x01;
	memset(big_r + 5, 0, 32);
	big_r[37] = 0x02;
	big_r[38] = 0x01;
	big_r[39] = 0x01;
	CHECK_ST(jws_ecdsa_der_to_raw(es256, big_r, sizeof(big_r), raw),
			 JWS_BAD_SIGNATURE_FORMAT);
	/* ... but does fit ES384 */
	CHECK_ST(jws_ecdsa_der_to_raw(alg_get("ES384"), big_r, sizeof(big_r), der),
			 JWS_OK);

	/* not an ECDSA algorithm */
	memset(raw, 0, sizeof(raw));
	raw[31] = 1;
	raw[63] = 1;
	CHECK_ST(jws_ecdsa_raw_to_der(alg_get("ES256"), raw, 64, der, &derlen), JWS_OK);
	CHECK_ST(jws_ecdsa_raw_to_der(alg_get("HS256"), raw, 64, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_raw_to_der(alg_get("EdDSA"), raw, 64, der, &derlen),
			 JWS_BAD_SIGNATURE_FORMAT);
	CHECK_ST(jws_ecdsa_der_to_raw(alg_get("RS256"), small, sizeof(small), raw),
			 JWS_BAD_SIGNATURE_FORMAT);

	/* a DER signature straight from OpenSSL is refused by jws_verify */
	{
		EVP_MD_CTX *mctx = EVP_MD_CTX_new();
		EVP_MD	   *md = EVP_MD_fetch(NULL, "SHA256", NULL);
		const unsigned char *msg = (const unsigned char *) "header.payload";
		size_t		len = sizeof(der);
		JwsKey		key = pkey_key(ec256);

		if (mctx == NULL || md == NULL ||
			EVP_DigestSignInit(mctx, NULL, md, NULL, ec256) != 1 ||
			EVP_DigestSign(mctx, der, &len, msg, 14) != 1)
			fatal("ECDSA DER signature");
		EVP_MD_CTX_free(mctx);
		EVP_MD_free(md);
		CHECK(len >= 8 && len <= 72 && len != 64);
		CHECK_ST(jws_verify(es256, &key, msg, 14, der, len),
				 JWS_BAD_SIGNATURE_FORMAT);
		/* and its raw form is accepted */
		CHECK_ST(jws_ecdsa_der_to_raw(es256, der, len, raw), JWS_OK);
		CHECK_ST(jws_verify(es256, &key, msg, 14, raw, 64), JWS_OK);
	}
}

/* ------------------------------------------------------------------------
 * Published vectors
 * ------------------------------------------------------------------------
 */

typedef struct RfcVector
{
	const char *id;
	const char *alg;
	const char *kty;			/* "oct", "RSA", "EC", "OKP" */
	const char *crv;
	const char *token;
	const char *a;				/* k, n or x */
	const char *b;				/* e or y */
} RfcVector;

/*
 * The entries of rfc-jws.json whose signature_verifies is true: token and
 * the JWK members that make the key.
 */
static const RfcVector rfc_vectors[] = {
	{
		"rfc7515-A.1-HS256", "HS256", "oct", NULL,
		"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJ"
		"leHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp"
		"0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
		"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0i"
		"PS4hcgUuTwjAzZr1Z9CAow",
		NULL
	},
	{
		"rfc7515-A.2-RS256", "RS256", "RSA", NULL,
		"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODA"
		"sDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Ee"
		"tdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Q"
		"c_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--"
		"f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN"
		"9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6I"
		"eYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypG"
		"lUPQGe77Rw",
		"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp"
		"-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOW"
		"vG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUs"
		"LA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9k"
		"G4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2"
		"PAcDTW9gb54h4FRWyuXpoQ",
		"AQAB"
	},
	{
		"rfc7515-A.3-ES256", "ES256", "EC", "P-256",
		"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODA"
		"sDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8"
		"L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqP"
		"P3-Kg6NU1Q",
		"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
		"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
	},
	{
		"rfc7515-A.4-ES512-nonjson-payload", "ES512", "EC", "P-521",
		"eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJb"
		"LfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwF"
		"KdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9E"
		"RBXukOXolLzeO_Jn",
		"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvL"
		"FV1jSfS9tsz4qUxcWceqwQGk",
		"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4K"
		"kd0AZMaZmh9ubmf63e3kyMj2"
	},
	{
		"rfc8037-A.4-Ed25519-nonjson-payload", "EdDSA", "OKP", "Ed25519",
		"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il"
		"_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g"
		"7sVvpAr_MuM0KAg",
		"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
		NULL
	},
	{
		"rfc7520-4.1-RS256-nonjson-payload", "RS256", "RSA", NULL,
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhh"
		"bXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmc"
		"gb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHl"
		"vdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2h"
		"lcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.MRjdkly7_-oTPTS3AXP41iQ"
		"IGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp8"
		"3xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv74"
		"6iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9Uz"
		"pERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI"
		"-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg",
		"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRoj"
		"dNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2l"
		"bzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6c"
		"S6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3"
		"-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwU"
		"kRz5iaiQkqgc5gHdrNP5zw",
		"AQAB"
	},
	{
		"rfc7520-4.2-PS384-nonjson-payload", "PS384", "RSA", NULL,
		"eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhh"
		"bXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmc"
		"gb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHl"
		"vdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2h"
		"lcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.cu22eBqkYDKgIlTpzDXGvaF"
		"fz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP"
		"6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWV"
		"sdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9sh"
		"nr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64"
		"QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw",
		"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRoj"
		"dNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2l"
		"bzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6c"
		"S6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3"
		"-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwU"
		"kRz5iaiQkqgc5gHdrNP5zw",
		"AQAB"
	},
	{
		"rfc7520-4.3-ES512-nonjson-payload", "ES512", "EC", "P-521",
		"eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhh"
		"bXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmc"
		"gb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHl"
		"vdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2h"
		"lcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.AE_R_YZCChjn4791jSQCrdP"
		"ZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1e"
		"JAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABls"
		"bEPX6sFY8OcGDqoRuBomu9xQ2",
		"AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqv"
		"jyekWF-7ytDyRXYgCF5cj0Kt",
		"AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgD"
		"PrwQrJmbnX9cwlGfP-HqHZR1"
	},
	{
		"rfc7520-4.4-HS256-nonjson-payload", "HS256", "oct", NULL,
		"eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVl"
		"ZjMxNGJjNzAzNyJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbyw"
		"gZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5"
		"kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3d"
		"pbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.s0h6KThzkfBBBkL"
		"spW1h84VsJZFTsPPqMDA7g1Md7p0",
		"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg",
		NULL
	},
};

static void
test_rfc_vectors(void)
{
	for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++)
	{
		const RfcVector *v = &rfc_vectors[i];
		const JwsAlg *alg = alg_get(v->alg);
		const char *dot1 = strchr(v->token, '.');
		const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
		unsigned char secret[128];
		unsigned char sig[JWS_MAX_SIGNATURE];
		size_t		siglen = 0;
		const char *sigtext;
		size_t		sigtextlen;
		size_t		msglen;
		unsigned char *msg;
		EVP_PKEY   *pkey = NULL;
		JwsKey		key;

		label = v->id;
		CHECK(dot1 != NULL && dot2 != NULL && strchr(dot2 + 1, '.') == NULL);
		if (dot2 == NULL)
			continue;
		msglen = (size_t) (dot2 - v->token);
		sigtext = dot2 + 1;
		sigtextlen = strlen(sigtext);

		if (strcmp(v->kty, "oct") == 0)
			key = secret_key(secret, b64d(v->a, secret, sizeof(secret)));
		else
		{
			if (strcmp(v->kty, "RSA") == 0)
				pkey = rsa_public_jwk(v->a, v->b);
			else if (strcmp(v->kty, "EC") == 0)
				pkey = ec_public_jwk(v->crv, v->a, v->b);
			else
				pkey = okp_public_jwk(v->crv, v->a);
			key = pkey_key(pkey);
		}

		CHECK(B64URL_DECODED_MAX(sigtextlen) <= sizeof(sig));
		CHECK(b64url_decode(sigtext, sigtextlen, sig, &siglen));
		CHECK(siglen == jws_signature_max(alg, &key));

		msg = xmalloc(msglen);
		memcpy(msg, v->token, msglen);
		CHECK_ST(jws_verify(alg, &key, msg, msglen, sig, siglen), JWS_OK);
		/* the key built here is right, independently of jws.c */
		CHECK(ossl_verify(alg, &key, msg, msglen, sig, siglen));

		sig[siglen - 1] ^= 0x01;
		CHECK_ST(jws_verify(alg, &key, msg, msglen, sig, siglen),
				 JWS_BAD_SIGNATURE);
		sig[siglen - 1] ^= 0x01;
		msg[msglen - 1] ^= 0x01;
		CHECK_ST(jws_verify(alg, &key, msg, msglen, sig, siglen),
				 JWS_BAD_SIGNATURE);
		msg[msglen - 1] ^= 0x01;

		/* HMAC is deterministic: the token's own signature is reproduced */
		if (alg->family == JWS_HMAC)
		{
			unsigned char mine[EVP_MAX_MD_SIZE];
			size_t		minelen = 0;
			char		text[B64URL_ENCODED_LEN(EVP_MAX_MD_SIZE)];
			size_t		textlen = 0;

			CHECK_ST(jws_sign(alg, &key, msg, msglen, mine, &minelen), JWS_OK);
			if (minelen <= sizeof(mine))
				textlen = b64url_encode(mine, minelen, text);
			CHECK(textlen == sigtextlen && memcmp(text, sigtext, textlen) == 0);
		}

		free(msg);
		EVP_PKEY_free(pkey);
	}
}

/*
 * Keys that keep a prepared verify context: whatever the order of
 * algorithms on one key (the context is remade when the algorithm changes),
 * good signatures, bad ones (after which the context is remade too) and
 * signatures of another algorithm of the same key all give what a key
 * without the context gives.  jws_key_forget frees it (LeakSanitizer).
 */
static void
test_kept_verify_ctx(void)
{
	static const char *const rsa_algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"};
	static const char *const ec_algs[] = {"ES256"};
	struct
	{
		EVP_PKEY   *pkey;
		const char *const *algs;
		int			nalgs;
	}			cases[] = {{rsa2048, rsa_algs, 6}, {ec256, ec_algs, 1}};
	unsigned char msg[200];
	int			bad = 0;

	label = "kept verify context";
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char) (i * 13 + 5);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		JwsKey		plain = pkey_key(cases[c].pkey);
		JwsKey		kept = pkey_key(cases[c].pkey);
		unsigned char sigs[6][600];
		size_t		siglens[6];

		kept.keep_verify_ctx = true;
		for (int a = 0; a < cases[c].nalgs; a++)
		{
			siglens[a] = sizeof(sigs[a]);
			if (jws_sign(alg_get(cases[c].algs[a]), &plain, msg, sizeof(msg),
						 sigs[a], &siglens[a]) != JWS_OK)
				LOOP_FAIL(bad, "signing with %s failed", cases[c].algs[a]);
		}
		for (int round = 0; round < 400; round++)
		{
			int			a = rng_next() % cases[c].nalgs;	/* algorithm verified */
			int			s = rng_next() % cases[c].nalgs;	/* signature made with */
			const JwsAlg *alg = alg_get(cases[c].algs[a]);
			unsigned char sig[600];
			JwsStatus	want;
			JwsStatus	got;

			memcpy(sig, sigs[s], siglens[s]);
			if (rng_next() % 4 == 0)
				sig[rng_next() % siglens[s]] ^= (unsigned char) (1 + rng_next() % 255);
			want = jws_verify(alg, &plain, msg, sizeof(msg), sig, siglens[s]);
			got = jws_verify(alg, &kept, msg, sizeof(msg), sig, siglens[s]);
			if (got != want)
				LOOP_FAIL(bad, "round %d: %s over a %s signature: kept %s, plain %s",
						  round, cases[c].algs[a], cases[c].algs[s],
						  st_name(got), st_name(want));
			if (want == JWS_OK && got == JWS_OK && kept.verify_alg != alg)
				LOOP_FAIL(bad, "round %d: no context kept for %s", round, alg->name);
		}
		jws_key_forget(&kept);
		if (kept.verify_ctx != NULL || kept.verify_alg != NULL)
			LOOP_FAIL(bad, "jws_key_forget left a context");
		jws_key_forget(&kept);	/* twice is harmless */
	}
	CHECK(bad == 0);
}

/* jws_equal_ct: equal strings, and a difference at every place and bit */
static void
test_equal_ct(void)
{
	unsigned char a[41];
	unsigned char b[41];
	int			bad = 0;

	label = "constant-time compare";
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (unsigned char) (i * 37 + 11);
	for (size_t len = 0; len <= sizeof(a); len++)
	{
		memcpy(b, a, sizeof(a));
		if (!jws_equal_ct(a, b, len))
			LOOP_FAIL(bad, "equal strings of %zu bytes differ", len);
		for (size_t at = 0; at < len; at++)
			for (int bit = 0; bit < 8; bit++)
			{
				b[at] ^= (unsigned char) (1 << bit);
				if (jws_equal_ct(a, b, len))
					LOOP_FAIL(bad, "bit %d of byte %zu of %zu not seen", bit, at, len);
				b[at] ^= (unsigned char) (1 << bit);
			}
		/* a difference past len does not count */
		b[len == sizeof(a) ? 0 : len] ^= 1;
		if (len < sizeof(a) && !jws_equal_ct(a, b, len))
			LOOP_FAIL(bad, "byte past %zu counted", len);
	}
	CHECK(bad == 0);
}

/*
 * HMAC contexts stay keyed with the last secret (jws_hmac_forget wipes
 * them): whatever the order of secrets -- the same again, one that differs
 * in its last byte, a prefix, an extension, another length -- and wherever
 * the context is forgotten, every MAC is the one-shot HMAC of its own secret,
 * and a MAC under one secret never verifies under another.
 */
static void
test_hmac_kept_key(void)
{
	static const char *const names[] = {"HS256", "HS384", "HS512"};
	unsigned char secrets[6][40];
	size_t		lens[6] = {32, 32, 31, 33, 40, 32};
	unsigned char msg[300];
	int			bad = 0;

	label = "HMAC context kept between calls";
	for (int i = 0; i < 6; i++)
		memcpy(secrets[i], hmac_secret, 32);
	memset(secrets[0] + 32, 'x', 8);
	memcpy(secrets[1], secrets[0], 40);
	secrets[1][31] ^= 1;		/* same length, last byte differs */
	memcpy(secrets[2], secrets[0], 40);	/* a prefix of secrets[0] */
	memcpy(secrets[3], secrets[0], 40);	/* secrets[0] and one byte more */
	memcpy(secrets[4], secrets[0], 40);
	memcpy(secrets[5], hmac_other, 32);
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char) (i * 7 + 1);

	for (int round = 0; round < 3000; round++)
	{
		const JwsAlg *alg = alg_get(names[rng_next() % 3]);
		int			a = rng_next() % 6;
		int			b = rng_next() % 6;
		JwsKey		ka = secret_key(secrets[a], lens[a]);
		JwsKey		kb = secret_key(secrets[b], lens[b]);
		size_t		msglen = rng_next() % sizeof(msg);
		unsigned char sig[EVP_MAX_MD_SIZE];
		unsigned char ref[EVP_MAX_MD_SIZE];
		size_t		siglen = sizeof(sig);
		size_t		reflen = 0;
		bool		same = lens[a] == lens[b] && memcmp(secrets[a], secrets[b], lens[a]) == 0;

		if (rng_next() % 5 == 0)
			jws_hmac_forget();
		if (jws_sign(alg, &ka, msg, msglen, sig, &siglen) != JWS_OK ||
			EVP_Q_mac(NULL, "HMAC", NULL, alg->digest, NULL, secrets[a], lens[a],
					  msg, msglen, ref, sizeof(ref), &reflen) == NULL ||
			siglen != reflen || memcmp(sig, ref, siglen) != 0)
			LOOP_FAIL(bad, "round %d: %s under secret %d is not the one-shot HMAC",
					  round, alg->name, a);
		if (rng_next() % 5 == 0)
			jws_hmac_forget();
		if (jws_verify(alg, &kb, msg, msglen, sig, siglen) !=
			(same ? JWS_OK : JWS_BAD_SIGNATURE))
			LOOP_FAIL(bad, "round %d: %s signed under secret %d, verified under %d",
					  round, alg->name, a, b);
	}
	CHECK(bad == 0);
	jws_hmac_forget();
}

/* Deterministic signatures with a known result. */
static void
test_known_signatures(void)
{
	/* the jwt.io example */
	static const char jwtio_input[] =
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
		"eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWV9";
	static const char jwtio_sig[] = "TJVA95OrM7E2cBab30RMHrHDcEfxjoYZgeFONFh7HgQ";

	/* RFC 8037 A.1 private key, A.4 signing input and signature */
	static const char ed_d[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
	static const char ed_x[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
	static const char ed_input[] =
		"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
	static const char ed_sig[] =
		"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5B"
		"hVsPt9g7sVvpAr_MuM0KAg";

	unsigned char sig[JWS_MAX_SIGNATURE];
	size_t		siglen = 0;
	char		text[B64URL_ENCODED_LEN(JWS_MAX_SIGNATURE)];
	size_t		textlen;
	JwsKey		key;

	label = "jwt.io HS256";
	key = secret_key("secret", 6);
	CHECK_ST(jws_sign(alg_get("HS256"), &key,
					  (const unsigned char *) jwtio_input, strlen(jwtio_input),
					  sig, &siglen), JWS_OK);
	CHECK(siglen == 32);
	textlen = b64url_encode(sig, siglen, text);
	CHECK(textlen == strlen(jwtio_sig) && memcmp(text, jwtio_sig, textlen) == 0);
	CHECK_ST(jws_verify(alg_get("HS256"), &key,
						(const unsigned char *) jwtio_input, strlen(jwtio_input),
						sig, siglen), JWS_OK);
	key = secret_key("secreT", 6);
	CHECK_ST(jws_verify(alg_get("HS256"), &key,
						(const unsigned char *) jwtio_input, strlen(jwtio_input),
						sig, siglen), JWS_BAD_SIGNATURE);

	label = "RFC 8037 Ed25519 sign";
	{
		unsigned char d[32];
		unsigned char x[32];
		unsigned char pub[32];
		size_t		publen = sizeof(pub);
		EVP_PKEY   *pkey;

		CHECK(b64d(ed_d, d, sizeof(d)) == 32);
		CHECK(b64d(ed_x, x, sizeof(x)) == 32);
		pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, 32);
		if (pkey == NULL)
			fatal("EVP_PKEY_new_raw_private_key");
		CHECK(EVP_PKEY_get_raw_public_key(pkey, pub, &publen) == 1 &&
			  publen == 32 && memcmp(pub, x, 32) == 0);
		key = pkey_key(pkey);
		CHECK_ST(jws_sign(alg_get("EdDSA"), &key,
						  (const unsigned char *) ed_input, strlen(ed_input),
						  sig, &siglen), JWS_OK);
		CHECK(siglen == 64);
		textlen = b64url_encode(sig, siglen, text);
		CHECK(textlen == strlen(ed_sig) && memcmp(text, ed_sig, textlen) == 0);
		EVP_PKEY_free(pkey);
	}
}

/* ------------------------------------------------------------------------
 * ROCA (CVE-2017-15361): src/roca.c and its use in jws_key_fits
 * ------------------------------------------------------------------------
 */

/* The primes of the fingerprint, written out again rather than shared. */
static const unsigned int roca_test_primes[] = {
	3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67,
	71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139,
	149, 151, 157, 163, 167
};

#define N_ROCA_TEST_PRIMES \
	(sizeof(roca_test_primes) / sizeof(roca_test_primes[0]))

/* the binary runs in test/unit (make -C test/unit) */
#define FIXTURE_DIR "../fixtures/keys/"

static unsigned int
powmod_small(unsigned int b, unsigned int e, unsigned int m)
{
	unsigned int r = 1;

	b %= m;
	for (; e > 0; e >>= 1)
	{
		if (e & 1)
			r = r * b % m;
		b = b * b % m;
	}
	return r;
}

/*
 * Reference membership test, by another route than roca.c's walk: the
 * subgroup of order d of the cyclic group (Z/rZ)* is {x : x^d = 1}, d
 * being the order of 65537 mod r (the least d with 65537^d = 1).
 */
static bool
ref_in_subgroup(unsigned int x, unsigned int r)
{
	unsigned int d = 1;

	if (x % r == 0)
		return false;
	while (powmod_small(65537, d, r) != 1)
		d++;
	return powmod_small(x, d, r) == 1;
}

/* M = 2 * 3 * 5 * ... * 167, the smallest primorial of RSALib */
static BIGNUM *
roca_primorial(void)
{
	BIGNUM	   *m = BN_new();

	if (m == NULL || !BN_set_word(m, 2))
		fatal("roca_primorial");
	for (size_t i = 0; i < N_ROCA_TEST_PRIMES; i++)
		if (!BN_mul_word(m, roca_test_primes[i]))
			fatal("roca_primorial");
	return m;
}

/*
 * A prime of RSALib's form k * M + (65537^a mod M), a and k (of kbits
 * bits) from the test's reproducible generator.
 */
static BIGNUM *
roca_form_prime(const BIGNUM *m, int kbits, BN_CTX *ctx)
{
	unsigned char abuf[16];
	unsigned char kbuf[32];
	BIGNUM	   *a;
	BIGNUM	   *k;
	BIGNUM	   *g = BN_new();
	BIGNUM	   *e = BN_new();
	BIGNUM	   *p = BN_new();

	if (kbits < 8 || kbits > 8 * (int) sizeof(kbuf) || kbits % 8 != 0)
		fatal("roca_form_prime: kbits");
	rng_fill(abuf, sizeof(abuf));
	rng_fill(kbuf, (size_t) kbits / 8);
	kbuf[0] |= 0x80;
	a = BN_bin2bn(abuf, sizeof(abuf), NULL);
	k = BN_bin2bn(kbuf, kbits / 8, NULL);
	if (a == NULL || k == NULL || g == NULL || e == NULL || p == NULL ||
		!BN_set_word(e, 65537) || !BN_mod_exp(g, e, a, m, ctx))
		fatal("roca_form_prime");
	for (;;)
	{
		int			prime;

		if (!BN_mul(p, k, m, ctx) || !BN_add(p, p, g))
			fatal("roca_form_prime");
		prime = BN_check_prime(p, ctx, NULL);
		if (prime < 0)
			fatal("BN_check_prime");
		if (prime == 1)
			break;
		if (!BN_add_word(k, 1))		/* keeps the form */
			fatal("roca_form_prime");
	}
	BN_free(a);
	BN_free(k);
	BN_free(g);
	BN_free(e);
	return p;
}

/* jws_rsa_roca_vulnerable on constructed numbers */
static void
test_roca_detector(void)
{
	BN_CTX	   *ctx = BN_CTX_new();
	BIGNUM	   *m = roca_primorial();
	BIGNUM	   *p;
	BIGNUM	   *q;
	BIGNUM	   *n = BN_new();
	BIGNUM	   *t = BN_new();
	BIGNUM	   *mr = BN_new();
	int			bad = 0;
	int			n_in = 0;
	int			n_out = 0;

	if (ctx == NULL || n == NULL || t == NULL || mr == NULL)
		fatal("test_roca_detector");
	p = roca_form_prime(m, 64, ctx);
	q = roca_form_prime(m, 64, ctx);
	if (!BN_mul(n, p, q, ctx))
		fatal("BN_mul");

	label = "ROCA: constructed moduli";
	CHECK(BN_num_bits(p) > 256 && BN_num_bits(q) > 256 && BN_cmp(p, q) != 0);
	CHECK(jws_rsa_roca_vulnerable(n));
	CHECK(jws_rsa_roca_vulnerable(p));	/* one RSALib prime */
	if (!BN_mul(t, n, p, ctx))
		fatal("BN_mul");
	CHECK(jws_rsa_roca_vulnerable(t));	/* the group is closed */
	if (!BN_set_word(t, 65537))
		fatal("BN_set_word");
	CHECK(jws_rsa_roca_vulnerable(t));
	if (!BN_copy(t, n) || !BN_add_word(t, 2))
		fatal("BN_add_word");
	CHECK(!jws_rsa_roca_vulnerable(t));
	if (!BN_copy(t, n) || !BN_sub_word(t, 2))
		fatal("BN_sub_word");
	CHECK(!jws_rsa_roca_vulnerable(t));
	BN_zero(t);					/* divisible by every prime */
	CHECK(!jws_rsa_roca_vulnerable(t));
	if (!BN_copy(t, n))
		fatal("BN_copy");
	BN_set_negative(t, 1);		/* only |n| is looked at */
	CHECK(jws_rsa_roca_vulnerable(t));
	CHECK(ERR_peek_error() == 0);

	/*
	 * Every residue of every prime: n + c * (M / r) keeps n's residues mod
	 * the other primes (all in their subgroups) and runs through all the
	 * residues mod r as c does, so the answer must be the reference
	 * membership of that one residue.  Skipping a prime, a wrong subgroup
	 * or a residue of 0 taken as a member each fail here.
	 */
	label = "ROCA: every residue of every prime";
	for (size_t i = 0; i < N_ROCA_TEST_PRIMES; i++)
	{
		unsigned int r = roca_test_primes[i];
		unsigned int n_mod = (unsigned int) BN_mod_word(n, r);
		unsigned int mr_mod;

		if (!BN_copy(mr, m) || BN_div_word(mr, r) != 0)
			fatal("M / r");
		mr_mod = (unsigned int) BN_mod_word(mr, r);
		if (!ref_in_subgroup(n_mod, r))
			LOOP_FAIL(bad, "n mod %u = %u is not in the subgroup", r, n_mod);
		for (unsigned int c = 0; c < r; c++)
		{
			unsigned int x = (n_mod + c * mr_mod) % r;
			bool		want = ref_in_subgroup(x, r);
			bool		got;

			if (!BN_copy(t, mr) || !BN_mul_word(t, c) || !BN_add(t, t, n))
				fatal("n + c * M / r");
			got = jws_rsa_roca_vulnerable(t);
			if (got != want)
				LOOP_FAIL(bad, "r = %u, residue %u: got %s, want %s",
						  r, x, got ? "true" : "false", want ? "true" : "false");
			if (want)
				n_in++;
			else
				n_out++;
		}
	}
	CHECK(bad == 0);
	/* members: the orders of 65537 mod r, summed; all: 3 + 5 + ... + 167 */
	CHECK(n_in == 2086 && n_in + n_out == 2912);

	BN_free(p);
	BN_free(q);
	BN_free(n);
	BN_free(t);
	BN_free(mr);
	BN_free(m);
	BN_CTX_free(ctx);
}

/* A PEM fixture: public key, private key or certificate. */
static EVP_PKEY *
fixture_pem(const char *name)
{
	char		path[256];
	FILE	   *f;
	EVP_PKEY   *pkey = NULL;

	snprintf(path, sizeof(path), FIXTURE_DIR "%s", name);
	f = fopen(path, "r");
	if (f == NULL)
	{
		printf("cannot open %s (run from test/unit)\n", path);
		fatal("fixture missing");
	}
	if (strstr(name, "cert") != NULL)
	{
		X509	   *cert = PEM_read_X509(f, NULL, NULL, NULL);

		pkey = cert != NULL ? X509_get_pubkey(cert) : NULL;
		X509_free(cert);
	}
	else
	{
		OSSL_DECODER_CTX *dctx;

		dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, "RSA", 0,
											 NULL, NULL);
		if (dctx == NULL || !OSSL_DECODER_from_fp(dctx, f))
			pkey = NULL;
		OSSL_DECODER_CTX_free(dctx);
	}
	fclose(f);
	if (pkey == NULL)
	{
		printf("cannot read %s\n", path);
		fatal("fixture unreadable");
	}
	return pkey;
}

/* The string member name of a flat JSON object (no escapes in it). */
static void
json_string_member(const char *json, const char *name, char *out, size_t outsize)
{
	char		pattern[32];
	const char *start;
	const char *end;

	snprintf(pattern, sizeof(pattern), "\"%s\":\"", name);
	start = strstr(json, pattern);
	if (start == NULL)
		fatal("JWK member missing");
	start += strlen(pattern);
	end = strchr(start, '"');
	if (end == NULL || (size_t) (end - start) >= outsize)
		fatal("JWK member unterminated or too long");
	memcpy(out, start, end - start);
	out[end - start] = '\0';
}

/* A public RSA JWK fixture. */
static EVP_PKEY *
fixture_rsa_jwk(const char *name)
{
	char		path[256];
	char		json[4096];
	char		n_b64[1024];
	char		e_b64[16];
	FILE	   *f;
	size_t		len;

	snprintf(path, sizeof(path), FIXTURE_DIR "%s", name);
	f = fopen(path, "r");
	if (f == NULL)
	{
		printf("cannot open %s (run from test/unit)\n", path);
		fatal("fixture missing");
	}
	len = fread(json, 1, sizeof(json) - 1, f);
	fclose(f);
	json[len] = '\0';
	json_string_member(json, "n", n_b64, sizeof(n_b64));
	json_string_member(json, "e", e_b64, sizeof(e_b64));
	return rsa_public_jwk(n_b64, e_b64);
}

static bool
roca_pkey(EVP_PKEY *pkey)
{
	BIGNUM	   *n = NULL;
	bool		flagged;

	if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n))
		fatal("EVP_PKEY_get_bn_param(n)");
	flagged = jws_rsa_roca_vulnerable(n);
	BN_free(n);
	return flagged;
}

/* The ROCA fixture is refused; the other RSA keys are not flagged. */
static void
test_roca_keys(void)
{
	static const char *const clean[] = {
		"rsa_pub_spki.pem", "rsa_pub_pkcs1.pem", "rsa_priv_pkcs1.pem",
		"rsa_priv_pkcs8.pem", "rsa_cert.pem", "rsa2_pub_spki.pem",
		"rsa2_priv_pkcs8.pem", "rsa1024_pub.pem", "rsa1024_priv.pem"
	};
	const char *const algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"};
	EVP_PKEY   *roca = fixture_pem("rsa_roca_pub.pem");
	EVP_PKEY   *roca_jwk = fixture_rsa_jwk("rsa_roca_jwk_pub.json");
	EVP_PKEY   *pkeys[] = {roca, roca_jwk};
	unsigned char zero[256] = {0};
	JwsKey		k;

	label = "ROCA: fixture key";
	CHECK(EVP_PKEY_get_bits(roca) == 2048);
	CHECK(EVP_PKEY_eq(roca, roca_jwk) == 1);	/* same key, PEM and JWK */
	CHECK(roca_pkey(roca));
	for (size_t i = 0; i < sizeof(pkeys) / sizeof(pkeys[0]); i++)
	{
		for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++)
		{
			k = pkey_key(pkeys[i]);
			CHECK_ST(jws_key_fits(alg_get(algs[a]), &k), JWS_KEY_WEAK);
			CHECK_ST(jws_key_fits(alg_get(algs[a]), &k), JWS_KEY_WEAK);	/* memo */
			k = pkey_key(pkeys[i]);
			CHECK_ST(jws_verify(alg_get(algs[a]), &k, (const unsigned char *) "m", 1,
								zero, sizeof(zero)), JWS_KEY_WEAK);
		}
		k = pkey_key(pkeys[i]);
		k.keep_verify_ctx = true;
		CHECK_ST(jws_verify(alg_get("PS256"), &k, (const unsigned char *) "m", 1,
							zero, sizeof(zero)), JWS_KEY_WEAK);
		CHECK(k.verify_ctx == NULL);
		jws_key_forget(&k);
	}
	CHECK(ERR_peek_error() == 0);

	label = "ROCA: other keys not flagged";
	for (size_t i = 0; i < sizeof(clean) / sizeof(clean[0]); i++)
	{
		EVP_PKEY   *pkey = fixture_pem(clean[i]);

		if (roca_pkey(pkey))
			printf("%s is flagged\n", clean[i]);
		CHECK(!roca_pkey(pkey));
		EVP_PKEY_free(pkey);
	}
	CHECK(!roca_pkey(rsa2048));
	CHECK(!roca_pkey(rfc_rsa));
	k = pkey_key(rsa2048);
	CHECK_ST(jws_key_fits(alg_get("RS256"), &k), JWS_OK);
	k = pkey_key(rfc_rsa);
	CHECK_ST(jws_key_fits(alg_get("PS256"), &k), JWS_OK);
	CHECK(ERR_peek_error() == 0);

	EVP_PKEY_free(roca);
	EVP_PKEY_free(roca_jwk);
}

int
main(void)
{
	keys_setup();

	test_b64url_vectors();
	test_b64url_roundtrip();
	test_b64url_strict();
	test_b64url_unique();
	test_b64url_alphabet();

	test_alg_table();
	test_alg_curves();
	test_key_fits();

	test_sign_verify();
	test_cross_algorithm();
	test_pss_salt();
	test_ecdsa_format();

	test_rfc_vectors();
	test_known_signatures();
	test_hmac_kept_key();
	test_equal_ct();
	test_kept_verify_ctx();

	/* last: they draw from the generator the earlier tests use */
	test_roca_detector();
	test_roca_keys();

	keys_free();

	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed > 0 ? 1 : 0;
}

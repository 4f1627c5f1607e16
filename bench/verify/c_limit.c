/*
 * c_limit.c
 *		What signing and verifying a JWT costs in plain C on OpenSSL 3, one
 *		thread: the limit that the jwt extension is measured against.
 *
 * usage: c_limit [-b batch_seconds] [-r repeats] ALG TOKENS KEY [PRIVATE_KEY]
 *
 *	ALG			HS256, RS256, PS256, ES256 or EdDSA
 *	TOKENS		file of tokens, one a line: the ones the SQL side verifies
 *	KEY			HS256: the secret, its raw bytes; others: the public key, PEM
 *	PRIVATE_KEY	others: the private key, PEM (without it, no "sign" line)
 *
 * Output, one line per operation, microseconds per call:
 *
 *	c RS256 verify 31.20		key parsed once, before timing
 *	c RS256 verify-pem 130.77	the public PEM parsed on every call
 *	c RS256 verify-prepared 17.40	the verify context prepared once (RSA, ECDSA)
 *	c RS256 sign 702.15			private key parsed once
 *
 * Each figure is the median of `repeats` (-r, default 3) batches of about
 * `batch_seconds` (-b, default 0.3) each.  Calls go round the token file, so every call verifies a token that
 * jwt_verify() also verified; before any timing one untimed pass verifies
 * every token of the file.  A verification that fails is counted, and any
 * failure makes the exit status 1: a figure for work that did not succeed
 * would be worthless.
 *
 * The work per call is what a careful minimal verifier must do and no more:
 * split on the dots, base64url-decode the payload and the signature, find
 * "exp" in the payload with a minimal scan (not a JSON parser: a JSON string
 * containing "exp": could fool it; fine for a cost floor, not for real use)
 * and compare it with the clock, then check the signature.  Signing encodes
 * the header and the claims, signs, and encodes the signature.  Anything
 * that can be prepared once is: keys are parsed and digests and the HMAC
 * implementation fetched before timing, and the HMAC context keeps its key
 * schedule between calls.
 */
#define _GNU_SOURCE				/* memmem */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

typedef enum
{
	ALG_HS256,
	ALG_RS256,
	ALG_PS256,
	ALG_ES256,
	ALG_EDDSA
} AlgId;

static const char *const alg_names[] = {"HS256", "RS256", "PS256", "ES256", "EdDSA"};

#define N_ALGS ((int) (sizeof(alg_names) / sizeof(alg_names[0])))

#define HASH_LEN		32		/* SHA-256 */
#define ES256_COORD		32		/* bytes of r and of s in a JWS ES256 signature */
#define MAX_SIG			1024	/* raw signature bytes: RSA up to 8192 bits */

/* One token of the file, and the two JSON texts it carries (for signing). */
typedef struct Token
{
	char	   *text;
	size_t		len;
	unsigned char *header;		/* decoded header JSON */
	size_t		header_len;
	unsigned char *claims;		/* decoded payload JSON */
	size_t		claims_len;
} Token;

typedef struct Bench
{
	AlgId		alg;
	EVP_MD	   *md;				/* SHA-256, fetched once; NULL for EdDSA */

	/* HS256 */
	unsigned char *secret;
	size_t		secret_len;
	EVP_MAC_CTX *mac_ctx;		/* keyed once; re-initialised per call */

	/* the others */
	EVP_PKEY   *pub;			/* parsed once */
	EVP_PKEY   *priv;			/* parsed once; NULL: no signing */
	char	   *pub_pem;		/* for verify-pem, which parses it per call */
	size_t		pub_pem_len;
	EVP_MD_CTX *mctx;			/* reset and reused by every call */
	EVP_PKEY_CTX *vctx;			/* verify-prepared: padding and digest set once */
	bool		prepared;		/* verify through vctx, on a digest */

	Token	   *tokens;
	size_t		ntokens;
	char	   *token_file;		/* the file's text: the tokens point into it */

	/* scratch, sized for the largest token */
	unsigned char *buf;			/* decoded payload */
	char	   *out;			/* a signed token */
	size_t		out_len;
} Bench;

typedef bool (*OpFunc) (Bench *b, size_t i);

static void die(const char *msg, const char *arg);

static double batch_seconds = 0.3;
static int	repeats = 3;
static long failures = 0;


/* ---- base64url (RFC 4648 §5, unpadded) ---- */

static const char b64_enc[64] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static signed char b64_dec[256];

static void
b64_init(void)
{
	memset(b64_dec, -1, sizeof(b64_dec));
	for (int i = 0; i < 64; i++)
		b64_dec[(unsigned char) b64_enc[i]] = (signed char) i;
}

static size_t
b64url_encode(const unsigned char *src, size_t len, char *dst)
{
	char	   *p = dst;
	size_t		i = 0;

	for (; i + 3 <= len; i += 3)
	{
		uint32_t	v = ((uint32_t) src[i] << 16) | ((uint32_t) src[i + 1] << 8) | src[i + 2];

		*p++ = b64_enc[v >> 18];
		*p++ = b64_enc[(v >> 12) & 63];
		*p++ = b64_enc[(v >> 6) & 63];
		*p++ = b64_enc[v & 63];
	}
	if (len - i == 1)
	{
		*p++ = b64_enc[src[i] >> 2];
		*p++ = b64_enc[(src[i] & 3) << 4];
	}
	else if (len - i == 2)
	{
		*p++ = b64_enc[src[i] >> 2];
		*p++ = b64_enc[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
		*p++ = b64_enc[(src[i + 1] & 15) << 2];
	}
	return (size_t) (p - dst);
}

/* Strict: no padding, no characters outside the alphabet, no stray bits. */
static bool
b64url_decode(const char *src, size_t len, unsigned char *dst, size_t *dstlen)
{
	unsigned char *p = dst;
	size_t		i = 0;
	size_t		rem = len % 4;

	if (rem == 1)
		return false;
	for (; i + 4 <= len; i += 4)
	{
		int			a = b64_dec[(unsigned char) src[i]];
		int			b = b64_dec[(unsigned char) src[i + 1]];
		int			c = b64_dec[(unsigned char) src[i + 2]];
		int			d = b64_dec[(unsigned char) src[i + 3]];
		uint32_t	v;

		if ((a | b | c | d) < 0)
			return false;
		v = ((uint32_t) a << 18) | ((uint32_t) b << 12) | ((uint32_t) c << 6) | (uint32_t) d;
		*p++ = (unsigned char) (v >> 16);
		*p++ = (unsigned char) (v >> 8);
		*p++ = (unsigned char) v;
	}
	if (rem >= 2)
	{
		int			a = b64_dec[(unsigned char) src[i]];
		int			b = b64_dec[(unsigned char) src[i + 1]];
		int			c = rem == 3 ? b64_dec[(unsigned char) src[i + 2]] : 0;

		if ((a | b | c) < 0)
			return false;
		if (rem == 2 && (b & 15) != 0)
			return false;
		if (rem == 3 && (c & 3) != 0)
			return false;
		*p++ = (unsigned char) ((a << 2) | (b >> 4));
		if (rem == 3)
			*p++ = (unsigned char) (((b & 15) << 4) | (c >> 2));
	}
	*dstlen = (size_t) (p - dst);
	return true;
}


/* ---- the claims ---- */

/*
 * Is the token unexpired?  Finds "exp": followed by an integer.  No "exp" at
 * all is no expiry, as in RFC 7519; an "exp" that is not an integer fails.
 */
static bool
exp_ok(const unsigned char *json, size_t len, time_t now)
{
	const char *p = (const char *) json;
	const char *end = p + len;

	while ((p = memmem(p, (size_t) (end - p), "\"exp\"", 5)) != NULL)
	{
		const char *q = p + 5;
		long long	exp = 0;
		bool		digits = false;

		while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
			q++;
		if (q == end || *q != ':')
		{
			p += 5;				/* "exp" as a value, not a member name */
			continue;
		}
		q++;
		while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
			q++;
		while (q < end && *q >= '0' && *q <= '9' && exp < 1000000000000LL)
		{
			exp = exp * 10 + (*q++ - '0');
			digits = true;
		}
		return digits && (long long) now < exp;
	}
	return true;
}


/* ---- signatures ---- */

/* JWS ES256 r||s to the DER SEQUENCE that OpenSSL verifies. */
static bool
es256_raw_to_der(const unsigned char *raw, unsigned char *der, size_t *derlen)
{
	ECDSA_SIG  *esig = ECDSA_SIG_new();
	BIGNUM	   *r = BN_bin2bn(raw, ES256_COORD, NULL);
	BIGNUM	   *s = BN_bin2bn(raw + ES256_COORD, ES256_COORD, NULL);
	unsigned char *p = der;
	int			len;

	if (esig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(esig, r, s))
	{
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(esig);
		return false;
	}
	len = i2d_ECDSA_SIG(esig, &p);	/* at most 72 bytes for P-256 */
	ECDSA_SIG_free(esig);
	if (len <= 0)
		return false;
	*derlen = (size_t) len;
	return true;
}

/* OpenSSL's DER ECDSA signature to JWS r||s. */
static bool
es256_der_to_raw(const unsigned char *der, size_t derlen, unsigned char *raw)
{
	const unsigned char *p = der;
	ECDSA_SIG  *esig = d2i_ECDSA_SIG(NULL, &p, (long) derlen);
	const BIGNUM *r,
			   *s;
	bool		ok;

	if (esig == NULL)
		return false;
	ECDSA_SIG_get0(esig, &r, &s);
	ok = BN_bn2binpad(r, raw, ES256_COORD) == ES256_COORD &&
		BN_bn2binpad(s, raw + ES256_COORD, ES256_COORD) == ES256_COORD;
	ECDSA_SIG_free(esig);
	return ok;
}

/* DigestSign/DigestVerify on the reused context, with the JWS padding. */
static bool
pkey_init(Bench *b, EVP_PKEY *pkey, bool sign)
{
	EVP_PKEY_CTX *pctx = NULL;
	int			ok;

	EVP_MD_CTX_reset(b->mctx);
	if (sign)
		ok = EVP_DigestSignInit(b->mctx, &pctx, b->md, NULL, pkey);
	else
		ok = EVP_DigestVerifyInit(b->mctx, &pctx, b->md, NULL, pkey);
	if (ok == 1 && b->alg == ALG_RS256)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING);
	else if (ok == 1 && b->alg == ALG_PS256)
	{
		/* RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash */
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		if (ok == 1)
			ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, HASH_LEN);
		if (ok == 1)
			ok = EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, b->md);
	}
	return ok == 1;
}

static bool
hmac(Bench *b, const unsigned char *msg, size_t len, unsigned char *mac)
{
	size_t		maclen = 0;

	/* a NULL key re-initialises with the key set at start-up */
	return EVP_MAC_init(b->mac_ctx, NULL, 0, NULL) == 1 &&
		EVP_MAC_update(b->mac_ctx, msg, len) == 1 &&
		EVP_MAC_final(b->mac_ctx, mac, &maclen, HASH_LEN) == 1 &&
		maclen == HASH_LEN;
}

/* Check the signature of a token with the given public key. */
static bool
verify_with(Bench *b, EVP_PKEY *pkey, const char *tok, size_t len)
{
	const char *dot1 = memchr(tok, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t) (dot1 + 1 - tok)) : NULL;
	const char *sig64;
	size_t		sig64_len,
				payload_len,
				siglen;
	unsigned char sig[MAX_SIG];

	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t) (dot2 + 1 - tok)) != NULL)
		return false;
	sig64 = dot2 + 1;
	sig64_len = len - (size_t) (sig64 - tok);
	if (sig64_len > MAX_SIG * 4 / 3 ||
		!b64url_decode(sig64, sig64_len, sig, &siglen))
		return false;

	/* the claims first: an expired token needs no signature check */
	if (!b64url_decode(dot1 + 1, (size_t) (dot2 - dot1 - 1), b->buf, &payload_len) ||
		!exp_ok(b->buf, payload_len, time(NULL)))
		return false;

	if (b->alg == ALG_HS256)
	{
		unsigned char mac[HASH_LEN];

		return siglen == HASH_LEN &&
			hmac(b, (const unsigned char *) tok, (size_t) (dot2 - tok), mac) &&
			CRYPTO_memcmp(mac, sig, HASH_LEN) == 0;
	}
	else
	{
		unsigned char der[80];
		const unsigned char *s = sig;

		if (b->alg == ALG_ES256)
		{
			if (siglen != 2 * ES256_COORD || !es256_raw_to_der(sig, der, &siglen))
				return false;
			s = der;
		}
		else if ((b->alg == ALG_RS256 || b->alg == ALG_PS256) &&
				 siglen != (size_t) EVP_PKEY_get_size(pkey))
			return false;

		if (b->prepared)
		{
			unsigned char digest[HASH_LEN];

			return EVP_Digest(tok, (size_t) (dot2 - tok), digest, NULL, b->md, NULL) == 1 &&
				EVP_PKEY_verify(b->vctx, s, siglen, digest, HASH_LEN) == 1;
		}
		return pkey_init(b, pkey, false) &&
			EVP_DigestVerify(b->mctx, s, siglen,
							 (const unsigned char *) tok, (size_t) (dot2 - tok)) == 1;
	}
}


/* ---- the timed operations: one call each ---- */

static bool
op_verify(Bench *b, size_t i)
{
	return verify_with(b, b->pub, b->tokens[i].text, b->tokens[i].len);
}

/*
 * The verify context made once, with the padding and digest of the
 * algorithm, and the signing input hashed per call: no EVP_DigestVerifyInit
 * (and its provider look-ups) per call.  What jwt does with each key it
 * keeps; RSA and ECDSA only (EdDSA has no prehash).
 */
static bool
op_verify_prepared(Bench *b, size_t i)
{
	bool		ok;

	b->prepared = true;
	ok = verify_with(b, b->pub, b->tokens[i].text, b->tokens[i].len);
	b->prepared = false;
	return ok;
}

static EVP_PKEY_CTX *
prepare_verify(Bench *b)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, b->pub, NULL);
	int			ok = ctx != NULL && EVP_PKEY_verify_init(ctx) == 1;

	if (ok && b->alg == ALG_RS256)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
	else if (ok && b->alg == ALG_PS256)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
			EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, HASH_LEN) == 1 &&
			EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, b->md) == 1;
	if (ok)
		ok = EVP_PKEY_CTX_set_signature_md(ctx, b->md) == 1;
	if (!ok)
		die("cannot prepare a verify context", NULL);
	return ctx;
}

/*
 * The public key parsed from its PEM text on every call, as jwt_verify()
 * parses a key argument.  The armour comes off with PEM_read_bio() and the
 * SubjectPublicKeyInfo goes to d2i_PUBKEY(): on OpenSSL 3.0 that is about
 * three times faster than PEM_read_bio_PUBKEY() or a PEM OSSL_DECODER that
 * must guess the structure and key type, which spend most of their time
 * trying decoders that do not fit.
 */
static bool
op_verify_pem(Bench *b, size_t i)
{
	BIO		   *bio = BIO_new_mem_buf(b->pub_pem, (int) b->pub_pem_len);
	char	   *name = NULL;
	char	   *header = NULL;
	unsigned char *der = NULL;
	long		derlen = 0;
	EVP_PKEY   *pkey = NULL;
	bool		ok = false;

	if (bio != NULL && PEM_read_bio(bio, &name, &header, &der, &derlen) == 1 &&
		strcmp(name, PEM_STRING_PUBLIC) == 0)
	{
		const unsigned char *p = der;

		pkey = d2i_PUBKEY(NULL, &p, derlen);
	}
	if (pkey != NULL)
		ok = verify_with(b, pkey, b->tokens[i].text, b->tokens[i].len);
	EVP_PKEY_free(pkey);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	BIO_free(bio);
	return ok;
}

/* Sign token i's header and claims again; the token lands in b->out. */
static bool
op_sign(Bench *b, size_t i)
{
	const Token *t = &b->tokens[i];
	char	   *p = b->out;
	size_t		input_len;
	unsigned char sig[MAX_SIG];
	size_t		siglen = sizeof(sig);

	p += b64url_encode(t->header, t->header_len, p);
	*p++ = '.';
	p += b64url_encode(t->claims, t->claims_len, p);
	input_len = (size_t) (p - b->out);

	if (b->alg == ALG_HS256)
	{
		if (!hmac(b, (unsigned char *) b->out, input_len, sig))
			return false;
		siglen = HASH_LEN;
	}
	else
	{
		unsigned char der[80];
		size_t		derlen = sizeof(der);

		if (!pkey_init(b, b->priv, true))
			return false;
		if (b->alg == ALG_ES256)
		{
			if (EVP_DigestSign(b->mctx, der, &derlen,
							   (unsigned char *) b->out, input_len) != 1 ||
				!es256_der_to_raw(der, derlen, sig))
				return false;
			siglen = 2 * ES256_COORD;
		}
		else if (EVP_DigestSign(b->mctx, sig, &siglen,
								(unsigned char *) b->out, input_len) != 1)
			return false;
	}
	*p++ = '.';
	p += b64url_encode(sig, siglen, p);
	b->out_len = (size_t) (p - b->out);
	return true;
}


/* ---- timing ---- */

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * Microseconds per call of f: the median of `repeats` batches.  A short
 * warm-up estimates the cost, so that each batch is a fixed number of calls
 * lasting about batch_seconds and the clock is read only around a batch.
 * Calls go round the tokens, carrying on where the last batch stopped.
 */
static double
measure(Bench *b, OpFunc f)
{
	double		t0 = now_seconds();
	double		t;
	double	   *us = calloc((size_t) repeats, sizeof(double));
	size_t		next = 0;
	long		calls = 0;
	long		batch;
	double		median;

	do
	{
		if (!f(b, next))
			failures++;
		next = (next + 1) % b->ntokens;
		calls++;
	} while ((t = now_seconds()) - t0 < batch_seconds / 5);
	batch = (long) (batch_seconds / ((t - t0) / (double) calls)) + 1;

	for (int r = 0; r < repeats; r++)
	{
		t0 = now_seconds();
		for (long k = 0; k < batch; k++)
		{
			if (!f(b, next))
				failures++;
			if (++next == b->ntokens)
				next = 0;
		}
		us[r] = (now_seconds() - t0) * 1e6 / (double) batch;
	}
	qsort(us, (size_t) repeats, sizeof(double), cmp_double);
	median = repeats % 2 ? us[repeats / 2] : (us[repeats / 2 - 1] + us[repeats / 2]) / 2;
	free(us);
	return median;
}


/* ---- set-up ---- */

static void
die(const char *msg, const char *arg)
{
	fprintf(stderr, "c_limit: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	ERR_print_errors_fp(stderr);
	exit(2);
}

static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *data = NULL;
	size_t		n = 0,
				cap = 0,
				got;

	if (f == NULL)
		die(strerror(errno), path);
	for (;;)
	{
		if (n + 4096 + 1 > cap)
		{
			cap = cap ? cap * 2 : 65536;
			if ((data = realloc(data, cap)) == NULL)
				die("out of memory", NULL);
		}
		got = fread(data + n, 1, cap - n - 1, f);
		if (got == 0)
			break;
		n += got;
	}
	if (ferror(f))
		die("cannot read", path);
	fclose(f);
	data[n] = '\0';
	*len = n;
	return data;
}

static EVP_PKEY *
read_pem(const char *path, bool private)
{
	FILE	   *f = fopen(path, "r");
	EVP_PKEY   *pkey;

	if (f == NULL)
		die(strerror(errno), path);
	pkey = private ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
		: PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (pkey == NULL)
		die("not a PEM key", path);
	return pkey;
}

/* One token a line; each one's header and claims decoded for op_sign. */
static void
read_tokens(Bench *b, const char *path)
{
	size_t		len;
	char	   *data = read_file(path, &len);
	size_t		cap = 1024,
				maxlen = 0;
	char	   *line = data;

	b->token_file = data;
	b->tokens = malloc(cap * sizeof(Token));
	while (line < data + len)
	{
		char	   *eol = memchr(line, '\n', (size_t) (data + len - line));
		char	   *end = eol ? eol : data + len;
		char	   *dot1,
				   *dot2;
		Token	   *t;

		if (end > line && end[-1] == '\r')
			end--;
		if (end == line)
		{
			line = eol ? eol + 1 : data + len;
			continue;
		}
		*end = '\0';
		if (b->ntokens == cap)
			b->tokens = realloc(b->tokens, (cap *= 2) * sizeof(Token));
		if (b->tokens == NULL)
			die("out of memory", NULL);
		t = &b->tokens[b->ntokens++];
		t->text = line;
		t->len = (size_t) (end - line);
		dot1 = memchr(line, '.', t->len);
		dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t) (end - dot1 - 1)) : NULL;
		if (dot2 == NULL)
			die("not a JWS compact token", line);
		t->header = malloc((size_t) (dot1 - line));
		t->claims = malloc((size_t) (dot2 - dot1));
		if (!b64url_decode(line, (size_t) (dot1 - line), t->header, &t->header_len) ||
			!b64url_decode(dot1 + 1, (size_t) (dot2 - dot1 - 1), t->claims, &t->claims_len))
			die("token does not decode", line);
		if (t->len > maxlen)
			maxlen = t->len;
		line = eol ? eol + 1 : data + len;
	}
	if (b->ntokens == 0)
		die("no tokens in", path);
	b->buf = malloc(maxlen);
	b->out = malloc(maxlen * 2 + 2 * MAX_SIG);
}

static void
bench_free(Bench *b)
{
	for (size_t i = 0; i < b->ntokens; i++)
	{
		free(b->tokens[i].header);
		free(b->tokens[i].claims);
	}
	free(b->tokens);
	free(b->token_file);
	free(b->buf);
	free(b->out);
	if (b->secret != NULL)
		OPENSSL_cleanse(b->secret, b->secret_len);
	free(b->secret);
	free(b->pub_pem);
	EVP_MAC_CTX_free(b->mac_ctx);
	EVP_PKEY_CTX_free(b->vctx);
	EVP_MD_CTX_free(b->mctx);
	EVP_PKEY_free(b->pub);
	EVP_PKEY_free(b->priv);
	EVP_MD_free(b->md);
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: c_limit [-b batch_seconds] [-r repeats] ALG TOKENS KEY [PRIVATE_KEY]\n"
			"  ALG: HS256 (KEY: file of the secret's bytes),\n"
			"       RS256, PS256, ES256, EdDSA (KEY: public PEM, PRIVATE_KEY: private PEM)\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	Bench		b = {0};
	int			opt;
	int			alg = -1;
	bool		deterministic;

	while ((opt = getopt(argc, argv, "b:r:")) != -1)
	{
		switch (opt)
		{
			case 'b':
				batch_seconds = atof(optarg);
				break;
			case 'r':
				repeats = atoi(optarg);
				break;
			default:
				usage();
		}
	}
	if (argc - optind < 3 || argc - optind > 4 || batch_seconds <= 0 || repeats < 1)
		usage();
	for (int i = 0; i < N_ALGS; i++)
		if (strcmp(argv[optind], alg_names[i]) == 0)
			alg = i;
	if (alg < 0)
		usage();
	b.alg = (AlgId) alg;
	b64_init();
	read_tokens(&b, argv[optind + 1]);

	if (b.alg != ALG_EDDSA && (b.md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		die("SHA256 not available", NULL);
	if (b.alg == ALG_HS256)
	{
		EVP_MAC    *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		OSSL_PARAM	params[2];

		b.secret = (unsigned char *) read_file(argv[optind + 2], &b.secret_len);
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		if (mac == NULL || (b.mac_ctx = EVP_MAC_CTX_new(mac)) == NULL ||
			EVP_MAC_init(b.mac_ctx, b.secret, b.secret_len, params) != 1)
			die("cannot set up HMAC-SHA256", NULL);
		EVP_MAC_free(mac);		/* the context holds its own reference */
	}
	else
	{
		b.pub = read_pem(argv[optind + 2], false);
		b.pub_pem = read_file(argv[optind + 2], &b.pub_pem_len);
		if (argc - optind == 4)
			b.priv = read_pem(argv[optind + 3], true);
		if ((b.mctx = EVP_MD_CTX_new()) == NULL)
			die("out of memory", NULL);
	}

	/* untimed: every token of the file must verify */
	for (size_t i = 0; i < b.ntokens; i++)
	{
		if (!op_verify(&b, i) && failures++ < 10)
			fprintf(stderr, "c_limit: %s token %zu does not verify\n", alg_names[alg], i + 1);
	}

	/*
	 * Untimed: signing reproduces the tokens, byte for byte where the
	 * signature is deterministic; PS256 and ES256 signatures are randomized,
	 * so there the new token must verify instead.  A few suffice.
	 */
	deterministic = b.alg == ALG_HS256 || b.alg == ALG_RS256 || b.alg == ALG_EDDSA;
	if (b.alg == ALG_HS256 || b.priv != NULL)
	{
		for (size_t i = 0; i < b.ntokens && i < 16; i++)
		{
			bool		ok = op_sign(&b, i);

			if (ok && deterministic)
				ok = b.out_len == b.tokens[i].len &&
					memcmp(b.out, b.tokens[i].text, b.out_len) == 0;
			else if (ok)
				ok = verify_with(&b, b.pub, b.out, b.out_len);
			if (!ok)
			{
				fprintf(stderr, "c_limit: %s signing token %zu does not give a token that %s\n",
						alg_names[alg], i + 1, deterministic ? "matches" : "verifies");
				failures++;
			}
		}
	}
	if (failures == 0)
	{
		printf("c %s verify %.3f\n", alg_names[alg], measure(&b, op_verify));
		fflush(stdout);
		if (b.alg != ALG_HS256)
		{
			printf("c %s verify-pem %.3f\n", alg_names[alg], measure(&b, op_verify_pem));
			fflush(stdout);
		}
		if (b.alg == ALG_RS256 || b.alg == ALG_PS256 || b.alg == ALG_ES256)
		{
			b.vctx = prepare_verify(&b);
			printf("c %s verify-prepared %.3f\n", alg_names[alg], measure(&b, op_verify_prepared));
			fflush(stdout);
		}
		if (b.alg == ALG_HS256 || b.priv != NULL)
		{
			printf("c %s sign %.3f\n", alg_names[alg], measure(&b, op_sign));
			fflush(stdout);
		}
	}
	if (failures > 0)
	{
		fprintf(stderr, "c_limit: %s: %ld failures\n", alg_names[alg], failures);
		ERR_print_errors_fp(stderr);
	}
	bench_free(&b);
	return failures > 0 ? 1 : 0;
}

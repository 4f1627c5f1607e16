/*
 * jwk.c
 *		JwtKey -> JWK, RFC 7638 thumbprints, key generation.
 *
 * Key members are read from OpenSSL as BIGNUMs or raw octets, written as
 * base64url into a JSON text, and the text parsed into jsonb.  Buffers that
 * held private members are wiped before they are freed.  Every OpenSSL
 * object is freed before anything that can raise an error runs.
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "base64url.h"
#include "jsonutil.h"
#include "jwk.h"

/* Largest key member in bytes: an RSA-16384 modulus */
#define MAX_MEMBER_BYTES	2048

typedef struct JwkMember
{
	const char *name;
	char	   *value;			/* base64url, or a plain string for kty/crv */
	bool		is_private;
} JwkMember;

/* Members of one key, at most RSA's kty, n, e, d, p, q, dp, dq, qi (+ crv) */
#define MAX_MEMBERS	10

typedef struct JwkMembers
{
	JwkMember	m[MAX_MEMBERS];
	int			n;
} JwkMembers;

static void
add_member(JwkMembers *ms, const char *name, char *value, bool is_private)
{
	Assert(ms->n < MAX_MEMBERS);
	ms->m[ms->n].name = name;
	ms->m[ms->n].value = value;
	ms->m[ms->n].is_private = is_private;
	ms->n++;
}

static char *
b64(const unsigned char *data, size_t len)
{
	char	   *out = palloc(B64URL_ENCODED_LEN(len) + 1);

	out[b64url_encode(data, len, out)] = '\0';
	return out;
}

static void
key_failed(const char *what)
{
	ERR_clear_error();
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR), errhidestmt(true),
			 errmsg("could not read the %s of a key", what)));
}

/*
 * A BIGNUM parameter as base64url: big-endian, padded to width bytes, or
 * in as few bytes as it needs when width is 0 (Base64urlUInt).
 */
static char *
bn_member(EVP_PKEY *pkey, const char *param, int width)
{
	unsigned char *buf = palloc(MAX_MEMBER_BYTES);
	BIGNUM	   *bn = NULL;
	int			n = -1;
	char	   *out;

	if (EVP_PKEY_get_bn_param(pkey, param, &bn) == 1)
	{
		int			len = width > 0 ? width : Max(BN_num_bytes(bn), 1);

		if (len <= MAX_MEMBER_BYTES)
			n = BN_bn2binpad(bn, buf, len);
	}
	BN_clear_free(bn);
	if (n < 0)
	{
		pfree(buf);
		key_failed(param);
	}
	out = b64(buf, n);
	OPENSSL_cleanse(buf, n);
	pfree(buf);
	return out;
}

static bool
has_bn_param(EVP_PKEY *pkey, const char *param)
{
	BIGNUM	   *bn = NULL;
	bool		found = EVP_PKEY_get_bn_param(pkey, param, &bn) == 1;

	BN_clear_free(bn);
	ERR_clear_error();
	return found;
}

static const JwsAlg *
ec_alg(EVP_PKEY *pkey)
{
	char		group[64];
	size_t		glen;

	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
									   group, sizeof(group), &glen) != 1)
	{
		ERR_clear_error();
		return NULL;
	}
	for (int i = 0; i < jws_alg_count(); i++)
	{
		const JwsAlg *a = jws_alg_at(i);

		if (a->family == JWS_ECDSA && strcmp(a->group, group) == 0)
			return a;
	}
	return NULL;
}

/* The members of a key, in RFC 7638's lexicographic order where it matters */
static void
key_members(const JwtKey *key, bool with_private, JwkMembers *ms)
{
	EVP_PKEY   *pkey = key->jws.pkey;

	ms->n = 0;
	switch (key->type)
	{
		case JWT_KEY_OCT:
			if (with_private)
				add_member(ms, "k", b64(key->jws.secret, key->jws.secret_len), true);
			add_member(ms, "kty", pstrdup("oct"), false);
			break;

		case JWT_KEY_RSA:
			add_member(ms, "e", bn_member(pkey, OSSL_PKEY_PARAM_RSA_E, 0), false);
			add_member(ms, "kty", pstrdup("RSA"), false);
			add_member(ms, "n", bn_member(pkey, OSSL_PKEY_PARAM_RSA_N, 0), false);
			if (with_private && key->has_private)
			{
				add_member(ms, "d", bn_member(pkey, OSSL_PKEY_PARAM_RSA_D, 0), true);
				/* the CRT members come all together or not at all */
				if (has_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1))
				{
					add_member(ms, "p", bn_member(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, 0), true);
					add_member(ms, "q", bn_member(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, 0), true);
					add_member(ms, "dp", bn_member(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT1, 0), true);
					add_member(ms, "dq", bn_member(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT2, 0), true);
					add_member(ms, "qi", bn_member(pkey, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 0), true);
				}
			}
			break;

		case JWT_KEY_EC:
			{
				const JwsAlg *alg = ec_alg(pkey);

				if (alg == NULL)
					key_failed("curve");
				/* coordinates and d are full-width (RFC 7518 §6.2.1.2, §6.2.2.1) */
				add_member(ms, "crv", pstrdup(alg->curve), false);
				add_member(ms, "kty", pstrdup("EC"), false);
				add_member(ms, "x", bn_member(pkey, OSSL_PKEY_PARAM_EC_PUB_X, alg->coord_len), false);
				add_member(ms, "y", bn_member(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, alg->coord_len), false);
				if (with_private && key->has_private)
					add_member(ms, "d", bn_member(pkey, OSSL_PKEY_PARAM_PRIV_KEY, alg->coord_len), true);
				break;
			}

		case JWT_KEY_OKP:
			{
				unsigned char raw[57];
				size_t		len = sizeof(raw);
				bool		ed448 = EVP_PKEY_is_a(pkey, "ED448");

				add_member(ms, "crv", pstrdup(ed448 ? "Ed448" : "Ed25519"), false);
				add_member(ms, "kty", pstrdup("OKP"), false);
				if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1)
					key_failed("public key");
				add_member(ms, "x", b64(raw, len), false);
				if (with_private && key->has_private)
				{
					len = sizeof(raw);
					if (EVP_PKEY_get_raw_private_key(pkey, raw, &len) != 1)
					{
						OPENSSL_cleanse(raw, sizeof(raw));
						key_failed("private key");
					}
					add_member(ms, "d", b64(raw, len), true);
					OPENSSL_cleanse(raw, sizeof(raw));
				}
				break;
			}
	}
}

static void
members_free(JwkMembers *ms)
{
	for (int i = 0; i < ms->n; i++)
	{
		if (ms->m[i].is_private)
			OPENSSL_cleanse(ms->m[i].value, strlen(ms->m[i].value));
		pfree(ms->m[i].value);
	}
	ms->n = 0;
}

/* key_members, wiping the members it read when it raises */
static void
read_members(const JwtKey *key, bool with_private, JwkMembers *ms)
{
	ms->n = 0;
	PG_TRY();
	{
		key_members(key, with_private, ms);
	}
	PG_CATCH();
	{
		members_free(ms);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* An upper bound of what members_json writes, without its NUL */
static int
members_json_size(const JwkMembers *ms, const JwsAlg *alg, const char *kid)
{
	Size		n = 2;

	for (int i = 0; i < ms->n; i++)
		n += strlen(ms->m[i].name) + strlen(ms->m[i].value) + 6;
	if (alg != NULL)
		n += strlen(alg->name) + 9;
	if (kid != NULL)
		n += 6 * strlen(kid) + 9;	/* escaped as \uXXXX at worst */
	if (n >= MaxAllocSize / 2)
		elog(ERROR, "a JWK of %zu bytes is too large", n);
	return (int) n;
}

/* {"name":"value",...}: every value is base64url or a fixed name */
static void
members_json(StringInfo buf, const JwkMembers *ms, const JwsAlg *alg,
			 const char *kid)
{
	/* sized once: a buffer that grew would free copies of itself unwiped */
	enlargeStringInfo(buf, members_json_size(ms, alg, kid));
	appendStringInfoChar(buf, '{');
	for (int i = 0; i < ms->n; i++)
		appendStringInfo(buf, "%s\"%s\":\"%s\"", i > 0 ? "," : "",
						 ms->m[i].name, ms->m[i].value);
	if (alg != NULL)
		appendStringInfo(buf, ",\"alg\":\"%s\"", alg->name);
	if (kid != NULL)
	{
		appendStringInfoString(buf, ",\"kid\":");
		escape_json(buf, kid);
	}
	appendStringInfoChar(buf, '}');
}

Jsonb *
jwt_key_to_jwk(const JwtKey *key, const JwsAlg *alg, const char *kid,
			   bool with_private)
{
	JwkMembers	ms;
	StringInfoData buf;
	JsonStrictError err;
	Jsonb	   *jwk;

	read_members(key, with_private, &ms);
	initStringInfo(&buf);
	members_json(&buf, &ms, alg, kid);
	members_free(&ms);
	jwk = json_parse_object_strict(buf.data, buf.len, &err);
	OPENSSL_cleanse(buf.data, buf.len);
	pfree(buf.data);
	if (jwk == NULL)
		elog(ERROR, "could not build a JWK: %s", json_strict_error_text(err));
	return jwk;
}

char *
jwt_key_thumbprint(const JwtKey *key)
{
	JwkMembers	ms;
	StringInfoData buf;
	unsigned char digest[SHA256_DIGEST_LENGTH];
	bool		ok;

	/* the required members only (RFC 7638 §3.2), k included for oct */
	read_members(key, key->type == JWT_KEY_OCT, &ms);
	initStringInfo(&buf);
	members_json(&buf, &ms, NULL, NULL);
	members_free(&ms);
	ok = EVP_Digest(buf.data, buf.len, digest, NULL, EVP_sha256(), NULL) == 1;
	OPENSSL_cleanse(buf.data, buf.len);
	pfree(buf.data);
	if (!ok)
		key_failed("thumbprint");
	return b64(digest, sizeof(digest));
}

const JwsAlg *
jwt_key_default_alg(const JwtKey *key)
{
	switch (key->type)
	{
		case JWT_KEY_OCT:
			return jws_alg_find("HS256", 5);
		case JWT_KEY_RSA:
			return jws_alg_find("RS256", 5);
		case JWT_KEY_EC:
			return ec_alg(key->jws.pkey);
		case JWT_KEY_OKP:
			return jws_alg_find("EdDSA", 5);
	}
	return NULL;
}

/*
 * OpenSSL's progress callback during RSA key generation: stop when a cancel
 * or a terminate is pending, so that a 4096-bit key (seconds of prime
 * search) can be interrupted.  The interrupt itself is served once OpenSSL
 * has returned and freed what it made.
 */
static int
keygen_progress(EVP_PKEY_CTX *ctx)
{
	(void) ctx;
	return (QueryCancelPending || ProcDiePending) ? 0 : 1;
}

static EVP_PKEY *
rsa_generate(int bits)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY   *pkey = NULL;

	if (ctx != NULL &&
		EVP_PKEY_keygen_init(ctx) == 1 &&
		EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) == 1)
	{
		EVP_PKEY_CTX_set_cb(ctx, keygen_progress);
		if (EVP_PKEY_generate(ctx, &pkey) != 1)
			pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	if (pkey == NULL)
	{
		ERR_clear_error();
		CHECK_FOR_INTERRUPTS();		/* a cancel stopped it: say so */
	}
	return pkey;
}

JwtKey *
jwt_key_generate(const JwsAlg *alg, int rsa_bits)
{
	JwtKey	   *key;

	switch (alg->family)
	{
		case JWS_HMAC:
			key = jwt_key_new(JWT_KEY_OCT);
			key->secret_copy = palloc(alg->hash_len);
			key->secret_copy_len = alg->hash_len;
			if (RAND_priv_bytes(key->secret_copy, alg->hash_len) != 1)
				key_failed("random bytes");
			key->jws.secret = key->secret_copy;
			key->jws.secret_len = key->secret_copy_len;
			break;
		case JWS_RSA_PKCS1:
		case JWS_RSA_PSS:
			key = jwt_key_new(JWT_KEY_RSA);
			key->jws.pkey = rsa_generate(rsa_bits);
			break;
		case JWS_ECDSA:
			key = jwt_key_new(JWT_KEY_EC);
			key->jws.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", alg->group);
			break;
		case JWS_EDDSA:
		default:
			key = jwt_key_new(JWT_KEY_OKP);
			key->jws.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
			break;
	}
	if (alg->family != JWS_HMAC && key->jws.pkey == NULL)
		key_failed("generated key");
	key->has_private = true;
	return key;
}

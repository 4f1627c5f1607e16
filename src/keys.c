/*
 * keys.c
 *		Secret / PEM / JWK / JWKS -> JwtKey.
 *
 * OpenSSL objects are made only after every palloc and every check that can
 * raise an error, and each EVP_PKEY is handed to its JwtKey the moment it
 * exists; the JwtKey's memory-context callback frees it if an error unwinds
 * later.  Temporary OpenSSL objects (BIO, decoder, param builder, BIGNUMs)
 * are freed before any error is raised.
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "miscadmin.h"
#include "utils/jsonb.h"

#include "base64url.h"
#include "errcodes.h"
#include "jsonutil.h"
#include "keys.h"

/* ----------------------------------------------------------------
 * JwtKey lifetime
 * ----------------------------------------------------------------
 */

static void
key_cleanup_callback(void *arg)
{
	jwt_key_release((JwtKey *) arg);
}

void
jwt_key_release(JwtKey *key)
{
	if (key == NULL)
		return;
	jws_key_forget(&key->jws);
	if (key->jws.pkey != NULL)
	{
		EVP_PKEY_free(key->jws.pkey);
		key->jws.pkey = NULL;
	}
	if (key->secret_copy != NULL)
	{
		OPENSSL_cleanse(key->secret_copy, key->secret_copy_len);
		pfree(key->secret_copy);
		key->secret_copy = NULL;
		key->secret_copy_len = 0;
	}
	key->jws.secret = NULL;
	key->jws.secret_len = 0;
}

void
jwt_key_arg_release(JwtKeyArg *arg)
{
	if (arg != NULL && !arg->cached)
		jwt_key_release(arg->key);
}

/* A new, empty key whose resources are released with the current context. */
JwtKey *
jwt_key_new(JwtKeyType type)
{
	JwtKey	   *key = palloc0(sizeof(JwtKey));

	key->type = type;
	key->jws.keep_verify_ctx = true;	/* released with the key, below */
	key->cleanup.func = key_cleanup_callback;
	key->cleanup.arg = key;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &key->cleanup);
	return key;
}

/* Bounded substring search: key text is not NUL-terminated. */
static bool
contains(const char *hay, size_t haylen, const char *needle)
{
	size_t		n = strlen(needle);

	if (n > haylen)
		return false;
	for (size_t i = 0; i + n <= haylen; i++)
	{
		if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
			return true;
	}
	return false;
}

static JwtKeyType
pkey_type(EVP_PKEY *pkey, bool *ok)
{
	*ok = true;
	if (EVP_PKEY_is_a(pkey, "RSA"))
		return JWT_KEY_RSA;
	if (EVP_PKEY_is_a(pkey, "EC"))
		return JWT_KEY_EC;
	if (EVP_PKEY_is_a(pkey, "ED25519") || EVP_PKEY_is_a(pkey, "ED448"))
		return JWT_KEY_OKP;
	*ok = false;
	return JWT_KEY_OCT;
}

/* Never prompt for a passphrase: encrypted keys are refused. */
static int
no_passphrase(char *buf, size_t size, size_t *len,
			  const OSSL_PARAM params[], void *arg)
{
	(void) buf;
	(void) size;
	(void) len;
	(void) params;
	(void) arg;
	return 0;
}

/* ----------------------------------------------------------------
 * PEM
 * ----------------------------------------------------------------
 */

static JwtKey *
key_from_pem(const char *data, size_t len)
{
	bool		is_cert = contains(data, len, "-----BEGIN CERTIFICATE-----");
	bool		is_private = !is_cert && contains(data, len, "PRIVATE KEY-----");
	EVP_PKEY   *pkey = NULL;
	JwtKey	   *key;
	JwtKeyType	type;
	bool		supported;

	if (contains(data, len, "-----BEGIN ENCRYPTED") ||
		contains(data, len, "Proc-Type: 4,ENCRYPTED"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("encrypted PEM keys are not supported"),
				 errhint("Decrypt the key first, for example with \"openssl pkey\".")));
	if (len > (size_t) INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("PEM key is too long")));

	key = jwt_key_new(JWT_KEY_RSA);

	if (is_cert)
	{
		BIO		   *bio = BIO_new_mem_buf(data, (int) len);
		X509	   *x509 = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

		if (x509 != NULL)
			pkey = X509_get_pubkey(x509);
		X509_free(x509);
		BIO_free(bio);
	}
	else
	{
		OSSL_DECODER_CTX *dctx;
		const unsigned char *p = (const unsigned char *) data;
		size_t		remaining = len;

		dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
											 is_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
											 NULL, NULL);
		if (dctx != NULL &&
			OSSL_DECODER_CTX_set_passphrase_cb(dctx, no_passphrase, NULL) == 1)
		{
			if (OSSL_DECODER_from_data(dctx, &p, &remaining) != 1)
			{
				EVP_PKEY_free(pkey);
				pkey = NULL;
			}
		}
		OSSL_DECODER_CTX_free(dctx);
	}
	key->jws.pkey = pkey;
	ERR_clear_error();

	if (pkey == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid PEM key"),
				 errdetail("The text has a PEM armor line but holds no key, public key or certificate that could be decoded.")));

	type = pkey_type(pkey, &supported);
	if (!supported)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("unsupported key type in PEM"),
				 errdetail("Keys must be RSA, EC (P-256, P-384, P-521), Ed25519 or Ed448.")));
	key->type = type;
	key->has_private = is_private;
	return key;
}

/* ----------------------------------------------------------------
 * JWK
 * ----------------------------------------------------------------
 */

static void jwks_refuse_mixed(JsonbContainer *keys);

typedef enum JwkResult
{
	JWK_OK,
	JWK_UNSUPPORTED				/* a key type, curve or use we do not handle */
} JwkResult;

/* String member or NULL; a member of another type is an error. */
static JsonbValue *
jwk_string(JsonbContainer *jwk, const char *name)
{
	JsonbValue *v = jsonb_member(jwk, name);

	if (v != NULL && v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWK: member \"%s\" is not a string", name)));
	return v;
}

static bool
jbv_equals(JsonbValue *v, const char *s)
{
	return v != NULL && v->type == jbvString &&
		v->val.string.len == (int) strlen(s) &&
		memcmp(v->val.string.val, s, v->val.string.len) == 0;
}

/*
 * Whether a JWK's "key_ops" (RFC 7517 §4.3), if present, allows signatures:
 * it must be an array of strings naming "sign" or "verify".  Absent, it
 * allows them, as an absent "use" does.
 */
static bool
jwk_ops_allow_signatures(JsonbContainer *jwk)
{
	JsonbValue *ops = jsonb_member(jwk, "key_ops");
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	bool		allowed = false;

	if (ops == NULL)
		return true;
	if (ops->type != jbvBinary || !JsonContainerIsArray(ops->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWK: member \"key_ops\" is not an array")));
	it = JsonbIteratorInit(ops->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("invalid JWK: member \"key_ops\" holds a value that is not a string")));
		if (jbv_equals(&v, "sign") || jbv_equals(&v, "verify"))
			allowed = true;
	}
	return allowed;
}

/*
 * Decode a base64url member into palloc'd bytes.  Required members that are
 * missing, and members of the wrong length (want_len > 0), raise 22023.
 */
static void
wipe_free(unsigned char *buf, size_t len)
{
	if (buf != NULL)
	{
		OPENSSL_cleanse(buf, len);
		pfree(buf);
	}
}

static unsigned char *
jwk_bytes(JsonbContainer *jwk, const char *name, bool required,
		  size_t want_len, size_t *outlen)
{
	JsonbValue *v = jwk_string(jwk, name);
	unsigned char *buf;
	size_t		size;
	size_t		len;

	if (v == NULL)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("invalid JWK: member \"%s\" is missing", name)));
		*outlen = 0;
		return NULL;
	}
	size = B64URL_DECODED_MAX((size_t) v->val.string.len) + 1;
	buf = palloc(size);
	if (!b64url_decode(v->val.string.val, v->val.string.len, buf, &len) ||
		len == 0 || (want_len > 0 && len != want_len))
	{
		/* what was decoded before the bad character may be a secret's */
		wipe_free(buf, size);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWK: member \"%s\" is not valid base64url of the right length", name)));
	}
	*outlen = len;
	return buf;
}

/* A BIGNUM parameter from big-endian bytes; false on failure. */
static bool
bld_push_bn(OSSL_PARAM_BLD *bld, const char *param, BIGNUM **slot,
			const unsigned char *bytes, size_t len)
{
	if (bytes == NULL)
		return true;
	*slot = BN_bin2bn(bytes, (int) len, NULL);
	return *slot != NULL && OSSL_PARAM_BLD_push_BN(bld, param, *slot) == 1;
}

/* Build an EVP_PKEY from parameters; frees everything it made but the key. */
static EVP_PKEY *
pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, bool private)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY   *pkey = NULL;

	if (params != NULL && ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1)
	{
		if (EVP_PKEY_fromdata(ctx, &pkey,
							  private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
							  params) != 1)
			pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

#define N_RSA_PARTS 8

static void
jwk_rsa(JwtKey *key, JsonbContainer *jwk)
{
	static const char *const members[N_RSA_PARTS] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
	static const char *const params[N_RSA_PARTS] = {
		OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
		OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
		OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
		OSSL_PKEY_PARAM_RSA_COEFFICIENT1
	};
	unsigned char *volatile bytes[N_RSA_PARTS] = {0};
	volatile size_t lens[N_RSA_PARTS] = {0};
	BIGNUM	   *bns[N_RSA_PARTS] = {0};
	bool		private;
	bool		crt;
	int			nparts;
	OSSL_PARAM_BLD *bld;
	bool		ok;

	/* which members there are, before any is decoded */
	private = jwk_string(jwk, "d") != NULL;
	crt = jwk_string(jwk, "p") != NULL;
	for (int i = 0; i < N_RSA_PARTS; i++)
		if ((i < 2 || (crt && i >= 2)) && jwk_string(jwk, members[i]) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("invalid JWK: member \"%s\" is missing", members[i])));
	nparts = crt ? N_RSA_PARTS : (private ? 3 : 2);

	/*
	 * All decoding (which may raise) before any OpenSSL object exists; when
	 * a member does not decode, those decoded before it are wiped.
	 */
	PG_TRY();
	{
		for (int i = 0; i < nparts; i++)
		{
			size_t		len;

			bytes[i] = jwk_bytes(jwk, members[i], true, 0, &len);
			lens[i] = len;
		}
	}
	PG_CATCH();
	{
		for (int i = 0; i < N_RSA_PARTS; i++)
			wipe_free(bytes[i], lens[i]);
		PG_RE_THROW();
	}
	PG_END_TRY();

	bld = OSSL_PARAM_BLD_new();
	ok = bld != NULL;
	for (int i = 0; ok && i < nparts; i++)
		ok = bld_push_bn(bld, params[i], &bns[i], bytes[i], lens[i]);
	if (ok)
		key->jws.pkey = pkey_fromdata("RSA", bld, private);
	OSSL_PARAM_BLD_free(bld);
	for (int i = 0; i < N_RSA_PARTS; i++)
	{
		BN_clear_free(bns[i]);
		wipe_free(bytes[i], lens[i]);
	}
	ERR_clear_error();
	if (key->jws.pkey == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWK: not a valid RSA key")));
	key->has_private = private;
}

static JwkResult
jwk_ec(JwtKey *key, JsonbContainer *jwk)
{
	JsonbValue *crv = jwk_string(jwk, "crv");
	const JwsAlg *alg = NULL;
	unsigned char *x,
			   *y,
			   *d;
	size_t		xl,
				yl,
				dl;
	unsigned char *point;
	size_t		n;
	OSSL_PARAM_BLD *bld;
	BIGNUM	   *dbn = NULL;
	bool		ok;

	for (int i = 0; i < jws_alg_count(); i++)
	{
		const JwsAlg *a = jws_alg_at(i);

		if (a->family == JWS_ECDSA && jbv_equals(crv, a->curve))
			alg = a;
	}
	if (alg == NULL)
		return JWK_UNSUPPORTED;

	n = (size_t) alg->coord_len;
	x = jwk_bytes(jwk, "x", true, n, &xl);
	y = jwk_bytes(jwk, "y", true, n, &yl);
	d = jwk_bytes(jwk, "d", false, n, &dl);
	point = palloc(1 + 2 * n);
	point[0] = POINT_CONVERSION_UNCOMPRESSED;
	memcpy(point + 1, x, n);
	memcpy(point + 1 + n, y, n);

	bld = OSSL_PARAM_BLD_new();
	ok = bld != NULL &&
		OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, alg->group, 0) == 1 &&
		OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * n) == 1;
	if (ok && d != NULL)
		ok = bld_push_bn(bld, OSSL_PKEY_PARAM_PRIV_KEY, &dbn, d, dl);
	if (ok)
		key->jws.pkey = pkey_fromdata("EC", bld, d != NULL);
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(dbn);
	wipe_free(d, dl);
	ERR_clear_error();
	if (key->jws.pkey == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWK: not a valid EC key"),
				 errdetail("The point may not be on the curve.")));
	key->has_private = d != NULL;
	return JWK_OK;
}

static JwkResult
jwk_okp(JwtKey *key, JsonbContainer *jwk)
{
	JsonbValue *crv = jwk_string(jwk, "crv");
	int			type;
	size_t		n;
	unsigned char *x,
			   *d;
	size_t		xl,
				dl;

	if (jbv_equals(crv, "Ed25519"))
	{
		type = EVP_PKEY_ED25519;
		n = 32;
	}
	else if (jbv_equals(crv, "Ed448"))
	{
		type = EVP_PKEY_ED448;
		n = 57;
	}
	else
		return JWK_UNSUPPORTED;

	x = jwk_bytes(jwk, "x", true, n, &xl);
	d = jwk_bytes(jwk, "d", false, n, &dl);
	if (d != NULL)
	{
		unsigned char pub[57];
		size_t		publen = sizeof(pub);

		key->jws.pkey = EVP_PKEY_new_raw_private_key(type, NULL, d, dl);
		/* the public half must be the one the private half implies */
		if (key->jws.pkey != NULL &&
			(EVP_PKEY_get_raw_public_key(key->jws.pkey, pub, &publen) != 1 ||
			 publen != xl || CRYPTO_memcmp(pub, x, xl) != 0))
		{
			EVP_PKEY_free(key->jws.pkey);
			key->jws.pkey = NULL;
		}
	}
	else
		key->jws.pkey = EVP_PKEY_new_raw_public_key(type, NULL, x, xl);
	wipe_free(d, dl);
	ERR_clear_error();
	if (key->jws.pkey == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWK: not a valid OKP key")));
	key->has_private = d != NULL;
	return JWK_OK;
}

static void
jwk_oct(JwtKey *key, JsonbContainer *jwk)
{
	key->secret_copy = jwk_bytes(jwk, "k", true, 0, &key->secret_copy_len);
	key->jws.secret = key->secret_copy;
	key->jws.secret_len = key->secret_copy_len;
	key->has_private = true;
}

/*
 * Parse one JWK object.  Returns NULL for a key we do not handle (type,
 * curve, "use" other than "sig", "key_ops" without "sign" or "verify",
 * unknown "alg"); malformed keys of a type we handle raise 22023.
 */
JwtKey *
jwt_key_from_jwk(JsonbContainer *jwk)
{
	JsonbValue *kty = jwk_string(jwk, "kty");
	JsonbValue *use = jwk_string(jwk, "use");
	JsonbValue *algv = jwk_string(jwk, "alg");
	JsonbValue *kidv = jwk_string(jwk, "kid");
	const JwsAlg *alg = NULL;
	JwtKey	   *key;

	if (kty == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWK: member \"kty\" is missing")));
	if (use != NULL && !jbv_equals(use, "sig"))
		return NULL;
	if (!jwk_ops_allow_signatures(jwk))
		return NULL;
	if (algv != NULL)
	{
		alg = jws_alg_find(algv->val.string.val, algv->val.string.len);
		if (alg == NULL)
			return NULL;
	}

	if (jbv_equals(kty, "oct"))
	{
		key = jwt_key_new(JWT_KEY_OCT);
		jwk_oct(key, jwk);
	}
	else if (jbv_equals(kty, "RSA"))
	{
		key = jwt_key_new(JWT_KEY_RSA);
		jwk_rsa(key, jwk);
	}
	else if (jbv_equals(kty, "EC"))
	{
		key = jwt_key_new(JWT_KEY_EC);
		if (jwk_ec(key, jwk) != JWK_OK)
			return NULL;
	}
	else if (jbv_equals(kty, "OKP"))
	{
		key = jwt_key_new(JWT_KEY_OKP);
		if (jwk_okp(key, jwk) != JWK_OK)
			return NULL;
	}
	else
		return NULL;

	/* a JWK's "alg" must be one its own key type can do */
	key->alg = NULL;
	if (alg != NULL && !jwt_key_allows(key, alg))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWK: algorithm %s does not fit key type", alg->name)));
	key->alg = alg;
	if (kidv != NULL)
		key->kid = pnstrdup(kidv->val.string.val, kidv->val.string.len);
	return key;
}

/* ----------------------------------------------------------------
 * Key arguments
 * ----------------------------------------------------------------
 */

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

bool
jwt_key_text_is_secret(const char *data, size_t len)
{
	const char *p = skip_space(data, data + len);

	return !(p < data + len && *p == '{') && !contains(data, len, "-----BEGIN ");
}

JwtKeyArg *
jwt_key_arg_from_text(const char *data, size_t len)
{
	JwtKeyArg  *arg = palloc0(sizeof(JwtKeyArg));
	const char *p = skip_space(data, data + len);

	if (p < data + len && *p == '{')
	{
		JsonStrictError jerr;
		Jsonb	   *jb = json_parse_object_strict(data, len, &jerr);
		JsonbValue *keys;

		if (jb == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("invalid JWK or JWKS"),
					 errdetail_internal("%s", json_strict_error_text(jerr)),
					 errhint("A key that starts with \"{\" is read as JSON. To use such text as an HMAC secret, pass it as bytea.")));
		keys = jsonb_member(&jb->root, "keys");
		if (keys != NULL)
		{
			if (keys->type != jbvBinary || !JsonContainerIsArray(keys->val.binary.data))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
						 errmsg("invalid JWKS: member \"keys\" is not an array")));
			jwks_refuse_mixed(keys->val.binary.data);
			arg->kind = JWT_KEYARG_JWKS;
			arg->jwks = jb;
			return arg;
		}
		arg->kind = JWT_KEYARG_JWK;
		arg->key = jwt_key_from_jwk(&jb->root);
		if (arg->key == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("unsupported JWK"),
					 errdetail("Signing keys must be of type oct, RSA, EC (P-256, P-384, P-521) or OKP (Ed25519, Ed448), with \"use\" absent or \"sig\" and \"alg\" absent or a JWS algorithm.")));
		return arg;
	}

	if (contains(data, len, "-----BEGIN "))
	{
		arg->kind = JWT_KEYARG_PEM;
		arg->key = key_from_pem(data, len);
		return arg;
	}

	arg->kind = JWT_KEYARG_SECRET;
	arg->key = jwt_key_new(JWT_KEY_OCT);
	arg->key->jws.secret = (const unsigned char *) data;
	arg->key->jws.secret_len = len;
	arg->key->has_private = true;
	return arg;
}

/* Does this DER parse as a key or certificate?  Only tried on SEQUENCEs. */
static bool
looks_like_der_key(const unsigned char *data, size_t len)
{
	const unsigned char *p;
	EVP_PKEY   *pkey;
	X509	   *x509;
	bool		found = false;

	if (len < 2 || data[0] != 0x30 || len > (size_t) LONG_MAX)
		return false;
	p = data;
	pkey = d2i_PUBKEY(NULL, &p, (long) len);
	found = pkey != NULL;
	EVP_PKEY_free(pkey);
	if (!found)
	{
		p = data;
		pkey = d2i_AutoPrivateKey(NULL, &p, (long) len);
		found = pkey != NULL;
		EVP_PKEY_free(pkey);
	}
	if (!found)
	{
		p = data;
		x509 = d2i_X509(NULL, &p, (long) len);
		found = x509 != NULL;
		X509_free(x509);
	}
	ERR_clear_error();
	return found;
}

JwtKeyArg *
jwt_key_arg_from_bytes(const unsigned char *data, size_t len)
{
	JwtKeyArg  *arg = palloc0(sizeof(JwtKeyArg));

	if (looks_like_der_key(data, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("key is a DER-encoded public or private key, not an HMAC secret"),
				 errhint("Pass asymmetric keys as PEM or JWK text.")));
	arg->kind = JWT_KEYARG_SECRET;
	arg->key = jwt_key_new(JWT_KEY_OCT);
	arg->key->jws.secret = data;
	arg->key->jws.secret_len = len;
	arg->key->has_private = true;
	return arg;
}

bool
jwt_key_allows(const JwtKey *key, const JwsAlg *alg)
{
	bool		family_ok = false;

	switch (key->type)
	{
		case JWT_KEY_OCT:
			family_ok = alg->family == JWS_HMAC;
			break;
		case JWT_KEY_RSA:
			family_ok = alg->family == JWS_RSA_PKCS1 || alg->family == JWS_RSA_PSS;
			break;
		case JWT_KEY_EC:
			family_ok = alg->family == JWS_ECDSA;
			break;
		case JWT_KEY_OKP:
			family_ok = alg->family == JWS_EDDSA;
			break;
	}
	return family_ok && (key->alg == NULL || key->alg == alg);
}

/*
 * A key set whose keys are secrets and public keys at once is refused: a
 * token would then choose, by its "alg", whether the set is a secret.
 */
static void
jwks_refuse_mixed(JsonbContainer *keys)
{
	JsonbIterator *it = JsonbIteratorInit(keys);
	JsonbIteratorToken tok;
	JsonbValue	v;
	bool		oct = false;
	bool		other = false;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbValue *kty;

		CHECK_FOR_INTERRUPTS();
		if (tok != WJB_ELEM || v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			continue;
		kty = jsonb_member(v.val.binary.data, "kty");
		if (kty == NULL || kty->type != jbvString)
			continue;
		if (jbv_equals(kty, "oct"))
			oct = true;
		else
			other = true;
	}
	if (oct && other)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWKS: it mixes secret (oct) and public keys"),
				 errhint("Pass secret keys and public keys as separate key sets.")));
}

/* Quick test on "kty" before paying for a full parse. */
static bool
kty_fits(JsonbContainer *jwk, const JwsAlg *alg)
{
	JsonbValue *kty = jsonb_member(jwk, "kty");

	switch (alg->family)
	{
		case JWS_HMAC:
			return jbv_equals(kty, "oct");
		case JWS_RSA_PKCS1:
		case JWS_RSA_PSS:
			return jbv_equals(kty, "RSA");
		case JWS_ECDSA:
			return jbv_equals(kty, "EC");
		case JWS_EDDSA:
			return jbv_equals(kty, "OKP");
	}
	return false;
}

int
jwt_jwks_select(Jsonb *jwks, const JwsAlg *alg, const char *kid, int kidlen,
				bool want_private, JwtKey **out, int max, bool *kid_seen)
{
	JsonbValue *keys = jsonb_member(&jwks->root, "keys");
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	int			n = 0;

	*kid_seen = false;
	it = JsonbIteratorInit(keys->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbContainer *jwk;
		JwtKey	   *key;

		CHECK_FOR_INTERRUPTS();
		if (n >= max)
			break;				/* parse no candidate beyond the limit */
		if (tok != WJB_ELEM || v.type != jbvBinary ||
			!JsonContainerIsObject(v.val.binary.data))
			continue;
		jwk = v.val.binary.data;
		if (kid != NULL)
		{
			JsonbValue *k = jsonb_member(jwk, "kid");
			JsonbValue *use = jsonb_member(jwk, "use");

			if (k == NULL || k->type != jbvString || k->val.string.len != kidlen ||
				memcmp(k->val.string.val, kid, kidlen) != 0)
				continue;
			/* a key for another use does not count as found */
			if (use == NULL || jbv_equals(use, "sig"))
				*kid_seen = true;
		}
		if (!kty_fits(jwk, alg))
			continue;
		key = jwt_key_from_jwk(jwk);
		if (key == NULL)
			continue;
		/* wrong curve drops out here; a weak key stays, to be reported */
		if (!jwt_key_allows(key, alg) ||
			jws_key_fits(alg, &key->jws) == JWS_KEY_TYPE_MISMATCH ||
			(want_private && !key->has_private))
		{
			jwt_key_release(key);
			continue;
		}
		out[n++] = key;
	}
	return n;
}

/*
 * jws.c
 *		JWS algorithm table and signing/verification over bytes (RFC 7518).
 *
 * Each algorithm is bound to one key family, and every sign or verify call
 * checks that binding first: that is what stops algorithm confusion, where
 * an RSA public key is fed to HMAC as a "secret" (CVE-2015-9235 and kin).
 *
 * Nothing here may call into the server: every OpenSSL object made in a
 * function is freed before it returns, and failures come back as JwsStatus.
 */
#include "jws.h"
#include "roca.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

static const unsigned char p256_order[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
	0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51
};
static const unsigned char p384_order[48] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2,
	0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73
};
static const unsigned char p521_order[66] = {
	0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 0x51, 0x86,
	0x87, 0x83, 0xbf, 0x2f, 0x96, 0x6b, 0x7f, 0xcc, 0x01, 0x48, 0xf7, 0x09,
	0xa5, 0xd0, 0x3b, 0xb5, 0xc9, 0xb8, 0x89, 0x9c, 0x47, 0xae, 0xbb, 0x6f,
	0xb7, 0x1e, 0x91, 0x38, 0x64, 0x09
};

#define N_DIGESTS 3

static const JwsAlg jws_algs[] = {
	{"HS256", JWS_HMAC, "SHA256", 32, 0, NULL, NULL, 0, NULL},
	{"HS384", JWS_HMAC, "SHA384", 48, 1, NULL, NULL, 0, NULL},
	{"HS512", JWS_HMAC, "SHA512", 64, 2, NULL, NULL, 0, NULL},
	{"RS256", JWS_RSA_PKCS1, "SHA256", 32, 0, NULL, NULL, 0, NULL},
	{"RS384", JWS_RSA_PKCS1, "SHA384", 48, 1, NULL, NULL, 0, NULL},
	{"RS512", JWS_RSA_PKCS1, "SHA512", 64, 2, NULL, NULL, 0, NULL},
	{"PS256", JWS_RSA_PSS, "SHA256", 32, 0, NULL, NULL, 0, NULL},
	{"PS384", JWS_RSA_PSS, "SHA384", 48, 1, NULL, NULL, 0, NULL},
	{"PS512", JWS_RSA_PSS, "SHA512", 64, 2, NULL, NULL, 0, NULL},
	{"ES256", JWS_ECDSA, "SHA256", 32, 0, "P-256", "prime256v1", 32, p256_order},
	{"ES384", JWS_ECDSA, "SHA384", 48, 1, "P-384", "secp384r1", 48, p384_order},
	{"ES512", JWS_ECDSA, "SHA512", 64, 2, "P-521", "secp521r1", 66, p521_order},
	{"EdDSA", JWS_EDDSA, NULL, 0, -1, NULL, NULL, 0, NULL},
};

#define N_ALGS ((int) (sizeof(jws_algs) / sizeof(jws_algs[0])))

/* Fetched once per process: EVP_MD_fetch and EVP_MAC_fetch are not free. */
static EVP_MD *digest_cache[N_DIGESTS];
static EVP_MAC *hmac_cache;

const JwsAlg *
jws_alg_find(const char *name, size_t len)
{
	for (int i = 0; i < N_ALGS; i++)
	{
		if (strlen(jws_algs[i].name) == len &&
			memcmp(jws_algs[i].name, name, len) == 0)
			return &jws_algs[i];
	}
	return NULL;
}

int
jws_alg_count(void)
{
	return N_ALGS;
}

const JwsAlg *
jws_alg_at(int i)
{
	return (i >= 0 && i < N_ALGS) ? &jws_algs[i] : NULL;
}

static const EVP_MD *
get_digest(const JwsAlg *alg)
{
	if (alg->digest_index < 0)
		return NULL;
	if (digest_cache[alg->digest_index] == NULL)
		digest_cache[alg->digest_index] = EVP_MD_fetch(NULL, alg->digest, NULL);
	return digest_cache[alg->digest_index];
}

static EVP_MAC *
get_hmac(void)
{
	if (hmac_cache == NULL)
		hmac_cache = EVP_MAC_fetch(NULL, "HMAC", NULL);
	return hmac_cache;
}

/*
 * Check an RSA key: at least 2048 bits, odd public exponent above 1, and a
 * modulus without the ROCA fingerprint of Infineon's RSALib (CVE-2017-15361,
 * see roca.c), whose keys are factorable at any size.
 */
static JwsStatus
rsa_key_check(EVP_PKEY *pkey)
{
	BIGNUM	   *e = NULL;
	BIGNUM	   *n = NULL;
	JwsStatus	st = JWS_OK;

	if (EVP_PKEY_get_bits(pkey) < JWS_RSA_MIN_BITS ||
		EVP_PKEY_get_size(pkey) > JWS_MAX_SIGNATURE)
		return JWS_KEY_WEAK;
	if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) ||
		!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n))
	{
		ERR_clear_error();
		BN_free(e);
		return JWS_CRYPTO_ERROR;
	}
	if (BN_is_one(e) || !BN_is_odd(e) || jws_rsa_roca_vulnerable(n))
		st = JWS_KEY_WEAK;
	BN_free(e);
	BN_free(n);
	return st;
}

JwsStatus
jws_key_fits(const JwsAlg *alg, const JwsKey *key)
{
	EVP_PKEY   *pkey = key->pkey;

	if (alg->family == JWS_HMAC)
	{
		if (pkey != NULL || key->secret == NULL)
			return JWS_KEY_TYPE_MISMATCH;
		if (key->secret_len == 0)
			return JWS_KEY_WEAK;
		return JWS_OK;
	}

	if (pkey == NULL)
		return JWS_KEY_TYPE_MISMATCH;

	switch (alg->family)
	{
		case JWS_RSA_PKCS1:
		case JWS_RSA_PSS:
			if (!EVP_PKEY_is_a(pkey, "RSA"))
				return JWS_KEY_TYPE_MISMATCH;
			/* reading e back out of the key costs more than using it */
			if (key->rsa_status == 0)
				((JwsKey *) key)->rsa_status = (int) rsa_key_check(pkey) + 1;
			return (JwsStatus) (key->rsa_status - 1);

		case JWS_ECDSA:
			{
				char		group[64];
				size_t		glen = 0;

				if (!EVP_PKEY_is_a(pkey, "EC"))
					return JWS_KEY_TYPE_MISMATCH;
				if (!EVP_PKEY_get_utf8_string_param(pkey,
													OSSL_PKEY_PARAM_GROUP_NAME,
													group, sizeof(group), &glen))
				{
					/*
					 * no group name: explicit parameters of an unnamed curve
					 * (explicit parameters equal to a named curve get its name,
					 * and are that curve)
					 */
					ERR_clear_error();
					return JWS_KEY_TYPE_MISMATCH;
				}
				if (strcmp(group, alg->group) != 0)
					return JWS_KEY_TYPE_MISMATCH;
				return JWS_OK;
			}

		case JWS_EDDSA:
			if (!EVP_PKEY_is_a(pkey, "ED25519") && !EVP_PKEY_is_a(pkey, "ED448"))
				return JWS_KEY_TYPE_MISMATCH;
			return JWS_OK;

		case JWS_HMAC:
			break;
	}
	return JWS_KEY_TYPE_MISMATCH;
}

size_t
jws_signature_max(const JwsAlg *alg, const JwsKey *key)
{
	switch (alg->family)
	{
		case JWS_HMAC:
			return (size_t) alg->hash_len;
		case JWS_ECDSA:
			return (size_t) alg->coord_len * 2;
		default:
			return key->pkey ? (size_t) EVP_PKEY_get_size(key->pkey) : 0;
	}
}

/*
 * One HMAC context per digest, kept: creating one and fetching its digest by
 * name took most of an HS256 call.  It stays keyed with the last secret it
 * was given, beside a copy of that secret, so that a run of MACs under one
 * secret (a query verifying many tokens) skips the key schedule: the secret
 * is compared in constant time and the context restarted from its keyed
 * state.  jws_hmac_forget() re-keys every context with a one-byte zero key
 * and wipes the copies; the extension calls it at the end of every
 * transaction, so no secret or state derived from one outlives it.
 */
typedef struct HmacSlot
{
	EVP_MAC_CTX *ctx;
	unsigned char *secret;		/* what ctx is keyed with, or NULL */
	size_t		secret_len;
} HmacSlot;

static HmacSlot hmac_slots[N_DIGESTS];

bool
jws_equal_ct(const void *a, const void *b, size_t len)
{
	const unsigned char *pa = a;
	const unsigned char *pb = b;
	uint64_t	diff = 0;
	size_t		i = 0;

	for (; i + 8 <= len; i += 8)
	{
		uint64_t	x;
		uint64_t	y;

		memcpy(&x, pa + i, 8);
		memcpy(&y, pb + i, 8);
		diff |= x ^ y;
	}
	for (; i < len; i++)
		diff |= (uint64_t) (pa[i] ^ pb[i]);
	return diff == 0;
}

static void
hmac_slot_forget(HmacSlot *slot)
{
	static const unsigned char scrub[1] = {0};

	if (slot->secret != NULL)
	{
		OPENSSL_clear_free(slot->secret, slot->secret_len);
		slot->secret = NULL;
		slot->secret_len = 0;
	}
	if (slot->ctx != NULL && EVP_MAC_init(slot->ctx, scrub, sizeof(scrub), NULL) != 1)
	{
		/* cannot scrub it: do not keep it */
		EVP_MAC_CTX_free(slot->ctx);
		slot->ctx = NULL;
		ERR_clear_error();
	}
}

void
jws_hmac_forget(void)
{
	for (int i = 0; i < N_DIGESTS; i++)
		if (hmac_slots[i].secret != NULL)
			hmac_slot_forget(&hmac_slots[i]);
}

static JwsStatus
hmac_compute(const JwsAlg *alg, const JwsKey *key,
			 const unsigned char *msg, size_t msglen,
			 unsigned char *out, size_t *outlen)
{
	HmacSlot   *slot = &hmac_slots[alg->digest_index];
	JwsStatus	st = JWS_CRYPTO_ERROR;
	int			rc;

	/* a NULL key would make EVP_MAC_init reuse the last one */
	if (key->secret == NULL || key->secret_len == 0)
		goto done;

	if (slot->ctx == NULL)
	{
		EVP_MAC   *mac = get_hmac();
		OSSL_PARAM	params[2];

		if (mac == NULL || (slot->ctx = EVP_MAC_CTX_new(mac)) == NULL)
			goto done;
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
													 (char *) alg->digest, 0);
		params[1] = OSSL_PARAM_construct_end();
		if (EVP_MAC_CTX_set_params(slot->ctx, params) != 1)
		{
			EVP_MAC_CTX_free(slot->ctx);
			slot->ctx = NULL;
			goto done;
		}
	}

	if (slot->secret != NULL && slot->secret_len == key->secret_len &&
		jws_equal_ct(slot->secret, key->secret, key->secret_len))
		rc = EVP_MAC_init(slot->ctx, NULL, 0, NULL);
	else
	{
		hmac_slot_forget(slot);
		if (slot->ctx == NULL)
			goto done;
		rc = EVP_MAC_init(slot->ctx, key->secret, key->secret_len, NULL);
		/* without room for the copy, the next call just keys it again */
		if (rc == 1 && (slot->secret = OPENSSL_malloc(key->secret_len)) != NULL)
		{
			memcpy(slot->secret, key->secret, key->secret_len);
			slot->secret_len = key->secret_len;
		}
	}
	if (rc == 1 &&
		EVP_MAC_update(slot->ctx, msg, msglen) == 1 &&
		EVP_MAC_final(slot->ctx, out, outlen, (size_t) alg->hash_len) == 1 &&
		*outlen == (size_t) alg->hash_len)
		st = JWS_OK;
	else
		hmac_slot_forget(slot);
done:
	if (st != JWS_OK)
		ERR_clear_error();
	return st;
}

/* The family's padding on a sign or verify context: 1 on success */
static int
set_padding(const JwsAlg *alg, EVP_PKEY_CTX *pctx, const EVP_MD *md)
{
	int			ok = 1;

	if (alg->family == JWS_RSA_PKCS1)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING);
	else if (alg->family == JWS_RSA_PSS)
	{
		/* salt length is the hash length, on verify too: never "auto" */
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		if (ok == 1)
			ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, alg->hash_len);
		if (ok == 1)
			ok = EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md);
	}
	return ok;
}

/* Set up a DigestSign/DigestVerify context with the family's padding. */
static EVP_MD_CTX *
pkey_ctx_init(const JwsAlg *alg, EVP_PKEY *pkey, bool sign)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = get_digest(alg);
	int			ok;

	if (mctx == NULL)
		return NULL;
	if (alg->family != JWS_EDDSA && md == NULL)
	{
		EVP_MD_CTX_free(mctx);
		return NULL;
	}

	if (sign)
		ok = EVP_DigestSignInit(mctx, &pctx, md, NULL, pkey);
	else
		ok = EVP_DigestVerifyInit(mctx, &pctx, md, NULL, pkey);

	if (ok == 1)
		ok = set_padding(alg, pctx, md);

	if (ok != 1)
	{
		EVP_MD_CTX_free(mctx);
		return NULL;
	}
	return mctx;
}

JwsStatus
jws_sign(const JwsAlg *alg, const JwsKey *key,
		 const unsigned char *msg, size_t msglen,
		 unsigned char *sig, size_t *siglen)
{
	JwsStatus	st;
	EVP_MD_CTX *mctx;
	unsigned char der[JWS_ECDSA_DER_MAX];
	size_t		len;

	st = jws_key_fits(alg, key);
	if (st != JWS_OK)
		return st;

	if (alg->family == JWS_HMAC)
		return hmac_compute(alg, key, msg, msglen, sig, siglen);

	mctx = pkey_ctx_init(alg, key->pkey, true);
	if (mctx == NULL)
	{
		ERR_clear_error();
		return JWS_CRYPTO_ERROR;
	}

	st = JWS_CRYPTO_ERROR;
	if (alg->family == JWS_ECDSA)
	{
		len = sizeof(der);
		if (EVP_DigestSign(mctx, NULL, &len, msg, msglen) == 1 &&
			len <= sizeof(der) &&
			EVP_DigestSign(mctx, der, &len, msg, msglen) == 1)
		{
			st = jws_ecdsa_der_to_raw(alg, der, len, sig);
			if (st == JWS_OK)
				*siglen = (size_t) alg->coord_len * 2;
		}
	}
	else
	{
		len = jws_signature_max(alg, key);
		if (EVP_DigestSign(mctx, sig, &len, msg, msglen) == 1)
		{
			*siglen = len;
			st = JWS_OK;
		}
	}
	EVP_MD_CTX_free(mctx);
	if (st != JWS_OK)
		ERR_clear_error();
	return st;
}

void
jws_key_forget(JwsKey *key)
{
	if (key->verify_ctx != NULL)
		EVP_PKEY_CTX_free(key->verify_ctx);
	key->verify_ctx = NULL;
	key->verify_alg = NULL;
}

/* The digest of msg for alg, with one kept context per digest */
static bool
digest_of(const JwsAlg *alg, const unsigned char *msg, size_t msglen,
		  unsigned char *out, unsigned int *outlen)
{
	static EVP_MD_CTX *ctx[N_DIGESTS];
	const EVP_MD *md = get_digest(alg);
	EVP_MD_CTX **c;

	if (md == NULL)
		return false;
	c = &ctx[alg->digest_index];
	if (*c == NULL && (*c = EVP_MD_CTX_new()) == NULL)
		return false;
	return EVP_DigestInit_ex(*c, md, NULL) == 1 &&
		EVP_DigestUpdate(*c, msg, msglen) == 1 &&
		EVP_DigestFinal_ex(*c, out, outlen) == 1;
}

/* A context that verifies digests for alg with pkey: padding as in pkey_ctx_init */
static EVP_PKEY_CTX *
prepare_verify_ctx(const JwsAlg *alg, EVP_PKEY *pkey)
{
	const EVP_MD *md = get_digest(alg);
	EVP_PKEY_CTX *pctx;
	int			ok;

	if (md == NULL || (pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL)
		return NULL;
	ok = EVP_PKEY_verify_init(pctx);
	if (ok == 1)
		ok = set_padding(alg, pctx, md);
	/* the digest is named for every family: its length is then checked */
	if (ok == 1)
		ok = EVP_PKEY_CTX_set_signature_md(pctx, md);
	if (ok != 1)
	{
		EVP_PKEY_CTX_free(pctx);
		return NULL;
	}
	return pctx;
}

/*
 * RSA or ECDSA verification of msg through the context the key keeps for
 * the algorithm (made on first use, or when the algorithm changes).  The
 * signature has had its format checked, and an ECDSA one is DER already.
 */
static JwsStatus
verify_prepared(const JwsAlg *alg, JwsKey *key,
				const unsigned char *msg, size_t msglen,
				const unsigned char *sig, size_t siglen)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	int			rc;

	if (key->verify_alg != alg)
	{
		jws_key_forget(key);
		if ((key->verify_ctx = prepare_verify_ctx(alg, key->pkey)) == NULL)
		{
			ERR_clear_error();
			return JWS_CRYPTO_ERROR;
		}
		key->verify_alg = alg;
	}
	if (!digest_of(alg, msg, msglen, digest, &dlen))
	{
		ERR_clear_error();
		return JWS_CRYPTO_ERROR;
	}
	rc = EVP_PKEY_verify(key->verify_ctx, sig, siglen, digest, dlen);
	if (rc != 1)
	{
		/*
		 * 0 is a clean mismatch; < 0 a malformed signature: both reject.
		 * The context is not trusted after a failure: the next call makes
		 * a new one.
		 */
		ERR_clear_error();
		jws_key_forget(key);
		return JWS_BAD_SIGNATURE;
	}
	return JWS_OK;
}

JwsStatus
jws_verify(const JwsAlg *alg, const JwsKey *key,
		   const unsigned char *msg, size_t msglen,
		   const unsigned char *sig, size_t siglen)
{
	JwsStatus	st;
	EVP_MD_CTX *mctx;
	unsigned char der[JWS_ECDSA_DER_MAX];
	size_t		derlen = 0;
	int			rc;

	st = jws_key_fits(alg, key);
	if (st != JWS_OK)
		return st;

	if (alg->family == JWS_HMAC)
	{
		unsigned char mac[EVP_MAX_MD_SIZE];
		size_t		maclen = 0;

		/* the length is public; the bytes are compared in constant time */
		if (siglen != (size_t) alg->hash_len)
			return JWS_BAD_SIGNATURE_FORMAT;
		st = hmac_compute(alg, key, msg, msglen, mac, &maclen);
		if (st == JWS_OK && CRYPTO_memcmp(mac, sig, siglen) != 0)
			st = JWS_BAD_SIGNATURE;
		OPENSSL_cleanse(mac, sizeof(mac));
		return st;
	}

	if (alg->family == JWS_ECDSA)
	{
		st = jws_ecdsa_raw_to_der(alg, sig, siglen, der, &derlen);
		if (st != JWS_OK)
			return st;
		sig = der;
		siglen = derlen;
	}
	else if (siglen != jws_signature_max(alg, key))
		return JWS_BAD_SIGNATURE_FORMAT;

	if (key->keep_verify_ctx && alg->family != JWS_EDDSA)
		return verify_prepared(alg, (JwsKey *) key, msg, msglen, sig, siglen);

	mctx = pkey_ctx_init(alg, key->pkey, false);
	if (mctx == NULL)
	{
		ERR_clear_error();
		return JWS_CRYPTO_ERROR;
	}
	rc = EVP_DigestVerify(mctx, sig, siglen, msg, msglen);
	EVP_MD_CTX_free(mctx);
	if (rc != 1)
	{
		/* 0 is a clean mismatch; < 0 a malformed signature: both reject */
		ERR_clear_error();
		return JWS_BAD_SIGNATURE;
	}
	return JWS_OK;
}

/* Is the big-endian integer v (len bytes) in [1, order - 1]? */
static bool
scalar_in_range(const unsigned char *v, const unsigned char *order, int len)
{
	bool		nonzero = false;

	for (int i = 0; i < len; i++)
		nonzero |= (v[i] != 0);
	return nonzero && memcmp(v, order, (size_t) len) < 0;
}

JwsStatus
jws_ecdsa_raw_to_der(const JwsAlg *alg,
					 const unsigned char *raw, size_t rawlen,
					 unsigned char *der, size_t *derlen)
{
	int			n = alg->coord_len;
	ECDSA_SIG  *esig;
	BIGNUM	   *r,
			   *s;
	unsigned char *p = der;
	int			len;

	if (alg->family != JWS_ECDSA || rawlen != (size_t) n * 2)
		return JWS_BAD_SIGNATURE_FORMAT;
	/* CVE-2022-21449: r = s = 0 must never verify */
	if (!scalar_in_range(raw, alg->order, n) ||
		!scalar_in_range(raw + n, alg->order, n))
		return JWS_BAD_SIGNATURE_FORMAT;

	esig = ECDSA_SIG_new();
	r = BN_bin2bn(raw, n, NULL);
	s = BN_bin2bn(raw + n, n, NULL);
	if (esig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(esig, r, s))
	{
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(esig);
		ERR_clear_error();
		return JWS_CRYPTO_ERROR;
	}
	/* esig owns r and s now */
	len = i2d_ECDSA_SIG(esig, NULL);
	if (len <= 0 || len > JWS_ECDSA_DER_MAX)
	{
		ECDSA_SIG_free(esig);
		ERR_clear_error();
		return JWS_CRYPTO_ERROR;
	}
	len = i2d_ECDSA_SIG(esig, &p);
	ECDSA_SIG_free(esig);
	if (len <= 0)
	{
		ERR_clear_error();
		return JWS_CRYPTO_ERROR;
	}
	*derlen = (size_t) len;
	return JWS_OK;
}

JwsStatus
jws_ecdsa_der_to_raw(const JwsAlg *alg,
					 const unsigned char *der, size_t derlen,
					 unsigned char *raw)
{
	const unsigned char *p = der;
	ECDSA_SIG  *esig;
	const BIGNUM *r,
			   *s;
	JwsStatus	st = JWS_OK;

	if (alg->family != JWS_ECDSA)
		return JWS_BAD_SIGNATURE_FORMAT;
	esig = d2i_ECDSA_SIG(NULL, &p, (long) derlen);
	if (esig == NULL || p != der + derlen)
	{
		ECDSA_SIG_free(esig);
		ERR_clear_error();
		return JWS_BAD_SIGNATURE_FORMAT;
	}
	ECDSA_SIG_get0(esig, &r, &s);
	if (BN_bn2binpad(r, raw, alg->coord_len) != alg->coord_len ||
		BN_bn2binpad(s, raw + alg->coord_len, alg->coord_len) != alg->coord_len)
	{
		ERR_clear_error();
		st = JWS_BAD_SIGNATURE_FORMAT;
	}
	ECDSA_SIG_free(esig);
	return st;
}

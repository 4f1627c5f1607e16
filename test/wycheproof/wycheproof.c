/*
 * wycheproof.c
 *		Project Wycheproof's primitive test vectors (testvectors_v1) run
 *		through jws_verify() in src/jws.c, without PostgreSQL.
 *
 *	wycheproof [--mutate] VECTOR_DIR
 *
 * Every case is verified twice: with a key whose keep_verify_ctx is off
 * (EVP_DigestVerify), and with one whose keep_verify_ctx is on and that is
 * kept for the whole test group (the prepared-context path, reused across the
 * group's cases, failures included).  The two must agree.
 *
 * Rules (README.md says why):
 *	valid		must verify (JWS_OK)
 *	invalid		must not verify (any other status)
 *	acceptable	listed with the layer's choice; not counted as pass or fail
 *	HMAC with a truncated tag (tagSize < hash length): must not verify,
 *				whatever Wycheproof's result; counted (as "truncated")
 *	key the layer refuses by policy (RSA < 2048 bits or > 16384, e even or
 *	1): must be refused with JWS_KEY_WEAK; counted as refused-by-policy,
 *				neither pass nor fail.  The harness decides the policy itself:
 *				JWS_KEY_WEAK for any other key is a failure.
 *	group whose parameters are not a JWS algorithm (PSS with another salt
 *	length or MGF1 hash, other hashes): not applicable, not run; except
 *	that a valid PSS signature whose only difference from PSxxx is its salt
 *	length is run and must NOT verify (PSxxx fixes the salt length).
 *
 * --mutate flips one bit in the signature of every case expected to verify,
 * still expecting it to verify: every such case must then be counted as a
 * failure (run.sh checks that the failure count equals "mutated N").
 *
 * The last line is "N passed, M failed"; exit 0 only when M is 0 and N > 0.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "jws.h"

typedef enum Kind
{
	K_ECDSA,
	K_RSA_PKCS1,
	K_RSA_PSS,
	K_EDDSA,
	K_HMAC
} Kind;

typedef struct VecFile
{
	const char *name;
	Kind		kind;
	const char *alg;			/* ECDSA and HMAC: the one JWS alg of the file */
} VecFile;

static const VecFile files[] = {
	{"ecdsa_secp256r1_sha256_p1363_test.json", K_ECDSA, "ES256"},
	{"ecdsa_secp384r1_sha384_p1363_test.json", K_ECDSA, "ES384"},
	{"ecdsa_secp521r1_sha512_p1363_test.json", K_ECDSA, "ES512"},

	{"rsa_signature_2048_sha256_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_2048_sha384_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_2048_sha512_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_3072_sha256_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_3072_sha384_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_3072_sha512_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_4096_sha256_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_4096_sha384_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_4096_sha512_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_8192_sha256_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_8192_sha384_test.json", K_RSA_PKCS1, NULL},
	{"rsa_signature_8192_sha512_test.json", K_RSA_PKCS1, NULL},
	/* signatures made for the generation tests: verify them too */
	{"rsa_pkcs1_1024_sig_gen_test.json", K_RSA_PKCS1, NULL},
	{"rsa_pkcs1_1536_sig_gen_test.json", K_RSA_PKCS1, NULL},
	{"rsa_pkcs1_2048_sig_gen_test.json", K_RSA_PKCS1, NULL},
	{"rsa_pkcs1_3072_sig_gen_test.json", K_RSA_PKCS1, NULL},
	{"rsa_pkcs1_4096_sig_gen_test.json", K_RSA_PKCS1, NULL},

	{"rsa_pss_2048_sha256_mgf1_32_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_2048_sha256_mgf1_32_params_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_3072_sha256_mgf1_32_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_3072_sha256_mgf1_32_params_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_4096_sha256_mgf1_32_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_2048_sha384_mgf1_48_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_4096_sha384_mgf1_48_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_4096_sha512_mgf1_64_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_4096_sha512_mgf1_64_params_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_misc_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_misc_params_test.json", K_RSA_PSS, NULL},
	/* other parameter sets: not applicable, salt-length ones cross-checked */
	{"rsa_pss_2048_sha256_mgf1_0_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_2048_sha256_mgf1_0_params_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_4096_sha512_mgf1_32_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_4096_sha512_mgf1_32_params_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_2048_sha256_mgf1sha1_20_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_2048_sha512_mgf1sha256_32_params_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_2048_sha1_mgf1_20_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_2048_sha512_256_mgf1_32_test.json", K_RSA_PSS, NULL},
	{"rsa_pss_2048_shake256_test.json", K_RSA_PSS, NULL},

	{"ed25519_test.json", K_EDDSA, "EdDSA"},
	{"ed448_test.json", K_EDDSA, "EdDSA"},

	{"hmac_sha256_test.json", K_HMAC, "HS256"},
	{"hmac_sha384_test.json", K_HMAC, "HS384"},
	{"hmac_sha512_test.json", K_HMAC, "HS512"},
};

#define N_FILES ((int) (sizeof(files) / sizeof(files[0])))

typedef struct Tally
{
	char		label[24];
	long		pass,
				fail,
				valid,
				invalid,
				acc,
				acc_ok,
				trunc,
				refused,
				na,
				salt_checked;
} Tally;

/* count in the file's tally and in the algorithm's */
#define BUMP(c, f) do { (c)->t->f++; if ((c)->at) (c)->at->f++; } while (0)

#define MAX_LABELS 16
static Tally algs[MAX_LABELS];
static int	n_algs;
static Tally total;
static bool mutate;
static long mutated;

static Tally *
alg_tally(const char *label)
{
	for (int i = 0; i < n_algs; i++)
		if (strcmp(algs[i].label, label) == 0)
			return &algs[i];
	if (n_algs == MAX_LABELS)
	{
		fprintf(stderr, "too many labels\n");
		exit(2);
	}
	snprintf(algs[n_algs].label, sizeof(algs[n_algs].label), "%s", label);
	return &algs[n_algs++];
}

static void
tally_add(Tally *to, const Tally *from)
{
	to->pass += from->pass;
	to->fail += from->fail;
	to->valid += from->valid;
	to->invalid += from->invalid;
	to->acc += from->acc;
	to->acc_ok += from->acc_ok;
	to->trunc += from->trunc;
	to->refused += from->refused;
	to->na += from->na;
	to->salt_checked += from->salt_checked;
}

static const char *
status_name(JwsStatus st)
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
	return "?";
}

/* ---- JSON and hex helpers ---- */

static const char *
jstr(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s;
}

/* Hex to bytes; *out is malloc'd (never NULL).  false on bad hex. */
static bool
unhex(const char *hex, unsigned char **out, size_t *outlen)
{
	size_t		n;

	*out = NULL;
	*outlen = 0;
	if (hex == NULL)
		return false;
	n = strlen(hex);
	if (n % 2 != 0)
		return false;
	*out = malloc(n / 2 + 1);
	if (*out == NULL)
		return false;
	for (size_t i = 0; i < n / 2; i++)
	{
		unsigned int v;

		if (!isxdigit((unsigned char) hex[2 * i]) ||
			!isxdigit((unsigned char) hex[2 * i + 1]) ||
			sscanf(hex + 2 * i, "%2x", &v) != 1)
		{
			free(*out);
			*out = NULL;
			return false;
		}
		(*out)[i] = (unsigned char) v;
	}
	*outlen = n / 2;
	return true;
}

static void
flags_str(const json_t *test, char *buf, size_t len)
{
	const json_t *flags = json_object_get(test, "flags");
	size_t		used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < json_array_size(flags) && used + 2 < len; i++)
	{
		int			w = snprintf(buf + used, len - used, "%s%s", i ? "," : "",
								 json_string_value(json_array_get(flags, i)));

		if (w < 0)
			break;
		used += (size_t) w;
	}
}

/* ---- keys ---- */

static EVP_PKEY *
key_from_der_hex(const char *hex)
{
	unsigned char *der;
	size_t		len;
	const unsigned char *p;
	EVP_PKEY   *pkey;

	if (!unhex(hex, &der, &len))
		return NULL;
	p = der;
	pkey = d2i_PUBKEY(NULL, &p, (long) len);
	if (pkey != NULL && p != der + len)
	{
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	free(der);
	return pkey;
}

/* An rsaEncryption key from n and e, as a JWK {"kty":"RSA"} would give. */
static EVP_PKEY *
rsa_from_ne(const char *nhex, const char *ehex)
{
	BIGNUM	   *n = NULL,
			   *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY   *pkey = NULL;

	if (nhex == NULL || ehex == NULL ||
		!BN_hex2bn(&n, nhex) || !BN_hex2bn(&e, ehex))
		goto done;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
		!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
		(params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto done;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
		EVP_PKEY_fromdata_init(ctx) != 1 ||
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
done:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}

/*
 * The layer's documented key policy (jws.h, JWS_RSA_MIN_BITS and
 * JWS_MAX_SIGNATURE; rsa_key_check in jws.c): decided here independently.
 * The layer also refuses ROCA moduli (src/roca.c); no Wycheproof key is one,
 * so that refusal is left out here on purpose: it would show as a failure
 * ("refused outside the documented policy"), i.e. a false positive.
 */
static bool
policy_refuses(const JwsAlg *alg, const JwsKey *key)
{
	BIGNUM	   *e = NULL;
	bool		weak;

	if (alg->family == JWS_HMAC)
		return key->secret_len == 0;
	if (alg->family != JWS_RSA_PKCS1 && alg->family != JWS_RSA_PSS)
		return false;
	if (EVP_PKEY_get_bits(key->pkey) < JWS_RSA_MIN_BITS ||
		EVP_PKEY_get_size(key->pkey) > JWS_MAX_SIGNATURE)
		return true;
	if (!EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_RSA_E, &e))
		return false;
	weak = BN_is_one(e) || !BN_is_odd(e);
	BN_free(e);
	return weak;
}

/* ---- one case ---- */

typedef enum Expect
{
	E_VALID,
	E_INVALID,
	E_ACCEPTABLE,
	E_REJECT_JWS				/* valid for Wycheproof, but not a JWS: reject */
} Expect;

typedef struct Ctx
{
	const char *file;
	Tally	   *t;				/* the file's */
	Tally	   *at;				/* the group's algorithm's, or NULL */
	char	   *acc_list[2];	/* acceptable cases: [0] rejected, [1] verified */
	size_t		acc_len[2];
	long		st_hist[JWS_CRYPTO_ERROR + 1];	/* statuses of rejections */
} Ctx;

static void
fail_case(Ctx *c, const json_t *test, const char *what, JwsStatus a, JwsStatus b)
{
	char		flags[256];

	flags_str(test, flags, sizeof(flags));
	printf("FAIL %s tcId %lld [%s] \"%s\": %s (plain %s, kept-context %s)\n",
		   c->file, (long long) json_integer_value(json_object_get(test, "tcId")),
		   flags, jstr(test, "comment") ? jstr(test, "comment") : "",
		   what, status_name(a), status_name(b));
	BUMP(c, fail);
}

static void
run_case(Ctx *c, const JwsAlg *alg, JwsKey *plain, JwsKey *kept,
		 const json_t *test, Expect expect, bool refuse)
{
	unsigned char *msg = NULL,
			   *sig = NULL;
	size_t		msglen,
				siglen;
	JwsStatus	a,
				b;
	bool		ok;

	if (!unhex(jstr(test, "msg"), &msg, &msglen) ||
		!unhex(jstr(test, alg->family == JWS_HMAC ? "tag" : "sig"), &sig, &siglen))
	{
		fail_case(c, test, "harness cannot decode msg/sig", JWS_CRYPTO_ERROR,
				  JWS_CRYPTO_ERROR);
		goto done;
	}
	if (mutate && expect == E_VALID && !refuse && siglen > 0)
	{
		sig[siglen / 2] ^= 0x01;
		mutated++;
	}

	a = jws_verify(alg, plain, msg, msglen, sig, siglen);
	b = jws_verify(alg, kept, msg, msglen, sig, siglen);

	if ((a == JWS_OK) != (b == JWS_OK))
	{
		fail_case(c, test, "the two verify paths disagree", a, b);
		goto done;
	}
	ok = (a == JWS_OK);

	if (refuse)
	{
		if (a == JWS_KEY_WEAK && b == JWS_KEY_WEAK)
			BUMP(c, refused);
		else
			fail_case(c, test, "key below policy not refused as JWS_KEY_WEAK", a, b);
		goto done;
	}
	if (a == JWS_KEY_WEAK || b == JWS_KEY_WEAK ||
		a == JWS_KEY_TYPE_MISMATCH || b == JWS_KEY_TYPE_MISMATCH)
	{
		/* the harness picked a fitting key the policy allows */
		fail_case(c, test, "key refused outside the documented policy", a, b);
		goto done;
	}
	if (!ok && a > JWS_OK && a <= JWS_CRYPTO_ERROR)
		c->st_hist[a]++;

	switch (expect)
	{
		case E_VALID:
			BUMP(c, valid);
			if (ok)
				BUMP(c, pass);
			else
				fail_case(c, test, "valid case did not verify", a, b);
			break;
		case E_INVALID:
			BUMP(c, invalid);
			if (!ok)
				BUMP(c, pass);
			else
				fail_case(c, test, "invalid case verified", a, b);
			break;
		case E_REJECT_JWS:
			BUMP(c, trunc);
			if (!ok)
				BUMP(c, pass);
			else
				fail_case(c, test, "truncated HMAC tag verified", a, b);
			break;
		case E_ACCEPTABLE:
			{
				char		flags[200];
				char		item[256];
				size_t		il;

				BUMP(c, acc);
				if (ok)
					BUMP(c, acc_ok);
				flags_str(test, flags, sizeof(flags));
				il = (size_t) snprintf(item, sizeof(item), " %lld[%s]",
									   (long long) json_integer_value(json_object_get(test, "tcId")),
									   flags);
				c->acc_list[ok] = realloc(c->acc_list[ok], c->acc_len[ok] + il + 1);
				if (c->acc_list[ok] == NULL)
					exit(2);
				memcpy(c->acc_list[ok] + c->acc_len[ok], item, il + 1);
				c->acc_len[ok] += il;
			}
			break;
	}
done:
	free(msg);
	free(sig);
}

static Expect
expect_of(const json_t *test)
{
	const char *r = jstr(test, "result");

	if (r && strcmp(r, "valid") == 0)
		return E_VALID;
	if (r && strcmp(r, "acceptable") == 0)
		return E_ACCEPTABLE;
	return E_INVALID;
}

/* "SHA-256" to 256, else 0 */
static int
sha_bits(const char *sha)
{
	if (sha == NULL)
		return 0;
	if (strcmp(sha, "SHA-256") == 0)
		return 256;
	if (strcmp(sha, "SHA-384") == 0)
		return 384;
	if (strcmp(sha, "SHA-512") == 0)
		return 512;
	return 0;
}

static const JwsAlg *
alg_named(const char *name)
{
	const JwsAlg *alg = jws_alg_find(name, strlen(name));

	if (alg == NULL)
	{
		printf("FAIL harness: jws_alg_find(\"%s\") is NULL\n", name);
		exit(2);
	}
	return alg;
}

/* ---- one group ---- */

static void
run_group(Ctx *c, const VecFile *vf, const json_t *group)
{
	const json_t *tests = json_object_get(group, "tests");
	const char *sha = jstr(group, "sha");
	const JwsAlg *alg = NULL;
	EVP_PKEY   *pkey = NULL;
	bool		salt_check = false;
	char		name[8];
	size_t		i;

	switch (vf->kind)
	{
		case K_ECDSA:
			alg = alg_named(vf->alg);
			if (sha_bits(sha) != alg->hash_len * 8)
				alg = NULL;
			break;
		case K_RSA_PKCS1:
			if (sha_bits(sha))
			{
				snprintf(name, sizeof(name), "RS%d", sha_bits(sha));
				alg = alg_named(name);
			}
			break;
		case K_RSA_PSS:
			if (sha_bits(sha) && jstr(group, "mgf") && jstr(group, "mgfSha") &&
				strcmp(jstr(group, "mgf"), "MGF1") == 0 &&
				strcmp(jstr(group, "mgfSha"), sha) == 0)
			{
				snprintf(name, sizeof(name), "PS%d", sha_bits(sha));
				alg = alg_named(name);
				if (json_integer_value(json_object_get(group, "sLen")) != alg->hash_len)
					salt_check = true;
			}
			break;
		case K_EDDSA:
		case K_HMAC:
			alg = alg_named(vf->alg);
			break;
	}

	c->at = NULL;
	if (alg == NULL)
	{
		c->t->na += (long) json_array_size(tests);
		return;
	}
	if (vf->kind == K_EDDSA)
		c->at = alg_tally(strstr(vf->name, "448") ? "EdDSA (Ed448)" : "EdDSA (Ed25519)");
	else
		c->at = alg_tally(alg->name);

	if (vf->kind != K_HMAC)
	{
		const json_t *pk = json_object_get(group, "publicKey");
		const char *type = jstr(group, "type");

		if (type && strcmp(type, "RsassaPssWithParametersVerify") == 0)
			/* the SPKI is id-RSASSA-PSS; JWS keys are plain RSA (a JWK) */
			pkey = rsa_from_ne(jstr(pk, "modulus"), jstr(pk, "publicExponent"));
		else if (jstr(group, "publicKeyDer"))
			pkey = key_from_der_hex(jstr(group, "publicKeyDer"));
		else
			pkey = key_from_der_hex(jstr(group, "keyDer"));
		if (pkey == NULL)
		{
			ERR_clear_error();
			for (i = 0; i < json_array_size(tests); i++)
				fail_case(c, json_array_get(tests, i), "harness cannot load the key",
						  JWS_CRYPTO_ERROR, JWS_CRYPTO_ERROR);
			return;
		}
	}

	{
		JwsKey		plain = {0};
		JwsKey		kept = {0};
		bool		refuse = false;

		plain.pkey = kept.pkey = pkey;
		kept.keep_verify_ctx = true;
		if (pkey != NULL)
			refuse = policy_refuses(alg, &plain);

		for (i = 0; i < json_array_size(tests); i++)
		{
			const json_t *test = json_array_get(tests, i);
			Expect		e = expect_of(test);
			unsigned char *secret = NULL;
			size_t		secret_len = 0;

			if (salt_check)
			{
				/* a PSxxx verifier fixes the salt length: must reject */
				if (e == E_VALID)
				{
					JwsStatus	a = JWS_OK,
								b = JWS_OK;
					unsigned char *msg = NULL,
							   *sig = NULL;
					size_t		ml,
								sl;

					if (unhex(jstr(test, "msg"), &msg, &ml) &&
						unhex(jstr(test, "sig"), &sig, &sl))
					{
						a = jws_verify(alg, &plain, msg, ml, sig, sl);
						b = jws_verify(alg, &kept, msg, ml, sig, sl);
					}
					if (a == JWS_OK || b == JWS_OK)
						fail_case(c, test, "PSS signature with another salt length verified",
								  a, b);
					else
						BUMP(c, salt_checked);
					free(msg);
					free(sig);
				}
				c->t->na++;
				continue;
			}

			if (vf->kind == K_HMAC)
			{
				if (!unhex(jstr(test, "key"), &secret, &secret_len))
				{
					fail_case(c, test, "harness cannot decode key", JWS_CRYPTO_ERROR,
							  JWS_CRYPTO_ERROR);
					continue;
				}
				plain.secret = kept.secret = secret;
				plain.secret_len = kept.secret_len = secret_len;
				refuse = policy_refuses(alg, &plain);
				if (json_integer_value(json_object_get(group, "tagSize")) != alg->hash_len * 8)
					e = E_REJECT_JWS;
			}
			run_case(c, alg, &plain, &kept, test, e, refuse);
			free(secret);
			plain.secret = kept.secret = NULL;
		}
		jws_key_forget(&kept);
	}
	EVP_PKEY_free(pkey);
}

/* ---- one file ---- */

static void
run_file(const char *dir, const VecFile *vf)
{
	char		path[4096];
	json_error_t err;
	json_t	   *root;
	const json_t *groups;
	Ctx			c = {0};
	Tally		t = {0};
	long		n_tests = 0;

	c.file = vf->name;
	c.t = &t;
	snprintf(path, sizeof(path), "%s/%s", dir, vf->name);
	root = json_load_file(path, 0, &err);
	if (root == NULL)
	{
		printf("FAIL %s: cannot read: %s (line %d)\n", vf->name, err.text, err.line);
		total.fail++;
		return;
	}
	groups = json_object_get(root, "testGroups");
	if (json_array_size(groups) == 0)
	{
		printf("FAIL %s: no testGroups\n", vf->name);
		total.fail++;
		json_decref(root);
		return;
	}
	for (size_t g = 0; g < json_array_size(groups); g++)
	{
		n_tests += (long) json_array_size(json_object_get(json_array_get(groups, g), "tests"));
		run_group(&c, vf, json_array_get(groups, g));
	}

	printf("%-48s valid %ld, invalid %ld", vf->name, t.valid, t.invalid);
	if (t.trunc)
		printf(", truncated-tag %ld (must reject)", t.trunc);
	printf(", acceptable %ld", t.acc);
	if (t.acc)
		printf(" (verified %ld:%s; rejected %ld:%s)",
			   t.acc_ok, c.acc_list[1] ? c.acc_list[1] : " none",
			   t.acc - t.acc_ok, c.acc_list[0] ? c.acc_list[0] : " none");
	if (t.refused)
		printf(", refused-by-policy %ld", t.refused);
	if (t.na)
		printf(", n/a %ld", t.na);
	if (t.salt_checked)
		printf(" (of which %ld valid other-salt-length signatures rejected)", t.salt_checked);
	for (int s = 1, first = 1; s <= JWS_CRYPTO_ERROR; s++)
		if (c.st_hist[s])
		{
			printf("%s %s=%ld", first ? "; rejected as" : "",
				   status_name((JwsStatus) s) + 4, c.st_hist[s]);
			first = 0;
		}
	printf("; %ld passed, %ld failed\n", t.pass, t.fail);

	/* the file read whole: its own count of cases */
	if (json_integer_value(json_object_get(root, "numberOfTests")) != n_tests)
	{
		printf("FAIL %s: numberOfTests %lld, but %ld cases read\n", vf->name,
			   (long long) json_integer_value(json_object_get(root, "numberOfTests")),
			   n_tests);
		t.fail++;
	}

	tally_add(&total, &t);
	free(c.acc_list[0]);
	free(c.acc_list[1]);
	json_decref(root);
}

int
main(int argc, char **argv)
{
	const char *dir = NULL;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--mutate") == 0)
			mutate = true;
		else
			dir = argv[i];
	}
	if (dir == NULL)
	{
		fprintf(stderr, "usage: %s [--mutate] TESTVECTORS_V1_DIR\n", argv[0]);
		printf("0 passed, 1 failed\n");
		return 2;
	}

	for (int i = 0; i < N_FILES; i++)
		run_file(dir, &files[i]);

	printf("\nper algorithm:\n");
	for (int i = 0; i < n_algs; i++)
	{
		const Tally *t = &algs[i];

		printf("  %-16s %5ld passed, %ld failed  (valid %ld, invalid %ld",
			   t->label, t->pass, t->fail, t->valid, t->invalid);
		if (t->trunc)
			printf(", truncated %ld", t->trunc);
		printf(", acceptable %ld of which verified %ld", t->acc, t->acc_ok);
		if (t->refused)
			printf(", refused-by-policy %ld", t->refused);
		if (t->salt_checked)
			printf(", other-salt-length rejected %ld", t->salt_checked);
		printf(")\n");
	}
	if (total.refused)
		printf("refused-by-policy: %ld cases whose key the layer refuses by its "
			   "documented policy (RSA below %d bits, jws.h JWS_RSA_MIN_BITS), "
			   "as JWS_KEY_WEAK: not counted as passes or failures\n",
			   total.refused, JWS_RSA_MIN_BITS);
	printf("acceptable: %ld (verified %ld), not counted; not applicable: %ld, not counted\n",
		   total.acc, total.acc_ok, total.na);
	if (mutate)
		printf("mutated %ld\n", mutated);
	printf("%ld passed, %ld failed\n", total.pass, total.fail);
	return (total.fail == 0 && total.pass > 0) ? 0 : 1;
}

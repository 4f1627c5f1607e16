/*
 * token.c
 *		Verify and sign JWS compact tokens (RFC 7515 §7.1, RFC 7519 §7).
 *
 * Verification order, and so which error wins when several apply:
 *	 1. shape: three base64url segments, bounded length          JW001
 *	 2. header: strict JSON object, "alg", no "crit", no b64=false JW001
 *	 3. algorithm: never "none", in the allow-list, fits the key   JW003
 *	 4. key: found by "kid" in a JWKS, strong enough                JW009
 *	 5. signature                                                  JW002
 *	 6. payload: strict JSON object (parsed only once signed)      JW001
 *	 7. claims: types, required, exp, nbf, iat, iss, aud   JW001, JW008,
 *														JW004, JW005, JW007, JW006
 */
#include "postgres.h"

#include "common/int.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "base64url.h"
#include "compat.h"
#include "errcodes.h"
#include "jsonutil.h"
#include "token.h"
#include "verifycache.h"

/* NumericDate bounds: 1970 to the end of year 9999, in seconds */
#define NUMERIC_DATE_MAX	INT64CONST(253402300799)
#define UNIX_TO_PG_USEC \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC)

#define MAX_CANDIDATES	JWT_MAX_CANDIDATES
#define fail jwt_fail

bool
jwt_fail(JwtFailure *f, int code, const char *message, const char *detail)
{
	f->sqlerrcode = code;
	f->message = message;
	f->detail = detail;
	return false;
}

/* ----------------------------------------------------------------
 * Decoding
 * ----------------------------------------------------------------
 */

bool
jwt_split(const char *token, size_t len, JwtParts *parts, JwtFailure *f)
{
	const char *dot1;
	const char *dot2;
	const char *end = token + len;

	if (len > JWT_MAX_TOKEN_LEN)
		return fail(f, ERRCODE_JWT_DECODE, "token is too long",
					"Tokens are limited to 1 MB.");

	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', end - dot1 - 1) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', end - dot2 - 1) != NULL)
		return fail(f, ERRCODE_JWT_DECODE, "malformed token",
					"A token must have exactly three segments separated by dots.");

	parts->token = token;
	parts->header_len = dot1 - token;
	parts->payload_off = dot1 + 1 - token;
	parts->payload_len = dot2 - dot1 - 1;
	parts->sig_off = dot2 + 1 - token;
	parts->sig_len = end - dot2 - 1;

	if (parts->header_len == 0 || parts->payload_len == 0 ||
		!b64url_is_alphabet(token, parts->header_len) ||
		!b64url_is_alphabet(token + parts->payload_off, parts->payload_len) ||
		!b64url_is_alphabet(token + parts->sig_off, parts->sig_len))
		return fail(f, ERRCODE_JWT_DECODE, "malformed token",
					"Each segment must be non-empty base64url, without padding or whitespace.");
	return true;
}

/*
 * base64url-decode one segment and parse it as a strict JSON object, into a
 * tree that points into the decoded bytes (which stay allocated with it).
 */
static bool
decode_json_tree(const char *seg, size_t len, const char *bad_b64,
				 const char *bad_json, JsonbValue *root, JsonFastInts *ints,
				 JwtFailure *f)
{
	unsigned char *buf = palloc(B64URL_DECODED_MAX(len) + 1);
	size_t		buflen;
	JsonStrictError jerr;

	if (!b64url_decode(seg, len, buf, &buflen))
	{
		pfree(buf);
		return fail(f, ERRCODE_JWT_DECODE, bad_b64,
					"The segment is not canonical base64url.");
	}
	if (!json_parse_tree_strict((const char *) buf, buflen, root, ints, &jerr))
		return fail(f, ERRCODE_JWT_DECODE, bad_json, json_strict_error_text(jerr));
	return true;
}

/* The same, as a jsonb */
static Jsonb *
decode_json_segment(const char *seg, size_t len, const char *bad_b64,
					const char *bad_json, JwtFailure *f)
{
	JsonbValue	root;

	if (!decode_json_tree(seg, len, bad_b64, bad_json, &root, NULL, f))
		return NULL;
	return json_tree_to_jsonb(&root);
}

Jsonb *
jwt_decode_header(const JwtParts *parts, JwtFailure *f)
{
	return decode_json_segment(parts->token, parts->header_len,
							   "invalid token header encoding",
							   "invalid token header", f);
}

Jsonb *
jwt_decode_payload(const JwtParts *parts, JwtFailure *f)
{
	return decode_json_segment(parts->token + parts->payload_off,
							   parts->payload_len,
							   "invalid token payload encoding",
							   "invalid token payload", f);
}

bool
jwt_decode_claims(const JwtParts *parts, JwtClaims *claims, JwtFailure *f)
{
	claims->jsonb = NULL;
	claims->decoded = decode_json_tree(parts->token + parts->payload_off,
									   parts->payload_len,
									   "invalid token payload encoding",
									   "invalid token payload", &claims->tree,
									   &claims->ints, f);
	return claims->decoded;
}

JsonbValue *
jwt_claim_value(const JwtClaims *claims, const char *name)
{
	Assert(claims->decoded);
	return json_tree_member(&claims->tree, name, strlen(name));
}

Jsonb *
jwt_claims_jsonb(JwtClaims *claims)
{
	Assert(claims->decoded);
	if (claims->jsonb == NULL)
		claims->jsonb = json_tree_to_jsonb(&claims->tree);
	return claims->jsonb;
}

static bool
string_is(JsonbValue *v, const char *s, int len)
{
	return v != NULL && v->type == jbvString && v->val.string.len == len &&
		memcmp(v->val.string.val, s, len) == 0;
}

/* The header parameters the checks read, in one pass over the header */
enum
{
	H_ALG, H_CRIT, H_B64, H_KID, H_TYP, N_HEADER_NAMES
};
static const JsonName header_names[N_HEADER_NAMES] = {
	JSON_NAME("alg"), JSON_NAME("crit"), JSON_NAME("b64"), JSON_NAME("kid"), JSON_NAME("typ")
};

/* Header checks: "alg" present and acceptable, no extensions. */
static bool
check_header(JsonbValue *header, const JwsAlg **alg, JsonbValue **kid,
			 JsonbValue **typ, JwtFailure *f)
{
	JsonbValue *hv[N_HEADER_NAMES];
	JsonbValue *algv;
	JsonbValue *v;

	json_tree_members(header, header_names, N_HEADER_NAMES, hv);
	algv = hv[H_ALG];
	*typ = hv[H_TYP];

	if (algv == NULL || algv->type != jbvString)
		return fail(f, ERRCODE_JWT_DECODE, "invalid token header",
					"The header has no \"alg\" string.");
	if (algv->val.string.len == 4 &&
		pg_strncasecmp(algv->val.string.val, "none", 4) == 0)
		return fail(f, ERRCODE_JWT_ALGORITHM,
					"unsecured tokens (algorithm \"none\") are never accepted", NULL);

	/* RFC 7515 §4.1.11: we implement no extension a "crit" could name */
	if (hv[H_CRIT] != NULL)
		return fail(f, ERRCODE_JWT_DECODE, "unsupported critical header extension",
					"The header has a \"crit\" member; no JWS extensions are supported.");
	/* RFC 7797: only the default b64 = true */
	v = hv[H_B64];
	if (v != NULL && !(v->type == jbvBool && v->val.boolean))
		return fail(f, ERRCODE_JWT_DECODE, "unsupported header parameter \"b64\"",
					"Unencoded payloads (RFC 7797) are not supported.");

	*kid = hv[H_KID];
	if (*kid != NULL && (*kid)->type != jbvString)
		return fail(f, ERRCODE_JWT_DECODE, "invalid token header",
					"The \"kid\" header parameter is not a string.");

	*alg = jws_alg_find(algv->val.string.val, algv->val.string.len);
	if (*alg == NULL)
		return fail(f, ERRCODE_JWT_ALGORITHM, "unrecognized algorithm in token header",
					NULL);
	return true;
}

/*
 * A refresh token is never accepted where an access token is expected, nor
 * the other way round.  "typ" is compared as RFC 7515 §4.1.9 says: without
 * regard to case, with or without the "application/" prefix.
 */
static bool
check_token_type(JsonbValue *typ, JwtTokenType want, JwtFailure *f)
{
	bool		refresh = false;

	if (want == JWT_TOKEN_ANY)
		return true;
	if (typ != NULL && typ->type == jbvString)
	{
		const char *s = typ->val.string.val;
		int			len = typ->val.string.len;

		if (len > 12 && pg_strncasecmp(s, "application/", 12) == 0)
		{
			s += 12;
			len -= 12;
		}
		refresh = len == strlen(JWT_REFRESH_TYP) &&
			pg_strncasecmp(s, JWT_REFRESH_TYP, len) == 0;
	}
	if (refresh && want == JWT_TOKEN_ACCESS)
		return fail(f, ERRCODE_JWT_DECODE, "refresh tokens are not accepted here",
					"A refresh token (\"typ\": \"refresh+jwt\") is only accepted by jwt_refresh.");
	if (!refresh && want == JWT_TOKEN_REFRESH)
		return fail(f, ERRCODE_JWT_DECODE, "not a refresh token",
					"jwt_refresh accepts only refresh tokens from jwt_issue_pair or jwt_refresh.");
	return true;
}

/* ----------------------------------------------------------------
 * Claims
 * ----------------------------------------------------------------
 */

static Numeric
const_numeric(int64 v, Numeric *slot)
{
	if (*slot == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		*slot = int64_to_numeric(v);
		MemoryContextSwitchTo(old);
	}
	return *slot;
}

/*
 * A NumericDate (RFC 7519 §2): a JSON number of seconds since 1970, fractions
 * allowed, within [0, 253402300799].  Converted to a PostgreSQL timestamp.
 */
bool
jwt_numeric_date(JsonbValue *v, TimestampTz *ts)
{
	static Numeric zero,
				max,
				million;
	Datum		d;
	int64		usec;

	if (v->type != jbvNumeric || numeric_is_nan(v->val.numeric) ||
		numeric_is_inf(v->val.numeric))
		return false;
	d = NumericGetDatum(v->val.numeric);

	/*
	 * The usual case, whole seconds that fit 32 bits (until 2038): no numeric
	 * arithmetic.  A display scale of 0 means an integer (1e3 is stored as
	 * 1000, scale 0), which then converts exactly; anything else takes the
	 * general path below.
	 */
	if (DatumGetInt32(DirectFunctionCall1(numeric_scale, d)) == 0)
	{
		bool		err = false;
		int32		secs = numeric_int4_opt_error(v->val.numeric, &err);

		if (!err)
		{
			if (secs < 0)
				return false;
			*ts = (int64) secs * USECS_PER_SEC - UNIX_TO_PG_USEC;
			return true;
		}
	}

	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, d,
										  NumericGetDatum(const_numeric(0, &zero)))) < 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, d,
										  NumericGetDatum(const_numeric(NUMERIC_DATE_MAX, &max)))) > 0)
		return false;
	usec = DatumGetInt64(DirectFunctionCall1(numeric_int8,
											 DirectFunctionCall2(numeric_mul, d,
																 NumericGetDatum(const_numeric(USECS_PER_SEC, &million)))));
	*ts = usec - UNIX_TO_PG_USEC;
	return true;
}

static bool
audience_expected(JsonbValue *v, const JwtVerifyParams *p)
{
	for (int i = 0; i < p->naudiences; i++)
		if (string_is(v, p->audiences[i], p->audience_lens[i]))
			return true;
	return false;
}

static bool
check_audience(JsonbValue *aud, const JwtVerifyParams *p, JwtFailure *f)
{
	if (p->naudiences == 0)
	{
		if (aud != NULL)
			return fail(f, ERRCODE_JWT_AUDIENCE, "token has an audience but none is expected",
						"Pass the expected audience, or set jwt.audience.");
		return true;
	}
	if (aud == NULL)
		return fail(f, ERRCODE_JWT_AUDIENCE, "token has no audience", NULL);
	if (aud->type == jbvString)
	{
		if (audience_expected(aud, p))
			return true;
		return fail(f, ERRCODE_JWT_AUDIENCE, "token audience does not match", NULL);
	}
	if (aud->type == jbvArray)
	{
		bool		found = false;
		int			n = aud->val.array.nElems;

		for (int i = 0; i < n; i++)
		{
			JsonbValue *v = &aud->val.array.elems[i];

			if (v->type != jbvString)
				return fail(f, ERRCODE_JWT_AUDIENCE, "invalid audience claim",
							"Every element of \"aud\" must be a string.");
			found |= audience_expected(v, p);
		}
		if (n == 0)
			return fail(f, ERRCODE_JWT_AUDIENCE, "invalid audience claim",
						"The \"aud\" array is empty.");
		if (found)
			return true;
		return fail(f, ERRCODE_JWT_AUDIENCE, "token audience does not match", NULL);
	}
	return fail(f, ERRCODE_JWT_AUDIENCE, "invalid audience claim",
				"The \"aud\" claim must be a string or an array of strings.");
}

/* The time claims, in the order they are checked */
#define N_DATE_CLAIMS 3
static const char *const date_claims[N_DATE_CLAIMS] = {"exp", "nbf", "iat"};
#define DATE_CLAIM_DETAIL \
	"Time claims must be numbers of seconds since 1970, from 0 to 253402300799."

/*
 * Read exp, nbf and iat (values[], NULL where absent).  Returns the index of
 * the first one that is not a NumericDate, or -1 when all present ones are.
 * ints has the values the JSON parser read as integers.
 */
static int
read_date_claims(JsonbValue **values, const JsonFastInts *ints,
				 TimestampTz *dates, bool *present)
{
	for (int i = 0; i < N_DATE_CLAIMS; i++)
	{
		int64		secs;

		present[i] = values[i] != NULL;
		if (values[i] == NULL)
			continue;
		if (json_fast_int(ints, values[i], &secs))
		{
			if (secs < 0 || secs > NUMERIC_DATE_MAX)
				return i;
			dates[i] = secs * USECS_PER_SEC - UNIX_TO_PG_USEC;
		}
		else if (!jwt_numeric_date(values[i], &dates[i]))
			return i;
	}
	return -1;
}

/* a time plus a leeway, kept at the end of the range near the maximum */
static inline TimestampTz
add_saturating(TimestampTz t, int64 leeway)
{
	TimestampTz r;

	if (pg_add_s64_overflow(t, leeway, &r))
		return PG_INT64_MAX;
	return r;
}

static bool
check_claims(const JwtClaims *claims, const JwtVerifyParams *p, JwtFailure *f)
{
	/* exp, nbf, iat (as date_claims), then iss, aud, jti, sub: one pass */
	static const JsonName names[N_DATE_CLAIMS + 4] = {
		JSON_NAME("exp"), JSON_NAME("nbf"), JSON_NAME("iat"), JSON_NAME("iss"), JSON_NAME("aud"),
		JSON_NAME("jti"), JSON_NAME("sub")
	};
	TimestampTz dates[N_DATE_CLAIMS];
	bool		present[N_DATE_CLAIMS];
	JsonbValue *values[N_DATE_CLAIMS + 4];
	JsonbValue *iss = NULL;

	json_tree_members(&claims->tree, names, N_DATE_CLAIMS + 4, values);
	switch (read_date_claims(values, &claims->ints, dates, present))
	{
		case -1:
			break;
		case 0:
			return fail(f, ERRCODE_JWT_DECODE, "invalid \"exp\" claim", DATE_CLAIM_DETAIL);
		case 1:
			return fail(f, ERRCODE_JWT_DECODE, "invalid \"nbf\" claim", DATE_CLAIM_DETAIL);
		default:
			return fail(f, ERRCODE_JWT_DECODE, "invalid \"iat\" claim", DATE_CLAIM_DETAIL);
	}

	/*
	 * jti and sub name what a revocation names: a string (RFC 7519 §4.1.7,
	 * §4.1.2), or a number, which some issuers use and which revocation
	 * compares in its ->> text form.  Anything else could be revoked by no
	 * row, so it is refused (null counts as missing, as for any claim).
	 */
	for (int i = N_DATE_CLAIMS + 2; i < N_DATE_CLAIMS + 4; i++)
	{
		JsonbValue *v = values[i];

		if (v != NULL && v->type != jbvString && v->type != jbvNumeric && v->type != jbvNull)
			return fail(f, ERRCODE_JWT_DECODE,
						i == N_DATE_CLAIMS + 2 ? "invalid \"jti\" claim" : "invalid \"sub\" claim",
						"The \"jti\" and \"sub\" claims must be strings (or numbers).");
	}

	/* a claim that is JSON null counts as missing, as in PyJWT */
	for (int i = 0; i < p->nrequire; i++)
	{
		JsonbValue *v = jwt_claim_value(claims, p->require[i]);

		if (v == NULL || v->type == jbvNull)
			return fail(f, ERRCODE_JWT_MISSING_CLAIM, "token lacks a required claim",
						psprintf("The claim \"%s\" is required.", p->require[i]));
	}

	/* exp == now is expired; nbf == now is valid (RFC 7519 §4.1.4, §4.1.5) */
	if (present[0] && p->now >= add_saturating(dates[0], p->leeway))
		return fail(f, ERRCODE_JWT_EXPIRED, "token has expired", NULL);
	if (present[1] && add_saturating(p->now, p->leeway) < dates[1])
		return fail(f, ERRCODE_JWT_IMMATURE, "token is not yet valid", NULL);
	if (present[2] && dates[2] > add_saturating(p->now, p->leeway))
		return fail(f, ERRCODE_JWT_IMMATURE, "token was issued in the future", NULL);

	if (p->issuer != NULL)
	{
		iss = values[N_DATE_CLAIMS];
		if (iss == NULL)
			return fail(f, ERRCODE_JWT_ISSUER, "token has no issuer", NULL);
		if (!string_is(iss, p->issuer, p->issuer_len))
			return fail(f, ERRCODE_JWT_ISSUER, "token issuer does not match", NULL);
	}

	return check_audience(values[N_DATE_CLAIMS + 1], p, f);
}

/* ----------------------------------------------------------------
 * Verification
 * ----------------------------------------------------------------
 */

bool
jwt_alg_allowed(const JwtVerifyParams *p, const JwsAlg *alg)
{
	if (!p->restrict_algs)
		return true;
	for (int i = 0; i < p->nallowed; i++)
		if (p->allowed[i] == alg)
			return true;
	return false;
}

/* Keys that may verify this token, or a failure saying why there are none */
static int
candidate_keys(JwtKeyArg *arg, const JwsAlg *alg, JsonbValue *kid,
			   JwtKey **out, JwtFailure *f)
{
	int			n;
	bool		kid_seen;

	if (arg == NULL)
	{
		fail(f, ERRCODE_JWT_KEY, "no key to verify the token with",
			 "No key was given.");
		return 0;
	}
	if (arg->kind != JWT_KEYARG_JWKS)
	{
		if (!jwt_key_allows(arg->key, alg))
		{
			fail(f, ERRCODE_JWT_ALGORITHM, "token algorithm does not fit the key",
				 psprintf("The token is signed with %s, which this key cannot verify.",
						  alg->name));
			return 0;
		}
		out[0] = arg->key;
		return 1;
	}

	n = jwt_jwks_select(arg->jwks, alg,
						kid ? kid->val.string.val : NULL,
						kid ? kid->val.string.len : 0,
						false, out, MAX_CANDIDATES, &kid_seen);
	if (n > 0)
		return n;
	if (kid != NULL && !kid_seen)
		fail(f, ERRCODE_JWT_KEY, "no key matches the token's key ID",
			 "The key set has no key with the token's \"kid\".");
	else if (kid != NULL)
		fail(f, ERRCODE_JWT_ALGORITHM, "token algorithm does not fit the key",
			 psprintf("The key with the token's \"kid\" cannot verify %s.", alg->name));
	else
		fail(f, ERRCODE_JWT_KEY, "no key in the key set fits the token",
			 psprintf("The token has no \"kid\" and no key in the set can verify %s.",
					  alg->name));
	return 0;
}

static bool
verify_signature(const JwtParts *parts, const JwsAlg *alg, JwtKey **keys,
				 int nkeys, JwtFailure *f)
{
	unsigned char *sig;
	size_t		siglen;
	bool		saw_bad_signature = false;
	bool		saw_mismatch = false;
	unsigned char token_digest[JWT_VERIFY_DIGEST_LEN];
	unsigned char digests[JWT_MAX_CANDIDATES][JWT_VERIFY_DIGEST_LEN];
	bool		memo[JWT_MAX_CANDIDATES] = {false};

	/* a signature this key verified before verifies again */
	if (jwt_verify_cache_token_digest(alg, parts->token,
									  parts->sig_off + parts->sig_len, token_digest))
	{
		for (int i = 0; i < nkeys && i < JWT_MAX_CANDIDATES; i++)
		{
			memo[i] = jwt_verify_cache_key_digest(keys[i], token_digest, digests[i]);
			if (memo[i] && jwt_verify_cache_hit(digests[i]))
				return true;
		}
	}

	sig = palloc(B64URL_DECODED_MAX(parts->sig_len) + 1);
	if (!b64url_decode(parts->token + parts->sig_off, parts->sig_len, sig, &siglen))
	{
		pfree(sig);
		return fail(f, ERRCODE_JWT_DECODE, "invalid token signature encoding",
					"The segment is not canonical base64url.");
	}

	for (int i = 0; i < nkeys; i++)
	{
		JwsStatus	st = jws_verify(alg, &keys[i]->jws,
									(const unsigned char *) parts->token,
									parts->sig_off - 1, sig, siglen);

		if (st == JWS_OK)
		{
			if (i < JWT_MAX_CANDIDATES && memo[i])
				jwt_verify_cache_add(digests[i]);
			pfree(sig);
			return true;
		}
		if (st == JWS_KEY_TYPE_MISMATCH)
			saw_mismatch = true;
		else if (st != JWS_KEY_WEAK)
			saw_bad_signature = true;
	}
	pfree(sig);

	/* a key that got as far as checking the signature gives the answer */
	if (saw_bad_signature)
		return fail(f, ERRCODE_JWT_SIGNATURE, "token signature does not verify", NULL);
	if (saw_mismatch)
		return fail(f, ERRCODE_JWT_ALGORITHM, "token algorithm does not fit the key",
					psprintf("The token is signed with %s, which this key cannot verify.",
							 alg->name));
	return fail(f, ERRCODE_JWT_KEY, "key is unusable",
				"RSA keys must have at least 2048 bits and an odd public exponent greater than 1; HMAC secrets must not be empty.");
}

bool
jwt_token_open(const char *token, size_t len, const JwtVerifyParams *params,
			   JwtOpened *t, JwtFailure *f)
{
	JsonbValue *typ;

	if (!jwt_split(token, len, &t->parts, f))
		return false;
	if (!decode_json_tree(t->parts.token, t->parts.header_len,
						  "invalid token header encoding", "invalid token header",
						  &t->header, NULL, f))
		return false;
	if (!check_header(&t->header, &t->alg, &t->kid, &typ, f))
		return false;
	if (!jwt_alg_allowed(params, t->alg))
		return fail(f, ERRCODE_JWT_ALGORITHM, "token algorithm is not allowed",
					psprintf("The token is signed with %s, which is not in the list of allowed algorithms.",
							 t->alg->name));
	return check_token_type(typ, params->token_type, f);
}

bool
jwt_token_check(const JwtOpened *t, JwtKey **keys, int nkeys,
				const JwtVerifyParams *params, JwtClaims *claims, JwtFailure *f)
{
	if (!verify_signature(&t->parts, t->alg, keys, nkeys, f))
		return false;
	if (!claims->decoded && !jwt_decode_claims(&t->parts, claims, f))
		return false;
	if (params->signature_only)
		return true;
	return check_claims(claims, params, f);
}

bool
jwt_verify_token(const char *token, size_t len, JwtKeyArg *key,
				 const JwtVerifyParams *params, JwtClaims *claims, JwtFailure *f)
{
	JwtOpened	t;
	JwtKey	   *keys[MAX_CANDIDATES];
	int			nkeys;
	bool		ok;

	if (!jwt_token_open(token, len, params, &t, f))
		return false;
	nkeys = candidate_keys(key, t.alg, t.kid, keys, f);
	if (nkeys == 0)
		return false;
	ok = jwt_token_check(&t, keys, nkeys, params, claims, f);
	if (key != NULL && key->kind == JWT_KEYARG_JWKS)
	{
		for (int i = 0; i < nkeys; i++)
			jwt_key_release(keys[i]);
	}
	return ok;
}

/* ----------------------------------------------------------------
 * Signing
 * ----------------------------------------------------------------
 */

static void
append_b64url(StringInfo buf, const unsigned char *data, size_t len)
{
	size_t		n = B64URL_ENCODED_LEN(len);

	enlargeStringInfo(buf, (int) n);
	b64url_encode(data, len, buf->data + buf->len);
	buf->len += (int) n;
	buf->data[buf->len] = '\0';
}

/*
 * JSON written from jsonb, in the database encoding, as a token part: in
 * UTF-8 (RFC 7519 §7.1), whatever the database encoding.
 */
static void
append_json_b64url(StringInfo buf, StringInfo json)
{
	char	   *utf8 = pg_server_to_any(json->data, json->len, PG_UTF8);

	if (utf8 == json->data)
		append_b64url(buf, (unsigned char *) json->data, json->len);
	else
	{
		append_b64url(buf, (unsigned char *) utf8, strlen(utf8));
		pfree(utf8);
	}
}

/*
 * A time claim being signed, from the text numeric_out wrote for it: a plain
 * integer is read from that text, anything else as a numeric.
 */
static bool
sign_date_ok(JsonbValue *v, const char *text, int len)
{
	int64		secs = 0;
	TimestampTz ts;

	if (v->type != jbvNumeric)
		return false;
	if (len == 0 || len > 12)
		return jwt_numeric_date(v, &ts);
	for (int i = 0; i < len; i++)
	{
		if (text[i] < '0' || text[i] > '9')
			return jwt_numeric_date(v, &ts);
		secs = secs * 10 + (text[i] - '0');
	}
	return secs <= NUMERIC_DATE_MAX;
}

/*
 * The claims as compact JSON (jsonb key order, as jsonb_append_compact),
 * with exp, nbf and iat checked on the way: the first of them, in that
 * order, that is not a NumericDate is an error.
 */
static void
append_claims(StringInfo buf, Jsonb *claims)
{
	JsonbValue	keys_here[16];
	JsonbValue	values_here[16];
	JsonbValue *keys = keys_here;
	JsonbValue *values = values_here;
	int			n;
	bool		bad[N_DATE_CLAIMS] = {false};

	if (!JB_ROOT_IS_OBJECT(claims) || JB_ROOT_IS_SCALAR(claims))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("claims must be a JSON object")));

	n = JsonContainerSize(&claims->root);
	if (n > (int) lengthof(keys_here))
	{
		keys = palloc(sizeof(JsonbValue) * n);
		values = palloc(sizeof(JsonbValue) * n);
	}
	jsonb_object_read(&claims->root, keys, values);

	appendStringInfoCharMacro(buf, '{');
	for (int m = 0; m < n; m++)
	{
		int			start;

		if (m > 0)
			appendStringInfoCharMacro(buf, ',');
		jsonb_value_append_compact(buf, &keys[m]);
		appendStringInfoCharMacro(buf, ':');
		start = buf->len;
		jsonb_value_append_compact(buf, &values[m]);
		if (keys[m].val.string.len != 3)
			continue;
		for (int i = 0; i < N_DATE_CLAIMS; i++)
			if (memcmp(keys[m].val.string.val, date_claims[i], 3) == 0)
				bad[i] = !sign_date_ok(&values[m], buf->data + start, buf->len - start);
	}
	appendStringInfoCharMacro(buf, '}');

	for (int i = 0; i < N_DATE_CLAIMS; i++)
		if (bad[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("invalid \"%s\" claim", date_claims[i]),
					 errdetail(DATE_CLAIM_DETAIL)));
}

/*
 * The header: "alg", "typ" (default "JWT"), "kid" (the header's, else the
 * key's), then the caller's other members in jsonb order.
 */
static void
build_header(StringInfo buf, const JwsAlg *alg, Jsonb *extra, const char *key_kid)
{
	JsonbValue *typ = NULL;
	JsonbValue *kid = NULL;

	if (extra != NULL)
	{
		JsonbValue *v;

		if (!JB_ROOT_IS_OBJECT(extra) || JB_ROOT_IS_SCALAR(extra))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("header must be a JSON object")));
		v = jsonb_member(&extra->root, "alg");
		if (v != NULL && !string_is(v, alg->name, strlen(alg->name)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("header \"alg\" does not match the algorithm argument")));
		if (jsonb_member(&extra->root, "crit") != NULL ||
			jsonb_member(&extra->root, "b64") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("header parameters \"crit\" and \"b64\" are not supported")));
		typ = jsonb_member(&extra->root, "typ");
		kid = jsonb_member(&extra->root, "kid");
		if ((typ != NULL && typ->type != jbvString) ||
			(kid != NULL && kid->type != jbvString))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("header \"typ\" and \"kid\" must be strings")));
	}

	appendStringInfoString(buf, "{\"alg\":\"");
	appendStringInfoString(buf, alg->name);
	appendStringInfoString(buf, "\",\"typ\":");
	if (typ != NULL)
		jsonb_value_append_compact(buf, typ);
	else
		appendStringInfoString(buf, "\"JWT\"");
	if (kid != NULL)
	{
		appendStringInfoString(buf, ",\"kid\":");
		jsonb_value_append_compact(buf, kid);
	}
	else if (key_kid != NULL)
	{
		JsonbValue	k;

		k.type = jbvString;
		k.val.string.val = unconstify(char *, key_kid);
		k.val.string.len = strlen(key_kid);
		appendStringInfoString(buf, ",\"kid\":");
		jsonb_value_append_compact(buf, &k);
	}

	if (extra != NULL)
	{
		JsonbIterator *it = JsonbIteratorInit(&extra->root);
		JsonbIteratorToken tok;
		JsonbValue	k;
		JsonbValue	v;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			if (tok != WJB_KEY)
				continue;
			tok = JsonbIteratorNext(&it, &v, true);
			if (string_is(&k, "alg", 3) || string_is(&k, "typ", 3) ||
				string_is(&k, "kid", 3))
				continue;
			appendStringInfoCharMacro(buf, ',');
			jsonb_value_append_compact(buf, &k);
			appendStringInfoCharMacro(buf, ':');
			jsonb_value_append_compact(buf, &v);
		}
	}
	appendStringInfoCharMacro(buf, '}');
}

/* The key that signs: the argument's, or the first fitting one of a JWKS. */
static JwtKey *
signing_key(JwtKeyArg *arg, const JwsAlg *alg, Jsonb *header)
{
	JwtKey	   *key = NULL;

	if (arg->kind == JWT_KEYARG_JWKS)
	{
		JsonbValue *kid = header ? jsonb_member(&header->root, "kid") : NULL;
		bool		kid_seen;

		if (kid != NULL && kid->type != jbvString)
			kid = NULL;
		if (jwt_jwks_select(arg->jwks, alg,
							kid ? kid->val.string.val : NULL,
							kid ? kid->val.string.len : 0,
							true, &key, 1, &kid_seen) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("no key in the key set can sign with %s", alg->name),
					 errdetail("Signing needs a private key of the algorithm's type.")));
		return key;
	}

	key = arg->key;
	if (!jwt_key_allows(key, alg))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("key cannot sign with algorithm %s", alg->name),
				 errdetail("Each key serves only the algorithms of its own type.")));
	if (!key->has_private)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("key has no private part"),
				 errdetail("Signing needs a private key; a public key can only verify.")));
	return key;
}

text *
jwt_sign_token(Jsonb *claims, JwtKeyArg *arg, const JwsAlg *alg, Jsonb *header)
{
	StringInfoData json;
	StringInfoData payload;
	StringInfoData out;
	JwtKey	   *key;
	unsigned char *sig;
	size_t		siglen = 0;
	JwsStatus	st;
	text	   *result;

	/* the claims first: their errors come before the key's */
	initStringInfo(&payload);
	append_claims(&payload, claims);
	key = signing_key(arg, alg, header);

	/* the token is written after room for a varlena header: no final copy */
	initStringInfo(&out);
	appendStringInfoSpaces(&out, VARHDRSZ);
	initStringInfo(&json);
	build_header(&json, alg, header, key->kid);
	append_json_b64url(&out, &json);
	appendStringInfoCharMacro(&out, '.');
	append_json_b64url(&out, &payload);
	pfree(json.data);
	pfree(payload.data);

	sig = palloc(jws_signature_max(alg, &key->jws) + 1);
	st = jws_sign(alg, &key->jws, (unsigned char *) out.data + VARHDRSZ,
				  out.len - VARHDRSZ, sig, &siglen);
	if (arg->kind == JWT_KEYARG_JWKS)
		jwt_key_release(key);

	switch (st)
	{
		case JWS_OK:
			break;
		case JWS_KEY_WEAK:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("key is too weak to sign with %s", alg->name),
					 errdetail("RSA keys need at least 2048 bits and an odd public exponent greater than 1; HMAC secrets must not be empty.")));
			break;
		case JWS_KEY_TYPE_MISMATCH:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("key cannot sign with algorithm %s", alg->name),
					 errdetail("The key's curve does not match the algorithm.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION), errhidestmt(true),
					 errmsg("could not sign token with %s", alg->name)));
			break;
	}

	appendStringInfoCharMacro(&out, '.');
	append_b64url(&out, sig, siglen);
	pfree(sig);

	result = (text *) out.data;
	SET_VARSIZE(result, out.len);
	return result;
}

/*
 * login.c
 *		The OAuth validator (PostgreSQL 18 and later): a connection logs in
 *		with a token of the issuer its pg_hba.conf line names.
 *
 * oauth_validator_libraries = 'jwt' makes the server call
 * _PG_oauth_validator_module_init, then validate_token for each login on
 * an oauth line.  The token must be a JWS of the line's issuer, verified
 * with that issuer's keys (our own when the issuer is jwt.issuer) under
 * its rules (algorithms, audiences, leeway, required claims), not expired,
 * not a refresh token, with every scope of the line in its "scope" or
 * "scp", and with no revoked jti or subject.  Keys, rules and revocations
 * come from the snapshot that loginsnap.c's worker keeps: a validator runs
 * before its backend is connected to a database, and must not wait on the
 * network; a kid the snapshot lacks asks the JWKS worker for a refresh and
 * fails this login.
 *
 * The connection's authn_id is the claim jwt.login_claim names, which
 * pg_ident.conf maps to roles.  With delegate_ident_mapping=1 the token
 * itself must name the role (jwt.role_claim), which may not be a superuser
 * nor bypass row-level security.  The session then has the token's claims
 * as after jwt_authenticate(token, 'session').
 *
 * Every refusal is logged with its reason and the line's issuer, never
 * with the token; the client gets PostgreSQL's usual OAuth failure.
 */
#include "postgres.h"

#if PG_VERSION_NUM >= 180000

#include <unistd.h>

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "lib/stringinfo.h"
#include "libpq/hba.h"
#include "libpq/libpq-be.h"
#include "libpq/oauth.h"
#include "miscadmin.h"
#include "nodes/miscnodes.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "jwksworker.h"
#include "keys.h"
#include "login.h"
#include "revocation.h"
#include "session.h"
#include "token.h"

/* the snapshot is refused when the worker has not looked for this long */
#define LOGIN_STALE_MS		5000
/* how long a login waits for a snapshot being replaced */
#define LOGIN_RETRY_MS		1000
#define LOGIN_RETRY_STEP_MS	20
/* the largest snapshot read */
#define LOGIN_MAX_SNAPSHOT	(64 * 1024 * 1024)

/* most keys a token without a kid is tried against (as the key store) */
#define MAX_KIDLESS_CANDIDATES	4

static bool validate_token(const ValidatorModuleState *state, const char *token,
						   const char *role, ValidatorModuleResult *result);

static const OAuthValidatorCallbacks callbacks = {
	PG_OAUTH_VALIDATOR_MAGIC,
	.validate_cb = validate_token,
};

const OAuthValidatorCallbacks *
_PG_oauth_validator_module_init(void)
{
	return &callbacks;
}

/* a refusal: logged, never with the token */
typedef struct Refusal
{
	const char *message;
	const char *detail;
} Refusal;

static bool
refuse(Refusal *r, const char *message, const char *detail)
{
	r->message = message;
	r->detail = detail;
	return false;
}

/* ----------------------------------------------------------------
 * The snapshot
 * ----------------------------------------------------------------
 */

/* the file, if it is the one shared memory says is current */
static char *
read_snapshot(uint64 nonce, bool *mismatch)
{
	FILE	   *f;
	long		size;
	char	   *buf;
	char	   *nl;
	unsigned long long file_nonce;
	char		tag[64];

	*mismatch = false;
	f = AllocateFile(JWT_LOGIN_SNAPSHOT_FILE, PG_BINARY_R);
	if (f == NULL)
	{
		*mismatch = true;		/* being replaced, or gone */
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
		size > LOGIN_MAX_SNAPSHOT || fseek(f, 0, SEEK_SET) != 0)
	{
		FreeFile(f);
		return NULL;
	}
	buf = palloc(size + 1);
	if (fread(buf, 1, size, f) != (size_t) size)
	{
		FreeFile(f);
		return NULL;
	}
	FreeFile(f);
	buf[size] = '\0';

	nl = memchr(buf, '\n', size);
	snprintf(tag, sizeof(tag), "%s %%16llx", JWT_LOGIN_SNAPSHOT_TAG);
	if (nl == NULL || sscanf(buf, tag, &file_nonce) != 1)
		return NULL;
	if ((uint64) file_nonce != nonce)
	{
		*mismatch = true;
		return NULL;
	}
	return nl + 1;
}

/* the current snapshot as jsonb, or NULL with a refusal */
static Jsonb *
load_snapshot(Refusal *r)
{
	int			waited = 0;

	for (;;)
	{
		JwtLoginState st;
		char	   *doc;
		bool		mismatch;

		jwt_login_state(&st);
		if (!st.attached || st.nonce == 0)
		{
			refuse(r, psprintf("no key snapshot: %s", st.reason), NULL);
			return NULL;
		}
		if (st.checked_ms > LOGIN_STALE_MS)
		{
			refuse(r, "the key snapshot is not current",
				   psprintf("The jwt login worker has not looked for changes for %lld ms.",
							(long long) st.checked_ms));
			return NULL;
		}
		doc = read_snapshot(st.nonce, &mismatch);
		if (doc != NULL)
		{
			ErrorSaveContext escontext = {0};
			Datum		d;

			/*
			 * A soft error: jsonb_in's message would quote the document,
			 * which may hold HMAC secrets, to a client not yet logged in.
			 */
			escontext.type = T_ErrorSaveContext;
			if (DirectInputFunctionCallSafe(jsonb_in, doc, InvalidOid, -1,
											(Node *) &escontext, &d))
				return DatumGetJsonbP(d);
			refuse(r, "the key snapshot cannot be read",
				   psprintf("File \"%s\" is not valid JSON.", JWT_LOGIN_SNAPSHOT_FILE));
			return NULL;
		}
		if (!mismatch || waited >= LOGIN_RETRY_MS)
		{
			refuse(r, "the key snapshot cannot be read",
				   psprintf("File \"%s\" is missing, damaged or not the current one.",
							JWT_LOGIN_SNAPSHOT_FILE));
			return NULL;
		}
		pg_usleep(LOGIN_RETRY_STEP_MS * 1000L);
		waited += LOGIN_RETRY_STEP_MS;
	}
}

/* a member of an object container; false when absent or JSON null */
static bool
member_n(JsonbContainer *c, const char *name, int len, JsonbValue *out)
{
	if (c == NULL || !JsonContainerIsObject(c) ||
		getKeyJsonValueFromContainer(c, name, len, out) == NULL)
		return false;
	return out->type != jbvNull;
}

static bool
member(JsonbContainer *c, const char *name, JsonbValue *out)
{
	return member_n(c, name, strlen(name), out);
}

/* a member that is itself an object or array */
static JsonbContainer *
member_container(JsonbContainer *c, const char *name)
{
	JsonbValue	v;

	if (!member(c, name, &v) || v.type != jbvBinary)
		return NULL;
	return v.val.binary.data;
}

/* the strings of an array member, palloc'd; -1 when the member is absent */
static int
member_strings(JsonbContainer *c, const char *name, char ***out, int **lens)
{
	JsonbContainer *arr = member_container(c, name);
	int			n;
	int			k = 0;

	if (arr == NULL || !JsonContainerIsArray(arr))
		return -1;
	n = JsonContainerSize(arr);
	*out = palloc(sizeof(char *) * Max(n, 1));
	if (lens)
		*lens = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(arr, i);

		if (e == NULL || e->type != jbvString)
			continue;
		(*out)[k] = pnstrdup(e->val.string.val, e->val.string.len);
		if (lens)
			(*lens)[k] = e->val.string.len;
		k++;
	}
	return k;
}

/* an issuer's rules from the snapshot onto the defaults, as the key store */
static void
apply_rules(JwtVerifyParams *p, JsonbContainer *iss)
{
	char	  **names;
	int		   *lens;
	int			n;
	JsonbValue	v;

	if ((n = member_strings(iss, "algorithms", &names, NULL)) >= 0)
	{
		p->restrict_algs = true;
		p->nallowed = 0;
		for (int i = 0; i < n; i++)
		{
			const JwsAlg *alg = jws_alg_find(names[i], strlen(names[i]));

			if (alg != NULL && p->nallowed < (int) lengthof(p->allowed))
				p->allowed[p->nallowed++] = alg;
		}
	}
	if ((n = member_strings(iss, "audiences", &names, &lens)) >= 0)
	{
		p->audiences = (const char **) names;
		p->audience_lens = lens;
		p->naudiences = n;
	}
	if (member(iss, "leeway", &v))
	{
		TimestampTz secs;

		/* seconds as a NumericDate: microseconds past the epoch */
		if (jwt_numeric_date(&v, &secs))
			p->leeway = secs - SetEpochTimestamp();
	}
	if ((n = member_strings(iss, "required_claims", &names, NULL)) > 0)
	{
		p->require = names;
		p->nrequire = n;
	}
}

/* a NumericDate member, or if_null */
static TimestampTz
member_time(JsonbContainer *c, const char *name, TimestampTz if_null)
{
	JsonbValue	v;
	TimestampTz t;

	if (!member(c, name, &v) || !jwt_numeric_date(&v, &t))
		return if_null;
	return t;
}

static bool
same_string(const JsonbValue *v, const char *s, int len)
{
	return v != NULL && v->type == jbvString && v->val.string.len == len &&
		memcmp(v->val.string.val, s, len) == 0;
}

/*
 * The keys the token may verify with, as the key store chooses them; a
 * refusal when there are none.
 */
static int
choose_keys(JsonbContainer *keys, const JwtOpened *t, const JwtVerifyParams *p,
			JwtKey **out, bool *kid_miss, Refusal *r)
{
	int			n = keys ? JsonContainerSize(keys) : 0;
	int			max = t->kid ? JWT_MAX_CANDIDATES : MAX_KIDLESS_CANDIDATES;
	int			nkeys = 0;
	bool		kid_seen = false,
				revoked = false,
				expired = false,
				immature = false,
				other_alg = false;

	*kid_miss = false;
	for (int i = 0; i < n && nkeys < max; i++)
	{
		JsonbValue *k = getIthJsonbValueFromContainer(keys, i);
		JsonbContainer *kc;
		JsonbValue	kid,
					alg;
		const JwsAlg *kalg = NULL;
		JwtKey	   *key;
		JsonbContainer *jwk;

		if (k == NULL || k->type != jbvBinary)
			continue;
		kc = k->val.binary.data;
		if (member(kc, "alg", &alg) && alg.type == jbvString)
			kalg = jws_alg_find(alg.val.string.val, alg.val.string.len);
		if (t->kid != NULL)
		{
			if (!member(kc, "kid", &kid) ||
				!same_string(&kid, t->kid->val.string.val, t->kid->val.string.len))
				continue;
			kid_seen = true;
		}
		else if (kalg != t->alg)
			continue;

		/* a revoked key is there by its kid alone */
		if (member(kc, "revoked", &kid))
		{
			revoked = true;
			continue;
		}

		if (member_time(kc, "exp", DT_NOEND) <= p->now)
		{
			expired = true;
			continue;
		}
		if (member_time(kc, "nbf", DT_NOBEGIN) > p->now)
		{
			immature = true;
			continue;
		}
		if (kalg != t->alg || (jwk = member_container(kc, "jwk")) == NULL ||
			(key = jwt_key_from_jwk(jwk)) == NULL || !jwt_key_allows(key, t->alg))
		{
			other_alg = true;
			continue;
		}
		out[nkeys++] = key;
	}
	if (nkeys > 0)
		return nkeys;
	if (t->kid != NULL && !kid_seen)
	{
		*kid_miss = true;
		return refuse(r, "no key matches the token's key ID",
					  "The issuer has no key with the token's \"kid\".");
	}
	if (revoked)
		return refuse(r, "key has been revoked", NULL);
	if (expired)
		return refuse(r, "key has expired", NULL);
	if (immature)
		return refuse(r, "key is not yet valid", NULL);
	if (other_alg)
		return refuse(r, "token algorithm does not fit the key", NULL);
	return refuse(r, "no key fits the token",
				  "The token has no \"kid\" and no key of its issuer is for its algorithm.");
}

/* ----------------------------------------------------------------
 * The checks after the signature
 * ----------------------------------------------------------------
 */

/*
 * The next space-separated word of s (slen bytes) from *pos: its start and
 * length, and *pos past it; false at the end.
 */
static bool
next_word(const char *s, int slen, int *pos, const char **word, int *len)
{
	int			i = *pos;
	int			j;

	while (i < slen && s[i] == ' ')
		i++;
	j = i;
	while (j < slen && s[j] != ' ')
		j++;
	*pos = j;
	*word = s + i;
	*len = j - i;
	return j > i;
}

/* is word (len bytes) one of the space-separated words of s? */
static bool
has_word(const char *s, int slen, const char *word, int len)
{
	int			pos = 0;
	const char *w;
	int			wlen;

	while (next_word(s, slen, &pos, &w, &wlen))
		if (wlen == len && memcmp(w, word, len) == 0)
			return true;
	return false;
}

/* the token grants scope: in "scope" (words) or "scp" (array, or words) */
static bool
token_has_scope(const JwtClaims *claims, const char *scope, int len)
{
	JsonbValue *v = jwt_claim_value(claims, "scope");

	if (v != NULL && v->type == jbvString &&
		has_word(v->val.string.val, v->val.string.len, scope, len))
		return true;
	v = jwt_claim_value(claims, "scp");
	if (v == NULL)
		return false;
	if (v->type == jbvString)
		return has_word(v->val.string.val, v->val.string.len, scope, len);
	if (v->type == jbvArray)
		for (int i = 0; i < v->val.array.nElems; i++)
		{
			JsonbValue *e = &v->val.array.elems[i];

			if (e->type == jbvString && e->val.string.len == len &&
				memcmp(e->val.string.val, scope, len) == 0)
				return true;
		}
	return false;
}

static bool
check_scopes(const JwtClaims *claims, const char *scopes, Refusal *r)
{
	int			pos = 0;
	const char *w;
	int			wlen;

	while (scopes != NULL && next_word(scopes, strlen(scopes), &pos, &w, &wlen))
		if (!token_has_scope(claims, w, wlen))
			return refuse(r, "token lacks a scope the pg_hba.conf line requires",
						  psprintf("The scope \"%.*s\" is in neither \"scope\" nor \"scp\".",
								   wlen, w));
	return true;
}

static bool
check_revoked(JsonbContainer *snap, const JwtClaims *claims, Refusal *r)
{
	const char *jti,
			   *sub;
	int			jtilen,
				sublen;
	JsonbValue	v;

	/* keyed as jwt_revoked and jwt_revoked_subjects are (revocation.c) */
	if (jwt_revocation_key(jwt_claim_value(claims, "jti"), &jti, &jtilen) &&
		member_n(member_container(snap, "revoked_jti"), jti, jtilen, &v))
		return refuse(r, "token has been revoked", "Its \"jti\" is in jwt_revoked.");
	if (jwt_revocation_key(jwt_claim_value(claims, "sub"), &sub, &sublen) &&
		member_n(member_container(snap, "revoked_sub"), sub, sublen, &v))
	{
		TimestampTz before;
		TimestampTz iat;
		JsonbValue *iatv = jwt_claim_value(claims, "iat");

		/* without an iat, a token cannot show it is newer */
		if (!jwt_numeric_date(&v, &before) || iatv == NULL ||
			!jwt_numeric_date(iatv, &iat) || iat < before)
			return refuse(r, "token has been revoked",
						  "Its subject's tokens issued before a time are revoked (jwt_revoke_subject).");
	}
	return true;
}

/* a string claim, palloc'd, or NULL */
static char *
string_claim(const JwtClaims *claims, const char *name)
{
	JsonbValue *v = jwt_claim_value(claims, name);

	if (v == NULL || v->type != jbvString || v->val.string.len == 0)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* delegate_ident_mapping=1: the token must name the role it logs in as */
static bool
check_delegated_role(const JwtClaims *claims, const char *role, Refusal *r)
{
	char	   *named;
	HeapTuple	tup;
	Form_pg_authid form;
	bool		ok = true;

	if (jwt_role_claim_name() == NULL)
		return refuse(r, "delegate_ident_mapping needs jwt.role_claim",
					  "Set jwt.role_claim to the claim that names the role a token logs in as.");
	named = string_claim(claims, jwt_role_claim_name());
	if (named == NULL)
		return refuse(r, "token has no role claim",
					  psprintf("The claim \"%s\" (jwt.role_claim) must be a non-empty string.",
							   jwt_role_claim_name()));
	if (strcmp(named, role) != 0)
		return refuse(r, "token's role claim does not name the role requested",
					  psprintf("The token names role \"%s\", the connection asks for \"%s\".",
							   named, role));
	tup = SearchSysCache1(AUTHNAME, CStringGetDatum(role));
	if (!HeapTupleIsValid(tup))
		return refuse(r, "token's role does not exist", NULL);
	form = (Form_pg_authid) GETSTRUCT(tup);
	if (form->rolsuper)
		ok = refuse(r, "a token cannot log in as a superuser", NULL);
	else if (form->rolbypassrls)
		ok = refuse(r, "a token cannot log in as a role that bypasses row-level security", NULL);
	ReleaseSysCache(tup);
	return ok;
}

/* ----------------------------------------------------------------
 * The validator
 * ----------------------------------------------------------------
 */

static bool
check_token(const char *token, const char *role, char **authn_id, Jsonb **claims_out,
			Refusal *r)
{
	HbaLine    *hba = MyProcPort->hba;
	const char *issuer = hba->oauth_issuer;
	Jsonb	   *snap;
	JsonbContainer *entry;
	JsonbContainer *keys;
	bool		own;
	JwtVerifyParams params;
	JwtOpened	t;
	JwtClaims	claims = {0};
	JwtFailure	f;
	JwtKey	   *chosen[JWT_MAX_CANDIDATES];
	int			nkeys;
	bool		kid_miss;
	JsonbValue	v;
	JsonbValue *iss;

	if ((snap = load_snapshot(r)) == NULL)
		return false;

	own = jwt_issuer != NULL && jwt_issuer[0] != '\0' && strcmp(issuer, jwt_issuer) == 0;
	if (own)
		entry = NULL;
	else if ((entry = member_container(member_container(&snap->root, "issuers"), issuer)) == NULL)
		return refuse(r, "the issuer of the pg_hba.conf line is not trusted",
					  psprintf("No row of jwt_issuers in database \"%s\" (jwt.database) is this issuer, and it is not jwt.issuer.",
							   jwt_database));
	keys = own ? member_container(&snap->root, "own") : member_container(entry, "keys");

	jwt_default_params(&params);
	params.token_type = JWT_TOKEN_ACCESS;	/* refresh tokens never log in */
	params.issuer = issuer;
	params.issuer_len = strlen(issuer);
	if (!own)
		apply_rules(&params, entry);

	if (!jwt_token_open(token, strlen(token), &params, &t, &f) ||
		!jwt_decode_claims(&t.parts, &claims, &f))
		return refuse(r, f.message, f.detail);
	/* the line's issuer picks the keys: a token of another is refused first */
	iss = jwt_claim_value(&claims, "iss");
	if (iss == NULL)
		return refuse(r, "token has no issuer",
					  "A login token must have the \"iss\" of its pg_hba.conf line.");
	if (!same_string(iss, issuer, strlen(issuer)))
		return refuse(r, "token was issued by another issuer",
					  "The token's \"iss\" is not the issuer of its pg_hba.conf line.");
	if (!jwt_alg_allowed(&params, t.alg))
		return refuse(r, "token algorithm is not allowed",
					  psprintf("The token is signed with %s, which is not allowed for its issuer.",
							   t.alg->name));
	nkeys = choose_keys(keys, &t, &params, chosen, &kid_miss, r);
	if (nkeys == 0)
	{
		uint64		ticket;

		/* the provider may have rotated: the worker fetches, we do not */
		if (kid_miss && !own && member(entry, "fetched", &v) &&
			v.type == jbvBool && v.val.boolean)
			(void) jwt_jwks_request(issuer, strlen(issuer), &ticket);
		return false;
	}
	if (!jwt_token_check(&t, chosen, nkeys, &params, &claims, &f))
		return refuse(r, f.message, f.detail);

	/* the token is genuine: say whose it is, even if it is refused below */
	*authn_id = string_claim(&claims, jwt_login_claim ? jwt_login_claim : "sub");
	if (!check_scopes(&claims, hba->oauth_scope, r) ||
		!check_revoked(&snap->root, &claims, r))
		return false;
	if (*authn_id == NULL && !hba->oauth_skip_usermap)
		return refuse(r, "token has no login claim",
					  psprintf("The claim \"%s\" (jwt.login_claim) must be a non-empty string.",
							   jwt_login_claim ? jwt_login_claim : "sub"));
	if (hba->oauth_skip_usermap && !check_delegated_role(&claims, role, r))
		return false;
	*claims_out = jwt_claims_jsonb(&claims);
	return true;
}

static bool
validate_token(const ValidatorModuleState *state, const char *token,
			   const char *role, ValidatorModuleResult *result)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	MemoryContext caller = CurrentMemoryContext;
	char	   *authn_id = NULL;
	Jsonb	   *claims = NULL;
	Refusal		r = {NULL, NULL};
	bool		ok;

	(void) state;
	result->authorized = false;
	result->authn_id = NULL;

	/* keys, their OpenSSL objects and the decoded token go with cxt */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "jwt login",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	ok = check_token(token, role, &authn_id, &claims, &r);
	if (ok)
	{
		/* PostgreSQL logs it as the connection's identity, and maps it */
		if (authn_id != NULL)
			result->authn_id = MemoryContextStrdup(caller, authn_id);
		jwt_session_login(claims);
	}
	else
	{
		/*
		 * A refused token authenticates no one, so it sets no authn_id; whose
		 * it was (once its signature verified) is in our own line.
		 */
		StringInfoData who;

		initStringInfo(&who);
		if (r.detail)
			appendStringInfo(&who, "%s ", r.detail);
		appendStringInfo(&who, "Issuer \"%s\" (pg_hba.conf line %d), role \"%s\"",
						 MyProcPort->hba->oauth_issuer, MyProcPort->hba->linenumber, role);
		if (authn_id != NULL)
			appendStringInfo(&who, ", token of \"%s\"", authn_id);
		appendStringInfoChar(&who, '.');
		ereport(LOG,
				(errmsg("jwt: login with a token refused: %s",
						r.message ? r.message : "the token does not verify"),
				 errdetail_log("%s", who.data)));
	}
	/* nothing keyed with a secret outlives the keys in cxt */
	jws_hmac_forget();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	result->authorized = ok;
	return true;
}

#endif							/* PG_VERSION_NUM >= 180000 */

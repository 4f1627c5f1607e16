/*
 * jwt.c
 *		SQL-callable functions: argument fetching, result building, GUCs.
 *
 * Nothing below this file knows fmgr.  Token failures come back from the
 * token layer as a JwtFailure; jwt_verify raises it, jwt_is_valid answers
 * false.  Statements are hidden from the log on every error we raise
 * (errhidestmt), because the statement holds the token and often the key.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "compat.h"
#include "errcodes.h"
#include "fetch.h"
#include "jsonutil.h"
#include "jwk.h"
#include "jwksworker.h"
#include "jws.h"
#include "keycache.h"
#include "keys.h"
#include "keystore.h"
#include "login.h"
#include "revocation.h"
#include "session.h"
#include "token.h"
#include "verifycache.h"

PG_MODULE_MAGIC;

/*
 * Leeway is at most a day, wherever it comes from (jwt.leeway, an issuer's
 * row, the argument): jwt_purge_expired keeps a revocation until its
 * token's exp plus that day (and a day more), so no leeway can bring back a
 * token whose revocation is gone.
 */
#define MAX_LEEWAY_SECS		SECS_PER_DAY
/* lifetimes of the tokens we issue */
#define MAX_TTL_SECS		(10 * 366 * SECS_PER_DAY)

static int	jwt_leeway = 0;		/* seconds */
static char *jwt_audience = NULL;
char	   *jwt_issuer = NULL;
static int	jwt_rsa_bits = 2048;
static int	jwt_default_ttl = 3600;	/* seconds */
static int	jwt_access_ttl = 15 * 60;	/* seconds */
static int	jwt_refresh_ttl = 30 * SECS_PER_DAY;	/* seconds */
static int	jwt_refresh_grace = 0;	/* seconds */
static int	jwt_jwks_min_interval = 5 * 60;	/* seconds */
static int	jwt_jwks_max_interval = SECS_PER_DAY;	/* seconds */

static const struct config_enum_entry rsa_bits_options[] = {
	{"2048", 2048, false},
	{"3072", 3072, false},
	{"4096", 4096, false},
	{NULL, 0, false}
};

void		_PG_init(void);

/*
 * No HMAC secret, nor state derived from one, outlives its transaction; nor
 * does what a parallel query's snapshot showed of the key and revocation
 * tables.
 */
static void
forget_hmac_keys(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			jws_hmac_forget();
			jwt_store_end_of_xact();
			jwt_revocation_end_of_xact();
			break;
		default:
			break;
	}
}

void
_PG_init(void)
{
	DefineCustomIntVariable("jwt.leeway",
							"Clock skew allowed when checking exp, nbf and iat.",
							"Used when jwt_verify is called without a leeway.",
							&jwt_leeway,
							0, 0, MAX_LEEWAY_SECS,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomStringVariable("jwt.audience",
							   "Audience expected in tokens' aud claim.",
							   "Used when jwt_verify is called without an audience; empty means none is expected.",
							   &jwt_audience,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("jwt.issuer",
							   "Our own issuer: the iss claim of tokens we issue.",
							   "jwt_issue puts it in tokens that lack an iss; jwt_verify without a key verifies tokens with this iss, or none, with our own keys.",
							   &jwt_issuer,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	/* read by jwt_issue (SQL); defined here so that its unit is checked */
	DefineCustomIntVariable("jwt.default_ttl",
							"Lifetime of tokens from jwt_issue when no ttl is given.",
							NULL,
							&jwt_default_ttl,
							3600, 1, MAX_TTL_SECS,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("jwt.rsa_bits",
							 "Size of RSA keys made by jwt_key_generate.",
							 NULL,
							 &jwt_rsa_bits,
							 2048, rsa_bits_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	/* read by jwt_issue_pair and jwt_refresh (SQL) */
	DefineCustomIntVariable("jwt.access_ttl",
							"Lifetime of access tokens from jwt_issue_pair and jwt_refresh.",
							NULL,
							&jwt_access_ttl,
							15 * 60, 1, MAX_TTL_SECS,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.refresh_ttl",
							"Lifetime of refresh tokens from jwt_issue_pair and jwt_refresh.",
							NULL,
							&jwt_refresh_ttl,
							30 * SECS_PER_DAY, 1, MAX_TTL_SECS,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.refresh_grace",
							"How long a rotated refresh token may be presented again without revoking its family.",
							"For clients that retry after losing the response; 0 means never.",
							&jwt_refresh_grace,
							0, 0, 3600,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.key_cache_size",
							"Parsed PEM and JWK key arguments kept per backend.",
							"0 parses the key on every call.",
							&jwt_key_cache_size,
							16, 0, 256,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.key_cache_memory",
							"Memory the parsed key arguments kept per backend may take.",
							"An argument taking more than a quarter of it is not kept; 0 keeps none.",
							&jwt_key_cache_memory,
							4096, 0, 1024 * 1024,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.issuer_cache_memory",
							"Memory the trusted issuers' rules and keys kept per backend may take.",
							"Least recently used issuers are dropped past it; 0 keeps only the last one used.",
							&jwt_issuer_cache_memory,
							4096, 0, 1024 * 1024,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.verify_cache_size",
							"Verified RS/PS/ES/EdDSA signatures remembered per backend.",
							"48 bytes each; 0 verifies every signature every time.",
							&jwt_verify_cache_size,
							4096, 0, 1024 * 1024,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	/* fetching identity providers' key sets: who may decide where and how */
	DefineCustomStringVariable("jwt.jwks_ca_file",
							   "CA certificates that identity providers' HTTPS certificates must chain to.",
							   "Empty: the system trust store.",
							   &jwt_jwks_ca_file,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.jwks_timeout",
							"Time allowed for one fetch of a JWKS or discovery document, connection included.",
							NULL,
							&jwt_jwks_timeout,
							10000, 100, 120000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	/* read by the refresh schedule (SQL) */
	DefineCustomIntVariable("jwt.jwks_min_interval",
							"Shortest time between two scheduled fetches of an issuer's JWKS.",
							"A shorter Cache-Control max-age or Expires is raised to this.",
							&jwt_jwks_min_interval,
							5 * 60, 1, 7 * SECS_PER_DAY,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.jwks_max_interval",
							"Longest time between two scheduled fetches of an issuer's JWKS.",
							"A longer Cache-Control max-age or Expires, or none, is lowered to this.",
							&jwt_jwks_max_interval,
							SECS_PER_DAY, 1, 30 * SECS_PER_DAY,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.jwks_miss_cooldown",
							"Shortest time between two early fetches of an issuer's JWKS asked for by tokens with an unknown kid.",
							NULL,
							&jwt_jwks_miss_cooldown,
							60, 1, SECS_PER_DAY,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jwt.jwks_miss_wait",
							"How long verification of a token with an unknown kid waits for the early fetch it asked for.",
							"0: it fails at once with JW009, and a later token finds the new keys.",
							&jwt_jwks_miss_wait,
							0, 0, 10000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	/*
	 * Read at server start; a library loaded later may not define a
	 * PGC_POSTMASTER setting, and has no worker for it to name anyway.
	 */
	DefineCustomStringVariable("jwt.database",
							   "The database whose trusted issuers the JWKS worker serves.",
							   "Needs jwt in shared_preload_libraries.",
							   &jwt_database,
							   "postgres",
							   process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
	if (process_shared_preload_libraries_in_progress)
		jwt_jwks_worker_register();
	jwt_login_init();
	jwt_session_init();
	RegisterXactCallback(forget_hmac_keys, NULL);
	MarkGUCPrefixReserved("jwt");
}

/* ----------------------------------------------------------------
 * Argument helpers
 * ----------------------------------------------------------------
 */

static const JwsAlg *
sign_algorithm(text *name)
{
	const char *s = VARDATA_ANY(name);
	int			len = VARSIZE_ANY_EXHDR(name);
	const JwsAlg *alg = jws_alg_find(s, len);

	if (alg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("unrecognized JWS algorithm \"%s\"", text_to_cstring(name)),
				 errhint("Use one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA.")));
	return alg;
}

/* text[] -> palloc'd C strings, NULL elements skipped */
static char **
text_array(ArrayType *arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char	  **out;
	int			k = 0;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);
	out = palloc(sizeof(char *) * (nelems + 1));
	for (int i = 0; i < nelems; i++)
	{
		if (!nulls[i])
			out[k++] = TextDatumGetCString(elems[i]);
	}
	*n = k;
	return out;
}

static int64
leeway_usecs(Interval *iv)
{
	int64		days;
	int64		total;

	if (pg_mul_s64_overflow((int64) iv->month, DAYS_PER_MONTH, &days) ||
		pg_add_s64_overflow(days, (int64) iv->day, &days) ||
		pg_mul_s64_overflow(days, USECS_PER_DAY, &total) ||
		pg_add_s64_overflow(total, iv->time, &total) ||
		total > (int64) MAX_LEEWAY_SECS * USECS_PER_SEC)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("leeway is out of range"),
				 errdetail("Leeway must be at most one day.")));
	if (total < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("leeway must not be negative")));
	return total;
}

/* What verification expects when the caller says nothing: the GUCs. */
void
jwt_default_params(JwtVerifyParams *p)
{
	memset(p, 0, sizeof(*p));
	/* p is never copied: pointing into it is safe */
	p->audiences = &p->audience_slot;
	p->audience_lens = &p->audience_slot_len;
	if (jwt_audience != NULL && jwt_audience[0] != '\0')
	{
		p->audiences[0] = jwt_audience;
		p->audience_lens[0] = strlen(jwt_audience);
		p->naudiences = 1;
	}
	p->leeway = (int64) jwt_leeway * USECS_PER_SEC;
	/* the clock now, not a statement's start that a long CALL freezes */
	p->now = GetCurrentTimestamp();
}

/*
 * Arguments 2..7 of jwt_verify and jwt_is_valid: algorithms, audience,
 * issuer, leeway, require, now.
 */
static void
verify_params(FunctionCallInfo fcinfo, JwtVerifyParams *p)
{
	jwt_default_params(p);

	if (!PG_ARGISNULL(2))
	{
		int			n;
		char	  **names = text_array(PG_GETARG_ARRAYTYPE_P(2), &n);

		/* names we do not know (or "none") simply allow nothing */
		p->restrict_algs = true;
		for (int i = 0; i < n; i++)
		{
			const JwsAlg *alg = jws_alg_find(names[i], strlen(names[i]));

			if (alg != NULL && p->nallowed < (int) lengthof(p->allowed))
				p->allowed[p->nallowed++] = alg;
		}
	}

	if (!PG_ARGISNULL(3))
	{
		text	   *aud = PG_GETARG_TEXT_PP(3);

		p->audiences[0] = VARDATA_ANY(aud);
		p->audience_lens[0] = VARSIZE_ANY_EXHDR(aud);
		p->naudiences = 1;
		p->audience_given = true;
	}

	if (!PG_ARGISNULL(4))
	{
		text	   *iss = PG_GETARG_TEXT_PP(4);

		p->issuer = VARDATA_ANY(iss);
		p->issuer_len = VARSIZE_ANY_EXHDR(iss);
	}

	if (!PG_ARGISNULL(5))
	{
		p->leeway = leeway_usecs(PG_GETARG_INTERVAL_P(5));
		p->leeway_given = true;
	}

	if (!PG_ARGISNULL(6))
		p->require = text_array(PG_GETARG_ARRAYTYPE_P(6), &p->nrequire);

	if (!PG_ARGISNULL(7))
	{
		p->now = PG_GETARG_TIMESTAMPTZ(7);
		if (TIMESTAMP_NOT_FINITE(p->now))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("now must be a finite timestamp")));
	}
}

static JwtKeyArg *
key_arg(FunctionCallInfo fcinfo, int argno, bool is_bytea)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	if (is_bytea)
	{
		bytea	   *b = PG_GETARG_BYTEA_PP(argno);

		return jwt_key_arg_from_bytes((unsigned char *) VARDATA_ANY(b),
									  VARSIZE_ANY_EXHDR(b));
	}
	else
	{
		text	   *t = PG_GETARG_TEXT_PP(argno);

		return jwt_key_arg_for_call(fcinfo->flinfo, VARDATA_ANY(t),
									VARSIZE_ANY_EXHDR(t));
	}
}

static void
raise_failure(const JwtFailure *f)
{
	ereport(ERROR,
			(errcode(f->sqlerrcode),
			 errmsg_internal("%s", f->message),
			 f->detail ? errdetail_internal("%s", f->detail) : 0,
			 errhidestmt(true)));
}

static bool
verify_common(FunctionCallInfo fcinfo, bool key_is_bytea, JwtClaims *claims,
			  JwtFailure *f)
{
	text	   *token = PG_GETARG_TEXT_PP(0);
	JwtVerifyParams params;
	JwtKeyArg  *key;
	bool		ok;

	verify_params(fcinfo, &params);
	if (PG_ARGISNULL(1))
		ok = jwt_store_verify(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token),
							  &params, jwt_issuer, claims, f);
	else
	{
		key = key_arg(fcinfo, 1, key_is_bytea);
		ok = jwt_verify_token(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token),
							  key, &params, claims, f);
		jwt_key_arg_release(key);
	}
	/* revocation is checked after everything else, for any key */
	return ok && jwt_revocation_check(claims, f);
}

/* verify with the key table as configured by params, or raise */
static Jsonb *
store_verify_or_raise(text *token, JwtVerifyParams *params, bool revocation)
{
	JwtFailure	f;
	JwtClaims	claims = {0};

	if (!jwt_store_verify(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token),
						  params, jwt_issuer, &claims, &f) ||
		(revocation && !jwt_revocation_check(&claims, &f)))
		raise_failure(&f);
	return jwt_claims_jsonb(&claims);
}

/* ----------------------------------------------------------------
 * SQL functions
 * ----------------------------------------------------------------
 */

static Datum
sign_common(FunctionCallInfo fcinfo, bool key_is_bytea)
{
	Jsonb	   *claims;
	const JwsAlg *alg;
	Jsonb	   *header = NULL;
	JwtKeyArg  *key;
	text	   *result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errhidestmt(true),
				 errmsg("algorithm must not be null")));

	claims = PG_GETARG_JSONB_P(0);
	alg = sign_algorithm(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		header = PG_GETARG_JSONB_P(3);
	key = key_arg(fcinfo, 1, key_is_bytea);
	result = jwt_sign_token(claims, key, alg, header);
	jwt_key_arg_release(key);
	PG_RETURN_TEXT_P(result);
}

PG_FUNCTION_INFO_V1(jwt_sign);
Datum
jwt_sign(PG_FUNCTION_ARGS)
{
	return sign_common(fcinfo, false);
}

/*
 * _jwt_sign_private(claims jsonb, jwk jsonb, algorithm text, header jsonb):
 * jwt_issue's signing with a private JWK of the key table.  The key is
 * parsed here and released (its secrets wiped) before returning: none of
 * the key caches ever holds a private key of the table.
 */
PG_FUNCTION_INFO_V1(jwt_sign_private);
Datum
jwt_sign_private(PG_FUNCTION_ARGS)
{
	Jsonb	   *jwk;
	JwtKeyArg	arg = {0};
	const JwsAlg *alg;
	text	   *result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errhidestmt(true),
				 errmsg("claims, key and algorithm must not be null")));
	jwk = PG_GETARG_JSONB_P(1);
	alg = sign_algorithm(PG_GETARG_TEXT_PP(2));
	if (!JB_ROOT_IS_OBJECT(jwk) || JB_ROOT_IS_SCALAR(jwk) ||
		(arg.key = jwt_key_from_jwk(&jwk->root)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("unsupported JWK")));
	arg.kind = JWT_KEYARG_JWK;
	result = jwt_sign_token(PG_GETARG_JSONB_P(0), &arg, alg,
							PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
	jwt_key_arg_release(&arg);
	PG_RETURN_TEXT_P(result);
}

PG_FUNCTION_INFO_V1(jwt_sign_bytea);
Datum
jwt_sign_bytea(PG_FUNCTION_ARGS)
{
	return sign_common(fcinfo, true);
}

static Datum
verify_raise(FunctionCallInfo fcinfo, bool key_is_bytea)
{
	JwtClaims	claims = {0};
	JwtFailure	f;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (!verify_common(fcinfo, key_is_bytea, &claims, &f))
		raise_failure(&f);
	PG_RETURN_JSONB_P(jwt_claims_jsonb(&claims));
}

PG_FUNCTION_INFO_V1(jwt_verify);
Datum
jwt_verify(PG_FUNCTION_ARGS)
{
	return verify_raise(fcinfo, false);
}

PG_FUNCTION_INFO_V1(jwt_verify_bytea);
Datum
jwt_verify_bytea(PG_FUNCTION_ARGS)
{
	return verify_raise(fcinfo, true);
}

static Datum
is_valid_common(FunctionCallInfo fcinfo, bool key_is_bytea)
{
	JwtClaims	claims = {0};
	JwtFailure	f;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(verify_common(fcinfo, key_is_bytea, &claims, &f));
}

PG_FUNCTION_INFO_V1(jwt_is_valid);
Datum
jwt_is_valid(PG_FUNCTION_ARGS)
{
	return is_valid_common(fcinfo, false);
}

PG_FUNCTION_INFO_V1(jwt_is_valid_bytea);
Datum
jwt_is_valid_bytea(PG_FUNCTION_ARGS)
{
	return is_valid_common(fcinfo, true);
}

PG_FUNCTION_INFO_V1(jwt_header);
Datum
jwt_header(PG_FUNCTION_ARGS)
{
	text	   *token = PG_GETARG_TEXT_PP(0);
	JwtParts	parts;
	JwtFailure	f;
	Jsonb	   *header;

	if (!jwt_split(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token), &parts, &f) ||
		(header = jwt_decode_header(&parts, &f)) == NULL)
		raise_failure(&f);
	PG_RETURN_JSONB_P(header);
}

PG_FUNCTION_INFO_V1(jwt_decode_unverified);
Datum
jwt_decode_unverified(PG_FUNCTION_ARGS)
{
	text	   *token = PG_GETARG_TEXT_PP(0);
	JwtParts	parts;
	JwtFailure	f;
	Jsonb	   *payload;

	if (!jwt_split(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token), &parts, &f) ||
		(payload = jwt_decode_payload(&parts, &f)) == NULL)
		raise_failure(&f);
	PG_RETURN_JSONB_P(payload);
}

/* ----------------------------------------------------------------
 * Sessions: the identity a token gives a transaction
 * ----------------------------------------------------------------
 */

/*
 * jwt_authenticate(token text [, scope text]): verify against the key
 * table and trusted issuers, then make the claims the identity of the
 * transaction (or, with scope 'session', of the session).  A NULL token is
 * an anonymous request.
 */
PG_FUNCTION_INFO_V1(jwt_authenticate);
Datum
jwt_authenticate(PG_FUNCTION_ARGS)
{
	bool		session_scope = false;
	Jsonb	   *claims = NULL;

	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
	{
		char	   *scope = text_to_cstring(PG_GETARG_TEXT_PP(1));

		if (strcmp(scope, "session") == 0)
			session_scope = true;
		else if (strcmp(scope, "transaction") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("invalid scope \"%s\"", scope),
					 errhint("Use 'transaction' or 'session'.")));
	}

	if (!PG_ARGISNULL(0))
	{
		JwtVerifyParams params;

		jwt_default_params(&params);
		claims = store_verify_or_raise(PG_GETARG_TEXT_PP(0), &params, true);
	}

	jwt_session_begin(claims, session_scope);
	if (claims == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(claims);
}

/* jwt_claims(): the identity's claims, or NULL */
PG_FUNCTION_INFO_V1(jwt_claims);
Datum
jwt_claims(PG_FUNCTION_ARGS)
{
	Jsonb	   *claims = jwt_session_claims();
	Jsonb	   *copy;

	if (claims == NULL)
		PG_RETURN_NULL();
	copy = palloc(VARSIZE(claims));
	memcpy(copy, claims, VARSIZE(claims));
	PG_RETURN_JSONB_P(copy);
}

/*
 * jwt_claim(name text): one claim as text (like ->>), or NULL, in memory of
 * its call site, which lives as long as the expression that called it: a
 * procedure may hold it across its COMMIT.
 */
PG_FUNCTION_INFO_V1(jwt_claim);
Datum
jwt_claim(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	text	   *value = jwt_session_claim_for_call(fcinfo->flinfo, VARDATA_ANY(name),
												   VARSIZE_ANY_EXHDR(name));

	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(value);
}

/* ----------------------------------------------------------------
 * Refresh tokens and revocation: building blocks of the SQL functions
 * ----------------------------------------------------------------
 */

/* _jwt_verify_refresh(token text): a refresh token's claims, or JW0xx */
PG_FUNCTION_INFO_V1(jwt_verify_refresh);
Datum
jwt_verify_refresh(PG_FUNCTION_ARGS)
{
	JwtVerifyParams params;

	jwt_default_params(&params);
	params.token_type = JWT_TOKEN_REFRESH;
	/* refresh tokens are ours: only our keys verify them */
	params.own_keys_only = true;
	/* and for us only: they carry no audience to expect */
	params.naudiences = 0;
	PG_RETURN_JSONB_P(store_verify_or_raise(PG_GETARG_TEXT_PP(0), &params, true));
}

/*
 * _jwt_verify_signature(token text): the claims of a token signed by a key
 * of the table, of any type, whatever its times say; for jwt_revoke.
 */
PG_FUNCTION_INFO_V1(jwt_verify_signature);
Datum
jwt_verify_signature(PG_FUNCTION_ARGS)
{
	JwtVerifyParams params;

	jwt_default_params(&params);
	params.token_type = JWT_TOKEN_ANY;
	params.signature_only = true;
	params.own_keys_only = true;
	PG_RETURN_JSONB_P(store_verify_or_raise(PG_GETARG_TEXT_PP(0), &params, false));
}

/*
 * _jwt_raise(sqlstate text, message text, detail text): an error whose
 * statement is not logged, for plpgsql functions that take tokens.
 */
PG_FUNCTION_INFO_V1(jwt_raise);
Datum
jwt_raise(PG_FUNCTION_ARGS)
{
	char	   *state;
	char	   *message;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "_jwt_raise needs a SQLSTATE and a message");
	state = text_to_cstring(PG_GETARG_TEXT_PP(0));
	message = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strlen(state) != 5 || strspn(state, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 5)
		elog(ERROR, "invalid SQLSTATE \"%s\"", state);
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4])),
			 errmsg_internal("%s", message),
			 PG_ARGISNULL(2) ? 0 : errdetail_internal("%s", text_to_cstring(PG_GETARG_TEXT_PP(2))),
			 errhidestmt(true)));
	PG_RETURN_VOID();
}

/*
 * _jwt_assert_primary(what text): the writing functions call it first, so
 * that on a hot standby they fail with 25006 and a hint rather than with
 * PostgreSQL's bare read-only error (and without logging the statement).
 */
PG_FUNCTION_INFO_V1(jwt_assert_primary);
Datum
jwt_assert_primary(PG_FUNCTION_ARGS)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot change %s on a hot standby",
						text_to_cstring(PG_GETARG_TEXT_PP(0))),
				 errhint("Run it on the primary. Verification (jwt_verify, jwt_is_valid, jwt_authenticate) works on standbys."),
				 errhidestmt(true)));
	PG_RETURN_VOID();
}

/* _jwt_family_revoke(family uuid, reason text): in a transaction of its own */
PG_FUNCTION_INFO_V1(jwt_family_revoke_sql);
Datum
jwt_family_revoke_sql(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *family = PG_GETARG_UUID_P(0);
	char	   *reason = text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_BOOL(jwt_family_revoke(family, reason));
}

/* _jwt_family_pending(family uuid): a revocation no worker could write yet */
PG_FUNCTION_INFO_V1(jwt_family_pending_sql);
Datum
jwt_family_pending_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(jwt_family_pending(PG_GETARG_UUID_P(0)));
}

/*
 * jwt_cache_stats(): the per-backend caches, for sizing them
 * (cache, entries, capacity, bytes, hits, misses)
 */
PG_FUNCTION_INFO_V1(jwt_cache_stats);
Datum
jwt_cache_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	struct
	{
		const char *name;
		JwtCacheStats *stats;
	}			caches[] = {
		{"key", &jwt_key_cache_stats},
		{"verify", &jwt_verify_cache_stats},
		{"issuer", &jwt_store_cache_stats},
	};

	InitMaterializedSRF(fcinfo, 0);
	jwt_key_cache_fill_stats();
	jwt_verify_cache_fill_stats();
	jwt_store_fill_stats();
	for (int i = 0; i < (int) lengthof(caches); i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false};
		JwtCacheStats *st = caches[i].stats;

		values[0] = CStringGetTextDatum(caches[i].name);
		values[1] = Int64GetDatum(st->entries);
		values[2] = Int64GetDatum(st->capacity);
		nulls[2] = st->capacity < 0;	/* bounded in bytes only */
		values[3] = Int64GetDatum(st->bytes);
		values[4] = Int64GetDatum(st->hits);
		values[5] = Int64GetDatum(st->misses);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ----------------------------------------------------------------
 * JWK functions and the key tables' trigger
 * ----------------------------------------------------------------
 */

static void
check_key_strength(const JwtKey *key, const JwsAlg *alg)
{
	switch (jws_key_fits(alg, &key->jws))
	{
		case JWS_OK:
			break;
		case JWS_KEY_WEAK:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("key is too weak for %s", alg->name),
					 errdetail("RSA keys must have at least 2048 bits and an odd public exponent greater than 1.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("key does not fit algorithm %s", alg->name)));
	}
	/* RFC 7518 §3.2: an HMAC key at least as long as the hash output */
	if (alg->family == JWS_HMAC && key->jws.secret_len < (size_t) alg->hash_len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("HMAC secret is too short for %s", alg->name),
				 errdetail("A key for %s must be at least %d bytes long (RFC 7518, section 3.2).",
						   alg->name, alg->hash_len)));
}

/* jwt_jwk(key text, algorithm text): one key as a JWK, checked for use */
PG_FUNCTION_INFO_V1(jwt_jwk);
Datum
jwt_jwk(PG_FUNCTION_ARGS)
{
	text	   *t;
	JwtKeyArg  *arg;
	const JwsAlg *alg;
	Jsonb	   *jwk;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	t = PG_GETARG_TEXT_PP(0);
	arg = jwt_key_arg_from_text(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	if (arg->kind == JWT_KEYARG_JWKS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("expected one key, not a key set"),
				 errhint("Load a key set with jwt_key_import or jwt_jwks_import.")));

	if (!PG_ARGISNULL(1))
	{
		alg = sign_algorithm(PG_GETARG_TEXT_PP(1));
		if (!jwt_key_allows(arg->key, alg))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
					 errmsg("key does not fit algorithm %s", alg->name)));
	}
	else if ((alg = arg->key->alg) == NULL)
		alg = jwt_key_default_alg(arg->key);
	if (alg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("no JWS algorithm fits this key")));
	check_key_strength(arg->key, alg);

	jwk = jwt_key_to_jwk(arg->key, alg, arg->key->kid, arg->key->has_private);
	jwt_key_arg_release(arg);
	PG_RETURN_JSONB_P(jwk);
}

/*
 * _jwt_key_json(key text): a JSON key argument as jsonb, for the key
 * import functions.  A cast to jsonb would echo the text (a private key,
 * a secret) in its error's detail and context; this says only what is
 * wrong, and keeps the statement out of the log.
 */
PG_FUNCTION_INFO_V1(jwt_key_json);
Datum
jwt_key_json(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	JsonStrictError err;
	Jsonb	   *jb = json_parse_object_strict(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &err);

	if (jb == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("invalid JWK or JWKS"),
				 errdetail_internal("%s", json_strict_error_text(err))));
	PG_RETURN_JSONB_P(jb);
}

/* jwt_jwk_thumbprint(jwk jsonb): RFC 7638 */
PG_FUNCTION_INFO_V1(jwt_jwk_thumbprint);
Datum
jwt_jwk_thumbprint(PG_FUNCTION_ARGS)
{
	Jsonb	   *jwk = PG_GETARG_JSONB_P(0);
	JwtKey	   *key;
	char	   *thumbprint;

	if (!JB_ROOT_IS_OBJECT(jwk) || JB_ROOT_IS_SCALAR(jwk))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("a JWK must be a JSON object")));
	key = jwt_key_from_jwk(&jwk->root);
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errhidestmt(true),
				 errmsg("unsupported JWK")));
	thumbprint = jwt_key_thumbprint(key);
	jwt_key_release(key);
	PG_RETURN_TEXT_P(cstring_to_text(thumbprint));
}

/* jwt_jwk_generate(algorithm text): a new private JWK for the algorithm */
PG_FUNCTION_INFO_V1(jwt_jwk_generate);
Datum
jwt_jwk_generate(PG_FUNCTION_ARGS)
{
	const JwsAlg *alg = sign_algorithm(PG_GETARG_TEXT_PP(0));
	JwtKey	   *key = jwt_key_generate(alg, jwt_rsa_bits);
	Jsonb	   *jwk = jwt_key_to_jwk(key, alg, NULL, true);

	jwt_key_release(key);
	PG_RETURN_JSONB_P(jwk);
}

/* Statement trigger on jwt_keys and jwt_issuers */
PG_FUNCTION_INFO_V1(jwt_keys_changed);
Datum
jwt_keys_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_jwt_keys_changed() must be called as a trigger")));

	/* a row trigger given the issuer column: that issuer's entries only */
	if (TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) && trigdata->tg_trigger->tgnargs == 1)
	{
		Relation	rel = trigdata->tg_relation;
		int			col = SPI_fnumber(RelationGetDescr(rel), trigdata->tg_trigger->tgargs[0]);
		HeapTuple	oldtup = NULL;
		HeapTuple	newtup = NULL;

		if (col <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("_jwt_keys_changed(): table \"%s\" has no column \"%s\"",
							RelationGetRelationName(rel), trigdata->tg_trigger->tgargs[0])));
		if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
			newtup = trigdata->tg_trigtuple;
		else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		{
			oldtup = trigdata->tg_trigtuple;
			newtup = trigdata->tg_newtuple;
		}
		else
			oldtup = trigdata->tg_trigtuple;
		jwt_store_rows_changed(rel, oldtup, newtup, col);
	}
	else
		jwt_store_changed(RelationGetRelid(trigdata->tg_relation));
	PG_RETURN_POINTER(NULL);
}

/* ----------------------------------------------------------------
 * Fetching identity providers' documents
 * ----------------------------------------------------------------
 */

/*
 * _jwt_fetch(url) -> (ok, http_status, body, max_age, expires, error): one
 * HTTPS GET (fetch.c).  Not for PUBLIC: the owner's functions call it.  The
 * body is JSON in UTF-8; it comes back in the database encoding.
 */
PG_FUNCTION_INFO_V1(jwt_fetch_url);
Datum
jwt_fetch_url(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	JwtFetchResult res;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	jwt_fetch(url, &res);
	values[0] = BoolGetDatum(res.ok);
	values[1] = Int32GetDatum((int32) res.http_status);
	if (res.ok)
	{
		char	   *conv = pg_any_to_server(res.body, (int) res.len, PG_UTF8);

		values[2] = PointerGetDatum(cstring_to_text(conv));
	}
	else
		nulls[2] = true;
	values[3] = Int32GetDatum(res.max_age);
	nulls[3] = res.max_age < 0;
	values[4] = TimestampTzGetDatum(res.expires);
	nulls[4] = res.expires == 0;
	values[5] = PointerGetDatum(cstring_to_text(res.error));
	nulls[5] = res.ok;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* _jwt_jwks_wake(): the worker is to read the schedule again at commit */
PG_FUNCTION_INFO_V1(jwt_jwks_wake);
Datum
jwt_jwks_wake(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	jwt_jwks_wake_at_commit();
	PG_RETURN_VOID();
}

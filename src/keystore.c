/*
 * keystore.c
 *		Per-backend cache of the key and issuer tables; keys and rules for a
 *		token.
 *
 * The cache holds every row of both tables, read in one go with the latest
 * snapshot (so a change is seen as soon as its invalidation is), and parses
 * a key the first time a token needs it.  It lives in its own memory
 * context under TopMemoryContext; resetting the context frees each parsed
 * key's EVP_PKEY and wipes each HMAC secret (see keys.h), so dropping the
 * cache is one MemoryContextReset.
 *
 * Only HMAC keys need their private part to verify: for every other key
 * only the public JWK is read, so private keys never enter the cache.
 */
#include "postgres.h"

#include <openssl/crypto.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "errcodes.h"
#include "jsonutil.h"
#include "jwksworker.h"
#include "keystore.h"

/* Most keys a token without "kid" is tried against */
#define MAX_KIDLESS_CANDIDATES	4

typedef enum KeyState
{
	KEY_STAGED,
	KEY_ACTIVE,
	KEY_RETIRED,
	KEY_REVOKED,
	KEY_UNKNOWN
} KeyState;

typedef struct StoreKey
{
	char	   *kid;
	int			kidlen;
	const JwsAlg *alg;			/* NULL: not an algorithm we know */
	char	   *issuer;			/* NULL: one of our own keys */
	int			issuerlen;
	KeyState	state;
	TimestampTz not_before;		/* DT_NOBEGIN when NULL */
	TimestampTz expires;		/* DT_NOEND when NULL */
	TimestampTz created;
	Jsonb	   *jwk;			/* public JWK; the private one for HMAC */
	bool		secret;			/* jwk holds a secret: wipe it */
	JwtKey	   *key;			/* parsed on first use */
} StoreKey;

typedef struct StoreIssuer
{
	char	   *issuer;
	int			issuerlen;
	bool		has_algs;
	const JwsAlg *algs[16];
	int			nalgs;
	bool		has_audiences;
	const char **audiences;
	int		   *audience_lens;
	int			naudiences;
	bool		has_leeway;
	int64		leeway;
	char	  **require;
	int			nrequire;
	bool		fetched;		/* its keys come from a URL (jwt_issuer_trust) */
} StoreIssuer;

static MemoryContext store_cxt = NULL;
static bool store_valid = false;
static bool store_from_query_snapshot = false;	/* loaded in a parallel query */
static bool callback_registered = false;
static Oid	keys_relid = InvalidOid;
static Oid	issuers_relid = InvalidOid;

static StoreKey *store_keys;
static int	store_nkeys;
static StoreIssuer *store_issuers;
static int	store_nissuers;

static MemoryContextCallback wipe_callback;

/* ----------------------------------------------------------------
 * Invalidation
 * ----------------------------------------------------------------
 */

static void
store_relcache_callback(Datum arg, Oid relid)
{
	(void) arg;
	if (relid == InvalidOid || relid == keys_relid || relid == issuers_relid)
		store_valid = false;
}

void
jwt_store_changed(Oid relid)
{
	CacheInvalidateRelcacheByRelid(relid);
}

/* Wipe the HMAC secrets the cache holds, before its memory is reused */
static void
store_wipe(void *arg)
{
	(void) arg;
	for (int i = 0; i < store_nkeys; i++)
	{
		if (store_keys[i].secret && store_keys[i].jwk != NULL)
			OPENSSL_cleanse(store_keys[i].jwk, VARSIZE(store_keys[i].jwk));
	}
	store_keys = NULL;
	store_nkeys = 0;
	store_issuers = NULL;
	store_nissuers = 0;
}

/* ----------------------------------------------------------------
 * Loading
 * ----------------------------------------------------------------
 */

static KeyState
key_state(const char *s)
{
	if (strcmp(s, "staged") == 0)
		return KEY_STAGED;
	if (strcmp(s, "active") == 0)
		return KEY_ACTIVE;
	if (strcmp(s, "retired") == 0)
		return KEY_RETIRED;
	if (strcmp(s, "revoked") == 0)
		return KEY_REVOKED;
	return KEY_UNKNOWN;
}

static char *
text_value(HeapTuple tup, TupleDesc desc, int col, int *len)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	char	   *s;

	if (isnull)
	{
		*len = 0;
		return NULL;
	}
	s = TextDatumGetCString(d);
	*len = strlen(s);
	return s;
}

static TimestampTz
time_value(HeapTuple tup, TupleDesc desc, int col, TimestampTz if_null)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? if_null : DatumGetTimestampTz(d);
}

static Jsonb *
jsonb_value(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	/* a copy, detoasted, in the cache's context */
	return isnull ? NULL : DatumGetJsonbPCopy(d);
}

static char **
text_array_value(HeapTuple tup, TupleDesc desc, int col, int *n)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char	  **out;

	*n = 0;
	if (isnull)
		return NULL;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	out = palloc(sizeof(char *) * (nelems + 1));
	for (int i = 0; i < nelems; i++)
		if (!nulls[i])
			out[(*n)++] = TextDatumGetCString(elems[i]);
	return out;
}

/* newest first, then by kid */
static int
newest_first(const void *a, const void *b)
{
	const StoreKey *x = a;
	const StoreKey *y = b;
	int			c;

	if (x->created != y->created)
		return x->created > y->created ? -1 : 1;
	c = memcmp(x->kid, y->kid, Min(x->kidlen, y->kidlen));
	return c != 0 ? c : x->kidlen - y->kidlen;
}

/*
 * The key rows, sorted here rather than by the query: a sort would copy the
 * HMAC secrets into memory it frees unwiped.
 */
static void
load_keys(const char *nsp)
{
	MemoryContext oldcxt;
	char	   *sql = psprintf("SELECT kid, alg, issuer, state, not_before, expires_at, jwk, "
							   "CASE WHEN alg OPERATOR(pg_catalog.=) ANY ('{HS256,HS384,HS512}'::pg_catalog.text[]) "
							   "THEN private_jwk END, created_at "
							   "FROM %s.jwt_keys", nsp);
	SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);

	if (plan == NULL ||
		SPI_execute_snapshot(plan, NULL, NULL, jwt_read_snapshot(), InvalidSnapshot,
							 true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the key table: %s", SPI_result_code_string(SPI_result));

	oldcxt = MemoryContextSwitchTo(store_cxt);
	store_keys = palloc0(sizeof(StoreKey) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		StoreKey   *k = &store_keys[store_nkeys];
		int			len;
		char	   *s;
		Jsonb	   *secret;

		k->kid = text_value(tup, desc, 1, &k->kidlen);
		s = text_value(tup, desc, 2, &len);
		k->alg = s ? jws_alg_find(s, len) : NULL;
		k->issuer = text_value(tup, desc, 3, &k->issuerlen);
		s = text_value(tup, desc, 4, &len);
		k->state = s ? key_state(s) : KEY_UNKNOWN;
		k->not_before = time_value(tup, desc, 5, DT_NOBEGIN);
		k->expires = time_value(tup, desc, 6, DT_NOEND);
		k->created = time_value(tup, desc, 9, DT_NOBEGIN);
		secret = jsonb_value(tup, desc, 8);
		if (secret != NULL)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(tup, desc, 8, &isnull);

			k->jwk = secret;
			k->secret = true;
			/*
			 * Leave no plain copy of the secret in SPI's memory.  A small
			 * row has a 1-byte header (VARATT_IS_EXTENDED is true for it, so
			 * that test skipped exactly the usual HMAC key); only a TOAST
			 * pointer is not the value itself, and a secret row is far too
			 * small to be toasted.
			 */
			if (!VARATT_IS_EXTERNAL(DatumGetPointer(d)))
				OPENSSL_cleanse(DatumGetPointer(d), VARSIZE_ANY(DatumGetPointer(d)));
		}
		else
			k->jwk = jsonb_value(tup, desc, 7);
		store_nkeys++;
	}
	qsort(store_keys, store_nkeys, sizeof(StoreKey), newest_first);
	MemoryContextSwitchTo(oldcxt);
}

static void
load_issuers(const char *nsp)
{
	MemoryContext oldcxt;
	/* jwks_uri and jwks_discovery are 0.5's: read them whatever the version */
	char	   *sql = psprintf("SELECT issuer, algorithms, audiences, leeway, required_claims, "
							   "(pg_catalog.to_jsonb(i) OPERATOR(pg_catalog.->>) 'jwks_uri') IS NOT NULL "
							   "OR coalesce((pg_catalog.to_jsonb(i) OPERATOR(pg_catalog.->>) 'jwks_discovery')::pg_catalog.bool, false) "
							   "FROM %s.jwt_issuers AS i", nsp);
	SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);

	if (plan == NULL ||
		SPI_execute_snapshot(plan, NULL, NULL, jwt_read_snapshot(), InvalidSnapshot,
							 true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the issuer table: %s", SPI_result_code_string(SPI_result));

	oldcxt = MemoryContextSwitchTo(store_cxt);
	store_issuers = palloc0(sizeof(StoreIssuer) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		StoreIssuer *r = &store_issuers[store_nissuers];
		char	  **names;
		int			n;
		bool		isnull;
		Datum		d;

		r->issuer = text_value(tup, desc, 1, &r->issuerlen);

		names = text_array_value(tup, desc, 2, &n);
		r->has_algs = names != NULL;
		for (int j = 0; j < n; j++)
		{
			const JwsAlg *alg = jws_alg_find(names[j], strlen(names[j]));

			if (alg != NULL && r->nalgs < (int) lengthof(r->algs))
				r->algs[r->nalgs++] = alg;
		}

		names = text_array_value(tup, desc, 3, &n);
		r->has_audiences = names != NULL;
		r->audiences = (const char **) names;
		r->naudiences = n;
		r->audience_lens = palloc(sizeof(int) * Max(n, 1));
		for (int j = 0; j < n; j++)
			r->audience_lens[j] = strlen(names[j]);

		d = SPI_getbinval(tup, desc, 4, &isnull);
		r->has_leeway = !isnull;
		if (!isnull)
		{
			Interval   *iv = DatumGetIntervalP(d);

			/* the table's CHECK keeps it between 0 and a day */
			r->leeway = iv->time + (int64) iv->day * USECS_PER_DAY;
		}

		r->require = text_array_value(tup, desc, 5, &r->nrequire);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		r->fetched = !isnull && DatumGetBool(d);
		store_nissuers++;
	}
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The snapshot the tables are read with: the newest committed state, so
 * that a change counts from the next call on.  A parallel query cannot take
 * a new snapshot; there the query's own serves (leader and workers agree),
 * and what is learnt from it is kept for that query only.
 */
Snapshot
jwt_read_snapshot(void)
{
	if (IsInParallelMode() && ActiveSnapshotSet())
		return GetActiveSnapshot();
	return GetLatestSnapshot();
}

/* the pg_extension row of extoid, as (namespace, owner) */
static void
extension_row(Oid extoid, Oid *nspoid, Oid *owner)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	*nspoid = InvalidOid;
	*owner = InvalidOid;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		*nspoid = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
		*owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* pg_extension.extnamespace (get_extension_schema is static before PG 16) */
Oid
jwt_extension_schema(Oid extoid)
{
	Oid			nspoid;
	Oid			owner;

	extension_row(extoid, &nspoid, &owner);
	return nspoid;
}

Oid
jwt_extension_owner(Oid extoid)
{
	Oid			nspoid;
	Oid			owner;

	extension_row(extoid, &nspoid, &owner);
	if (!OidIsValid(owner))
		elog(ERROR, "extension %u has no owner", extoid);
	return owner;
}

static Oid
rel_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Read both tables into the cache, as their owner: callers need not be able
 * to SELECT them, and the queries name nothing a caller's search_path could
 * redirect.
 */
static void
store_load(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	Oid			extoid;
	Oid			nspoid;
	const char *nsp;
	Oid			save_userid;
	int			save_sec;

	/* a cache read with a parallel query's snapshot serves that query only */
	if (store_valid && !(store_from_query_snapshot && !IsInParallelMode()))
		return;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(store_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	if (store_cxt == NULL)
	{
		store_cxt = AllocSetContextCreate(TopMemoryContext, "jwt key store",
										  ALLOCSET_SMALL_SIZES);
		wipe_callback.func = store_wipe;
		wipe_callback.arg = NULL;
	}
	else
		MemoryContextReset(store_cxt);
	MemoryContextRegisterResetCallback(store_cxt, &wipe_callback);

	extoid = get_extension_oid("jwt", false);
	nspoid = jwt_extension_schema(extoid);
	keys_relid = get_relname_relid("jwt_keys", nspoid);
	issuers_relid = get_relname_relid("jwt_issuers", nspoid);
	if (!OidIsValid(keys_relid) || !OidIsValid(issuers_relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the key tables of extension \"jwt\" are missing"),
				 errhint("Update the extension with ALTER EXTENSION jwt UPDATE.")));
	nsp = quote_identifier(get_namespace_name(nspoid));

	/*
	 * Valid from here: an invalidation that arrives while we read (taking
	 * the tables' locks accepts them) makes the next call read again.
	 */
	store_valid = true;
	store_from_query_snapshot = IsInParallelMode();

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(rel_owner(keys_relid),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		load_keys(nsp);
		load_issuers(nsp);
		SPI_finish();
	}
	PG_CATCH();
	{
		/* half a cache is no cache */
		store_valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_userid, save_sec);
	MemoryContextSwitchTo(oldcxt);
}

/* ----------------------------------------------------------------
 * Choosing keys and rules
 * ----------------------------------------------------------------
 */

static bool
same_string(const char *a, int alen, const char *b, int blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static StoreIssuer *
find_issuer(const char *iss, int len)
{
	for (int i = 0; i < store_nissuers; i++)
		if (same_string(store_issuers[i].issuer, store_issuers[i].issuerlen, iss, len))
			return &store_issuers[i];
	return NULL;
}

/* The issuer's rules, where the caller left a default */
static void
apply_rules(JwtVerifyParams *p, const StoreIssuer *r)
{
	if (r->has_algs)
	{
		if (p->restrict_algs)
		{
			int			n = 0;

			for (int i = 0; i < p->nallowed; i++)
				for (int j = 0; j < r->nalgs; j++)
					if (p->allowed[i] == r->algs[j])
						p->allowed[n++] = p->allowed[i];
			p->nallowed = n;
		}
		else
		{
			p->restrict_algs = true;
			memcpy(p->allowed, r->algs, sizeof(r->algs[0]) * r->nalgs);
			p->nallowed = r->nalgs;
		}
	}
	if (r->has_audiences && !p->audience_given)
	{
		p->audiences = r->audiences;
		p->audience_lens = r->audience_lens;
		p->naudiences = r->naudiences;
	}
	if (r->has_leeway && !p->leeway_given)
		p->leeway = r->leeway;
	if (r->nrequire > 0)
	{
		char	  **req = palloc(sizeof(char *) * (p->nrequire + r->nrequire));

		if (p->nrequire > 0)
			memcpy(req, p->require, sizeof(char *) * p->nrequire);
		memcpy(req + p->nrequire, r->require, sizeof(char *) * r->nrequire);
		p->require = req;
		p->nrequire += r->nrequire;
	}
}

static JwtKey *
store_key_parse(StoreKey *k)
{
	if (k->key == NULL && k->jwk != NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(store_cxt);

		k->key = jwt_key_from_jwk(&k->jwk->root);
		MemoryContextSwitchTo(oldcxt);
	}
	return k->key;
}

/*
 * At the end of a transaction: a cache read with a parallel query's
 * snapshot served that query, and must not serve a later one.
 */
void
jwt_store_end_of_xact(void)
{
	if (store_from_query_snapshot)
		store_valid = false;
}

bool
jwt_store_verify(const char *token, size_t len, JwtVerifyParams *params,
				 const char *own_issuer, JwtClaims *claims, JwtFailure *f)
{
	JwtOpened	t;
	JsonbValue *iss;
	const char *scope = NULL;	/* issuer whose keys apply; NULL: ours */
	int			scopelen = 0;
	JwtKey	   *keys[JWT_MAX_CANDIDATES];
	int			nkeys = 0;
	int			max = JWT_MAX_CANDIDATES;
	bool		fetched = false,
				retried = false;
	bool		kid_seen = false,
				revoked = false,
				expired = false,
				immature = false,
				other_alg = false;
	JwtVerifyParams caller_params = *params;

	if (!jwt_token_open(token, len, params, &t, f))
		return false;

	/* the issuer picks the keys, so "iss" is read before the signature */
	if (!jwt_decode_claims(&t.parts, claims, f))
		return false;
	iss = jwt_claim_value(claims, "iss");
	if (iss != NULL && iss->type != jbvString)
		return jwt_fail(f, ERRCODE_JWT_DECODE, "invalid \"iss\" claim",
						"The \"iss\" claim must be a string.");

again:
	/*
	 * The issuer's rules are applied to the caller's values, and point into
	 * the cache (store_cxt), which the retry's store_load() resets: start
	 * again from what the caller gave.
	 */
	*params = caller_params;
	scope = NULL;
	scopelen = 0;
	fetched = false;
	nkeys = 0;
	max = JWT_MAX_CANDIDATES;
	kid_seen = revoked = expired = immature = other_alg = false;

	/*
	 * A change committed since this transaction last took a lock counts
	 * from this call on, as the invalidation it sent is read here.
	 */
	AcceptInvalidationMessages();
	store_load();

	if (iss != NULL &&
		!(own_issuer != NULL && own_issuer[0] != '\0' &&
		  same_string(iss->val.string.val, iss->val.string.len,
					  own_issuer, strlen(own_issuer))))
	{
		StoreIssuer *r;

		if (params->own_keys_only)
			return jwt_fail(f, ERRCODE_JWT_ISSUER, "token was not issued by us",
							"Only tokens of our own issuer (jwt.issuer, or no \"iss\") are accepted here.");
		r = find_issuer(iss->val.string.val, iss->val.string.len);
		if (r == NULL)
			return jwt_fail(f, ERRCODE_JWT_KEY, "token issuer is not trusted",
							"No trusted issuer matches the token's \"iss\", and it is not jwt.issuer.");
		scope = r->issuer;
		scopelen = r->issuerlen;
		fetched = r->fetched;
		apply_rules(params, r);
		if (!jwt_alg_allowed(params, t.alg))
			return jwt_fail(f, ERRCODE_JWT_ALGORITHM, "token algorithm is not allowed",
							psprintf("The token is signed with %s, which is not allowed for its issuer.",
									 t.alg->name));
	}

	if (t.kid == NULL)
		max = MAX_KIDLESS_CANDIDATES;
	for (int i = 0; i < store_nkeys && nkeys < max; i++)
	{
		StoreKey   *k = &store_keys[i];
		JwtKey	   *key;

		if (scope == NULL ? k->issuer != NULL :
			(k->issuer == NULL || !same_string(k->issuer, k->issuerlen, scope, scopelen)))
			continue;
		if (t.kid != NULL)
		{
			if (!same_string(k->kid, k->kidlen, t.kid->val.string.val, t.kid->val.string.len))
				continue;
			kid_seen = true;
		}
		else if (k->alg != t.alg)
			continue;

		if (k->state == KEY_REVOKED || k->state == KEY_UNKNOWN)
		{
			revoked = true;
			continue;
		}
		if (k->expires <= params->now)
		{
			expired = true;
			continue;
		}
		if (k->not_before > params->now)
		{
			immature = true;
			continue;
		}
		if (k->alg != t.alg)
		{
			other_alg = true;
			continue;
		}
		if ((key = store_key_parse(k)) == NULL || !jwt_key_allows(key, t.alg))
		{
			other_alg = true;
			continue;
		}
		keys[nkeys++] = key;
	}

	if (nkeys == 0)
	{
		if (t.kid != NULL && !kid_seen)
		{
			uint64		ticket;

			/*
			 * The issuer may have rotated: ask the worker for its keys (at
			 * most once per cool-down), and maybe wait for them, once.
			 */
			if (fetched && !retried &&
				jwt_jwks_request(scope, scopelen, &ticket) && jwt_jwks_miss_wait > 0 &&
				jwt_jwks_wait(ticket, jwt_jwks_miss_wait))
			{
				retried = true;
				goto again;
			}
			return jwt_fail(f, ERRCODE_JWT_KEY, "no key matches the token's key ID",
							scope ? "The token's issuer has no key with its \"kid\"."
							: "No key of our own has the token's \"kid\".");
		}
		if (revoked)
			return jwt_fail(f, ERRCODE_JWT_KEY, "key has been revoked", NULL);
		if (expired)
			return jwt_fail(f, ERRCODE_JWT_KEY, "key has expired", NULL);
		if (immature)
			return jwt_fail(f, ERRCODE_JWT_KEY, "key is not yet valid", NULL);
		if (other_alg)
			return jwt_fail(f, ERRCODE_JWT_ALGORITHM, "token algorithm does not fit the key",
							psprintf("The token is signed with %s, which its key is not for.",
									 t.alg->name));
		return jwt_fail(f, ERRCODE_JWT_KEY, "no key fits the token",
						psprintf("The token has no \"kid\" and no key of its issuer is for %s.",
								 t.alg->name));
	}

	return jwt_token_check(&t, keys, nkeys, params, claims, f);
}

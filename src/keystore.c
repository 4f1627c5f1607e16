/*
 * keystore.c
 *		Per-backend cache of the key and issuer tables, one issuer at a
 *		time; keys and rules for a token.
 *
 * A verification touches only the token's issuer.  Its row of jwt_issuers
 * and its rows of jwt_keys (our own keys: the rows whose issuer is NULL)
 * are read through the tables' indexes, with the latest snapshot, into an
 * entry of their own, and kept: entries are found by the issuer's tag (a
 * hash of its name), least recently used ones are evicted once they hold
 * more than jwt.issuer_cache_memory, and nothing a backend holds or does
 * per call grows with the number of rows in either table.  A key is parsed
 * the first time a token needs it.
 *
 * Invalidation is per issuer.  A row trigger on each table sends, at
 * commit, a relcache invalidation for the issuer's tag, a number in the
 * range of ordinary OIDs that no relation of ours needs to have: the
 * message machinery carries any OID (to every backend of the database, and
 * in the commit record to hot standbys), a relation that happens to have
 * that OID only rebuilds its relcache entry, and the tag's entries here are
 * dropped.  A change to many issuers in one command sends one message for
 * the whole table instead (see jwt_store_rows_changed), which drops every
 * entry, as does a change to the tables themselves (ALTER, TRUNCATE,
 * VACUUM's statistics) and a reset of all caches.
 *
 * Entries are only marked by the invalidation callback, which may run
 * whenever a lock is taken; they are freed at the start of the next
 * verification, when nothing of theirs is in use.  Each lives in a memory
 * context of its own: deleting it frees each parsed key's EVP_PKEY and
 * wipes each HMAC secret (see keys.h).  An entry is loaded in a child of
 * the caller's context, so an error while loading frees it with the call.
 *
 * Only HMAC keys need their private part to verify: for every other key
 * only the public JWK is read, so private keys never enter the cache.
 */
#include "postgres.h"

#include <openssl/crypto.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "errcodes.h"
#include "jsonutil.h"
#include "jwksworker.h"
#include "keystore.h"

/* Most keys a token without "kid" is tried against */
#define MAX_KIDLESS_CANDIDATES	4

/*
 * Most issuers one command invalidates one by one; past it, the command
 * invalidates the whole table (PostgreSQL looks through a command's
 * messages for a duplicate on every new one).
 */
#define MAX_TAGS_PER_COMMAND	256

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

/* One issuer's rules and keys, or our own keys */
typedef struct StoreEntry
{
	dlist_node	chain;			/* in its tag's bucket */
	dlist_node	lru;			/* in store_lru, most recently used first */
	uint32		tag;
	bool		own;			/* our own keys (rules unused) */
	bool		valid;			/* false: freed at the next verification */
	bool		query_snapshot; /* read with a parallel query's snapshot */
	MemoryContext cxt;			/* holds the entry and all it points to */
	Size		bytes;			/* counted against jwt.issuer_cache_memory */
	StoreIssuer rules;
	StoreKey   *keys;			/* newest first */
	int			nkeys;
	MemoryContextCallback wipe;
} StoreEntry;

typedef struct StoreBucket
{
	uint32		tag;			/* hash key */
	dlist_head	entries;		/* StoreEntry.chain; more than one is rare */
} StoreBucket;

int			jwt_issuer_cache_memory = 4096; /* kB */
JwtCacheStats jwt_store_cache_stats;

static MemoryContext store_cxt = NULL;
static HTAB *store_hash = NULL;
static dlist_head store_lru = DLIST_STATIC_INIT(store_lru);
static int	store_nentries = 0;
static Size store_bytes = 0;
static int	store_ninvalid = 0;	/* entries marked, not yet freed */
static int	store_nquery = 0;	/* valid entries read with a query snapshot */
static uint64 store_generation = 0; /* bumped by every invalidation */
static bool callback_registered = false;

/* the tables and the saved plans that read them (NULL: not prepared) */
static Oid	keys_relid = InvalidOid;
static Oid	issuers_relid = InvalidOid;
static SPIPlanPtr issuer_plan = NULL;
static SPIPlanPtr issuer_keys_plan = NULL;
static SPIPlanPtr own_keys_plan = NULL;

/* ----------------------------------------------------------------
 * Tags and invalidation
 * ----------------------------------------------------------------
 */

/*
 * An issuer's tag: a hash of its name, in the range of ordinary OIDs
 * (catalogs' OIDs, whose invalidations also rewrite the relcache init
 * file, are below it).  Our own keys have the tag of the empty name, which
 * no issuer has (the table's CHECK).
 */
uint32
jwt_issuer_tag(const char *iss, int len)
{
	uint32		h = hash_bytes((const unsigned char *) iss, len);

	return FirstNormalObjectId + h % ((uint32) PG_UINT32_MAX - FirstNormalObjectId);
}

static void
entry_mark(StoreEntry *e)
{
	if (!e->valid)
		return;
	e->valid = false;
	store_ninvalid++;
	if (e->query_snapshot)
		store_nquery--;
}

static void
mark_all(void)
{
	dlist_iter	it;

	dlist_foreach(it, &store_lru)
		entry_mark(dlist_container(StoreEntry, lru, it.cur));
}

static void
store_relcache_callback(Datum arg, Oid relid)
{
	(void) arg;
	if (store_hash == NULL)
		return;
	store_generation++;
	if (relid == InvalidOid || relid == keys_relid || relid == issuers_relid)
		mark_all();
	else if (relid >= FirstNormalObjectId)
	{
		uint32		tag = relid;
		StoreBucket *b = hash_search(store_hash, &tag, HASH_FIND, NULL);
		dlist_iter	it;

		if (b != NULL)
			dlist_foreach(it, &b->entries)
				entry_mark(dlist_container(StoreEntry, chain, it.cur));
	}
}

/* a relcache invalidation of an OID that names no relation of ours */
static void
send_tag(uint32 tag)
{
	Size		hoff = MAXALIGN(SizeofHeapTupleHeader);
	HeapTupleData tup;
	Form_pg_class rel;

	/*
	 * CacheInvalidateRelcacheByTuple reads only the OID and relisshared of
	 * the pg_class row it is given: a zeroed row with our tag is enough.
	 */
	tup.t_len = hoff + sizeof(FormData_pg_class);
	tup.t_data = palloc0(tup.t_len);
	tup.t_data->t_hoff = hoff;
	ItemPointerSetInvalid(&tup.t_self);
	tup.t_tableOid = RelationRelationId;
	rel = (Form_pg_class) GETSTRUCT(&tup);
	rel->oid = tag;
	rel->relisshared = false;
	CacheInvalidateRelcacheByTuple(&tup);
	pfree(tup.t_data);
}

/* this backend's local transaction id (in PGPROC.vxid from PostgreSQL 17) */
static inline LocalTransactionId
my_lxid(void)
{
#if PG_VERSION_NUM >= 170000
	return MyProc->vxid.lxid;
#else
	return MyProc->lxid;
#endif
}

void
jwt_store_changed(Oid relid)
{
	CacheInvalidateRelcacheByRelid(relid);
}

/*
 * A row of a table whose issuer column is col changed: its issuer's entry
 * is dropped in every backend at commit, or, past MAX_TAGS_PER_COMMAND
 * issuers in one command, every entry.  Both messages belong to the same
 * (sub)transaction and command as the change, so an abort discards them
 * with it.
 */
void
jwt_store_rows_changed(Relation rel, HeapTuple oldtup, HeapTuple newtup, int col)
{
	static LocalTransactionId lxid = InvalidLocalTransactionId;
	static SubTransactionId subxid = InvalidSubTransactionId;
	static CommandId cid = InvalidCommandId;
	static int	sent = 0;
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTuple	tups[2] = {oldtup, newtup};
	uint32		tags[2];
	int			ntags = 0;

	for (int i = 0; i < 2; i++)
	{
		bool		isnull;
		Datum		d;
		uint32		tag;

		if (tups[i] == NULL)
			continue;
		d = heap_getattr(tups[i], col, desc, &isnull);
		if (isnull)
			tag = jwt_issuer_tag("", 0);
		else
		{
			text	   *t = DatumGetTextPP(d);

			tag = jwt_issuer_tag(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		}
		if (ntags == 0 || tags[0] != tag)
			tags[ntags++] = tag;
	}

	if (my_lxid() != lxid || GetCurrentSubTransactionId() != subxid ||
		GetCurrentCommandId(false) != cid)
	{
		lxid = my_lxid();
		subxid = GetCurrentSubTransactionId();
		cid = GetCurrentCommandId(false);
		sent = 0;
	}
	for (int i = 0; i < ntags; i++)
	{
		if (sent < MAX_TAGS_PER_COMMAND)
		{
			send_tag(tags[i]);
			sent++;
		}
		else
			CacheInvalidateRelcacheByRelid(RelationGetRelid(rel));
	}
}

/* ----------------------------------------------------------------
 * Entries
 * ----------------------------------------------------------------
 */

/* Wipe the HMAC secrets an entry holds, before its memory is reused */
static void
entry_wipe(void *arg)
{
	StoreEntry *e = arg;

	for (int i = 0; i < e->nkeys; i++)
	{
		if (e->keys[i].secret && e->keys[i].jwk != NULL)
			OPENSSL_cleanse(e->keys[i].jwk, VARSIZE(e->keys[i].jwk));
	}
	e->nkeys = 0;
}

static void
entry_free(StoreEntry *e)
{
	StoreBucket *b;

	dlist_delete(&e->chain);
	dlist_delete(&e->lru);
	b = hash_search(store_hash, &e->tag, HASH_FIND, NULL);
	if (b != NULL && dlist_is_empty(&b->entries))
		hash_search(store_hash, &e->tag, HASH_REMOVE, NULL);
	if (!e->valid)
		store_ninvalid--;
	else if (e->query_snapshot)
		store_nquery--;
	store_nentries--;
	store_bytes -= e->bytes;
	MemoryContextDelete(e->cxt);	/* wipes and releases; e is gone */
}

static Size
memory_limit(void)
{
	return (Size) Max(jwt_issuer_cache_memory, 0) * 1024;
}

/* Free what was marked, and what the memory bound has no room for */
static void
store_sweep(StoreEntry *keep)
{
	dlist_mutable_iter it;

	if (store_ninvalid > 0)
	{
		dlist_foreach_modify(it, &store_lru)
		{
			StoreEntry *e = dlist_container(StoreEntry, lru, it.cur);

			if (!e->valid && e != keep)
				entry_free(e);
		}
	}
	while (store_bytes > memory_limit() && !dlist_is_empty(&store_lru))
	{
		StoreEntry *e = dlist_container(StoreEntry, lru, dlist_tail_node(&store_lru));

		if (e == keep)
			break;
		entry_free(e);
	}
}

static void
store_init(void)
{
	HASHCTL		ctl;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(store_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	if (store_cxt != NULL)
		return;
	store_cxt = AllocSetContextCreate(TopMemoryContext, "jwt key store",
									  ALLOCSET_SMALL_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint32);
	ctl.entrysize = sizeof(StoreBucket);
	ctl.hcxt = store_cxt;
	store_hash = hash_create("jwt key store", 256, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * At the end of a transaction: an entry read with a parallel query's
 * snapshot served that query, and must not serve a later one.
 */
void
jwt_store_end_of_xact(void)
{
	dlist_iter	it;

	if (store_nquery <= 0)
		return;
	dlist_foreach(it, &store_lru)
	{
		StoreEntry *e = dlist_container(StoreEntry, lru, it.cur);

		if (e->query_snapshot)
			entry_mark(e);
	}
}

void
jwt_store_fill_stats(void)
{
	jwt_store_cache_stats.entries = store_nentries;
	jwt_store_cache_stats.capacity = -1;	/* bounded in bytes only */
	jwt_store_cache_stats.bytes = store_bytes;
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

/* a text column, copied into cxt (NULL when NULL) */
static char *
text_value(HeapTuple tup, TupleDesc desc, int col, int *len, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	text	   *t;
	char	   *s;

	*len = 0;
	if (isnull)
		return NULL;
	t = DatumGetTextPP(d);
	*len = VARSIZE_ANY_EXHDR(t);
	s = MemoryContextAlloc(cxt, *len + 1);
	memcpy(s, VARDATA_ANY(t), *len);
	s[*len] = '\0';
	return s;
}

static TimestampTz
time_value(HeapTuple tup, TupleDesc desc, int col, TimestampTz if_null)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? if_null : DatumGetTimestampTz(d);
}

/* a jsonb column, detoasted, copied into cxt */
static Jsonb *
jsonb_value(HeapTuple tup, TupleDesc desc, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	MemoryContext oldcxt;
	Jsonb	   *copy;

	if (isnull)
		return NULL;
	/* detoasted straight into cxt: no other whole copy is made */
	oldcxt = MemoryContextSwitchTo(cxt);
	copy = DatumGetJsonbPCopy(d);
	MemoryContextSwitchTo(oldcxt);
	return copy;
}

/* a text[] column's non-NULL elements, copied into cxt (NULL when NULL) */
static char **
text_array_value(HeapTuple tup, TupleDesc desc, int col, int *n, MemoryContext cxt)
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
	out = MemoryContextAlloc(cxt, sizeof(char *) * (nelems + 1));
	for (int i = 0; i < nelems; i++)
		if (!nulls[i])
			out[(*n)++] = MemoryContextStrdup(cxt, TextDatumGetCString(elems[i]));
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
 * The key rows of the entry's issuer (or our own), sorted here rather than
 * by the query: a sort would copy the HMAC secrets into memory it frees
 * unwiped.
 */
static void
load_keys(StoreEntry *e, Snapshot snap)
{
	Datum		arg = e->own ? (Datum) 0 :
		PointerGetDatum(cstring_to_text_with_len(e->rules.issuer, e->rules.issuerlen));
	int			rc;

	rc = SPI_execute_snapshot(e->own ? own_keys_plan : issuer_keys_plan,
							  e->own ? NULL : &arg, NULL, snap, InvalidSnapshot,
							  true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the key table: %s", SPI_result_code_string(rc));

	e->keys = MemoryContextAllocZero(e->cxt, sizeof(StoreKey) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		StoreKey   *k = &e->keys[e->nkeys];
		int			len;
		char	   *s;
		bool		isnull;
		Datum		d;

		k->kid = text_value(tup, desc, 1, &k->kidlen, e->cxt);
		s = text_value(tup, desc, 2, &len, CurrentMemoryContext);
		k->alg = s ? jws_alg_find(s, len) : NULL;
		s = text_value(tup, desc, 3, &len, CurrentMemoryContext);
		k->state = s ? key_state(s) : KEY_UNKNOWN;
		k->not_before = time_value(tup, desc, 4, DT_NOBEGIN);
		k->expires = time_value(tup, desc, 5, DT_NOEND);
		k->created = time_value(tup, desc, 8, DT_NOBEGIN);
		d = SPI_getbinval(tup, desc, 7, &isnull);
		if (!isnull)
		{
			Pointer		raw = DatumGetPointer(d);

			k->jwk = jsonb_value(tup, desc, 7, e->cxt);
			k->secret = true;
			/*
			 * Leave no plain copy of the secret in SPI's memory.  A small
			 * row has a 1-byte header (VARATT_IS_EXTENDED is true for it, so
			 * that test skipped exactly the usual HMAC key); only a TOAST
			 * pointer is not the value itself, and a secret row is far too
			 * small to be toasted.
			 */
			if (!VARATT_IS_EXTERNAL(raw))
				OPENSSL_cleanse(raw, VARSIZE_ANY(raw));
		}
		else
			k->jwk = jsonb_value(tup, desc, 6, e->cxt);
		e->nkeys++;
	}
	qsort(e->keys, e->nkeys, sizeof(StoreKey), newest_first);
}

/* The issuer's row into e->rules; false when there is none */
static bool
load_rules(StoreEntry *e, Snapshot snap)
{
	StoreIssuer *r = &e->rules;
	Datum		arg = PointerGetDatum(cstring_to_text_with_len(r->issuer, r->issuerlen));
	HeapTuple	tup;
	TupleDesc	desc;
	char	  **names;
	int			n;
	bool		isnull;
	Datum		d;
	int			rc;

	rc = SPI_execute_snapshot(issuer_plan, &arg, NULL, snap, InvalidSnapshot,
							  true, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the issuer table: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	names = text_array_value(tup, desc, 1, &n, CurrentMemoryContext);
	r->has_algs = names != NULL;
	for (int j = 0; j < n; j++)
	{
		const JwsAlg *alg = jws_alg_find(names[j], strlen(names[j]));

		if (alg != NULL && r->nalgs < (int) lengthof(r->algs))
			r->algs[r->nalgs++] = alg;
	}

	names = text_array_value(tup, desc, 2, &n, e->cxt);
	r->has_audiences = names != NULL;
	r->audiences = (const char **) names;
	r->naudiences = n;
	r->audience_lens = MemoryContextAlloc(e->cxt, sizeof(int) * Max(n, 1));
	for (int j = 0; j < n; j++)
		r->audience_lens[j] = strlen(names[j]);

	d = SPI_getbinval(tup, desc, 3, &isnull);
	r->has_leeway = !isnull;
	if (!isnull)
	{
		Interval   *iv = DatumGetIntervalP(d);

		/* the table's CHECK keeps it between 0 and a day */
		r->leeway = iv->time + (int64) iv->day * USECS_PER_DAY;
	}

	r->require = text_array_value(tup, desc, 4, &r->nrequire, e->cxt);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	r->fetched = !isnull && DatumGetBool(d);
	return true;
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
 * The tables' OIDs, and the saved plans that read them by index: made when
 * missing, made again when the tables are others (the extension was
 * dropped and created again, or moved).  With SPI connected.
 */
static void
store_tables(void)
{
	Oid			extoid = get_extension_oid("jwt", false);
	Oid			nspoid = jwt_extension_schema(extoid);
	Oid			krel = get_relname_relid("jwt_keys", nspoid);
	Oid			irel = get_relname_relid("jwt_issuers", nspoid);
	const char *nsp;
	Oid			argtype = TEXTOID;
	const char *key_cols = "SELECT kid, alg, state, not_before, expires_at, jwk, "
		"CASE WHEN alg OPERATOR(pg_catalog.=) ANY ('{HS256,HS384,HS512}'::pg_catalog.text[]) "
		"THEN private_jwk END, created_at ";

	if (!OidIsValid(krel) || !OidIsValid(irel))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the key tables of extension \"jwt\" are missing"),
				 errhint("Update the extension with ALTER EXTENSION jwt UPDATE.")));
	if (krel == keys_relid && irel == issuers_relid && issuer_plan != NULL &&
		issuer_keys_plan != NULL && own_keys_plan != NULL)
		return;

	/* what was read from other tables is not theirs */
	mark_all();
	if (issuer_plan != NULL)
		SPI_freeplan(issuer_plan);
	if (issuer_keys_plan != NULL)
		SPI_freeplan(issuer_keys_plan);
	if (own_keys_plan != NULL)
		SPI_freeplan(own_keys_plan);
	issuer_plan = issuer_keys_plan = own_keys_plan = NULL;
	keys_relid = krel;
	issuers_relid = irel;

	nsp = quote_identifier(get_namespace_name(nspoid));
	/* jwks_uri and jwks_discovery are 0.5's: read them whatever the version */
	issuer_plan = SPI_prepare(psprintf("SELECT algorithms, audiences, leeway, required_claims, "
									   "(pg_catalog.to_jsonb(i) OPERATOR(pg_catalog.->>) 'jwks_uri') IS NOT NULL "
									   "OR coalesce((pg_catalog.to_jsonb(i) OPERATOR(pg_catalog.->>) 'jwks_discovery')::pg_catalog.bool, false) "
									   "FROM %s.jwt_issuers AS i WHERE i.issuer OPERATOR(pg_catalog.=) $1", nsp),
							  1, &argtype);
	if (issuer_plan == NULL || SPI_keepplan(issuer_plan) != 0)
		elog(ERROR, "could not prepare the issuer query: %s", SPI_result_code_string(SPI_result));
	issuer_keys_plan = SPI_prepare(psprintf("%s FROM %s.jwt_keys WHERE issuer OPERATOR(pg_catalog.=) $1",
											key_cols, nsp),
								   1, &argtype);
	if (issuer_keys_plan == NULL || SPI_keepplan(issuer_keys_plan) != 0)
		elog(ERROR, "could not prepare the key query: %s", SPI_result_code_string(SPI_result));
	own_keys_plan = SPI_prepare(psprintf("%s FROM %s.jwt_keys WHERE issuer IS NULL", key_cols, nsp),
								0, NULL);
	if (own_keys_plan == NULL || SPI_keepplan(own_keys_plan) != 0)
		elog(ERROR, "could not prepare the key query: %s", SPI_result_code_string(SPI_result));
}

/*
 * Read an issuer's row and keys (own: our own keys) into a new entry, as
 * the tables' owner: callers need not be able to SELECT them, and the
 * queries name nothing a caller's search_path could redirect.  NULL when
 * the issuer has no row (nothing is kept then: a stream of tokens of
 * unknown issuers must not push the known ones out).
 */
static StoreEntry *
entry_load(uint32 tag, const char *iss, int len, bool own)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	MemoryContext cxt;
	StoreEntry *e;
	StoreBucket *b;
	uint64		gen = store_generation;
	Oid			save_userid;
	int			save_sec;
	Snapshot	snap;
	bool		found;

	/* a child of the caller's context until it is complete */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "jwt key store entry",
								ALLOCSET_SMALL_SIZES);
	e = MemoryContextAllocZero(cxt, sizeof(StoreEntry));
	e->cxt = cxt;
	e->tag = tag;
	e->own = own;
	e->valid = true;
	e->query_snapshot = IsInParallelMode();
	e->wipe.func = entry_wipe;
	e->wipe.arg = e;
	MemoryContextRegisterResetCallback(cxt, &e->wipe);
	if (!own)
	{
		e->rules.issuer = MemoryContextAlloc(cxt, len + 1);
		memcpy(e->rules.issuer, iss, len);
		e->rules.issuer[len] = '\0';
		e->rules.issuerlen = len;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	store_tables();
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(rel_owner(keys_relid),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	/* one snapshot: the rules and the keys of one moment */
	snap = RegisterSnapshot(jwt_read_snapshot());
	found = own || load_rules(e, snap);
	if (found)
		load_keys(e, snap);
	UnregisterSnapshot(snap);
	SetUserIdAndSecContext(save_userid, save_sec);
	SPI_finish();
	MemoryContextSwitchTo(oldcxt);

	if (!found)
	{
		MemoryContextDelete(cxt);
		return NULL;
	}

	b = hash_search(store_hash, &tag, HASH_ENTER, &found);
	if (!found)
		dlist_init(&b->entries);
	/* kept from here on */
	MemoryContextSetParent(cxt, store_cxt);
	dlist_push_head(&b->entries, &e->chain);
	dlist_push_head(&store_lru, &e->lru);
	e->bytes = MemoryContextMemAllocated(cxt, true);
	store_nentries++;
	store_bytes += e->bytes;
	if (e->query_snapshot)
		store_nquery++;
	/*
	 * An invalidation that arrived while we read (taking the tables' locks
	 * accepts them) may have been for this issuer: serve this call, read
	 * again on the next.
	 */
	if (store_generation != gen)
		entry_mark(e);
	store_sweep(e);
	return e;
}

/* The entry of an issuer (own: of our own keys), read if missing */
static StoreEntry *
store_find(const char *iss, int len, bool own)
{
	uint32		tag = own ? jwt_issuer_tag("", 0) : jwt_issuer_tag(iss, len);
	StoreBucket *b = hash_search(store_hash, &tag, HASH_FIND, NULL);

	if (b != NULL)
	{
		dlist_iter	it;

		dlist_foreach(it, &b->entries)
		{
			StoreEntry *e = dlist_container(StoreEntry, chain, it.cur);

			if (e->own != own ||
				(!own && (e->rules.issuerlen != len || memcmp(e->rules.issuer, iss, len) != 0)))
				continue;
			/* read with a parallel query's snapshot: for that query only */
			if (!e->valid || (e->query_snapshot && !IsInParallelMode()))
				continue;
			dlist_move_head(&store_lru, &e->lru);
			jwt_store_cache_stats.hits++;
			return e;
		}
	}
	jwt_store_cache_stats.misses++;
	return entry_load(tag, iss, len, own);
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

/*
 * What OpenSSL allocates for a parsed public key, outside our contexts
 * (about this for P-256 and RSA-2048 keys in OpenSSL 3): counted against
 * the memory bound with the entry.
 */
#define PARSED_KEY_BYTES	2048

static JwtKey *
store_key_parse(StoreEntry *e, StoreKey *k)
{
	if (k->key == NULL && k->jwk != NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(e->cxt);
		Size		before = MemoryContextMemAllocated(e->cxt, true);
		Size		grown;

		k->key = jwt_key_from_jwk(&k->jwk->root);
		MemoryContextSwitchTo(oldcxt);
		grown = MemoryContextMemAllocated(e->cxt, true) - before + PARSED_KEY_BYTES;
		e->bytes += grown;
		store_bytes += grown;
	}
	return k->key;
}

bool
jwt_store_verify(const char *token, size_t len, JwtVerifyParams *params,
				 const char *own_issuer, JwtClaims *claims, JwtFailure *f)
{
	JwtOpened	t;
	JsonbValue *iss;
	StoreEntry *e;
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
	 * an entry, which the retry may free: start again from what the caller
	 * gave.
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
	 * from this call on, as the invalidation it sent is read here; what it
	 * marked is freed now, when nothing of it is in use.
	 */
	store_init();
	AcceptInvalidationMessages();
	store_sweep(NULL);

	if (iss != NULL &&
		!(own_issuer != NULL && own_issuer[0] != '\0' &&
		  same_string(iss->val.string.val, iss->val.string.len,
					  own_issuer, strlen(own_issuer))))
	{
		if (params->own_keys_only)
			return jwt_fail(f, ERRCODE_JWT_ISSUER, "token was not issued by us",
							"Only tokens of our own issuer (jwt.issuer, or no \"iss\") are accepted here.");
		e = store_find(iss->val.string.val, iss->val.string.len, false);
		if (e == NULL)
			return jwt_fail(f, ERRCODE_JWT_KEY, "token issuer is not trusted",
							"No trusted issuer matches the token's \"iss\", and it is not jwt.issuer.");
		scope = e->rules.issuer;
		scopelen = e->rules.issuerlen;
		fetched = e->rules.fetched;
		apply_rules(params, &e->rules);
		if (!jwt_alg_allowed(params, t.alg))
			return jwt_fail(f, ERRCODE_JWT_ALGORITHM, "token algorithm is not allowed",
							psprintf("The token is signed with %s, which is not allowed for its issuer.",
									 t.alg->name));
	}
	else
		e = store_find(NULL, 0, true);

	if (t.kid == NULL)
		max = MAX_KIDLESS_CANDIDATES;
	for (int i = 0; i < e->nkeys && nkeys < max; i++)
	{
		StoreKey   *k = &e->keys[i];
		JwtKey	   *key;

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
		if ((key = store_key_parse(e, k)) == NULL || !jwt_key_allows(key, t.alg))
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

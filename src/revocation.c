/*
 * revocation.c
 *		What verification checks against the revocation tables, and the
 *		one write that must outlive its transaction: revoking a refresh
 *		token family when a rotated token comes back.
 *
 * A verified token is revoked when its "jti" is in jwt_revoked, or its
 * "sub" is in jwt_revoked_subjects with a "before" later than its "iat".
 * Each check is one primary-key probe, made directly on the index (no SPI,
 * no plan), and skipped altogether while the table is known to be empty:
 * the tables' statement trigger sends a relcache invalidation, so every
 * backend, and every hot standby replaying the change, learns when to look
 * again.  Nothing here writes, except the background worker below.
 *
 * The probes read the tables without privilege checks, as the key store
 * does with its owner's rights: any role may verify, none may read them.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/file_perm.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "compat.h"
#include "errcodes.h"
#include "jsonutil.h"
#include "keystore.h"
#include "pending.h"
#include "revocation.h"
#include "worker.h"

typedef enum RevState
{
	REV_UNKNOWN,				/* look before trusting */
	REV_EMPTY,					/* no rows: nothing to probe */
	REV_ROWS
} RevState;

typedef struct RevTable
{
	const char *name;
	Oid			relid;			/* InvalidOid: absent (extension older) */
	RevState	state;
	bool		from_query_snapshot;	/* state learnt in a parallel query */
} RevTable;

static RevTable rev_jti = {"jwt_revoked", InvalidOid, REV_UNKNOWN, false};
static RevTable rev_sub = {"jwt_revoked_subjects", InvalidOid, REV_UNKNOWN, false};
static bool rev_looked_up = false;
static bool rev_callback_registered = false;

static void
rev_relcache_callback(Datum arg, Oid relid)
{
	(void) arg;
	if (relid == InvalidOid || relid == rev_jti.relid || relid == rev_sub.relid)
	{
		/* the tables may have been dropped and made again: look them up too */
		rev_looked_up = false;
		rev_jti.state = REV_UNKNOWN;
		rev_sub.state = REV_UNKNOWN;
	}
}

static void
rev_lookup(void)
{
	Oid			extoid;
	Oid			nspoid = InvalidOid;

	if (!rev_callback_registered)
	{
		CacheRegisterRelcacheCallback(rev_relcache_callback, (Datum) 0);
		rev_callback_registered = true;
	}
	extoid = get_extension_oid("jwt", true);
	if (OidIsValid(extoid))
		nspoid = jwt_extension_schema(extoid);
	rev_jti.relid = OidIsValid(nspoid) ? get_relname_relid(rev_jti.name, nspoid) : InvalidOid;
	rev_sub.relid = OidIsValid(nspoid) ? get_relname_relid(rev_sub.name, nspoid) : InvalidOid;
	rev_jti.state = REV_UNKNOWN;
	rev_sub.state = REV_UNKNOWN;
	rev_looked_up = true;
}

/*
 * The row of relid whose one-column primary key equals key (compared with
 * eqproc), or with key 0 any row; with tuple given, a copy of the row in
 * the current memory context.  Read with the newest committed state, so
 * that a revocation counts from the next call on.
 */
static bool
probe(Oid relid, RegProcedure eqproc, Datum key, Snapshot snap, HeapTuple *tuple,
	  TupleDesc *desc)
{
	Relation	rel;
	Oid			indexid;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found;

	rel = table_open(relid, AccessShareLock);
	indexid = jwt_primary_key_index(rel);
	if (!OidIsValid(indexid))
		elog(ERROR, "table \"%s\" has no primary key", RelationGetRelationName(rel));

	if (eqproc != InvalidOid)
	{
		ScanKeyInit(&skey, 1, BTEqualStrategyNumber, eqproc, key);
		skey.sk_collation = C_COLLATION_OID;	/* the text keys are COLLATE "C" */
	}
	scan = systable_beginscan(rel, indexid, true, snap, eqproc != InvalidOid ? 1 : 0, &skey);
	tup = systable_getnext(scan);
	found = HeapTupleIsValid(tup);
	if (found && tuple != NULL)
	{
		*tuple = heap_copytuple(tup);
		*desc = CreateTupleDescCopy(RelationGetDescr(rel));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* the row of t whose key (text) is key, or with key NULL, any row */
static bool
rev_probe(RevTable *t, const char *key, int keylen, Snapshot snap,
		  HeapTuple *tuple, TupleDesc *desc)
{
	if (key == NULL)
		return probe(t->relid, InvalidOid, (Datum) 0, snap, tuple, desc);
	return probe(t->relid, F_TEXTEQ,
				 PointerGetDatum(cstring_to_text_with_len(key, keylen)), snap,
				 tuple, desc);
}

/* whether t may hold rows; learns "empty" once per change of t */
static bool
rev_may_have_rows(RevTable *t, Snapshot snap)
{
	if (!OidIsValid(t->relid))
		return false;
	if (t->state == REV_UNKNOWN || (t->from_query_snapshot && !IsInParallelMode()))
	{
		t->state = rev_probe(t, NULL, 0, snap, NULL, NULL) ? REV_ROWS : REV_EMPTY;
		t->from_query_snapshot = IsInParallelMode();
	}
	return t->state == REV_ROWS;
}

void
jwt_revocation_end_of_xact(void)
{
	/* what a parallel query's snapshot showed served that query only */
	if (rev_jti.from_query_snapshot)
		rev_jti.state = REV_UNKNOWN;
	if (rev_sub.from_query_snapshot)
		rev_sub.state = REV_UNKNOWN;
}

/*
 * A jti or sub as the key of its table: a string as it is, a number in the
 * text form ->> gives it, which is what jwt_revoke stores.
 */
bool
jwt_revocation_key(const JsonbValue *v, const char **s, int *len)
{
	if (v == NULL)
		return false;
	if (v->type == jbvString)
	{
		*s = v->val.string.val;
		*len = v->val.string.len;
		return true;
	}
	if (v->type == jbvNumeric)
	{
		*s = DatumGetCString(DirectFunctionCall1(numeric_out,
												 NumericGetDatum(v->val.numeric)));
		*len = strlen(*s);
		return true;
	}
	return false;
}

bool
jwt_revocation_check(const JwtClaims *claims, JwtFailure *f)
{
	const char *jti = NULL;
	const char *sub = NULL;
	int			jtilen = 0;
	int			sublen = 0;
	bool		has_jti;
	bool		has_sub;
	Snapshot	snap;
	bool		revoked = false;
	const char *detail = NULL;

	/* a revocation committed meanwhile counts from this call on */
	AcceptInvalidationMessages();
	if (!rev_looked_up)
		rev_lookup();
	if (!OidIsValid(rev_jti.relid) && !OidIsValid(rev_sub.relid))
		return true;			/* an extension older than 0.4 */
	if (rev_jti.state == REV_EMPTY && rev_sub.state == REV_EMPTY &&
		!rev_jti.from_query_snapshot && !rev_sub.from_query_snapshot)
		return true;			/* the usual case: nothing is revoked */

	has_jti = jwt_revocation_key(jwt_claim_value(claims, "jti"), &jti, &jtilen);
	has_sub = jwt_revocation_key(jwt_claim_value(claims, "sub"), &sub, &sublen);

	/* one snapshot for both probes */
	snap = RegisterSnapshot(jwt_read_snapshot());
	if (rev_may_have_rows(&rev_jti, snap) && has_jti &&
		rev_probe(&rev_jti, jti, jtilen, snap, NULL, NULL))
	{
		revoked = true;
		detail = "Its \"jti\" is in jwt_revoked.";
	}
	else if (rev_may_have_rows(&rev_sub, snap) && has_sub)
	{
		HeapTuple	tup;
		TupleDesc	desc;

		if (rev_probe(&rev_sub, sub, sublen, snap, &tup, &desc))
		{
			bool		isnull;
			int			attnum = SPI_fnumber(desc, "before");
			TimestampTz before;
			TimestampTz iat;
			JsonbValue *iatv = jwt_claim_value(claims, "iat");

			if (attnum <= 0)
				elog(ERROR, "column \"before\" of \"%s\" is missing", rev_sub.name);
			before = DatumGetTimestampTz(heap_getattr(tup, attnum, desc, &isnull));
			/* without an iat, a token cannot show it is newer */
			revoked = isnull || iatv == NULL || !jwt_numeric_date(iatv, &iat) || iat < before;
			detail = "Its subject's tokens issued before a time are revoked (jwt_revoke_subject).";
		}
	}
	UnregisterSnapshot(snap);

	if (revoked)
		return jwt_fail(f, ERRCODE_JWT_REVOKED, "token has been revoked", detail);
	return true;
}

/* ----------------------------------------------------------------
 * Revoking a family in a transaction of its own
 *
 * jwt_refresh raises JW010 when a rotated refresh token comes back, and
 * that error rolls back whatever its transaction wrote.  The revocation of
 * the family must stay, or the thief's branch lives on: a dynamic
 * background worker makes it in its own transaction while the caller waits.
 * The caller must not hold a lock on the family row (jwt_refresh releases
 * its lock by leaving the subtransaction that took it).
 *
 * The worker runs as the extension's owner, with search_path pinned to
 * pg_catalog, pg_temp whatever the database's or the role's settings say,
 * and every name in its statement qualified: a database owner who sets the
 * database's search_path cannot put a function of theirs in its way.
 *
 * Detection fails closed.  When no worker can be had (every slot is taken,
 * and any user can fill them with parallel workers), or the worker could
 * not finish (a lock held by an open transaction, the owner cannot log
 * in), the family is recorded in the store of pending revocations
 * (pending.c: one file in the data directory, durable before jwt_refresh
 * raises).  jwt_refresh refuses every family the store holds, and each
 * worker that runs later applies the store's entries of its database to
 * the table and removes them.  When the store is full, the database itself
 * is recorded: every family of it is refused until a worker revokes all
 * those created up to then (see pending.c).  A store that cannot be read
 * (damaged) is an error on every refresh, never an empty store.
 * ----------------------------------------------------------------
 */

#define REASON_MAX	64

/* how long jwt_refresh waits for the worker, and the worker for a lock */
#define FAMILY_REVOKE_WAIT_MS	10000
#define FAMILY_REVOKE_LOCK_TIMEOUT	"5s"

/* in the data directory, which is every backend's working directory */
#define PENDING_FILE		"pg_jwt_pending_revocations"

/* revoked_reason of the families a database marker revokes */
#define PENDING_DATABASE_REASON	"refresh token reused (pending revocations were full)"

typedef struct FamilyRevokeArgs
{
	Oid			dboid;
	pg_uuid_t	family;
	char		reason[REASON_MAX];
} FamilyRevokeArgs;

StaticAssertDecl(sizeof(FamilyRevokeArgs) <= BGW_EXTRALEN,
				 "FamilyRevokeArgs must fit in bgw_extra");
StaticAssertDecl(sizeof(((PendingEntry *) 0)->family) == sizeof(pg_uuid_t),
				 "a pending entry's family must be a uuid");
StaticAssertDecl(sizeof(Oid) == sizeof(uint32),
				 "a pending entry's dboid must be an Oid");

static PendingStore
pending_store(void)
{
	PendingStore store;

	store.path = PENDING_FILE;
	store.max_families = PENDING_MAX_FAMILIES;
	store.file_mode = pg_file_create_mode;
	return store;
}

/* report a failure of the store at elevel */
static void
pending_report(int elevel, PendingStatus st, const PendingError *err)
{
	switch (st)
	{
		case PENDING_OK:
			break;
		case PENDING_NO_MEMORY:
			ereport(elevel,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("Failed while reading the pending token family revocations in \"%s\".",
							   PENDING_FILE)));
			break;
		case PENDING_CORRUPT:
			ereport(elevel,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid pending token family revocations in file \"%s\"",
							err->file),
					 errdetail_internal("%s", err->detail),
					 errhint("Every refresh token is refused while this file cannot be read. "
							 "Move it out of the data directory once the revocations it held are written to jwt_token_families.")));
			break;
		case PENDING_NO_SPACE:
			ereport(elevel,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many pending token family revocations in file \"%s\"",
							PENDING_FILE)));
			break;
		case PENDING_IO_ERROR:
			errno = err->errnum;
			switch (err->op)
			{
				case PENDING_OP_OPEN:
					ereport(elevel,
							(errcode_for_file_access(),
							 errmsg("could not open file \"%s\": %m", err->file)));
					break;
				case PENDING_OP_LOCK:
					ereport(elevel,
							(errcode_for_file_access(),
							 errmsg("could not lock file \"%s\": %m", err->file)));
					break;
				case PENDING_OP_STAT:
					ereport(elevel,
							(errcode_for_file_access(),
							 errmsg("could not stat file \"%s\": %m", err->file)));
					break;
				case PENDING_OP_READ:
					ereport(elevel,
							(errcode_for_file_access(),
							 errmsg("could not read file \"%s\": %m", err->file)));
					break;
				case PENDING_OP_WRITE:
					ereport(elevel,
							(errcode_for_file_access(),
							 errmsg("could not write file \"%s\": %m", err->file)));
					break;
				case PENDING_OP_FSYNC:
					ereport(data_sync_elevel(elevel),
							(errcode_for_file_access(),
							 errmsg("could not fsync file \"%s\": %m", err->file)));
					break;
				case PENDING_OP_RENAME:
					ereport(elevel,
							(errcode_for_file_access(),
							 errmsg("could not rename file \"%s\" to \"%s\": %m",
									err->file, PENDING_FILE)));
					break;
				case PENDING_OP_UNLINK:
					ereport(elevel,
							(errcode_for_file_access(),
							 errmsg("could not remove file \"%s\": %m", err->file)));
					break;
				case PENDING_OP_NONE:
					elog(elevel, "invalid pending token family revocation: %m");
					break;
			}
			break;
	}
}

/* record a family whose revocation could not be written; durable on return */
static PendingAdded
pending_add_family(const pg_uuid_t *family)
{
	PendingStore store = pending_store();
	PendingEntry e;
	PendingAdded added;
	PendingError err;
	PendingStatus st;

	memset(&e, 0, sizeof(e));
	e.dboid = MyDatabaseId;
	e.kind = PENDING_FAMILY;
	memcpy(e.family, family->data, sizeof(e.family));
	e.stamp = GetCurrentTimestamp();
	st = pending_add(&store, &e, 1, &added, &err);
	pending_report(ERROR, st, &err);
	return added;
}

bool
jwt_family_pending(const pg_uuid_t *family)
{
	PendingStore store = pending_store();
	PendingHit	hit;
	PendingError err;
	PendingStatus st;

	/* without a file, one failed open(); otherwise a binary search */
	st = pending_lookup(&store, MyDatabaseId, family->data, &hit, &err);
	pending_report(ERROR, st, &err);
	return hit != PENDING_HIT_NONE;
}

/* one UPDATE of jwt_token_families in the worker */
static void
family_revoke_update(const char *sql, Oid argtype, Datum arg, const char *reason)
{
	Oid			types[2] = {argtype, TEXTOID};
	Datum		values[2] = {arg, CStringGetTextDatum(reason)};
	int			rc;

	rc = SPI_execute_with_args(sql, 2, types, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not revoke token family: SPI_execute_with_args returned %d", rc);
}

PGDLLEXPORT void jwt_family_revoke_main(Datum arg);

/*
 * The worker.  Memory: the store's entries are malloc()ed by pending.c
 * and owned here until proc_exit, so they outlive SPI_finish() and the
 * commit, after which pending_remove() reads them; everything palloc'd
 * after SPI_connect() (the statements, the uuid array) serves the
 * statements only and dies with SPI_finish().
 */
void
jwt_family_revoke_main(Datum arg)
{
	FamilyRevokeArgs args;
	PendingStore store;
	PendingEntry *pending = NULL;
	size_t		npending = 0;
	size_t		nfamilies = 0;
	size_t		removed;
	PendingError err;
	PendingStatus st;
	Oid			extoid;
	char	   *table;
	char	   *sql;

	(void) arg;
	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	BackgroundWorkerUnblockSignals();
	/* as the bootstrap superuser, then as the owner (see worker.c) */
	jwt_worker_save_settings();
	BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid,
											  JWT_BGW_CONNECT_FLAGS);
	pgstat_report_appname("jwt family revocation");

	/*
	 * Nothing the database's or the role's settings say may redirect us; in
	 * a transaction of its own, as a transaction's read-only mode and
	 * isolation are taken from the defaults when it starts.
	 */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	jwt_worker_pin_settings(jwt_extension_owner(get_extension_oid("jwt", false)));
	/* the family row may be locked by a refresh in progress: not for long */
	SetConfigOption("lock_timeout", FAMILY_REVOKE_LOCK_TIMEOUT, PGC_SUSET, PGC_S_OVERRIDE);
	CommitTransactionCommand();

	/*
	 * This family, then whatever earlier revocations of this database wait.
	 * A store that cannot be read stays as it is (every refresh reports it):
	 * this family is revoked all the same.
	 */
	store = pending_store();
	st = pending_read(&store, args.dboid, &pending, &npending, &err);
	if (st != PENDING_OK)
	{
		pending_report(WARNING, st, &err);
		pending = NULL;
		npending = 0;
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	extoid = get_extension_oid("jwt", false);
	table = psprintf("%s.jwt_token_families",
					 quote_identifier(get_namespace_name(jwt_extension_schema(extoid))));

	sql = psprintf("UPDATE %s "
				   "SET revoked_at = pg_catalog.clock_timestamp(), revoked_reason = $2 "
				   "WHERE family OPERATOR(pg_catalog.=) $1 AND revoked_at IS NULL", table);
	family_revoke_update(sql, UUIDOID, UUIDPGetDatum(&args.family), args.reason);

	for (size_t i = 0; i < npending; i++)
		if (pending[i].kind == PENDING_FAMILY)
			nfamilies++;
	if (nfamilies > 0)
	{
		Datum	   *uuids = palloc(sizeof(Datum) * nfamilies);
		size_t		k = 0;

		for (size_t i = 0; i < npending; i++)
			if (pending[i].kind == PENDING_FAMILY)
				uuids[k++] = UUIDPGetDatum((pg_uuid_t *) pending[i].family);
		sql = psprintf("UPDATE %s "
					   "SET revoked_at = pg_catalog.clock_timestamp(), revoked_reason = $2 "
					   "WHERE family OPERATOR(pg_catalog.=) ANY ($1) AND revoked_at IS NULL",
					   table);
		family_revoke_update(sql, UUIDARRAYOID,
							 PointerGetDatum(construct_array(uuids, (int) nfamilies, UUIDOID,
															 UUID_LEN, false, TYPALIGN_CHAR)),
							 "refresh token reused");
	}

	/* the store was full: every family of the database up to the marker */
	for (size_t i = 0; i < npending; i++)
	{
		if (pending[i].kind != PENDING_DATABASE)
			continue;
		sql = psprintf("UPDATE %s "
					   "SET revoked_at = pg_catalog.clock_timestamp(), revoked_reason = $2 "
					   "WHERE created_at OPERATOR(pg_catalog.<=) $1 AND revoked_at IS NULL",
					   table);
		family_revoke_update(sql, TIMESTAMPTZOID,
							 TimestampTzGetDatum((TimestampTz) pending[i].stamp),
							 PENDING_DATABASE_REASON);
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* the table has them now: pending is still ours, as SPI never owned it */
	if (npending > 0)
	{
		st = pending_remove(&store, pending, npending, &removed, &err);
		pending_report(ERROR, st, &err);
	}
	free(pending);
	proc_exit(0);
}

/* whether the family's row has revoked_at set, as committed now */
static bool
family_revoked(pg_uuid_t *family)
{
	Oid			extoid = get_extension_oid("jwt", false);
	Oid			relid = get_relname_relid("jwt_token_families",
										  jwt_extension_schema(extoid));
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull = true;
	Snapshot	snap;

	if (!OidIsValid(relid))
		return false;
	snap = RegisterSnapshot(jwt_read_snapshot());
	if (probe(relid, F_UUID_EQ, UUIDPGetDatum(family), snap, &tup, &desc))
		(void) heap_getattr(tup, SPI_fnumber(desc, "revoked_at"), desc, &isnull);
	UnregisterSnapshot(snap);
	return !isnull;
}

/* start the worker and wait for it; whether the row now says revoked */
static bool
family_revoke_by_worker(pg_uuid_t *family, const char *reason)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	FamilyRevokeArgs args;
	pid_t		pid;
	TimestampTz deadline;

	memset(&args, 0, sizeof(args));
	args.dboid = MyDatabaseId;
	args.family = *family;
	strlcpy(args.reason, reason, sizeof(args.reason));

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "jwt");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "jwt_family_revoke_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "jwt family revocation");
	snprintf(worker.bgw_type, BGW_MAXLEN, "jwt family revocation");
	worker.bgw_notify_pid = MyProcPid;
	memcpy(worker.bgw_extra, &args, sizeof(args));

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return false;

	/* wait for it to finish, but never for long: a refresh is a request */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), FAMILY_REVOKE_WAIT_MS);
	while ((status = GetBackgroundWorkerPid(handle, &pid)) != BGWH_STOPPED &&
		   status != BGWH_POSTMASTER_DIED)
	{
		if (GetCurrentTimestamp() >= deadline)
		{
			TerminateBackgroundWorker(handle);
			break;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	/* the worker cannot report back: the row tells whether it did it */
	return status == BGWH_STOPPED && family_revoked(family);
}

bool
jwt_family_revoke(pg_uuid_t *family, const char *reason)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot revoke a token family during recovery")));

	if (family_revoke_by_worker(family, reason))
		return true;

	/* fail closed: the family refreshes no more, whatever happens next */
	if (pending_add_family(family) == PENDING_ADDED_DATABASE)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not revoke a token family in a background worker"),
				 errdetail("The pending revocations in \"%s\" are full: every token family of this database is refused until a later worker revokes them all.",
						   PENDING_FILE),
				 errhint("Check max_worker_processes and the server log.")));
	else
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not revoke a token family in a background worker"),
				 errdetail("The family is recorded in \"%s\" and refused until a later worker writes its revocation.",
						   PENDING_FILE),
				 errhint("Check max_worker_processes and the server log.")));
	return false;
}

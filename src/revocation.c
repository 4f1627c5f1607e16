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

#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
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
static bool
claim_key(const JsonbValue *v, const char **s, int *len)
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

	has_jti = claim_key(jwt_claim_value(claims, "jti"), &jti, &jtilen);
	has_sub = claim_key(jwt_claim_value(claims, "sub"), &sub, &sublen);

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
 * in), the family is written to a small file in the data directory,
 * fsync'd before jwt_refresh raises.  jwt_refresh refuses every family in
 * that file, and each worker that runs later applies the file's entries of
 * its database to the table and removes them.
 * ----------------------------------------------------------------
 */

#define REASON_MAX	64

/* how long jwt_refresh waits for the worker, and the worker for a lock */
#define FAMILY_REVOKE_WAIT_MS	10000
#define FAMILY_REVOKE_LOCK_TIMEOUT	"5s"

/* in the data directory, which is every backend's working directory */
#define PENDING_FILE		"pg_jwt_pending_revocations"
#define PENDING_TMP			"pg_jwt_pending_revocations.tmp"
#define PENDING_LOCK		"pg_jwt_pending_revocations.lock"
#define PENDING_MAX			100000	/* entries read; the file never nears it */

typedef struct PendingRevocation
{
	Oid			dboid;
	pg_uuid_t	family;
} PendingRevocation;

typedef struct FamilyRevokeArgs
{
	Oid			dboid;
	pg_uuid_t	family;
	char		reason[REASON_MAX];
} FamilyRevokeArgs;

StaticAssertDecl(sizeof(FamilyRevokeArgs) <= BGW_EXTRALEN,
				 "FamilyRevokeArgs must fit in bgw_extra");

/*
 * The file is only ever changed under an exclusive flock() of PENDING_LOCK,
 * and read under a shared one: appends and the worker's rewrite cannot
 * interleave.
 */
static int
pending_lock(int how)
{
	int			fd = OpenTransientFile(PENDING_LOCK, O_RDWR | O_CREAT | PG_BINARY);

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", PENDING_LOCK)));
	while (flock(fd, how) != 0)
	{
		if (errno != EINTR)
		{
			int			save_errno = errno;

			CloseTransientFile(fd);
			errno = save_errno;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not lock file \"%s\": %m", PENDING_LOCK)));
		}
	}
	return fd;
}

/* the file's entries (palloc'd), with the lock held by the caller */
static PendingRevocation *
pending_read(int *n)
{
	int			fd = OpenTransientFile(PENDING_FILE, O_RDONLY | PG_BINARY);
	struct stat st;
	PendingRevocation *entries;
	ssize_t		got;

	*n = 0;
	if (fd < 0)
	{
		if (errno == ENOENT)
			return NULL;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", PENDING_FILE)));
	}
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", PENDING_FILE)));
	*n = Min(st.st_size / (off_t) sizeof(PendingRevocation), PENDING_MAX);
	entries = palloc(sizeof(PendingRevocation) * Max(*n, 1));
	got = read(fd, entries, sizeof(PendingRevocation) * *n);
	if (got < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", PENDING_FILE)));
	*n = got / sizeof(PendingRevocation);
	CloseTransientFile(fd);
	return entries;
}

/* record a family whose revocation could not be written; durable on return */
static void
pending_add(const pg_uuid_t *family)
{
	PendingRevocation e;
	int			lockfd = pending_lock(LOCK_EX);
	int			fd;

	memset(&e, 0, sizeof(e));
	e.dboid = MyDatabaseId;
	e.family = *family;
	fd = OpenTransientFile(PENDING_FILE, O_WRONLY | O_APPEND | O_CREAT | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", PENDING_FILE)));
	errno = 0;
	if (write(fd, &e, sizeof(e)) != sizeof(e))
	{
		if (errno == 0)
			errno = ENOSPC;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", PENDING_FILE)));
	}
	if (pg_fsync(fd) != 0)
		ereport(data_sync_elevel(ERROR),
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", PENDING_FILE)));
	CloseTransientFile(fd);
	fsync_fname(".", true);		/* the file's directory entry, when new */
	CloseTransientFile(lockfd);
}

bool
jwt_family_pending(const pg_uuid_t *family)
{
	struct stat st;
	PendingRevocation *entries;
	int			n;
	int			lockfd;
	bool		found = false;

	/* the usual case, one stat(): there is no file */
	if (stat(PENDING_FILE, &st) != 0 || st.st_size == 0)
		return false;
	lockfd = pending_lock(LOCK_SH);
	entries = pending_read(&n);
	CloseTransientFile(lockfd);
	for (int i = 0; i < n && !found; i++)
		found = entries[i].dboid == MyDatabaseId &&
			memcmp(&entries[i].family, family, sizeof(pg_uuid_t)) == 0;
	if (entries)
		pfree(entries);
	return found;
}

/* In the worker, once its transaction committed: drop what it applied. */
static void
pending_remove(const PendingRevocation *applied, int napplied)
{
	int			lockfd = pending_lock(LOCK_EX);
	PendingRevocation *entries;
	int			n;
	int			kept = 0;
	int			fd;

	entries = pending_read(&n);
	for (int i = 0; i < n; i++)
	{
		bool		done = false;

		for (int j = 0; j < napplied && !done; j++)
			done = entries[i].dboid == applied[j].dboid &&
				memcmp(&entries[i].family, &applied[j].family, sizeof(pg_uuid_t)) == 0;
		if (!done)
			entries[kept++] = entries[i];
	}
	if (kept == n)
	{
		CloseTransientFile(lockfd);
		return;
	}
	if (kept == 0)
		durable_unlink(PENDING_FILE, ERROR);
	else
	{
		fd = OpenTransientFile(PENDING_TMP, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
		if (fd < 0 ||
			write(fd, entries, sizeof(PendingRevocation) * kept) !=
			(ssize_t) (sizeof(PendingRevocation) * kept))
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", PENDING_TMP)));
		CloseTransientFile(fd);
		durable_rename(PENDING_TMP, PENDING_FILE, ERROR);
	}
	CloseTransientFile(lockfd);
}

PGDLLEXPORT void jwt_family_revoke_main(Datum arg);

void
jwt_family_revoke_main(Datum arg)
{
	FamilyRevokeArgs args;
	Oid			extoid;
	Oid			nspoid;
	char	   *sql;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2];
	int			rc;
	PendingRevocation *pending;
	int			npending;
	PendingRevocation *applied;
	int			napplied = 0;

	(void) arg;
	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	BackgroundWorkerUnblockSignals();
	/* as the bootstrap superuser, then as the owner (see worker.c) */
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

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	extoid = get_extension_oid("jwt", false);

	nspoid = jwt_extension_schema(extoid);
	sql = psprintf("UPDATE %s.jwt_token_families "
				   "SET revoked_at = pg_catalog.clock_timestamp(), revoked_reason = $2 "
				   "WHERE family OPERATOR(pg_catalog.=) $1 AND revoked_at IS NULL",
				   quote_identifier(get_namespace_name(nspoid)));

	/* this family, then whatever earlier revocations of this database wait */
	{
		int			lockfd = pending_lock(LOCK_SH);

		pending = pending_read(&npending);
		CloseTransientFile(lockfd);
	}
	applied = palloc(sizeof(PendingRevocation) * (npending + 1));
	applied[napplied].dboid = args.dboid;
	applied[napplied++].family = args.family;
	for (int i = 0; i < npending; i++)
		if (pending[i].dboid == args.dboid)
			applied[napplied++] = pending[i];

	for (int i = 0; i < napplied; i++)
	{
		values[0] = UUIDPGetDatum(&applied[i].family);
		values[1] = CStringGetTextDatum(i == 0 ? args.reason : "refresh token reused");
		rc = SPI_execute_with_args(sql, 2, types, values, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "could not revoke token family: SPI_execute_with_args returned %d", rc);
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* the table has them now */
	pending_remove(applied, napplied);
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
	pending_add(family);
	ereport(WARNING,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("could not revoke a token family in a background worker"),
			 errdetail("The family is recorded in \"%s\" and refused until a later worker writes its revocation.",
					   PENDING_FILE),
			 errhint("Check max_worker_processes and the server log.")));
	return false;
}

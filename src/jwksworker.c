/*
 * jwksworker.c
 *		The background worker that fetches trusted issuers' key sets.
 *
 * With jwt in shared_preload_libraries, one worker serves the database
 * jwt.database.  It wakes when an issuer's next_refresh (jwt_jwks_fetches)
 * is due, or when a verifying backend met a token whose kid its issuer's
 * keys lack, and calls jwt_jwks_refresh(issuer) for each issuer due, one
 * transaction each, as the extension's owner with search_path pinned.  The
 * verifying backend never does network I/O: it marks the issuer in shared
 * memory and sets the worker's latch, at most once per issuer per
 * jwt.jwks_miss_cooldown, so a flood of tokens with random kids costs the
 * provider one request per cool-down.  It may wait jwt.jwks_miss_wait for
 * the worker's round to end, as long as few others wait.
 *
 * The cool-downs are kept per issuer, in a table of JWKS_SLOTS entries
 * keyed by the SHA-256 of the issuer (any length of name fits), with
 * linear probing over at most JWKS_PROBE entries: a token of one issuer
 * never takes another issuer's entry while that one cools down.  When no
 * entry can be had near an issuer's place, the table asks for a refresh
 * of every fetched issuer instead (at most once per cool-down), so a full
 * table costs time, never an issuer's early refresh.  An entry also keeps
 * the issuer's name when it is shorter than JWKS_NAME_MAX, so the worker
 * finds the issuers asked for through jwt_issuers' primary key; only a
 * longer name is looked for by its digest, over every issuer.
 *
 * The schedule itself is a priority queue: jwt_jwks_fetches has a row for
 * every issuer whose keys are fetched (a trigger on jwt_issuers puts it
 * there, due at once), and a round takes at most JWKS_ROUND_BATCH of the
 * rows never attempted and of the most overdue, through the index on
 * next_refresh, after the issuers asked for: no round reads the rows of
 * issuers that are not due, and a kid miss waits for one batch at most.
 * The worker puts the rows right once as it starts, for a table restored
 * with triggers off.
 *
 * Each issuer is refreshed in a transaction of its own, and an error in
 * one (it was unregistered meanwhile, a lock timed out) is recorded for
 * that issuer, with the usual backoff, and the round goes on.
 *
 * The worker starts once recovery has finished: a hot standby fetches
 * nothing, and its keys arrive by replication.
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "jwksworker.h"
#include "keystore.h"
#include "worker.h"

#define JWKS_SLOTS			1024	/* issuers cooling down at once */
#define JWKS_PROBE			32	/* entries looked at from an issuer's place */
#define JWKS_DIGEST_LEN		32	/* SHA-256 */
#define JWKS_NAME_MAX		256 /* issuer names an entry keeps, with their NUL */
#define JWKS_MAX_SLEEP_MS	60000
#define JWKS_RESTART_SECS	10
#define JWKS_ROUND_BATCH	32	/* scheduled refreshes per round, at most */

char	   *jwt_database = NULL;
int			jwt_jwks_miss_cooldown = 60;
int			jwt_jwks_miss_wait = 0;

typedef struct JwksSlot
{
	bool		used;
	bool		pending;		/* the worker has not taken it yet */
	TimestampTz last_request;
	uint8		digest[JWKS_DIGEST_LEN];	/* of the issuer */
	char		name[JWKS_NAME_MAX];	/* the issuer; "" when it is longer */
} JwksSlot;

typedef struct JwksShared
{
	slock_t		mutex;
	Latch	   *worker_latch;	/* NULL: no worker running */
	uint64		rounds_started;
	uint64		rounds_done;
	ConditionVariable round_cv;
	int			waiters;		/* backends in jwt_jwks_wait */
	bool		connecting;		/* set while the worker connects: a start
								 * that finds it set follows one that died
								 * connecting (jwt.database is missing) */
	bool		refresh_all;	/* the table was full: refresh everyone */
	TimestampTz refresh_all_requested;
	JwksSlot	slots[JWKS_SLOTS];
} JwksShared;

static JwksShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PGDLLEXPORT void jwt_jwks_worker_main(Datum arg);

static void
jwks_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(JwksShared)));
}

static void
jwks_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("jwt jwks", sizeof(JwksShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(JwksShared));
		SpinLockInit(&shared->mutex);
		ConditionVariableInit(&shared->round_cv);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
jwt_jwks_worker_register(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = jwks_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = jwks_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = JWKS_RESTART_SECS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "jwt");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "jwt_jwks_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "jwt jwks");
	snprintf(worker.bgw_type, BGW_MAXLEN, "jwt jwks");
	RegisterBackgroundWorker(&worker);
}

/* the issuer's SHA-256; false if OpenSSL could not say */
static bool
issuer_digest(const char *issuer, int len, uint8 *digest)
{
	unsigned int dlen = 0;

	return EVP_Digest(issuer, len, digest, &dlen, EVP_sha256(), NULL) == 1 &&
		dlen == JWKS_DIGEST_LEN;
}

static bool
cooling(TimestampTz since, TimestampTz now)
{
	return !TimestampDifferenceExceeds(since, now, jwt_jwks_miss_cooldown * 1000);
}

bool
jwt_jwks_request(const char *issuer, int len, uint64 *ticket)
{
	uint8		digest[JWKS_DIGEST_LEN];
	uint32		home;
	TimestampTz now = GetCurrentTimestamp();
	bool		wait = false;
	Latch	   *latch = NULL;

	if (shared == NULL || RecoveryInProgress() || !issuer_digest(issuer, len, digest))
		return false;
	memcpy(&home, digest, sizeof(home));

	SpinLockAcquire(&shared->mutex);
	*ticket = shared->rounds_started;
	if (shared->worker_latch != NULL)
	{
		JwksSlot   *mine = NULL;
		JwksSlot   *free_slot = NULL;

		/* this issuer's entry, or the first one no issuer needs now */
		for (int i = 0; i < JWKS_PROBE && mine == NULL; i++)
		{
			JwksSlot   *slot = &shared->slots[(home + i) % JWKS_SLOTS];

			if (slot->used && memcmp(slot->digest, digest, JWKS_DIGEST_LEN) == 0)
				mine = slot;
			else if (free_slot == NULL &&
					 (!slot->used || (!slot->pending && !cooling(slot->last_request, now))))
				free_slot = slot;
		}
		if (mine != NULL && mine->pending)
			wait = true;		/* asked for already: the round will come */
		else if (mine != NULL && cooling(mine->last_request, now))
			wait = false;		/* refreshed early a moment ago */
		else if (mine != NULL || free_slot != NULL)
		{
			JwksSlot   *slot = mine ? mine : free_slot;

			slot->used = true;
			slot->pending = true;
			slot->last_request = now;
			memcpy(slot->digest, digest, JWKS_DIGEST_LEN);
			if (len < JWKS_NAME_MAX)
			{
				memcpy(slot->name, issuer, len);
				slot->name[len] = '\0';
			}
			else
				slot->name[0] = '\0';
			latch = shared->worker_latch;
			wait = true;
		}
		else if (shared->refresh_all)
			wait = true;
		else if (!cooling(shared->refresh_all_requested, now))
		{
			/* every entry near ours is another issuer's, cooling down */
			shared->refresh_all = true;
			shared->refresh_all_requested = now;
			latch = shared->worker_latch;
			wait = true;
		}
	}
	SpinLockRelease(&shared->mutex);
	if (latch != NULL)
		SetLatch(latch);
	return wait;
}

/* at most this many backends wait for a round at once */
static int
max_waiters(void)
{
	return Max(4, MaxConnections / 4);
}

static void
wait_done(int code, Datum arg)
{
	(void) code;
	(void) arg;
	ConditionVariableCancelSleep();
	SpinLockAcquire(&shared->mutex);
	shared->waiters--;
	SpinLockRelease(&shared->mutex);
}

bool
jwt_jwks_wait(uint64 ticket, int ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	bool		admitted;

	if (shared == NULL || ms <= 0)
		return false;
	SpinLockAcquire(&shared->mutex);
	admitted = shared->waiters < max_waiters();
	if (admitted)
		shared->waiters++;
	SpinLockRelease(&shared->mutex);
	if (!admitted)
		return false;

	/* the count goes down however the wait ends, a FATAL included */
	PG_ENSURE_ERROR_CLEANUP(wait_done, (Datum) 0);
	{
		ConditionVariablePrepareToSleep(&shared->round_cv);
		for (;;)
		{
			uint64		done;
			long		left;

			SpinLockAcquire(&shared->mutex);
			done = shared->rounds_done;
			SpinLockRelease(&shared->mutex);
			/* a round that started after the request has ended */
			if (done > ticket)
				break;
			left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);
			if (left <= 0 ||
				ConditionVariableTimedSleep(&shared->round_cv, left, PG_WAIT_EXTENSION))
				break;
		}
	}
	PG_END_ENSURE_ERROR_CLEANUP(wait_done, (Datum) 0);
	wait_done(0, (Datum) 0);
	return true;
}

/*
 * A new or changed issuer has a new schedule: the worker must hear of it,
 * once the change is committed (before that, it would not see it).
 */
static bool wake_at_commit = false;

static void
wake_xact_callback(XactEvent event, void *arg)
{
	Latch	   *latch = NULL;

	(void) arg;
	if (event == XACT_EVENT_COMMIT && wake_at_commit && shared != NULL)
	{
		SpinLockAcquire(&shared->mutex);
		latch = shared->worker_latch;
		SpinLockRelease(&shared->mutex);
		if (latch != NULL)
			SetLatch(latch);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		wake_at_commit = false;
}

void
jwt_jwks_wake_at_commit(void)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(wake_xact_callback, NULL);
		registered = true;
	}
	wake_at_commit = true;
}

static void
worker_detach(int code, Datum arg)
{
	(void) code;
	(void) arg;
	SpinLockAcquire(&shared->mutex);
	shared->worker_latch = NULL;
	SpinLockRelease(&shared->mutex);
}

/*
 * The extension's schema (quoted) and owner in this database, or NULL when
 * it is not installed here, or older than 0.5; in CurrentMemoryContext.
 * The first time, and whenever the owner changed, the worker becomes that
 * owner, with its settings pinned (worker.c).
 */
static char *
worker_extension(Oid *owner)
{
	static Oid	settled_as = InvalidOid;
	Oid			extoid = get_extension_oid("jwt", true);
	Oid			nspoid;

	if (!OidIsValid(extoid))
		return NULL;
	nspoid = jwt_extension_schema(extoid);
	if (!OidIsValid(get_relname_relid("jwt_jwks_fetches", nspoid)))
		return NULL;
	*owner = jwt_extension_owner(extoid);
	if (*owner != settled_as)
	{
		/* a setting made in a transaction that aborts would be undone */
		if (OidIsValid(settled_as))
			proc_exit(1);		/* the owner changed: start afresh */
		jwt_worker_pin_settings(*owner);
		settled_as = *owner;
	}
	return pstrdup(quote_identifier(get_namespace_name(nspoid)));
}

/*
 * An issuer's refresh raised: record the error for that issuer alone, with
 * the backoff of a failed fetch, so that the next round does not retry it
 * at once.  Its row may be gone (unregistered meanwhile): then nothing is.
 */
static void
record_failure(const char *nsp, const char *issuer, const char *message)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(issuer);
	values[1] = CStringGetTextDatum(message);
	(void) SPI_execute_with_args(psprintf(
										  "INSERT INTO %s.jwt_jwks_fetches AS s (issuer, last_attempt, last_error, failures, next_refresh) "
										  "SELECT t.issuer, pg_catalog.clock_timestamp(), $2, 1, %s._jwt_jwks_next(false, 1, NULL, NULL) "
										  "FROM %s.jwt_issuers AS t WHERE t.issuer OPERATOR(pg_catalog.=) $1 "
										  "ON CONFLICT (issuer) DO UPDATE SET last_attempt = excluded.last_attempt, "
										  "last_error = excluded.last_error, failures = s.failures OPERATOR(pg_catalog.+) 1, "
										  "next_refresh = %s._jwt_jwks_next(false, s.failures OPERATOR(pg_catalog.+) 1, NULL, NULL)",
										  nsp, nsp, nsp, nsp),
								 2, argtypes, values, NULL, false, 0);
}

/*
 * Issuers whose failure could not be recorded either (their status row
 * cannot be written): without a later next_refresh they would be due again
 * at once, so the worker itself leaves them alone for a while.  In
 * TopMemoryContext; a handful at most.
 */
typedef struct Unrecorded
{
	char	   *issuer;
	TimestampTz until;
} Unrecorded;

#define UNRECORDED_RETRY_MS	60000

static List *unrecorded = NIL;

static Unrecorded *
find_unrecorded(const char *issuer)
{
	ListCell   *lc;

	foreach(lc, unrecorded)
	{
		Unrecorded *u = lfirst(lc);

		if (strcmp(u->issuer, issuer) == 0)
			return u;
	}
	return NULL;
}

static void
forget_unrecorded(const char *issuer)
{
	Unrecorded *u = find_unrecorded(issuer);

	if (u != NULL)
	{
		unrecorded = list_delete_ptr(unrecorded, u);
		pfree(u->issuer);
		pfree(u);
	}
}

static void
remember_unrecorded(const char *issuer)
{
	Unrecorded *u = find_unrecorded(issuer);

	if (u == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		u = palloc(sizeof(Unrecorded));
		u->issuer = pstrdup(issuer);
		unrecorded = lappend(unrecorded, u);
		MemoryContextSwitchTo(oldcxt);
	}
	u->until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), UNRECORDED_RETRY_MS);
}

/*
 * Refresh one issuer in a transaction of its own.  An error is caught,
 * logged (its message only: a detail could quote a document) and recorded
 * for that issuer; a termination is not an error here (it exits).
 */
static void
refresh_issuer(const char *nsp, const char *issuer, MemoryContext cxt)
{
	volatile bool recorded = false;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	ErrorData  *volatile edata = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "refreshing an issuer's key set");
		values[0] = CStringGetTextDatum(issuer);
		if (SPI_execute_with_args(psprintf("SELECT %s.jwt_jwks_refresh($1)", nsp),
								  1, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not refresh the key set of issuer \"%s\"", issuer);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	if (edata == NULL)
	{
		forget_unrecorded(issuer);
		return;
	}

	ereport(WARNING,
			(errmsg("could not refresh the key set of issuer \"%s\": %s", issuer, edata->message)));
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		record_failure(nsp, issuer, edata->message);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		recorded = true;
	}
	PG_CATCH();
	{
		/* the issuer is gone, or its row cannot be written: the round goes on */
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	if (recorded)
		forget_unrecorded(issuer);
	else
		remember_unrecorded(issuer);
	FreeErrorData(edata);
}

/*
 * Once per start: every issuer whose keys are fetched has its row in the
 * schedule, and no other issuer has one.  The trigger on jwt_issuers keeps
 * it so; this is for a table restored or replicated with triggers off.
 * One pass over the issuers, in a transaction of its own; an error is
 * logged and the worker goes on with the schedule as it is.
 */
static void
schedule_catch_up(const char *nsp, MemoryContext cxt)
{
	static bool done = false;
	const char *fetched = "(t.jwks_uri IS NOT NULL OR t.jwks_discovery)";

	if (done)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_execute(psprintf("INSERT INTO %s.jwt_jwks_fetches (issuer) "
								 "SELECT t.issuer FROM %s.jwt_issuers AS t WHERE %s "
								 "ON CONFLICT (issuer) DO NOTHING", nsp, nsp, fetched),
						false, 0) != SPI_OK_INSERT ||
			SPI_execute(psprintf("DELETE FROM %s.jwt_jwks_fetches AS s WHERE NOT EXISTS "
								 "(SELECT FROM %s.jwt_issuers AS t "
								 "WHERE t.issuer OPERATOR(pg_catalog.=) s.issuer AND %s)",
								 nsp, nsp, fetched),
						false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not write the refresh schedule");
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(WARNING,
				(errmsg("could not bring the JWKS refresh schedule up to date: %s", edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	done = true;
}

static bool
list_member_issuer(List *issuers, const char *issuer)
{
	ListCell   *lc;

	foreach(lc, issuers)
		if (strcmp(lfirst(lc), issuer) == 0)
			return true;
	return false;
}

/*
 * One round: the issuers due or asked for, each refreshed in a transaction
 * of its own.  Returns how long to sleep, in milliseconds.  What it keeps
 * across its transactions lives in cxt, reset by the caller.
 */
static long
worker_round(MemoryContext cxt)
{
	char	   *names = palloc(JWKS_NAME_MAX * JWKS_SLOTS);
	uint8	   *digests = palloc(JWKS_DIGEST_LEN * JWKS_SLOTS);
	int			nnames = 0;
	int			ndigests = 0;
	bool		all;
	List	   *issuers = NIL;
	Oid			owner = InvalidOid;
	char	   *nsp = NULL;
	long		sleep_ms = JWKS_MAX_SLEEP_MS;
	int			scheduled = 0;
	bool		more = false;
	ListCell   *lc;

	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < JWKS_SLOTS; i++)
		if (shared->slots[i].pending)
		{
			if (shared->slots[i].name[0] != '\0')
				strlcpy(names + JWKS_NAME_MAX * nnames++, shared->slots[i].name, JWKS_NAME_MAX);
			else
				memcpy(digests + JWKS_DIGEST_LEN * ndigests++, shared->slots[i].digest,
					   JWKS_DIGEST_LEN);
			shared->slots[i].pending = false;
		}
	all = shared->refresh_all;
	shared->refresh_all = false;
	shared->rounds_started++;
	SpinLockRelease(&shared->mutex);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

		nsp = worker_extension(&owner);
		MemoryContextSwitchTo(oldcxt);
	}
	if (nsp != NULL)
	{
		MemoryContext oldcxt;
		char	   *sql;
		Oid			argtypes[4] = {TEXTARRAYOID, BYTEAARRAYOID, BOOLOID, INT4OID};
		Datum		values[4];
		Datum	   *elems = palloc(sizeof(Datum) * Max(Max(nnames, ndigests), 1));
		bool		isnull;
		const char *fetched = "(t.jwks_uri IS NOT NULL OR t.jwks_discovery)";

		/* the issuers asked for: by name, and by digest when too long */
		for (int i = 0; i < nnames; i++)
			elems[i] = CStringGetTextDatum(names + JWKS_NAME_MAX * i);
		values[0] = PointerGetDatum(construct_array(elems, nnames, TEXTOID, -1, false, TYPALIGN_INT));
		for (int i = 0; i < ndigests; i++)
		{
			bytea	   *b = palloc(VARHDRSZ + JWKS_DIGEST_LEN);

			SET_VARSIZE(b, VARHDRSZ + JWKS_DIGEST_LEN);
			memcpy(VARDATA(b), digests + JWKS_DIGEST_LEN * i, JWKS_DIGEST_LEN);
			elems[i] = PointerGetDatum(b);
		}
		values[1] = PointerGetDatum(construct_array(elems, ndigests, BYTEAOID, -1, false, TYPALIGN_INT));
		values[2] = BoolGetDatum(all);
		/* one more than a batch tells that more are due; and room for the
		 * issuers left alone, which are skipped below */
		values[3] = Int32GetDatum(JWKS_ROUND_BATCH + 1 + list_length(unrecorded));

		/*
		 * The issuers asked for first (by the primary key; a long name by
		 * its digest, reading every issuer, only when one was asked for),
		 * then the scheduled ones: those never attempted, then the most
		 * overdue, each through the index on next_refresh and at most a
		 * batch of them, so that a kid miss waits for one batch, not for
		 * thousands of scheduled refreshes.  A table-full request ($3)
		 * takes every fetched issuer.
		 */
		sql = psprintf("SELECT t.issuer, true FROM %s.jwt_issuers AS t "
					   "WHERE t.issuer OPERATOR(pg_catalog.=) ANY ($1) AND %s "
					   "UNION ALL "
					   "SELECT t.issuer, true FROM %s.jwt_issuers AS t "
					   "WHERE pg_catalog.cardinality($2) OPERATOR(pg_catalog.>) 0 "
					   "AND pg_catalog.octet_length(t.issuer) OPERATOR(pg_catalog.>=) %d AND %s "
					   "AND pg_catalog.sha256(pg_catalog.convert_to(t.issuer, pg_catalog.getdatabaseencoding())) "
					   "OPERATOR(pg_catalog.=) ANY ($2) "
					   "UNION ALL "
					   "(SELECT t.issuer, false FROM %s.jwt_issuers AS t WHERE $3 AND %s "
					   "AND t.issuer OPERATOR(pg_catalog.<>) ALL ($1) ORDER BY t.issuer) "
					   "UNION ALL "
					   "(SELECT s.issuer, false FROM %s.jwt_jwks_fetches AS s "
					   "JOIN %s.jwt_issuers AS t ON t.issuer OPERATOR(pg_catalog.=) s.issuer "
					   "WHERE NOT $3 AND s.next_refresh IS NULL AND %s "
					   "AND s.issuer OPERATOR(pg_catalog.<>) ALL ($1) "
					   "ORDER BY s.next_refresh NULLS FIRST LIMIT $4) "
					   "UNION ALL "
					   "(SELECT s.issuer, false FROM %s.jwt_jwks_fetches AS s "
					   "JOIN %s.jwt_issuers AS t ON t.issuer OPERATOR(pg_catalog.=) s.issuer "
					   "WHERE NOT $3 AND s.next_refresh OPERATOR(pg_catalog.<=) pg_catalog.now() AND %s "
					   "AND s.issuer OPERATOR(pg_catalog.<>) ALL ($1) "
					   "ORDER BY s.next_refresh NULLS FIRST LIMIT $4)",
					   nsp, fetched,
					   nsp, JWKS_NAME_MAX, fetched,
					   nsp, fetched,
					   nsp, nsp, fetched,
					   nsp, nsp, fetched);
		if (SPI_execute_with_args(sql, 4, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the refresh schedule");
		oldcxt = MemoryContextSwitchTo(cxt);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *issuer = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i],
																   SPI_tuptable->tupdesc,
																   1, &isnull));
			bool		was_asked = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
															   SPI_tuptable->tupdesc,
															   2, &isnull));
			Unrecorded *u = find_unrecorded(issuer);

			/* left alone for now: neither refreshed nor counted */
			if (u != NULL && GetCurrentTimestamp() < u->until)
				continue;
			/* a long name asked for and also due: once */
			if (!was_asked && ndigests > 0 && list_member_issuer(issuers, issuer))
				continue;
			if (!was_asked && !all && scheduled >= JWKS_ROUND_BATCH)
			{
				more = true;
				break;
			}
			if (!was_asked)
				scheduled++;
			issuers = lappend(issuers, issuer);
		}
		MemoryContextSwitchTo(oldcxt);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	if (nsp != NULL)
		schedule_catch_up(nsp, cxt);

	foreach(lc, issuers)
	{
		CHECK_FOR_INTERRUPTS();
		refresh_issuer(nsp, lfirst(lc), cxt);
	}

	/* until the next one is due */
	if (nsp != NULL)
	{
		bool		isnull;
		Datum		d;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		/*
		 * From the index alone: 0 when one was never attempted.  (The queue
		 * holds only issuers whose keys are fetched: the trigger and
		 * schedule_catch_up see to it, so no join with jwt_issuers here,
		 * which the planner could turn into a scan of every issuer.)
		 */
		if (SPI_execute(psprintf("SELECT CASE WHEN EXISTS (SELECT FROM %s.jwt_jwks_fetches AS s "
								 "WHERE s.next_refresh IS NULL) THEN 0::pg_catalog.int8 ELSE "
								 "pg_catalog.ceil(pg_catalog.date_part('epoch', "
								 "(SELECT pg_catalog.min(s.next_refresh) FROM %s.jwt_jwks_fetches AS s) "
								 "OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp()) "
								 "OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8 END",
								 nsp, nsp),
						true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		{
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				sleep_ms = (long) Max(Min(DatumGetInt64(d), JWKS_MAX_SLEEP_MS), 10);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}

	/* an issuer left alone is still due: do not spin on it */
	if (unrecorded != NIL)
		sleep_ms = Max(sleep_ms, 1000);
	/* more were due than one round takes: the next round at once */
	if (more)
		sleep_ms = 0;

	/* what the round wrote and deleted, for autovacuum to see */
	pgstat_report_stat(true);

	SpinLockAcquire(&shared->mutex);
	shared->rounds_done = shared->rounds_started;
	SpinLockRelease(&shared->mutex);
	ConditionVariableBroadcast(&shared->round_cv);
	return sleep_ms;
}

/*
 * The last start died connecting to jwt.database, most likely because there
 * is no such database: connected to none, look for it now and then, say so
 * once, and exit to be started again when it is there.  So a missing
 * database costs one FATAL line and one LOG line, not one every 10 s.
 */
static void
wait_for_database(void)
{
	jwt_worker_wait_for_database(jwt_database, "jwt jwks", JWKS_RESTART_SECS * 1000L,
								 JWKS_MAX_SLEEP_MS);
	SpinLockAcquire(&shared->mutex);
	shared->connecting = false;
	SpinLockRelease(&shared->mutex);
	proc_exit(1);				/* started again, it connects */
}

void
jwt_jwks_worker_main(Datum arg)
{
	long		sleep_ms = 0;
	MemoryContext round_cxt;
	bool		died_connecting;

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&shared->mutex);
	died_connecting = shared->connecting;
	shared->connecting = true;
	SpinLockRelease(&shared->mutex);
	if (died_connecting)
		wait_for_database();

	/* as the bootstrap superuser, then as the owner (see worker.c) */
	jwt_worker_save_settings();
	BackgroundWorkerInitializeConnection(jwt_database, NULL, JWT_BGW_CONNECT_FLAGS);
	pgstat_report_appname("jwt jwks");
	SpinLockAcquire(&shared->mutex);
	shared->connecting = false;
	SpinLockRelease(&shared->mutex);

	SpinLockAcquire(&shared->mutex);
	shared->worker_latch = MyLatch;
	SpinLockRelease(&shared->mutex);
	on_shmem_exit(worker_detach, (Datum) 0);

	round_cxt = AllocSetContextCreate(TopMemoryContext, "jwt jwks round",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(round_cxt);
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(round_cxt);

			sleep_ms = worker_round(round_cxt);
			MemoryContextSwitchTo(oldcxt);
		}
	}
}

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
 * the worker's round to end.
 *
 * The worker starts once recovery has finished: a hot standby fetches
 * nothing, and its keys arrive by replication.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
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

#define JWKS_SLOTS			64
#define JWKS_ISSUER_MAX		256
#define JWKS_MAX_SLEEP_MS	60000
#define JWKS_RESTART_SECS	10

char	   *jwt_database = NULL;
int			jwt_jwks_miss_cooldown = 60;
int			jwt_jwks_miss_wait = 0;

typedef struct JwksSlot
{
	bool		used;
	bool		pending;		/* the worker has not taken it yet */
	TimestampTz last_request;
	char		issuer[JWKS_ISSUER_MAX];
} JwksSlot;

typedef struct JwksShared
{
	slock_t		mutex;
	Latch	   *worker_latch;	/* NULL: no worker running */
	uint64		rounds_started;
	uint64		rounds_done;
	ConditionVariable round_cv;
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

static uint32
issuer_hash(const char *s, int len)
{
	uint32		h = 2166136261u;	/* FNV-1a */

	for (int i = 0; i < len; i++)
		h = (h ^ (unsigned char) s[i]) * 16777619u;
	return h;
}

bool
jwt_jwks_request(const char *issuer, int len, uint64 *ticket)
{
	JwksSlot   *slot;
	TimestampTz now = GetCurrentTimestamp();
	bool		wait = false;
	Latch	   *latch = NULL;

	if (shared == NULL || len >= JWKS_ISSUER_MAX || RecoveryInProgress())
		return false;
	slot = &shared->slots[issuer_hash(issuer, len) % JWKS_SLOTS];

	SpinLockAcquire(&shared->mutex);
	*ticket = shared->rounds_started;
	if (shared->worker_latch != NULL)
	{
		bool		same = slot->used && strncmp(slot->issuer, issuer, len) == 0 &&
			slot->issuer[len] == '\0';
		bool		cooling = slot->used &&
			!TimestampDifferenceExceeds(slot->last_request, now, jwt_jwks_miss_cooldown * 1000);

		if (same && slot->pending)
			wait = true;
		else if (!cooling)
		{
			/* a free slot, or one whose cool-down is over: ours now */
			slot->used = true;
			slot->pending = true;
			slot->last_request = now;
			memcpy(slot->issuer, issuer, len);
			slot->issuer[len] = '\0';
			latch = shared->worker_latch;
			wait = true;
		}
	}
	SpinLockRelease(&shared->mutex);
	if (latch != NULL)
		SetLatch(latch);
	return wait;
}

void
jwt_jwks_wait(uint64 ticket, int ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	if (shared == NULL || ms <= 0)
		return;
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
	ConditionVariableCancelSleep();
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
 * One round: the issuers due or asked for, each refreshed in a transaction
 * of its own.  Returns how long to sleep, in milliseconds.
 */
static long
worker_round(void)
{
	char		asked[JWKS_SLOTS][JWKS_ISSUER_MAX];
	int			nasked = 0;
	List	   *issuers = NIL;
	Oid			extoid;
	Oid			owner = InvalidOid;
	char	   *nsp = NULL;
	long		sleep_ms = JWKS_MAX_SLEEP_MS;
	ListCell   *lc;

	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < JWKS_SLOTS; i++)
		if (shared->slots[i].pending)
		{
			strlcpy(asked[nasked++], shared->slots[i].issuer, JWKS_ISSUER_MAX);
			shared->slots[i].pending = false;
		}
	shared->rounds_started++;
	SpinLockRelease(&shared->mutex);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	extoid = get_extension_oid("jwt", true);
	if (OidIsValid(extoid))
	{
		Oid			nspoid = jwt_extension_schema(extoid);

		nsp = pstrdup(quote_identifier(get_namespace_name(nspoid)));
		owner = jwt_extension_owner(extoid);
		if (!OidIsValid(get_relname_relid("jwt_jwks_fetches", nspoid)))
			nsp = NULL;			/* the extension is older than 0.5 here */
	}
	if (nsp != NULL)
	{
		MemoryContext oldcxt;
		char	   *sql;
		ArrayType  *arr;
		Datum	   *elems = palloc(sizeof(Datum) * Max(nasked, 1));
		Oid			argtypes[1] = {TEXTARRAYOID};
		Datum		values[1];
		bool		isnull;

		for (int i = 0; i < nasked; i++)
			elems[i] = CStringGetTextDatum(asked[i]);
		arr = construct_array(elems, nasked, TEXTOID, -1, false, TYPALIGN_INT);
		values[0] = PointerGetDatum(arr);
		sql = psprintf("SELECT t.issuer FROM %s.jwt_issuers AS t "
					   "LEFT JOIN %s.jwt_jwks_fetches AS s ON s.issuer OPERATOR(pg_catalog.=) t.issuer "
					   "WHERE (t.jwks_uri IS NOT NULL OR t.jwks_discovery) "
					   "AND (s.next_refresh IS NULL OR s.next_refresh OPERATOR(pg_catalog.<=) pg_catalog.now() "
					   "OR t.issuer OPERATOR(pg_catalog.=) ANY ($1)) ORDER BY 1",
					   nsp, nsp);
		if (SPI_execute_with_args(sql, 1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the issuer table");
		oldcxt = MemoryContextSwitchTo(TopMemoryContext);
		for (uint64 i = 0; i < SPI_processed; i++)
			issuers = lappend(issuers, TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i],
																		 SPI_tuptable->tupdesc,
																		 1, &isnull)));
		nsp = pstrdup(nsp);
		MemoryContextSwitchTo(oldcxt);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	foreach(lc, issuers)
	{
		char	   *issuer = lfirst(lc);
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1];
		Oid			save_userid;
		int			save_sec;

		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "refreshing an issuer's key set");
		/* as the extension's owner, as jwt_jwks_refresh requires */
		GetUserIdAndSecContext(&save_userid, &save_sec);
		SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		values[0] = CStringGetTextDatum(issuer);
		if (SPI_execute_with_args(psprintf("SELECT %s.jwt_jwks_refresh($1)", nsp),
								  1, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not refresh the key set of issuer \"%s\"", issuer);
		SetUserIdAndSecContext(save_userid, save_sec);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
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
		if (SPI_execute(psprintf("SELECT pg_catalog.ceil(pg_catalog.date_part('epoch', "
								 "pg_catalog.min(s.next_refresh) OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp()) "
								 "OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8 FROM %s.jwt_jwks_fetches AS s", nsp),
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

	SpinLockAcquire(&shared->mutex);
	shared->rounds_done = shared->rounds_started;
	SpinLockRelease(&shared->mutex);
	ConditionVariableBroadcast(&shared->round_cv);
	list_free_deep(issuers);
	if (nsp != NULL)
		pfree(nsp);
	return sleep_ms;
}

void
jwt_jwks_worker_main(Datum arg)
{
	long		sleep_ms = 0;

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(jwt_database, NULL, 0);
	pgstat_report_appname("jwt jwks");

	/* nothing the database's or the role's settings say may redirect us */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);

	SpinLockAcquire(&shared->mutex);
	shared->worker_latch = MyLatch;
	SpinLockRelease(&shared->mutex);
	on_shmem_exit(worker_detach, (Datum) 0);

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
		sleep_ms = worker_round();
	}
}

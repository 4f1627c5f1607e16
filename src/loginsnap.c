/*
 * loginsnap.c
 *		The worker that keeps the key snapshot logins are checked against
 *		(PostgreSQL 18 and later; see login.h).
 *
 * One worker, connected to jwt.database as the workers of worker.c are,
 * wakes every LOGIN_POLL_MS, reads the invalidations committed meanwhile,
 * and writes the snapshot again when one of them touched what it holds:
 * jwt_keys or jwt_issuers as a whole, the tag of an issuer it holds (the
 * key store's per-issuer invalidation), or a revocation table.  A reload
 * (SIGHUP) reads pg_hba.conf again, as the postmaster does, and so does
 * every rewrite.  Invalidations are replayed on a hot standby as on the
 * primary, so a standby's worker keeps its own snapshot current from the
 * WAL it replays; the worker starts once the standby is consistent.
 *
 * The snapshot holds only the issuers that oauth lines name (its size
 * follows pg_hba.conf, not the key table), their keys (a revoked one by its
 * kid alone),
 * each issuer's rules, and the revoked jtis and subjects.  It is written
 * to a temporary file, which is renamed over the old one; then shared
 * memory gets the new file's nonce (a random number on its first line).
 * A validator that finds another nonce in the file, or shared memory
 * older than LOGIN_STALE_MS, or no file at all, refuses the login: a file
 * left by a worker that died, or by a server that crashed, is never
 * trusted, and the worker removes it as it starts.
 *
 * The snapshot is owner-only (0600), like every file in the data
 * directory; it holds our own HMAC secrets when a line names jwt.issuer.
 * Only a superuser-owned extension is trusted for logins: the key table
 * decides who logs in.
 */
#include "postgres.h"

#if PG_VERSION_NUM >= 180000

#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/file_perm.h"
#include "executor/spi.h"
#include "libpq/hba.h"
#include "libpq/oauth.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#include "jwksworker.h"
#include "keystore.h"
#include "login.h"
#include "worker.h"

/* how often the worker looks for changes, and when the validator gives up */
#define LOGIN_POLL_MS		100
#define LOGIN_REFRESH_MS	(60 * 1000)	/* rewrite anyway: revocations expire */
#define LOGIN_WAIT_MS		1000	/* for the extension to be created */
#define LOGIN_IDLE_MS		(60 * 1000)	/* no line is ours: only a reload matters */
#define LOGIN_RESTART_SECS	1

/* most issuers the oauth lines may name */
#define LOGIN_MAX_ISSUERS	64

typedef struct LoginShared
{
	slock_t		mutex;
	uint64		nonce;			/* of the file in place; 0: none */
	TimestampTz checked;		/* when the worker last looked; 0: never */
	bool		connecting;		/* the worker died connecting: no database */
	char		reason[160];	/* why there is none */
} LoginShared;

static LoginShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

char	   *jwt_login_claim = NULL;

/* the worker's view: what pg_hba.conf names, and what changed */
static char *issuers[LOGIN_MAX_ISSUERS];
static int	nissuers = 0;
static bool too_many_issuers = false;
static uint32 issuer_tags[LOGIN_MAX_ISSUERS + 1];	/* and our own */
static int	ntags = 0;
static Oid	watched_relids[4];
static bool dirty = true;
static bool hba_dirty = true;
static MemoryContext hba_cxt = NULL;

PGDLLEXPORT void jwt_login_worker_main(Datum arg);

static void
login_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(LoginShared)));
}

static void
login_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("jwt login", sizeof(LoginShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(LoginShared));
		SpinLockInit(&shared->mutex);
		strlcpy(shared->reason, "the jwt login worker has not started yet",
				sizeof(shared->reason));
	}
	LWLockRelease(AddinShmemInitLock);
}

void
jwt_login_init(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("jwt.login_claim",
							   "The claim of a login token that becomes the connection's authenticated identity.",
							   "pg_ident.conf maps it to roles, as for any authentication method; SYSTEM_USER shows it as oauth:<claim>.",
							   &jwt_login_claim,
							   "sub",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = login_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = login_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = LOGIN_RESTART_SECS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "jwt");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "jwt_login_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "jwt login snapshot");
	snprintf(worker.bgw_type, BGW_MAXLEN, "jwt login snapshot");
	RegisterBackgroundWorker(&worker);
}

void
jwt_login_state(JwtLoginState *st)
{
	TimestampTz checked;

	memset(st, 0, sizeof(*st));
	if (shared == NULL)
	{
		strlcpy(st->reason, "jwt is not in shared_preload_libraries", sizeof(st->reason));
		return;
	}
	st->attached = true;
	SpinLockAcquire(&shared->mutex);
	st->nonce = shared->nonce;
	checked = shared->checked;
	memcpy(st->reason, shared->reason, sizeof(st->reason));
	SpinLockRelease(&shared->mutex);
	st->reason[sizeof(st->reason) - 1] = '\0';
	st->checked_ms = checked == 0 ? PG_INT64_MAX :
		(GetCurrentTimestamp() - checked) / 1000;
}

/* no snapshot, and why: the validator refuses every login, saying so */
static void
publish_none(const char *reason)
{
	bool		changed;

	(void) unlink(JWT_LOGIN_SNAPSHOT_FILE);
	SpinLockAcquire(&shared->mutex);
	changed = shared->nonce != 0 || strcmp(shared->reason, reason) != 0;
	shared->nonce = 0;
	strlcpy(shared->reason, reason, sizeof(shared->reason));
	SpinLockRelease(&shared->mutex);
	if (changed)
		ereport(LOG,
				(errmsg("jwt: no key snapshot for logins with a token: %s", reason)));
}

/* ----------------------------------------------------------------
 * What to watch
 * ----------------------------------------------------------------
 */

static void
login_relcache_callback(Datum arg, Oid relid)
{
	(void) arg;
	if (relid == InvalidOid)
	{
		dirty = true;
		return;
	}
	for (int i = 0; i < (int) lengthof(watched_relids); i++)
		if (relid == watched_relids[i])
			dirty = true;
	for (int i = 0; i < ntags; i++)
		if (relid == issuer_tags[i])
			dirty = true;
}

/* does a library name in oauth_validator_libraries load us? */
static bool
names_us(const char *lib)
{
	const char *base;
	size_t		len;

	if (lib == NULL)
		return false;
	base = last_dir_separator(lib);
	base = base ? base + 1 : lib;
	len = strlen(base);
	if (len > strlen(DLSUFFIX) && strcmp(base + len - strlen(DLSUFFIX), DLSUFFIX) == 0)
		len -= strlen(DLSUFFIX);
	return len == 3 && strncmp(base, "jwt", 3) == 0;
}

/* does oauth_validator_libraries name us? */
static bool
validator_configured(void)
{
	char	   *raw = pstrdup(oauth_validator_libraries_string);
	List	   *libs = NIL;
	bool		ours = false;
	ListCell   *lc;

	if (SplitDirectoriesString(raw, ',', &libs))
		foreach(lc, libs)
			if (names_us((const char *) lfirst(lc)))
				ours = true;
	list_free_deep(libs);
	pfree(raw);
	return ours;
}

/*
 * The issuers of pg_hba.conf's oauth lines that are ours to validate, read
 * from the file as pg_hba_file_rules reads it.  A line with an error is
 * skipped here as the postmaster skips it.
 */
static void
read_hba(void)
{
	FILE	   *file;
	List	   *lines = NIL;
	ListCell   *lc;
	MemoryContext parse_cxt;
	MemoryContext old;

	if (hba_cxt == NULL)
		hba_cxt = AllocSetContextCreate(TopMemoryContext, "jwt login hba",
										ALLOCSET_SMALL_SIZES);
	MemoryContextReset(hba_cxt);
	nissuers = 0;
	too_many_issuers = false;

	file = open_auth_file(HbaFileName, ERROR, 0, NULL);
	tokenize_auth_file(HbaFileName, file, &lines, DEBUG3, 0);
	parse_cxt = AllocSetContextCreate(CurrentMemoryContext, "jwt login hba parser",
									  ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(parse_cxt);
	foreach(lc, lines)
	{
		TokenizedAuthLine *tok = (TokenizedAuthLine *) lfirst(lc);
		HbaLine    *hba;
		bool		seen = false;

		if (tok->err_msg != NULL)
			continue;
		hba = parse_hba_line(tok, DEBUG3);
		if (hba == NULL || hba->auth_method != uaOAuth || hba->oauth_issuer == NULL)
			continue;
		/* the line's validator (PostgreSQL fills it in when there is one) */
		if (!names_us(hba->oauth_validator))
			continue;
		for (int i = 0; i < nissuers; i++)
			if (strcmp(issuers[i], hba->oauth_issuer) == 0)
				seen = true;
		if (seen)
			continue;
		if (nissuers == LOGIN_MAX_ISSUERS)
		{
			too_many_issuers = true;
			continue;
		}
		issuers[nissuers++] = MemoryContextStrdup(hba_cxt, hba->oauth_issuer);
	}
	MemoryContextSwitchTo(old);
	free_auth_file(file, 0);
	MemoryContextDelete(parse_cxt);

	ntags = 0;
	for (int i = 0; i < nissuers; i++)
		issuer_tags[ntags++] = jwt_issuer_tag(issuers[i], strlen(issuers[i]));
	issuer_tags[ntags++] = jwt_issuer_tag("", 0);	/* our own keys */
	if (too_many_issuers)
		ereport(LOG,
				(errmsg("jwt: pg_hba.conf names more than %d issuers in oauth lines; logins with the others are refused",
						LOGIN_MAX_ISSUERS)));
}

/* ----------------------------------------------------------------
 * Writing the snapshot
 * ----------------------------------------------------------------
 */

/*
 * The keys of one issuer (or ours, issuer IS NULL), newest first; a revoked
 * key by its kid alone, so that a refusal can say why
 */
#define KEYS_OF(cond) \
	"(SELECT COALESCE(pg_catalog.jsonb_agg(CASE WHEN k.state OPERATOR(pg_catalog.=) 'revoked' " \
	"THEN pg_catalog.jsonb_build_object('kid', k.kid, 'revoked', true) " \
	"ELSE pg_catalog.jsonb_build_object(" \
	"'kid', k.kid, 'alg', k.alg, " \
	"'nbf', pg_catalog.date_part('epoch', k.not_before), " \
	"'exp', pg_catalog.date_part('epoch', k.expires_at), " \
	"'jwk', CASE WHEN k.alg OPERATOR(pg_catalog.=) ANY ('{HS256,HS384,HS512}'::pg_catalog.text[]) " \
	"THEN k.private_jwk ELSE k.jwk END) END ORDER BY k.created_at DESC), '[]') " \
	"FROM %s.jwt_keys AS k WHERE " cond ")"

static const char *const snapshot_sql =
"SELECT pg_catalog.jsonb_build_object("
"'issuers', (SELECT COALESCE(pg_catalog.jsonb_object_agg(i.issuer, "
"  pg_catalog.jsonb_build_object("
"    'algorithms', pg_catalog.to_jsonb(i.algorithms), "
"    'audiences', pg_catalog.to_jsonb(i.audiences), "
"    'leeway', pg_catalog.date_part('epoch', i.leeway), "
"    'required_claims', pg_catalog.to_jsonb(i.required_claims), "
"    'fetched', (pg_catalog.to_jsonb(i) OPERATOR(pg_catalog.->>) 'jwks_uri') IS NOT NULL "
"      OR COALESCE((pg_catalog.to_jsonb(i) OPERATOR(pg_catalog.->>) 'jwks_discovery')::pg_catalog.bool, false), "
"    'keys', " KEYS_OF("k.issuer OPERATOR(pg_catalog.=) i.issuer") ")), '{}') "
"  FROM %s.jwt_issuers AS i WHERE i.issuer OPERATOR(pg_catalog.=) ANY ($1)), "
"'own', CASE WHEN $2 THEN " KEYS_OF("k.issuer IS NULL") " END, "
"'revoked_jti', (SELECT COALESCE(pg_catalog.jsonb_object_agg(r.jti, true), '{}') "
"  FROM %s.jwt_revoked AS r WHERE r.expires_at IS NULL "
"  OR r.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()), "
"'revoked_sub', (SELECT COALESCE(pg_catalog.jsonb_object_agg(s.sub, "
"  pg_catalog.date_part('epoch', s.before)), '{}') FROM %s.jwt_revoked_subjects AS s)"
")::pg_catalog.text";

/*
 * The extension's schema (quoted), or NULL with *reason set when logins
 * cannot be served from this database.
 */
static char *
login_extension(const char **reason)
{
	Oid			extoid = get_extension_oid("jwt", true);
	Oid			nspoid;
	Oid			owner;
	static const char *const tables[] = {"jwt_keys", "jwt_issuers", "jwt_revoked",
	"jwt_revoked_subjects"};
	static Oid	settled_as = InvalidOid;

	if (!OidIsValid(extoid))
	{
		*reason = psprintf("extension \"jwt\" is not installed in database \"%s\" (jwt.database)",
						   jwt_database);
		return NULL;
	}
	nspoid = jwt_extension_schema(extoid);
	for (int i = 0; i < (int) lengthof(tables); i++)
	{
		watched_relids[i] = get_relname_relid(tables[i], nspoid);
		if (!OidIsValid(watched_relids[i]))
		{
			*reason = psprintf("extension \"jwt\" in database \"%s\" is older than 0.5: run ALTER EXTENSION jwt UPDATE",
							   jwt_database);
			return NULL;
		}
	}
	owner = jwt_extension_owner(extoid);
	if (!superuser_arg(owner))
	{
		*reason = psprintf("extension \"jwt\" in database \"%s\" is not owned by a superuser",
						   jwt_database);
		return NULL;
	}
	if (owner != settled_as)
	{
		if (OidIsValid(settled_as))
			proc_exit(1);		/* the owner changed: start afresh */
		jwt_worker_pin_settings(owner);
		settled_as = owner;
	}
	return pstrdup(quote_identifier(get_namespace_name(nspoid)));
}

static void
write_snapshot(const char *doc)
{
	char		tmp[MAXPGPATH];
	uint64		nonce = 0;
	FILE	   *f;
	bool		ok;

	while (nonce == 0)
		if (!pg_strong_random(&nonce, sizeof(nonce)))
			elog(ERROR, "could not generate a random nonce");

	snprintf(tmp, sizeof(tmp), "%s.tmp", JWT_LOGIN_SNAPSHOT_FILE);
	f = AllocateFile(tmp, PG_BINARY_W);
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
	ok = fprintf(f, "%s %016llx\n", JWT_LOGIN_SNAPSHOT_TAG,
				 (unsigned long long) nonce) > 0 &&
		fwrite(doc, 1, strlen(doc), f) == strlen(doc);
	if (FreeFile(f) != 0 || !ok)
	{
		(void) unlink(tmp);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	}
	if (rename(tmp, JWT_LOGIN_SNAPSHOT_FILE) != 0)
	{
		(void) unlink(tmp);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename file \"%s\" to \"%s\": %m", tmp,
						JWT_LOGIN_SNAPSHOT_FILE)));
	}

	SpinLockAcquire(&shared->mutex);
	shared->nonce = nonce;
	shared->reason[0] = '\0';
	SpinLockRelease(&shared->mutex);
}

/* what one look found */
typedef enum LookResult
{
	LOOK_SERVED,				/* a snapshot is in place */
	LOOK_NO_EXTENSION,			/* none: the extension is missing or unfit */
	LOOK_NO_LINES				/* none: no oauth line is ours */
} LookResult;

/* one look, in a transaction */
static LookResult
rebuild(void)
{
	const char *reason = NULL;
	char	   *nsp;
	char	   *doc;
	Datum		args[2];
	Oid			types[2] = {TEXTARRAYOID, BOOLOID};
	Datum	   *elems;
	bool		own = false;
	int			rc;

	nsp = login_extension(&reason);
	if (nsp == NULL)
	{
		publish_none(reason);
		return LOOK_NO_EXTENSION;
	}
	if (hba_dirty)
	{
		read_hba();
		hba_dirty = false;
	}
	if (nissuers == 0)
	{
		publish_none("pg_hba.conf has no oauth line for validator \"jwt\"");
		return LOOK_NO_LINES;
	}

	elems = palloc(sizeof(Datum) * nissuers);
	for (int i = 0; i < nissuers; i++)
	{
		elems[i] = CStringGetTextDatum(issuers[i]);
		if (jwt_issuer != NULL && jwt_issuer[0] != '\0' && strcmp(issuers[i], jwt_issuer) == 0)
			own = true;
	}
	args[0] = PointerGetDatum(construct_array_builtin(elems, nissuers, TEXTOID));
	args[1] = BoolGetDatum(own);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args(psprintf(snapshot_sql, nsp, nsp, nsp, nsp, nsp),
							   2, types, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "the login snapshot query failed: %s", SPI_result_code_string(rc));
	/* SPI_getvalue pallocs in SPI's context: copy out before SPI_finish */
	doc = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (doc == NULL)
		elog(ERROR, "the login snapshot query returned NULL");
	doc = MemoryContextStrdup(TopTransactionContext, doc);
	SPI_finish();

	write_snapshot(doc);
	return LOOK_SERVED;
}

/* the worker died connecting: wait for jwt.database, then start again */
static void
wait_for_database(void)
{
	publish_none(psprintf("database \"%s\" named by jwt.database does not exist", jwt_database));
	jwt_worker_wait_for_database(jwt_database, "jwt login snapshot", LOGIN_WAIT_MS, LOGIN_IDLE_MS);
	SpinLockAcquire(&shared->mutex);
	shared->connecting = false;
	SpinLockRelease(&shared->mutex);
	proc_exit(1);				/* started again, it connects */
}

void
jwt_login_worker_main(Datum arg)
{
	MemoryContext look_cxt;
	TimestampTz written = 0;
	bool		idle = false;	/* no oauth line is ours: wait for a reload */
	bool		died_connecting;

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* a file from before this worker started is never current */
	publish_none("the jwt login worker is starting");

	/*
	 * A server that does not use us to validate tokens needs no snapshot:
	 * the worker waits, unconnected, for a reload that says otherwise.
	 */
	while (!validator_configured())
	{
		publish_none("oauth_validator_libraries does not name jwt");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LOGIN_IDLE_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}

	SpinLockAcquire(&shared->mutex);
	died_connecting = shared->connecting;
	shared->connecting = true;
	SpinLockRelease(&shared->mutex);
	if (died_connecting)
		wait_for_database();

	jwt_worker_save_settings();
	BackgroundWorkerInitializeConnection(jwt_database, NULL, JWT_BGW_CONNECT_FLAGS);
	pgstat_report_appname("jwt login snapshot");
	SpinLockAcquire(&shared->mutex);
	shared->connecting = false;
	SpinLockRelease(&shared->mutex);
	CacheRegisterRelcacheCallback(login_relcache_callback, (Datum) 0);

	look_cxt = AllocSetContextCreate(TopMemoryContext, "jwt login look",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		TimestampTz start;
		long		wait_ms = LOGIN_POLL_MS;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			hba_dirty = true;
			dirty = true;
			idle = false;
		}
		start = GetCurrentTimestamp();
		MemoryContextReset(look_cxt);
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(look_cxt);

			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();

			/*
			 * A commit sends its invalidations after it becomes visible: a
			 * snapshot taken after they are read sees what they announce.
			 */
			AcceptInvalidationMessages();
			if (dirty || hba_dirty ||
				TimestampDifferenceExceeds(written, start, LOGIN_REFRESH_MS))
			{
				dirty = false;
				PushActiveSnapshot(GetTransactionSnapshot());
				switch (rebuild())
				{
					case LOOK_SERVED:
						written = start;
						break;
					case LOOK_NO_EXTENSION:
						/* CREATE EXTENSION sends nothing we watch: look again */
						written = 0;
						wait_ms = LOGIN_WAIT_MS;
						break;
					case LOOK_NO_LINES:
						/* only a reload adds lines, and it sets our latch */
						written = start;
						idle = true;
						break;
				}
				PopActiveSnapshot();
			}
			if (idle)
				wait_ms = LOGIN_IDLE_MS;
			CommitTransactionCommand();
			MemoryContextSwitchTo(oldcxt);
		}
		SpinLockAcquire(&shared->mutex);
		shared->checked = start;
		SpinLockRelease(&shared->mutex);
		pgstat_report_stat(false);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

#else							/* PG_VERSION_NUM < 180000 */

#include "login.h"

char	   *jwt_login_claim = NULL;

void
jwt_login_init(void)
{
}

void
jwt_login_state(JwtLoginState *st)
{
	memset(st, 0, sizeof(*st));
}

#endif

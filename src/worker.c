/*
 * worker.c
 *		What every background worker of ours does before it runs SQL.
 *
 * A worker connects to its database before it can read who owns the
 * extension there, and InitPostgres applies the database's and the role's
 * settings (pg_db_role_setting) as it connects.  A database owner may put
 * anything a user may SET there: role = herself (the worker would then run
 * with her rights, or fail for lack of the owner's), search_path,
 * default_transaction_read_only, timeouts that kill the worker's
 * transactions, synchronous_commit = off (a revocation acknowledged before
 * it is durable), plpgsql knobs that change what a function does.
 *
 * So the workers connect as the bootstrap superuser (no CONNECT privilege,
 * connection limit, LOGIN attribute or datallowconn of hers can keep them
 * out), then set session_authorization to the extension's owner and every
 * setting below to a fixed value at PGC_S_OVERRIDE, above anything the
 * catalog set; a function's own SET clause still applies, as it is of a
 * higher source.  Finally the worker checks who it is.
 *
 * Beyond that list, every user-settable (PGC_USERSET) setting that the
 * catalog changed while connecting goes back to the value the worker had
 * from the server's configuration before it connected, so that a setting
 * nobody thought of (planner switches that turn the worker's index scans
 * into scans of 100,000 rows, JIT, work_mem) cannot steer it either.  A
 * superuser-only setting made per database (jwt.jwks_ca_file, say) was
 * made by a superuser, or by a role she granted SET to, and stays.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "worker.h"

typedef struct PinnedSetting
{
	const char *name;
	const char *value;
} PinnedSetting;

static const PinnedSetting pinned[] = {
	/* where names are looked up; every name we use is qualified anyway */
	{"search_path", "pg_catalog, pg_temp"},
	/* what a transaction may do, and for how long */
	{"default_transaction_read_only", "off"},
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_deferrable", "off"},
	{"statement_timeout", "0"},
	{"lock_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
	{"idle_session_timeout", "0"},
#if PG_VERSION_NUM >= 170000
	{"transaction_timeout", "0"},
#endif
	{"exit_on_error", "off"},
	/* a commit is durable before the worker acts on it */
	{"synchronous_commit", "on"},
	/* what the statements and functions it runs mean */
	{"standard_conforming_strings", "on"},
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"transform_null_equals", "off"},
	{"array_nulls", "on"},
	{"row_security", "on"},
	{"check_function_bodies", "on"},
	{"plpgsql.variable_conflict", "error"},
	{"plpgsql.extra_errors", "none"},
	{"plpgsql.extra_warnings", "none"},
	{"plpgsql.check_asserts", "on"},
};

/* the user-settable settings as the server's configuration gave them */
typedef struct SavedSetting
{
	struct config_generic *gen; /* GUC's own, lives as long as the process */
	char	   *value;			/* in TopMemoryContext */
} SavedSetting;

static SavedSetting *saved;
static int	nsaved;

static struct config_generic **
guc_variables(int *n)
{
#if PG_VERSION_NUM >= 160000
	return get_guc_variables(n);
#else
	*n = GetNumConfigOptions();
	return get_guc_variables();
#endif
}

void
jwt_worker_save_settings(void)
{
	int			n;
	struct config_generic **vars = guc_variables(&n);
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	saved = palloc(sizeof(SavedSetting) * Max(n, 1));
	nsaved = 0;
	for (int i = 0; i < n; i++)
	{
		const char *value;

		if (vars[i]->context != PGC_USERSET ||
			(vars[i]->flags & GUC_CUSTOM_PLACEHOLDER))
			continue;
		/* the raw value (no show hook), which set_config_option parses */
		value = GetConfigOption(vars[i]->name, true, false);
		if (value == NULL)
			continue;
		saved[nsaved].gen = vars[i];
		saved[nsaved].value = pstrdup(value);
		nsaved++;
	}
	MemoryContextSwitchTo(old);
}

/* put back what pg_db_role_setting changed of the saved settings */
static void
restore_settings(void)
{
	for (int i = 0; i < nsaved; i++)
	{
		struct config_generic *gen = saved[i].gen;

		if (gen->source != PGC_S_GLOBAL && gen->source != PGC_S_DATABASE &&
			gen->source != PGC_S_USER && gen->source != PGC_S_DATABASE_USER)
			continue;
		/* only a label, and the worker reports its own to pg_stat_activity */
		if (strcmp(gen->name, "application_name") == 0)
			continue;
		(void) set_config_option(gen->name, saved[i].value, PGC_SUSET, PGC_S_OVERRIDE,
								 GUC_ACTION_SET, true, WARNING, false);
	}
}

void
jwt_worker_pin_settings(Oid owner)
{
	if (saved == NULL)
		elog(ERROR, "jwt_worker_save_settings was not called before connecting");
	restore_settings();

	/* first who it is: the session, then no role on top of it */
	SetConfigOption("session_authorization", GetUserNameFromId(owner, false),
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);

	for (size_t i = 0; i < lengthof(pinned); i++)
		SetConfigOption(pinned[i].name, pinned[i].value, PGC_SUSET, PGC_S_OVERRIDE);

	if (GetUserId() != owner || GetSessionUserId() != owner || GetOuterUserId() != owner)
		ereport(FATAL,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("background worker \"%s\" could not become the owner of extension \"jwt\"",
						MyBgworkerEntry ? MyBgworkerEntry->bgw_name : "jwt")));
}

/*
 * A worker died connecting to its database: it is missing (or was).  Wait
 * for it, connected to no database, checking every wait_ms (doubled up to
 * max_ms), so that the log gets one line rather than a FATAL at every
 * restart; the caller then exits, and is started again to connect.
 */
void
jwt_worker_wait_for_database(const char *dbname, const char *who, long wait_ms, long max_ms)
{
	bool		said = false;

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname(who);
	for (;;)
	{
		bool		exists;

		StartTransactionCommand();
		exists = OidIsValid(get_database_oid(dbname, true));
		CommitTransactionCommand();
		if (exists)
			return;
		if (!said)
			ereport(LOG,
					(errmsg("database \"%s\" named by jwt.database does not exist", dbname),
					 errdetail("The %s worker waits for it.", who)));
		said = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		wait_ms = Min(wait_ms * 2, max_ms);
	}
}

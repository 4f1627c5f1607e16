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
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/acl.h"
#include "utils/guc.h"

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

void
jwt_worker_pin_settings(Oid owner)
{
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

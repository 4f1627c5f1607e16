/*
 * worker.h
 *		What every background worker of ours does before it runs SQL.
 */
#ifndef JWT_WORKER_H
#define JWT_WORKER_H

/*
 * The flags a worker of ours connects with: as the bootstrap superuser,
 * into a database whose owner may have turned connections off.
 */
#define JWT_BGW_CONNECT_FLAGS	BGWORKER_BYPASS_ALLOWCONN

/*
 * Before connecting: the user-settable settings as the server's
 * configuration gives them, which jwt_worker_pin_settings puts back where
 * the database's or a role's settings changed them.
 */
extern void jwt_worker_save_settings(void);

/*
 * Inside a transaction, right after connecting: become the extension's
 * owner, and take none of the settings of the database or of a role
 * (ALTER DATABASE/ROLE ... SET) that decide who the worker is or what its
 * statements do.  FATAL when the worker is not who it must be afterwards.
 * Commit before the transactions that do the work: a transaction takes its
 * read-only mode and isolation from the defaults when it starts.
 */
extern void jwt_worker_pin_settings(Oid owner);
extern void jwt_worker_wait_for_database(const char *dbname, const char *who,
										 long wait_ms, long max_ms);

#endif							/* JWT_WORKER_H */

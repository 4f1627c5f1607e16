/*
 * jwksworker.h
 *		The background worker that fetches trusted issuers' key sets.
 */
#ifndef JWT_JWKSWORKER_H
#define JWT_JWKSWORKER_H

/* settings (jwt.c defines them) */
extern char *jwt_database;
extern int	jwt_jwks_miss_cooldown;	/* seconds */
extern int	jwt_jwks_miss_wait;		/* milliseconds */

/* from _PG_init, while shared_preload_libraries is being processed */
extern void jwt_jwks_worker_register(void);

/*
 * A token named a kid that its issuer's keys lack: ask the worker for an
 * early refresh of that issuer, at most once per jwt.jwks_miss_cooldown
 * for each issuer.
 * Returns whether it is worth waiting (a refresh is asked for, or running),
 * and sets *ticket for jwt_jwks_wait.  Nothing happens without the worker
 * (not preloaded, or a hot standby).
 */
extern bool jwt_jwks_request(const char *issuer, int len, uint64 *ticket);

/*
 * Wait until the worker finished a round begun after ticket, or ms pass;
 * false, at once, when too many backends wait already (a flood of unknown
 * kids must not hold every connection).
 */
extern bool jwt_jwks_wait(uint64 ticket, int ms);

/* tell the worker, when this transaction commits, that a schedule changed */
extern void jwt_jwks_wake_at_commit(void);

#endif							/* JWT_JWKSWORKER_H */

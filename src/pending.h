/*
 * pending.h
 *		The store of pending family revocations: the families whose
 *		revocation no background worker could write yet (see revocation.c),
 *		in one file of the data directory.
 *
 * Server-independent: no PostgreSQL headers, plain C over POSIX file I/O,
 * so it is unit-tested as plain C (test/unit/test_pending.c).  Nothing here
 * raises: every function returns a PendingStatus and, on failure, fills a
 * PendingError the caller reports.  The format, the bound and what happens
 * when the store is full are described in pending.c.
 */
#ifndef JWT_PENDING_H
#define JWT_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* the bound of the server's store: family entries of all databases */
#define PENDING_MAX_FAMILIES	1000000

/*
 * What an entry says.  The values are part of the file format, and the
 * order of the entries: a database's marker sorts before its families.
 */
typedef enum PendingKind
{
	PENDING_DATABASE = 0,		/* every family of dboid created up to stamp */
	PENDING_FAMILY = 1			/* the one family */
} PendingKind;

/* one entry, as it is in the file (32 bytes, native byte order) */
typedef struct PendingEntry
{
	uint32_t	dboid;
	uint32_t	kind;			/* PendingKind */
	uint8_t		family[16];		/* a uuid; zero in a database marker */
	int64_t		stamp;			/* the caller's clock when it was recorded */
} PendingEntry;

typedef enum PendingStatus
{
	PENDING_OK = 0,
	PENDING_IO_ERROR,			/* a system call failed: see PendingError */
	PENDING_CORRUPT,			/* the file is not a whole store we wrote */
	PENDING_NO_SPACE,			/* not even a database marker fits */
	PENDING_NO_MEMORY
} PendingStatus;

/* the system call that failed, for the caller's message */
typedef enum PendingOp
{
	PENDING_OP_NONE = 0,
	PENDING_OP_OPEN,
	PENDING_OP_LOCK,
	PENDING_OP_STAT,
	PENDING_OP_READ,
	PENDING_OP_WRITE,
	PENDING_OP_FSYNC,
	PENDING_OP_RENAME,
	PENDING_OP_UNLINK
} PendingOp;

typedef struct PendingError
{
	PendingOp	op;
	int			errnum;			/* errno of the failed call */
	char		file[1024];		/* the file it was made on */
	const char *detail;			/* PENDING_CORRUPT: what is wrong, a constant */
} PendingError;

/*
 * A store: its file, beside which live path.tmp (the next version, while
 * it is written) and path.lock (flock()ed by every writer).  max_families
 * is the bound: PENDING_MAX_FAMILIES in the server, smaller in the tests.
 * The path is used as it is: relative, it names a file of the working
 * directory (the data directory, in a backend).
 */
typedef struct PendingStore
{
	const char *path;
	uint32_t	max_families;
	mode_t		file_mode;		/* of the files it creates */
} PendingStore;

/* what pending_lookup found */
typedef enum PendingHit
{
	PENDING_HIT_NONE = 0,
	PENDING_HIT_FAMILY,			/* the family is recorded */
	PENDING_HIT_DATABASE		/* its database's marker is: every family */
} PendingHit;

/* what pending_add did */
typedef enum PendingAdded
{
	PENDING_ADDED_NONE = 0,		/* every entry was recorded already */
	PENDING_ADDED_FAMILY,		/* family entries were added */
	PENDING_ADDED_DATABASE		/* the store is full: a database marker */
} PendingAdded;

/*
 * Whether the family of database dboid is pending, by its entry or its
 * database's marker.  No file is no entry.  A binary search with pread():
 * it reads the header and about log2(entries) entries, takes no lock, and
 * sees one whole version of the file (every writer replaces it by rename).
 */
extern PendingStatus pending_lookup(const PendingStore *store, uint32_t dboid,
									const uint8_t family[16], PendingHit *hit,
									PendingError *err);

/*
 * Record n entries (families or markers), each unless recorded already;
 * durable on return (the file and its directory are fsync'd).  When a
 * family does not fit under max_families, the entries of its database are
 * replaced by the database's marker, stamped with the family's stamp (a
 * later one moves the marker's stamp on).  *added says what was written.
 */
extern PendingStatus pending_add(const PendingStore *store,
								 const PendingEntry *entries, size_t n,
								 PendingAdded *added, PendingError *err);

/*
 * Remove the entries that match one of the n given ones (same database,
 * kind and family, and a stamp not later than the given one: a marker
 * moved on since it was read stays), from a complete and valid read of the
 * file only; durable on return.  *removed counts them.
 */
extern PendingStatus pending_remove(const PendingStore *store,
									const PendingEntry *entries, size_t n,
									size_t *removed, PendingError *err);

/*
 * Every entry of database dboid (with dboid 0, of every database), sorted,
 * in an array malloc()ed for the caller (NULL when there is none), from a
 * complete and valid read.  The caller free()s it.
 */
extern PendingStatus pending_read(const PendingStore *store, uint32_t dboid,
								  PendingEntry **entries, size_t *n,
								  PendingError *err);

/* the order of the file: database, kind, family */
extern int	pending_entry_cmp(const PendingEntry *a, const PendingEntry *b);

#endif							/* JWT_PENDING_H */

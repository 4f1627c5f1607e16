/*
 * pending.c
 *		The store of pending family revocations: a small storage engine
 *		over one file.
 *
 * When a rotated refresh token comes back and no background worker can
 * write the family's revocation, revocation.c records the family here;
 * jwt_refresh refuses every family recorded, and the next worker applies
 * its database's entries to jwt_token_families and removes them.  What is
 * recorded must therefore never be lost before it is applied, and a lookup
 * (made on every refresh while the file exists) must be cheap.
 *
 * Format.  A 32-byte header, then count entries of 32 bytes (PendingEntry),
 * sorted by (dboid, kind, family) without duplicates, all in native byte
 * order, as the rest of the data directory:
 *
 *		magic "JWTPEND\0", version 1, count, flags 0, entry size 32,
 *		CRC-32 of the entries, CRC-32 of the header's first 28 bytes
 *
 * A lookup checks the header and that the file's size is exactly header +
 * count entries, then binary-searches with pread(): about log2(count)
 * reads of 32 bytes.  A full read (to add, to remove, for the worker) also
 * checks the entries' checksum and their order.  A file that fails either
 * check is PENDING_CORRUPT: the caller refuses (fails closed) and nothing
 * here rewrites it, let alone from what could be read of it.
 *
 * Writes.  Every change is a complete read of the file, the new version
 * written whole to path.tmp, fsync'd, renamed over path, and the directory
 * fsync'd; a store left empty is unlinked (the directory fsync'd).  A crash
 * leaves either version whole, and at worst a stale path.tmp that nothing
 * reads and the next write truncates.  Writers serialise on an exclusive
 * flock() of path.lock; readers take no lock, as rename() hands them one
 * whole version or the other.
 *
 * Bound, failing closed.  At most max_families family entries (all
 * databases together; PENDING_MAX_FAMILIES, 1,000,000, so 32 MB, in the
 * server).  A family that does not fit is not dropped: its database gets a
 * marker (kind PENDING_DATABASE, stamped with the time it was recorded)
 * that replaces every entry of that database, so the store shrinks.  While
 * the marker is there, every family of that database is pending: the
 * lookup answers PENDING_HIT_DATABASE for all of them, and the worker that
 * applies the marker revokes every family of the database created up to
 * the marker's stamp, which includes every family whose reuse was
 * recorded, then or before.  A marker that is there already moves on to
 * the later stamp instead.  This costs every session of that database its
 * refresh tokens, which is the price of a store filled by a million
 * reuses that no worker could write: it must not leave one reused family
 * refreshable.  Markers do not count against the bound (there is one per
 * database at most); only the format's own limit, PENDING_COUNT_LIMIT,
 * can refuse one (PENDING_NO_SPACE), which takes millions of databases.
 *
 * The first format.  The first builds of 0.5 kept a bare array of 20-byte
 * entries (database oid, uuid), appended to, with duplicates, and without
 * a bound; a cluster in their crash loop has such a file.  A file without
 * the magic whose size is a multiple of 20 is read as one (deduplicated,
 * sorted, stamp 0; lookups scan it whole), and the next add or remove,
 * under the lock, converts it: what those builds recorded is kept.
 */
#include "pending.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PENDING_MAGIC		"JWTPEND"	/* and its NUL: 8 bytes */
#define PENDING_VERSION		1

/* the format's own limit, whatever max_families says (2 GB of entries) */
#define PENDING_COUNT_LIMIT	(UINT32_C(1) << 26)

/* the first format's entry: uint32 database oid, 16-byte uuid, no padding */
#define LEGACY_ENTRY_SIZE	20

/* entries read at a time by a scan of an older file */
#define SCAN_CHUNK			512

typedef struct PendingHeader
{
	char		magic[8];
	uint32_t	version;
	uint32_t	count;
	uint32_t	flags;			/* none defined: must be 0 */
	uint32_t	entry_size;
	uint32_t	data_crc;
	uint32_t	header_crc;		/* of the bytes before it */
} PendingHeader;

_Static_assert(sizeof(PendingHeader) == 32, "PendingHeader is 32 bytes");
_Static_assert(sizeof(PendingEntry) == 32, "PendingEntry is 32 bytes");

/* ----------------------------------------------------------------
 * Helpers
 * ----------------------------------------------------------------
 */

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32), table-driven */
static uint32_t crc_table[256];
static bool crc_table_ready = false;

static uint32_t
crc32_update(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (!crc_table_ready)
	{
		for (uint32_t i = 0; i < 256; i++)
		{
			uint32_t	c = i;

			for (int k = 0; k < 8; k++)
				c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			crc_table[i] = c;
		}
		crc_table_ready = true;
	}
	crc = ~crc;
	while (len-- > 0)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static PendingStatus
fail_io(PendingError *err, PendingOp op, const char *file, int errnum)
{
	err->op = op;
	err->errnum = errnum;
	snprintf(err->file, sizeof(err->file), "%s", file);
	err->detail = NULL;
	return PENDING_IO_ERROR;
}

static PendingStatus
fail_corrupt(PendingError *err, const char *file, const char *detail)
{
	err->op = PENDING_OP_NONE;
	err->errnum = 0;
	snprintf(err->file, sizeof(err->file), "%s", file);
	err->detail = detail;
	return PENDING_CORRUPT;
}

static void
clear_error(PendingError *err, const char *file)
{
	err->op = PENDING_OP_NONE;
	err->errnum = 0;
	snprintf(err->file, sizeof(err->file), "%s", file);
	err->detail = NULL;
}

int
pending_entry_cmp(const PendingEntry *a, const PendingEntry *b)
{
	if (a->dboid != b->dboid)
		return a->dboid < b->dboid ? -1 : 1;
	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	return memcmp(a->family, b->family, sizeof(a->family));
}

static int
entry_qsort_cmp(const void *a, const void *b)
{
	return pending_entry_cmp(a, b);
}

/* path with a suffix, into buf; false when it does not fit */
static bool
sibling(char *buf, size_t size, const char *path, const char *suffix)
{
	int			len = snprintf(buf, size, "%s%s", path, suffix);

	return len >= 0 && (size_t) len < size;
}

/* the directory of path, into buf ("." when it names none) */
static bool
directory_of(char *buf, size_t size, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t		len;

	if (slash == NULL)
		return sibling(buf, size, ".", "");
	len = slash == path ? 1 : (size_t) (slash - path);
	if (len >= size)
		return false;
	memcpy(buf, path, len);
	buf[len] = '\0';
	return true;
}

static int
fsync_directory(const char *dir)
{
	int			fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int			rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	/* as PostgreSQL's fsync_fname: some systems cannot fsync a directory */
	if (rc != 0 && (errno == EBADF || errno == EINVAL))
		rc = 0;
	if (rc != 0)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		return -1;
	}
	return close(fd);
}

/* all of len bytes at offset; false with errno set (0: end of file) */
static bool
pread_all(int fd, void *buf, size_t len, off_t offset)
{
	char	   *p = buf;

	while (len > 0)
	{
		ssize_t		got = pread(fd, p, len, offset);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
		{
			if (got == 0)
				errno = 0;
			return false;
		}
		p += got;
		len -= (size_t) got;
		offset += got;
	}
	return true;
}

static bool
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0)
	{
		ssize_t		done;

		errno = 0;
		done = write(fd, p, len);
		if (done < 0 && errno == EINTR)
			continue;
		if (done <= 0)
		{
			if (errno == 0)
				errno = ENOSPC;
			return false;
		}
		p += done;
		len -= (size_t) done;
	}
	return true;
}

/* an exclusive flock() of path.lock: the descriptor, or -1 */
static int
lock_store(const PendingStore *store, PendingError *err)
{
	char		lockpath[PATH_MAX];
	int			fd;

	if (!sibling(lockpath, sizeof(lockpath), store->path, ".lock"))
	{
		fail_io(err, PENDING_OP_OPEN, store->path, ENAMETOOLONG);
		return -1;
	}
	fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, store->file_mode);
	if (fd < 0)
	{
		fail_io(err, PENDING_OP_OPEN, lockpath, errno);
		return -1;
	}
	while (flock(fd, LOCK_EX) != 0)
	{
		if (errno != EINTR)
		{
			fail_io(err, PENDING_OP_LOCK, lockpath, errno);
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void
unlock_store(int lockfd)
{
	/* closing the descriptor releases the flock() */
	close(lockfd);
}

/* ----------------------------------------------------------------
 * Reading
 * ----------------------------------------------------------------
 */


/* an open store file, checked as far as a lookup checks it */
typedef struct StoreFile
{
	int			fd;
	bool		legacy;			/* the first format */
	uint64_t	count;			/* entries */
} StoreFile;

/* the header and the size (current format), or the size (legacy format) */
static PendingStatus
check_file(StoreFile *sf, const char *path, PendingError *err)
{
	struct stat st;
	PendingHeader h;
	uint64_t	expect;

	if (fstat(sf->fd, &st) != 0)
		return fail_io(err, PENDING_OP_STAT, path, errno);
	if (st.st_size >= (off_t) sizeof(h.magic))
	{
		if (!pread_all(sf->fd, h.magic, sizeof(h.magic), 0))
			return errno ? fail_io(err, PENDING_OP_READ, path, errno) :
				fail_corrupt(err, path, "The file is shorter than its size.");
		if (memcmp(h.magic, PENDING_MAGIC, sizeof(h.magic)) == 0)
		{
			if (st.st_size < (off_t) sizeof(h) || !pread_all(sf->fd, &h, sizeof(h), 0))
			{
				if (st.st_size >= (off_t) sizeof(h) && errno != 0)
					return fail_io(err, PENDING_OP_READ, path, errno);
				return fail_corrupt(err, path, "The file is shorter than its header.");
			}
			if (h.header_crc != crc32_update(0, &h, offsetof(PendingHeader, header_crc)))
				return fail_corrupt(err, path, "The checksum of its header does not match.");
			if (h.version != PENDING_VERSION || h.flags != 0 ||
				h.entry_size != sizeof(PendingEntry))
				return fail_corrupt(err, path, "Its version, flags or entry size are not this module's.");
			if (h.count > PENDING_COUNT_LIMIT)
				return fail_corrupt(err, path, "Its header counts more entries than a store may hold.");
			expect = sizeof(h) + (uint64_t) h.count * sizeof(PendingEntry);
			if ((uint64_t) st.st_size != expect)
				return fail_corrupt(err, path, "Its size does not match the count of entries in its header.");
			sf->legacy = false;
			sf->count = h.count;
			return PENDING_OK;
		}
	}
	if (st.st_size % LEGACY_ENTRY_SIZE != 0)
		return fail_corrupt(err, path, "It has no header, and its size is not that of whole entries of the older format.");
	sf->legacy = true;
	sf->count = (uint64_t) st.st_size / LEGACY_ENTRY_SIZE;
	return PENDING_OK;
}

/* open and check path; *exists false (and PENDING_OK) when there is none */
static PendingStatus
open_file(const char *path, StoreFile *sf, bool *exists, PendingError *err)
{
	PendingStatus st;

	*exists = false;
	sf->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (sf->fd < 0)
	{
		if (errno == ENOENT)
			return PENDING_OK;
		return fail_io(err, PENDING_OP_OPEN, path, errno);
	}
	*exists = true;
	st = check_file(sf, path, err);
	if (st != PENDING_OK)
	{
		close(sf->fd);
		sf->fd = -1;
	}
	return st;
}

/* an older file's entries [first, first + n) into out */
static PendingStatus
read_legacy(StoreFile *sf, const char *path, uint64_t first, size_t n,
			PendingEntry *out, PendingError *err)
{
	uint8_t		buf[LEGACY_ENTRY_SIZE * SCAN_CHUNK];

	while (n > 0)
	{
		size_t		k = n < SCAN_CHUNK ? n : SCAN_CHUNK;

		if (!pread_all(sf->fd, buf, k * LEGACY_ENTRY_SIZE, (off_t) (first * LEGACY_ENTRY_SIZE)))
			return errno ? fail_io(err, PENDING_OP_READ, path, errno) :
				fail_corrupt(err, path, "The file is shorter than its size.");
		for (size_t i = 0; i < k; i++)
		{
			memset(&out[i], 0, sizeof(out[i]));
			memcpy(&out[i].dboid, buf + i * LEGACY_ENTRY_SIZE, sizeof(uint32_t));
			memcpy(out[i].family, buf + i * LEGACY_ENTRY_SIZE + sizeof(uint32_t), 16);
			out[i].kind = PENDING_FAMILY;
			if (out[i].dboid == 0)
				return fail_corrupt(err, path, "An entry of the older format names no database.");
		}
		out += k;
		n -= k;
		first += k;
	}
	return PENDING_OK;
}

/* sort, and merge entries of one key keeping the latest stamp */
static size_t
sort_unique(PendingEntry *e, size_t n)
{
	size_t		k = 0;

	if (n == 0)
		return 0;
	qsort(e, n, sizeof(PendingEntry), entry_qsort_cmp);
	for (size_t i = 1; i < n; i++)
	{
		if (pending_entry_cmp(&e[k], &e[i]) == 0)
		{
			if (e[i].stamp > e[k].stamp)
				e[k].stamp = e[i].stamp;
		}
		else
			e[++k] = e[i];
	}
	return k + 1;
}

static bool
valid_entry(const PendingEntry *e)
{
	static const uint8_t zero[16];

	if (e->dboid == 0)
		return false;
	if (e->kind == PENDING_FAMILY)
		return true;
	return e->kind == PENDING_DATABASE && memcmp(e->family, zero, sizeof(zero)) == 0;
}

/*
 * The whole store, checked entirely, in a malloc()ed array (NULL when
 * empty).  Nothing short of a complete valid read is returned.
 */
static PendingStatus
read_all(const char *path, PendingEntry **out, size_t *n, bool *legacy,
		 PendingError *err)
{
	StoreFile	sf;
	bool		exists;
	PendingStatus st;
	PendingEntry *e = NULL;
	size_t		count;

	*out = NULL;
	*n = 0;
	*legacy = false;
	st = open_file(path, &sf, &exists, err);
	if (st != PENDING_OK || !exists)
		return st;
	*legacy = sf.legacy;
	if (sf.count > SIZE_MAX / sizeof(PendingEntry))
	{
		close(sf.fd);
		return PENDING_NO_MEMORY;
	}
	count = (size_t) sf.count;
	if (count > 0 && (e = malloc(count * sizeof(PendingEntry))) == NULL)
	{
		close(sf.fd);
		return PENDING_NO_MEMORY;
	}
	if (sf.legacy)
	{
		st = read_legacy(&sf, path, 0, count, e, err);
		if (st == PENDING_OK)
			count = sort_unique(e, count);
	}
	else if (count > 0)
	{
		PendingHeader h;

		if (!pread_all(sf.fd, &h, sizeof(h), 0) ||
			!pread_all(sf.fd, e, count * sizeof(PendingEntry), sizeof(h)))
			st = errno ? fail_io(err, PENDING_OP_READ, path, errno) :
				fail_corrupt(err, path, "The file is shorter than its header says.");
		else if (h.data_crc != crc32_update(0, e, count * sizeof(PendingEntry)))
			st = fail_corrupt(err, path, "The checksum of its entries does not match.");
		else
		{
			for (size_t i = 0; i < count && st == PENDING_OK; i++)
			{
				if (!valid_entry(&e[i]))
					st = fail_corrupt(err, path, "An entry is not valid.");
				else if (i > 0 && pending_entry_cmp(&e[i - 1], &e[i]) >= 0)
					st = fail_corrupt(err, path, "Its entries are not in order.");
			}
		}
	}
	close(sf.fd);
	if (st != PENDING_OK)
	{
		free(e);
		return st;
	}
	*out = e;
	*n = count;
	return PENDING_OK;
}

/* whether the current-format file holds key, by binary search */
static PendingStatus
search(StoreFile *sf, const char *path, const PendingEntry *key, bool *found,
	   PendingError *err)
{
	uint64_t	lo = 0;
	uint64_t	hi = sf->count;

	*found = false;
	while (lo < hi)
	{
		uint64_t	mid = lo + (hi - lo) / 2;
		PendingEntry e;
		int			c;

		if (!pread_all(sf->fd, &e, sizeof(e),
					   (off_t) (sizeof(PendingHeader) + mid * sizeof(PendingEntry))))
			return errno ? fail_io(err, PENDING_OP_READ, path, errno) :
				fail_corrupt(err, path, "The file is shorter than its header says.");
		c = pending_entry_cmp(key, &e);
		if (c == 0)
		{
			*found = true;
			return PENDING_OK;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return PENDING_OK;
}

PendingStatus
pending_lookup(const PendingStore *store, uint32_t dboid, const uint8_t family[16],
			   PendingHit *hit, PendingError *err)
{
	StoreFile	sf;
	bool		exists;
	PendingStatus st;
	PendingEntry key;
	bool		found = false;

	*hit = PENDING_HIT_NONE;
	clear_error(err, store->path);
	st = open_file(store->path, &sf, &exists, err);
	if (st != PENDING_OK || !exists)
		return st;

	if (sf.legacy)
	{
		/* no order, no marker: a scan of it all, until a write converts it */
		PendingEntry chunk[SCAN_CHUNK];

		for (uint64_t first = 0; first < sf.count && !found && st == PENDING_OK;
			 first += SCAN_CHUNK)
		{
			size_t		k = sf.count - first < SCAN_CHUNK ?
				(size_t) (sf.count - first) : SCAN_CHUNK;

			st = read_legacy(&sf, store->path, first, k, chunk, err);
			for (size_t i = 0; i < k && st == PENDING_OK && !found; i++)
				found = chunk[i].dboid == dboid &&
					memcmp(chunk[i].family, family, 16) == 0;
		}
		if (found)
			*hit = PENDING_HIT_FAMILY;
		close(sf.fd);
		return st;
	}

	memset(&key, 0, sizeof(key));
	key.dboid = dboid;
	key.kind = PENDING_FAMILY;
	memcpy(key.family, family, sizeof(key.family));
	st = search(&sf, store->path, &key, &found, err);
	if (st == PENDING_OK && found)
		*hit = PENDING_HIT_FAMILY;
	else if (st == PENDING_OK)
	{
		key.kind = PENDING_DATABASE;
		memset(key.family, 0, sizeof(key.family));
		st = search(&sf, store->path, &key, &found, err);
		if (st == PENDING_OK && found)
			*hit = PENDING_HIT_DATABASE;
	}
	close(sf.fd);
	return st;
}

PendingStatus
pending_read(const PendingStore *store, uint32_t dboid, PendingEntry **entries,
			 size_t *n, PendingError *err)
{
	PendingStatus st;
	size_t		k = 0;
	bool		legacy;

	clear_error(err, store->path);
	st = read_all(store->path, entries, n, &legacy, err);
	if (st != PENDING_OK || dboid == 0)
		return st;
	for (size_t i = 0; i < *n; i++)
		if ((*entries)[i].dboid == dboid)
			(*entries)[k++] = (*entries)[i];
	*n = k;
	if (k == 0)
	{
		free(*entries);
		*entries = NULL;
	}
	return PENDING_OK;
}

/* ----------------------------------------------------------------
 * Writing
 * ----------------------------------------------------------------
 */

/*
 * Replace the store by entries (sorted, unique): path.tmp written whole
 * and fsync'd, renamed over path, the directory fsync'd; with none, the
 * file is unlinked.  With the lock held.
 */
static PendingStatus
write_store(const PendingStore *store, const PendingEntry *entries, size_t n,
			PendingError *err)
{
	char		tmp[PATH_MAX];
	char		dir[PATH_MAX];
	PendingHeader h;
	int			fd;

	if (!sibling(tmp, sizeof(tmp), store->path, ".tmp") ||
		!directory_of(dir, sizeof(dir), store->path))
		return fail_io(err, PENDING_OP_OPEN, store->path, ENAMETOOLONG);
	if (n == 0)
	{
		if (unlink(store->path) != 0 && errno != ENOENT)
			return fail_io(err, PENDING_OP_UNLINK, store->path, errno);
		if (fsync_directory(dir) != 0)
			return fail_io(err, PENDING_OP_FSYNC, dir, errno);
		return PENDING_OK;
	}
	if (n > PENDING_COUNT_LIMIT)
	{
		clear_error(err, store->path);
		return PENDING_NO_SPACE;
	}

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, PENDING_MAGIC, sizeof(h.magic));
	h.version = PENDING_VERSION;
	h.count = (uint32_t) n;
	h.flags = 0;
	h.entry_size = sizeof(PendingEntry);
	h.data_crc = crc32_update(0, entries, n * sizeof(PendingEntry));
	h.header_crc = crc32_update(0, &h, offsetof(PendingHeader, header_crc));

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, store->file_mode);
	if (fd < 0)
		return fail_io(err, PENDING_OP_OPEN, tmp, errno);
	if (!write_all(fd, &h, sizeof(h)) ||
		!write_all(fd, entries, n * sizeof(PendingEntry)))
		fail_io(err, PENDING_OP_WRITE, tmp, errno);
	else if (fsync(fd) != 0)
		fail_io(err, PENDING_OP_FSYNC, tmp, errno);
	else if (close(fd) != 0)
	{
		fd = -1;
		fail_io(err, PENDING_OP_WRITE, tmp, errno);
	}
	else
	{
		fd = -1;
		if (rename(tmp, store->path) != 0)
			fail_io(err, PENDING_OP_RENAME, tmp, errno);
		else if (fsync_directory(dir) != 0)
			return fail_io(err, PENDING_OP_FSYNC, dir, errno);
		else
			return PENDING_OK;
	}
	/* the store is as it was: drop what was written of the next version */
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return PENDING_IO_ERROR;
}

/* a copy of the caller's entries, checked, sorted and unique */
static PendingStatus
copy_input(const PendingStore *store, const PendingEntry *in, size_t n,
		   PendingEntry **out, size_t *nout, PendingError *err)
{
	PendingEntry *e;

	if (n > SIZE_MAX / sizeof(PendingEntry) ||
		(e = malloc(n * sizeof(PendingEntry))) == NULL)
		return PENDING_NO_MEMORY;
	memcpy(e, in, n * sizeof(PendingEntry));
	for (size_t i = 0; i < n; i++)
	{
		if (e[i].kind == PENDING_DATABASE)
			memset(e[i].family, 0, sizeof(e[i].family));
		if (!valid_entry(&e[i]))
		{
			free(e);
			return fail_io(err, PENDING_OP_NONE, store->path, EINVAL);
		}
	}
	*nout = sort_unique(e, n);
	*out = e;
	return PENDING_OK;
}

/*
 * The new contents of the store, from cur (valid) and in (sorted, unique),
 * into out (room for ncur + nin entries): see pending_add.  *changed says
 * whether out differs from cur.
 */
static size_t
merge_add(const PendingStore *store, const PendingEntry *cur, size_t ncur,
		  const PendingEntry *in, size_t nin, PendingEntry *out, uint8_t *isnew,
		  uint32_t *collapse, PendingAdded *added, bool *changed)
{
	size_t		i = 0;
	size_t		j = 0;
	size_t		n = 0;
	size_t		k;
	size_t		ncollapse = 0;
	uint64_t	families = 0;
	uint64_t	room;

	*added = PENDING_ADDED_NONE;
	*changed = false;

	/* 1. the union; a marker given with a later stamp moves on */
	while (i < ncur || j < nin)
	{
		int			c = i >= ncur ? 1 : j >= nin ? -1 : pending_entry_cmp(&cur[i], &in[j]);

		if (c < 0 || (c == 0 && !(in[j].kind == PENDING_DATABASE && in[j].stamp > cur[i].stamp)))
		{
			out[n] = cur[i];
			isnew[n++] = 0;
		}
		else
		{
			out[n] = in[j];
			isnew[n++] = 1;
		}
		if (c >= 0 && in[j].kind == PENDING_DATABASE)
			*added = PENDING_ADDED_DATABASE;
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
	}

	/* 2. a database's marker covers its families recorded up to its stamp */
	k = 0;
	for (size_t g = 0; g < n;)
	{
		size_t		end = g;
		bool		marker = out[g].kind == PENDING_DATABASE;
		int64_t		mstamp = out[g].stamp;	/* out[g] may be written over */

		while (end < n && out[end].dboid == out[g].dboid)
			end++;
		for (size_t x = g; x < end; x++)
		{
			if (marker && x > g && out[x].stamp <= mstamp)
			{
				if (isnew[x])
					*added = PENDING_ADDED_DATABASE;
				else
					*changed = true;
				continue;
			}
			if (!isnew[x] && out[x].kind == PENDING_FAMILY)
				families++;
			out[k] = out[x];
			isnew[k++] = isnew[x];
		}
		g = end;
	}
	n = k;

	/*
	 * 3. new families while there is room; the database of one that does
	 * not fit gets a marker instead of its entries
	 */
	room = families < store->max_families ? store->max_families - families : 0;
	for (size_t x = 0; x < n; x++)
	{
		if (!isnew[x] || out[x].kind != PENDING_FAMILY)
			continue;
		if (room > 0)
		{
			room--;
			if (*added == PENDING_ADDED_NONE)
				*added = PENDING_ADDED_FAMILY;
		}
		else if (ncollapse == 0 || collapse[ncollapse - 1] != out[x].dboid)
			collapse[ncollapse++] = out[x].dboid;
	}
	if (ncollapse > 0)
	{
		size_t		c = 0;

		*added = PENDING_ADDED_DATABASE;
		k = 0;
		for (size_t g = 0; g < n;)
		{
			size_t		end = g;
			uint32_t	dboid = out[g].dboid;
			int64_t		stamp = out[g].stamp;

			while (end < n && out[end].dboid == dboid)
			{
				if (out[end].stamp > stamp)
					stamp = out[end].stamp;
				end++;
			}
			while (c < ncollapse && collapse[c] < dboid)
				c++;
			if (c < ncollapse && collapse[c] == dboid)
			{
				/* out[k] may be out[g]: dboid and stamp are copies */
				memset(&out[k], 0, sizeof(out[k]));
				out[k].dboid = dboid;
				out[k].kind = PENDING_DATABASE;
				out[k].stamp = stamp;
				isnew[k++] = 1;
			}
			else
				for (size_t x = g; x < end; x++)
				{
					out[k] = out[x];
					isnew[k++] = isnew[x];
				}
			g = end;
		}
		n = k;
	}

	for (size_t x = 0; x < n && !*changed; x++)
		*changed = isnew[x] != 0;
	return n;
}

/*
 * The start of a change: the caller's entries copied (checked, sorted,
 * unique) into *in, the lock taken into *lockfd, the store read into *cur.
 * Whatever it returns, the caller then unlocks when *lockfd >= 0 and frees
 * *in and *cur (each NULL when not made).
 */
static PendingStatus
begin_change(const PendingStore *store, const PendingEntry *entries, size_t n,
			 PendingEntry **in, size_t *nin, int *lockfd,
			 PendingEntry **cur, size_t *ncur, bool *legacy, PendingError *err)
{
	PendingStatus st;

	*in = NULL;
	*nin = 0;
	*cur = NULL;
	*ncur = 0;
	*lockfd = -1;
	st = copy_input(store, entries, n, in, nin, err);
	if (st != PENDING_OK)
		return st;
	*lockfd = lock_store(store, err);
	if (*lockfd < 0)
		return PENDING_IO_ERROR;
	/* only a complete, valid read is ever written back */
	return read_all(store->path, cur, ncur, legacy, err);
}

PendingStatus
pending_add(const PendingStore *store, const PendingEntry *entries, size_t n,
			PendingAdded *added, PendingError *err)
{
	PendingEntry *in = NULL;
	size_t		nin = 0;
	PendingEntry *cur = NULL;
	size_t		ncur = 0;
	PendingEntry *out = NULL;
	uint8_t    *isnew = NULL;
	uint32_t   *collapse = NULL;
	size_t		nout;
	bool		changed;
	bool		legacy;
	int			lockfd;
	PendingStatus st;

	*added = PENDING_ADDED_NONE;
	clear_error(err, store->path);
	if (n == 0)
		return PENDING_OK;
	st = begin_change(store, entries, n, &in, &nin, &lockfd,
					  &cur, &ncur, &legacy, err);
	if (st == PENDING_OK)
	{
		out = malloc((ncur + nin) * sizeof(PendingEntry));
		isnew = malloc(ncur + nin);
		collapse = malloc(nin * sizeof(uint32_t));
		if (out == NULL || isnew == NULL || collapse == NULL)
			st = PENDING_NO_MEMORY;
	}
	if (st == PENDING_OK)
	{
		nout = merge_add(store, cur, ncur, in, nin, out, isnew, collapse, added, &changed);
		/* a file of the first format is converted by any write */
		if (changed || legacy)
			st = write_store(store, out, nout, err);
	}
	if (st != PENDING_OK)
		*added = PENDING_ADDED_NONE;
	if (lockfd >= 0)
		unlock_store(lockfd);
	free(collapse);
	free(isnew);
	free(out);
	free(cur);
	free(in);
	return st;
}

PendingStatus
pending_remove(const PendingStore *store, const PendingEntry *entries, size_t n,
			   size_t *removed, PendingError *err)
{
	PendingEntry *in = NULL;
	size_t		nin = 0;
	PendingEntry *cur = NULL;
	size_t		ncur = 0;
	size_t		kept = 0;
	bool		legacy;
	int			lockfd;
	PendingStatus st;

	*removed = 0;
	clear_error(err, store->path);
	if (n == 0)
		return PENDING_OK;
	st = begin_change(store, entries, n, &in, &nin, &lockfd,
					  &cur, &ncur, &legacy, err);
	if (st == PENDING_OK)
	{
		for (size_t i = 0; i < ncur; i++)
		{
			const PendingEntry *m = bsearch(&cur[i], in, nin, sizeof(PendingEntry),
											entry_qsort_cmp);

			if (m != NULL && cur[i].stamp <= m->stamp)
				continue;
			cur[kept++] = cur[i];
		}
		if (kept < ncur || legacy)
			st = write_store(store, cur, kept, err);
		if (st == PENDING_OK)
			*removed = ncur - kept;
	}
	if (lockfd >= 0)
		unlock_store(lockfd);
	free(cur);
	free(in);
	return st;
}

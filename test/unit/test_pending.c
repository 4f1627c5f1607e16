/*
 * test_pending.c
 *		Standalone unit test of src/pending.c, the store of pending family
 *		revocations: add, duplicates, lookup, remove, large stores, the
 *		older format, damaged files, the full store, what a crash or a
 *		failed write leaves, and concurrent writers.
 *
 * Plain C over POSIX, no PostgreSQL.  Each case works in a directory of its
 * own under a temporary directory (TMPDIR, or /tmp), removed at the end.
 *
 * Prints one line per failed check (file:line) and, last,
 * "N passed, M failed"; exits 1 if any check failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pending.h"

/*
 * Every pread() of the binary, pending.c's included, comes here and is
 * counted, with the bytes it read: how much of the store a lookup reads
 * is then a count, not a time that a loaded machine stretches.
 */
static long pread_calls = 0;
static long long pread_bytes = 0;

ssize_t
pread(int fd, void *buf, size_t count, off_t offset)
{
	long		got = syscall(SYS_pread64, fd, buf, count, offset);

	pread_calls++;
	if (got > 0)
		pread_bytes += got;
	return got;
}

static int	n_passed = 0;
static int	n_failed = 0;
static const char *label = "";	/* current case, shown in failure lines */

#define CHECK(cond) \
	do { \
		if (cond) \
			n_passed++; \
		else \
		{ \
			n_failed++; \
			printf("%s:%d: [%s] check failed: %s\n", \
				   __FILE__, __LINE__, label, #cond); \
		} \
	} while (0)

/* Expect an exact PendingStatus; name both values on failure. */
#define CHECK_ST(expr, want) \
	do { \
		PendingStatus got_ = (expr); \
		PendingStatus want_ = (want); \
		if (got_ == want_) \
			n_passed++; \
		else \
		{ \
			n_failed++; \
			printf("%s:%d: [%s] %s: got %s, want %s (%s)\n", \
				   __FILE__, __LINE__, label, #expr, \
				   st_name(got_), st_name(want_), err_text(&err)); \
		} \
	} while (0)

/* in a loop that ends in one CHECK(bad == 0): describe the first failure */
#define LOOP_FAIL(bad, ...) \
	do { \
		if ((bad)++ == 0) \
		{ \
			printf("%s:%d: [%s] ", __FILE__, __LINE__, label); \
			printf(__VA_ARGS__); \
			printf("\n"); \
		} \
	} while (0)

static PendingError err;
static char base[256];			/* the temporary directory */
static char dir[512];			/* the current case's directory */
static char path[600];			/* its store */

static const char *
st_name(PendingStatus st)
{
	switch (st)
	{
		case PENDING_OK:
			return "PENDING_OK";
		case PENDING_IO_ERROR:
			return "PENDING_IO_ERROR";
		case PENDING_CORRUPT:
			return "PENDING_CORRUPT";
		case PENDING_NO_SPACE:
			return "PENDING_NO_SPACE";
		case PENDING_NO_MEMORY:
			return "PENDING_NO_MEMORY";
	}
	return "(unknown status)";
}

static const char *
err_text(const PendingError *e)
{
	static char buf[1200];

	if (e->detail)
		snprintf(buf, sizeof(buf), "%s: %s", e->file, e->detail);
	else
		snprintf(buf, sizeof(buf), "op %d on %s: %s", (int) e->op, e->file,
				 e->errnum ? strerror(e->errnum) : "-");
	return buf;
}

static void fatal(const char *what) __attribute__((noreturn));

static void
fatal(const char *what)
{
	printf("fatal: %s: %s\n", what, strerror(errno));
	printf("%d passed, %d failed\n", n_passed, n_failed + 1);
	exit(1);
}

/* xorshift64*: reproducible families */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static PendingEntry
fam(uint32_t dboid, int64_t stamp)
{
	PendingEntry e;
	uint64_t	a = rng();
	uint64_t	b = rng();

	memset(&e, 0, sizeof(e));
	e.dboid = dboid;
	e.kind = PENDING_FAMILY;
	memcpy(e.family, &a, 8);
	memcpy(e.family + 8, &b, 8);
	e.stamp = stamp;
	return e;
}

static PendingEntry
marker(uint32_t dboid, int64_t stamp)
{
	PendingEntry e;

	memset(&e, 0, sizeof(e));
	e.dboid = dboid;
	e.kind = PENDING_DATABASE;
	e.stamp = stamp;
	return e;
}

static PendingStore
store_of(uint32_t max_families)
{
	PendingStore s;

	s.path = path;
	s.max_families = max_families;
	s.file_mode = 0600;
	return s;
}

static PendingHit
lookup(const PendingStore *s, const PendingEntry *e)
{
	PendingHit	hit = PENDING_HIT_NONE;

	if (pending_lookup(s, e->dboid, e->family, &hit, &err) != PENDING_OK)
		return (PendingHit) -1;
	return hit;
}

static long long
file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? (long long) st.st_size : -1;
}

static bool
exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

static char *
slurp(const char *p, size_t *len)
{
	FILE	   *f = fopen(p, "rb");
	char	   *buf;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t) n : 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
		fatal("read a file");
	fclose(f);
	*len = (size_t) n;
	return buf;
}

static void
spew(const char *p, const void *data, size_t len)
{
	FILE	   *f = fopen(p, "wb");

	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		fatal("write a file");
}

/* whether the file at p holds exactly these bytes */
static bool
same_bytes(const char *p, const char *data, size_t len)
{
	size_t		n;
	char	   *now = slurp(p, &n);
	bool		same = now != NULL && n == len && memcmp(now, data, len) == 0;

	free(now);
	return same;
}

static void
cut_to(long long size)
{
	if (truncate(path, (off_t) size) != 0)
		fatal("truncate");
}

static void
rm_rf(const char *p)
{
	char		cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	if (system(cmd) != 0)
		fatal("remove a directory");
}

static void
begin(const char *name)
{
	label = name;
	snprintf(dir, sizeof(dir), "%s/%s", base, name);
	if (mkdir(dir, 0700) != 0)
		fatal("mkdir");
	snprintf(path, sizeof(path), "%s/pending", dir);
}

/* ----------------------------------------------------------------
 * Cases
 * ----------------------------------------------------------------
 */

static void
test_empty(void)
{
	PendingStore s;
	PendingEntry e;
	PendingEntry *all = (PendingEntry *) &s;
	size_t		n = 99;
	size_t		removed = 99;

	begin("empty");
	s = store_of(100);
	e = fam(1, 1);
	CHECK(lookup(&s, &e) == PENDING_HIT_NONE);
	CHECK_ST(pending_read(&s, 0, &all, &n, &err), PENDING_OK);
	CHECK(all == NULL && n == 0);
	CHECK_ST(pending_remove(&s, &e, 1, &removed, &err), PENDING_OK);
	CHECK(removed == 0);
	CHECK(!exists(path));

	/* an empty file of the first format is an empty store */
	spew(path, "", 0);
	CHECK(lookup(&s, &e) == PENDING_HIT_NONE);
}

static void
test_add_lookup(void)
{
	PendingStore s = store_of(100);
	PendingEntry a;
	PendingEntry b;
	PendingEntry c;
	PendingEntry other;
	PendingAdded added;
	PendingEntry *all;
	size_t		n;

	begin("add_lookup");
	a = fam(5, 10);
	b = fam(5, 11);
	c = fam(7, 12);
	CHECK_ST(pending_add(&s, &a, 1, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_FAMILY);
	CHECK_ST(pending_add(&s, &b, 1, &added, &err), PENDING_OK);
	CHECK_ST(pending_add(&s, &c, 1, &added, &err), PENDING_OK);
	CHECK(file_size(path) == 32 + 3 * 32);
	CHECK(lookup(&s, &a) == PENDING_HIT_FAMILY);
	CHECK(lookup(&s, &b) == PENDING_HIT_FAMILY);
	CHECK(lookup(&s, &c) == PENDING_HIT_FAMILY);

	/* the same family in another database is another entry */
	other = a;
	other.dboid = 6;
	CHECK(lookup(&s, &other) == PENDING_HIT_NONE);
	other = fam(5, 0);
	CHECK(lookup(&s, &other) == PENDING_HIT_NONE);

	/* sorted, one database at a time */
	CHECK_ST(pending_read(&s, 5, &all, &n, &err), PENDING_OK);
	CHECK(n == 2 && all[0].dboid == 5 && all[1].dboid == 5 &&
		  pending_entry_cmp(&all[0], &all[1]) < 0);
	free(all);
	CHECK_ST(pending_read(&s, 0, &all, &n, &err), PENDING_OK);
	CHECK(n == 3 && all[2].dboid == 7 && all[2].stamp == 12);
	free(all);
	CHECK_ST(pending_read(&s, 9, &all, &n, &err), PENDING_OK);
	CHECK(n == 0 && all == NULL);

	/* no temporary file is left behind; the lock file stays */
	{
		char		tmp[700];

		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		CHECK(!exists(tmp));
	}

	/* what cannot be an entry is refused */
	other = fam(0, 0);
	CHECK_ST(pending_add(&s, &other, 1, &added, &err), PENDING_IO_ERROR);
	CHECK(err.errnum == EINVAL);
	other = fam(3, 0);
	other.kind = 7;
	CHECK_ST(pending_add(&s, &other, 1, &added, &err), PENDING_IO_ERROR);
	CHECK(file_size(path) == 32 + 3 * 32);
}

static void
test_duplicates(void)
{
	PendingStore s = store_of(100);
	PendingEntry a;
	PendingEntry twice[2];
	PendingAdded added;
	struct stat before;
	struct stat after;
	int			bad = 0;

	begin("duplicates");
	a = fam(5, 10);
	CHECK_ST(pending_add(&s, &a, 1, &added, &err), PENDING_OK);
	stat(path, &before);
	/* every failed attempt of the first builds appended the family again */
	for (int i = 0; i < 50; i++)
	{
		a.stamp = 100 + i;
		if (pending_add(&s, &a, 1, &added, &err) != PENDING_OK || added != PENDING_ADDED_NONE)
			LOOP_FAIL(bad, "add %d of a recorded family: %s", i, err_text(&err));
	}
	CHECK(bad == 0);
	CHECK(file_size(path) == 32 + 32);
	/* nothing was rewritten */
	stat(path, &after);
	CHECK(before.st_ino == after.st_ino);

	/* twice in one call: once */
	twice[0] = fam(6, 1);
	twice[1] = twice[0];
	CHECK_ST(pending_add(&s, twice, 2, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_FAMILY);
	CHECK(file_size(path) == 32 + 2 * 32);
}

static void
test_remove(void)
{
	PendingStore s = store_of(100);
	PendingEntry e[10];
	PendingEntry absent;
	PendingAdded added;
	size_t		removed;
	struct stat before;
	struct stat after;

	begin("remove");
	for (int i = 0; i < 10; i++)
		e[i] = fam(i < 5 ? 5 : 6, i);
	CHECK_ST(pending_add(&s, e, 10, &added, &err), PENDING_OK);
	CHECK(file_size(path) == 32 + 10 * 32);

	/* what is not there changes nothing, and the file is not rewritten */
	absent = fam(5, 0);
	stat(path, &before);
	CHECK_ST(pending_remove(&s, &absent, 1, &removed, &err), PENDING_OK);
	CHECK(removed == 0);
	stat(path, &after);
	CHECK(before.st_ino == after.st_ino);

	/* a family recorded again since (a later stamp) is not the one read */
	CHECK_ST(pending_remove(&s, &e[0], 1, &removed, &err), PENDING_OK);
	CHECK(removed == 1);
	CHECK(lookup(&s, &e[0]) == PENDING_HIT_NONE);
	CHECK(lookup(&s, &e[1]) == PENDING_HIT_FAMILY);

	/* one database's entries */
	CHECK_ST(pending_remove(&s, e + 1, 4, &removed, &err), PENDING_OK);
	CHECK(removed == 4);
	CHECK(file_size(path) == 32 + 5 * 32);
	for (int i = 5; i < 10; i++)
		CHECK(lookup(&s, &e[i]) == PENDING_HIT_FAMILY);

	/* the last ones: no file at all */
	CHECK_ST(pending_remove(&s, e + 5, 5, &removed, &err), PENDING_OK);
	CHECK(removed == 5);
	CHECK(!exists(path));
	CHECK(lookup(&s, &e[9]) == PENDING_HIT_NONE);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
test_large(void)
{
	enum
	{
		N = 250000
	};
	PendingStore s = store_of(PENDING_MAX_FAMILIES);
	PendingEntry *e = malloc(N * sizeof(PendingEntry));
	PendingEntry *all;
	PendingEntry *half;
	PendingEntry one;
	PendingAdded added;
	size_t		n;
	size_t		removed;
	size_t		nhalf = 0;
	int			bad = 0;
	double		t0;
	double		elapsed;
	long		reads;
	long long	bytes;

	begin("large");
	if (e == NULL || (half = malloc(N * sizeof(PendingEntry))) == NULL)
		fatal("malloc");
	for (int i = 0; i < N; i++)
		e[i] = fam(1 + i % 3, i);
	CHECK_ST(pending_add(&s, e, N, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_FAMILY);
	CHECK(file_size(path) == 32 + (long long) N * 32);

	/* every entry is found, the first, the last, and those past 100,000 */
	for (int i = 0; i < N; i++)
		if (lookup(&s, &e[i]) != PENDING_HIT_FAMILY)
			LOOP_FAIL(bad, "entry %d not found", i);
	CHECK(bad == 0);
	for (int i = 0; i < 1000; i++)
	{
		one = fam(1 + i % 3, 0);
		if (lookup(&s, &one) != PENDING_HIT_NONE)
			LOOP_FAIL(bad, "absent family %d found", i);
	}
	CHECK(bad == 0);

	/*
	 * a lookup reads about log2(250,000) = 18 entries, one pread each, plus
	 * the header, not the file (counted, not timed)
	 */
	t0 = now_s();
	reads = pread_calls;
	bytes = pread_bytes;
	for (int i = 0; i < 20000; i++)
		(void) lookup(&s, &e[(i * 7919) % N]);
	reads = pread_calls - reads;
	bytes = pread_bytes - bytes;
	elapsed = now_s() - t0;
	CHECK(reads <= 20000L * 24 && bytes <= 20000LL * 24 * 32);
	printf("  large: 20000 lookups in a store of %d entries: %.1f preads, %.0f bytes each, %.3f s\n",
		   N, reads / 20000.0, bytes / 20000.0, elapsed);

	/* one more, recorded one at a time as the server does */
	one = fam(2, N);
	t0 = now_s();
	CHECK_ST(pending_add(&s, &one, 1, &added, &err), PENDING_OK);
	printf("  large: one add to %d entries: %.3f s\n", N, now_s() - t0);
	CHECK(added == PENDING_ADDED_FAMILY);
	CHECK(lookup(&s, &one) == PENDING_HIT_FAMILY);

	/* the whole store comes back, in order */
	CHECK_ST(pending_read(&s, 0, &all, &n, &err), PENDING_OK);
	CHECK(n == N + 1);
	for (size_t i = 1; i < n; i++)
		if (pending_entry_cmp(&all[i - 1], &all[i]) >= 0)
			LOOP_FAIL(bad, "entries %zu and %zu out of order", i - 1, i);
	CHECK(bad == 0);
	free(all);

	/* remove one database's (as its worker does): the others all stay */
	for (int i = 0; i < N; i++)
		if (e[i].dboid == 2)
			half[nhalf++] = e[i];
	CHECK_ST(pending_remove(&s, half, nhalf, &removed, &err), PENDING_OK);
	CHECK(removed == nhalf);
	CHECK(lookup(&s, &one) == PENDING_HIT_FAMILY);
	for (int i = 0; i < N; i++)
		if (lookup(&s, &e[i]) != (e[i].dboid == 2 ? PENDING_HIT_NONE : PENDING_HIT_FAMILY))
			LOOP_FAIL(bad, "entry %d after the removal", i);
	CHECK(bad == 0);
	CHECK(file_size(path) == 32 + (long long) (N + 1 - nhalf) * 32);
	free(half);
	free(e);
}

/* a file as the first builds of 0.5 wrote it: 20-byte (oid, uuid) entries, appended */
static void
write_legacy(const PendingEntry *e, size_t n)
{
	unsigned char *buf = malloc(n * 20 + 1);

	if (buf == NULL)
		fatal("malloc");
	for (size_t i = 0; i < n; i++)
	{
		memcpy(buf + i * 20, &e[i].dboid, 4);
		memcpy(buf + i * 20 + 4, e[i].family, 16);
	}
	spew(path, buf, n * 20);
	free(buf);
}

static void
test_legacy(void)
{
	enum
	{
		N = 150000				/* past the first builds' read cap of 100,000 */
	};
	PendingStore s = store_of(PENDING_MAX_FAMILIES);
	PendingEntry *e = malloc(N * sizeof(PendingEntry));
	PendingEntry *all;
	PendingEntry one;
	PendingAdded added;
	size_t		n;
	size_t		len;
	char	   *bytes;
	int			bad = 0;

	begin("legacy");
	if (e == NULL)
		fatal("malloc");
	/* 50,000 families, each appended three times, the tail one last */
	for (int i = 0; i < N / 3; i++)
		e[i] = fam(1 + i % 2, 0);
	for (int i = N / 3; i < N; i++)
		e[i] = e[i % (N / 3)];
	e[N - 1] = fam(1, 0);
	write_legacy(e, N);

	CHECK(lookup(&s, &e[N - 1]) == PENDING_HIT_FAMILY);
	CHECK(lookup(&s, &e[0]) == PENDING_HIT_FAMILY);
	one = fam(1, 0);
	CHECK(lookup(&s, &one) == PENDING_HIT_NONE);
	CHECK_ST(pending_read(&s, 0, &all, &n, &err), PENDING_OK);
	CHECK(n == N / 3 + 1);
	free(all);

	/* a lookup or a read never rewrites it; the next add converts it */
	bytes = slurp(path, &len);
	CHECK(len == (size_t) N * 20);
	CHECK_ST(pending_add(&s, &one, 1, &added, &err), PENDING_OK);
	CHECK(file_size(path) == 32 + (long long) (N / 3 + 2) * 32);
	for (int i = 0; i < N; i++)
		if (lookup(&s, &e[i]) != PENDING_HIT_FAMILY)
			LOOP_FAIL(bad, "entry %d of the older file lost", i);
	CHECK(bad == 0);
	CHECK(lookup(&s, &one) == PENDING_HIT_FAMILY);
	free(bytes);

	/* a remove that removes nothing converts it too */
	write_legacy(e, 1000);
	{
		size_t		removed;

		one = fam(2, 0);
		CHECK_ST(pending_remove(&s, &one, 1, &removed, &err), PENDING_OK);
		CHECK(removed == 0);
		CHECK(file_size(path) == 32 + 1000 * 32);
		CHECK(lookup(&s, &e[999]) == PENDING_HIT_FAMILY);
	}

	/* an older file with a torn entry, or naming no database: damaged */
	write_legacy(e, 10);
	cut_to(10 * 20 - 3);
	CHECK_ST(pending_lookup(&s, 1, e[0].family, &(PendingHit) {0}, &err), PENDING_CORRUPT);
	one = e[3];
	one.dboid = 0;
	write_legacy(&one, 1);
	CHECK_ST(pending_read(&s, 0, &all, &n, &err), PENDING_CORRUPT);
	free(e);
}

/*
 * Damage a good store of 1,000 entries with fn, then: every full read
 * (read, add, remove) is PENDING_CORRUPT and leaves the file as it is;
 * lookup is too when lookup_sees is set (a lookup reads the header, the
 * size and the entries it probes, not the whole file).
 */
static void
damaged(const char *what, void (*fn) (void), bool lookup_sees)
{
	PendingStore s = store_of(100000);
	PendingEntry e[1000];
	PendingEntry one;
	PendingEntry *all = NULL;
	PendingAdded added;
	PendingHit	hit;
	size_t		n;
	size_t		removed;
	size_t		len;
	char	   *bytes;
	char		name[64];
	const char *save = label;

	snprintf(name, sizeof(name), "corrupt_%s", what);
	begin(name);
	for (int i = 0; i < 1000; i++)
		e[i] = fam(1, i);
	if (pending_add(&s, e, 1000, &added, &err) != PENDING_OK)
		fatal("set up a store");
	fn();
	bytes = slurp(path, &len);

	if (lookup_sees)
		CHECK_ST(pending_lookup(&s, 1, e[999].family, &hit, &err), PENDING_CORRUPT);
	CHECK_ST(pending_read(&s, 0, &all, &n, &err), PENDING_CORRUPT);
	CHECK(all == NULL);
	one = fam(1, 5000);
	CHECK_ST(pending_add(&s, &one, 1, &added, &err), PENDING_CORRUPT);
	CHECK_ST(pending_remove(&s, e, 500, &removed, &err), PENDING_CORRUPT);
	CHECK(removed == 0);
	CHECK(same_bytes(path, bytes, len));
	free(bytes);
	label = save;
}

static void
cut_one_byte(void)
{
	cut_to(file_size(path) - 1);
}

static void
cut_one_entry(void)
{
	cut_to(file_size(path) - 32);
}

static void
cut_into_header(void)
{
	cut_to(20);
}

static void
flip_at(off_t off)
{
	int			fd = open(path, O_RDWR);
	unsigned char c;

	if (fd < 0 || pread(fd, &c, 1, off) != 1)
		fatal("open a store");
	c ^= 0x10;
	if (pwrite(fd, &c, 1, off) != 1)
		fatal("write a store");
	close(fd);
}

static void
flip_count(void)
{
	flip_at(12);
}

static void
flip_magic(void)
{
	flip_at(2);
}

static void
flip_entry(void)
{
	flip_at(32 + 500 * 32 + 9);
}

static void
grow_garbage(void)
{
	int			fd = open(path, O_WRONLY | O_APPEND);

	if (fd < 0 || write(fd, "garbage!", 8) != 8)
		fatal("append to a store");
	close(fd);
}

/* two entries swapped, and the checksums made to match: out of order */
static void
swap_entries(void)
{
	size_t		len;
	unsigned char *b = (unsigned char *) slurp(path, &len);
	unsigned char t[32];
	uint32_t	crc;
	uint32_t	table[256];

	for (uint32_t i = 0; i < 256; i++)
	{
		uint32_t	c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
	memcpy(t, b + 32, 32);
	memcpy(b + 32, b + 64, 32);
	memcpy(b + 64, t, 32);
	crc = ~0u;
	for (size_t i = 32; i < len; i++)
		crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	crc = ~crc;
	memcpy(b + 24, &crc, 4);
	crc = ~0u;
	for (size_t i = 0; i < 28; i++)
		crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	crc = ~crc;
	memcpy(b + 28, &crc, 4);
	spew(path, b, len);
	free(b);
}

static void
test_corrupt(void)
{
	damaged("cut_one_byte", cut_one_byte, true);
	damaged("cut_one_entry", cut_one_entry, true);
	damaged("cut_into_header", cut_into_header, true);
	damaged("flip_count", flip_count, true);
	damaged("flip_magic", flip_magic, true);
	damaged("flip_entry", flip_entry, false);
	damaged("grow_garbage", grow_garbage, true);
	damaged("swap_entries", swap_entries, false);
}

static void
test_full(void)
{
	PendingStore s = store_of(100);
	PendingEntry e[100];
	PendingEntry x;
	PendingEntry y;
	PendingEntry z;
	PendingEntry never;
	PendingEntry m;
	PendingEntry *all;
	PendingAdded added;
	size_t		n;
	size_t		removed;
	int			bad = 0;

	begin("full");
	/* 60 families of database 1, 40 of database 2: full */
	for (int i = 0; i < 100; i++)
		e[i] = fam(i < 60 ? 1 : 2, 1000 + i);
	CHECK_ST(pending_add(&s, e, 100, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_FAMILY);

	/* one more of database 1 does not fit: database 1 is recorded */
	x = fam(1, 5000);
	CHECK_ST(pending_add(&s, &x, 1, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_DATABASE);
	CHECK(lookup(&s, &x) == PENDING_HIT_DATABASE);
	never = fam(1, 0);
	CHECK(lookup(&s, &never) == PENDING_HIT_DATABASE);
	for (int i = 0; i < 100; i++)
		if (lookup(&s, &e[i]) != (i < 60 ? PENDING_HIT_DATABASE : PENDING_HIT_FAMILY))
			LOOP_FAIL(bad, "entry %d after database 1 was recorded", i);
	CHECK(bad == 0);
	never = fam(3, 0);
	CHECK(lookup(&s, &never) == PENDING_HIT_NONE);

	/* the marker replaced database 1's entries, stamped with the latest */
	CHECK_ST(pending_read(&s, 1, &all, &n, &err), PENDING_OK);
	CHECK(n == 1 && all[0].kind == PENDING_DATABASE && all[0].stamp == 5000);
	m = n > 0 ? all[0] : marker(1, 0);
	free(all);
	CHECK(file_size(path) == 32 + 41 * 32);

	/* database 1 again, later, while the marker is there: covered */
	y = fam(1, 4000);
	CHECK_ST(pending_add(&s, &y, 1, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_DATABASE);
	CHECK(file_size(path) == 32 + 41 * 32);
	/* with room again, a later one is an entry of its own beside it */
	y = fam(1, 6000);
	CHECK_ST(pending_add(&s, &y, 1, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_FAMILY);
	CHECK(lookup(&s, &y) == PENDING_HIT_FAMILY);

	/* fill it again with database 2; then a family of 2 moves it to a marker */
	for (int i = 0; i < 59; i++)
		e[i] = fam(2, 7000 + i);
	CHECK_ST(pending_add(&s, e, 59, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_FAMILY);
	z = fam(2, 9000);
	CHECK_ST(pending_add(&s, &z, 1, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_DATABASE);
	CHECK(lookup(&s, &z) == PENDING_HIT_DATABASE);
	CHECK(lookup(&s, &y) == PENDING_HIT_FAMILY);
	CHECK(file_size(path) == 32 + 3 * 32);

	/* full again with database 3: a family of 1 moves 1's marker on */
	for (int i = 0; i < 99; i++)
	{
		e[i] = fam(3, 10000 + i);
		if (pending_add(&s, &e[i], 1, &added, &err) != PENDING_OK || added != PENDING_ADDED_FAMILY)
			LOOP_FAIL(bad, "family %d of database 3: %s", i, err_text(&err));
	}
	CHECK(bad == 0);
	x = fam(1, 20000);
	CHECK_ST(pending_add(&s, &x, 1, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_DATABASE);
	CHECK_ST(pending_read(&s, 1, &all, &n, &err), PENDING_OK);
	CHECK(n == 1 && all[0].kind == PENDING_DATABASE && all[0].stamp == 20000);
	free(all);

	/*
	 * A worker that read the marker before it moved on applied less than
	 * it says now: the marker stays.  One that read it since removes it.
	 */
	CHECK_ST(pending_remove(&s, &m, 1, &removed, &err), PENDING_OK);
	CHECK(removed == 0);
	CHECK(lookup(&s, &x) == PENDING_HIT_DATABASE);
	m.stamp = 20000;
	CHECK_ST(pending_remove(&s, &m, 1, &removed, &err), PENDING_OK);
	CHECK(removed == 1);
	CHECK(lookup(&s, &x) == PENDING_HIT_NONE);
	CHECK(lookup(&s, &z) == PENDING_HIT_DATABASE);
}

/* a marker given directly: it covers what its database recorded up to it */
static void
test_marker(void)
{
	PendingStore s = store_of(100);
	PendingEntry e[3];
	PendingEntry m;
	PendingEntry *all;
	PendingAdded added;
	size_t		n;

	begin("marker");
	e[0] = fam(5, 10);
	e[1] = fam(5, 11);
	e[2] = fam(5, 30);
	CHECK_ST(pending_add(&s, e, 3, &added, &err), PENDING_OK);
	m = marker(5, 20);
	memset(m.family, 0xff, sizeof(m.family));	/* ignored in a marker */
	CHECK_ST(pending_add(&s, &m, 1, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_DATABASE);
	CHECK_ST(pending_read(&s, 0, &all, &n, &err), PENDING_OK);
	/* the marker, and the one family recorded after its stamp */
	CHECK(n == 2 && all[0].kind == PENDING_DATABASE && all[0].stamp == 20 &&
		  all[1].kind == PENDING_FAMILY && all[1].stamp == 30);
	free(all);
	CHECK(lookup(&s, &e[0]) == PENDING_HIT_DATABASE);
	CHECK(lookup(&s, &e[2]) == PENDING_HIT_FAMILY);
	/* an earlier stamp does not move it back */
	m.stamp = 15;
	CHECK_ST(pending_add(&s, &m, 1, &added, &err), PENDING_OK);
	CHECK_ST(pending_read(&s, 5, &all, &n, &err), PENDING_OK);
	CHECK(n == 2 && all[0].stamp == 20);
	free(all);

	/*
	 * Entries dropped before a database's marker shift what follows while
	 * it is compacted: its families recorded after it all stay.
	 */
	{
		PendingEntry f[3];
		PendingEntry d[2];

		for (int i = 0; i < 3; i++)
		{
			f[i] = fam(6, 50 - 10 * i);
			memset(f[i].family, 0, sizeof(f[i].family));
			f[i].family[0] = (uint8_t) (i + 1);
		}
		d[0] = fam(4, 1);
		d[1] = fam(4, 2);
		m = marker(6, 20);
		CHECK_ST(pending_add(&s, &m, 1, &added, &err), PENDING_OK);
		CHECK_ST(pending_add(&s, f, 3, &added, &err), PENDING_OK);
		CHECK_ST(pending_add(&s, d, 2, &added, &err), PENDING_OK);
		m = marker(4, 5);
		CHECK_ST(pending_add(&s, &m, 1, &added, &err), PENDING_OK);
		CHECK_ST(pending_read(&s, 6, &all, &n, &err), PENDING_OK);
		CHECK(n == 4);
		free(all);
		for (int i = 0; i < 3; i++)
			CHECK(lookup(&s, &f[i]) == PENDING_HIT_FAMILY);
		CHECK(lookup(&s, &d[0]) == PENDING_HIT_DATABASE);
	}
}

/* the server's own bound: 1,000,000 families, then one more */
static void
test_full_server_bound(void)
{
	PendingStore s = store_of(PENDING_MAX_FAMILIES);
	PendingEntry *e = malloc(PENDING_MAX_FAMILIES * sizeof(PendingEntry));
	PendingEntry x;
	PendingEntry *all;
	PendingAdded added;
	size_t		n;

	begin("full_server_bound");
	if (e == NULL)
		fatal("malloc");
	for (int i = 0; i < PENDING_MAX_FAMILIES; i++)
		e[i] = fam(1 + (i & 1), i);
	CHECK_ST(pending_add(&s, e, PENDING_MAX_FAMILIES, &added, &err), PENDING_OK);
	CHECK(file_size(path) == 32 + (long long) PENDING_MAX_FAMILIES * 32);
	x = fam(2, PENDING_MAX_FAMILIES);
	CHECK_ST(pending_add(&s, &x, 1, &added, &err), PENDING_OK);
	CHECK(added == PENDING_ADDED_DATABASE);
	CHECK(lookup(&s, &x) == PENDING_HIT_DATABASE);
	CHECK(lookup(&s, &e[0]) == PENDING_HIT_FAMILY);		/* database 1 */
	CHECK(lookup(&s, &e[1]) == PENDING_HIT_DATABASE);	/* database 2 */
	CHECK(file_size(path) == 32 + (long long) (PENDING_MAX_FAMILIES / 2 + 1) * 32);
	CHECK_ST(pending_read(&s, 2, &all, &n, &err), PENDING_OK);
	CHECK(n == 1 && all[0].stamp == PENDING_MAX_FAMILIES);
	free(all);
	free(e);
}

static void
test_crash_tmp(void)
{
	PendingStore s = store_of(100000);
	PendingEntry e[1000];
	PendingEntry more[1000];
	PendingEntry one;
	PendingAdded added;
	char		tmp[700];
	size_t		len;
	char	   *bytes;
	struct rlimit old_limit;
	struct rlimit limit;
	int			bad = 0;

	begin("crash_tmp");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	for (int i = 0; i < 1000; i++)
		e[i] = fam(1, i);
	CHECK_ST(pending_add(&s, e, 1000, &added, &err), PENDING_OK);

	/*
	 * A crash while the next version was written leaves path.tmp, whole or
	 * torn: nothing reads it, and the next write starts it afresh.
	 */
	spew(tmp, "a torn next version", 19);
	CHECK(lookup(&s, &e[999]) == PENDING_HIT_FAMILY);
	one = fam(1, 2000);
	CHECK_ST(pending_add(&s, &one, 1, &added, &err), PENDING_OK);
	CHECK(!exists(tmp));
	CHECK(lookup(&s, &one) == PENDING_HIT_FAMILY);
	CHECK(file_size(path) == 32 + 1001 * 32);

	/* a complete next version that was never renamed is not the store */
	bytes = slurp(path, &len);
	spew(tmp, bytes, len);
	one = fam(1, 2001);
	CHECK_ST(pending_add(&s, &one, 1, &added, &err), PENDING_OK);
	CHECK(!exists(tmp));
	free(bytes);

	/* the next version cannot be made: the store stays as it was */
	bytes = slurp(path, &len);
	if (mkdir(tmp, 0700) != 0)
		fatal("mkdir");
	one = fam(1, 2002);
	CHECK_ST(pending_add(&s, &one, 1, &added, &err), PENDING_IO_ERROR);
	CHECK(err.op == PENDING_OP_OPEN && added == PENDING_ADDED_NONE);
	CHECK(same_bytes(path, bytes, len));
	CHECK(lookup(&s, &one) == PENDING_HIT_NONE);
	CHECK(lookup(&s, &e[0]) == PENDING_HIT_FAMILY);
	rmdir(tmp);

	/* a short write of the next version (the disk fills): the same */
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old_limit);
	limit = old_limit;
	limit.rlim_cur = (rlim_t) len + 1000;
	for (int i = 0; i < 1000; i++)
		more[i] = fam(1, 3000 + i);
	if (setrlimit(RLIMIT_FSIZE, &limit) != 0)
		fatal("setrlimit");
	CHECK_ST(pending_add(&s, more, 1000, &added, &err), PENDING_IO_ERROR);
	setrlimit(RLIMIT_FSIZE, &old_limit);
	CHECK(err.op == PENDING_OP_WRITE && err.errnum == EFBIG);
	CHECK(same_bytes(path, bytes, len));
	CHECK(!exists(tmp));
	for (int i = 0; i < 1000; i++)
		if (lookup(&s, &more[i]) != PENDING_HIT_NONE || lookup(&s, &e[i]) != PENDING_HIT_FAMILY)
			LOOP_FAIL(bad, "entry %d after a failed write", i);
	CHECK(bad == 0);
	free(bytes);

	/* and once there is room, it goes in */
	CHECK_ST(pending_add(&s, more, 1000, &added, &err), PENDING_OK);
	CHECK(lookup(&s, &more[999]) == PENDING_HIT_FAMILY);
}

/* writers in several processes at once: each entry once, none lost */
static void
test_concurrent(void)
{
	enum
	{
		WRITERS = 4,
		EACH = 60
	};
	PendingStore s = store_of(100000);
	PendingEntry *all;
	size_t		n;
	int			bad = 0;
	pid_t		pids[WRITERS];

	begin("concurrent");
	for (int w = 0; w < WRITERS; w++)
	{
		pids[w] = fork();
		if (pids[w] < 0)
			fatal("fork");
		if (pids[w] == 0)
		{
			int			failed = 0;

			rng_state = 0x1234567ull * (w + 1);
			for (int i = 0; i < EACH; i++)
			{
				PendingEntry e = fam(1 + i % 2, i);
				PendingEntry shared = fam(9, 0);	/* same in every writer */
				PendingAdded added;
				PendingError perr;

				memset(shared.family, 0x42, 16);
				shared.family[0] = (uint8_t) i;
				if (pending_add(&s, &e, 1, &added, &perr) != PENDING_OK ||
					pending_add(&s, &shared, 1, &added, &perr) != PENDING_OK)
					failed++;
			}
			_exit(failed ? 1 : 0);
		}
	}
	for (int w = 0; w < WRITERS; w++)
	{
		int			status;

		if (waitpid(pids[w], &status, 0) != pids[w] || !WIFEXITED(status) ||
			WEXITSTATUS(status) != 0)
			LOOP_FAIL(bad, "writer %d failed", w);
	}
	CHECK(bad == 0);
	CHECK_ST(pending_read(&s, 0, &all, &n, &err), PENDING_OK);
	CHECK(n == WRITERS * EACH + EACH);
	free(all);
	for (int w = 0; w < WRITERS; w++)
	{
		rng_state = 0x1234567ull * (w + 1);
		for (int i = 0; i < EACH; i++)
		{
			PendingEntry e = fam(1 + i % 2, i);

			(void) fam(9, 0);
			if (lookup(&s, &e) != PENDING_HIT_FAMILY)
				LOOP_FAIL(bad, "writer %d's entry %d lost", w, i);
		}
	}
	CHECK(bad == 0);
}

int
main(void)
{
	const char *tmpdir = getenv("TMPDIR");

	setvbuf(stdout, NULL, _IOLBF, 0);

	snprintf(base, sizeof(base), "%s/test_pending.XXXXXX",
			 tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (mkdtemp(base) == NULL)
		fatal("mkdtemp");

	test_empty();
	test_add_lookup();
	test_duplicates();
	test_remove();
	test_large();
	test_legacy();
	test_corrupt();
	test_full();
	test_marker();
	test_full_server_bound();
	test_crash_tmp();
	test_concurrent();

	rm_rf(base);
	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed ? 1 : 0;
}

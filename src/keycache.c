/*
 * keycache.c
 *		Parsed key arguments, kept per backend by the SHA-256 of their text.
 *
 * Parsing a PEM or a JWK costs far more than using the key: an RSA public
 * key in PEM takes about 10 times as long to read as to verify a signature
 * with.  A key set (JWKS) is kept as parsed JSON; its entries are still
 * turned into keys when a token selects them.  Applications pass the same few keys on every call, so the parsed
 * key is kept, in a context of its own, and found again by the digest of
 * the argument's text.  The text itself is not kept.
 *
 * A key is parsed in a context that is a child of the caller's, so that an
 * error while parsing releases it like any other allocation of the call
 * (the key's reset callback frees the EVP_PKEY and wipes secrets); only
 * once parsed is the context moved under the cache.  Entries are evicted
 * least recently used first, and an evicted key is released the same way.
 *
 * The cache is bounded in entries (jwt.key_cache_size) and in bytes
 * (jwt.key_cache_memory), both superuser-only: an argument is the caller's
 * to choose, and a few large key sets must not pin hundreds of megabytes in
 * every backend after their statements end.  An entry larger than a quarter
 * of the memory bound is used for its call and not kept; a new entry evicts
 * the least recently used ones until the total fits.  A key set is copied
 * out of the context it was parsed in, so that the parser's scratch memory
 * is not kept with it.
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "utils/memutils.h"

#include "keycache.h"
#include "verifycache.h"

#define DIGEST_LEN	32

typedef struct KeyCacheEntry
{
	unsigned char digest[DIGEST_LEN];
	MemoryContext cxt;			/* holds arg and its key; NULL: free slot */
	JwtKeyArg  *arg;
	uint64		last_used;
	Size		bytes;			/* allocated in cxt when the entry was made */
} KeyCacheEntry;

#define KEY_CACHE_MAX	256

int			jwt_key_cache_size = 16;
int			jwt_key_cache_memory = 4096;	/* kB */

static MemoryContext cache_cxt = NULL;
static KeyCacheEntry entries[KEY_CACHE_MAX];
static int	slots_used = 0;		/* no entry at or beyond this index */
static Size total_bytes = 0;	/* sum of the entries' bytes */
static uint64 use_clock = 0;

JwtCacheStats jwt_key_cache_stats;

static void
text_digest(const char *data, size_t len, unsigned char *out)
{
	unsigned int outlen;

	if (EVP_Digest(data, len, out, &outlen, jwt_sha256(), NULL) != 1 || outlen != DIGEST_LEN)
		elog(ERROR, "could not compute SHA-256");
}

static void
evict(KeyCacheEntry *e)
{
	if (e->cxt != NULL)
		MemoryContextDelete(e->cxt);	/* releases the key */
	e->cxt = NULL;
	e->arg = NULL;
	total_bytes -= e->bytes;
	e->bytes = 0;
}

static Size
memory_limit(void)
{
	return (Size) Max(jwt_key_cache_memory, 0) * 1024;
}

/* Evict least recently used entries until extra more bytes fit */
static void
make_room(Size extra, int size)
{
	while (total_bytes + extra > memory_limit())
	{
		KeyCacheEntry *oldest = NULL;

		for (int i = 0; i < size; i++)
		{
			KeyCacheEntry *e = &entries[i];

			if (e->cxt != NULL && (oldest == NULL || e->last_used < oldest->last_used))
				oldest = e;
		}
		if (oldest == NULL)
			return;
		evict(oldest);
	}
}

/*
 * A parsed key set in a context of its own holding only the argument and
 * the Jsonb: the parser's scratch memory goes with parse_cxt.
 */
static JwtKeyArg *
compact_jwks(JwtKeyArg *arg, MemoryContext parse_cxt, MemoryContext *cxt)
{
	MemoryContext keep = AllocSetContextCreate(CurrentMemoryContext, "jwt cached key",
											   ALLOCSET_SMALL_SIZES);
	JwtKeyArg  *copy = MemoryContextAlloc(keep, sizeof(JwtKeyArg));
	Size		len = VARSIZE(arg->jwks);

	*copy = *arg;
	copy->jwks = MemoryContextAlloc(keep, len);
	memcpy(copy->jwks, arg->jwks, len);
	MemoryContextDelete(parse_cxt);
	*cxt = keep;
	return copy;
}

void
jwt_key_cache_fill_stats(void)
{
	int			size = Min(jwt_key_cache_size, KEY_CACHE_MAX);

	jwt_key_cache_stats.entries = 0;
	jwt_key_cache_stats.bytes = 0;
	for (int i = 0; i < KEY_CACHE_MAX; i++)
	{
		if (entries[i].cxt != NULL)
		{
			jwt_key_cache_stats.entries++;
			jwt_key_cache_stats.bytes += MemoryContextMemAllocated(entries[i].cxt, true);
		}
	}
	jwt_key_cache_stats.capacity = Max(size, 0);
}

/* The entry for digest, or NULL; counts the lookup */
static KeyCacheEntry *
find_entry(const unsigned char *digest, int size, KeyCacheEntry **slot)
{
	*slot = NULL;
	for (int i = 0; i < size; i++)
	{
		KeyCacheEntry *e = &entries[i];

		if (e->cxt != NULL && memcmp(e->digest, digest, DIGEST_LEN) == 0)
		{
			e->last_used = ++use_clock;
			jwt_key_cache_stats.hits++;
			return e;
		}
		if (*slot == NULL || ((*slot)->cxt != NULL && (e->cxt == NULL || e->last_used < (*slot)->last_used)))
			*slot = e;
	}
	jwt_key_cache_stats.misses++;
	return NULL;
}

/* A key that is not a secret, by the digest of its text: found or parsed */
static JwtKeyArg *
key_arg_by_digest(const char *data, size_t len, const unsigned char *digest,
				  int size)
{
	KeyCacheEntry *slot;
	KeyCacheEntry *found = find_entry(digest, size, &slot);
	MemoryContext cxt;
	MemoryContext old;
	JwtKeyArg  *arg;
	Size		bytes;

	if (found != NULL)
		return found->arg;

	/* parse where an error would release it with the call */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "jwt cached key", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	arg = jwt_key_arg_from_text(data, len);
	MemoryContextSwitchTo(old);
	if (arg->kind == JWT_KEYARG_SECRET)
		return arg;				/* freed with the caller's context */
	if (arg->kind == JWT_KEYARG_JWKS)
		arg = compact_jwks(arg, cxt, &cxt);
	bytes = MemoryContextMemAllocated(cxt, true);
	if (bytes > memory_limit() / 4)
		return arg;				/* too large to keep: freed with the call */

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "jwt key cache",
										  ALLOCSET_SMALL_SIZES);
	evict(slot);
	make_room(bytes, size);
	MemoryContextSetParent(cxt, cache_cxt);
	arg->cached = true;
	memcpy(slot->digest, digest, DIGEST_LEN);
	slot->cxt = cxt;
	slot->arg = arg;
	slot->last_used = ++use_clock;
	slot->bytes = bytes;
	total_bytes += bytes;
	slots_used = Max(slots_used, (int) (slot - entries) + 1);
	return arg;
}

/*
 * The cache's size now: slots beyond a lowered jwt.key_cache_size are
 * emptied, and entries beyond a lowered jwt.key_cache_memory evicted.
 */
static int
current_size(void)
{
	int			size = Max(Min(jwt_key_cache_size, KEY_CACHE_MAX), 0);

	if (memory_limit() == 0)
		size = 0;
	for (int i = size; i < slots_used; i++)
		evict(&entries[i]);
	slots_used = Min(slots_used, size);
	make_room(0, size);
	return size;
}

/* ----------------------------------------------------------------
 * The key of one call site
 *
 * A query passes the same key on every row: a literal, a parameter, a
 * column of a one-row join.  What a call site (an FmgrInfo) was last given
 * is kept in its fn_extra, in a context under fn_mcxt, so it lasts as long
 * as the query's plan and no longer.  A repeated argument is recognised by
 * its bytes, compared in constant time.  For a secret
 * the memo holds the key itself, built from a copy of the secret that is
 * wiped when the memo goes; for anything else it holds only the digest of
 * the text, which finds the parsed key in the cache above without hashing
 * the text again (the cache may have dropped it meanwhile: it is then
 * parsed again as usual).
 * ----------------------------------------------------------------
 */

typedef struct CallKeyMemo
{
	MemoryContext cxt;			/* the memo's own, under fn_mcxt */
	char	   *text;			/* copy of the argument */
	size_t		len;
	bool		secret;
	JwtKeyArg  *arg;			/* secret: the key, built from text */
	unsigned char digest[DIGEST_LEN];	/* otherwise: the text's digest */
	MemoryContextCallback wipe;
} CallKeyMemo;

static void
wipe_memo(void *arg)
{
	CallKeyMemo *m = (CallKeyMemo *) arg;

	explicit_bzero(m->text, m->len);
}

/* in constant time for any key: a private PEM is as secret as a secret */
static bool
memo_matches(const CallKeyMemo *m, const char *data, size_t len)
{
	return m->len == len && jws_equal_ct(m->text, data, len);
}

JwtKeyArg *
jwt_key_arg_for_call(FmgrInfo *flinfo, const char *data, size_t len)
{
	CallKeyMemo *m = (CallKeyMemo *) flinfo->fn_extra;
	int			size = current_size();
	MemoryContext cxt;
	MemoryContext old;

	if (size <= 0)
	{
		/* the caches are off: nothing is kept, not even here */
		if (m != NULL)
		{
			flinfo->fn_extra = NULL;
			MemoryContextDelete(m->cxt);
		}
		return jwt_key_arg_from_text(data, len);
	}
	if (m != NULL && memo_matches(m, data, len))
	{
		if (m->secret)
			return m->arg;
		return key_arg_by_digest(data, len, m->digest, size);
	}

	/* another key than last time: forget that one */
	if (m != NULL)
	{
		flinfo->fn_extra = NULL;
		MemoryContextDelete(m->cxt);
	}
	cxt = AllocSetContextCreate(flinfo->fn_mcxt, "jwt call-site key",
								ALLOCSET_SMALL_SIZES);
	m = MemoryContextAllocZero(cxt, sizeof(CallKeyMemo));
	m->cxt = cxt;
	m->text = MemoryContextAlloc(cxt, Max(len, 1));
	memcpy(m->text, data, len);
	m->len = len;
	m->wipe.func = wipe_memo;
	m->wipe.arg = m;
	MemoryContextRegisterResetCallback(cxt, &m->wipe);
	m->secret = jwt_key_text_is_secret(data, len);
	if (m->secret)
	{
		old = MemoryContextSwitchTo(cxt);
		m->arg = jwt_key_arg_from_text(m->text, len);
		MemoryContextSwitchTo(old);
		m->arg->cached = true;
		flinfo->fn_extra = m;
		return m->arg;
	}
	text_digest(data, len, m->digest);
	flinfo->fn_extra = m;
	return key_arg_by_digest(data, len, m->digest, size);
}

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
} KeyCacheEntry;

#define KEY_CACHE_MAX	256

int			jwt_key_cache_size = 16;

static MemoryContext cache_cxt = NULL;
static KeyCacheEntry entries[KEY_CACHE_MAX];
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

JwtKeyArg *
jwt_key_arg_cached(const char *data, size_t len)
{
	unsigned char digest[DIGEST_LEN];
	int			size = Min(jwt_key_cache_size, KEY_CACHE_MAX);
	KeyCacheEntry *slot = NULL;
	MemoryContext cxt;
	MemoryContext old;
	JwtKeyArg  *arg;

	/* slots beyond a lowered jwt.key_cache_size are emptied */
	for (int i = size; i < KEY_CACHE_MAX && entries[i].cxt != NULL; i++)
		evict(&entries[i]);
	/* a secret is used as it is: nothing to parse, nothing to keep */
	if (size <= 0 || jwt_key_text_is_secret(data, len))
		return jwt_key_arg_from_text(data, len);

	text_digest(data, len, digest);
	for (int i = 0; i < size; i++)
	{
		KeyCacheEntry *e = &entries[i];

		if (e->cxt != NULL && memcmp(e->digest, digest, DIGEST_LEN) == 0)
		{
			e->last_used = ++use_clock;
			jwt_key_cache_stats.hits++;
			return e->arg;
		}
		if (slot == NULL || (slot->cxt != NULL && (e->cxt == NULL || e->last_used < slot->last_used)))
			slot = e;
	}

	jwt_key_cache_stats.misses++;
	/* parse where an error would release it with the call */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "jwt cached key", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	arg = jwt_key_arg_from_text(data, len);
	MemoryContextSwitchTo(old);
	if (arg->kind == JWT_KEYARG_SECRET)
		return arg;				/* freed with the caller's context */

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "jwt key cache",
										  ALLOCSET_SMALL_SIZES);
	evict(slot);
	MemoryContextSetParent(cxt, cache_cxt);
	arg->cached = true;
	memcpy(slot->digest, digest, DIGEST_LEN);
	slot->cxt = cxt;
	slot->arg = arg;
	slot->last_used = ++use_clock;
	return arg;
}

/*
 * session.c
 *		The identity a verified token gives a transaction or a session, and
 *		the role switch that goes with it.
 *
 * Where the identity lives decides who can forge it.  PostgREST passes
 * claims in request.jwt.claims, a placeholder setting any SQL user can
 * overwrite; we keep ours in jwt.identity, a hidden setting of context
 * SUSET.  Only superusers, and this module on behalf of jwt_authenticate,
 * can set it, and we set it like SET LOCAL (or SET, for the session scope).
 * PostgreSQL's settings machinery then gives exactly the lifetime we want:
 * gone at commit and abort, restored when a subtransaction that changed it
 * rolls back, reset by RESET ALL / DISCARD ALL, and copied into parallel
 * workers, so jwt_claim() can be PARALLEL SAFE.
 *
 * The claims are kept as JSON text in the setting and parsed into jsonb at
 * most once per change per backend (an assign hook counts changes), so a
 * policy calling jwt_claim() per row does a lookup, not a parse.
 */
#include "postgres.h"

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "compat.h"
#include "errcodes.h"
#include "session.h"

#define IDENTITY_GUC	"jwt.identity"
#define REQUEST_CLAIMS	"request.jwt.claims"

/* how much of an invalid claim path an error quotes, in bytes */
#define CLAIM_PATH_SHOWN	64

static char *identity_text = NULL;	/* jwt.identity */
static char *role_claim = NULL;		/* jwt.role_claim */
static char *anon_role = NULL;		/* jwt.anon_role */
static char *cookie_name = NULL;	/* jwt.cookie, read by jwt_pre_request */
static bool trust_request_claims = false;	/* jwt.trust_request_claims */

/* bumped by every assignment of jwt.identity, including rollbacks */
static uint64 identity_version = 0;

/* the parsed form of whichever setting supplied the claims last */
typedef enum ClaimsSource
{
	SOURCE_NONE,
	SOURCE_IDENTITY,			/* jwt.identity, version cached_version */
	SOURCE_REQUEST				/* request.jwt.claims, text cached_text */
} ClaimsSource;

/*
 * cache_cxt holds the parsed claims and the answers jwt_claim gave for
 * them, replaced whenever the claims change and emptied when the
 * transaction ends.  Nothing in it is handed to SQL by pointer, because a
 * value can outlive the transaction that read it (a procedure's argument
 * across its COMMIT), and the cache does not: jwt_claims returns a copy in
 * the caller's memory, jwt_claim one in its call site's (fn_mcxt).
 */
static MemoryContext cache_cxt = NULL;
static uint64 cache_generation = 0; /* bumped whenever cache_cxt changes */
static ClaimsSource cached_source = SOURCE_NONE;
static uint64 cached_version = 0;
static char *cached_text = NULL;
static Jsonb *cached_claims = NULL;

/* jwt_claim results of the cached claims, by the name asked for */
#define CLAIM_CACHE_SIZE	8

typedef struct ClaimResult
{
	char	   *name;
	int			len;
	text	   *value;			/* NULL: absent, or JSON null */
} ClaimResult;

static ClaimResult claim_results[CLAIM_CACHE_SIZE];
static int	nclaim_results = 0;

/* ----------------------------------------------------------------
 * Claim paths: a member name, or "a.b.c" / ".a.b" / "a.\"x.y\"" into
 * nested objects (digits index arrays).  The exact name is tried first,
 * so claims whose names hold dots, such as URIs, are reached directly.
 * ----------------------------------------------------------------
 */

/* next segment of a path: 1 and the segment, 0 at the end, -1 on bad syntax */
static int
path_segment(const char **pp, const char *end, const char **seg, int *seglen)
{
	const char *p = *pp;
	const char *q;

	if (p == end)
		return 0;
	if (*p == '"')
	{
		q = memchr(p + 1, '"', end - (p + 1));
		if (q == NULL)
			return -1;
		*seg = p + 1;
		*seglen = q - (p + 1);
		p = q + 1;
	}
	else
	{
		for (q = p; q < end && *q != '.' && *q != '"'; q++)
			;
		if (q == p || (q < end && *q == '"'))
			return -1;
		*seg = p;
		*seglen = q - p;
		p = q;
	}
	if (p < end)
	{
		if (*p != '.' || p + 1 == end)
			return -1;
		p++;
	}
	*pp = p;
	return 1;
}

static bool
path_valid(const char *path, int len)
{
	const char *p = path;
	const char *end = path + len;
	const char *seg;
	int			seglen;
	int			rc;
	int			n = 0;

	if (p < end && *p == '.')
		p++;
	while ((rc = path_segment(&p, end, &seg, &seglen)) > 0)
		n++;
	return rc == 0 && n > 0;
}

static bool
array_index(const char *seg, int len, uint32 *index)
{
	uint64		v = 0;

	if (len == 0 || len > 9)
		return false;
	for (int i = 0; i < len; i++)
	{
		if (seg[i] < '0' || seg[i] > '9')
			return false;
		v = v * 10 + (seg[i] - '0');
	}
	*index = (uint32) v;
	return true;
}

/*
 * The claim name names: with path_only, read as a path and nothing else,
 * so that a top-level claim spelled like the path ("app_metadata.role")
 * cannot stand in for the nested one.
 */
static bool
claim_lookup(Jsonb *claims, const char *name, int len, bool path_only,
			 JsonbValue *out)
{
	JsonbContainer *c = &claims->root;
	const char *p = name;
	const char *end = name + len;
	const char *seg;
	int			seglen;
	int			rc;

	if (!JB_ROOT_IS_OBJECT(claims) || JB_ROOT_IS_SCALAR(claims))
		return false;
	if (memchr(name, '.', len) == NULL && !(len > 0 && name[0] == '"'))
		return getKeyJsonValueFromContainer(c, name, len, out) != NULL;
	if (!path_only && getKeyJsonValueFromContainer(c, name, len, out) != NULL)
		return true;

	if (!path_valid(name, len))
	{
		/* a path can be as long as any text: quote its start only */
		int			shown = pg_mbcliplen(name, len, CLAIM_PATH_SHOWN);

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid claim path \"%.*s%s\"", shown, name,
						shown < len ? "..." : ""),
				 errhint("Separate names with dots, and quote a name that holds a dot: app_metadata.role, \"https://example.com/claims\".tenant.")));
	}

	if (*p == '.')
		p++;
	while ((rc = path_segment(&p, end, &seg, &seglen)) > 0)
	{
		uint32		index;

		if (c == NULL)
			return false;		/* a scalar has no members */
		if (JsonContainerIsObject(c))
		{
			if (getKeyJsonValueFromContainer(c, seg, seglen, out) == NULL)
				return false;
		}
		else if (JsonContainerIsArray(c) && array_index(seg, seglen, &index))
		{
			JsonbValue *v = getIthJsonbValueFromContainer(c, index);

			if (v == NULL)
				return false;
			*out = *v;
		}
		else
			return false;
		c = out->type == jbvBinary ? out->val.binary.data : NULL;
	}
	return true;
}

bool
jwt_claim_lookup(Jsonb *claims, const char *name, int len, JsonbValue *out)
{
	return claim_lookup(claims, name, len, false, out);
}

/* ----------------------------------------------------------------
 * Settings
 * ----------------------------------------------------------------
 */

static void
identity_assign(const char *newval, void *extra)
{
	(void) newval;
	(void) extra;
	identity_version++;
}

static bool
role_claim_check(char **newval, void **extra, GucSource source)
{
	(void) extra;
	(void) source;
	if (**newval == '\0' || path_valid(*newval, strlen(*newval)))
		return true;
	GUC_check_errdetail("A claim path is names separated by dots, with a name that holds a dot in double quotes.");
	return false;
}

void
jwt_session_init(void)
{
	DefineCustomStringVariable(IDENTITY_GUC,
							   "Claims of the token jwt_authenticate accepted (internal).",
							   "Set by jwt_authenticate; read it with jwt_claims().",
							   &identity_text,
							   "",
							   PGC_SUSET,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, identity_assign, NULL);
	DefineCustomStringVariable("jwt.role_claim",
							   "Claim that names the role jwt_authenticate switches to.",
							   "A name or a dotted path such as app_metadata.role; empty means no switch.",
							   &role_claim,
							   "",
							   PGC_SUSET, 0,
							   role_claim_check, NULL, NULL);
	DefineCustomStringVariable("jwt.anon_role",
							   "Role for requests without a token.",
							   "jwt_authenticate(NULL) switches to it; empty means anonymous requests keep the current role, or are refused when jwt.role_claim is set.",
							   &anon_role,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("jwt.cookie",
							   "Cookie jwt_pre_request reads the token from when there is no Authorization header.",
							   "Empty means tokens are taken from the Authorization header only.",
							   &cookie_name,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("jwt.trust_request_claims",
							 "Use request.jwt.claims when jwt_authenticate has not run.",
							 "Only for PostgREST deployments where PostgREST verifies tokens and no SQL user can set request.jwt.claims.",
							 &trust_request_claims,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/* ----------------------------------------------------------------
 * Reading the identity
 * ----------------------------------------------------------------
 */

static void
forget_claims(XactEvent event, void *arg)
{
	(void) arg;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		cached_source = SOURCE_NONE;
		cached_text = NULL;
		cached_claims = NULL;
		nclaim_results = 0;
		cache_generation++;
		MemoryContextReset(cache_cxt);
	}
}

static void
cache_claims(const char *text, ClaimsSource source)
{
	MemoryContext old;
	Jsonb	   *claims;

	if (cache_cxt == NULL)
	{
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "jwt session claims",
										  ALLOCSET_SMALL_SIZES);
		RegisterXactCallback(forget_claims, NULL);
	}
	cached_source = SOURCE_NONE;
	nclaim_results = 0;
	cache_generation++;
	MemoryContextReset(cache_cxt);

	old = MemoryContextSwitchTo(cache_cxt);
	cached_text = pstrdup(text);
	claims = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												CStringGetDatum(cached_text)));
	MemoryContextSwitchTo(old);

	/* claims are an object; anything else is no identity */
	cached_claims = (JB_ROOT_IS_OBJECT(claims) && !JB_ROOT_IS_SCALAR(claims)) ?
		claims : NULL;
	cached_version = identity_version;
	cached_source = source;
}

Jsonb *
jwt_session_claims(void)
{
	if (identity_text != NULL && identity_text[0] != '\0')
	{
		if (cached_source != SOURCE_IDENTITY || cached_version != identity_version)
			cache_claims(identity_text, SOURCE_IDENTITY);
		return cached_claims;
	}
	if (trust_request_claims)
	{
		const char *s = GetConfigOption(REQUEST_CLAIMS, true, false);

		if (s == NULL || s[0] == '\0')
			return NULL;
		if (cached_source != SOURCE_REQUEST || strcmp(cached_text, s) != 0)
			cache_claims(s, SOURCE_REQUEST);
		return cached_claims;
	}
	return NULL;
}

/* a claim as text, the way ->> shows it; NULL for JSON null */
static text *
claim_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return cstring_to_text(DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v->val.numeric))));
		case jbvBool:
			return cstring_to_text(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return cstring_to_text(JsonbToCString(NULL, v->val.binary.data,
												  v->val.binary.len));
		default:
			return NULL;
	}
}

/*
 * One claim of the current identity: a pointer into cache_cxt, valid until
 * cache_generation changes, and *owned false; or, past the names the cache
 * holds, a palloc'd text of the caller's, and *owned true.
 */
static text *
claim_answer(Jsonb *claims, const char *name, int len, bool *owned)
{
	JsonbValue	v;
	text	   *value = NULL;
	MemoryContext old;
	ClaimResult *r;

	*owned = false;
	/* a policy asks for the same few names on every row */
	for (int i = 0; i < nclaim_results; i++)
	{
		ClaimResult *c = &claim_results[i];

		if (c->len == len && memcmp(c->name, name, len) == 0)
			return c->value;
	}

	if (nclaim_results == CLAIM_CACHE_SIZE)
	{
		/* more names than the cache holds: an answer of the caller's own */
		if (jwt_claim_lookup(claims, name, len, &v))
			value = claim_text(&v);
		*owned = true;
		return value;
	}

	old = MemoryContextSwitchTo(cache_cxt);
	if (jwt_claim_lookup(claims, name, len, &v))
		value = claim_text(&v);
	r = &claim_results[nclaim_results++];
	r->name = pnstrdup(name, len);
	r->len = len;
	r->value = value;
	MemoryContextSwitchTo(old);
	return value;
}

/* a copy of a text in context cxt */
static text *
text_copy_in(MemoryContext cxt, const text *value)
{
	text	   *copy;

	if (value == NULL)
		return NULL;
	copy = MemoryContextAlloc(cxt, VARSIZE(value));
	memcpy(copy, value, VARSIZE(value));
	return copy;
}

/*
 * The answer of one call site (an FmgrInfo) is kept in its fn_extra, under
 * fn_mcxt, and handed out from there while the identity's cache stays the
 * same: memory that lives as long as the expression that called us (a
 * CALL's arguments included), not as long as the transaction.  An answer
 * is never freed while its call site lives, since a caller may still hold
 * it; a call site whose identity keeps changing (jwt_authenticate per row)
 * stops keeping answers after CALL_SITE_MAX_ANSWERS and returns copies in
 * the caller's memory instead.
 */
#define CALL_SITE_MAX_ANSWERS	32

typedef struct CallSiteClaim
{
	uint64		generation;
	int			len;
	char	   *name;
	text	   *value;			/* NULL: absent or JSON null */
	int			answers;		/* kept so far */
} CallSiteClaim;

text *
jwt_session_claim_for_call(FmgrInfo *flinfo, const char *name, int len)
{
	Jsonb	   *claims = jwt_session_claims();
	CallSiteClaim *m = (CallSiteClaim *) flinfo->fn_extra;
	bool		owned;
	text	   *value;

	if (claims == NULL)
		return NULL;
	if (m != NULL && m->generation == cache_generation && m->len == len &&
		memcmp(m->name, name, len) == 0)
		return m->value;

	value = claim_answer(claims, name, len, &owned);
	if (owned)
		return value;
	if (m == NULL)
	{
		m = MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(CallSiteClaim));
		flinfo->fn_extra = m;
	}
	if (m->answers >= CALL_SITE_MAX_ANSWERS)
		return text_copy_in(CurrentMemoryContext, value);
	m->answers++;
	m->generation = cache_generation;
	m->name = MemoryContextAlloc(flinfo->fn_mcxt, Max(len, 1));
	memcpy(m->name, name, len);
	m->len = len;
	m->value = text_copy_in(flinfo->fn_mcxt, value);
	return m->value;
}

/* ----------------------------------------------------------------
 * Setting the identity
 * ----------------------------------------------------------------
 */

/*
 * SET [LOCAL] ROLE, with the check SET ROLE makes (the session user must be
 * a member) done first so that every refusal is 42501.  A token never makes
 * the session a superuser, whoever the session user is.
 */
static void
switch_role(const char *name, GucAction action)
{
	Oid			roleid = get_role_oid(name, true);

	if (!OidIsValid(roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set role \"%s\"", name),
				 errdetail("The role does not exist.")));
	if (superuser_arg(roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set role \"%s\"", name),
				 errdetail("A token cannot switch to a superuser role.")));
	if (!jwt_member_can_set_role(GetSessionUserId(), roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set role \"%s\"", name),
				 errdetail("Session user \"%s\" may not SET ROLE to \"%s\".",
						   GetUserNameFromId(GetSessionUserId(), false), name)));
	(void) set_config_option("role", name, PGC_USERSET, PGC_S_SESSION, action,
							 true, 0, false);
}

/* the role a token (or its absence) asks for, or NULL for no switch */
static const char *
requested_role(Jsonb *claims)
{
	bool		by_claim = role_claim != NULL && role_claim[0] != '\0';
	bool		have_anon = anon_role != NULL && anon_role[0] != '\0';

	if (claims != NULL && by_claim)
	{
		JsonbValue	v;

		if (claim_lookup(claims, role_claim, strlen(role_claim), true, &v))
		{
			if (v.type != jbvString || v.val.string.len == 0)
				ereport(ERROR,
						(errcode(ERRCODE_JWT_DECODE),
						 errmsg("invalid role claim"),
						 errdetail("The claim named by jwt.role_claim must be a non-empty string.")));
			return pnstrdup(v.val.string.val, v.val.string.len);
		}
	}
	else if (claims != NULL)
		return NULL;			/* tokens do not choose roles */

	/* no token, or a token without the role claim */
	if (have_anon)
		return anon_role;
	if (by_claim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 claims == NULL ?
				 errmsg("anonymous access is disabled") :
				 errmsg("token has no role claim"),
				 errhint("Set jwt.anon_role to the role for requests without one.")));
	return NULL;
}

/* the claims (NULL: none) become the identity jwt_claims() reads */
static void
set_identity(Jsonb *claims, GucAction action)
{
	char	   *text = "";

	if (claims != NULL)
		text = JsonbToCString(NULL, &claims->root, VARSIZE(claims));
	(void) set_config_option(IDENTITY_GUC, text, PGC_SUSET, PGC_S_SESSION,
							 action, true, 0, false);
}

void
jwt_session_begin(Jsonb *claims, bool session_scope)
{
	GucAction	action = session_scope ? GUC_ACTION_SET : GUC_ACTION_LOCAL;
	const char *role = requested_role(claims);

	if (role != NULL)
		switch_role(role, action);
	set_identity(claims, action);
}

/*
 * A login with a token (login.c) gives the session the token's claims, as
 * jwt_authenticate(token, 'session') does, without a role switch: who the
 * session is, pg_hba.conf and pg_ident.conf decided.  Called while the
 * connection authenticates, inside the transaction InitPostgres runs, so
 * the setting outlives it; the database's and role's settings, applied
 * later, are of a lower source and leave it alone.
 */
void
jwt_session_login(Jsonb *claims)
{
	set_identity(claims, GUC_ACTION_SET);
}

/* jwt.role_claim, or NULL when tokens do not choose roles */
const char *
jwt_role_claim_name(void)
{
	return role_claim != NULL && role_claim[0] != '\0' ? role_claim : NULL;
}

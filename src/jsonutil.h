/*
 * jsonutil.h
 *		Strict JSON text -> jsonb for untrusted input, and compact jsonb -> text.
 *
 * PostgreSQL's jsonb_in keeps the last of duplicate member names, recurses
 * without a depth bound of its own and raises errors of its own classes.  A
 * token's header and payload need all three handled differently, so this
 * parser reports every problem as a JsonStrictError the caller maps to a
 * SQLSTATE of its choosing.
 */
#ifndef JWT_JSONUTIL_H
#define JWT_JSONUTIL_H

#include "postgres.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#define JWT_JSON_MAX_DEPTH	64

typedef enum JsonStrictError
{
	JSON_STRICT_OK = 0,
	JSON_STRICT_ENCODING,		/* not UTF-8, or a NUL byte */
	JSON_STRICT_TOO_DEEP,		/* nesting beyond JWT_JSON_MAX_DEPTH */
	JSON_STRICT_SYNTAX,			/* not JSON */
	JSON_STRICT_DUPLICATE,		/* an object repeats a member name */
	JSON_STRICT_NUMBER,			/* a number beyond a sane magnitude */
	JSON_STRICT_NOT_OBJECT		/* valid JSON, but not an object */
} JsonStrictError;

/*
 * Parse JSON from SQL (text in the database encoding) that must be an
 * object; NULL and *err set on failure.
 */
extern Jsonb *json_parse_object_strict(const char *data, size_t len,
									   JsonStrictError *err);

/*
 * Plain integers (no fraction, no exponent, at most 18 digits) that are
 * members of the top-level object, by the Numeric the parser made for each:
 * a caller that wants one as an integer need not convert it back.  Only the
 * first JSON_FAST_INTS_MAX are noted.
 */
#define JSON_FAST_INTS_MAX 8

typedef struct JsonFastInts
{
	int			n;
	Numeric		num[JSON_FAST_INTS_MAX];
	int64		val[JSON_FAST_INTS_MAX];
} JsonFastInts;

/* The integer v holds, when it is one of ints; v may be any JsonbValue. */
extern bool json_fast_int(const JsonFastInts *ints, const JsonbValue *v,
						  int64 *val);

/*
 * The same for a token's JSON, which is UTF-8 and is converted to the
 * database encoding, into a JsonbValue tree (an object's members in jsonb
 * order) that may point into data: for reading a few members without
 * building a jsonb.  ints may be NULL.
 */
extern bool json_parse_tree_strict(const char *data, size_t len,
								   JsonbValue *root, JsonFastInts *ints,
								   JsonStrictError *err);

/*
 * The jsonb of such a tree, as JsonbValueToJsonb would make it (objects'
 * members must be in jsonb order and unique, as the parser leaves them),
 * written in one exactly-sized allocation.
 */
extern Jsonb *json_tree_to_jsonb(const JsonbValue *root);

/* A member of such a tree's object, or NULL; containers are jbvObject/Array */
extern JsonbValue *json_tree_member(const JsonbValue *obj, const char *name,
									int len);

/*
 * Several members of such a tree's object in one pass over it: out[i] is the
 * member named names[i], or NULL.  For the handful a token check reads.
 */
typedef struct JsonName
{
	const char *name;
	int			len;
} JsonName;

#define JSON_NAME(literal)	{literal, sizeof(literal) - 1}

extern void json_tree_members(const JsonbValue *obj, const JsonName *names,
							  int n, JsonbValue **out);

/* Human-readable reason, for errdetail. */
extern const char *json_strict_error_text(JsonStrictError err);

/* Append compact JSON (no insignificant whitespace), in jsonb key order. */
extern void jsonb_append_compact(StringInfo buf, JsonbContainer *c);
extern void jsonb_value_append_compact(StringInfo buf, JsonbValue *v);

/*
 * The members of a jsonb object container read in place, in jsonb order and
 * without an iterator: keys as strings, scalars as themselves, containers as
 * jbvBinary.  keys and values need room for JsonContainerSize(c) each.
 */
extern void jsonb_object_read(JsonbContainer *c, JsonbValue *keys,
							  JsonbValue *values);

/* An object member, or NULL when absent (containers come back as jbvBinary). */
extern JsonbValue *jsonb_member(JsonbContainer *obj, const char *name);

#endif							/* JWT_JSONUTIL_H */

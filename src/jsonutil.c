/*
 * jsonutil.c
 *		Strict JSON parsing into jsonb, and compact JSON output.
 *
 * The parser drives PostgreSQL's JSON lexer (common/jsonapi.h) with semantic
 * actions that build the jsonb value directly, as jsonb_in does, and adds
 * what untrusted token text needs:
 *
 *	- valid UTF-8 without NUL bytes, checked before lexing;
 *	- a nesting bound checked by a pre-scan, so the recursive-descent parser
 *	  never gets deep enough to hit the stack-depth error;
 *	- duplicate member names detected: pushJsonbValue() removes duplicates
 *	  when an object ends, so a pair count that shrinks means a duplicate;
 *	- numbers of absurd magnitude refused before numeric_in could raise.
 *
 * None of these raise an error; the caller gets a JsonStrictError and
 * chooses the SQLSTATE.  (Only out-of-memory can still raise.)
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "compat.h"
#include "jsonutil.h"

/* Decimal exponent bound: far inside numeric's range, far beyond any claim. */
#define JSON_MAX_EXPONENT	1000
#define JSON_MAX_NUMBER_LEN 1000

typedef struct StrictParseState
{
	JsonbParseState *pstate;
	JsonbValue *result;
	bool		duplicate;
	bool		bad_number;
} StrictParseState;

/*
 * Maximum nesting of objects and arrays, ignoring brackets inside strings.
 * Stops counting once the limit is passed.
 */
static bool
depth_within(const char *s, size_t len, int limit)
{
	int			depth = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
		{
			if (++depth > limit)
				return false;
		}
		else if (c == '}' || c == ']')
			depth--;
	}
	return true;
}

/*
 * A JSON number token (already validated by the lexer) whose decimal
 * exponent stays within JSON_MAX_EXPONENT, so numeric_in cannot overflow.
 */
static bool
number_is_sane(const char *tok)
{
	size_t		len = strlen(tok);
	const char *e;
	long		exp10 = 0;
	long		intdigits = 0;
	const char *p = tok;

	if (len > JSON_MAX_NUMBER_LEN)
		return false;
	if (*p == '-')
		p++;
	while (*p >= '0' && *p <= '9')
	{
		intdigits++;
		p++;
	}
	e = strpbrk(tok, "eE");
	if (e != NULL)
	{
		errno = 0;
		exp10 = strtol(e + 1, NULL, 10);
		if (errno != 0 || exp10 > JSON_MAX_EXPONENT || exp10 < -JSON_MAX_EXPONENT)
			return false;
	}
	return intdigits + exp10 <= JSON_MAX_EXPONENT;
}

static JSON_ACTION_TYPE
sp_object_start(void *arg)
{
	StrictParseState *st = (StrictParseState *) arg;

	pushJsonbValue(&st->pstate, WJB_BEGIN_OBJECT, NULL);
	JSON_ACTION_DONE;
}

static JSON_ACTION_TYPE
sp_object_end(void *arg)
{
	StrictParseState *st = (StrictParseState *) arg;
	int			before = st->pstate->contVal.val.object.nPairs;
	JsonbValue *res;

	res = pushJsonbValue(&st->pstate, WJB_END_OBJECT, NULL);
	if (res->val.object.nPairs != before)
		st->duplicate = true;
	if (st->pstate == NULL)
		st->result = res;
	JSON_ACTION_DONE;
}

static JSON_ACTION_TYPE
sp_array_start(void *arg)
{
	StrictParseState *st = (StrictParseState *) arg;

	pushJsonbValue(&st->pstate, WJB_BEGIN_ARRAY, NULL);
	JSON_ACTION_DONE;
}

static JSON_ACTION_TYPE
sp_array_end(void *arg)
{
	StrictParseState *st = (StrictParseState *) arg;
	JsonbValue *res;

	res = pushJsonbValue(&st->pstate, WJB_END_ARRAY, NULL);
	if (st->pstate == NULL)
		st->result = res;
	JSON_ACTION_DONE;
}

static JSON_ACTION_TYPE
sp_object_field_start(void *arg, char *fname, bool isnull)
{
	StrictParseState *st = (StrictParseState *) arg;
	JsonbValue	v;

	(void) isnull;
	v.type = jbvString;
	v.val.string.len = strlen(fname);
	v.val.string.val = fname;
	pushJsonbValue(&st->pstate, WJB_KEY, &v);
	JSON_ACTION_DONE;
}

static JSON_ACTION_TYPE
sp_scalar(void *arg, char *token, JsonTokenType tokentype)
{
	StrictParseState *st = (StrictParseState *) arg;
	JsonbValue	v;

	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			v.type = jbvString;
			v.val.string.len = strlen(token);
			v.val.string.val = token;
			break;
		case JSON_TOKEN_NUMBER:
			if (!number_is_sane(token))
			{
				st->bad_number = true;
				v.type = jbvNull;
				break;
			}
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																CStringGetDatum(token),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)));
			break;
		case JSON_TOKEN_TRUE:
			v.type = jbvBool;
			v.val.boolean = true;
			break;
		case JSON_TOKEN_FALSE:
			v.type = jbvBool;
			v.val.boolean = false;
			break;
		default:
			v.type = jbvNull;
			break;
	}

	/* a scalar at top level is not an object; the caller reports that */
	if (st->pstate == NULL)
		JSON_ACTION_DONE;

	if (st->pstate->contVal.type == jbvArray)
		pushJsonbValue(&st->pstate, WJB_ELEM, &v);
	else
		pushJsonbValue(&st->pstate, WJB_VALUE, &v);
	JSON_ACTION_DONE;
}

/*
 * In a database whose encoding is not UTF-8, the lexer turns a \u escape
 * above U+007F into the server encoding, and raises an error of its own
 * (0A000 or 22P05) when it cannot.  Refuse such escapes first, so that the
 * caller reports them like any other undecodable text.  Backslashes occur
 * only inside strings in valid JSON; invalid JSON fails either way.
 */
static bool
escapes_fit_encoding(const char *data, size_t len)
{
	if (GetDatabaseEncoding() == PG_UTF8)
		return true;
	for (size_t i = 0; i + 1 < len; i++)
	{
		if (data[i] != '\\')
			continue;
		if (data[i + 1] == 'u')
		{
			unsigned int cp = 0;

			if (i + 6 > len)
				return false;
			for (int j = 2; j < 6; j++)
			{
				char		c = data[i + j];

				cp <<= 4;
				if (c >= '0' && c <= '9')
					cp |= c - '0';
				else if (c >= 'a' && c <= 'f')
					cp |= c - 'a' + 10;
				else if (c >= 'A' && c <= 'F')
					cp |= c - 'A' + 10;
				else
					return false;
			}
			if (cp > 0x7F)
				return false;
			i += 5;
		}
		else
			i++;				/* an escaped character, maybe a backslash */
	}
	return true;
}

Jsonb *
json_parse_object_strict(const char *data, size_t len, JsonStrictError *err)
{
	StrictParseState st;
	JsonSemAction sem;
	JsonLexContext *lex;

	if (len > (size_t) PG_INT32_MAX ||
		!pg_verify_mbstr(PG_UTF8, data, (int) len, true) ||
		!escapes_fit_encoding(data, len))
	{
		*err = JSON_STRICT_ENCODING;
		return NULL;
	}
	if (!depth_within(data, len, JWT_JSON_MAX_DEPTH))
	{
		*err = JSON_STRICT_TOO_DEEP;
		return NULL;
	}

	memset(&st, 0, sizeof(st));
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = sp_object_start;
	sem.object_end = sp_object_end;
	sem.array_start = sp_array_start;
	sem.array_end = sp_array_end;
	sem.object_field_start = sp_object_field_start;
	sem.scalar = sp_scalar;

	/* the lexer wants a modifiable buffer but does not modify it */
	lex = jwt_make_lex(unconstify(char *, data), (int) len, true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
	{
		*err = JSON_STRICT_SYNTAX;
		return NULL;
	}
	if (st.bad_number)
	{
		*err = JSON_STRICT_NUMBER;
		return NULL;
	}
	if (st.duplicate)
	{
		*err = JSON_STRICT_DUPLICATE;
		return NULL;
	}
	if (st.result == NULL || st.result->type != jbvObject)
	{
		*err = JSON_STRICT_NOT_OBJECT;
		return NULL;
	}
	*err = JSON_STRICT_OK;
	return JsonbValueToJsonb(st.result);
}

const char *
json_strict_error_text(JsonStrictError err)
{
	switch (err)
	{
		case JSON_STRICT_OK:
			return "no error";
		case JSON_STRICT_ENCODING:
			return "It is not valid UTF-8, contains a NUL byte, or escapes a character the database encoding cannot hold.";
		case JSON_STRICT_TOO_DEEP:
			return "It nests objects or arrays more than 64 levels deep.";
		case JSON_STRICT_SYNTAX:
			return "It is not valid JSON.";
		case JSON_STRICT_DUPLICATE:
			return "An object repeats a member name.";
		case JSON_STRICT_NUMBER:
			return "A number is out of range.";
		case JSON_STRICT_NOT_OBJECT:
			return "It is not a JSON object.";
	}
	return "unknown error";
}

/* JSON string escaping, as escape_json() but for a counted string */
static void
append_json_string(StringInfo buf, const char *s, int len)
{
	appendStringInfoCharMacro(buf, '"');
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		switch (c)
		{
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			default:
				if (c < ' ')
					appendStringInfo(buf, "\\u%04x", (int) c);
				else
					appendStringInfoCharMacro(buf, (char) c);
				break;
		}
	}
	appendStringInfoCharMacro(buf, '"');
}

static void
append_scalar(StringInfo buf, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendBinaryStringInfo(buf, "null", 4);
			break;
		case jbvString:
			append_json_string(buf, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			appendStringInfoString(buf,
								   DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v->val.numeric))));
			break;
		case jbvBool:
			if (v->val.boolean)
				appendBinaryStringInfo(buf, "true", 4);
			else
				appendBinaryStringInfo(buf, "false", 5);
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

/* A comma is due unless we just opened a container or wrote a key. */
static void
maybe_comma(StringInfo buf)
{
	if (buf->len > 0)
	{
		char		last = buf->data[buf->len - 1];

		if (last != '{' && last != '[' && last != ':')
			appendStringInfoCharMacro(buf, ',');
	}
}

void
jsonb_append_compact(StringInfo buf, JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbIteratorToken tok;
	JsonbValue	v;
	bool		raw_scalar = false;
	int			start = buf->len;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		/* commas are decided within what this call writes */
		bool		at_start = (buf->len == start);

		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
				if (!at_start)
					maybe_comma(buf);
				appendStringInfoCharMacro(buf, '{');
				break;
			case WJB_BEGIN_ARRAY:
				if (v.val.array.rawScalar)
				{
					raw_scalar = true;
					break;
				}
				if (!at_start)
					maybe_comma(buf);
				appendStringInfoCharMacro(buf, '[');
				break;
			case WJB_KEY:
				maybe_comma(buf);
				append_json_string(buf, v.val.string.val, v.val.string.len);
				appendStringInfoCharMacro(buf, ':');
				break;
			case WJB_VALUE:
				append_scalar(buf, &v);
				break;
			case WJB_ELEM:
				if (!raw_scalar)
					maybe_comma(buf);
				append_scalar(buf, &v);
				break;
			case WJB_END_OBJECT:
				appendStringInfoCharMacro(buf, '}');
				break;
			case WJB_END_ARRAY:
				if (!raw_scalar)
					appendStringInfoCharMacro(buf, ']');
				break;
			default:
				break;
		}
	}
}

void
jsonb_value_append_compact(StringInfo buf, JsonbValue *v)
{
	if (v->type == jbvBinary)
		jsonb_append_compact(buf, v->val.binary.data);
	else
		append_scalar(buf, v);
}

JsonbValue *
jsonb_member(JsonbContainer *obj, const char *name)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = unconstify(char *, name);
	k.val.string.len = strlen(name);
	return findJsonbValueFromContainer(obj, JB_FOBJECT, &k);
}

/*
 * jsonutil.c
 *		Strict JSON parsing into jsonb, and compact JSON output.
 *
 * The parser is a recursive-descent scanner over the UTF-8 text that builds
 * the JsonbValue tree directly and converts it with JsonbValueToJsonb.  It
 * accepts exactly RFC 8259 JSON, as PostgreSQL's own lexer does, and adds
 * what untrusted token text needs:
 *
 *	- valid UTF-8 without NUL bytes, checked before scanning;
 *	- a nesting bound (JWT_JSON_MAX_DEPTH), so recursion stays shallow;
 *	- duplicate member names detected, in any object;
 *	- numbers of absurd magnitude refused before numeric_in could raise.
 *
 * None of these raise an error; the caller gets a JsonStrictError and
 * chooses the SQLSTATE.  (Only out-of-memory can still raise.)
 *
 * It replaced a parser driven by PostgreSQL's JSON lexer (common/jsonapi.h),
 * which de-escapes strings one character at a time into a StringInfo and
 * copies every member name: most of an HS256 verification went there.  This
 * one points string values into the decoded segment when they hold no
 * escape, converts integers of up to 18 digits without numeric_in, and
 * sorts an object's members once, when the object ends.
 *
 * When the text has several problems, the one reported is the first of:
 * encoding, nesting, syntax, number, duplicate name, not an object.  The
 * scanner stops at the first problem it meets, so on failure the whole text
 * is re-examined for the problems that rank above what it found.
 */
#include "postgres.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "catalog/namespace.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "compat.h"
#include "jsonutil.h"

/* Decimal exponent bound: far inside numeric's range, far beyond any claim. */
#define JSON_MAX_EXPONENT	1000
#define JSON_MAX_NUMBER_LEN 1000

/* Integers of up to this many digits convert without numeric_in */
#define JSON_FAST_INT_DIGITS 18

/* Members or elements a container starts with room for */
#define JSON_INITIAL_SLOTS	8

/* Objects up to this size are sorted by insertion, larger ones by qsort */
#define JSON_INSERTION_SORT_MAX 16

typedef struct JsonScan
{
	const char *p;				/* next byte to read */
	const char *end;
	bool		utf8_db;		/* database encoding is UTF-8 */
	JsonStrictError err;		/* why scanning stopped, when it did */
	bool		bad_number;		/* a number out of range (scanning goes on) */
	bool		duplicate;		/* an object repeats a name (scanning goes on) */
	JsonFastInts *ints;			/* where to note top-level integers, or NULL */
} JsonScan;

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

/*
 * A JSON number token of len bytes (already scanned as valid) whose decimal
 * exponent stays within JSON_MAX_EXPONENT, so numeric_in cannot overflow.
 */
static bool
number_is_sane(const char *tok, size_t len)
{
	const char *p = tok;
	const char *end = tok + len;
	long		exp10 = 0;
	long		intdigits = 0;

	if (len > JSON_MAX_NUMBER_LEN)
		return false;
	if (*p == '-')
		p++;
	while (p < end && *p >= '0' && *p <= '9')
	{
		intdigits++;
		p++;
	}
	while (p < end && *p != 'e' && *p != 'E')
		p++;
	if (p < end)
	{
		bool		neg = false;

		p++;
		if (*p == '+' || *p == '-')
			neg = (*p++ == '-');
		/* digits beyond the bound need not be read: the bound is passed */
		while (p < end && exp10 <= JSON_MAX_EXPONENT)
			exp10 = exp10 * 10 + (*p++ - '0');
		if (exp10 > JSON_MAX_EXPONENT)
			return false;
		if (neg)
			exp10 = -exp10;
	}
	return intdigits + exp10 <= JSON_MAX_EXPONENT;
}

static bool
scan_fail(JsonScan *s, JsonStrictError err)
{
	s->err = err;
	return false;
}

static inline void
skip_ws(JsonScan *s)
{
	while (s->p < s->end &&
		   (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static inline int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The four hex digits of a \u escape at p (which is past the "\u"), or -1 */
static int
hex4(const char *p, const char *end)
{
	int			cp = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++)
	{
		int			h = hex_value(p[i]);

		if (h < 0)
			return -1;
		cp = (cp << 4) | h;
	}
	return cp;
}

/*
 * The rest of a string that holds an escape: from p (the first backslash)
 * to the closing quote, de-escaped after the first `plain` bytes at start.
 * Refuses what PostgreSQL's lexer refuses: unknown escapes, \u0000, a
 * surrogate not in a proper pair.
 */
static bool
scan_escaped_string(JsonScan *s, const char *start, const char *p,
					JsonbValue *out)
{
	const char *q = p;
	char	   *buf;
	char	   *w;

	/* find the closing quote, to size the buffer: nothing decodes longer */
	while (q < s->end && *q != '"')
		q += (*q == '\\') ? 2 : 1;
	if (q >= s->end)
		return scan_fail(s, JSON_STRICT_SYNTAX);

	buf = palloc(q - start + 1);
	memcpy(buf, start, p - start);
	w = buf + (p - start);

	while (*p != '"')
	{
		unsigned char c = (unsigned char) *p;
		int			cp;

		if (c < 0x20)
			return scan_fail(s, JSON_STRICT_SYNTAX);
		if (c != '\\')
		{
			*w++ = (char) c;
			p++;
			continue;
		}
		p++;					/* the backslash; q proves a byte follows */
		switch (*p++)
		{
			case '"':
				*w++ = '"';
				continue;
			case '\\':
				*w++ = '\\';
				continue;
			case '/':
				*w++ = '/';
				continue;
			case 'b':
				*w++ = '\b';
				continue;
			case 'f':
				*w++ = '\f';
				continue;
			case 'n':
				*w++ = '\n';
				continue;
			case 'r':
				*w++ = '\r';
				continue;
			case 't':
				*w++ = '\t';
				continue;
			case 'u':
				break;
			default:
				return scan_fail(s, JSON_STRICT_SYNTAX);
		}

		cp = hex4(p, s->end);
		if (cp < 0)
			return scan_fail(s, JSON_STRICT_SYNTAX);
		p += 4;
		if (cp >= 0xDC00 && cp <= 0xDFFF)
			return scan_fail(s, JSON_STRICT_SYNTAX);	/* a lone low surrogate */
		if (cp >= 0xD800 && cp <= 0xDBFF)
		{
			int			lo;

			if (s->end - p < 2 || p[0] != '\\' || p[1] != 'u' ||
				(lo = hex4(p + 2, s->end)) < 0xDC00 || lo > 0xDFFF)
				return scan_fail(s, JSON_STRICT_SYNTAX);
			p += 6;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		}
		if (cp == 0)
			return scan_fail(s, JSON_STRICT_SYNTAX);	/* text cannot hold NUL */
		if (cp > 0x7F && !s->utf8_db)
			return scan_fail(s, JSON_STRICT_ENCODING);
		w = (char *) unicode_to_utf8((pg_wchar) cp, (unsigned char *) w);
		w += pg_utf_mblen((unsigned char *) w);
	}

	out->type = jbvString;
	out->val.string.val = buf;
	out->val.string.len = w - buf;
	s->p = p + 1;
	return true;
}

/* 1 for bytes that are plain string content, built on first use */
static unsigned char plain_byte[256];
static bool plain_byte_ready = false;

static void
build_plain_byte(void)
{
	for (int c = 0; c < 256; c++)
		plain_byte[c] = (c >= 0x20 && c != '"' && c != '\\');
	plain_byte_ready = true;
}

/*
 * Bytes from p that are plain string content (not '"', '\\', nor below
 * 0x20), sixteen at a time where the text has that many left.
 */
static inline const char *
skip_plain(const char *p, const char *end)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i backslash = _mm_set1_epi8('\\');
	const __m128i ctl = _mm_set1_epi8(0x1F);

	while (end - p >= 16)
	{
		__m128i		v = _mm_loadu_si128((const __m128i *) p);
		__m128i		stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
													 _mm_cmpeq_epi8(v, backslash)),
										_mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
		int			mask = _mm_movemask_epi8(stop);

		if (mask != 0)
			return p + __builtin_ctz(mask);
		p += 16;
	}
#endif
	if (unlikely(!plain_byte_ready))
		build_plain_byte();
	while (p < end && plain_byte[(unsigned char) *p])
		p++;
	return p;
}

/*
 * Whether the text is ASCII without NUL bytes, which needs no UTF-8 check;
 * sixteen bytes at a time where the compiler targets SSE2.
 */
static bool
plain_ascii(const char *data, size_t len)
{
	size_t		i = 0;

#ifdef __SSE2__
	const __m128i zero = _mm_setzero_si128();

	for (; i + 16 <= len; i += 16)
	{
		__m128i		v = _mm_loadu_si128((const __m128i *) (data + i));

		/* the sign bit marks bytes >= 0x80; cmpeq marks NUL */
		if (_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, zero))) != 0)
			return false;
	}
#endif
	for (; i < len; i++)
	{
		if ((unsigned char) data[i] >= 0x80 || data[i] == '\0')
			return false;
	}
	return true;
}

/*
 * A string, at its opening quote.  Without escapes (the usual case) the
 * value points into the text itself, which outlives the JsonbValue tree.
 */
static bool
scan_string(JsonScan *s, JsonbValue *out)
{
	const char *start = s->p + 1;
	const char *p = skip_plain(start, s->end);

	if (p < s->end && *p == '"')
	{
		out->type = jbvString;
		out->val.string.val = unconstify(char *, start);
		out->val.string.len = p - start;
		s->p = p + 1;
		return true;
	}
	if (p < s->end && *p == '\\')
		return scan_escaped_string(s, start, p, out);
	/* a control character, or the end of the text */
	return scan_fail(s, JSON_STRICT_SYNTAX);
}

static inline bool
is_digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/*
 * A number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.  What follows it
 * is the caller's to check (so "01" and "1x" fail there, as in PostgreSQL).
 */
static bool
scan_number(JsonScan *s, JsonbValue *out, JsonFastInts *ints)
{
	const char *start = s->p;
	const char *p = start;
	const char *end = s->end;
	bool		neg = false;
	bool		integer = true;
	int64		ival = 0;
	int			ndigits = 0;

	if (*p == '-')
	{
		neg = true;
		p++;
	}
	if (!is_digit(p, end))
		return scan_fail(s, JSON_STRICT_SYNTAX);
	if (*p == '0')
	{
		p++;
		ndigits = 1;
	}
	else
	{
		while (is_digit(p, end))
		{
			if (ndigits < JSON_FAST_INT_DIGITS)
				ival = ival * 10 + (*p - '0');
			ndigits++;
			p++;
		}
	}
	if (p < end && *p == '.')
	{
		integer = false;
		p++;
		if (!is_digit(p, end))
			return scan_fail(s, JSON_STRICT_SYNTAX);
		while (is_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		integer = false;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return scan_fail(s, JSON_STRICT_SYNTAX);
		while (is_digit(p, end))
			p++;
	}
	s->p = p;

	out->type = jbvNumeric;
	if (integer && ndigits <= JSON_FAST_INT_DIGITS)
	{
		/* the same value numeric_in would give: scale 0, zero unsigned */
		if (neg)
			ival = -ival;
		out->val.numeric = int64_to_numeric(ival);
		if (ints != NULL && ints->n < JSON_FAST_INTS_MAX)
		{
			ints->num[ints->n] = out->val.numeric;
			ints->val[ints->n] = ival;
			ints->n++;
		}
		return true;
	}
	if (!number_is_sane(start, p - start))
	{
		s->bad_number = true;
		out->type = jbvNull;
		return true;
	}
	out->val.numeric =
		DatumGetNumeric(DirectFunctionCall3(numeric_in,
											CStringGetDatum(pnstrdup(start, p - start)),
											ObjectIdGetDatum(InvalidOid),
											Int32GetDatum(-1)));
	return true;
}

/* A literal true, false or null; what follows is the caller's to check */
static bool
scan_literal(JsonScan *s, const char *word, size_t len, JsonbValue *out)
{
	if ((size_t) (s->end - s->p) < len || memcmp(s->p, word, len) != 0)
		return scan_fail(s, JSON_STRICT_SYNTAX);
	s->p += len;
	if (word[0] == 'n')
		out->type = jbvNull;
	else
	{
		out->type = jbvBool;
		out->val.boolean = (word[0] == 't');
	}
	return true;
}

/*
 * jsonb's member order: shorter names first, then bytewise.  Claim names
 * are short and often of one length ("iss", "sub", "exp"...): those are
 * compared inline rather than by a call to memcmp.
 */
static inline int
compare_names(const JsonbValue *a, const JsonbValue *b)
{
	int			len = a->val.string.len;

	if (len != b->val.string.len)
		return (len > b->val.string.len) ? 1 : -1;
	if (len > 8)
		return memcmp(a->val.string.val, b->val.string.val, len);
	for (int i = 0; i < len; i++)
	{
		unsigned char ca = (unsigned char) a->val.string.val[i];
		unsigned char cb = (unsigned char) b->val.string.val[i];

		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return 0;
}

static int
compare_pairs(const void *a, const void *b)
{
	return compare_names(&((const JsonbPair *) a)->key,
						 &((const JsonbPair *) b)->key);
}

/*
 * Put an object's members in jsonb order and note whether a name repeats
 * (equal names end up side by side).
 */
static void
sort_members(JsonScan *s, JsonbPair *pairs, int n)
{
	if (n <= JSON_INSERTION_SORT_MAX)
	{
		for (int i = 1; i < n; i++)
		{
			JsonbPair	tmp = pairs[i];
			int			j = i;

			while (j > 0 && compare_names(&pairs[j - 1].key, &tmp.key) > 0)
			{
				pairs[j] = pairs[j - 1];
				j--;
			}
			pairs[j] = tmp;
		}
	}
	else
		qsort(pairs, n, sizeof(JsonbPair), compare_pairs);

	for (int i = 1; i < n; i++)
		if (compare_names(&pairs[i - 1].key, &pairs[i].key) == 0)
			s->duplicate = true;
}

/*
 * After a member or element: a comma (1, skipped with the whitespace after
 * it), the container's closing bracket (0, skipped), or anything else (-1).
 */
static int
comma_or_close(JsonScan *s, char close)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == ',')
	{
		s->p++;
		skip_ws(s);
		return 1;
	}
	if (s->p < s->end && *s->p == close)
	{
		s->p++;
		return 0;
	}
	return -1;
}

/* Room for one more slot of elemsize bytes in *slots, which holds *size */
static void *
grow_slots(void *slots, int n, int *size, Size elemsize)
{
	if (n < *size)
		return slots;
	*size = *size ? *size * 2 : JSON_INITIAL_SLOTS;
	return slots ? repalloc(slots, *size * elemsize) : palloc(*size * elemsize);
}

static bool scan_value(JsonScan *s, JsonbValue *out, int depth);

/* An object, at its "{"; depth counts it */
static bool
scan_object(JsonScan *s, JsonbValue *out, int depth)
{
	JsonbPair  *pairs = NULL;
	int			n = 0;
	int			size = 0;

	if (depth > JWT_JSON_MAX_DEPTH)
		return scan_fail(s, JSON_STRICT_TOO_DEEP);
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == '}')
		s->p++;
	else
	{
		int			more;

		do
		{
			pairs = grow_slots(pairs, n, &size, sizeof(JsonbPair));
			if (s->p >= s->end || *s->p != '"' || !scan_string(s, &pairs[n].key))
				return scan_fail(s, s->err ? s->err : JSON_STRICT_SYNTAX);
			skip_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return scan_fail(s, JSON_STRICT_SYNTAX);
			s->p++;
			skip_ws(s);
			if (!scan_value(s, &pairs[n].value, depth))
				return false;
			n++;
		} while ((more = comma_or_close(s, '}')) > 0);
		if (more < 0)
			return scan_fail(s, JSON_STRICT_SYNTAX);
		sort_members(s, pairs, n);
	}
	out->type = jbvObject;
	out->val.object.nPairs = n;
	out->val.object.pairs = pairs;
	return true;
}

/* An array, at its "["; depth counts it */
static bool
scan_array(JsonScan *s, JsonbValue *out, int depth)
{
	JsonbValue *elems = NULL;
	int			n = 0;
	int			size = 0;

	if (depth > JWT_JSON_MAX_DEPTH)
		return scan_fail(s, JSON_STRICT_TOO_DEEP);
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == ']')
		s->p++;
	else
	{
		int			more;

		do
		{
			elems = grow_slots(elems, n, &size, sizeof(JsonbValue));
			if (!scan_value(s, &elems[n], depth))
				return false;
			n++;
		} while ((more = comma_or_close(s, ']')) > 0);
		if (more < 0)
			return scan_fail(s, JSON_STRICT_SYNTAX);
	}
	out->type = jbvArray;
	out->val.array.nElems = n;
	out->val.array.elems = elems;
	out->val.array.rawScalar = false;
	return true;
}

/*
 * Any value, at its first byte (whitespace already skipped), inside a
 * container at depth (0 for the top-level value itself)
 */
static bool
scan_value(JsonScan *s, JsonbValue *out, int depth)
{
	if (s->p >= s->end)
		return scan_fail(s, JSON_STRICT_SYNTAX);
	switch (*s->p)
	{
		case '{':
			return scan_object(s, out, depth + 1);
		case '[':
			return scan_array(s, out, depth + 1);
		case '"':
			return scan_string(s, out);
		case 't':
			return scan_literal(s, "true", 4, out);
		case 'f':
			return scan_literal(s, "false", 5, out);
		case 'n':
			return scan_literal(s, "null", 4, out);
		default:
			return scan_number(s, out, depth == 1 ? s->ints : NULL);
	}
}

bool
json_fast_int(const JsonFastInts *ints, const JsonbValue *v, int64 *val)
{
	if (v->type != jbvNumeric)
		return false;
	for (int i = 0; i < ints->n; i++)
	{
		if (ints->num[i] == v->val.numeric)
		{
			*val = ints->val[i];
			return true;
		}
	}
	return false;
}

/*
 * The text in the database encoding, checked.  A token's JSON is UTF-8
 * (RFC 7519 §7.1, RFC 8259 §8.1): in a database of another encoding it is
 * converted, and a character that encoding cannot hold is refused like
 * invalid UTF-8, as an escape of one is.  Text from SQL (a key argument) is
 * in the database encoding already.  A SQL_ASCII database takes UTF-8 as
 * it is, as PostgreSQL does.
 */
static bool
in_server_encoding(const char **data, size_t *len, bool utf8_input)
{
	int			enc = GetDatabaseEncoding();
	int			destlen;
	unsigned char *dest;
	Oid			proc;

	if (*len > (size_t) PG_INT32_MAX)
		return false;
	if (plain_ascii(*data, *len))
		return true;
	if (enc != PG_UTF8 && enc != PG_SQL_ASCII && !utf8_input)
		return pg_verify_mbstr(enc, *data, (int) *len, true);
	if (!pg_verify_mbstr(PG_UTF8, *data, (int) *len, true))
		return false;
	if (enc == PG_UTF8 || enc == PG_SQL_ASCII)
		return true;

	proc = FindDefaultConversionProc(PG_UTF8, enc);
	if (!OidIsValid(proc) || *len > (size_t) (PG_INT32_MAX - 1) / MAX_CONVERSION_GROWTH)
		return false;
	destlen = (int) *len * MAX_CONVERSION_GROWTH + 1;
	dest = palloc(destlen);
	if (pg_do_encoding_conversion_buf(proc, PG_UTF8, enc,
									  (unsigned char *) unconstify(char *, *data), (int) *len,
									  dest, destlen, true) != (int) *len)
	{
		pfree(dest);
		return false;
	}
	*data = (const char *) dest;
	*len = strlen((const char *) dest);
	return true;
}

static bool
parse_tree(const char *data, size_t len, bool utf8_input, JsonbValue *root,
		   JsonFastInts *ints, JsonStrictError *err)
{
	JsonScan	s;

	if (!in_server_encoding(&data, &len, utf8_input))
	{
		*err = JSON_STRICT_ENCODING;
		return false;
	}

	memset(&s, 0, sizeof(s));
	s.p = data;
	s.end = data + len;
	s.utf8_db = (GetDatabaseEncoding() == PG_UTF8);
	s.ints = ints;
	if (ints != NULL)
		ints->n = 0;
	skip_ws(&s);
	if (scan_value(&s, root, 0))
	{
		skip_ws(&s);
		if (s.p != s.end)
			scan_fail(&s, JSON_STRICT_SYNTAX);	/* text after the value */
	}

	/* a problem that ranks higher may lie beyond where scanning stopped */
	if (s.err != JSON_STRICT_OK && s.err != JSON_STRICT_ENCODING)
	{
		if (!escapes_fit_encoding(data, len))
			s.err = JSON_STRICT_ENCODING;
		else if (!depth_within(data, len, JWT_JSON_MAX_DEPTH))
			s.err = JSON_STRICT_TOO_DEEP;
	}
	else if (s.err == JSON_STRICT_OK)
	{
		if (s.bad_number)
			s.err = JSON_STRICT_NUMBER;
		else if (s.duplicate)
			s.err = JSON_STRICT_DUPLICATE;
		else if (root->type != jbvObject)
			s.err = JSON_STRICT_NOT_OBJECT;
	}
	*err = s.err;
	return s.err == JSON_STRICT_OK;
}

bool
json_parse_tree_strict(const char *data, size_t len, JsonbValue *root,
					   JsonFastInts *ints, JsonStrictError *err)
{
	return parse_tree(data, len, true, root, ints, err);
}

Jsonb *
json_parse_object_strict(const char *data, size_t len, JsonStrictError *err)
{
	JsonbValue	root;

	if (!parse_tree(data, len, false, &root, NULL, err))
		return NULL;
	return json_tree_to_jsonb(&root);
}

/* ----------------------------------------------------------------
 * Tree -> jsonb
 *
 * The layout is the one utils/jsonb.h describes.  A container is a uint32
 * header (count and kind), one JEntry per child (an object's keys first,
 * then its values in the same order) and the children's data.  A JEntry
 * holds the child's type and the length of its data, except every
 * JB_OFFSET_STRIDE'th, which holds the end offset of its data from the
 * start of the container's data instead.  Numerics and nested containers
 * start on a 4-byte boundary of the whole datum; the zero bytes of padding
 * count as part of their data.
 *
 * JsonbValueToJsonb does the same through a growing StringInfo, one
 * reservation per child; for the small objects of a token, doing without
 * that halves the cost.  The differential suite (test/stress/json_diff.py)
 * compares every result with jsonb_in's, byte size included.
 * ----------------------------------------------------------------
 */

/* Bytes that writing v can take, padding included at most */
static Size
tree_size_bound(const JsonbValue *v)
{
	Size		size = 0;

	switch (v->type)
	{
		case jbvString:
			return v->val.string.len;
		case jbvNumeric:
			return 3 + VARSIZE_ANY(v->val.numeric);
		case jbvObject:
			for (int i = 0; i < v->val.object.nPairs; i++)
				size += v->val.object.pairs[i].key.val.string.len +
					tree_size_bound(&v->val.object.pairs[i].value);
			return 3 + sizeof(uint32) + size +
				2 * sizeof(JEntry) * (Size) v->val.object.nPairs;
		case jbvArray:
			for (int i = 0; i < v->val.array.nElems; i++)
				size += tree_size_bound(&v->val.array.elems[i]);
			return 3 + sizeof(uint32) + size +
				sizeof(JEntry) * (Size) v->val.array.nElems;
		default:
			return 0;			/* null and booleans are all JEntry */
	}
}

static Size write_container(char *base, Size pos, const JsonbValue *c);

/* Zero bytes up to the next 4-byte boundary of the datum */
static inline Size
pad_to_int(char *base, Size pos)
{
	while (pos % sizeof(uint32) != 0)
		base[pos++] = 0;
	return pos;
}

/* One child's data at pos; its JEntry type bits in *type; returns the end */
static Size
write_child(char *base, Size pos, const JsonbValue *v, uint32 *type)
{
	switch (v->type)
	{
		case jbvString:
			memcpy(base + pos, v->val.string.val, v->val.string.len);
			*type = JENTRY_ISSTRING;
			return pos + v->val.string.len;
		case jbvNumeric:
			{
				Size		numlen = VARSIZE_ANY(v->val.numeric);

				pos = pad_to_int(base, pos);
				memcpy(base + pos, v->val.numeric, numlen);
				*type = JENTRY_ISNUMERIC;
				return pos + numlen;
			}
		case jbvBool:
			*type = v->val.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE;
			return pos;
		case jbvNull:
			*type = JENTRY_ISNULL;
			return pos;
		case jbvObject:
		case jbvArray:
			*type = JENTRY_ISCONTAINER;
			return write_container(base, pad_to_int(base, pos), v);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
			return pos;			/* keep compiler quiet */
	}
}

/* A container at pos (4-byte aligned); returns the end of its data */
static Size
write_container(char *base, Size pos, const JsonbValue *c)
{
	bool		object = (c->type == jbvObject);
	int			n = object ? c->val.object.nPairs : c->val.array.nElems;
	int			nchildren = object ? 2 * n : n;
	uint32		header = (uint32) n | (object ? JB_FOBJECT : JB_FARRAY);
	Size		jentries = pos + sizeof(uint32);
	Size		data = jentries + sizeof(JEntry) * (Size) nchildren;
	Size		end = data;

	memcpy(base + pos, &header, sizeof(header));
	for (int i = 0; i < nchildren; i++)
	{
		const JsonbValue *v;
		Size		start = end;
		uint32		type;
		JEntry		meta;

		if (!object)
			v = &c->val.array.elems[i];
		else if (i < n)
			v = &c->val.object.pairs[i].key;
		else
			v = &c->val.object.pairs[i - n].value;
		end = write_child(base, end, v, &type);
		if (end - data > JENTRY_OFFLENMASK)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("total size of jsonb elements exceeds the maximum of %d bytes",
							JENTRY_OFFLENMASK)));
		if (i % JB_OFFSET_STRIDE == 0)
			meta = type | (uint32) (end - data) | JENTRY_HAS_OFF;
		else
			meta = type | (uint32) (end - start);
		memcpy(base + jentries + sizeof(JEntry) * i, &meta, sizeof(meta));
	}
	return end;
}

Jsonb *
json_tree_to_jsonb(const JsonbValue *root)
{
	Size		bound = VARHDRSZ + tree_size_bound(root);
	char	   *base;
	Size		end;

	Assert(root->type == jbvObject || root->type == jbvArray);
	base = palloc(bound);
	end = write_container(base, VARHDRSZ, root);
	Assert(end <= bound);
	SET_VARSIZE(base, end);
	return (Jsonb *) base;
}

void
json_tree_members(const JsonbValue *obj, const JsonName *names, int n,
				  JsonbValue **out)
{
	Assert(obj->type == jbvObject);
	for (int i = 0; i < n; i++)
		out[i] = NULL;
	for (int p = 0; p < obj->val.object.nPairs; p++)
	{
		const JsonbValue *k = &obj->val.object.pairs[p].key;

		for (int i = 0; i < n; i++)
		{
			JsonbValue	name;

			if (k->val.string.len != names[i].len)
				continue;
			name.val.string.val = unconstify(char *, names[i].name);
			name.val.string.len = names[i].len;
			if (compare_names(k, &name) == 0)
			{
				out[i] = &obj->val.object.pairs[p].value;
				break;
			}
		}
	}
}

JsonbValue *
json_tree_member(const JsonbValue *obj, const char *name, int len)
{
	JsonbValue	key;
	int			lo = 0;
	int			hi = obj->val.object.nPairs;

	Assert(obj->type == jbvObject);
	key.type = jbvString;
	key.val.string.val = unconstify(char *, name);
	key.val.string.len = len;
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			cmp = compare_names(&obj->val.object.pairs[mid].key, &key);

		if (cmp == 0)
			return &obj->val.object.pairs[mid].value;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *
json_strict_error_text(JsonStrictError err)
{
	switch (err)
	{
		case JSON_STRICT_OK:
			return "no error";
		case JSON_STRICT_ENCODING:
			return "It is not valid UTF-8 (or, from SQL, not valid in the database encoding), contains a NUL byte, or holds or escapes a character the database encoding cannot hold.";
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
	int			run = 0;		/* start of the bytes not yet appended */
	int			i;

	/* the usual case, nothing to escape: one copy */
	i = skip_plain(s, s + len) - s;
	if (i == len)
	{
		if (buf->len + len + 2 >= buf->maxlen)
			enlargeStringInfo(buf, len + 2);
		buf->data[buf->len] = '"';
		memcpy(buf->data + buf->len + 1, s, len);
		buf->data[buf->len + len + 1] = '"';
		buf->len += len + 2;
		buf->data[buf->len] = '\0';
		return;
	}

	appendStringInfoCharMacro(buf, '"');
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		/* bytes that need no escape are appended a run at a time */
		if (c >= ' ' && c != '"' && c != '\\')
			continue;
		appendBinaryStringInfo(buf, s + run, i - run);
		run = i + 1;
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
				appendStringInfo(buf, "\\u%04x", (int) c);
				break;
		}
	}
	appendBinaryStringInfo(buf, s + run, len - run);
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

void
jsonb_object_read(JsonbContainer *c, JsonbValue *keys, JsonbValue *values)
{
	int			n = JsonContainerSize(c);
	const char *data = (const char *) &c->children[2 * n];
	uint32		off = 0;

	Assert(JsonContainerIsObject(c));
	for (int i = 0; i < 2 * n; i++)
	{
		JEntry		je = c->children[i];
		uint32		end = JBE_HAS_OFF(je) ? JBE_OFFLENFLD(je) : off + JBE_OFFLENFLD(je);
		JsonbValue *v = (i < n) ? &keys[i] : &values[i - n];

		if (JBE_ISSTRING(je))
		{
			v->type = jbvString;
			v->val.string.val = unconstify(char *, data + off);
			v->val.string.len = end - off;
		}
		else if (JBE_ISNUMERIC(je))
		{
			v->type = jbvNumeric;
			v->val.numeric = (Numeric) unconstify(char *, data + INTALIGN(off));
		}
		else if (JBE_ISBOOL_TRUE(je) || JBE_ISBOOL_FALSE(je))
		{
			v->type = jbvBool;
			v->val.boolean = JBE_ISBOOL_TRUE(je);
		}
		else if (JBE_ISNULL(je))
			v->type = jbvNull;
		else
		{
			v->type = jbvBinary;
			v->val.binary.data = (JsonbContainer *) unconstify(char *, data + INTALIGN(off));
			v->val.binary.len = end - INTALIGN(off);
		}
		off = end;
	}
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

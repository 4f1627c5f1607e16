/*
 * compat.h
 *		Differences between PostgreSQL server versions, kept in one place.
 *
 * Built and tested on 15; the guards below cover 13 to 17.
 */
#ifndef JWT_COMPAT_H
#define JWT_COMPAT_H

#include "postgres.h"
#include "common/jsonapi.h"

/* JSON semantic actions return an error code from 16 on */
#if PG_VERSION_NUM >= 160000
#define JSON_ACTION_TYPE	JsonParseErrorType
#define JSON_ACTION_DONE	return JSON_SUCCESS
#else
#define JSON_ACTION_TYPE	void
#define JSON_ACTION_DONE	return
#endif

/* makeJsonLexContextCstringLen takes a context to fill from 17 on */
#if PG_VERSION_NUM >= 170000
#define jwt_make_lex(json, len, need_escapes) \
	makeJsonLexContextCstringLen(NULL, (json), (len), PG_UTF8, (need_escapes))
#else
#define jwt_make_lex(json, len, need_escapes) \
	makeJsonLexContextCstringLen((json), (len), PG_UTF8, (need_escapes))
#endif

/* GUC prefixes are reserved with MarkGUCPrefixReserved from 15 on */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix)	EmitWarningsOnPlaceholders(prefix)
#endif

/* numeric infinities and int64_to_numeric() arrived in 14 */
#if PG_VERSION_NUM < 140000
#define numeric_is_inf(n)	false
#define int64_to_numeric(v) \
	DatumGetNumeric(DirectFunctionCall1(int8_numeric, Int64GetDatum(v)))
#endif

#endif							/* JWT_COMPAT_H */
